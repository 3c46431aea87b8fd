"""The NYUD-MT and PASCAL-MT tfds builders store what the readers read."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from multitask_layouts import write_tiny_pascal

from zippy_tf.data.multitask import DATASET_TASKS, load_multitask
from zippy_tf.data.multitask_generate import write_nyud_like
from zippy_tf.data.tfds_multitask import NyudMultiTask, PascalMultiTask


def _build(builder_class, root, tmp_path):
    builder = builder_class(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=root))
    return builder


@pytest.mark.parametrize("name", ["nyud", "pascal"])
def test_builders_store_the_readers_examples(name, tmp_path):
    if name == "nyud":
        root = write_nyud_like(str(tmp_path / "nyud"), 3, 2, size=(12, 16), seed=0)
        builder = _build(NyudMultiTask, root, tmp_path)
    else:
        root, _, _ = write_tiny_pascal(str(tmp_path / "pascal"))
        builder = _build(PascalMultiTask, root, tmp_path)
    tasks = DATASET_TASKS[name]
    for split in ("train", "val"):
        stored = {e["id"].decode(): e for e in tfds.as_numpy(builder.as_dataset(split=split))}
        expected = list(load_multitask(root, name, split, tasks))
        assert sorted(stored) == sorted(e["id"] for e in expected)
        for example in expected:
            for key in ("image",) + tasks:
                value = stored[example["id"]][key]
                assert value.dtype == example[key].dtype
                np.testing.assert_array_equal(value, example[key])
