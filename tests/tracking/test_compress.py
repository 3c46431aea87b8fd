"""narrow_ffn: a tracker rebuilt with narrower transformer FFNs, initialised from the wide one."""

import numpy as np
import pytest

from zippy_tf.errors import UserError
from zippy_tf.tracking.compress import narrow_ffn, select_units
from zippy_tf.tracking.model import TrackerNetwork, build_tracker_network

SMALL = dict(template_size=63, search_size=128, ffn_dim=32)  # 4×4 template features, 8×8 grid
NARROW = 8


def _weights(network):
    with network._every_layer_trainable():
        return {w.name: w.numpy() for w in network.pair_model().weights}


def _outputs(network, inputs):
    return {key: value.numpy() for key, value in network.search_net(inputs, training=False).items()}


@pytest.fixture(scope="module", params=["exemplar", "attention"])
def networks(request):
    """(wide, narrowed to its own width, narrowed to NARROW, inputs) of one transformer head."""
    rng = np.random.default_rng(0)
    wide = build_tracker_network(head=request.param, **SMALL)
    # BatchNorm statistics away from their initial values, so that copying them is observable
    for weight in wide.search_net.weights:
        if "moving" in weight.name:
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype(np.float32))
    templates = rng.uniform(0, 255, (2, 63, 63, 3)).astype(np.float32)
    inputs = [rng.uniform(0, 255, (2, 128, 128, 3)).astype(np.float32), wide.template_net(templates).numpy()]
    return wide, narrow_ffn(wide, SMALL["ffn_dim"], inputs=inputs), narrow_ffn(wide, NARROW, inputs=inputs), inputs


def test_same_width_is_an_identical_network(networks):
    wide, same, _, inputs = networks
    assert same.config == wide.config
    same_weights = _weights(same)
    for name, value in _weights(wide).items():
        np.testing.assert_array_equal(same_weights[name], value, err_msg=name)
    same_outputs = _outputs(same, inputs)
    for key, value in _outputs(wide, inputs).items():
        np.testing.assert_array_equal(same_outputs[key], value)


def test_narrow_network_copies_every_other_weight_and_keeps_whole_units(networks):
    wide, _, narrow, inputs = networks
    assert narrow.config == {**wide.config, "ffn_dim": NARROW}
    wide_weights, narrow_weights = _weights(wide), _weights(narrow)
    assert sorted(wide_weights) == sorted(narrow_weights)
    ffn = [name for name in wide_weights if "feed_forward/linear" in name]
    assert len(ffn) == 4 * 10  # two linear layers (kernel, bias) in each of the ten transformer layers
    for name in set(wide_weights) - set(ffn):
        np.testing.assert_array_equal(narrow_weights[name], wide_weights[name], err_msg=name)
    for name in ffn:
        if "linear1" in name:  # each hidden unit kept whole: its input weights and bias are columns of the wide ones
            wide_columns = wide_weights[name].reshape(-1, SMALL["ffn_dim"]).T
            for column in narrow_weights[name].reshape(-1, NARROW).T:
                assert np.any(np.all(wide_columns == column, axis=1)), name
        else:
            assert narrow_weights[name].shape[-1] == wide_weights[name].shape[-1]
    outputs = _outputs(narrow, inputs)
    assert outputs["cls"].shape == (2, 8, 8, 1) and np.all(np.isfinite(outputs["reg"]))


def test_refit_second_layer_compensates_the_dropped_units():
    """Dropped units that are linear combinations of kept ones are compensated (up to the ridge term)."""
    rng = np.random.default_rng(0)
    u = rng.normal(size=(500, 6))
    w1 = rng.normal(size=(6, 4))
    b1 = np.full(4, 10.0)  # always active: the FFN is linear on these inputs
    w1 = np.concatenate([w1, w1[:, :2] * 0.01], axis=1)  # two tiny copies: the least important units
    b1 = np.concatenate([b1, b1[:2] * 0.01])
    w2, b2 = rng.normal(size=(6, 3)), rng.normal(size=3)
    n1, c1, n2, c2 = select_units(u, w1, b1, w2, b2, 4)
    np.testing.assert_array_equal(n1, w1[:, :4])
    np.testing.assert_array_equal(c1, b1[:4])
    wide = np.maximum(u @ w1 + b1, 0) @ w2 + b2
    narrow = np.maximum(u @ n1 + c1, 0) @ n2 + c2
    dropped_only = np.maximum(u @ w1[:, :4] + b1[:4], 0) @ w2[:4] + b2
    assert np.abs(narrow - wide).max() < 1e-2 * np.abs(dropped_only - wide).max()


@pytest.mark.parametrize("ffn_dim", [0, 33, 8.0, True])
def test_bad_widths_name_the_range(ffn_dim):
    network = TrackerNetwork(None, None, {"head": "exemplar", "ffn_dim": 32})
    with pytest.raises(UserError, match="must be an integer from 1 to the network's own FFN width 32"):
        narrow_ffn(network, ffn_dim)


def test_conv_head_has_no_ffn():
    with pytest.raises(UserError, match="no FFN"):
        narrow_ffn(TrackerNetwork(None, None, {"head": "conv", "ffn_dim": 32}), 8)
