"""Tracker layers: the two Exemplar Attention forms agree, maths against numpy, serialization, gradients."""

import numpy as np
import pytest

from zippy_tf._compat import keras, tf
from zippy_tf.tracking.attention import SelfAttention, SelfAttentionTransformer
from zippy_tf.tracking.exemplar import ExemplarAttention, ExemplarTransformer
from zippy_tf.tracking.layers import ChannelAttention, PixelwiseCorrelation, TransformerFeedForward, make_divisible

SHAPE = (2, 6, 6, 16)  # small maps: the layers are shape-agnostic
LAYERS = [
    (ExemplarAttention, dict(kernel_size=5, num_exemplars=4, query_dim=8)),
    (ExemplarTransformer, dict(kernel_size=3, num_exemplars=2, query_dim=8, ffn_dim=24, dropout=0.0)),
    (ExemplarTransformer, dict(kernel_size=3, num_exemplars=2, query_dim=8, ffn_dim=24, pointwise_form="conv_sum")),
    (ExemplarAttention, dict(kernel_size=3, num_exemplars=4, query_dim=8, depthwise_form="mixed_kernel")),
    (SelfAttention, dict(num_heads=4)),
    (SelfAttentionTransformer, dict(num_heads=2, ffn_dim=24)),
    (ChannelAttention, dict(ratio=0.25, divisor=8, gate="hard_sigmoid")),
    (TransformerFeedForward, dict(hidden_dim=12, dropout=0.1)),
]


