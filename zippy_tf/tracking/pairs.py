"""Template / search training pairs, sampled from sequences the way Ocean and LightTrack (and so E.T.Track) do.

A pair is two frames of one sequence at most ``frame_range`` apart. Both crops are cut around the target with
the tracker's own geometry (:mod:`zippy_tf.tracking.crops`): the template region has side
√((w+p)(h+p)), p = (w+h)/2, resized to ``template_size``; the search region is that side × search/template
around the target in the second frame. Augmentation is the reference's shift and per-axis scale jitter: the
template by U(−4, 4) px and 1 ± U(0.05), the search region by U(−64, 64) px and 1 ± U(0.18), so the target is
not always at the centre of the search crop (else the network would learn a centre prior).

Negative pairs (our addition, off by default; SiamRPN++ and DaSiamRPN train with them): the search crop is cut the
same way around the target of *another* sequence, and every cell of it is a negative. Trained on positive pairs
only, a network can score well by finding "an object near the centre" whatever the template shows; a negative
pair holds an object near the centre that is not the template's, so only matching the template lowers its loss.

Distractor pairs (our addition, off by default; DaSiamRPN's distractor-aware training): a positive pair whose search
crop is cut, with the same jitter, around one of the sequence's annotated look-alikes instead of the target
(``Sequence.distractors``; the generated sequences record theirs). The look-alike is then where the target usually
is, and the labels follow the target wherever it lies in the crop, or nowhere when it lies outside: the hard
negative of the same frame that foreign negative pairs do not show.
"""

import functools

import numpy as np

from zippy_tf.errors import UserError
from zippy_tf.tracking.crops import context_size, crop_and_resize, image_to_crop
from zippy_tf.tracking.datasets import read_image


TOO_FEW_FOR_NEGATIVES = ("negative pairs need at least two sequences with a visible target; add sequences or set "
                         "the negative fraction to 0")
NO_DISTRACTORS = ("distractor pairs need sequences that annotate distractors (the generated ones write "
                  "distractors_rect.txt); use such data or set the distractor fraction to 0")

# Pairs revisit the same frames often; a small cache saves most JPEG decoding on small data sets.
_read_image = functools.lru_cache(maxsize=256)(read_image)


def _jittered_region(rng, box, region_side, out_size, shift, scale, around=None):
    """The crop region around ``box`` (or around the box ``around``) with shift (in output pixels) and per-axis
    scale jitter: (centre, size, target box x1, y1, x2, y2 in crop pixels). Draws from ``rng``, reads no image."""
    x, y, w, h = box
    cx, cy, cw, ch = box if around is None else around
    size = region_side * (1 + rng.uniform(-scale, scale, 2))
    center = np.array([cx + cw / 2, cy + ch / 2]) + rng.uniform(-shift, shift, 2) * size / out_size
    corners = image_to_crop(np.array([[x, y], [x + w, y + h]]), center, size, out_size)
    return center, size, corners.reshape(4).astype(np.float32)


def _cut(path, center, size, out_size):
    """The crop of the frame ``path`` over a region of :func:`_jittered_region`, as float32 RGB."""
    image = _read_image(path)
    crop = crop_and_resize(image, center, size, out_size, image.reshape(-1, 3).mean(axis=0))
    return crop[..., ::-1].astype(np.float32)


def _visible(sequence):
    return np.flatnonzero(np.all(np.isfinite(sequence.boxes), axis=1))


def _has_distractors(sequence):
    return sequence.distractors is not None and sequence.distractors.size > 0


def draw_pair(rng, sequences, *, negative=False, distractor=False, template_size=127, search_size=256,
              frame_range=100, context_amount=0.5, template_shift=4, template_scale=0.05, search_shift=64,
              search_scale=0.18):
    """The random draws of one pair, without reading an image: ``{"template": region, "search": region, "box":
    (4,)}``, a region being (frame path, centre, size, output side); :func:`cut_pair` cuts the crops. Arguments
    as :func:`sample_pair`, which is the two together."""
    if negative and distractor:
        raise UserError("a pair is either negative or a distractor pair, not both")
    if distractor:
        sequences = [s for s in sequences if _has_distractors(s)]
        if not sequences:
            raise UserError(NO_DISTRACTORS)
    index = rng.integers(len(sequences))
    sequence = sequences[index]
    valid = _visible(sequence)
    first = rng.choice(valid)
    if negative:
        if len(sequences) < 2:
            raise UserError(TOO_FEW_FOR_NEGATIVES)
        searched = sequences[(index + rng.integers(1, len(sequences))) % len(sequences)]
        second = rng.choice(_visible(searched))
    else:
        searched = sequence
        second = rng.choice(valid[np.abs(valid - first) <= frame_range])
    boxes = sequence.boxes
    template_region = _jittered_region(rng, boxes[first], context_size(*boxes[first][2:], context_amount),
                                       template_size, template_shift, template_scale)[:2]
    box = searched.boxes[second]
    around = None
    if distractor:
        candidates = searched.distractors[second]
        candidates = candidates[np.all(np.isfinite(candidates), axis=1)]
        if len(candidates):
            around = candidates[rng.integers(len(candidates))]
    search_side = context_size(*box[2:], context_amount) * search_size / template_size
    *search_region, box = _jittered_region(rng, box, search_side, search_size, search_shift, search_scale, around)
    return {"template": (sequence.frames[first], *template_region, template_size),
            "search": (searched.frames[second], *search_region, search_size), "box": box}


