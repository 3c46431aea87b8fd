import larq as lq
import numpy as np
import pytest

from zippy_tf._compat import keras
from zippy_tf.errors import UserError
from zippy_tf.keypoints.configs import KP2D, ZIPPYPOINT, ZIPPYPOINT_INT8, with_precisions
from zippy_tf.keypoints.model import kp2d_baseline, load_matching_layers, zippypoint
from zippy_tf.quantization.cost import analytic_cost
from zippy_tf.quantization.macro_block import blocks_to_json

SHAPE = (64, 96, 3)


def test_parameter_counts_match_the_reference():
    # counts parsed from the released ZippyPoint weights and computed from KP2D's layer shapes
    zp = zippypoint()
    assert zp.count_params() == 5_202_787
    assert analytic_cost(zp)["kernel_params"] == {"binary": 1_271_808, "int8": 3_912_544, "float": 6_912}
    assert kp2d_baseline().count_params() == 5_317_219


def test_larq_summary_sees_the_binary_weights():
    lines = []
    lq.models.summary(zippypoint(input_shape=SHAPE), print_fn=lines.append)
    text = "\n".join(lines)
    assert "1.27 M" in text or "1,271,808" in text.replace(" ", "") or "1271808" in text


@pytest.mark.parametrize("build", [lambda: zippypoint(input_shape=SHAPE), lambda: kp2d_baseline(input_shape=SHAPE),
                                   lambda: zippypoint(config=ZIPPYPOINT_INT8, input_shape=SHAPE)])
def test_output_maps(build, photos):
    out = build()(photos[:2])
    assert out["score"].shape == (2, 8, 12, 1)
    assert out["location"].shape == (2, 8, 12, 2)
    assert out["descriptor"].shape == (2, 16, 24, 256)
    score, location = out["score"].numpy(), out["location"].numpy()
    assert np.all(score[:, 0] == 0) and np.all(score[:, -1] == 0) and np.all(score[:, :, 0] == 0)
    assert location[..., 0].min() >= 0 and location[..., 0].max() <= 95
    assert location[..., 1].min() >= 0 and location[..., 1].max() <= 63


def test_any_input_size_when_built_dynamic(photos):
    model = zippypoint(input_shape=(None, None, 3))
    assert model(photos[:1, :32, :48])["descriptor"].shape == (1, 8, 12, 256)


def test_config_json_file_builds_the_same_network(tmp_path):
    path = tmp_path / "config.json"
    config = with_precisions(ZIPPYPOINT, stage2="bin", stage3="int8")
    path.write_text(blocks_to_json(config))
    model = zippypoint(config=str(path), input_shape=SHAPE)
    assert model.count_params() == zippypoint(config=config, input_shape=SHAPE).count_params()
    binary = [la for la in model.layers if isinstance(la, lq.layers.QuantConv2D)]
    assert len(binary) == 6  # stage1, stage2, stage4: two binary convs each


def test_weights_save_load_round_trip(tmp_path, photos):
    model = zippypoint(input_shape=SHAPE)
    model.save_weights(tmp_path / "w.h5")
    other = zippypoint(input_shape=SHAPE, weights=str(tmp_path / "w.h5"))
    for key, value in model(photos[:1]).items():
        np.testing.assert_array_equal(other(photos[:1])[key], value)


def test_whole_model_save_load(tmp_path, photos):
    model = kp2d_baseline(input_shape=SHAPE)
    model.save(tmp_path / "m.h5")
    loaded = keras.models.load_model(tmp_path / "m.h5")
    np.testing.assert_allclose(loaded(photos[:1])["score"], model(photos[:1])["score"], atol=1e-6)


BAD = [
    (lambda: zippypoint(input_shape=(60, 96, 3)), "not a multiple of 8"),
    (lambda: zippypoint(config="/no/such.json"), "does not exist"),
    (lambda: zippypoint(config=[b for b in ZIPPYPOINT if b.name != "score_head"]), "lacks the blocks"),
    (lambda: zippypoint(config=[b for b in KP2D if b.name != "pool3"]), "three pooling blocks"),
    (lambda: zippypoint(input_shape=SHAPE, weights="/no/weights.h5"), "does not exist"),
]


@pytest.mark.parametrize("build,message", BAD)
def test_bad_input_is_one_line(build, message):
    with pytest.raises(UserError, match=message) as err:
        build()
    assert "\n" not in str(err.value)


def test_weights_of_another_architecture_are_refused(tmp_path):
    kp2d_baseline(input_shape=SHAPE).save_weights(tmp_path / "kp2d.h5")
    with pytest.raises(UserError, match="do not fit"):
        zippypoint(input_shape=SHAPE, weights=str(tmp_path / "kp2d.h5"))


def test_matching_layers_start_a_binarised_config_from_its_int8_parent(tmp_path):
    parent = zippypoint(config="int8", input_shape=SHAPE)
    parent.save_weights(tmp_path / "int8.h5")
    child = zippypoint(input_shape=SHAPE)
    before = {layer.name: layer.get_weights() for layer in child.layers}
    loaded = load_matching_layers(child, str(tmp_path / "int8.h5"))
    assert "stem_0_conv" in loaded and "decoder_desc_c_conv" in loaded
    assert "stage1_0_bconv" not in loaded  # binary in the child only
    for layer in child.layers:
        source = parent.get_layer(layer.name).get_weights() if layer.name in loaded else before[layer.name]
        for got, want in zip(layer.get_weights(), source):
            np.testing.assert_array_equal(got, want)


def test_matching_layers_refuse_weights_of_another_family(tmp_path):
    keras.Sequential([keras.layers.Dense(2, name="unrelated", input_shape=(3,))]).save_weights(tmp_path / "x.h5")
    with pytest.raises(UserError, match="no layer"):
        load_matching_layers(zippypoint(input_shape=SHAPE), str(tmp_path / "x.h5"))
    with pytest.raises(UserError, match="not an .h5"):
        load_matching_layers(zippypoint(input_shape=SHAPE), str(tmp_path / "missing.h5"))
