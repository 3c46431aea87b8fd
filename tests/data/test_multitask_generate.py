"""The generated multi-task scenes: analytic labels for known cameras, consistent labels for random scenes, the
round trip through the NYUD-MT writer and reader, determinism, and which photos the textures may use."""

import os

import numpy as np
import pytest

from zippy_tf.data import multitask_generate as gen
from zippy_tf.data.multitask import load_multitask
from zippy_tf.data.photos import PHOTOS
from zippy_tf.errors import UserError

TASKS = ["edge", "semseg", "normals", "depth", "sal"]
ROOM = gen.Room(-20.0, 20.0, 10.0, -20.0, 20.0)


def _camera(position, pitch=0.0, size=(5, 7), fx=6.0):
    return gen.Camera.looking(np.array(position, float), 0.0, pitch, 0.0, fx, size)


def test_straight_at_a_wall_gives_constant_depth_and_normal():
    room = gen.Room(-20.0, 20.0, 10.0, -20.0, 3.5)
    scene = gen.render(_camera([0.0, 5.0, 0.25]), (5, 7), room, [])
    np.testing.assert_allclose(scene["depth"], 3.25, rtol=1e-7)
    np.testing.assert_allclose(scene["normals"], np.broadcast_to([0.0, 0.0, -1.0], (5, 7, 3)), atol=1e-12)
    np.testing.assert_array_equal(scene["semseg"], gen.SURFACE_CLASSES["wall"])
    assert not scene["edge"].any() and not scene["sal"].any()


def test_a_camera_pitched_down_sees_the_floor_analytically():
    height, pitch = 1.5, -np.pi / 4
    size = (9, 11)
    camera = _camera([0.0, height, 0.0], pitch, size, fx=20.0)
    scene = gen.render(camera, size, ROOM, [])
    np.testing.assert_array_equal(scene["semseg"], gen.SURFACE_CLASSES["floor"])
    # The centre ray meets the floor after height / sin(45°) along the optical axis; the floor's up normal is
    # (0, -cos 45°, -sin 45°) in camera coordinates (x right, y down, z forward).
    assert scene["depth"][4, 5] == pytest.approx(height * np.sqrt(2.0), rel=1e-7)  # float32
    np.testing.assert_allclose(scene["normals"], np.broadcast_to([0.0, -np.sqrt(0.5), -np.sqrt(0.5)], size + (3,)),
                               atol=1e-7)
    # Every pixel: the point depth · (x, y, 1) lies on the floor plane n·X = -height.
    points = scene["depth"][..., None] * camera.rays(size)
    np.testing.assert_allclose(points @ np.array([0.0, -np.sqrt(0.5), -np.sqrt(0.5)]), -height, rtol=1e-6)


@pytest.mark.parametrize("solid, depth, kind", [
    (gen.Sphere(np.array([0.0, 5.0, 3.0]), 0.5), 2.5, "sphere"),
    (gen.Box(np.array([0.0, 5.0, 3.0]), np.array([0.4, 0.4, 0.6]), 0.0), 2.4, "box"),
    (gen.Cylinder(np.array([0.0, 3.0]), 0.3, 4.0, 6.0), 2.7, "cylinder"),
])
def test_solids_in_front_of_the_camera(solid, depth, kind):
    scene = gen.render(_camera([0.0, 5.0, 0.0]), (5, 7), ROOM, [solid])
    assert scene["depth"][2, 3] == pytest.approx(depth, rel=1e-7)
    np.testing.assert_allclose(scene["normals"][2, 3], [0.0, 0.0, -1.0], atol=1e-7)
    assert scene["semseg"][2, 3] == gen.SURFACE_CLASSES[kind] and scene["sal"][2, 3] == 1.0
    assert scene["semseg"][2, 0] == gen.SURFACE_CLASSES["wall"] and scene["sal"][2, 0] == 0.0
    assert scene["depth"][2, 0] == pytest.approx(20.0)


def test_a_turned_box_shows_its_face_normal():
    box = gen.Box(np.array([0.0, 5.0, 3.0]), np.array([0.4, 0.4, 0.4]), np.pi / 6)
    scene = gen.render(_camera([0.0, 5.0, 0.0]), (5, 7), ROOM, [box])
    # The box's faces are turned 30° about the up axis; the centre ray meets the face whose normal is
    # (−sin 30°, 0, −cos 30°) in the world, and the camera's x axis is the world's −x.
    np.testing.assert_allclose(scene["normals"][2, 3], [np.sin(np.pi / 6), 0.0, -np.cos(np.pi / 6)], atol=1e-7)