def cut_pair(pair):
    """The crops ``{"template": (T, T, 3), "search": (S, S, 3)}`` (float32 RGB in [0, 255]) of a
    :func:`draw_pair`."""
    return {"template": _cut(*pair["template"]), "search": _cut(*pair["search"])}


def sample_pair(rng, sequences, *, negative=False, distractor=False, template_size=127, search_size=256,
                frame_range=100, context_amount=0.5, template_shift=4, template_scale=0.05, search_shift=64,
                search_scale=0.18):
    """One random pair: ({"template": (T, T, 3), "search": (S, S, 3)} float32 RGB in [0, 255], box (4,)).

    ``box`` is the x1, y1, x2, y2 in search-crop pixels of the target the search crop is cut around: the
    template's target, or with ``negative`` that of another sequence (a frame of which is the search crop). With
    ``distractor`` the crop is cut around one of the sequence's distractors and ``box`` is still the template's
    target, wherever it lies (possibly outside the crop).
    """
    pair = draw_pair(rng, sequences, negative=negative, distractor=distractor, template_size=template_size,
                     search_size=search_size, frame_range=frame_range, context_amount=context_amount,
                     template_shift=template_shift, template_scale=template_scale, search_shift=search_shift,
                     search_scale=search_scale)
    return cut_pair(pair), pair["box"]


def pair_dataset(sequences, *, batch_size, seed, negative_fraction=0.0, distractor_fraction=0.0, template_size=127,
                 search_size=256, frame_range=100, context_amount=0.5, template_shift=4, template_scale=0.05,
                 search_shift=64, search_scale=0.18):
    """An endless, seeded ``tf.data.Dataset`` of batched pairs.

    Yields ({"template": (B, T, T, 3), "search": (B, S, S, 3)} float32 RGB in [0, 255], {"box": (B, 4),
    "positive": (B,)} float32: x1, y1, x2, y2 of the target in search-crop pixels (an elongated target near the
    shift bound may reach past the crop's edge, as in the reference), and 1 for a positive pair, 0 for a negative
    one, which each pair is with probability ``negative_fraction`` (0 draws exactly the pairs it drew before negative
    pairs existed). A pair is a distractor pair (positive, see the module's docstring) with probability
    ``distractor_fraction`` (0 draws exactly the pairs drawn before distractor pairs existed). Use
    ``steps_per_epoch`` with ``model.fit``.
    """
    from zippy_tf._compat import tf

    usable = [s for s in sequences if _visible(s).size]
    if not usable:
        raise UserError("no sequence has a visible target; check the data set's ground truth")
    if batch_size < 1:
        raise UserError(f"batch size {batch_size} must be at least 1")
    if min(negative_fraction, distractor_fraction) < 0 or negative_fraction + distractor_fraction >= 1.0:
        raise UserError(f"negative fraction {negative_fraction} and distractor fraction {distractor_fraction} must be "
                        f"≥ 0 and sum to less than 1: some pairs must be plain positive ones")
    if negative_fraction and len(usable) < 2:
        raise UserError(TOO_FEW_FOR_NEGATIVES)
    if distractor_fraction and not any(_has_distractors(s) for s in usable):
        raise UserError(NO_DISTRACTORS)
    options = dict(template_size=template_size, search_size=search_size, frame_range=frame_range,
                   context_amount=context_amount, template_shift=template_shift, template_scale=template_scale,
                   search_shift=search_shift, search_scale=search_scale)

    def generate():  # the draws only, one rng stream: the same pairs whatever the decoding parallelism
        rng = np.random.default_rng(seed)
        while True:
            draw = rng.random() if negative_fraction or distractor_fraction else 1.0
            negative = draw < negative_fraction
            distractor = negative_fraction <= draw < negative_fraction + distractor_fraction
            pair = draw_pair(rng, usable, negative=negative, distractor=distractor, **options)
            yield (*pair["template"][:3], *pair["search"][:3]), {"box": pair["box"],
                                                                "positive": np.float32(not negative)}

    def cut_regions(template_path, template_center, template_region, search_path, search_center, search_region):
        crops = cut_pair({"template": (template_path.decode(), template_center, template_region, template_size),
                          "search": (search_path.decode(), search_center, search_region, search_size)})
        return crops["template"], crops["search"]

    def cut(regions, targets):  # decoding and cropping, in parallel (OpenCV releases the GIL)
        template, search = tf.numpy_function(cut_regions, regions, [tf.float32, tf.float32])
        template.set_shape((template_size, template_size, 3))
        search.set_shape((search_size, search_size, 3))
        return {"template": template, "search": search}, targets

    region = (tf.TensorSpec((), tf.string), tf.TensorSpec((2,), tf.float64), tf.TensorSpec((2,), tf.float64))
    signature = (region + region, {"box": tf.TensorSpec((4,), tf.float32), "positive": tf.TensorSpec((), tf.float32)})
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.map(cut, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


__all__ = ["cut_pair", "draw_pair", "pair_dataset", "sample_pair"]
