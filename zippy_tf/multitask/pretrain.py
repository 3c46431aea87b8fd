"""Pretraining the ResNet encoder here, since ImageNet weights cannot be downloaded (thesis ch. 2 starts every
method from an ImageNet-pretrained ResNet-18).

**Task: patch-region classification.** A random, augmented crop (scale, aspect, position, flip, brightness,
contrast, saturation) of one of the :data:`~zippy_tf.data.multitask_generate.PRETRAIN_PHOTOS` is classified as
*which photo, and which cell of a* ``regions`` × ``regions`` *grid over it, its centre lies in* (9 photos × 9 cells
= 81 classes by default). Why this task:

- it is supervised classification from globally pooled features with a Dense head (dropped after training), the
  shape of the reference's ImageNet pretraining, so the encoder learns what that learns at small scale: colour,
  texture and part-of-object filters that must survive the augmentations;
- it is disjoint from the multi-task targets (semantic classes of rendered surfaces, depth, normals, edges,
  saliency): no label of those is used or derived;
- its images are disjoint from the multi-task set's: the generated scenes are textured with
  :data:`~zippy_tf.data.multitask_generate.TEXTURE_PHOTOS` only, and pretraining reads PRETRAIN_PHOTOS only;
- the region cell (not only the photo) makes it harder than 9-way photo identification, which a colour histogram
  would solve.

It is a tiny substitute for ImageNet (nine photographs), not a replacement: users with real weights convert them
with ``converters/torchvision_resnet.py``.

Output: the plain encoder's weights (:func:`zippy_tf.multitask.resnet.resnet`, layer names as documented there)
in Keras's ``.h5`` layout (which keeps layer names; a ``.weights.h5`` name would not), stored float16
(:func:`zippy_tf.io.save_float16_weights`): ``encoder = resnet(); encoder.load_weights(path)`` gives the
``encoder=`` of :func:`zippy_tf.multitask.deeplab.build_multitask`, and ``zippy-tf train rcm --encoder PATH``
reads it (checking the layer names). Resumable: the
classifier and optimizer are backed up after every epoch in ``checkpoint_dir``, and the same call started again
continues from the last finished epoch.

    python -m zippy_tf.multitask.pretrain --output models/resnet18-pretrain/encoder.h5 --steps 600 --size 96
"""

import json
import os
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np

from zippy_tf._compat import keras, tf
from zippy_tf.data.multitask_generate import PRETRAIN_PHOTOS
from zippy_tf.data.multitask_pipeline import normalize_image
from zippy_tf.data.photos import load_photo
from zippy_tf.errors import UserError
from zippy_tf.io import atomic_path, check_output_path, save_float16_weights, write_json
from zippy_tf.multitask.resnet import resnet
from zippy_tf.runtime import progress

PHOTO_SIDE = 384  # pixels of the square the photos are resampled to before cropping
SCALES = (0.15, 0.4)  # crop side as a fraction of the photo side
ASPECTS = (3 / 4, 4 / 3)


def pretrain_photos(names=PRETRAIN_PHOTOS, side=PHOTO_SIDE):
    """The photos ``names`` as float32 RGB [0, 255], each its centred square resized to ``side`` × ``side``:
    (len(names), side, side, 3)."""
    photos = []
    for name in names:
        image = cv2.cvtColor(load_photo(name), cv2.COLOR_BGR2RGB)
        height, width = image.shape[:2]
        short = min(height, width)
        top, left = (height - short) // 2, (width - short) // 2
        photos.append(cv2.resize(image[top:top + short, left:left + short], (side, side),
                                 interpolation=cv2.INTER_AREA))
    return np.stack(photos).astype(np.float32)


def _uniform(seed, shape, low, high):
    return tf.random.stateless_uniform(shape, seed, low, high)


