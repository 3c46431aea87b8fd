"""Dense multi-task data sets (NYUD-MT, PASCAL-MT): the task tables and readers of the real on-disk layouts.

Label conventions (what every reader returns, whatever the file format on disk):

=========== ========== ======= =====================================================================
task        shape      dtype   values
=========== ========== ======= =====================================================================
image       (H, W, 3)  uint8   RGB
semseg      (H, W)     uint8   class ids 0 … C-1 (C in :data:`NUM_CLASSES`); 255 = ignore
human_parts (H, W)     uint8   0 = background, 1 … 6 = parts; 255 = ignore (all 255: no person)
depth       (H, W)     float32 metres along the optical axis (z-depth); 0 = invalid
normals     (H, W, 3)  float32 unit vectors in camera coordinates; all-zero = invalid
edge        (H, W)     float32 {0, 1}; 255 = ignore (padding only)
sal         (H, W)     float32 {0, 1}; 255 = ignore (padding only)
=========== ========== ======= =====================================================================

NYUD-MT layout (``root/``): ``images/<id>.jpg``, ``gt_sets/{train,val}.txt``, ``edge/<id>.png`` (read as v/255),
``segmentation/<id>.mat`` (field ``segmentation``, 0…40), ``normals/<id>.jpg`` (2·v/255 − 1), ``depth/<id>.mat``
(field ``depth``). Our own extension, used by the generated set only: ``saliency/<id>.png`` (v/255 > 0.5), read
when ``sal`` is asked of a NYUD root.

PASCAL-MT layout (``root/``): ``JPEGImages/<id>.jpg``, ``ImageSets/Context/{train,val}.txt``,
``Context/trainval/<id>.mat`` (field ``LabelMap``, the 459-class context labels), ``SemanticSegmentation/Context/
<id>.png``, ``PascalParts/<id>.mat`` (field ``anno``), ``NormalsDistill/<id>.png``, ``SaliencyDistill/<id>.png``,
``json/nyu_classes.json`` and ``json/context_classes.json``. Labels are derived as the reference loaders do:
edges are |Laplacian(LabelMap)| > 0 thinned with scikit-image; human parts come from the person objects (class
15) of the ``anno`` struct, their part names grouped by :data:`HUMAN_PARTS` (a table kept here, not read from
``json/pascal_part.json``), and the per-image category cache ``ImageSets/Parts`` is not read (the ``anno`` file
says whether a person is present); normals keep the context classes that are NYU classes, plus tvmonitor;
saliency is thresholded at 0.5. Unlike the reference, labels whose size differs from the image are an error,
not resized.

References:
    Kanakis et al., "Reparameterizing Convolutions for Incremental Multi-Task Learning without Task
    Interference", ECCV 2020, https://arxiv.org/abs/2007.12540 (data loaders of the RCM and ASTMT code);
    Maninis et al., "Attentive Single-Tasking of Multiple Tasks", CVPR 2019, https://arxiv.org/abs/1904.08918
"""

import json
import os

import cv2
import numpy as np

from zippy_tf.data.image_folder import read_image
from zippy_tf.errors import UserError

