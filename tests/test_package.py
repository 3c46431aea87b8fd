import importlib
import subprocess
import sys

import pytest


ENV = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}


def _python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)


def test_import_selects_keras_2_without_the_user_setting_anything():
    proc = _python("import zippy_tf, tensorflow as tf, larq; print(tf.keras.layers.Layer.__module__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("tf_keras")


def test_keras_3_imported_first_gives_a_clear_error():
    proc = _python("import tensorflow\nimport zippy_tf")
    assert proc.returncode != 0
    assert "import zippy_tf first" in proc.stderr.strip().splitlines()[-1]


def test_import_is_cheap_and_the_subpackages_load_on_access():
    proc = _python("import sys, zippy_tf\n"
                   "light = 'tensorflow' not in sys.modules\n"
                   "import zippy_tf.tracking, zippy_tf.keypoints, zippy_tf.tracking.hyperparameters\n"
                   "print(light, 'tensorflow' not in sys.modules, zippy_tf.keypoints.KeypointDetector.__name__, "
                   "'tensorflow' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True", "KeypointDetector", "True"]


@pytest.mark.parametrize("package", ["keypoints", "tracking", "export", "search", "quantization"])
def test_every_public_name_resolves(package):
    module = importlib.import_module(f"zippy_tf.{package}")
    assert module.__all__ and sorted(set(module.__all__)) == sorted(module.__all__)
    missing = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert missing == []
    assert set(module.__all__) <= set(dir(module))


def test_the_public_api_names_the_builders_classes_convert_and_the_timer():
    import zippy_tf

    assert {"KeypointDetector", "zippypoint", "kp2d_baseline", "match_descriptors"} <= set(zippy_tf.keypoints.__all__)
    assert {"Tracker", "ettrack", "lighttrack", "attention_tracker"} <= set(zippy_tf.tracking.__all__)
    assert {"convert", "time_interleaved", "compare", "FlatbufferRunner"} <= set(zippy_tf.export.__all__)
    assert {"traverse", "AnalyticCost"} <= set(zippy_tf.search.__all__)
    assert {"load", "build_model"} <= set(zippy_tf.presets.__all__)
    with pytest.raises(AttributeError):
        zippy_tf.keypoints.NoSuchThing


BLOCK_BY_SYS_MODULES = "import sys\nsys.modules['tensorflow'] = None\n"
BLOCK_BY_META_PATH = """import sys
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'tensorflow':
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
sys.meta_path.insert(0, NotInstalled())
"""


@pytest.mark.parametrize("block", [BLOCK_BY_SYS_MODULES, BLOCK_BY_META_PATH], ids=["sys.modules", "meta_path"])
def test_import_without_tensorflow_names_both_extras_in_one_line(block):
    from zippy_tf._compat import NO_TENSORFLOW

    proc = _python(block + "import zippy_tf")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == f"ImportError: {NO_TENSORFLOW}"
    assert "zippy-tf[cpu]" in NO_TENSORFLOW and "zippy-tf[gpu]" in NO_TENSORFLOW


def test_keras_seed_stream_takes_integer_bounds_and_draws_what_python_draws():
    """keras.utils.set_random_seed's layer seeds: the numbers Python's own stream draws, without the float bound
    Python 3.12 refuses (tf-keras#803); a seeded layer draws the same mask twice."""
    import random

    import numpy as np
    from tf_keras.src import backend

    from zippy_tf import keras
    from zippy_tf._compat import _SeedStream

    keras.utils.set_random_seed(5)
    stream = backend._SEED_GENERATOR.generator
    assert isinstance(stream, _SeedStream)
    expected = random.Random(5)
    assert [stream.randint(1, 1e9) for _ in range(3)] == [expected.randint(1, 10 ** 9) for _ in range(3)]

    def dropout_mask():
        keras.utils.set_random_seed(0)
        return keras.layers.Dropout(0.5)(np.ones((1, 256), "float32"), training=True).numpy()

    np.testing.assert_array_equal(dropout_mask(), dropout_mask())


@pytest.mark.parametrize("seed", [0, 5])
def test_seeded_layers_take_their_seeds_from_pythons_stream_in_build_order(seed):
    """After keras.utils.set_random_seed(seed) the k-th random initializer is seeded with the k-th
    random.Random(seed).randint(1, 10**9), on every Python version: a seed drawn any other way (an unseeded
    fallback, another draw on the stream) gives other weights here."""
    import random

    import numpy as np

    from zippy_tf import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.layers.Conv2D(2, 3, input_shape=(8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(4)])
    reference = random.Random(seed)
    for layer in (model.layers[0], model.layers[2]):
        expected = keras.initializers.GlorotUniform(seed=reference.randint(1, 10 ** 9))(tuple(layer.kernel.shape))
        np.testing.assert_array_equal(layer.kernel.numpy(), expected.numpy())


SEEDED_ZIPPYPOINT_DIGEST = """import hashlib, zippy_tf
from zippy_tf import keras
from zippy_tf.keypoints import zippypoint
keras.utils.set_random_seed(0)
digest = hashlib.sha256()
for weight in zippypoint().get_weights():
    digest.update(weight.tobytes())
print(digest.hexdigest())
"""


def test_a_seeded_zippypoint_gets_the_same_weights_under_any_hash_seed():
    """Two processes with different string hashing (set and dict-of-str order) build the same seeded network."""
    procs = [subprocess.Popen([sys.executable, "-c", SEEDED_ZIPPYPOINT_DIGEST], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**ENV, "PYTHONHASHSEED": str(k)})
             for k in (0, 1)]  # side by side: each spends most of its time importing TensorFlow
    (out0, err0), (out1, err1) = (proc.communicate(timeout=300) for proc in procs)
    assert [proc.returncode for proc in procs] == [0, 0], err0 + err1
    assert out0 == out1 and len(out0.strip()) == 64
