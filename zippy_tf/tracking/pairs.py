"""Template / search training pairs, sampled from sequences the way Ocean and LightTrack (and so E.T.Track) do.

A pair is two frames of one sequence at most ``frame_range`` apart. Both crops are cut around the target with
the tracker's own geometry (:mod:`zippy_tf.tracking.crops`): the template region has side
√((w+p)(h+p)), p = (w+h)/2, resized to ``template_size``; the search region is that side × search/template
around the target in the second frame. Augmentation is the reference's shift and per-axis scale jitter: the
template by U(−4, 4) px and 1 ± U(0.05), the search region by U(−64, 64) px and 1 ± U(0.18), so the target is
not always at the centre of the search crop (else the network would learn a centre prior).
"""

import functools

import numpy as np

from zippy_tf.errors import UserError
from zippy_tf.tracking.crops import context_size, crop_and_resize, image_to_crop
from zippy_tf.tracking.datasets import read_image


# Pairs revisit the same frames often; a small cache saves most JPEG decoding on small data sets.
_read_image = functools.lru_cache(maxsize=256)(read_image)


def _jittered_crop(rng, image, box, region_side, out_size, shift, scale):
    """Crop of ``image`` around ``box`` with shift (in output pixels) and per-axis scale jitter.

    Returns (crop as float32 RGB, target box x1, y1, x2, y2 in crop pixels).
    """
    x, y, w, h = box
    size = region_side * (1 + rng.uniform(-scale, scale, 2))
    center = np.array([x + w / 2, y + h / 2]) + rng.uniform(-shift, shift, 2) * size / out_size
    pad_colour = image.reshape(-1, 3).mean(axis=0)
    crop = crop_and_resize(image, center, size, out_size, pad_colour)
    corners = image_to_crop(np.array([[x, y], [x + w, y + h]]), center, size, out_size)
    return crop[..., ::-1].astype(np.float32), corners.reshape(4).astype(np.float32)


def sample_pair(rng, sequences, *, template_size=127, search_size=256, frame_range=100, context_amount=0.5,
                template_shift=4, template_scale=0.05, search_shift=64, search_scale=0.18):
    """One random pair: ({"template": (T, T, 3), "search": (S, S, 3)} float32 RGB in [0, 255], box (4,)).

    ``box`` is the target's x1, y1, x2, y2 in search-crop pixels.
    """
    sequence = sequences[rng.integers(len(sequences))]
    valid = np.flatnonzero(np.all(np.isfinite(sequence.boxes), axis=1))
    first = rng.choice(valid)
    near = valid[np.abs(valid - first) <= frame_range]
    second = rng.choice(near)
    boxes = sequence.boxes
    template, _ = _jittered_crop(
        rng, _read_image(sequence.frames[first]), boxes[first], context_size(*boxes[first][2:], context_amount),
        template_size, template_shift, template_scale,
    )
    search_side = context_size(*boxes[second][2:], context_amount) * search_size / template_size
    search, box = _jittered_crop(
        rng, _read_image(sequence.frames[second]), boxes[second], search_side, search_size, search_shift, search_scale,
    )
    return {"template": template, "search": search}, box


def pair_dataset(sequences, *, batch_size, seed, template_size=127, search_size=256, frame_range=100,
                 context_amount=0.5, template_shift=4, template_scale=0.05, search_shift=64, search_scale=0.18):
    """An endless, seeded ``tf.data.Dataset`` of batched pairs.

    Yields ({"template": (B, T, T, 3), "search": (B, S, S, 3)} float32 RGB in [0, 255], {"box": (B, 4)} float32
    (x1, y1, x2, y2 of the target in search-crop pixels; an elongated target near the shift bound may reach past
    the crop's edge, as in the reference). Use ``steps_per_epoch`` with ``model.fit``.
    """
    from zippy_tf._compat import tf

    usable = [s for s in sequences if np.all(np.isfinite(s.boxes), axis=1).any()]
    if not usable:
        raise UserError("no sequence has a visible target; check the data set's ground truth")
    if batch_size < 1:
        raise UserError(f"batch size {batch_size} must be at least 1")
    options = dict(template_size=template_size, search_size=search_size, frame_range=frame_range,
                   context_amount=context_amount, template_shift=template_shift, template_scale=template_scale,
                   search_shift=search_shift, search_scale=search_scale)

    def generate():
        rng = np.random.default_rng(seed)
        while True:
            images, box = sample_pair(rng, usable, **options)
            yield images, {"box": box}

    signature = (
        {"template": tf.TensorSpec((template_size, template_size, 3), tf.float32),
         "search": tf.TensorSpec((search_size, search_size, 3), tf.float32)},
        {"box": tf.TensorSpec((4,), tf.float32)},
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


__all__ = ["pair_dataset", "sample_pair"]