DATASETS = ("nyud", "pascal")
TASKS = ("edge", "semseg", "human_parts", "normals", "depth", "sal")
# The tasks each data set carries. NYUD "sal" exists only in generated sets (our saliency/ extension), so it is
# accepted by the reader but not listed as a standard NYUD task.
DATASET_TASKS = {
    "nyud": ("edge", "semseg", "normals", "depth"),
    "pascal": ("edge", "semseg", "human_parts", "normals", "sal"),
}
EXTRA_TASKS = {"nyud": ("sal",), "pascal": ()}
# Classes of the classification tasks, background / void included (NYUD: 40 classes + void 0, as the RCM code).
NUM_CLASSES = {"nyud": {"semseg": 41}, "pascal": {"semseg": 21, "human_parts": 7}}
IGNORE_LABEL = 255
SPLITS = ("train", "val")
# Where each input lives, relative to the root, for an example id; PASCAL edges and the normals mask come from the
# context LabelMap, and PASCAL normals also need the two class lists of json/.
FILES = {
    "nyud": {"image": ("images/{}.jpg",), "semseg": ("segmentation/{}.mat",), "depth": ("depth/{}.mat",),
             "normals": ("normals/{}.jpg",), "edge": ("edge/{}.png",), "sal": ("saliency/{}.png",)},
    "pascal": {"image": ("JPEGImages/{}.jpg",), "semseg": ("SemanticSegmentation/Context/{}.png",),
               "edge": ("Context/trainval/{}.mat",), "human_parts": ("PascalParts/{}.mat",),
               "normals": ("NormalsDistill/{}.png", "Context/trainval/{}.mat", "json/nyu_classes.json",
                           "json/context_classes.json"),
               "sal": ("SaliencyDistill/{}.png",)},
}
# PASCAL-Part names of the person category (15) grouped into the six parts of the RCM/ASTMT code.
PERSON_CATEGORY = 15
HUMAN_PARTS = {
    "hair": 1, "head": 1, "lear": 1, "lebrow": 1, "leye": 1, "mouth": 1, "nose": 1, "rear": 1, "rebrow": 1, "reye": 1,
    "neck": 2, "torso": 2,
    "luarm": 3, "ruarm": 3,
    "lhand": 4, "llarm": 4, "rhand": 4, "rlarm": 4,
    "luleg": 5, "ruleg": 5,
    "lfoot": 6, "llleg": 6, "rfoot": 6, "rlleg": 6,
}


def output_channels(dataset, task):
    """The number of network outputs a task needs: classes for semseg / human_parts, 3 for normals, else 1."""
    check_tasks(dataset, [task])
    if task in NUM_CLASSES[dataset]:
        return NUM_CLASSES[dataset][task]
    return 3 if task == "normals" else 1


def check_tasks(dataset, tasks):
    """Checks a data set name and its task names; returns the tasks as a tuple."""
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    tasks = tuple(tasks)
    allowed = DATASET_TASKS[dataset] + EXTRA_TASKS[dataset]
    for task in tasks:
        if task not in allowed:
            raise UserError(f"unknown task {task!r} for dataset {dataset!r}; choose from {', '.join(allowed)}")
    if not tasks or len(set(tasks)) != len(tasks):
        raise UserError(f"tasks {list(tasks)} must be a non-empty list without repeats")
    return tasks


def _split_file(root, dataset, split):
    folder = "gt_sets" if dataset == "nyud" else os.path.join("ImageSets", "Context")
    return os.path.join(root, folder, f"{split}.txt")


def split_ids(root, dataset, split):
    """The example ids of a split ("train" or "val"), in file order."""
    check_tasks(dataset, DATASET_TASKS[dataset][:1])
    if not os.path.isdir(root):
        raise UserError(f"{dataset} folder {root!r} does not exist; pass the extracted {dataset.upper()}_MT folder")
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    path = _split_file(root, dataset, split)
    if not os.path.isfile(path):
        raise UserError(f"split file {path!r} is missing; restore it from the {dataset.upper()}_MT archive")
    with open(path) as f:
        ids = [line.strip() for line in f if line.strip()]
    if not ids:
        raise UserError(f"split file {path!r} lists no images; restore it")
    return ids


def example_files(root, dataset, example_id, tasks):
    """The files :func:`read_example` reads for these tasks (image first), without duplicates."""
    names = [name for key in ("image",) + tuple(tasks) for name in FILES[dataset][key]]
    return [_join(root, name, example_id) for name in dict.fromkeys(names)]


def _join(root, name, example_id):
    return os.path.join(root, *name.format(example_id).split("/"))


def _path(root, dataset, key, example_id):
    """The first (main) file of an input of an example."""
    return _join(root, FILES[dataset][key][0], example_id)


