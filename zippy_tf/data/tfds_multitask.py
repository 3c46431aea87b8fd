"""tensorflow-datasets builders for NYUD-MT and PASCAL-MT, read from a manual directory by the zippy-tf readers.

Usage::

    builder = NyudMultiTask(data_dir="~/tensorflow_datasets")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="path/to/NYUD_MT"))
    train = builder.as_dataset(split="train")  # and split="val", the layout's own split names

Every example is a dict {"id", "image", task: label} in the label conventions of :mod:`zippy_tf.data.multitask`
(image uint8 RGB; semseg / human_parts uint8 (H, W); depth, edge, sal float32 (H, W); normals float32 (H, W, 3));
the label maps are stored zlib-compressed. The generated NYUD-MT-layout sets
(:func:`zippy_tf.data.multitask_generate.write_nyud_like`) build with :class:`NyudMultiTask` too.
"""

import numpy as np
import tensorflow_datasets as tfds

from zippy_tf.data.multitask import DATASET_TASKS, load_multitask

_LABELS = {
    "semseg": ((None, None), np.uint8),
    "human_parts": ((None, None), np.uint8),
    "depth": ((None, None), np.float32),
    "edge": ((None, None), np.float32),
    "sal": ((None, None), np.float32),
    "normals": ((None, None, 3), np.float32),
}


class _MultiTaskBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """One builder per data set: ``DATASET`` names it, its tasks come from the task table."""

    DATASET = None
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        labels = {task: tfds.features.Tensor(shape=shape, dtype=dtype, encoding=tfds.features.Encoding.ZLIB)
                  for task, (shape, dtype) in _LABELS.items() if task in DATASET_TASKS[self.DATASET]}
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Text(),
                "image": tfds.features.Image(shape=(None, None, 3)),
                **labels,
            }),
            homepage="https://github.com/menelaoskanakis/RCM",
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(dl_manager.manual_dir, split) for split in ("train", "val")}

    def _generate_examples(self, root, split):
        for example in load_multitask(str(root), self.DATASET, split, DATASET_TASKS[self.DATASET]):
            yield example["id"], example


class NyudMultiTask(_MultiTaskBuilder):
    """NYUD-MT (NYUD-v2 with edge, 41-class semseg, normals and depth): 795 train / 654 val images.

    References:
        Silberman et al., "Indoor Segmentation and Support Inference from RGBD Images", ECCV 2012;
        the NYUD_MT archive of the ASTMT / RCM code, https://github.com/facebookresearch/astmt
    """

    DATASET = "nyud"
    RELEASE_NOTES = {"1.0.0": "The NYUD_MT layout: gt_sets/{train,val}.txt with edge, semseg, normals, depth."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download and extract NYUD_MT.tgz (linked from https://github.com/facebookresearch/astmt) and pass the "
        "extracted folder as manual_dir; zippy_tf.data.multitask_generate.write_nyud_like writes a generated "
        "stand-in."
    )


class PascalMultiTask(_MultiTaskBuilder):
    """PASCAL-MT (PASCAL-Context with edge, 21-class semseg, human parts, distilled normals and saliency):
    4,998 train / 5,105 val images.

    References:
        Mottaghi et al., "The Role of Context for Object Detection and Semantic Segmentation in the Wild",
        CVPR 2014; Chen et al., "Detect What You Can", CVPR 2014 (PASCAL-Part); the PASCAL_MT archive of the
        ASTMT / RCM code, https://github.com/facebookresearch/astmt
    """

    DATASET = "pascal"
    RELEASE_NOTES = {"1.0.0": "The PASCAL_MT layout: ImageSets/Context/{train,val}.txt with edge, semseg, "
                              "human_parts, normals, sal."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download and extract PASCAL_MT.tgz (linked from https://github.com/facebookresearch/astmt) and pass the "
        "extracted folder as manual_dir."
    )


__all__ = ["NyudMultiTask", "PascalMultiTask"]
