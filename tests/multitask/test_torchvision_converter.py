"""converters/torchvision_resnet.py: a torchvision-layout ResNet-18 state_dict becomes the encoder weights file, every
tensor in its Keras layer, computing torchvision's stem; bad input is one line and exit status 2."""

import functools
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from zippy_tf._compat import tf
from zippy_tf.errors import UserError
from zippy_tf.multitask import resnet

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "converters", "torchvision_resnet.py")


@functools.lru_cache(maxsize=None)  # once: the script defines its absl flags when loaded
def _converter():
    spec = importlib.util.spec_from_file_location("torchvision_resnet", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torchvision_resnet18_state(seed=0):
    """A random state_dict with torchvision's ResNet-18 names and shapes (written out from torchvision's layout,
    not from this project's layer list), classifier and BN counters included."""
    rng = np.random.default_rng(seed)
    state = {}

    def conv(name, cout, cin, k):
        state[f"{name}.weight"] = rng.normal(0, 0.1, (cout, cin, k, k)).astype(np.float32)

    def bn(name, c):
        state[f"{name}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        state[f"{name}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
        state[f"{name}.running_mean"] = rng.normal(0, 0.1, c).astype(np.float32)
        state[f"{name}.running_var"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
        state[f"{name}.num_batches_tracked"] = np.array(100, np.int64)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for i, planes in enumerate((64, 128, 256, 512), 1):
        for j in range(2):
            conv(f"layer{i}.{j}.conv1", planes, cin if j == 0 else planes, 3)
            bn(f"layer{i}.{j}.bn1", planes)
            conv(f"layer{i}.{j}.conv2", planes, planes, 3)
            bn(f"layer{i}.{j}.bn2", planes)
            if j == 0 and i > 1:
                conv(f"layer{i}.0.downsample.0", planes, cin, 1)
                bn(f"layer{i}.0.downsample.1", planes)
        cin = planes
    state["fc.weight"] = rng.normal(0, 0.1, (1000, 512)).astype(np.float32)
    state["fc.bias"] = np.zeros(1000, np.float32)
    return state


@pytest.fixture(scope="module")
def state_file(tmp_path_factory):
    state = torchvision_resnet18_state()
    path = tmp_path_factory.mktemp("state") / "resnet18.npz"
    np.savez(path, **state)
    return state, str(path)


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


def test_every_tensor_lands_in_its_layer_and_the_stem_computes_torchvisions(state_file, tmp_path):
    state, path = state_file
    output = str(tmp_path / "encoder.h5")
    _converter().convert(path, output)
    encoder = resnet((64, 64, 3))
    encoder.load_weights(output)
    NORM = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
    landed = set()
    for layer in encoder.layers:
        for variable in layer.weights:
            kind = variable.name.split("/")[-1].split(":")[0]
            key = layer.name.replace("_", ".") + "." + ("weight" if kind == "kernel" else NORM[kind])
            expected = state[key].transpose(2, 3, 1, 0) if kind == "kernel" else state[key]
            np.testing.assert_array_equal(variable.numpy(), expected)
            landed.add(key)
    assert landed == {k for k in state if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}

    # the stem as torchvision computes it: conv 7×7/2 pad 3, BN (eps 1e-5), ReLU, maxpool 3/2 pad 1
    image = np.random.default_rng(1).normal(size=(1, 64, 64, 3)).astype(np.float32)
    pool = next(layer for layer in encoder.layers if layer.__class__.__name__ == "MaxPooling2D")
    stem = tf.keras.Model(encoder.input, pool.output)(image).numpy()
    x = tf.nn.conv2d(np.pad(image, ((0, 0), (3, 3), (3, 3), (0, 0))), state["conv1.weight"].transpose(2, 3, 1, 0),
                     2, "VALID").numpy()
    x = (x - state["bn1.running_mean"]) / np.sqrt(state["bn1.running_var"] + 1e-5) * state["bn1.weight"] + \
        state["bn1.bias"]
    x = np.pad(np.maximum(x, 0), ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    expected = tf.nn.max_pool2d(x, 3, 2, "VALID").numpy()
    np.testing.assert_allclose(stem, expected, rtol=1e-4, atol=1e-4)


def bad_input(case, state, tmp_path):
    """(input, output, a word of the expected message) of a bad-input row."""
    path, output = str(tmp_path / "state.npz"), str(tmp_path / "encoder.h5")
    if case == "missing":
        return str(tmp_path / "absent.npz"), output, "not found"
    if case == "not_npz":
        (tmp_path / "state.npz").write_text("not a zip")
        return path, output, "not an .npz"
    if case == "missing_key":
        np.savez(path, **{k: v for k, v in state.items() if k != "layer3.1.bn2.running_var"})
        return path, output, "'layer3.1.bn2.running_var'"
    np.savez(path, **{**state, "conv1.weight": state["conv1.weight"][:32]})
    if case == "mis_shaped":
        return path, output, "'conv1.weight' has shape"
    if case == "keras3_name":
        return path, str(tmp_path / "encoder.weights.h5"), "not *.weights.h5"
    return path, os.path.join(os.sep, "proc", "encoder.h5"), "is not writable"  # not even root creates files


CASES = ["missing", "not_npz", "missing_key", "mis_shaped", "keras3_name", "read_only"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_a_user_error_and_writes_nothing(case, state_file, tmp_path):
    path, output, word = bad_input(case, state_file[0], tmp_path)
    with pytest.raises(UserError, match=re.escape(word)):
        _converter().convert(path, output)
    assert not os.path.exists(str(tmp_path / "encoder.h5")) and not os.path.exists(output)


@pytest.mark.parametrize("case", ["missing", "mis_shaped"])  # before and after TensorFlow is loaded
def test_command_line_bad_input_is_one_line_exit_2(case, state_file, tmp_path):
    path, output, word = bad_input(case, state_file[0], tmp_path)
    done = run(f"--input={path}", f"--output={output}")
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and word in lines[0] and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not os.path.exists(output)
