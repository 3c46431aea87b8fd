"""The default runtime: a preset's tracker runs its exported flatbuffers, exported once per weights and cached; a
cached export that is corrupt or from other weights is exported again, never run. The shipped E.T.Track is exported
once for the module (``tracker_cache``, tests/tracking/conftest.py)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from zippy_tf import presets
from zippy_tf.tracking.export import FlatbufferNetwork, cache_folder, cached_network
from zippy_tf.tracking.generate import write_otb_sequences
from zippy_tf.tracking.hyperparameters import default_runtime, read_hyperparameters
from zippy_tf.tracking.model import build_tracker_network, deployment_form
from zippy_tf.tracking.tracker import Tracker

SMALL = dict(template_size=63, search_size=128, ffn_dim=32)


@pytest.fixture(scope="module")
def shipped(tracker_cache):
    """The shipped E.T.Track, its default-runtime export in the test cache, and the lines the export printed."""
    network, lines = presets.load("ettrack"), []
    deployed = cached_network(network, default_runtime("ettrack"), progress=lines.append)
    return network, deployed, lines


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("otb")
    write_otb_sequences(str(root), 1, 5, seed=7, size=(120, 160))
    return str(root)


def test_the_shipped_tracker_exports_once_in_its_deployment_form(shipped, tracker_cache):
    from zippy_tf._compat import tf
    from zippy_tf.tracking.exemplar import ExemplarTransformer

    network, deployed, lines = shipped
    assert default_runtime("ettrack") == "int8" and cache_folder() == str(tracker_cache)
    assert len(lines) == 1 and "exporting to int8 TFLite once" in lines[0] and str(tracker_cache) in lines[0]
    assert isinstance(deployed, FlatbufferNetwork) and deployed.weights_path == network.weights_path
    (entry,) = (tracker_cache / "trackers").iterdir()
    search = (entry / "tracker_search.tflite").read_bytes()
    interpreter = tf.lite.Interpreter(model_content=search)
    shapes = {t["index"]: tuple(t["shape"][-1:]) for t in interpreter.get_tensor_details()}
    depthwise = [op for op in interpreter._get_ops_details() if op["op_name"] == "DEPTHWISE_CONV_2D"]
    exemplar = [m for m in network.search_net.submodules if isinstance(m, ExemplarTransformer)]
    backbone_and_separable = sum(isinstance(m, tf.keras.layers.DepthwiseConv2D) for m in network.search_net.submodules)
    # one depthwise conv per Exemplar layer with its C channels (Eq. 4.6), not one with E·C channels (Eq. 4.5)
    assert len(depthwise) == backbone_and_separable and len(exemplar) == 10
    assert all(shapes[op["outputs"][0]] == shapes[op["inputs"][0]] for op in depthwise)


def test_deployment_form_on_the_shipped_weights(shipped):
    from zippy_tf.data.photos import calibration_images

    network = shipped[0]
    deployed = deployment_form(network)
    features = network.template_net(calibration_images(127, 127, 1))
    search = calibration_images(256, 256, 1)
    want, got = network.search_net([search, features]), deployed.search_net([search, features])
    for key in ("cls", "reg"):
        assert np.abs(got[key].numpy() - want[key].numpy()).max() <= 1e-4 * np.abs(want[key].numpy()).max()


def test_from_preset_runs_the_cached_export(shipped, data, capfd):
    tracker = Tracker.from_preset("ettrack")
    assert "exporting" not in capfd.readouterr().err  # the module's export is reused
    assert tracker.runtime == "int8" and isinstance(tracker.network, FlatbufferNetwork)
    assert tracker.weights_path == presets.get_preset("ettrack").shipped_weights and "int8" in repr(tracker)
    tuned = read_hyperparameters(str(presets.MODELS_DIR / "ettrack" / "tracker.json"), "int8")
    assert {name: getattr(tracker, name) for name in tuned} == tuned
    from zippy_tf.tracking.datasets import load_sequences

    sequence = load_sequences(data, "otb")[0]
    assert tracker.init(sequence.read(0), tuple(sequence.boxes[0]))
    ok, box = tracker.update(sequence.read(1))
    assert isinstance(ok, bool) and len(box) == 4 and box[2] > 0 and box[3] > 0


def test_eval_track_runs_the_default_runtime(shipped, data, tmp_path):
    done = subprocess.run([sys.executable, "-m", "zippy_tf.cli.main", "eval", "track", "--data", data, "--tracker",
                           "ettrack", "--max_sequences", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["runtime"] == "int8" and result["num_sequences"] == 1 and result["fps"] > 0
    assert "reading each frame" in result["fps_counts"] and "exporting" not in done.stderr


@pytest.mark.parametrize("damage", ["truncated", "other_weights", "record"])
def test_a_bad_cached_export_is_exported_again(shipped, tracker_cache, monkeypatch, damage):
    """Exporting again writes the module's export of these weights (the exporter itself is tested in
    test_export.py), so the test sees which flatbuffer runs."""
    from zippy_tf.data.photos import calibration_images
    from zippy_tf.tracking import export

    network, deployed, _ = shipped
    (entry,) = (tracker_cache / "trackers").iterdir()
    files = {path.name: path.read_bytes() for path in entry.glob("*.tflite")}
    exports, lines = [], []

    def export_tracker(net, fmt, output_path):
        exports.append(fmt)
        for name, data in files.items():
            (entry / name).write_bytes(data)

    monkeypatch.setattr(export, "export_tracker", export_tracker)
    search = entry / "tracker_search.tflite"
    good = files["tracker_search.tflite"]
    if damage == "truncated":
        search.write_bytes(good[: len(good) // 2])
    elif damage == "other_weights":  # the same size, other values at the end (where the weight buffers are)
        changed = bytearray(good)
        changed[-600:-200] = bytes(255 - b for b in changed[-600:-200])
        search.write_bytes(bytes(changed))
    else:
        (entry / "export.json").write_text("{not json")
    rebuilt = cached_network(network, "int8", progress=lines.append)
    assert exports == ["int8"] and len(lines) == 1 and "corrupt or from other weights; exporting it again" in lines[0]
    assert search.read_bytes() == good and json.loads((entry / "export.json").read_text())["format"] == "int8"
    template, search_image = calibration_images(127, 127, 1), calibration_images(256, 256, 1)
    want = deployed.search_net([search_image, deployed.template_net(template)])["cls"]
    np.testing.assert_array_equal(rebuilt.search_net([search_image, rebuilt.template_net(template)])["cls"], want)
    cached_network(network, "int8", progress=lines.append)
    assert exports == ["int8"] and len(lines) == 1  # valid now: read, not exported again


def test_other_weights_get_their_own_export():
    from zippy_tf.tracking import export

    network, other = (build_tracker_network(head="exemplar", **SMALL) for _ in range(2))
    assert export.export_key(other, "fp32") != export.export_key(network, "fp32")
    assert export.export_key(network, "int8") != export.export_key(network, "fp32")
    assert export.export_key(deployment_form(network), "fp32") == export.export_key(network, "fp32")
