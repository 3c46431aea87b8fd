"""A generated multi-task data set in the NYUD-MT layout: ray-cast rooms with exact per-pixel labels.

Each scene is a room (floor, ceiling, four walls) holding a few boxes, spheres and vertical cylinders, textured
with the scikit-image photographs of :data:`TEXTURE_PHOTOS` (tinted, Lambert-shaded by a ceiling light) and seen
by a random pinhole camera. The rays are cast in numpy, all pixels at once, and every label comes from the hit
geometry, not from the image:

- semseg: the NYU-40 class of the hit surface (:data:`SURFACE_CLASSES`: wall 1, floor 2, ceiling 22, box 29
  "box", cylinder 39 "otherfurniture", sphere 40 "otherprop"); no pixel is void (0);
- depth: the z-depth of the hit in metres (distance along the optical axis);
- normals: the unit surface normal in camera coordinates (x right, y down, z forward), pointing to the camera;
- edge: pixels whose 4-neighbour lies on another surface (each wall, the floor, the ceiling and each solid is
  one surface) and that are not farther than that neighbour, i.e. the occluding side of depth discontinuities
  and both sides of the room's corners; creases inside one solid (a box's edges) are not edges;
- sal (our extension, ``saliency/<id>.png``): the foreground solids.

Files are written as the NYUD-MT layout stores them (:mod:`zippy_tf.data.multitask`), so the round trip loses
what those formats lose: JPEG on the image and the 8-bit normals (written at quality 100 with 4:4:4 chroma).

The photographs of :data:`PRETRAIN_PHOTOS` are never used here, left for pretraining the encoder on images the
multi-task set does not contain.
"""

import dataclasses
import functools
import os

import cv2
import numpy as np

from zippy_tf.data.image_folder import new_folder
from zippy_tf.data.multitask import encode_normals
from zippy_tf.data.photos import PHOTOS, load_photo
from zippy_tf.errors import UserError

# Textures of the surfaces, by kind (pools overlap, so the class must also be told from the geometry).
SURFACE_TEXTURES = {
    "wall": ("brick", "page", "text"),
    "floor": ("gravel", "grass", "coins"),
    "ceiling": ("moon", "cell"),
    "box": ("immunohistochemistry", "coins", "text"),
    "sphere": ("moon", "cell", "immunohistochemistry"),
    "cylinder": ("coins", "brick", "gravel"),
}
TEXTURE_PHOTOS = tuple(sorted({name for pool in SURFACE_TEXTURES.values() for name in pool}))
PRETRAIN_PHOTOS = tuple(name for name in PHOTOS if name not in TEXTURE_PHOTOS)
SURFACE_CLASSES = {"wall": 1, "floor": 2, "ceiling": 22, "box": 29, "cylinder": 39, "sphere": 40}
# The room's six faces, in the order Room.intersect numbers them: (axis, side) -> kind.
ROOM_FACES = (("wall", 0, 0), ("wall", 0, 1), ("floor", 1, 0), ("ceiling", 1, 1), ("wall", 2, 0), ("wall", 2, 1))
_TINY = 1e-12


def _safe(d):
    """Direction components with exact zeros moved off zero, so slab divisions give ±inf-like values, not NaN."""
    return np.where(np.abs(d) < _TINY, _TINY, d)


