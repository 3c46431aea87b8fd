"""E.T.Track (thesis ch. 4): Exemplar Transformer layers, tracker networks, training, the online tracker, datasets
and one-pass evaluation.

Example:
    >>> from zippy_tf.tracking import Tracker
    >>> tracker = Tracker.from_preset("ettrack")
    >>> tracker.init(first_frame, (x, y, w, h))
    >>> ok, box = tracker.update(next_frame)
"""

from zippy_tf._lazy import lazy_exports

# module → its public names, imported on first access (the package itself imports nothing)
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "zippy_tf.tracking.compress": ["narrow_ffn"],
    "zippy_tf.tracking.datasets": ["load_sequences", "Sequence"],
    "zippy_tf.tracking.evaluate": ["track_sequence", "tracker_factory"],
    "zippy_tf.tracking.exemplar": ["ExemplarAttention", "ExemplarTransformer"],
    "zippy_tf.tracking.export": ["FlatbufferNetwork", "cached_network", "export_tracker", "exported_network"],
    "zippy_tf.tracking.model": ["attention_tracker", "build_tracker_network", "deployment_form", "ettrack",
                                "lighttrack", "TrackerNetwork"],
    "zippy_tf.tracking.tracker": ["Tracker"],
})