@pytest.mark.parametrize("index", range(4))
def test_random_scene_labels_are_consistent(index):
    size = (30, 40)
    scene = gen.render_random_scene(3, index, size)
    surface = scene["surface"]
    assert surface.max() >= 6, "a scene shows at least one solid"
    np.testing.assert_array_equal(scene["sal"], surface >= 6)
    for value in np.unique(surface):  # one class per surface
        assert len(np.unique(scene["semseg"][surface == value])) == 1
    assert set(np.unique(scene["semseg"])) <= set(gen.SURFACE_CLASSES.values())
    np.testing.assert_allclose(np.linalg.norm(scene["normals"], axis=-1), 1.0, atol=1e-6)
    rng = np.random.default_rng([3, index])
    camera, _, _, _ = gen.sample_scene(rng, size)
    assert np.all(np.sum(scene["normals"] * camera.rays(size), axis=-1) < 0), "normals face the camera"
    assert np.all(scene["depth"] > 0)
    # Edges lie on surface discontinuities, and every discontinuity has an edge on at least one side.
    edge = scene["edge"] > 0
    padded = np.pad(surface, 1, mode="edge")
    differs = [padded[1 + dy:1 + dy + size[0], 1 + dx:1 + dx + size[1]] != surface
               for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
    assert edge.any() and np.all(np.any(differs, axis=0)[edge])
    for a, b in ((np.s_[:, :-1], np.s_[:, 1:]), (np.s_[:-1, :], np.s_[1:, :])):
        step = surface[a] != surface[b]
        assert np.all(edge[a][step] | edge[b][step])


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("gen") / "nyud")
    return gen.write_nyud_like(root, 3, 2, size=(24, 32), seed=5)


def test_writer_reader_round_trip(written):
    train = list(load_multitask(written, "nyud", "train", TASKS))
    val = list(load_multitask(written, "nyud", "val", TASKS))
    assert [e["id"] for e in train] == ["000000", "000001", "000002"]
    assert [e["id"] for e in val] == ["000003", "000004"]
    for index, example in enumerate(train + val):
        scene = gen.render_random_scene(5, index, (24, 32))
        for task in ("semseg", "depth", "edge", "sal"):
            np.testing.assert_array_equal(example[task], scene[task])
        cosine = np.sum(example["normals"] * scene["normals"], axis=-1) / np.linalg.norm(example["normals"], axis=-1)
        assert np.degrees(np.arccos(np.clip(cosine, -1, 1))).mean() < 2.0  # 8-bit JPEG normals
        assert np.abs(example["image"].astype(int) - scene["image"]).mean() < 8.0  # JPEG image


def test_determinism(written, tmp_path):
    again = gen.write_nyud_like(str(tmp_path / "again"), 4, 1, size=(24, 32), seed=5)
    other = gen.write_nyud_like(str(tmp_path / "other"), 3, 2, size=(24, 32), seed=6)
    first = {e["id"]: e for e in load_multitask(written, "nyud", "train", TASKS)}
    for example in load_multitask(again, "nyud", "train", TASKS):
        if example["id"] in first:  # the same scene ids of the same seed, whatever the split sizes
            for key in ["image"] + TASKS:
                np.testing.assert_array_equal(example[key], first[example["id"]][key])
    different = next(load_multitask(other, "nyud", "train", ["depth"]))
    assert not np.array_equal(different["depth"], first["000000"]["depth"])


def test_textures_come_only_from_the_texture_photos(monkeypatch):
    assert not set(gen.TEXTURE_PHOTOS) & set(gen.PRETRAIN_PHOTOS)
    assert set(gen.TEXTURE_PHOTOS) | set(gen.PRETRAIN_PHOTOS) == set(PHOTOS)
    assert len(gen.PRETRAIN_PHOTOS) >= 6
    used = []
    real = gen.load_photo
    monkeypatch.setattr(gen, "load_photo", lambda name: used.append(name) or real(name))
    gen._texture.cache_clear()
    try:
        for index in range(12):
            gen.render_random_scene(0, index, (12, 16))
    finally:
        gen._texture.cache_clear()
    assert used and set(used) <= set(gen.TEXTURE_PHOTOS)


def test_bad_arguments(tmp_path, written):
    with pytest.raises(UserError, match="at least one scene per split"):
        gen.write_nyud_like(str(tmp_path / "x"), 2, 0)
    with pytest.raises(UserError, match="not an empty folder"):
        gen.write_nyud_like(written, 1, 1, size=(12, 16))
    assert sorted(os.listdir(written)) == sorted(gen.NYUD_FOLDERS)
