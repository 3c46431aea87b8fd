"""CompL's self-supervised tasks: rotation, InfoNCE with the memory bank, DenseCL matching, momentum update, views."""

import numpy as np
import pytest

from zippy_tf import keras, tf
from zippy_tf.data.multitask_generate import write_nyud_like
from zippy_tf.data.multitask_pipeline import normalize_image
from zippy_tf.errors import UserError
from zippy_tf.multitask.ssl import (
    GridPooling, check_ssl, dense_positives, densecl_loss, info_nce, momentum_update, rotate, rotation_loss, ssl_head,
    update_bank,
)
from zippy_tf.multitask.views import (
    VIEW_PRESETS, ViewConfig, distort_view, folder_images, gaussian_blur, offset_crop_pair, ssl_dataset, ssl_views,
)

TAU = 0.4


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _info_nce_numpy(q, k, bank, index):
    """Eq. 3.2 written out: −log exp(q·k⁺/τ) / (exp(q·k⁺/τ) + Σ over the other slots exp(q·m_j/τ))."""
    q, k = _unit(q), _unit(k)
    losses = []
    for i in range(len(q)):
        negatives = [q[i] @ bank[j] for j in range(len(bank)) if j != index[i] % len(bank)]
        logits = np.array([q[i] @ k[i]] + negatives) / TAU
        losses.append(-logits[0] + np.log(np.exp(logits).sum()))
    return np.array(losses)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_rotate_turns_counter_clockwise_by_the_label(turns):
    images = np.random.default_rng(turns).random((2, 5, 5, 3)).astype(np.float32)
    rotated = rotate(tf.constant(images), tf.constant([turns, (turns + 1) % 4]))
    np.testing.assert_array_equal(rotated[0], np.rot90(images[0], turns, axes=(0, 1)))
    np.testing.assert_array_equal(rotated[1], np.rot90(images[1], (turns + 1) % 4, axes=(0, 1)))


def test_rotate_keeps_the_size_of_non_square_images():
    images = np.random.default_rng(0).random((4, 6, 8, 3)).astype(np.float32)
    rotated = rotate(tf.constant(images), tf.constant([0, 1, 2, 3]))
    assert rotated.shape == images.shape
    np.testing.assert_array_equal(rotated[2], np.rot90(images[2], 2, axes=(0, 1)))


def test_rotation_views_label_the_turn_they_apply():
    image = np.random.default_rng(1).random((8, 8, 3)).astype(np.float32) * 255
    plain = ViewConfig(offset=0, scale=1.0, strength=0.0, blur_probability=0.0, flip_probability=0.0, normalize=False)
    seen = set()
    for draw in range(24):
        sample = ssl_views("rotation", tf.constant(image), 0, plain, tf.constant([draw, 7]))
        turns = int(sample["rotation"])
        seen.add(turns)
        np.testing.assert_allclose(sample["query"], np.rot90(image, turns, axes=(0, 1)), rtol=1e-6)
    assert seen == {0, 1, 2, 3}


@pytest.mark.parametrize("ssl", ["rotation", "densecl"])
def test_views_are_imagenet_normalised_like_the_supervised_images(ssl):
    image = tf.constant(np.random.default_rng(2).uniform(0, 255, (12, 12, 3)).astype(np.float32))
    seed = tf.constant([3, 4])
    raw = ssl_views(ssl, image, 0, ViewConfig(offset=2, normalize=False), seed)
    normalised = ssl_views(ssl, image, 0, ViewConfig(offset=2), seed)
    for name in ("query", "key") if ssl == "densecl" else ("query",):
        np.testing.assert_allclose(normalised[name], normalize_image(raw[name]), rtol=1e-5, atol=1e-5)


def test_rotation_loss_is_cross_entropy():
    logits = np.array([[2.0, 0.0, -1.0, 0.5], [0.0, 0.0, 0.0, 0.0]], np.float32)
    expected = [-(2.0 - np.log(np.exp(logits[0]).sum())), np.log(4.0)]
    np.testing.assert_allclose(rotation_loss(tf.constant(logits), tf.constant([0, 3])), expected, rtol=1e-6)


