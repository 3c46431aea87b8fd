r"""Response Initialization (RI, thesis §2.3.3, Eq. 2.4): a pretrained convolution rewritten as an RC.

For each convolution $W$ (cout × k²cin) the responses $y = W x$ (before the BatchNorm, every spatial position of
every image one sample) are collected on a set of images, and PCA with all cout components gives
$U$ (cout × cout, eigenvectors of the responses' covariance as columns, by decreasing variance). Then

$$ W_s \leftarrow U^\top W, \qquad W_t \leftarrow U, \qquad W_t W_s = U U^\top W = W, $$

so the reparameterized network computes the pretrained one exactly, with the filter bank's outputs ordered by
how much of the response they carry. (The reference also adds $\bar y - U U^\top \bar y$ to the following BN's
mean; with all components kept that is zero, so it is left out.) Eigenvector signs do not matter: $U$ appears twice.

- :func:`response_bases`: the PCA of the responses of named convolutions of any Keras model;
- :func:`reparameterize`: a copy of a model whose bias-free convolutions are :class:`ReparamConv2D` layers
  ($W_s = U^\top W$, $W_t = U$, or $W_s = W$, $W_t = I$ without bases);
- :func:`response_initialize`: both.

Downsample (shortcut) convolutions are left plain, as in the reference (their names contain "downsample").
"""

import numpy as np

from zippy_tf._compat import keras, tf
from zippy_tf.errors import UserError
from zippy_tf.multitask.layers import FilterBank, ReparamConv2D, TaskConv2D


def _reparameterizable(layer, exclude):
    return (isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, (FilterBank, keras.layers.DepthwiseConv2D))
            and not layer.use_bias and not any(word in layer.name for word in exclude))


def response_bases(model, images, layer_names, batch_size=8):
    """{name: (U, mean)}: PCA of the responses of ``model``'s layers ``layer_names`` on ``images``.

    U is (cout, cout) with the eigenvectors of the responses' covariance as columns, sorted by decreasing
    eigenvalue; mean is the mean response. Statistics are accumulated in float64 over batches of ``batch_size``.

    Args:
        model: a functional Keras model in which each named layer is called once.
        images: (N, H, W, C) array (or tensor) of model inputs.
        layer_names: the convolutions to analyse.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or len(images) == 0:
        raise UserError(f"images must be a non-empty (N, H, W, C) array, got shape {images.shape}")
    expected = tuple(model.inputs[0].shape[1:])
    if any(e is not None and e != d for e, d in zip(expected, images.shape[1:])):
        raise UserError(f"images of shape {images.shape[1:]} do not fit model {model.name!r}, which takes "
                        f"{expected}; resize them or build the model for their size")
    for name in layer_names:
        if name not in {layer.name for layer in model.layers}:
            raise UserError(f"model {model.name!r} has no layer {name!r}; name convolutions of the model")
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in layer_names])
    sums = [None] * len(layer_names)
    for start in range(0, len(images), batch_size):
        outputs = probe(images[start:start + batch_size], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for index, response in enumerate(outputs):
            y = tf.reshape(tf.cast(response, tf.float64), (-1, response.shape[-1]))
            batch = (float(y.shape[0]), tf.reduce_sum(y, 0).numpy(), tf.matmul(y, y, transpose_a=True).numpy())
            sums[index] = batch if sums[index] is None else tuple(a + b for a, b in zip(sums[index], batch))
    bases = {}
    for name, (count, total, outer) in zip(layer_names, sums):
        mean = total / count
        covariance = (outer - count * np.outer(mean, mean)) / max(count - 1.0, 1.0)
        values, vectors = np.linalg.eigh(covariance)
        bases[name] = (vectors[:, np.argsort(values)[::-1]].astype(np.float32), mean.astype(np.float32))
    return bases


def reparameterize(model, bases=None, nff=False, exclude=("downsample",)):
    """A copy of ``model`` in which each bias-free ``Conv2D`` (whose name contains none of ``exclude``) is a
    :class:`ReparamConv2D` with its own frozen :class:`FilterBank` (named ``f"{name}_filter_bank"``).

    With ``bases`` (from :func:`response_bases`) $W_s = U^\\top W$ and $W_t = U$; without, $W_s = W$ and
    $W_t = I$. Either way the copy computes the same function as ``model``; other layers keep their weights.
    """
    targets = {layer.name for layer in model.layers if _reparameterizable(layer, exclude)}
    if not targets:
        raise UserError(f"model {model.name!r} has no bias-free Conv2D to reparameterize (excluding names with "
                        f"{', '.join(exclude)})")
    missing = sorted(set(bases or {}) - targets)
    if missing:
        raise UserError(f"bases name layers that are not reparameterizable convolutions of the model: {missing}")

    def clone(layer):
        if layer.name in targets:
            spec = {key: getattr(layer, key) for key in ("filters", "kernel_size", "strides", "padding",
                                                          "dilation_rate")}
            return ReparamConv2D(FilterBank(name=f"{layer.name}_filter_bank", **spec), nff=nff, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in copy.layers:
        source = model.get_layer(layer.name)
        if not isinstance(layer, TaskConv2D):
            layer.set_weights(source.get_weights())
            continue
        kernel = source.kernel.numpy()
        basis = bases[layer.name][0] if bases and layer.name in bases else np.eye(layer.filters, dtype=np.float32)
        layer.filter_bank.kernel.assign(np.tensordot(kernel, basis, axes=([3], [0])))
        layer.set_modulator(basis.T)
    return copy


def response_initialize(model, images, nff=False, exclude=("downsample",), batch_size=8):
    """Response Initialization of ``model``: :func:`reparameterize` with the bases of :func:`response_bases` of every
    reparameterizable convolution on ``images``. The result reproduces ``model``'s outputs."""
    names = [layer.name for layer in model.layers if _reparameterizable(layer, exclude)]
    return reparameterize(model, response_bases(model, images, names, batch_size), nff=nff, exclude=exclude)


__all__ = ["reparameterize", "response_bases", "response_initialize"]
