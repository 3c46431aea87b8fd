"""Keras → flatbuffer: fp32 TFLite, int8 TFLite, and Larq Compute Engine (binary + int8)."""

import tempfile

import larq as lq

from zippy_tf._compat import keras, tf
from zippy_tf.errors import UserError
from zippy_tf.quantization.layers import Clip, FakeQuant
from zippy_tf.runtime import native_notices_hidden

FORMATS = ("fp32", "int8", "lce")


def _is_binary(layer):
    return isinstance(getattr(layer, "kernel_quantizer", None), lq.quantizers.SteSign)


def strip_fake_quant(model, keep_clips=()):
    """A copy of ``model`` (same weights) without :class:`FakeQuant`: the int8 TFLite path's float twin.

    The FakeQuant layers named in ``keep_clips`` become a :class:`Clip` to their range, the others identities.
    Converted with its fixed fake-quant ranges, ZippyPoint's graph is not taken by TFLite's XNNPACK delegate
    (measured here: no speed-up over the reference int8 kernels), while its float twin, calibrated after
    training, is; and every clip left in the graph is an extra int8 op XNNPACK does not take.
    """

    def clone(layer):
        if isinstance(layer, FakeQuant):
            if layer.name in keep_clips:
                return Clip(*layer.range, name=layer.name)
            return keras.layers.Activation("linear", name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    stripped = keras.models.clone_model(model, clone_function=clone)
    stripped.set_weights(model.get_weights())
    return stripped


def binding_clips(model, images):
    """Names of the FakeQuant layers whose range clips some activation of ``images``.

    A range that never binds on the calibration data is dropped from the int8 graph: int8 saturation at the
    calibrated range bounds the tensor already. Ranges that do bind (ZippyPoint's ±1 stem) are kept as clips.
    """
    layers = [layer for layer in model.layers if isinstance(layer, FakeQuant)]
    if not layers:
        return set()
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    binding = set()
    for i in range(len(images)):
        for layer, act in zip(layers, tf.nest.flatten(probe(images[i : i + 1]))):
            low, high = layer.range
            if float(tf.reduce_min(act)) < low or float(tf.reduce_max(act)) > high:
                binding.add(layer.name)
    return binding


def serving_function(model):
    """(module, concrete function): ``model`` in inference mode, as the flatbuffer's serving signature.

    Inputs are named as the model's inputs, outputs keyed by its output names (or its dict keys): the signature
    ``TFLiteConverter.from_keras_model`` writes. Converting from this gives the same flatbuffer 5–7× faster
    (``benchmarks/export_time.py``): ``from_keras_model`` (and LCE's ``convert_keras_model``) first save the Keras
    model as a SavedModel, which traces every layer's call functions. The module holds only the variables.
    """
    specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name.split(":")[0]) for t in model.inputs]

    def serve(*inputs):
        outputs = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
        return outputs if isinstance(outputs, dict) else dict(zip(model.output_names, tf.nest.flatten(outputs)))

    module = tf.Module()
    module.model_variables = list(model.variables)  # what the function captures, so that it can be saved
    return module, tf.function(serve, autograph=False).get_concrete_function(*specs)


def tflite_converter(model):
    """A ``tf.lite.TFLiteConverter`` for ``model`` (see :func:`serving_function`)."""
    module, function = serving_function(model)
    return tf.lite.TFLiteConverter.from_concrete_functions([function], module)


def _convert_lce(model):
    import larq_compute_engine as lce

    module, function = serving_function(model)
    with tempfile.TemporaryDirectory() as saved_model:
        tf.saved_model.save(module, saved_model, signatures=function)
        return lce.convert_saved_model(saved_model)


def _check_static(model):
    for shape in [t.shape for t in model.inputs]:
        if any(d is None for d in shape[1:]):
            raise UserError(
                f"model input shape {tuple(shape)} is not static; build it with a fixed input_shape= (resolution=) "
                "to export"
            )


def _calibration(model, data, count):
    if data is None:
        from zippy_tf.data.photos import calibration_images

        shape = model.inputs[0].shape
        data = calibration_images(shape[1], shape[2], count)
    return tf.convert_to_tensor(data, tf.float32)


def _representative(inputs):
    """A representative-dataset callable: sample i of every input tensor in ``inputs`` (a list, one per input)."""
    def generate():
        for i in range(inputs[0].shape[0]):
            yield [x[i : i + 1] for x in inputs]

    return generate


def convert_int8(keras_model, inputs, float_ops=()):
    """Integer TFLite flatbuffer (float I/O) of ``keras_model`` calibrated on ``inputs``, a list of (N, ...) float
    tensors, one per model input.

    ``float_ops`` (TFLite op names such as "DEPTHWISE_CONV_2D") stay float32 between QUANTIZE / DEQUANTIZE pairs.
    The reason to ask: an int8 kernel that the runtime's XNNPACK cannot take falls back to TFLite's own kernel, which
    can be far slower than float (``tracking.export.INT8_FLOAT_OPS``: 7×7 depthwise 15× slower, LayerNorm).
    """
    converter = tflite_converter(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(inputs)
    if not float_ops:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=converter.representative_dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops)))
    return debugger.get_nondebug_quantized_model()


def convert(model, fmt, *, representative_data=None, calibration_count=8, float_ops=()):
    """Converts a Keras model to flatbuffer bytes.

    Args:
        model: a functional Keras model with a static input shape (batch may be None).
        fmt: "fp32" (float TFLite; fake-quant ops become quantize/dequantize pairs), "int8" (integer
            TFLite calibrated on ``representative_data``, float I/O; full-integer unless ``float_ops``), or "lce"
            (Larq Compute Engine: binary convs become ``LceBconv2d``, fake-quantized convs become int8).
        representative_data: (N, H, W, C) float images for int8 calibration; default: bundled photos.
        float_ops: for "int8", TFLite ops to keep in float32 (see :func:`convert_int8`).
    """
    with native_notices_hidden():  # the converter's own notices, not the project's
        return _convert(model, fmt, representative_data, calibration_count, float_ops)


def _convert(model, fmt, representative_data, calibration_count, float_ops):
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    _check_static(model)
    if fmt == "lce":
        return _convert_lce(model)
    if fmt == "int8":
        binary = [layer.name for layer in model.layers if _is_binary(layer)]
        if binary:
            raise UserError(f"model {model.name!r} has binary layers ({binary[0]}, ...); export it with format='lce'")
        data = _calibration(model, representative_data, calibration_count)
        return convert_int8(strip_fake_quant(model, binding_clips(model, data)), [data], float_ops)
    return tflite_converter(model).convert()


__all__ = ["FORMATS", "binding_clips", "convert", "convert_int8", "serving_function", "strip_fake_quant",
           "tflite_converter"]
