"""The tf.data input pipeline of dense multi-task training and evaluation, with the RCM augmentation.

Training augmentation, in the reference's order:

1. random scaling by a factor from :data:`SCALES` (bilinear for the image, normals and depth; nearest for the
   class, edge and saliency maps); depth values are divided by the factor, since a magnified view is closer;
2. padding (bottom and right) up to the crop size, with :data:`PAD_COLOUR` for the image and :data:`PAD_VALUES`
   for the labels, then a random crop;
3. horizontal flip with p = 0.5, negating the x component of the normals;
4. ImageNet mean / std normalisation of the RGB image.

Evaluation only pads (bottom and right) to the crop size, so a prediction is cropped back with
``prediction[:height, :width]``; the padded pixels carry the ignore values every metric skips.

Batched elements are ``(image, labels)`` (or ``(image, labels, info)`` with ``with_info=True``):

- image: (B, H, W, 3) float32, RGB, ImageNet-normalised;
- labels: {task: tensor}: semseg / human_parts (B, H, W) int32 (255 = ignore); edge, sal, depth (B, H, W, 1)
  float32; normals (B, H, W, 3) float32;
- info: {"id": (B,) string, "size": (B, 2) int32 height and width before padding}.

References:
    RCM ``augmentations/augmentations.py`` (https://github.com/menelaoskanakis/RCM); Kanakis et al., ECCV 2020,
    https://arxiv.org/abs/2007.12540
"""

import numpy as np

from zippy_tf._compat import tf
from zippy_tf.data.multitask import check_split, check_tasks, read_example
from zippy_tf.errors import UserError

SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
PAD_COLOUR = (123.0, 116.0, 103.0)  # the ImageNet mean colour, RGB in [0, 255]
PAD_VALUES = {"semseg": 255.0, "human_parts": 255.0, "edge": 255.0, "sal": 255.0, "normals": 0.0, "depth": 0.0}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BILINEAR_TASKS = ("normals", "depth")
CLASS_TASKS = ("semseg", "human_parts")