def crop_batch(photos, seed, batch_size, size, regions):
    """One batch of (normalised images (B, size, size, 3), labels (B,)) drawn with the stateless ``seed`` (2 ints);
    label = photo index × regions² + grid cell of the crop's centre."""
    count = int(photos.shape[0])
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 10))
    labels = tf.random.stateless_uniform([batch_size], seeds[0], 0, count * regions ** 2, tf.int32)
    photo, cell = labels // regions ** 2, labels % regions ** 2
    centre_y = (tf.cast(cell // regions, tf.float32) + _uniform(seeds[1], [batch_size], 0.0, 1.0)) / regions
    centre_x = (tf.cast(cell % regions, tf.float32) + _uniform(seeds[2], [batch_size], 0.0, 1.0)) / regions
    side = _uniform(seeds[3], [batch_size], *SCALES)
    aspect = tf.exp(_uniform(seeds[4], [batch_size], *np.log(ASPECTS).astype(np.float32)))
    half_h, half_w = side * tf.sqrt(aspect) / 2, side / tf.sqrt(aspect) / 2
    # slide boxes that stick out back inside the photo (the centre stays in its cell unless the box is larger)
    shift_y = tf.nn.relu(half_h - centre_y) - tf.nn.relu(centre_y + half_h - 1)
    shift_x = tf.nn.relu(half_w - centre_x) - tf.nn.relu(centre_x + half_w - 1)
    y, x = centre_y + shift_y, centre_x + shift_x
    boxes = tf.stack([y - half_h, x - half_w, y + half_h, x + half_w], axis=1)
    images = tf.image.crop_and_resize(photos, boxes, photo, (size, size))
    flip = _uniform(seeds[5], [batch_size, 1, 1, 1], 0.0, 1.0) < 0.5
    images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    grey = tf.reduce_mean(images, axis=-1, keepdims=True)
    images = grey + (images - grey) * _uniform(seeds[6], [batch_size, 1, 1, 1], 0.6, 1.4)  # saturation
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = mean + (images - mean) * _uniform(seeds[7], [batch_size, 1, 1, 1], 0.7, 1.3)  # contrast
    images = images + _uniform(seeds[8], [batch_size, 1, 1, 1], -40.0, 40.0)  # brightness
    return normalize_image(tf.clip_by_value(images, 0.0, 255.0)), labels


def crop_dataset(photos, batch_size, size, regions=3, seed=0):
    """An endless ``tf.data.Dataset`` of :func:`crop_batch` batches; batch ``i`` uses the seed (seed, i), so the
    stream is reproducible and another ``seed`` gives crops the training never drew."""
    photos = tf.constant(photos)

    def batch(index):
        return crop_batch(photos, tf.stack([tf.constant(seed, tf.int64), index]), batch_size, size, regions)

    return tf.data.Dataset.range(2 ** 62).map(batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def classifier(encoder, num_classes):
    """``encoder``'s stride-16 feature → global average pool → Dense logits: the pretraining network (its head is
    dropped afterwards)."""
    features = encoder.outputs[1]
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    logits = keras.layers.Dense(num_classes, name="classes")(pooled)
    return keras.Model(encoder.inputs, logits, name="pretrain_classifier")


class _Progress(keras.callbacks.Callback):
    """One stderr line per epoch: step, loss, accuracy, elapsed time."""

    def __init__(self, steps_per_epoch, steps):
        super().__init__()
        self.steps_per_epoch, self.steps, self.start = steps_per_epoch, steps, time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        progress(f"pretrain: step {(epoch + 1) * self.steps_per_epoch}/{self.steps}  loss {logs.get('loss', 0):.3f}  "
                 f"accuracy {logs.get('accuracy', 0):.3f}  {time.time() - self.start:.0f} s")


def _check(steps, steps_per_epoch, size, batch_size, regions):
    if steps < 1 or steps_per_epoch < 1 or steps % steps_per_epoch:
        raise UserError(f"steps ({steps}) must be a positive multiple of steps_per_epoch ({steps_per_epoch})")
    if size < 32:
        raise UserError(f"size {size} is too small for a stride-16 encoder; use 32 pixels or more")
    if batch_size < 1 or regions < 1:
        raise UserError(f"batch_size ({batch_size}) and regions ({regions}) must be positive")


def pretrain_encoder(output, *, steps, steps_per_epoch=50, size=96, batch_size=32, regions=3, learning_rate=1e-3,
                     width=1.0, backbone="resnet18", heldout=512, checkpoint_dir=None, seed=0, verbose=0):
    """Pretrains a plain ResNet encoder on patch-region classification (module docstring) with ``model.fit``, and
    writes its weights to ``output`` (float16 ``.h5``, the encoder only) and a summary beside it (``.json``).

    Args:
        output: the encoder weights file to write (``.h5``).
        steps: optimizer steps in total (Adam, cosine decay from ``learning_rate`` to 0).
        steps_per_epoch: steps between backups and progress lines.
        size: crop side in pixels; batch_size: crops per step; regions: grid cells per photo side.
        width, backbone: of :func:`~zippy_tf.multitask.resnet.resnet` (the multi-task network's).
        heldout: crops (from a sampling stream the training never draws) to measure accuracy on at the end.
        checkpoint_dir: backups for resuming (default ``output`` with ``.ckpt`` for ``.h5``; emptied when training
            finishes).

    Returns:
        the summary dict (also written as JSON): losses and accuracies per epoch, held-out accuracy, wall time.
    """
    _check(steps, steps_per_epoch, size, batch_size, regions)
    check_encoder_path(output)
    checkpoint_dir = checkpoint_dir or os.path.splitext(output)[0] + ".ckpt"
    photos = pretrain_photos()
    num_classes = len(photos) * regions ** 2
    encoder = resnet((size, size, 3), backbone, width=width)
    model = classifier(encoder, num_classes)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    resuming = os.path.isdir(checkpoint_dir) and bool(os.listdir(checkpoint_dir))
    progress(f"pretrain: {num_classes} classes ({len(photos)} photos × {regions}×{regions} cells), {steps} steps of "
             f"{batch_size} crops of {size} px{', resuming from ' + checkpoint_dir if resuming else ''}")
    start = time.time()
    history = model.fit(crop_dataset(photos, batch_size, size, regions, seed), epochs=steps // steps_per_epoch,
                        steps_per_epoch=steps_per_epoch, verbose=verbose,
                        callbacks=[keras.callbacks.BackupAndRestore(checkpoint_dir),
                                   _Progress(steps_per_epoch, steps)])
    wall = time.time() - start
    images, labels = next(iter(crop_dataset(photos, heldout, size, regions, seed + 1)))
    logits = model.predict(images, batch_size=64, verbose=0)
    accuracy = float(np.mean(np.argmax(logits, -1) == labels.numpy()))
    save_encoder(encoder, output)
    summary = {
        "task": "patch-region classification", "photos": list(PRETRAIN_PHOTOS), "classes": num_classes,
        "regions": regions, "size": size, "batch_size": batch_size, "steps": steps, "learning_rate": learning_rate,
        "backbone": backbone, "width": width, "seed": seed, "resumed": resuming,
        "wall_time_s": round(wall, 1), "history": {k: [round(float(v), 4) for v in vs]
                                                   for k, vs in history.history.items()},
        "final_train_accuracy": round(float(history.history["accuracy"][-1]), 4),
        "heldout_crops": heldout, "heldout_accuracy": round(accuracy, 4),
    }
    write_json(os.path.splitext(output)[0] + ".json", summary)
    progress(f"pretrain: wrote {output}; held-out crop accuracy {accuracy:.3f}, {wall:.0f} s")
    return summary


def check_encoder_path(output):
    """Fails before any work when ``output`` cannot be written or is not named ``*.h5`` (Keras reads a
    ``*.weights.h5`` name in its other layout, which does not keep layer names)."""
    if not output.endswith(".h5") or output.endswith(".weights.h5"):
        raise UserError(f"encoder file {output!r} must be named *.h5, not *.weights.h5 (Keras reads that name in a "
                        "layout without layer names); e.g. encoder.h5")
    return check_output_path(output)


def save_encoder(encoder, output, float16=True):
    """Writes ``encoder``'s weights to ``output`` in Keras's ``.h5`` layout (layer names kept), atomically: float16
    (half the size, for shipping) or, with ``float16=False``, float32 exactly."""
    check_encoder_path(output)
    with tempfile.TemporaryDirectory(prefix="zippy_tf-encoder-") as folder:
        plain = os.path.join(folder, "encoder.h5")
        encoder.save_weights(plain)
        if float16:
            return save_float16_weights(plain, output)
        with atomic_path(output) as tmp:
            shutil.copyfile(plain, tmp)
    return output


def main(argv):
    """``python -m zippy_tf.multitask.pretrain``: the flags are :func:`pretrain_encoder`'s arguments."""
    from absl import flags

    del argv
    f = flags.FLAGS
    try:
        summary = pretrain_encoder(f.output, steps=f.steps, steps_per_epoch=f.steps_per_epoch, size=f.size,
                                   batch_size=f.batch_size, regions=f.regions, learning_rate=f.learning_rate,
                                   width=f.width, seed=f.seed, heldout=f.heldout)
    except UserError as e:
        print(f"pretrain: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))


def _define_flags():
    from absl import flags

    flags.DEFINE_string("output", os.path.join("models", "resnet18-pretrain", "encoder.h5"),
                        "encoder weights file to write")
    flags.DEFINE_integer("steps", 600, "optimizer steps")
    flags.DEFINE_integer("steps_per_epoch", 50, "steps between backups and progress lines")
    flags.DEFINE_integer("size", 96, "crop side in pixels")
    flags.DEFINE_integer("batch_size", 32, "crops per step")
    flags.DEFINE_integer("regions", 3, "grid cells per photo side (classes = photos × regions²)")
    flags.DEFINE_float("learning_rate", 1e-3, "Adam's initial learning rate (cosine decay to 0)")
    flags.DEFINE_float("width", 1.0, "channel multiplier of the encoder")
    flags.DEFINE_integer("seed", 0, "sampling seed (held-out crops use seed + 1)")
    flags.DEFINE_integer("heldout", 512, "held-out crops for the final accuracy")


__all__ = ["check_encoder_path", "classifier", "crop_batch", "crop_dataset", "pretrain_encoder", "pretrain_photos",
           "save_encoder"]

if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
