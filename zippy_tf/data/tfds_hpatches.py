"""A tensorflow-datasets builder for HPatches sequences, read from a manual directory.

Usage::

    builder = HpatchesSequences(data_dir="~/tensorflow_datasets")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="path/to/hpatches-sequences-release"))
    pairs = builder.as_dataset(split="test")

Images are stored as tfds stores every image, in RGB order: reverse the channels (``image[..., ::-1]``) before
giving them to the BGR networks of zippy-tf.
"""

import numpy as np
import tensorflow_datasets as tfds

from zippy_tf.data.hpatches import load_hpatches


class HpatchesSequences(tfds.core.GeneratorBasedBuilder):
    """HPatches sequences as (image 1, image k, homography) pairs at their native resolution.

    References:
        Balntas et al., "HPatches: A benchmark and evaluation of handcrafted and learned local descriptors",
        CVPR 2017, https://arxiv.org/abs/1704.05939
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Pairs of image 1 with images 2-6 of every i_* / v_* sequence."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download and extract hpatches-sequences-release.tar.gz "
        "(https://github.com/hpatches/hpatches-dataset) and pass the extracted folder as manual_dir; "
        "zippy_tf.data.hpatches.write_hpatches_like writes a generated stand-in."
    )

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "sequence": tfds.features.Text(),
                "index": np.int32,
                "image1": tfds.features.Image(shape=(None, None, 3)),
                "image2": tfds.features.Image(shape=(None, None, 3)),
                "homography": tfds.features.Tensor(shape=(3, 3), dtype=np.float64),
            }),
            homepage="https://github.com/hpatches/hpatches-dataset",
        )

    def _split_generators(self, dl_manager):
        return {"test": self._generate_examples(dl_manager.manual_dir)}

    def _generate_examples(self, root):
        for pair in load_hpatches(str(root), resolution=None):
            yield f"{pair['sequence']}_{pair['index']}", {
                "sequence": pair["sequence"],
                "index": pair["index"],
                "image1": pair["image1"][..., ::-1].copy(),
                "image2": pair["image2"][..., ::-1].copy(),
                "homography": pair["homography"],
            }


__all__ = ["HpatchesSequences"]