def test_info_nce_equals_eq_3_2_on_hand_made_vectors():
    q = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 1.0]], np.float32)
    k = np.array([[0.8, 0.6, 0.0], [0.0, 1.0, 0.0]], np.float32)
    bank = _unit(np.array([[1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1], [-1, 0, 0]], np.float32))
    index = np.array([1, 8])  # 8 mod 5: slot 3
    loss = info_nce(tf.constant(q), tf.constant(k), tf.constant(bank), tf.constant(index), TAU)
    np.testing.assert_allclose(loss, _info_nce_numpy(q, k, bank, index), rtol=1e-5)


def test_memory_bank_own_slot_is_not_a_negative():
    rng = np.random.default_rng(2)
    q, k = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    bank = _unit(rng.normal(size=(6, 4)).astype(np.float32))
    index = np.array([0, 2, 5])
    before = info_nce(q, k, tf.constant(bank), index, TAU).numpy()
    for i, slot in enumerate(index):
        changed = bank.copy()
        changed[slot] = _unit(q[i])  # the most confusable negative possible, in sample i's own slot
        after = info_nce(q, k, tf.constant(changed), index, TAU).numpy()
        others = np.arange(3) != i
        np.testing.assert_allclose(after[i], before[i], rtol=1e-6)
        assert np.all(np.abs(after[others] - before[others]) > 1e-4)  # for the other samples it is a negative


def test_dense_positive_is_the_argmax_cosine_cell():
    rng = np.random.default_rng(3)
    query = rng.normal(size=(2, 4, 5)).astype(np.float32)
    order = np.array([[2, 0, 3, 1], [1, 3, 0, 2]])
    # key cell j holds query cell order[j], scaled: cosine 1 exactly at the permuted cell
    key = np.stack([query[b][order[b]] * rng.uniform(0.5, 3.0, (4, 1)) for b in range(2)]).astype(np.float32)
    np.testing.assert_array_equal(dense_positives(query, key), np.argsort(order, axis=1))
    other = rng.normal(size=(2, 4, 5)).astype(np.float32)
    cosine = np.einsum("bqc,bkc->bqk", _unit(query), _unit(other))
    np.testing.assert_array_equal(dense_positives(query, other), cosine.argmax(-1))


def test_densecl_loss_combines_global_and_matched_dense_terms():
    rng = np.random.default_rng(4)
    batch, cells, dim, slots = 2, 4, 3, 5

    def outputs():
        return {"global": rng.normal(size=(batch, dim)).astype(np.float32),
                "dense": rng.normal(size=(batch, cells, dim)).astype(np.float32),
                "identity": rng.normal(size=(batch, cells, 6)).astype(np.float32)}

    query, key = outputs(), outputs()
    global_bank = _unit(rng.normal(size=(slots, dim))).astype(np.float32)
    dense_bank = _unit(rng.normal(size=(slots, dim))).astype(np.float32)
    index = np.array([4, 1])
    loss = densecl_loss(query, key, tf.constant(global_bank), tf.constant(dense_bank), index, temperature=TAU,
                        dense_weight=0.7)
    match = np.einsum("bqc,bkc->bqk", _unit(query["identity"]), _unit(key["identity"])).argmax(-1)
    dense = [_info_nce_numpy(query["dense"][b], key["dense"][b][match[b]], dense_bank, np.repeat(index[b], cells))
             for b in range(batch)]
    expected = 0.3 * _info_nce_numpy(query["global"], key["global"], global_bank, index) + 0.7 * np.mean(dense, 1)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def _momentum_case(strategy):
    with strategy.scope():
        key = [tf.Variable([1.0, -2.0, 4.0]), tf.Variable([[0.5]])]
        online = [tf.Variable([3.0, 2.0, 0.0]), tf.Variable([[-1.5]])]
    strategy.run(tf.function(lambda: momentum_update(key, online, 0.9)))
    np.testing.assert_allclose(key[0].numpy(), [0.9 * 1 + 0.1 * 3, 0.9 * -2 + 0.1 * 2, 0.9 * 4], rtol=1e-6)
    np.testing.assert_allclose(key[1].numpy(), [[0.9 * 0.5 - 0.1 * 1.5]], rtol=1e-6)
    np.testing.assert_array_equal(online[0].numpy(), [3.0, 2.0, 0.0])


