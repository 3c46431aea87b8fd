"""Deployment fold (thesis §2.3.3): each task's path becomes an ordinary network of plain ``Conv2D`` layers.

For every task-specific convolution (:class:`~zippy_tf.multitask.layers.ReparamConv2D` with or without NFF, and the
Series / Parallel Residual Adapters) the composite is linear, so it is one k×k convolution:

- RC: $W = W_t W_s$ (NFF resolved to $g\\,v/\\lVert v\\rVert$ first);
- Series RA: $W = W_s (I + \\mathrm{diag}(\\gamma/\\sigma) A)$ plus a bias from the adapter's BatchNorm shift;
- Parallel RA: $W = W_s$ with $A$ added at the centre tap (not for a strided ``"same"`` window: UserError).

A BatchNormalization that directly follows a convolution (and is its only consumer) is folded into that
convolution's kernel and bias; its place in the graph is kept by a linear ``Activation``, which converters drop.
The folded model computes the task-conditional model's inference-mode output with the cost of a single-task network,
and exports with :func:`zippy_tf.export.convert`.
"""

import numpy as np

from zippy_tf._compat import keras
from zippy_tf.errors import UserError
from zippy_tf.multitask.layers import TaskConv2D


def _fold_batch_norm(kernel, bias, bn):
    scale = bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy() + bn.epsilon) if bn.scale else \
        1.0 / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    shift = (bn.beta.numpy() if bn.center else 0.0) - bn.moving_mean.numpy() * scale
    bias = np.zeros(kernel.shape[-1], np.float32) if bias is None else bias
    return kernel * scale, bias * scale + shift


def folded_weights(layer, batch_norm=None):
    """(kernel, bias) of the plain convolution equivalent to ``layer`` (a task-specific convolution or a
    ``Conv2D``) followed by ``batch_norm`` (or nothing), in inference mode. ``bias`` is None when there is none."""
    if isinstance(layer, TaskConv2D):
        kernel, bias = layer.folded_kernel()
    elif isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.DepthwiseConv2D):
        kernel, bias = layer.kernel.numpy(), (layer.bias.numpy() if layer.use_bias else None)
    else:
        raise UserError(f"cannot fold layer {layer.name!r} of type {type(layer).__name__}; fold applies to Conv2D "
                        "and the task-specific convolutions of zippy_tf.multitask.layers")
    if batch_norm is not None:
        kernel, bias = _fold_batch_norm(kernel, bias, batch_norm)
    return kernel.astype(np.float32), None if bias is None else np.asarray(bias, np.float32)


def fold_conv(layer, batch_norm=None):
    """A built ``Conv2D`` (named like ``layer``) computing ``batch_norm(layer(x))`` in inference mode."""
    kernel, bias = folded_weights(layer, batch_norm)
    conv = _plain_conv(layer, bias is not None)
    conv.build((None, None, None, kernel.shape[2]))
    conv.set_weights([kernel] + ([bias] if bias is not None else []))
    return conv


def _plain_conv(layer, use_bias):
    spec = layer.filter_bank if isinstance(layer, TaskConv2D) else layer
    return keras.layers.Conv2D(spec.filters, spec.kernel_size, strides=spec.strides, padding=spec.padding,
                               dilation_rate=spec.dilation_rate, use_bias=use_bias, name=layer.name)


def _conv_batch_norm_pairs(model):
    """{conv name: BatchNormalization layer} for each BatchNorm fed only by a convolution used only by it, read from
    the model's own graph (a layer shared with other models has nodes there too)."""
    config = model.get_config()
    consumers, producer = {}, {}
    for entry in config["layers"]:
        for node in entry["inbound_nodes"]:
            sources = [source[0] for source in node]
            for source in sources:
                consumers[source] = consumers.get(source, 0) + 1
            if len(sources) == 1:
                producer[entry["name"]] = sources[0]
    pairs = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.name in producer:
            source = model.get_layer(producer[layer.name])
            foldable = isinstance(source, TaskConv2D) or (
                isinstance(source, keras.layers.Conv2D) and not isinstance(source, keras.layers.DepthwiseConv2D))
            if foldable and consumers[source.name] == 1:
                pairs[source.name] = layer
    return pairs


def fold_model(model):
    """A plain copy of a task model: every task-specific convolution becomes a ``Conv2D`` and BatchNorms after
    convolutions are folded into them.

    Args:
        model: a functional Keras model with task-specific convolutions (one task of a multi-task network, or a model
            from :func:`zippy_tf.multitask.response_init.response_initialize`).

    Raises:
        UserError: the model has no task-specific convolution (it was never reparameterized).
    """
    if not any(isinstance(layer, TaskConv2D) for layer in model.layers):
        raise UserError(f"model {model.name!r} has no ReparamConv2D or residual adapter: it was never "
                        "reparameterized; fold a model built with a variant rc, rc_nff, rc_ri, rcm, series_ra or "
                        "parallel_ra, or one returned by response_initialize")
    pairs = _conv_batch_norm_pairs(model)
    folded_bns = {bn.name for bn in pairs.values()}

    def clone(layer):
        if layer.name in pairs or isinstance(layer, TaskConv2D):
            return _plain_conv(layer, True)
        if layer.name in folded_bns:
            return keras.layers.Activation("linear", name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    folded = keras.models.clone_model(model, clone_function=clone)
    for layer in folded.layers:
        source = model.get_layer(layer.name)
        if layer.name in pairs or isinstance(source, TaskConv2D):
            kernel, bias = folded_weights(source, pairs.get(layer.name))
            layer.set_weights([kernel, np.zeros(kernel.shape[-1], np.float32) if bias is None else bias])
        elif layer.name not in folded_bns:
            layer.set_weights(source.get_weights())
    return folded


def fold_network(network):
    """{task: plain Keras model} of a multi-task network (:func:`fold_model` of each ``network[task]``)."""
    return {task: fold_model(model) for task, model in network.models.items()}


__all__ = ["fold_conv", "fold_model", "fold_network", "folded_weights"]
