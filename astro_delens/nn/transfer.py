"""Start a grown network from a trained one, so that it first computes the same function.

A warm start (``astro-delens train --init``) normally keeps the architecture.
Two growths are allowed, and every layer of the trained network is matched by
name. An added input branch of the estimator's head (``keypoints``): the head's
first dense layer, whose input got longer, keeps its trained rows and starts the
new ones at zero. A second network in a ``cascade``: its layers (named
``cascade_`` + the first network's names) start as copies of the trained
network's, with zero rows for the head's extra input, and its last layer, which
has no counterpart, at zero. Either way the grown network begins with the trained
network's answers, and training only adds what is new.

Importing this module does not import Keras; the functions work on built models.
"""

from __future__ import annotations

import numpy as np

from .architectures import CASCADE_PREFIX

__all__ = ["transfer_weights"]


def transfer_weights(source, target, prefix=CASCADE_PREFIX) -> list[str]:
    """Copy the weights of ``source`` into the same-named layers of ``target``.

    A ``target`` layer named ``prefix`` + the name of a ``source`` layer, with no
    same-named layer in ``source``, is given a copy of that layer's weights too.

    Parameters
    ----------
    source, target : keras.Model
        Built models. Every layer of ``source`` that has weights must exist in
        ``target`` under the same name, with weights of the same shapes, except
        that a 2-d kernel may have more input rows in ``target``: its extra rows
        are set to zero.
    prefix : str
        Name prefix of the layers of a cascade's second network.

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
    source_names = {layer.name for layer in source.layers}
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
        twin = target_layers.get(prefix + layer.name)
        if twin is not None and twin.name not in source_names:
            twin.set_weights([_fit(w, t.shape, layer.name)
                              for w, t in zip(weights, twin.get_weights(), strict=True)])
            copied.add(twin.name)
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
