"""Deploy fold: per layer and per whole task model, the folded plain network computes the same outputs; it exports."""

import numpy as np
import pytest
from rcm_testing import config, images, layer_model, randomize, relative_error

from zippy_tf._compat import keras
from zippy_tf.errors import UserError
from zippy_tf.export import convert
from zippy_tf.export.runner import FlatbufferRunner
from zippy_tf.multitask import (
    FilterBank, ParallelResidualAdapter, ReparamConv2D, SeriesResidualAdapter, TaskConv2D, build_multitask,
    fold_conv, fold_model, fold_network,
)

X = np.random.default_rng(4).normal(size=(2, 17, 19, 4)).astype(np.float32)
LAYERS = [(ReparamConv2D, {"nff": False}), (ReparamConv2D, {"nff": True}), (SeriesResidualAdapter, {}),
          (ParallelResidualAdapter, {})]
WINDOWS = [  # (bank arguments, explicit padding before the layer): how the ResNet builder uses them
    ({"kernel_size": 3, "padding": "same"}, 0),
    ({"kernel_size": 3, "strides": 2, "padding": "valid"}, 1),
    ({"kernel_size": 7, "strides": 2, "padding": "valid"}, 3),
    ({"kernel_size": 3, "dilation_rate": 2, "padding": "same"}, 0),
    ({"kernel_size": 1, "strides": 2, "padding": "valid"}, 0),
]


def _no_task_layers_or_batch_norm(model):
    return not any(isinstance(layer, (TaskConv2D, keras.layers.BatchNormalization)) for layer in model.layers)


@pytest.mark.parametrize("bank_kwargs,pad", WINDOWS)
@pytest.mark.parametrize("cls,kwargs", LAYERS)
def test_fold_one_layer_with_its_batch_norm(cls, kwargs, bank_kwargs, pad):
    model = randomize(layer_model(cls(FilterBank(6, **bank_kwargs), name="task_conv", **kwargs), X.shape[1:], pad))
    folded = fold_model(model)
    assert _no_task_layers_or_batch_norm(folded)
    assert relative_error(folded(X), model(X)) <= 1e-5
    conv = fold_conv(model.get_layer("task_conv"), model.get_layer("task_bn"))
    padded = keras.layers.ZeroPadding2D(pad)(X) if pad else X
    assert relative_error(conv(padded), model(X)) <= 1e-5


def test_strided_same_parallel_adapter_does_not_fold():
    model = layer_model(ParallelResidualAdapter(FilterBank(6, 3, strides=2, padding="same"), name="task_conv"),
                        X.shape[1:])
    with pytest.raises(UserError, match="does not fold"):
        fold_model(model)


@pytest.mark.parametrize("variant", ["rc", "rcm", "series_ra", "parallel_ra"])
def test_fold_whole_task_models(variant):
    network = build_multitask(config(variant, tasks=("semseg", "depth")))  # (unit normals amplify rounding)
    x = images(2)
    for task in network.tasks:
        randomize(network[task], seed=len(task))  # the shared banks too: all weights off their initialisation
    folded = fold_network(network)
    assert sorted(folded) == sorted(network.tasks)
    for task, model in folded.items():
        assert _no_task_layers_or_batch_norm(model)
        assert relative_error(model(x), network[task](x)) <= 1e-5


@pytest.mark.parametrize("variant", ["single_task", "task_bn"])
def test_folding_a_model_that_was_never_reparameterized_is_refused(variant):
    with pytest.raises(UserError, match="never reparameterized"):
        fold_model(build_multitask(config(variant))["semseg"])


def test_folded_model_exports_to_fp32_and_int8():
    network = build_multitask(config("rcm", tasks=("depth",), shape=(32, 40)))
    model = randomize(network["depth"], seed=8, scale=0.1)
    folded = fold_model(model)
    x = images(2, (32, 40), seed=9)
    fp32 = FlatbufferRunner(convert(folded, "fp32"))
    outputs = np.concatenate([fp32(x[i:i + 1])["depth"] for i in range(len(x))])
    assert relative_error(outputs, model(x)) <= 1e-4
    int8 = FlatbufferRunner(convert(folded, "int8", representative_data=x))
    result = int8(x[:1])["depth"]
    assert result.shape == (1, 32, 40, 1) and np.all(np.isfinite(result))
