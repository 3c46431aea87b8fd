"""Macro-block configurations of the keypoint networks (thesis Table 5.1 and the public reference)."""

from zippy_tf.quantization.macro_block import MacroBlock

# The thesis's final ZippyPoint: Int8 stem, early-learned pooling, Bin-R encoder, Int8 decoder, float score and
# location heads, Int8 descriptor head. Stem and first pooling use a ±1 fake-quant range (their input is ±0.11).
ZIPPYPOINT = (
    MacroBlock("stem", "first_conv", "int8", 32, qmax=1.0),
    MacroBlock("pool1", "pool", "int8", 32, pooling="learned", qmax=1.0),
    MacroBlock("stage1", "encoder", "bin_r", 32, num_convs=2),
    MacroBlock("pool2", "pool", "int8", 64, pooling="learned"),
    MacroBlock("stage2", "encoder", "bin_r", 64, num_convs=2),
    MacroBlock("pool3", "pool", "int8", 128, pooling="learned"),
    MacroBlock("stage3", "encoder", "bin_r", 128, num_convs=2),
    MacroBlock("stage4", "encoder", "bin_r", 256, num_convs=2),
    MacroBlock("decoder", "decoder", "int8", 256),
    MacroBlock("score_head", "head", "float", 1, activation="sigmoid"),
    MacroBlock("location_head", "head", "float", 2, activation="tanh"),
    MacroBlock("descriptor_head", "head", "int8", 256, activation="none"),
)

# Every encoder/decoder macro-block Int8 (the traversal's starting point for the binary decisions); the heads
# keep the thesis's choice because Int8 score/location heads fail to train (thesis §5.4.2).
ZIPPYPOINT_INT8 = tuple(b.with_choice("int8") if b.role == "encoder" else b for b in ZIPPYPOINT)

# KP2D (Tang et al. 2020): float VGG encoder with max-pooling, LeakyReLU, and the conv3b → descriptor skip.
KP2D = (
    MacroBlock("stem", "first_conv", "float", 32, activation="leaky_relu"),
    MacroBlock("stage1", "encoder", "float", 32, activation="leaky_relu"),
    MacroBlock("pool1", "pool", "float", pooling="max"),
    MacroBlock("stage2", "encoder", "float", 64, num_convs=2, activation="leaky_relu"),
    MacroBlock("pool2", "pool", "float", pooling="max"),
    MacroBlock("stage3", "encoder", "float", 128, num_convs=2, activation="leaky_relu"),
    MacroBlock("pool3", "pool", "float", pooling="max"),
    MacroBlock("stage4", "encoder", "float", 256, num_convs=2, activation="leaky_relu"),
    MacroBlock("decoder", "decoder", "float", 256, activation="leaky_relu"),
    MacroBlock("score_head", "head", "float", 1, activation="sigmoid"),
    MacroBlock("location_head", "head", "float", 2, activation="tanh"),
    MacroBlock("descriptor_head", "head", "float", 256, activation="none"),
)
KP2D_SKIP = "stage3"  # block whose H/4 output KP2D concatenates into the descriptor decoder


def with_precisions(blocks, **choices):
    """A copy of ``blocks`` with some blocks' searched value replaced, e.g. ``with_precisions(b, stage1="bin")``."""
    return tuple(b.with_choice(choices[b.name]) if b.name in choices else b for b in blocks)


__all__ = ["KP2D", "KP2D_SKIP", "ZIPPYPOINT", "ZIPPYPOINT_INT8", "with_precisions"]
