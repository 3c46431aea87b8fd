"""Test configuration: Keras 2 before any TensorFlow import, a clean Keras session per test, the `large` marker, and
paths no file can be written to or read from, for any user (tests run as root in CI, and root ignores permission
bits)."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

import zippy_tf  # noqa: E402,F401  (selects Keras 2 before any test imports TensorFlow)


def pytest_addoption(parser):
    parser.addoption("--run-large", action="store_true", help="run tests marked `large` (slow end-to-end runs)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-large"):
        return
    skip = pytest.mark.skip(reason="large: pass --run-large to run")
    for item in items:
        if "large" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _clear_keras_session():
    yield
    from zippy_tf._compat import keras

    keras.backend.clear_session()


ROOT = os.geteuid() == 0


@pytest.fixture
def readonly_folder(tmp_path):
    """A folder in which no file can be created: mode 555, or for root (who writes there anyway) /proc, which
    refuses new files to everyone."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    return "/proc" if ROOT else str(folder)


@pytest.fixture
def unreadable_file(tmp_path):
    """A file that cannot be read: mode 000, or for root (who reads it anyway) another process's memory, which
    /proc refuses to read."""
    path = tmp_path / "unreadable"
    path.write_text("secret")
    path.chmod(0)
    return "/proc/1/mem" if ROOT else str(path)


def calibrate_batch_norm(model, images):
    """Sets every BatchNorm's moving statistics to those of ``images`` (one training-mode pass, momentum 0), so
    an untrained network has realistic activation scales: binary layers then see signs that are not all ±0."""
    from zippy_tf._compat import keras

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0
    model(images, training=True)
    for bn, momentum in zip(bns, saved):
        bn.momentum = momentum
    return model


@pytest.fixture
def photos():
    """Bundled photographs at a small test resolution (64 x 96), float32 [0, 255] BGR."""
    from zippy_tf.data.photos import calibration_images

    return calibration_images(64, 96, 4)
