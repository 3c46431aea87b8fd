"""Tracking tests cache their exported trackers in a temporary folder (shared by the session), never in ~/.cache."""

import pytest

from zippy_tf.tracking.export import CACHE_ENV


@pytest.fixture(autouse=True, scope="session")
def tracker_cache(tmp_path_factory):
    """The folder ``ZIPPY_TF_CACHE`` names during the tests (subprocesses inherit it)."""
    patch = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("zippy_tf_cache")
    patch.setenv(CACHE_ENV, str(folder))
    yield folder
    patch.undo()
