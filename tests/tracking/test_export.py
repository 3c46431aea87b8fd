"""Tracker export: both branches to fp32 and int8 TFLite (builtin ops only); fp32 matches Keras."""

import numpy as np
import pytest

from zippy_tf.errors import UserError
from zippy_tf.export import op_census, read_flatbuffer
from zippy_tf.tracking.export import FlatbufferNetwork, branch_paths, export_tracker
from zippy_tf.tracking.model import build_tracker_network

SMALL = dict(template_size=63, search_size=128, ffn_dim=32)


@pytest.fixture(scope="module")
def networks():
    return {}


def _network(networks, head):
    if head not in networks:  # one build per head for the whole module
        networks[head] = build_tracker_network(head=head, **SMALL)
    return networks[head]


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 255, (1, 63, 63, 3)).astype(np.float32),
            rng.uniform(0, 255, (1, 128, 128, 3)).astype(np.float32))


@pytest.mark.parametrize("head,fmt", [(head, fmt) for head in ("exemplar", "conv", "attention")
                                      for fmt in ("fp32", "int8")])
def test_export_both_branches(networks, tmp_path, head, fmt):
    network = _network(networks, head)
    result = export_tracker(network, fmt, str(tmp_path / "tracker.tflite"), calibration_count=2)
    template_path, search_path = branch_paths(str(tmp_path / "tracker.tflite"))
    assert result["template"]["path"].endswith("tracker_template.tflite")
    ops = {**result["template"]["ops"], **result["search"]["ops"]}
    assert not [op for op in ops if op.startswith("Lce") or op in ("CUSTOM", "FlexEinsum", "GATHER")]
    runner = FlatbufferNetwork(read_flatbuffer(template_path), read_flatbuffer(search_path))
    template, search = _inputs()
    features = runner.template_net(template)
    outputs = runner.search_net([search, features])
    assert outputs["cls"].shape == (1, 8, 8, 1) and outputs["reg"].shape == (1, 8, 8, 4)
    if fmt == "int8":
        for path in (template_path, search_path):  # integer kernels but depthwise (INT8_FLOAT_OPS), float I/O
            types = op_census(read_flatbuffer(path))["op_types"]
            assert set(types["CONV_2D"]) == {"int8"} and set(types["DEPTHWISE_CONV_2D"]) == {"float32"}
        return
    expected_features = network.template_net(template).numpy()
    expected = network.search_net([search, expected_features])
    np.testing.assert_allclose(features, expected_features, atol=1e-4)
    assert np.abs(features - expected_features).max() <= 1e-4 * np.abs(expected_features).max()
    for key in ("cls", "reg"):
        want = expected[key].numpy()
        np.testing.assert_allclose(outputs[key], want, atol=1e-4)
        assert np.abs(outputs[key] - want).max() <= 1e-4 * max(np.abs(want).max(), 1e-6)


def _depthwise_multipliers(flatbuffer):
    """Output channels / input channels of every DEPTHWISE_CONV_2D of a flatbuffer."""
    from zippy_tf._compat import tf

    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    shapes = {t["index"]: t["shape"] for t in interpreter.get_tensor_details()}
    return [int(shapes[op["outputs"][0]][-1] // shapes[op["inputs"][0]][-1])
            for op in interpreter._get_ops_details() if op["op_name"] == "DEPTHWISE_CONV_2D"]


def test_exported_search_branch_mixes_the_exemplar_kernels(networks):
    """Thesis Eq. 4.6 in the exported graph: one depthwise conv per Exemplar layer, with its C channels (the training
    form's one conv has E·C output channels, E convolutions summed), and the same outputs."""
    from zippy_tf._compat import keras
    from zippy_tf.tracking.exemplar import ExemplarTransformer
    from zippy_tf.tracking.export import convert_search_branch
    from zippy_tf.tracking.model import deployment_form

    network = _network(networks, "exemplar")
    deployed = deployment_form(network)
    modules = list(network.search_net.submodules)
    exemplar = [m for m in modules if isinstance(m, ExemplarTransformer)]
    depthwise = [m for m in modules if isinstance(m, keras.layers.DepthwiseConv2D)]  # Exemplar's own included
    assert len(exemplar) == 10 and {m.attend.depthwise_form for m in exemplar} == {"output_sum"}
    trained = _depthwise_multipliers(convert_search_branch(network, "fp32"))
    exported = _depthwise_multipliers(convert_search_branch(deployed, "fp32"))
    assert len(trained) == len(exported) == len(depthwise)
    assert sorted(trained).count(4) == len(exemplar) and set(exported) == {1}
    template, search = _inputs(seed=3)
    features = network.template_net(template)
    want, got = network.search_net([search, features]), deployed.search_net([search, features])
    for key in ("cls", "reg"):
        assert np.abs(got[key].numpy() - want[key].numpy()).max() <= 1e-4 * max(np.abs(want[key].numpy()).max(), 1e-6)


def test_lce_is_refused(networks, tmp_path):
    with pytest.raises(UserError, match="format='fp32' or format='int8'"):
        export_tracker(_network(networks, "conv"), "lce", str(tmp_path / "t.tflite"))
    assert not list(tmp_path.iterdir())
