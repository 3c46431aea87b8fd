"""Converts a torchvision ResNet ``state_dict`` (saved as ``.npz``) into the encoder weights file (Keras ``.h5``,
layer names kept) that ``zippy-tf train rcm --encoder`` takes, and ``resnet().load_weights(path)`` reads as the
``encoder=`` of ``build_multitask``.

Make the ``.npz`` where PyTorch is installed (this project does not need it)::

    import numpy as np, torchvision
    state = torchvision.models.resnet18(weights="IMAGENET1K_V1").state_dict()   # or torch.load("yours.pth")
    np.savez("resnet18.npz", **{k: v.numpy() for k, v in state.items()})

then::

    python converters/torchvision_resnet.py --input resnet18.npz --output resnet18.h5 [--backbone resnet18]

**Expected tensor names** (torchvision's; shapes for ResNet-18 at width 1):

- ``conv1.weight`` (64, 3, 7, 7); ``bn1.{weight,bias,running_mean,running_var}`` (64,);
- ``layer{i}.{j}.conv{n}.weight`` (cout, cin, 3, 3), ``layer{i}.{j}.bn{n}.*`` for i = 1..4, j = 0..1, n = 1..2
  (n = 1..3 and 1×1 / 3×3 / 1×1 kernels for the Bottleneck ResNet-26);
- ``layer{i}.0.downsample.0.weight`` (cout, cin, 1, 1) and ``layer{i}.0.downsample.1.*`` for i = 2, 3, 4;
- ignored: ``fc.*`` (the classifier) and ``*.num_batches_tracked``.

Each becomes the Keras layer of :mod:`zippy_tf.multitask.resnet` with ``.`` replaced by ``_`` (kernels transposed
to (kh, kw, cin, cout); norm ``weight``/``bias``/``running_mean``/``running_var`` to ``gamma``/``beta``/
``moving_mean``/``moving_variance``). Layer4's stride becomes a dilation (output stride 16), which changes no weight.
Output: float32 ``.h5`` (``--float16`` halves it). Bad input (missing file, not an ``.npz``, a missing or
mis-shaped tensor, an output that cannot be written) is one line on stderr and exit status 2.
"""

import os
import sys
import tempfile
import zipfile

import numpy as np
from absl import app, flags

import zippy_tf  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
from zippy_tf.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "torchvision state_dict saved with np.savez (.npz)")
flags.DEFINE_string("output", None, "encoder weights file to write (*.h5, not *.weights.h5)")
flags.DEFINE_string("backbone", "resnet18", "ResNet of the state_dict: resnet18 or resnet26")
flags.DEFINE_float("width", 1.0, "channel multiplier (1.0 for torchvision's networks)")
flags.DEFINE_bool("float16", False, "store the weights as float16 (half the size)")


def read_state(path):
    """{name: array} of the ``.npz`` at ``path``."""
    if not os.path.isfile(path):
        raise UserError(f"input {path!r} not found; pass a state_dict saved with np.savez")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, TypeError):
        raise UserError(f"input {path!r} is not an .npz of tensors; save the state_dict with "
                        "np.savez(path, **{k: v.numpy() for k, v in state_dict.items()})") from None


def check_writable(path):
    """Fails before any work when ``path`` cannot be written (a missing or read-only folder, a folder as path)."""
    from zippy_tf.multitask.pretrain import check_encoder_path

    check_encoder_path(path)
    if os.path.isdir(path):
        raise UserError(f"output {path!r} is a folder; pass a file name such as encoder.h5")
    try:
        fd, probe = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise UserError(f"cannot write output {path!r} ({e.strerror}); pick a writable folder") from None


def convert(input_path, output_path, backbone="resnet18", width=1.0, float16=False):
    """Writes the encoder weights file ``output_path`` from the torchvision ``.npz`` ``input_path``; returns the
    encoder model."""
    state = read_state(input_path)
    check_writable(output_path)
    from zippy_tf.multitask.pretrain import save_encoder
    from zippy_tf.multitask.resnet import load_torchvision_weights, resnet

    encoder = load_torchvision_weights(resnet(backbone=backbone, width=width), state)
    save_encoder(encoder, output_path, float16=float16)
    return encoder


def main(argv):
    del argv
    try:
        if not FLAGS.input or not FLAGS.output:
            raise UserError("pass --input STATE_DICT.npz and --output ENCODER.h5")
        convert(FLAGS.input, FLAGS.output, FLAGS.backbone, FLAGS.width, FLAGS.float16)
    except UserError as e:
        print(f"torchvision_resnet: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {FLAGS.output}", file=sys.stderr)


if __name__ == "__main__":
    app.run(main)
