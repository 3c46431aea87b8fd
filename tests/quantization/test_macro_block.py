import dataclasses
import json

import larq as lq
import numpy as np
import pytest

from zippy_tf._compat import keras, tf
from zippy_tf.errors import UserError
from zippy_tf.quantization.blocks import build_macro_block
from zippy_tf.quantization.layers import FakeQuant
from zippy_tf.quantization.macro_block import ROLE_CANDIDATES, MacroBlock, blocks_from_json, blocks_to_json

CONV_CASES = [
    # precision, in channels, filters, num_convs
    ("float", 32, 32, 2),
    ("int8", 32, 64, 2),
    ("bin", 32, 32, 2),
    ("bin_r", 32, 32, 2),
    ("bin_r", 32, 64, 1),
]


def _build(block, channels, size=8):
    inputs = keras.Input((size, size, channels))
    return keras.Model(inputs, build_macro_block(block, inputs))


@pytest.mark.parametrize("precision,cin,filters,n", CONV_CASES)
def test_conv_block_shapes_layers_and_training_step(precision, cin, filters, n):
    model = _build(MacroBlock("b", "encoder", precision, filters, num_convs=n), cin)
    assert model.output_shape == (None, 8, 8, filters)
    binary = [layer for layer in model.layers if isinstance(layer, lq.layers.QuantConv2D)]
    if precision.startswith("bin"):
        assert len(binary) == n
        for layer in binary:  # LCE's fast path: +1 padding, clipped latent weights, sign on both operands
            assert layer.pad_values == 1.0 and isinstance(layer.kernel_constraint, lq.constraints.WeightClip)
    else:
        assert not binary
    has_fq = any(isinstance(layer, FakeQuant) for layer in model.layers)
    assert has_fq == (precision != "float")
    shortcut = [la for la in model.layers if isinstance(la, keras.layers.Conv2D) and la.name.endswith("_shortcut")]
    assert len(shortcut) == (1 if (precision == "bin_r" and cin != filters) else 0)
    x = tf.random.stateless_normal((2, 8, 8, cin), seed=(1, 2))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(x, training=True) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)
    assert any(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)


def test_bin_r_identity_shortcut_adds_input():
    block = MacroBlock("b", "encoder", "bin_r", 32, num_convs=1, activation="none")
    model = _build(block, 32)
    for layer in model.layers:  # zero the main path: the output is then the (fake-quantized) input
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([np.zeros(32), np.zeros(32), np.zeros(32), np.ones(32)])
    x = np.random.default_rng(0).uniform(-5, 5, (1, 8, 8, 32)).astype(np.float32)
    np.testing.assert_allclose(model(x), FakeQuant(6.0)(x), atol=1e-6)


@pytest.mark.parametrize("pooling,channels", [("max", 16), ("avg", 16), ("subsample", 16), ("learned", 48)])
def test_pool_blocks_halve_resolution(pooling, channels):
    model = _build(MacroBlock("p", "pool", "int8", 48, pooling=pooling), 16)
    assert model.output_shape == (None, 4, 4, channels)


def test_head_block_has_bias_and_no_batch_norm():
    model = _build(MacroBlock("h", "head", "float", 2, activation="tanh"), 16)
    conv = model.get_layer("h_conv")
    assert conv.use_bias and not any(isinstance(la, keras.layers.BatchNormalization) for la in model.layers)


def test_json_round_trip():
    blocks = [MacroBlock("s", "first_conv", "int8", 32, qmax=1.0), MacroBlock("p", "pool", pooling="learned")]
    assert blocks_from_json(blocks_to_json(blocks)) == blocks
    assert blocks_from_json(json.dumps({"blocks": [b.to_dict() for b in blocks]})) == blocks


def test_with_choice_edits_precision_or_pooling():
    conv, pool = MacroBlock("c", "encoder", "int8", 32), MacroBlock("p", "pool", pooling="max")
    assert conv.with_choice("bin_r").precision == "bin_r" and conv.with_choice("bin_r").choice == "bin_r"
    assert pool.with_choice("learned").pooling == "learned"
    for role, candidates in ROLE_CANDIDATES.items():
        assert candidates, role


BAD = [
    ({"name": "a", "role": "encoder", "precision": "int4", "filters": 8}, "unknown precision 'int4'"),
    ({"name": "a", "role": "middle", "filters": 8}, "unknown role 'middle'"),
    ({"name": "a", "role": "pool", "pooling": "median"}, "unknown pooling 'median'"),
    ({"name": "a", "role": "encoder", "filters": 0}, "filters must be positive"),
    ({"name": "a", "role": "encoder", "filters": 8, "colour": "red"}, "unknown keys"),
    ({"role": "encoder", "filters": 8}, "incomplete"),
]


@pytest.mark.parametrize("data,message", BAD)
def test_bad_block_gives_one_line_error(data, message):
    with pytest.raises(UserError, match=message) as err:
        MacroBlock.from_dict(data)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text,message", [("[{", "not valid JSON"), ('{"a": 1}', "JSON list"),
                                          ('[{"name":"a","role":"pool","pooling":"max"},'
                                           '{"name":"a","role":"pool","pooling":"max"}]', "unique")])
def test_bad_config_json(text, message):
    with pytest.raises(UserError, match=message):
        blocks_from_json(text)


def test_blocks_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        MacroBlock("c", "encoder", "int8", 32).precision = "bin"
