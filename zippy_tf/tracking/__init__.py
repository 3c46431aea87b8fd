"""E.T.Track (thesis ch. 4): Exemplar Transformer layers, tracker networks, training, the online tracker, datasets
and one-pass evaluation."""

from zippy_tf.tracking.datasets import Sequence, load_sequences
from zippy_tf.tracking.model import TrackerNetwork, attention_tracker, build_tracker_network, ettrack, lighttrack
from zippy_tf.tracking.tracker import FlatbufferNetwork, Tracker

__all__ = ["FlatbufferNetwork", "Sequence", "Tracker", "TrackerNetwork", "attention_tracker",
           "build_tracker_network", "ettrack", "lighttrack", "load_sequences"]
