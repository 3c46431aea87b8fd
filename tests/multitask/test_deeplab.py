"""The task-conditional DeepLabv3+ builder: configs as data, every variant, weight sharing, parameter counts against
the architecture's formula, layer names, the CompL trunk, saving and loading."""

import dataclasses

import numpy as np
import pytest
from rcm_testing import SHAPE, config, images, randomize

from zippy_tf._compat import keras
from zippy_tf.errors import UserError
from zippy_tf.multitask import (
    TASK_CHANNELS, VARIANTS, FilterBank, MultiTaskConfig, build_multitask, deeplab_trunk, load_network,
    parameter_counts, resnet, save_network,
)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_config_round_trips_through_json(variant):
    cfg = MultiTaskConfig(variant, "pascal", tasks=("sal", "edge"), input_shape=(None, None), width=0.5)
    assert MultiTaskConfig.from_json(cfg.to_json()) == cfg
    assert MultiTaskConfig.from_json(MultiTaskConfig(variant).to_json()).tasks == ("edge", "semseg", "normals", "depth")


@pytest.mark.parametrize("kwargs,message", [
    ({"variant": "rcn"}, "unknown variant 'rcn'"),
    ({"dataset": "cityscapes"}, "unknown dataset"),
    ({"tasks": ("human_parts",)}, "unknown task 'human_parts' for dataset 'nyud'"),
    ({"tasks": ("edge", "edge")}, "without repeats"),
    ({"backbone": "resnet50"}, "unknown backbone"),
    ({"input_shape": (64,)}, "must be \\(height, width\\)"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(UserError, match=message):
        MultiTaskConfig(**kwargs)
    with pytest.raises(UserError, match="unknown multi-task config fields"):
        MultiTaskConfig.from_json('{"variant": "rcm", "lr": 1}')


def _trainable(model):
    return {v.ref() for v in model.trainable_weights}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_outputs_and_weight_sharing(variant):
    network = build_multitask(config(variant, tasks=("semseg", "normals")))
    x = images(2)
    for task in network.tasks:
        output = network[task](x).numpy()
        assert output.shape == (2, *SHAPE, TASK_CHANNELS["nyud"][task])
    np.testing.assert_allclose(np.linalg.norm(randomize(network["normals"])(x), axis=-1), 1.0, rtol=1e-5)
    trainable = {task: _trainable(network[task]) for task in network.tasks}
    shared = {v.ref() for layer in network.shared_layers.values() for v in layer.weights}
    if variant in ("multi_task", "frozen_encoder"):  # one encoder pass feeds every head (joint model included)
        assert len(network.shared_layers["conv1"].inbound_nodes) == 1
    if VARIANTS[variant].joint:  # one trainable encoder for all tasks
        assert shared and all(shared & trainable[task] for task in network.tasks)
    else:  # each task trains only its own weights: nothing shared is trainable, no two tasks share a weight
        assert not shared & set.union(*trainable.values())
        assert sum(map(len, trainable.values())) == len(set.union(*trainable.values()))
    banks = [layer for layer in network.shared_layers.values() if isinstance(layer, FilterBank)]
    assert bool(banks) == (VARIANTS[variant].conv in ("rc", "series_ra", "parallel_ra"))


def _resnet18_convs():
    """(k, cin, cout) of ResNet-18's conv1 and block convolutions, and its downsample (cin, cout)."""
    convs = [(7, 3, 64)]
    for cin, cout in ((64, 64), (64, 128), (128, 256), (256, 512)):
        convs += [(3, cin, cout)] + [(3, cout, cout)] * 3
    return convs, [(64, 128), (128, 256), (256, 512)]


def test_rcm_parameter_counts_follow_the_architecture():
    tasks = ("semseg", "depth")
    network = build_multitask(MultiTaskConfig("rcm", "nyud", tasks=tasks, input_shape=(64, 64)))
    convs, downsample = _resnet18_convs()
    filter_bank = sum(k * k * cin * cout for k, cin, cout in convs)
    modulators = sum(cout * cout + cout for _, _, cout in convs)  # NFF: v (cout × cout) and g (cout)
    encoder_norms = 2 * (sum(cout for _, _, cout in convs) + sum(cout for _, cout in downsample))
    aspp = 512 * 256 + 3 * 9 * 512 * 256 + 512 * 256 + 5 * 256 * 256 + 2 * 6 * 256
    decoder = 64 * 48 + 9 * (256 + 48) * 256 + 9 * 256 * 256 + 2 * (48 + 256 + 256)
    per_task = modulators + sum(a * b for a, b in downsample) + encoder_norms + aspp + decoder
    expected = {task: per_task + 257 * TASK_CHANNELS["nyud"][task] for task in tasks}
    counts = parameter_counts(network)
    assert counts["shared"] == filter_bank
    assert counts["per_task"] == expected
    assert counts["total"] == filter_bank + sum(expected.values())
    assert abs(filter_bank - 10.99e6) < 0.01e6 and abs(per_task - 7.0e6) < 0.05e6  # A4's derived figures


def test_resnet18_layer_names_follow_torchvision():
    names = [layer.name for layer in resnet((64, 64, 3), width=0.125).layers if layer.weights]
    expected = ["conv1", "bn1"]
    for stage in range(1, 5):
        for block in range(2):
            prefix = f"layer{stage}_{block}"
            expected += [f"{prefix}_conv1", f"{prefix}_bn1", f"{prefix}_conv2", f"{prefix}_bn2"]
            if stage > 1 and block == 0:
                expected += [f"{prefix}_downsample_0", f"{prefix}_downsample_1"]
    assert sorted(names) == sorted(expected)


@pytest.mark.parametrize("backbone,norm", [("resnet18", "batch"), ("resnet26", "group")])
def test_deeplab_trunk_gives_the_stride_4_decoder_feature(backbone, norm):
    trunk = deeplab_trunk(backbone, norm, input_shape=(*SHAPE, 3), width=0.25)
    assert tuple(trunk(images(1)).shape) == (1, 9, 11, 64)
    norms = [layer for layer in trunk.layers if isinstance(layer, keras.layers.GroupNormalization)]
    assert bool(norms) == (norm == "group")
    if norm == "group":
        assert trunk.get_layer("layer4_1_conv3").kernel.shape[-1] == 512  # Bottleneck expansion 4 (at width 1/4)
        assert trunk.get_layer("layer4_1_bn3").groups == 32
        assert trunk.get_layer("decoder_low_level_bn").groups == 12  # 24 at full width, ≤ its 12 channels here


def test_save_and_load_round_trip(tmp_path):
    network = build_multitask(config("rcm"))
    for task in network.tasks:
        randomize(network[task], seed=len(task))
    save_network(network, tmp_path)
    loaded = load_network(tmp_path)
    assert loaded.config == network.config
    x = images(2)
    for task in network.tasks:
        np.testing.assert_array_equal(loaded[task](x), network[task](x))
    other = tmp_path / "other"
    save_network(build_multitask(dataclasses.replace(config("rc"), width=0.25)), other)
    (other / "semseg.weights.h5").replace(tmp_path / "semseg.weights.h5")
    with pytest.raises(UserError, match="does not fit task 'semseg'"):
        load_network(tmp_path)
    (tmp_path / "semseg.weights.h5").unlink()
    with pytest.raises(UserError, match="missing"):
        load_network(tmp_path)
    with pytest.raises(UserError, match="no config.json"):
        load_network(tmp_path / "elsewhere")


def test_unknown_task_of_a_network():
    network = build_multitask(dataclasses.replace(config("rc"), tasks=("edge",)))
    with pytest.raises(UserError, match="unknown task 'depth'"):
        network["depth"]