def _noise(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def _randomize_batch_norms(layer, seed=1):
    """Non-trivial BN statistics, so inference-mode comparisons exercise them."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        if "moving_variance" in w.name:
            w.assign(rng.uniform(0.5, 2.0, w.shape).astype(np.float32))
        elif "moving_mean" in w.name or "beta" in w.name:
            w.assign(rng.normal(0, 0.3, w.shape).astype(np.float32))


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("kernel_size,num_exemplars", [(3, 4), (5, 4), (3, 1)])
@pytest.mark.parametrize("pointwise_form,depthwise_form", [("matmul", "output_sum"), ("conv_sum", "output_sum"),
                                                           ("matmul", "mixed_kernel")])
@pytest.mark.parametrize("cls", [ExemplarAttention, ExemplarTransformer])
def test_exemplar_forms_agree(cls, pointwise_form, depthwise_form, kernel_size, num_exemplars, training):
    """The graph forms (depthwise: Σ_e a_e conv(X, V_e) or one conv with the mixed kernel; pointwise: mixed-kernel
    matmul or output sum) equal the per-sample conv(X, Σ_e a_e V_e) (thesis Eq. 4.6), for a batch of 2 and of 1."""
    kwargs = dict(ffn_dim=24, dropout=0.0) if cls is ExemplarTransformer else {}
    layer = cls(kernel_size=kernel_size, num_exemplars=num_exemplars, query_dim=8, temperature=0.5,
                pointwise_form=pointwise_form, depthwise_form=depthwise_form, **kwargs)
    x = _noise(SHAPE)
    layer(x)
    _randomize_batch_norms(layer)
    for batch in (x, x[1:]):  # a batch of 1 takes the deployed path (a plain depthwise conv)
        fixed = layer(batch, training=training).numpy()
        mixed = layer(batch, training=training, mix_kernels=True).numpy()
        assert np.abs(fixed - mixed).max() <= 1e-5
        assert np.abs(fixed).max() > 1e-2  # not trivially zero


def test_depthwise_forms_in_a_model_with_a_static_batch():
    """The deployed form traced with a static batch of 1 (as it exports) gives the training form's outputs."""
    layers = [ExemplarAttention(kernel_size=5, query_dim=8, depthwise_form=form, name="attention")
              for form in ("output_sum", "mixed_kernel")]
    models = []
    for layer in layers:
        inputs = keras.Input(SHAPE[1:], batch_size=1)
        models.append(keras.Model(inputs, layer(inputs)))
    _randomize_batch_norms(layers[0])
    models[1].set_weights(models[0].get_weights())
    x = _noise((1, *SHAPE[1:]))
    want = models[0](x).numpy()
    assert np.abs(models[1](x).numpy() - want).max() <= 1e-5 * np.abs(want).max()
    with pytest.raises(ValueError, match="depthwise_form"):
        ExemplarAttention(depthwise_form="einsum")


def test_pointwise_forms_share_the_weight_layout():
    """Weights saved by the output-sum form (earlier checkpoints) load into the matmul form and give its outputs."""
    x = _noise(SHAPE)
    old, new = (ExemplarTransformer(kernel_size=5, num_exemplars=4, query_dim=8, ffn_dim=24, pointwise_form=form)
                for form in ("conv_sum", "matmul"))
    old(x), new(x)
    layout = lambda layer: [(w.name.split("/", 1)[1], w.shape) for w in layer.weights]  # noqa: E731
    assert layout(old) == layout(new)
    _randomize_batch_norms(old)
    new.set_weights(old.get_weights())
    assert np.abs(old(x).numpy() - new(x).numpy()).max() <= 1e-5
    with pytest.raises(ValueError, match="pointwise_form"):
        ExemplarAttention(pointwise_form="einsum")


def test_exemplar_weights_follow_the_formula():
    layer = ExemplarAttention(num_exemplars=4, query_dim=8, temperature=2.0)
    x = _noise(SHAPE)
    layer(x)
    kernel, bias = layer.query.get_weights()
    q = np.maximum(x.numpy().mean(axis=(1, 2)) @ kernel + bias, 0)
    logits = q @ layer.keys.numpy().T / np.sqrt(8) / 2.0
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(layer.attention(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    # per-sample: different inputs get different mixtures
    assert not np.allclose(expected[0], expected[1])


def test_pixelwise_correlation_matches_numpy():
    search, template = _noise((2, 5, 7, 8)), _noise((2, 3, 2, 8), seed=1)
    out = PixelwiseCorrelation()([search, template]).numpy()
    expected = np.einsum("bhwc,bpc->bhwp", search.numpy(), template.numpy().reshape(2, 6, 8))
    assert out.shape == (2, 5, 7, 6)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid"])
def test_channel_attention_matches_numpy(gate):
    layer = ChannelAttention(ratio=0.5, gate=gate)
    x = _noise((2, 4, 4, 8))
    out = layer(x).numpy()
    (w1, b1), (w2, b2) = layer.reduce.get_weights(), layer.expand.get_weights()
    s = np.maximum(x.numpy().mean(axis=(1, 2)) @ w1[0, 0] + b1, 0) @ w2[0, 0] + b2
    s = 1 / (1 + np.exp(-s)) if gate == "sigmoid" else np.clip(s + 3, 0, 6) / 6
    np.testing.assert_allclose(out, x.numpy() * s[:, None, None, :], rtol=1e-5, atol=1e-6)


def test_self_attention_matches_numpy():
    layer = SelfAttention(num_heads=2)
    x = _noise((1, 3, 3, 8))
    out = layer(x).numpy()
    (wqkv, bqkv), (wo, bo) = layer.qkv.get_weights(), layer.output_projection.get_weights()
    tokens = x.numpy().reshape(9, 8)
    q, k, v = np.split(tokens @ wqkv[0, 0] + bqkv, 3, axis=-1)
    heads = []
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        logits = q[:, sl] @ k[:, sl].T / 2.0
        a = np.exp(logits - logits.max(-1, keepdims=True))
        heads.append((a / a.sum(-1, keepdims=True)) @ v[:, sl])
    expected = (np.concatenate(heads, -1) @ wo[0, 0] + bo).reshape(1, 3, 3, 8)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls,kwargs", LAYERS, ids=[c.__name__ for c, _ in LAYERS])
def test_config_round_trip_and_shape(cls, kwargs):
    layer = cls(**kwargs, name="layer")
    x = _noise(SHAPE)
    inputs = keras.Input(SHAPE[1:])
    model = keras.Model(inputs, layer(inputs))
    config = layer.get_config()
    assert cls.from_config(config).get_config() == config
    clone = keras.models.model_from_json(model.to_json())  # through the registered names
    clone.set_weights(model.get_weights())
    assert isinstance(clone.get_layer("layer"), cls)
    np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), atol=1e-6)
    assert model(x).shape == SHAPE


@pytest.mark.parametrize("cls,kwargs", LAYERS, ids=[c.__name__ for c, _ in LAYERS])
def test_gradients_reach_every_weight(cls, kwargs):
    layer = cls(**kwargs)
    x = _noise(SHAPE)
    target = _noise(SHAPE, seed=3)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((layer(x, training=True) - target) ** 2)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert layer.trainable_weights
    for weight, grad in zip(layer.trainable_weights, grads):
        assert grad is not None and np.abs(grad.numpy()).max() > 0, weight.name


@pytest.mark.parametrize("value,divisor,expected", [(4, 8, 8), (36, 8, 40), (57.6, 8, 56), (16, 1, 16), (1.4, 1, 2)])
def test_make_divisible(value, divisor, expected):
    assert make_divisible(value, divisor) == expected
