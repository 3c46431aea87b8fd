"""The self-supervised stream of Composite Learning: two views per image with a fixed crop offset, then MoCo v2's
per-view distortions (thesis §3.4.1 "Image cropping"), in TensorFlow so that it runs inside ``tf.data``.

Dense tasks see many objects per image, so two random crops can show different things; CompL instead takes two
crops of a constant size a constant distance apart. Images are RGB in [0, 255] (uint8 or float); views are
ImageNet-normalised at the end, as the supervised pipeline's images
(:func:`zippy_tf.data.multitask_pipeline.normalize_image`).
"""

import dataclasses
import os

import numpy as np

from zippy_tf._compat import tf
from zippy_tf.data.image_folder import read_image
from zippy_tf.data.multitask import example_files
from zippy_tf.data.multitask_pipeline import normalize_image
from zippy_tf.errors import UserError
from zippy_tf.multitask.ssl import CONTRASTIVE, ROTATIONS, check_ssl, rotate

BLUR_RADIUS = 6  # taps either side of the blur kernel: 3σ at the largest σ


@dataclasses.dataclass(frozen=True)
class ViewConfig:
    """How the two SSL views of an image are cut and distorted.

    The image is upscaled by ``scale``; view 1 is a ``crop_size`` crop at a random position, view 2 the crop
    ``offset`` pixels further down and right (both in upscaled pixels); both are resized to ``output_size``.
    The default is the NYUD variant for any input size (upscale 1.5×, crops of the original size, offset 8 px);
    :data:`VIEW_PRESETS` holds the reference's settings.

    Attributes:
        crop_size: (height, width) of the crops; None: the image's own size.
        offset: distance between the two crops on both axes, in pixels.
        scale: upscaling of the image before cropping.
        output_size: (height, width) of the views; None: ``crop_size``. Must equal the supervised images' size.
        strength: colour-distortion strength s (jitter 0.8s brightness/contrast/saturation, 0.2s hue, p 0.8;
            greyscale p 0.2): 0.5 is MoCo v2's ColorJitter(0.4, 0.4, 0.4, 0.1).
        blur_probability, blur_sigma: Gaussian blur with σ uniform in ``blur_sigma`` (pixels), applied with this
            probability.
        flip_probability: horizontal flip probability, per view.
        normalize: ImageNet mean/std normalisation of the views (False: RGB in [0, 255]).
    """

    crop_size: tuple = None
    offset: int = 8
    scale: float = 1.5
    output_size: tuple = None
    strength: float = 0.5
    blur_probability: float = 0.5
    blur_sigma: tuple = (0.1, 2.0)
    flip_probability: float = 0.5
    normalize: bool = True

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config):
        unknown = sorted(set(config) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UserError(f"unknown view settings {', '.join(unknown)}; use "
                            f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        sizes = {k: tuple(config[k]) for k in ("crop_size", "output_size", "blur_sigma") if config.get(k) is not None}
        return cls(**{**config, **sizes})

    def sizes(self, image_size):
        """(scaled image size, crop size, output size) for images of ``image_size`` (height, width)."""
        scaled = (int(round(image_size[0] * self.scale)), int(round(image_size[1] * self.scale)))
        crop = tuple(int(s) for s in (self.crop_size or image_size))
        return scaled, crop, tuple(int(s) for s in (self.output_size or crop))

    def check(self, image_size, ssl="moco"):
        """Raises :class:`UserError` if the crops do not fit images of ``image_size``, or if ``ssl`` is "densecl"
        and the two views do not overlap (its dense positives need shared content)."""
        scaled, crop, _ = self.sizes(image_size)
        if crop[0] + self.offset > scaled[0] or crop[1] + self.offset > scaled[1]:
            raise UserError(f"crop_size {crop} plus offset {self.offset} does not fit the {scaled} upscaled image; "
                            "pass a smaller crop_size or offset, or a larger scale")
        if ssl == "densecl" and self.offset >= min(crop):
            raise UserError(f"DenseCL views do not overlap: offset {self.offset} >= crop side {min(crop)}; "
                            f"pass an offset below {min(crop)}")


VIEW_PRESETS = {
    "nyud": ViewConfig(),  # 425 × 560 images: crops of 283 × 373 original pixels, 8 px apart in the upscaled image
    "voc": ViewConfig(crop_size=(384, 384), offset=32, scale=1.0, output_size=(512, 512)),  # 512 × 512 images
}


def offset_crop_pair(image, config, seed):
    """The two views (before distortion) of one (H, W, 3) image: crops ``config.offset`` pixels apart.

    ``seed``: (2,) integer tensor for the stateless random position.
    """
    scaled, crop, output = config.sizes(image.shape[:2])
    if scaled != tuple(image.shape[:2]):
        image = tf.image.resize(image, scaled)
    choices = [float(s - c - config.offset + 1) for s, c in zip(scaled, crop)]  # top-left rows and columns
    positions = tf.cast(tf.random.stateless_uniform((2,), seed) * choices, tf.int32)
    first = image[positions[0]:positions[0] + crop[0], positions[1]:positions[1] + crop[1]]
    moved = positions + config.offset
    second = image[moved[0]:moved[0] + crop[0], moved[1]:moved[1] + crop[1]]
    views = [tf.ensure_shape(v, crop + (image.shape[-1],)) for v in (first, second)]
    return [tf.image.resize(v, output) if output != crop else v for v in views]


def _maybe(apply, probability, seed, image):
    chosen = tf.random.stateless_uniform((), seed) < probability
    return tf.cond(chosen, lambda: apply(image), lambda: image)


def colour_distortion(image, strength, seed):
    """SimCLR's colour distortion of a [0, 1] image: jitter (p 0.8) in a fixed order, then greyscale (p 0.2)."""
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 6))
    jitter = 0.8 * strength

    def jitter_colours(x):
        x = x * tf.random.stateless_uniform((), seeds[0], 1.0 - jitter, 1.0 + jitter)
        x = tf.image.stateless_random_contrast(x, 1.0 - jitter, 1.0 + jitter, seeds[1])
        x = tf.image.stateless_random_saturation(x, 1.0 - jitter, 1.0 + jitter, seeds[2])
        return tf.clip_by_value(tf.image.stateless_random_hue(x, min(0.2 * strength, 0.5), seeds[3]), 0.0, 1.0)

    image = _maybe(jitter_colours, 0.8, seeds[4], image)
    return _maybe(lambda x: tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(x)), 0.2, seeds[5], image)


