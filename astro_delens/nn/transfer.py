"""Start a grown network from a trained one, so that it first computes the same function.

A warm start (``astro-delens train --init``) normally keeps the architecture.
The one growth allowed is an added input branch of the estimator's head
(``keypoints``): every layer of the trained network is matched by name, and the
head's first dense layer, whose input got longer, keeps its trained rows and
starts the new ones at zero. The grown network therefore begins with the trained
network's answers, and training only adds what the new branch brings.

Importing this module does not import Keras; the functions work on built models.
"""

from __future__ import annotations

import numpy as np

__all__ = ["transfer_weights"]


def transfer_weights(source, target) -> list[str]:
    """Copy the weights of ``source`` into the same-named layers of ``target``.

    Parameters
    ----------
    source, target : keras.Model
        Built models. Every layer of ``source`` that has weights must exist in
        ``target`` under the same name, with weights of the same shapes, except
        that a 2-d kernel may have more input rows in ``target``: its extra rows
        are set to zero.

    Returns
    -------
    list of str
        Names of the ``target`` layers with weights that were left as initialised
        (the new layers).

    Raises
    ------
    ValueError
        If a layer of ``source`` has no counterpart in ``target`` or its weights
        cannot be carried over.
    """
    target_layers = {layer.name: layer for layer in target.layers}
    copied = set()
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name not in target_layers:
            raise ValueError(f"source: layer {layer.name!r} has no counterpart in the new "
                             "network")
        dest = target_layers[layer.name]
        new = [_fit(w, t.shape, layer.name)
               for w, t in zip(weights, dest.get_weights(), strict=True)]
        dest.set_weights(new)
        copied.add(layer.name)
    return [layer.name for layer in target.layers
            if layer.get_weights() and layer.name not in copied]


def _fit(weight, shape, name):
    """``weight`` itself, or a 2-d kernel padded with zero rows up to ``shape``."""
    weight = np.asarray(weight)
    if weight.shape == tuple(shape):
        return weight
    if weight.ndim == 2 and len(shape) == 2 and weight.shape[1] == shape[1] \
            and weight.shape[0] < shape[0]:
        grown = np.zeros(shape, dtype=weight.dtype)
        grown[:weight.shape[0]] = weight
        return grown
    raise ValueError(f"source: the weights of layer {name!r} have shape {weight.shape}, "
                     f"which cannot grow into {tuple(shape)}")
