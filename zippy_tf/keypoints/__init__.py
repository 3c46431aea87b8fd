"""ZippyPoint (thesis ch. 5) and its KP2D baseline: keypoint networks built from macro-blocks, the detector that
turns their dense maps into keypoints and binary descriptors, Hamming matching, HPatches evaluation and training.

Example:
    >>> from zippy_tf.keypoints import KeypointDetector, match_descriptors
    >>> detector = KeypointDetector.from_preset("zippypoint")
    >>> a, b = detector.detect(image_a), detector.detect(image_b)
    >>> matches = match_descriptors(a["descriptors"], b["descriptors"])
"""

from zippy_tf._lazy import lazy_exports

# module → its public names, imported on first access (the package itself imports nothing)
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "zippy_tf.keypoints.detector": ["KeypointDetector"],
    "zippy_tf.keypoints.evaluate": ["evaluate_hpatches", "make_detector"],
    "zippy_tf.keypoints.matching": ["match_descriptors", "match_hamming", "match_l2"],
    "zippy_tf.keypoints.model": ["keypoint_network", "kp2d_baseline", "zippypoint"],
    "zippy_tf.keypoints.training": ["fit_keypoints"],
})