def gaussian_blur(image, sigma):
    """Separable Gaussian blur of an (H, W, C) image with standard deviation ``sigma`` pixels (edges reflected)."""
    taps = tf.range(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / sigma))
    kernel /= tf.reduce_sum(kernel)
    channels = image.shape[-1]
    padded = tf.pad(image[None], [[0, 0], [BLUR_RADIUS] * 2, [BLUR_RADIUS] * 2, [0, 0]], mode="REFLECT")
    rows = tf.tile(tf.reshape(kernel, (-1, 1, 1, 1)), (1, 1, channels, 1))
    blurred = tf.nn.depthwise_conv2d(padded, rows, (1, 1, 1, 1), "VALID")
    blurred = tf.nn.depthwise_conv2d(blurred, tf.transpose(rows, (1, 0, 2, 3)), (1, 1, 1, 1), "VALID")
    return blurred[0]


def distort_view(view, config, seed):
    """MoCo v2's per-view distortions of one [0, 255] view: colour distortion, Gaussian blur, horizontal flip."""
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
    if config.strength > 0:  # strength 0: no colour distortion at all (greyscale included)
        view = colour_distortion(view / 255.0, config.strength, seeds[0]) * 255.0
    sigma = tf.random.stateless_uniform((), seeds[1], *config.blur_sigma)
    view = _maybe(lambda x: gaussian_blur(x, sigma), config.blur_probability, seeds[2], view)
    return _maybe(tf.image.flip_left_right, config.flip_probability, seeds[3], view)


def _check_views_ssl(ssl):
    if check_ssl(ssl) == "none":
        raise UserError("ssl 'none' has no views; choose rotation, moco or densecl")


