"""OpenCV's KCF, CSRT and MIL trackers behind the same ``init`` / ``update`` interface as :class:`Tracker`.

They get the same frames, the same initial box checks and the same evaluation loop as the neural trackers, so
accuracy and speed compare like for like.
"""

import cv2

from zippy_tf.errors import UserError
from zippy_tf.tracking.crops import as_bgr, check_initial_box

OPENCV_TRACKERS = {"kcf": "TrackerKCF", "csrt": "TrackerCSRT", "mil": "TrackerMIL"}


class OpenCVTracker:
    """One of OpenCV's trackers (``kcf``, ``csrt``, ``mil``).

    OpenCV takes integer boxes and reports failures with ``ok=False`` and a meaningless box; we then report
    the last good box, as a user of the tracker would.
    """

    def __init__(self, kind):
        if kind not in OPENCV_TRACKERS:
            raise UserError(f"unknown OpenCV tracker {kind!r}; choose one of: {', '.join(OPENCV_TRACKERS)}")
        self.kind = kind
        self._tracker = None
        self.box = None

    def init(self, frame, box):
        frame = as_bgr(frame)
        x, y, w, h = check_initial_box(box, frame.shape)
        self._tracker = getattr(cv2, OPENCV_TRACKERS[self.kind]).create()
        self.box = (x, y, w, h)
        self._tracker.init(frame, tuple(int(round(v)) for v in (x, y, max(w, 1), max(h, 1))))
        return True

    def update(self, frame):
        if self._tracker is None:
            raise UserError(f"{self.kind} tracker: update called before init; call init(first_frame, box) first")
        ok, box = self._tracker.update(as_bgr(frame))
        if ok:
            self.box = tuple(float(v) for v in box)
        return bool(ok), self.box


__all__ = ["OPENCV_TRACKERS", "OpenCVTracker"]
