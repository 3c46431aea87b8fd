"""Analytic cost of a Keras model: parameters and multiply-accumulates (MACs) per precision.

On ARM, LCE's binary convolutions run about 64 binary MACs per float-MAC time (XNOR + popcount on 64-bit
words) and int8 convolutions about 4 per float MAC. The BOP-weighted cost counts float MACs as 1, int8 as 1/4
and binary as 1/64: the figure that ranks configurations the way an ARM device does, which x86 timings of LCE's
reference kernels cannot.
"""

import larq as lq

from zippy_tf._compat import keras, tf
from zippy_tf.quantization.layers import FakeQuant

WEIGHTS = {"float": 1.0, "int8": 1.0 / 4.0, "binary": 1.0 / 64.0}
_CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense, lq.layers.QuantConv2D)


def is_binary(layer):
    return isinstance(getattr(layer, "input_quantizer", None), lq.quantizers.SteSign) and isinstance(
        getattr(layer, "kernel_quantizer", None), lq.quantizers.SteSign
    )


def _neighbours(layer, direction):
    nodes = layer.inbound_nodes if direction == "in" else layer.outbound_nodes
    if direction == "in":
        return [src for node in nodes for src in tf.nest.flatten(node.inbound_layers)]
    return [node.outbound_layer for node in nodes]


def _fake_quantized(layer):
    """True when the converter will emit an int8 kernel: fake-quant on the input and (after an optional BN) on the
    output. A conv whose output is not fake-quantized (the float score/location heads) stays float."""
    fed = any(isinstance(src, FakeQuant) for src in _neighbours(layer, "in"))
    consumers = _neighbours(layer, "out")
    consumers += [c for bn in consumers if isinstance(bn, keras.layers.BatchNormalization)
                  for c in _neighbours(bn, "out")]
    return fed and any(isinstance(c, FakeQuant) for c in consumers)


def layer_precision(layer, fmt="lce"):
    """Deployed precision of one conv/dense layer: binary, int8 or float.

    ``fmt`` is the export format: "int8" makes every non-binary layer int8 (full-integer TFLite); "lce" makes a
    layer int8 when its input and output are fake-quantized (the converter then emits an int8 kernel); "fp32" keeps float.
    """
    if is_binary(layer):
        return "binary"
    if fmt == "int8" or (fmt == "lce" and _fake_quantized(layer)):
        return "int8"
    return "float"


def _macs(layer):
    out = layer.output_shape
    pixels = 1
    for d in out[1:-1]:
        pixels *= d
    kernel = layer.weights[0].shape  # Conv: (kh, kw, cin, cout); depthwise: (kh, kw, c, m); dense: (cin, cout)
    per_pixel = 1
    for d in kernel:
        per_pixel *= d
    return int(per_pixel * pixels)


def analytic_cost(model, fmt="lce"):
    """Parameters and MACs by precision, and the BOP-weighted cost (float-MAC equivalents).

    The model needs a static input size (MACs scale with pixels).
    """
    params = {"float": 0, "int8": 0, "binary": 0}
    macs = {"float": 0, "int8": 0, "binary": 0}
    for layer in model.layers:
        if not isinstance(layer, _CONVS):
            continue
        precision = layer_precision(layer, fmt)
        params[precision] += int(layer.weights[0].shape.num_elements())
        macs[precision] += _macs(layer)
    return {
        "format": fmt,
        "params": int(model.count_params()),
        "kernel_params": params,
        "macs": macs,
        "total_macs": sum(macs.values()),
        "bop_cost": sum(WEIGHTS[p] * n for p, n in macs.items()),
    }


__all__ = ["WEIGHTS", "analytic_cost", "is_binary", "layer_precision"]