def ssl_views(ssl, image, index, config, seed):
    """One SSL sample of ``image`` (H, W, 3) with sample id ``index``: the dict
    :class:`~zippy_tf.multitask.compl.CompLModel` reads.

    - "moco", "densecl": ``{"query": view 1, "key": view 2, "index": index}``, each view distorted on its own;
    - "rotation": ``{"query": view 1 turned by a random multiple of 90°, "rotation": quarter turns (0–3)}``.
    """
    _check_views_ssl(ssl)
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
    views = offset_crop_pair(tf.cast(image, tf.float32), config, seeds[0])
    finish = normalize_image if config.normalize else tf.identity
    query = finish(distort_view(views[0], config, seeds[1]))
    if ssl in CONTRASTIVE:
        key = finish(distort_view(views[1], config, seeds[2]))
        return {"query": query, "key": key, "index": tf.cast(index, tf.int32)}
    turns = tf.random.stateless_uniform((), seeds[3], 0, ROTATIONS, dtype=tf.int32)
    return {"query": rotate(query[None], turns[None])[0], "rotation": turns}


def folder_images(root, dataset, ids, size=None):
    """The images of ``ids`` in a NYUD-MT / PASCAL-MT folder, in order, as a dataset of (H, W, 3) uint8 RGB: the
    input of :func:`ssl_dataset` (an image's sample id is its position in ``ids``).

    ``size``: (height, width) to resize every image to (area interpolation); None: the first image's size, which
    every image must have.
    """
    paths = [example_files(root, dataset, example_id, ())[0] for example_id in ids]
    if not paths:
        raise UserError("no image ids for the SSL stream; pass a non-empty split")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise UserError(f"image {missing[0]!r} is missing; restore it or remove its id from the split")
    target = (None, None) if size is None else tuple(int(s) for s in size)
    size = tuple(int(s) for s in (size or read_image(paths[0]).shape[:2]))

    def load(path):
        image = read_image(path.decode(), *target)
        if image.shape[:2] != size:
            raise UserError(f"image {path.decode()!r} is {image.shape[0]}x{image.shape[1]}, not {size[0]}x{size[1]}; "
                            "pass size=(height, width) to resize the SSL images")
        return np.ascontiguousarray(image[..., ::-1])

    return tf.data.Dataset.from_tensor_slices(paths).map(
        lambda path: tf.ensure_shape(tf.numpy_function(load, [path], tf.uint8), size + (3,)))


def ssl_dataset(images, ssl, *, batch_size, views=None, seed=0, shuffle=True):
    """The endless, batched SSL stream over ``images``, a finite ``tf.data.Dataset`` of (H, W, 3) RGB images in
    [0, 255].

    Each image's sample id (its position in ``images``) indexes the memory bank, so the bank size is the
    number of images. Batches have ``batch_size`` samples (the last partial batch of an epoch is dropped).
    """
    _check_views_ssl(ssl)
    count = int(images.cardinality())
    if count <= 0:
        raise UserError("the SSL image dataset is empty or of unknown size; pass a finite, non-empty dataset")
    if batch_size > count:
        raise UserError(f"batch_size {batch_size} is larger than the {count} SSL images; pass a smaller batch_size")
    size = tuple(images.element_spec.shape[:2])
    if None in size:
        raise UserError("SSL images have no static size; resize them to one size (the supervised images') first")
    config = views or ViewConfig()
    config.check(size, ssl)
    data = tf.data.Dataset.zip((images, tf.data.Dataset.range(count)))
    if shuffle:
        data = data.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    data = tf.data.Dataset.zip((data.repeat(), tf.data.Dataset.random(seed=seed).batch(2)))
    data = data.map(lambda sample, draw: ssl_views(ssl, sample[0], sample[1], config, draw),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return data.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def joint_dataset(supervised, ssl):
    """The joint stream ``((images, labels), ssl_batch)``: a supervised and an SSL batch drawn independently."""
    return tf.data.Dataset.zip((supervised, ssl))


__all__ = [
    "VIEW_PRESETS", "ViewConfig", "colour_distortion", "distort_view", "folder_images", "gaussian_blur",
    "joint_dataset",
    "offset_crop_pair", "ssl_dataset", "ssl_views",
]