def normalize_image(image):
    """RGB in [0, 255] → ImageNet-normalised float32."""
    return (tf.cast(image, tf.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


def rescale(image, labels, scale):
    """Resizes an example by ``scale`` (sizes rounded as OpenCV's ``fx``/``fy`` resize): bilinear for the image,
    normals and depth, nearest for the rest; depth values are divided by ``scale``.

    ``image`` is (H, W, 3) float32 and every label (H, W, C) float32, as inside the pipeline.
    """
    scale = tf.cast(scale, tf.float32)
    size = tf.cast(tf.round(tf.cast(tf.shape(image)[:2], tf.float32) * scale), tf.int32)
    image = tf.image.resize(image, size, method="bilinear")
    out = {}
    for task, label in labels.items():
        method = "bilinear" if task in BILINEAR_TASKS else "nearest"
        out[task] = tf.image.resize(label, size, method=method)
    if "depth" in out:
        out["depth"] = out["depth"] / scale
    return image, out


def pad_to(image, labels, size):
    """Pads at the bottom and right to at least ``size`` (height, width), with the pad values of the module."""
    shape = tf.shape(image)
    pads = [[0, tf.maximum(size[0] - shape[0], 0)], [0, tf.maximum(size[1] - shape[1], 0)], [0, 0]]
    channels = [tf.pad(image[..., c], pads[:2], constant_values=PAD_COLOUR[c]) for c in range(3)]
    labels = {task: tf.pad(label, pads, constant_values=PAD_VALUES[task]) for task, label in labels.items()}
    return tf.stack(channels, axis=-1), labels


def crop(image, labels, offset, size):
    """The (height, width) = ``size`` window at ``offset`` (top, left) of every map."""
    window = lambda x: x[offset[0]:offset[0] + size[0], offset[1]:offset[1] + size[1]]  # noqa: E731
    return window(image), {task: window(label) for task, label in labels.items()}


def hflip(image, labels):
    """Mirrors an example left-right; the normals' x component changes sign."""
    labels = {task: label[:, ::-1] for task, label in labels.items()}
    if "normals" in labels:
        labels["normals"] = labels["normals"] * tf.constant([-1.0, 1.0, 1.0])
    return image[:, ::-1], labels


def augment_example(image, labels, crop_size, seed):
    """The training augmentation (scale, pad + random crop, flip), its draws fixed by ``seed`` (shape (2,))."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    index = tf.random.stateless_uniform([], seeds[0], 0, len(SCALES), dtype=tf.int32)
    image, labels = rescale(image, labels, tf.gather(SCALES, index))
    image, labels = pad_to(image, labels, crop_size)
    shape = tf.shape(image)
    top = tf.random.stateless_uniform([], seeds[1], 0, shape[0] - crop_size[0] + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seeds[2], 0, shape[1] - crop_size[1] + 1, dtype=tf.int32)
    image, labels = crop(image, labels, (top, left), crop_size)
    return tf.cond(tf.random.stateless_uniform([], seeds[3]) < 0.5,
                   lambda: hflip(image, labels), lambda: (image, labels))


def _channels(task):
    return 3 if task == "normals" else 1


def _finish(image, labels, size):
    """Static shapes, normalised image and the output dtypes of the module docstring."""
    image = tf.ensure_shape(image, (size[0], size[1], 3) if size else (None, None, 3))
    out = {}
    for task, label in labels.items():
        label = tf.ensure_shape(label, (size[0], size[1], _channels(task)) if size else (None, None, _channels(task)))
        out[task] = tf.cast(label[..., 0], tf.int32) if task in CLASS_TASKS else label
    return normalize_image(image), out


def _check_size(size, name):
    if size is None:
        return None
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise UserError(f"{name}={size} must be (height, width) in pixels")
    return size


def _subset(split_ids, ids, split):
    if ids is None:
        return split_ids
    wanted = set(ids)
    unknown = sorted(wanted - set(split_ids))
    if unknown:
        raise UserError(f"ids holds {len(unknown)} id(s) not in split {split!r}, e.g. {unknown[0]!r}; pass ids of "
                        "that split")
    if not wanted:
        raise UserError("ids is empty; pass at least one example id, or ids=None for the whole split")
    return [i for i in split_ids if i in wanted]


def multitask_dataset(root, dataset, split, tasks, *, crop_size=None, augment=False, batch_size=8,
                      shuffle=False, seed=0, num_shards=1, shard_index=0, with_info=False, ids=None):
    """A batched ``tf.data.Dataset`` of one split of a NYUD-MT / PASCAL-MT folder (see the module docstring).

    Args:
        root: the data set folder. dataset: "nyud" or "pascal". split: "train" or "val".
        tasks: the task names whose labels to load.
        crop_size: (height, width) of the training crops and of evaluation's padding; None keeps every image at
            its own size (then all images must share one size when batch_size > 1). For evaluation pick at least
            the largest image (the reference pads PASCAL to 512x512, NYUD to 425x560): a larger image is cut at
            the bottom and right, and ``info["size"]`` still reports its full size.
        augment: the training augmentation (needs crop_size); otherwise only padding to crop_size.
        batch_size: examples per batch; augmented (training) datasets drop the last incomplete batch.
        shuffle: reshuffle the examples each epoch.
        seed: fixes the order and every augmentation draw.
        num_shards, shard_index: this worker's share of the examples (every num_shards-th from shard_index).
        with_info: add a third element {"id", "size"}.
        ids: only these examples of the split (e.g. a label fraction's subset), in the split's order; None: all.

    With human_parts as the only task, augmented data skip images without a person (all 255), as the reference
    trains parts alone. Every file is checked before the dataset is returned.
    """
    tasks = check_tasks(dataset, tasks)
    crop_size = _check_size(crop_size, "crop_size")
    if augment and crop_size is None:
        raise UserError("augment=True needs crop_size=(height, width) for its random crops")
    if not 0 <= shard_index < num_shards:
        raise UserError(f"shard_index={shard_index} must lie in 0..num_shards-1 (num_shards={num_shards})")
    ids = _subset(check_split(root, dataset, split, tasks), ids, split)
    if augment and len(ids) // num_shards < batch_size:
        raise UserError(f"split {split!r} has {len(ids)} examples, too few for {num_shards} shard(s) of batches of "
                        f"{batch_size}; lower batch_size")

    def load(example_id):
        example = read_example(root, dataset, example_id.decode(), tasks)
        labels = [example[task].reshape(example[task].shape[:2] + (-1,)).astype(np.float32) for task in tasks]
        return [example["image"].astype(np.float32)] + labels

    def prepare(example_id, draw):
        arrays = tf.numpy_function(load, [example_id], [tf.float32] * (1 + len(tasks)))
        image = tf.ensure_shape(arrays[0], (None, None, 3))
        labels = {task: tf.ensure_shape(a, (None, None, _channels(task))) for task, a in zip(tasks, arrays[1:])}
        size = tf.shape(image)[:2]
        if augment:
            seed_pair = tf.stack([draw, tf.constant(seed, tf.int64)])
            image, labels = augment_example(image, labels, crop_size, seed_pair)
        elif crop_size is not None:
            image, labels = pad_to(image, labels, crop_size)
            image, labels = crop(image, labels, (0, 0), crop_size)  # an image larger than crop_size is cut
        image, labels = _finish(image, labels, crop_size)
        return (image, labels, {"id": example_id, "size": size}) if with_info else (image, labels)

    examples = tf.data.Dataset.from_tensor_slices(ids)
    if num_shards > 1:
        examples = examples.shard(num_shards, shard_index)
    if shuffle:
        examples = examples.shuffle(len(ids), seed=seed, reshuffle_each_iteration=True)
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    data = tf.data.Dataset.zip((examples, draws)).map(prepare, num_parallel_calls=tf.data.AUTOTUNE,
                                                      deterministic=True)
    if augment and tasks == ("human_parts",):
        data = data.filter(lambda image, labels, *info: tf.reduce_any(labels["human_parts"] != 255))
    data = data.batch(batch_size, drop_remainder=augment).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options)


__all__ = [
    "BILINEAR_TASKS", "CLASS_TASKS", "IMAGENET_MEAN", "IMAGENET_STD", "PAD_COLOUR", "PAD_VALUES", "SCALES",
    "augment_example", "crop", "hflip", "multitask_dataset", "normalize_image", "pad_to", "rescale",
]
