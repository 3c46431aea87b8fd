"""Compressing a trained tracker without retraining it from scratch: a narrower FFN in every transformer head layer.

The thesis calls E.T.Track's FFN "lightweight" but gives no width; at 1024 its ten FFNs are about two thirds of the
search branch's MACs. :func:`narrow_ffn` builds the same tracker with ``ffn_dim`` hidden units and initialises it
from the wide one, as the starting point of a short fine-tune (the ``ettrack-s`` preset, ``models/ettrack-s``).

Why hidden units are selected and the second layer re-fitted, not factorised by a truncated SVD: the FFN is
W2·ReLU(W1·u + b1) + b2, and the ReLU between the layers means a rank-r factorisation of W1 (or of W1·W2) does not
give r hidden units that compute a part of the wide output. On E.T.Track's shipped weights such an initialisation
missed the FFN output by 1.3 to 8 times its spread at r = 128, 256 (a constant would miss by 1). Keeping r whole
units leaves each one's ReLU exact, and re-fitting W2, b2 by least squares on the units' activations compensates for
the dropped units: the output error on held-out crops was 0.03 to 0.34 of the spread at r = 128.
"""

import numpy as np

from zippy_tf.errors import UserError
from zippy_tf.tracking.layers import TransformerFeedForward
from zippy_tf.tracking.model import build_tracker_network

# Ridge term of the least-squares re-fit, relative to the mean activation energy of the kept units: the activations
# of a few hundred positions are nearly collinear, and an unregularised fit blew up on held-out crops.
RIDGE = 1e-3


def _feed_forwards(network):
    """[(transformer layer, its TransformerFeedForward)] of the search branch, in layer order."""
    return [(layer, layer.feed_forward) for layer in network.search_net.layers
            if isinstance(getattr(layer, "feed_forward", None), TransformerFeedForward)]


def _hidden_inputs(network, inputs):
    """The inputs u = LN1(A(x) + x) of every FFN's first linear layer, each (positions, channels)."""
    from zippy_tf._compat import keras

    layers = _feed_forwards(network)
    probe = keras.Model(network.search_net.inputs, [layer.input for layer, _ in layers])
    outputs = probe(inputs, training=False)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    hidden = []
    for (layer, ffn), x in zip(layers, outputs):
        u = ffn.norm1(layer.attend(x, training=False) + x).numpy()
        hidden.append(u.reshape(-1, u.shape[-1]).astype(np.float64))
    return hidden


def select_units(u, w1, b1, w2, b2, ffn_dim):
    """The narrow FFN's (w1, b1, w2, b2): the ``ffn_dim`` hidden units of the wide one whose activations carry the
    most output variance (std of the unit × norm of its W2 row), with W2 and b2 re-fitted by ridge least squares so
    that the kept units also reproduce what the dropped ones added at the positions ``u``.

    Args:
        u: (positions, d) FFN inputs (after the first LayerNorm); w1 (d, F), b1 (F,), w2 (F, d), b2 (d,): the wide
            FFN's weights. ``ffn_dim == F`` returns them unchanged.
    """
    wide = w1.shape[1]
    hidden = np.maximum(u @ w1 + b1, 0.0)
    keep = np.sort(np.argsort(-(hidden.std(axis=0) * np.linalg.norm(w2, axis=1)), kind="stable")[:ffn_dim])
    drop = np.setdiff1d(np.arange(wide), keep)
    if drop.size == 0:
        return w1, b1, w2, b2
    # The kept units' activations (and a constant for b2) regress the dropped units' contribution.
    design = np.concatenate([hidden[:, keep], np.ones((len(u), 1))], axis=1)
    target = hidden[:, drop] @ w2[drop].astype(np.float64)
    gram = design.T @ design
    gram[np.diag_indices_from(gram)] += RIDGE * np.trace(gram) / len(gram)
    correction = np.linalg.solve(gram, design.T @ target)
    return (w1[:, keep], b1[keep], (w2[keep] + correction[:-1]).astype(w2.dtype),
            (b2 + correction[-1]).astype(b2.dtype))


def narrow_ffn(network, ffn_dim, *, inputs=None, calibration_count=16):
    """The tracker ``network`` rebuilt with ``ffn_dim`` hidden units in every transformer FFN, initialised from it.

    Every weight outside the FFNs' two linear layers is copied unchanged (BatchNorm statistics included); each FFN
    keeps ``ffn_dim`` of its hidden units and re-fits its second layer (:func:`select_units`) on the FFN inputs
    that ``inputs`` produce. ``ffn_dim`` equal to the network's own returns an identical copy. A starting point
    for fine-tuning: the narrower network tracks worse until it is trained.

    Args:
        network: a :class:`~zippy_tf.tracking.model.TrackerNetwork` with transformer heads ("exemplar" or
            "attention").
        ffn_dim: the new FFN width, 1 to the network's own.
        inputs: [search crops (N, S, S, 3), template features (N, 8, 8, 96)] to fit on (default: crops of the
            bundled photos, ``zippy_tf.tracking.export.calibration_data``; training pairs fit the deployed
            distribution better).
        calibration_count: photos of the default ``inputs``.

    Returns:
        a new :class:`~zippy_tf.tracking.model.TrackerNetwork` (``network`` is not changed).
    """
    wide = network.config["ffn_dim"]
    if network.config["head"] == "conv":
        raise UserError("narrow_ffn applies to transformer heads; the conv head (lighttrack) has no FFN")
    if isinstance(ffn_dim, bool) or not isinstance(ffn_dim, (int, np.integer)) or not 1 <= ffn_dim <= wide:
        raise UserError(f"ffn_dim={ffn_dim!r} must be an integer from 1 to the network's own FFN width {wide}")
    narrow = build_tracker_network(**{**network.config, "ffn_dim": int(ffn_dim)},
                                   name=network.search_net.name[: -len("_search")])
    with network._every_layer_trainable(), narrow._every_layer_trainable():
        sources = network.pair_model().weights
        targets = narrow.pair_model().weights
        for source, target in zip(sources, targets):
            if source.shape == target.shape:
                target.assign(source)
        if inputs is None:
            from zippy_tf.tracking.export import calibration_data

            inputs = calibration_data(network, calibration_count)[1]
        for u, (_, ffn), (_, narrow_ffn_layer) in zip(_hidden_inputs(network, inputs), _feed_forwards(network),
                                                        _feed_forwards(narrow)):
            (w1, b1), (w2, b2) = ffn.linear1.get_weights(), ffn.linear2.get_weights()
            w1, b1, w2, b2 = select_units(u, w1[0, 0], b1, w2[0, 0], b2, int(ffn_dim))
            narrow_ffn_layer.linear1.set_weights([w1[None, None], b1])
            narrow_ffn_layer.linear2.set_weights([w2[None, None], b2])
    return narrow


__all__ = ["RIDGE", "narrow_ffn", "select_units"]
