"""Reading TFLite flatbuffers: validation, op census, signature names."""

import os

from zippy_tf.errors import UserError
from zippy_tf.io import read_file

_TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier at bytes 4..8
TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 9: "int8", 10: "float64", 7: "int16"}


def validate_flatbuffer(data, source="flatbuffer"):
    if len(data) < 8 or data[4:8] != _TFLITE_IDENTIFIER:
        raise UserError(f"{source} is not a TFLite flatbuffer (no TFL3 identifier); export one with `zippy-tf export`")
    return data


def read_flatbuffer(path):
    if not os.path.isfile(path):
        raise UserError(f"flatbuffer {path!r} does not exist; check the path or run `zippy-tf export` first")
    source = f"flatbuffer {path!r}"
    data = validate_flatbuffer(read_file(path, "flatbuffer", binary=True), source)
    _model(data, source)  # a corrupt one is named here, not deep inside the interpreter
    return data


def _model(data, source="flatbuffer"):
    from tensorflow.lite.python import schema_py_generated as schema

    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    except Exception as e:  # a truncated or corrupt buffer fails deep inside flatbuffers
        raise UserError(f"{source} is corrupt ({type(e).__name__}); re-export it") from None
    if not model.subgraphs or not model.subgraphs[0].operators:  # zeroed bytes parse as an empty model
        raise UserError(f"{source} is corrupt (no operators); re-export it")
    return model, schema


def op_census(data):
    """Counts the operators of the main subgraph.

    Returns ``{"ops": {name: count}, "op_types": {name: {input dtype: count}}}``; custom ops (``LceBconv2d``,
    ``LceQuantize``) appear under their custom name. The input dtype tells int8 convs from float ones.
    """
    model, schema = _model(validate_flatbuffer(data))
    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = model.subgraphs[0]
    ops, op_types = {}, {}
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = code.customCode.decode() if code.customCode else builtin[max(code.builtinCode,
                                                                            code.deprecatedBuiltinCode)]
        dtype = TENSOR_TYPES.get(graph.tensors[op.inputs[0]].type, "other") if len(op.inputs) else "none"
        ops[name] = ops.get(name, 0) + 1
        op_types.setdefault(name, {})
        op_types[name][dtype] = op_types[name].get(dtype, 0) + 1
    return {"ops": dict(sorted(ops.items())), "op_types": op_types}


def signature_io(data):
    """(input names, output names) of the default signature, in subgraph order (what interpreters return)."""
    model, _ = _model(validate_flatbuffer(data))
    graph = model.subgraphs[0]
    if not model.signatureDefs:
        return [f"input_{i}" for i in range(len(graph.inputs))], [f"output_{i}" for i in range(len(graph.outputs))]
    sig = model.signatureDefs[0]
    by_tensor = {t.tensorIndex: t.name.decode() for t in sig.outputs}
    in_tensor = {t.tensorIndex: t.name.decode() for t in sig.inputs}
    return [in_tensor[i] for i in graph.inputs], [by_tensor[i] for i in graph.outputs]


__all__ = ["TENSOR_TYPES", "op_census", "read_flatbuffer", "signature_io", "validate_flatbuffer"]