@pytest.mark.parametrize("mirrored", [False, True])
def test_momentum_update_is_the_exact_ema(mirrored):
    _momentum_case(tf.distribute.MirroredStrategy(["/cpu:0"]) if mirrored else tf.distribute.get_strategy())


def test_update_bank_writes_normalised_keys_to_their_slots():
    bank = tf.Variable(np.zeros((5, 2), np.float32))
    update_bank(bank, tf.constant([[3.0, 4.0], [0.0, 2.0]]), tf.constant([1, 9]))
    np.testing.assert_allclose(bank.numpy(), [[0, 0], [0.6, 0.8], [0, 0], [0, 0], [0, 1]], atol=1e-7)


@pytest.mark.parametrize("size,grid", [((8, 8), 4), ((7, 10), 3)])
def test_grid_pooling_matches_adaptive_average_pooling(size, grid):
    x = np.random.default_rng(5).random((2, *size, 3)).astype(np.float32)
    expected = np.zeros((2, grid, grid, 3), np.float32)
    for i in range(grid):
        for j in range(grid):
            rows = slice(i * size[0] // grid, -(-(i + 1) * size[0] // grid))
            cols = slice(j * size[1] // grid, -(-(j + 1) * size[1] // grid))
            expected[:, i, j] = x[:, rows, cols].mean(axis=(1, 2))
    layer = GridPooling(grid)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5)
    assert GridPooling.from_config(layer.get_config()).grid == grid


def test_grid_larger_than_feature_map_is_a_user_error():
    with pytest.raises(UserError, match="smaller than the DenseCL grid"):
        GridPooling(8)(tf.zeros((1, 4, 4, 2)))


@pytest.mark.parametrize("ssl,outputs", [
    ("rotation", {"logits": (4,)}),
    ("moco", {"global": (16,)}),
    ("densecl", {"global": (16,), "dense": (4, 16), "dense_global": (16,), "identity": (4, 6)}),
])
def test_heads_give_the_outputs_their_losses_read(ssl, outputs):
    head = ssl_head(ssl, (8, 8, 6), hidden=12, embedding=16, grid=2)
    result = head(tf.zeros((3, 8, 8, 6)))
    assert {k: tuple(v.shape[1:]) for k, v in result.items()} == outputs
    clone = keras.models.clone_model(head)  # what the momentum encoder is built from
    assert [w.shape for w in clone.weights] == [w.shape for w in head.weights]


@pytest.mark.parametrize("name", ["simclr", "None", ""])
def test_unknown_ssl_is_a_user_error(name):
    with pytest.raises(UserError, match="unknown ssl"):
        check_ssl(name)


@pytest.mark.parametrize("scale", [1.0, 1.5])
def test_offset_crops_are_a_fixed_offset_apart(scale):
    image = tf.constant(np.random.default_rng(6).random((16, 20, 3)).astype(np.float32))
    config = ViewConfig(crop_size=(10, 12), offset=3, scale=scale)
    for draw in range(5):
        first, second = offset_crop_pair(image, config, tf.constant([draw, 0]))
        assert first.shape == second.shape == (10, 12, 3)
        np.testing.assert_array_equal(first[3:, 3:], second[:-3, :-3])


def test_offset_crops_resized_to_the_output_size():
    image = tf.zeros((16, 16, 3))
    config = ViewConfig(crop_size=(8, 8), offset=2, scale=1.0, output_size=(16, 16))
    views = offset_crop_pair(image, config, tf.constant([0, 0]))
    assert [tuple(v.shape) for v in views] == [(16, 16, 3)] * 2


def test_view_config_round_trips_and_rejects_unknown_settings():
    for config in VIEW_PRESETS.values():
        assert ViewConfig.from_dict(config.to_dict()) == config
    with pytest.raises(UserError, match="unknown view settings distance"):
        ViewConfig.from_dict({"distance": 8})


@pytest.mark.parametrize("config,ssl,message", [
    (ViewConfig(crop_size=(8, 8), offset=8, scale=2.0), "densecl", "do not overlap"),
    (ViewConfig(crop_size=(16, 16), offset=1, scale=1.0), "moco", "does not fit"),
])
def test_bad_view_configurations_are_user_errors(config, ssl, message):
    with pytest.raises(UserError, match=message):
        config.check((16, 16), ssl)


def test_non_overlapping_views_are_fine_for_moco():
    ViewConfig(crop_size=(8, 8), offset=8, scale=2.0).check((16, 16), "moco")


def test_distort_view_flips_and_keeps_the_pixel_range():
    view = np.random.default_rng(9).uniform(0, 255, (10, 12, 3)).astype(np.float32)
    flip_only = ViewConfig(strength=0.0, blur_probability=0.0, flip_probability=1.0)
    np.testing.assert_array_equal(distort_view(tf.constant(view), flip_only, tf.constant([0, 0])), view[:, ::-1])
    distorted = [distort_view(tf.constant(view), ViewConfig(), tf.constant([draw, 1])).numpy() for draw in range(8)]
    assert all(d.min() >= -1e-3 and d.max() <= 255.001 for d in distorted)
    assert sum(not np.allclose(d, view) and not np.allclose(d, view[:, ::-1]) for d in distorted) >= 4


def test_gaussian_blur_matches_a_separable_numpy_filter():
    image = np.random.default_rng(7).random((14, 15, 3)).astype(np.float32)
    sigma = 1.3
    taps = np.arange(-6, 7)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(image, ((6, 6), (6, 6), (0, 0)), mode="reflect")
    rows = sum(kernel[i] * padded[i:i + 14] for i in range(13))
    expected = sum(kernel[i] * rows[:, i:i + 15] for i in range(13))
    np.testing.assert_allclose(gaussian_blur(tf.constant(image), sigma), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("ssl", ["rotation", "moco", "densecl"])
def test_ssl_dataset_elements_and_determinism(ssl):
    images = tf.data.Dataset.from_tensor_slices(np.random.default_rng(8).random((5, 16, 16, 3)).astype(np.float32))
    config = ViewConfig(offset=2)
    first = next(iter(ssl_dataset(images, ssl, batch_size=4, views=config, seed=3)))
    again = next(iter(ssl_dataset(images, ssl, batch_size=4, views=config, seed=3)))
    keys = {"rotation": {"query", "rotation"}, "moco": {"query", "key", "index"}}.get(ssl, {"query", "key", "index"})
    assert set(first) == keys
    assert first["query"].shape == (4, 16, 16, 3)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    if "index" in first:
        assert len(set(first["index"].numpy())) == 4 and first["index"].numpy().max() < 5


def test_ssl_dataset_bad_inputs_are_user_errors():
    images = tf.data.Dataset.from_tensor_slices(np.zeros((3, 8, 8, 3), np.float32))
    with pytest.raises(UserError, match="larger than the 3 SSL images"):
        ssl_dataset(images, "moco", batch_size=4)
    with pytest.raises(UserError, match="ssl 'none' has no views"):
        ssl_dataset(images, "none", batch_size=2)


def test_folder_images_read_a_split_in_order(tmp_path):
    root = write_nyud_like(str(tmp_path / "nyud"), 3, 1, size=(12, 16))
    images = list(folder_images(root, "nyud", ["000002", "000000"]).as_numpy_iterator())
    assert [i.shape for i in images] == [(12, 16, 3)] * 2 and images[0].dtype == np.uint8
    assert not np.array_equal(images[0], images[1])
    resized = next(iter(folder_images(root, "nyud", ["000002"], size=(8, 8))))
    assert resized.shape == (8, 8, 3)
    with pytest.raises(UserError, match="is missing"):
        folder_images(root, "nyud", ["000009"])