def check_split(root, dataset, split, tasks):
    """The ids of a split, after checking that every file their tasks need exists (so that a long run does not
    fail on a missing file mid-epoch)."""
    tasks = check_tasks(dataset, tasks)
    ids = split_ids(root, dataset, split)
    for example_id in ids:
        for path in example_files(root, dataset, example_id, tasks):
            _need_file(path)
    return ids


def _need_file(path, fix="restore it or remove its id from the split file"):
    if not os.path.isfile(path):
        raise UserError(f"file {path!r} is missing; {fix}")
    return path


def read_mat_field(path, field):
    """One array field of a MATLAB .mat file."""
    import scipy.io

    try:
        data = scipy.io.loadmat(_need_file(path))
    except Exception as e:  # scipy raises several types on corrupt files
        raise UserError(f"{path!r} is not a readable .mat file ({type(e).__name__}); restore it") from None
    if field not in data:
        raise UserError(f"{path!r} has no field {field!r}; restore the file from the original archive")
    return data[field]


def _read_png(path, channels):
    image = cv2.imread(_need_file(path), cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise UserError(f"{path!r} is not a readable image; restore it")
    return image[..., ::-1] if channels == 3 else image


def _class_ids(labels, num_classes, path):
    labels = np.asarray(labels)
    bad = (labels != IGNORE_LABEL) & ((labels < 0) | (labels >= num_classes) | (labels != np.round(labels)))
    if bad.any():
        raise UserError(f"{path!r} holds class id {labels[bad].flat[0]} outside 0..{num_classes - 1} (255 = "
                        "ignore); fix the label map or pick the right --dataset")
    return labels.astype(np.uint8)


def decode_normals(encoded):
    """Normals from an 8-bit RGB encoding, ``2·v/255 − 1`` per channel (the NYUD-MT / PASCAL-MT files)."""
    return (2.0 * encoded.astype(np.float32) / 255.0 - 1.0).astype(np.float32)


def encode_normals(normals):
    """The inverse of :func:`decode_normals`, rounded to uint8."""
    return np.clip(np.round((np.asarray(normals, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _nyud_label(root, example_id, task):
    if task == "semseg":
        path = _path(root, "nyud", task, example_id)
        return _class_ids(read_mat_field(path, "segmentation"), NUM_CLASSES["nyud"]["semseg"], path)
    if task == "depth":
        path = _path(root, "nyud", task, example_id)
        depth = np.asarray(read_mat_field(path, "depth"), np.float32)
        if depth.ndim != 2 or not np.all(np.isfinite(depth)) or (depth < 0).any():
            raise UserError(f"{path!r} is not an (H, W) map of finite depths >= 0; restore it")
        return depth
    if task == "normals":
        return decode_normals(_read_png(_path(root, "nyud", task, example_id), 3))
    if task == "edge":
        return (_read_png(_path(root, "nyud", task, example_id), 1) / 255.0).astype(np.float32)
    # sal: our documented extension of the layout
    return (_read_png(_path(root, "nyud", task, example_id), 1) > 127.5).astype(np.float32)


def _context_label_map(root, example_id):
    return read_mat_field(_path(root, "pascal", "edge", example_id), "LabelMap")


def pascal_edge(label_map):
    """PASCAL semantic edges as the reference derives them: |Laplacian(LabelMap)| > 0, then thinned (skimage)."""
    from skimage.morphology import thin

    laplacian = cv2.Laplacian(np.asarray(label_map, np.float64), cv2.CV_64F)
    return thin(np.abs(laplacian) > 0).astype(np.float32)


def human_parts_from_anno(anno, shape):
    """The 7-class human-parts map of a PASCAL-Part ``anno`` struct: every person object's parts grouped by
    :data:`HUMAN_PARTS`, later parts painting over earlier ones (as the reference); all 255 without a person."""
    objects = anno["objects"][0, 0]
    target = None
    for obj in objects.reshape(-1):
        parts = obj["parts"]
        if int(np.asarray(obj["class_ind"]).reshape(-1)[0]) != PERSON_CATEGORY or parts.size == 0:
            continue
        if target is None:
            target = np.zeros(np.asarray(obj["mask"]).shape, np.uint8)
        for part in parts.reshape(-1):
            name = str(np.asarray(part["part_name"]).reshape(-1)[0])
            if name not in HUMAN_PARTS:
                raise UserError(f"unknown person part {name!r} in a PascalParts file; restore it from PASCAL-Part")
            target[np.asarray(part["mask"]).astype(bool)] = HUMAN_PARTS[name]
    return np.full(shape, IGNORE_LABEL, np.uint8) if target is None else target


def _read_json(path):
    with open(_need_file(path, "restore it from the PASCAL_MT archive")) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError:
            raise UserError(f"{path!r} is not valid JSON; restore it from the PASCAL_MT archive") from None


def _normals_classes(root):
    """Context class ids whose normals the distilled PASCAL normals keep: context classes that are NYU classes
    (except 'unknown'), plus 'tvmonitor' (as the reference)."""
    paths = [_join(root, name, None) for name in FILES["pascal"]["normals"][2:]]
    nyu, context = (_read_json(path) for path in paths)
    valid = [context[name] for name in nyu if name in context and name != "unknown"]
    return np.array(valid + [context["tvmonitor"]] if "tvmonitor" in context else valid)


def _pascal_label(root, example_id, task, shape):
    if task == "semseg":
        path = _path(root, "pascal", task, example_id)
        return _class_ids(_read_png(path, 1), NUM_CLASSES["pascal"]["semseg"], path)
    if task == "edge":
        return pascal_edge(_context_label_map(root, example_id))
    if task == "human_parts":
        path = _path(root, "pascal", task, example_id)
        return human_parts_from_anno(read_mat_field(path, "anno"), shape)
    if task == "normals":
        normals = decode_normals(_read_png(_path(root, "pascal", task, example_id), 3))
        keep = np.isin(_context_label_map(root, example_id), _normals_classes(root))
        if keep.shape != normals.shape[:2]:
            raise UserError(f"the LabelMap of {example_id!r} and its distilled normals differ in size; restore them")
        return np.where(keep[..., None], normals, 0.0).astype(np.float32)
    # sal
    return (_read_png(_path(root, "pascal", task, example_id), 1) > 127.5).astype(np.float32)


def read_example(root, dataset, example_id, tasks):
    """One example: {"id": example_id, "image": (H, W, 3) uint8 RGB, task: label for each task} in the module's
    label conventions. Every label is checked to have the image's height and width."""
    tasks = check_tasks(dataset, tasks)
    path = _need_file(_path(root, dataset, "image", example_id))
    image = np.ascontiguousarray(read_image(path)[..., ::-1])
    example = {"id": example_id, "image": image}
    for task in tasks:
        if dataset == "nyud":
            label = _nyud_label(root, example_id, task)
        else:
            label = _pascal_label(root, example_id, task, image.shape[:2])
        if label.shape[:2] != image.shape[:2]:
            raise UserError(f"the {task} label of {example_id!r} is {label.shape[0]}x{label.shape[1]} but its image "
                            f"is {image.shape[0]}x{image.shape[1]}; restore the matching files")
        example[task] = label
    return example


def load_multitask(root, dataset, split, tasks):
    """Yields :func:`read_example` for every id of a split (the split file is checked before the first)."""
    tasks = check_tasks(dataset, tasks)
    for example_id in split_ids(root, dataset, split):
        yield read_example(root, dataset, example_id, tasks)


__all__ = [
    "DATASETS", "DATASET_TASKS", "EXTRA_TASKS", "FILES", "HUMAN_PARTS", "IGNORE_LABEL", "NUM_CLASSES",
    "PERSON_CATEGORY", "SPLITS", "TASKS", "check_split", "check_tasks", "decode_normals", "encode_normals",
    "example_files", "human_parts_from_anno", "load_multitask", "output_channels", "pascal_edge", "read_example",
    "read_mat_field", "split_ids",
]