def rotation_y(angle):
    """The rotation by ``angle`` radians about the world's up (y) axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


@dataclasses.dataclass
class Camera:
    """A pinhole camera: ``rotation`` maps camera coordinates (x right, y down, z forward) to the world's (y up),
    ``position`` is its centre in the world; pixel (u, v) looks through (u + 0.5, v + 0.5)."""

    position: np.ndarray
    rotation: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def looking(cls, position, yaw, pitch, roll, fx, size):
        """A camera at ``position`` facing world +z turned by ``yaw`` (left-hand turn towards +x), ``pitch``
        (up > 0) and ``roll`` (radians), with square pixels and the principal point at the image centre."""
        forward = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
        right = np.cross([0.0, -1.0, 0.0], forward)
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        c, s = np.cos(roll), np.sin(roll)
        right, down = c * right + s * down, -s * right + c * down
        height, width = size
        return cls(np.asarray(position, np.float64), np.stack([right, down, forward], axis=1), fx, fx,
                   width / 2.0, height / 2.0)

    def rays(self, size):
        """Per-pixel ray directions (H, W, 3) in camera coordinates, scaled so their z is 1: a hit at parameter t
        has z-depth t."""
        height, width = size
        v, u = np.mgrid[0:height, 0:width] + 0.5
        return np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones_like(u)], axis=-1)


@dataclasses.dataclass
class Room:
    """The inside of the box [x0, x1] × [0, height] × [z0, z1]; the camera must be inside."""

    x0: float
    x1: float
    height: float
    z0: float
    z1: float

    def intersect(self, origin, directions):
        """Exit distance, inward normal, in-plane texture coordinates (metres) and face index (ROOM_FACES)."""
        lo = np.array([self.x0, 0.0, self.z0])
        hi = np.array([self.x1, self.height, self.z1])
        d = _safe(directions)
        side = d > 0
        t_axes = (np.where(side, hi, lo) - origin) / d
        axis = np.argmin(t_axes, axis=-1)
        t = np.take_along_axis(t_axes, axis[..., None], -1)[..., 0]
        hit_side = np.take_along_axis(side, axis[..., None], -1)[..., 0]
        normal = np.zeros(directions.shape)
        np.put_along_axis(normal, axis[..., None], np.where(hit_side, -1.0, 1.0)[..., None], -1)
        point = origin + t[..., None] * directions
        uv = np.where((axis == 0)[..., None], point[..., [2, 1]],
                      np.where((axis == 1)[..., None], point[..., [0, 2]], point[..., [0, 1]]))
        return t, normal, uv, 2 * axis + hit_side


@dataclasses.dataclass
class Box:
    """A box of half sizes ``half`` (x, y, z) centred at ``center`` and turned by ``yaw`` about the up axis."""

    center: np.ndarray
    half: np.ndarray
    yaw: float = 0.0
    kind = "box"

    def intersect(self, origin, directions):
        rotation = rotation_y(self.yaw)
        o = (np.asarray(origin) - self.center) @ rotation  # world -> box coordinates (rows times R = Rᵀ·v)
        d = _safe(directions @ rotation)
        t1, t2 = (-self.half - o) / d, (self.half - o) / d
        near, far = np.minimum(t1, t2), np.maximum(t1, t2)
        axis = np.argmax(near, axis=-1)
        t_near = np.take_along_axis(near, axis[..., None], -1)[..., 0]
        hit = (t_near <= far.min(axis=-1)) & (t_near > 0)
        normal = np.zeros(d.shape)
        sign = -np.sign(np.take_along_axis(d, axis[..., None], -1))
        np.put_along_axis(normal, axis[..., None], sign, -1)
        point = o + t_near[..., None] * d
        uv = np.where((axis == 0)[..., None], point[..., [2, 1]],
                      np.where((axis == 1)[..., None], point[..., [0, 2]], point[..., [0, 1]]))
        return np.where(hit, t_near, np.inf), normal @ rotation.T, uv


@dataclasses.dataclass
class Sphere:
    center: np.ndarray
    radius: float
    kind = "sphere"

    def intersect(self, origin, directions):
        oc = np.asarray(origin) - self.center
        a = np.sum(directions * directions, axis=-1)
        b = 2.0 * directions @ oc
        disc = b * b - 4.0 * a * (oc @ oc - self.radius ** 2)
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a)
        t = np.where((disc >= 0) & (t > 0), t, np.inf)
        normal = (oc + np.where(np.isfinite(t), t, 0.0)[..., None] * directions) / self.radius
        uv = self.radius * np.stack([np.arctan2(normal[..., 2], normal[..., 0]),
                                     np.arcsin(np.clip(normal[..., 1], -1, 1))], axis=-1)
        return t, normal, uv


@dataclasses.dataclass
class Cylinder:
    """A vertical cylinder of ``radius`` around the axis through (x, z) = ``axis_xz``, from height y0 to y1."""

    axis_xz: np.ndarray
    radius: float
    y0: float
    y1: float
    kind = "cylinder"

    def intersect(self, origin, directions):
        o = np.asarray(origin, np.float64) - np.array([self.axis_xz[0], 0.0, self.axis_xz[1]])
        dx, dy, dz = directions[..., 0], directions[..., 1], directions[..., 2]
        a = np.maximum(dx * dx + dz * dz, _TINY)
        b = 2.0 * (dx * o[0] + dz * o[2])
        disc = b * b - 4.0 * a * (o[0] ** 2 + o[2] ** 2 - self.radius ** 2)
        t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a)
        y_side = o[1] + t_side * dy
        t_side = np.where((disc >= 0) & (t_side > 0) & (y_side >= self.y0) & (y_side <= self.y1), t_side, np.inf)
        t_caps = []
        for y in (self.y0, self.y1):
            t = (y - o[1]) / _safe(dy)
            inside = (o[0] + t * dx) ** 2 + (o[2] + t * dz) ** 2 <= self.radius ** 2
            t_caps.append(np.where(inside & (t > 0), t, np.inf))
        t = np.minimum(t_side, np.minimum(*t_caps))
        point = o + np.where(np.isfinite(t), t, 0.0)[..., None] * directions
        side = t == t_side
        cap_sign = np.where(t == t_caps[1], 1.0, -1.0)
        normal = np.where(side[..., None], np.stack([point[..., 0], 0 * dy, point[..., 2]], -1) / self.radius,
                          np.stack([0 * dy, cap_sign, 0 * dy], -1))
        uv = np.where(side[..., None],
                      np.stack([self.radius * np.arctan2(point[..., 2], point[..., 0]), point[..., 1]], -1),
                      point[..., [0, 2]])
        return t, normal, uv


@functools.lru_cache(maxsize=None)
def _texture(name):
    """A texture photo as float32 RGB, its short side resized to 256 (less aliasing when minified)."""
    image = load_photo(name)[..., ::-1]
    scale = 256.0 / min(image.shape[:2])
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image.astype(np.float32)


@dataclasses.dataclass
class Appearance:
    """How a surface looks: a texture photo, a colour tint, the photo pixels per metre and an offset (pixels)."""

    photo: str
    tint: np.ndarray
    pixels_per_metre: float
    offset: np.ndarray


def _shade(uv, appearance):
    """The tinted texture colours (N, 3) at texture coordinates ``uv`` (N, 2), in metres."""
    texture = _texture(appearance.photo)
    rows, cols = texture.shape[:2]
    count = len(uv)
    # cv2.remap wants maps narrower than 32767: lay the N samples out as rows of 1024.
    coords = np.zeros((-(-count // 1024) * 1024, 2))
    coords[:count] = uv * appearance.pixels_per_metre + appearance.offset
    map_x = np.mod(coords[:, 0], cols).astype(np.float32).reshape(-1, 1024)
    map_y = np.mod(-coords[:, 1], rows).astype(np.float32).reshape(-1, 1024)
    colour = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    return colour.reshape(-1, 3)[:count] * appearance.tint


def _edges(surface, depth):
    """Pixels with a 4-neighbour on another surface that is not nearer (the occluding side; both at ties)."""
    edge = np.zeros(surface.shape, bool)
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        boundary = surface[a] != surface[b]
        edge[a] |= boundary & (depth[a] <= depth[b])
        edge[b] |= boundary & (depth[b] <= depth[a])
    return edge


def render(camera, size, room, solids, appearances=None, light=None):
    """Ray-casts a room and its solids.

    Args:
        camera: a :class:`Camera` inside ``room``.
        size: (height, width) in pixels.
        room: a :class:`Room`.
        solids: :class:`Box`, :class:`Sphere` and :class:`Cylinder` objects, outside of which the camera lies.
        appearances: one :class:`Appearance` per surface (the room's six faces in ROOM_FACES order, then the
            solids), or None for flat grey.
        light: the point light's world position; the ceiling's centre when None.

    Returns:
        A dict of the label conventions of :mod:`zippy_tf.data.multitask`: "image" (H, W, 3) uint8 RGB, "semseg"
        uint8, "depth" float32 z-depth in metres, "normals" (H, W, 3) float32 camera coordinates, "edge" and "sal"
        float32 {0, 1}, plus "surface" (H, W) int32 (0…5 the room's faces, 6 + i solid i).
    """
    d_cam = camera.rays(size)
    directions = d_cam @ camera.rotation.T
    t, normal, uv, surface = room.intersect(camera.position, directions)
    for index, solid in enumerate(solids):
        t_s, normal_s, uv_s = solid.intersect(camera.position, directions)
        nearer = t_s < t
        t = np.where(nearer, t_s, t)
        normal = np.where(nearer[..., None], normal_s, normal)
        uv = np.where(nearer[..., None], uv_s, uv)
        surface = np.where(nearer, 6 + index, surface)
    kinds = [kind for kind, _, _ in ROOM_FACES] + [solid.kind for solid in solids]
    classes = np.array([SURFACE_CLASSES[kind] for kind in kinds], np.uint8)
    if light is None:
        light = np.array([(room.x0 + room.x1) / 2, room.height - 0.05, (room.z0 + room.z1) / 2])
    point = camera.position + t[..., None] * directions
    to_light = light - point
    to_light /= np.linalg.norm(to_light, axis=-1, keepdims=True)
    shading = 0.35 + 0.65 * np.clip(np.sum(normal * to_light, axis=-1), 0.0, 1.0)
    colour = np.full(size + (3,), 128.0, np.float32)
    if appearances is not None:
        if len(appearances) != len(kinds):
            raise UserError(f"{len(appearances)} appearances for {len(kinds)} surfaces; pass one per surface")
        for index, appearance in enumerate(appearances):
            mask = surface == index
            if mask.any():
                colour[mask] = _shade(uv[mask], appearance)
    depth = t.astype(np.float32)
    return {
        "image": np.clip(colour * shading[..., None], 0, 255).round().astype(np.uint8),
        "semseg": classes[surface],
        "depth": depth,
        "normals": (normal @ camera.rotation).astype(np.float32),  # world -> camera: rows times R = Rᵀ·n
        "edge": _edges(surface, depth).astype(np.float32),
        "sal": (surface >= 6).astype(np.float32),
        "surface": surface.astype(np.int32),
    }


def _appearance(rng, kind):
    pool = SURFACE_TEXTURES[kind]
    return Appearance(photo=pool[rng.integers(len(pool))], tint=rng.uniform(0.45, 1.0, 3).astype(np.float32),
                      pixels_per_metre=float(rng.uniform(80, 200)), offset=rng.uniform(0, 512, 2))


def sample_scene(rng, size):
    """A random room, camera, solids (2 to 5, on the floor in front of the camera) and appearances."""
    width, depth, height = rng.uniform(3.0, 6.0), rng.uniform(3.0, 6.0), rng.uniform(2.4, 3.2)
    room = Room(-width / 2, width / 2, height, -depth / 2, depth / 2)
    position = np.array([rng.uniform(room.x0 + 0.4, room.x1 - 0.4), rng.uniform(1.0, 1.7),
                         room.z0 + rng.uniform(0.2, 0.8)])
    yaw = rng.uniform(-0.6, 0.6)
    fov = np.deg2rad(rng.uniform(55.0, 70.0))
    camera = Camera.looking(position, yaw, rng.uniform(-0.5, 0.0), rng.uniform(-0.08, 0.08),
                            size[1] / (2.0 * np.tan(fov / 2)), size)
    solids = []
    for _ in range(rng.integers(2, 6)):
        heading = yaw + rng.uniform(-fov / 2, fov / 2)
        distance = rng.uniform(1.3, 3.5)
        x = np.clip(position[0] + distance * np.sin(heading), room.x0 + 0.6, room.x1 - 0.6)
        z = np.clip(position[2] + distance * np.cos(heading), room.z0 + 1.6, room.z1 - 0.6)
        kind = ("box", "sphere", "cylinder")[rng.integers(3)]
        if kind == "box":
            half = rng.uniform([0.15, 0.1, 0.15], [0.55, 0.6, 0.55])
            solids.append(Box(np.array([x, half[1], z]), half, rng.uniform(0, np.pi / 2)))
        elif kind == "sphere":
            radius = rng.uniform(0.15, 0.45)
            solids.append(Sphere(np.array([x, radius + rng.choice([0.0, rng.uniform(0.2, 0.8)]), z]), radius))
        else:
            solids.append(Cylinder(np.array([x, z]), rng.uniform(0.1, 0.35), 0.0, rng.uniform(0.3, 1.5)))
    kinds = [kind for kind, _, _ in ROOM_FACES] + [solid.kind for solid in solids]
    return camera, room, solids, [_appearance(rng, kind) for kind in kinds]


def render_random_scene(seed, index, size):
    """Scene ``index`` of the set of ``seed`` at ``size`` (H, W), rendered (see :func:`render`)."""
    rng = np.random.default_rng([seed, index])
    camera, room, solids, appearances = sample_scene(rng, size)
    return render(camera, size, room, solids, appearances)


def _save_mat(path, field, array):
    import scipy.io

    scipy.io.savemat(path, {field: array}, do_compression=True)


def write_scene(root, example_id, scene):
    """Writes one rendered scene into the NYUD-MT folders of ``root`` (which must exist)."""
    cv2.imwrite(os.path.join(root, "images", f"{example_id}.jpg"), scene["image"][..., ::-1],
                [cv2.IMWRITE_JPEG_QUALITY, 95])
    _save_mat(os.path.join(root, "segmentation", f"{example_id}.mat"), "segmentation", scene["semseg"])
    _save_mat(os.path.join(root, "depth", f"{example_id}.mat"), "depth", scene["depth"])
    cv2.imwrite(os.path.join(root, "normals", f"{example_id}.jpg"), encode_normals(scene["normals"])[..., ::-1],
                [cv2.IMWRITE_JPEG_QUALITY, 100, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    cv2.imwrite(os.path.join(root, "edge", f"{example_id}.png"), (scene["edge"] * 255).astype(np.uint8))
    cv2.imwrite(os.path.join(root, "saliency", f"{example_id}.png"), (scene["sal"] * 255).astype(np.uint8))


NYUD_FOLDERS = ("images", "segmentation", "depth", "normals", "edge", "saliency", "gt_sets")


def write_nyud_like(root, n_train, n_val, size=(120, 160), seed=0):
    """Writes a generated NYUD-MT-layout set of ``n_train`` + ``n_val`` scenes into a new folder ``root``.

    Scene ids are ``000000``…; the first ``n_train`` are listed in ``gt_sets/train.txt``, the rest in
    ``gt_sets/val.txt``. Scene i depends only on (seed, i), so a larger set extends a smaller one with the same seed.
    The folder is written aside and renamed when complete.

    Returns:
        ``root``.
    """
    size = tuple(int(s) for s in size)
    if n_train < 1 or n_val < 1 or len(size) != 2 or min(size) < 8:
        raise UserError(f"n_train={n_train}, n_val={n_val}, size={size}: need at least one scene per split and "
                        "a (height, width) of at least 8x8")
    with new_folder(root) as partial:
        for folder in NYUD_FOLDERS:
            os.mkdir(os.path.join(partial, folder))
        ids = [f"{index:06d}" for index in range(n_train + n_val)]
        for index, example_id in enumerate(ids):
            write_scene(partial, example_id, render_random_scene(seed, index, size))
        for split, chosen in (("train", ids[:n_train]), ("val", ids[n_train:])):
            with open(os.path.join(partial, "gt_sets", f"{split}.txt"), "w") as f:
                f.write("".join(f"{example_id}\n" for example_id in chosen))
    return root


__all__ = [
    "Appearance", "Box", "Camera", "Cylinder", "NYUD_FOLDERS", "PRETRAIN_PHOTOS", "ROOM_FACES", "Room",
    "SURFACE_CLASSES", "SURFACE_TEXTURES", "Sphere", "TEXTURE_PHOTOS", "render", "render_random_scene",
    "rotation_y", "sample_scene", "write_nyud_like", "write_scene",
]
