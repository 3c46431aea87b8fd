"""Small (source, target, homography) batches with the pair-dataset spec, built from the bundled photographs."""

import cv2
import numpy as np

from zippy_tf.data.photos import PHOTOS, load_photo


def random_homography(rng, height, width, amplitude=0.08):
    """A homography (source → target pixels) moving each image corner by up to ``amplitude`` of the image size."""
    corners = np.float32([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]])
    moved = corners + rng.uniform(-amplitude, amplitude, (4, 2)).astype(np.float32) * [width, height]
    return cv2.getPerspectiveTransform(corners, moved.astype(np.float32))


def photo_pairs(batch=2, height=64, width=64, seed=0, identity=False):
    """A batch dict {"source", "target": (B, H, W, 3) float32 BGR [0, 255], "homography": (B, 3, 3)} where the
    source is the target seen through the homography: source(p) = target(H p)."""
    rng = np.random.default_rng(seed)
    sources, targets, homographies = [], [], []
    for i in range(batch):
        target = cv2.resize(load_photo(PHOTOS[(seed + i) % len(PHOTOS)]), (width, height),
                            interpolation=cv2.INTER_AREA).astype(np.float32)
        h = np.eye(3) if identity else random_homography(rng, height, width)
        sources.append(cv2.warpPerspective(target, h, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
        targets.append(target)
        homographies.append(h)
    return {"source": np.stack(sources), "target": np.stack(targets),
            "homography": np.stack(homographies).astype(np.float32)}


def grey_photo(seed=0, height=64, width=96):
    """An (H, W) uint8 photo and the same as a 3-channel BGR float batch of one."""
    grey = cv2.cvtColor(photo_pairs(batch=1, height=height, width=width, seed=seed)["target"][0].astype(np.uint8),
                        cv2.COLOR_BGR2GRAY)
    return grey, np.repeat(grey[None, ..., None], 3, -1).astype(np.float32)
