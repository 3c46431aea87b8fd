"""Keras → flatbuffer: fp32 TFLite, full-integer int8 TFLite, and Larq Compute Engine (binary + int8)."""

import warnings

import larq as lq

from zippy_tf._compat import keras, tf
from zippy_tf.errors import UserError
from zippy_tf.quantization.layers import FakeQuant

FORMATS = ("fp32", "int8", "lce")


def _is_binary(layer):
    return isinstance(getattr(layer, "kernel_quantizer", None), lq.quantizers.SteSign)


def strip_fake_quant(model):
    """A copy of ``model`` with every :class:`FakeQuant` replaced by an identity (same weights, new model).

    Used for the int8 TFLite path: the TFLite converter turns fixed fake-quant ranges into a graph that TFLite's
    XNNPACK delegate does not take (measured here: no speed-up over the reference int8 kernels), while
    post-training calibration of the same float graph is delegated. Outside the quantizers the math is the same.
    """

    def clone(layer):
        if isinstance(layer, FakeQuant):
            return keras.layers.Activation("linear", name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    stripped = keras.models.clone_model(model, clone_function=clone)
    stripped.set_weights(model.get_weights())
    return stripped


def _check_static(model):
    for shape in [t.shape for t in model.inputs]:
        if any(d is None for d in shape[1:]):
            raise UserError(
                f"model input shape {tuple(shape)} is not static; build it with a fixed --resolution to export"
            )


def _representative(model, data, count):
    if data is None:
        from zippy_tf.data.photos import calibration_images

        shape = model.inputs[0].shape
        data = calibration_images(shape[1], shape[2], count)
    data = tf.convert_to_tensor(data, tf.float32)

    def generate():
        for i in range(data.shape[0]):
            yield [data[i : i + 1]]

    return generate


def convert(model, fmt, *, representative_data=None, calibration_count=8):
    """Converts a Keras model to flatbuffer bytes.

    Args:
        model: a functional Keras model with a static input shape (batch may be None).
        fmt: "fp32" (float TFLite; fake-quant ops become quantize/dequantize pairs), "int8" (full-integer
            TFLite calibrated on ``representative_data``, float I/O), or "lce" (Larq Compute Engine: binary convs
            become ``LceBconv2d``, fake-quantized convs become int8).
        representative_data: (N, H, W, C) float images for int8 calibration; default: bundled photos.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    _check_static(model)
    if fmt == "lce":
        import larq_compute_engine as lce

        with warnings.catch_warnings():
            # LCE's silent fallback to a frozen graph drops the SavedModel path we test against; make it loud.
            warnings.filterwarnings("error", message=".*falling back.*")
            return lce.convert_keras_model(model)
    if fmt == "int8":
        binary = [layer.name for layer in model.layers if _is_binary(layer)]
        if binary:
            raise UserError(f"model {model.name!r} has binary layers ({binary[0]}, ...); export it with --format lce")
        model = strip_fake_quant(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if fmt == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(model, representative_data, calibration_count)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


__all__ = ["FORMATS", "convert", "strip_fake_quant"]
