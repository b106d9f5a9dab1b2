"""Does an estimate depend on what lies far from the lens? The field-dependence check.

A network reads the whole cutout. On a clean lens its Einstein radius does
not change when everything well outside the ring is hidden; when a neighbour,
a star or an interloper drives the answer, it does: on the development lenses
the estimate of a lens with a bright neighbour jumps between values up to a
factor of two apart as the field shrinks.

`field_dependence` measures this. The prepared cutout is shown to the network
again with everything outside centred squares of `FIELD_FRACTIONS` of the
field of view masked (the network learnt such "small field" masks in
training). A square is *consistent* with its answer theta when it still holds
the ring with a margin, ``width / 2 >= RING_FACTOR * theta + RING_MARGIN``.
The statistic is the range of the Einstein radii over the consistent squares
and the full field, relative to the full-field answer. Each model stores the
value its validation lenses exceed only 5% of the time (``field_check`` in
its ``config.json``, set by `astro_delens.training.calibrate`); above it the
estimator warns and widens the Einstein radius's interval to hold the range.

Examples
--------
>>> import numpy as np
>>> from astro_delens.fieldcheck import consistent_range
>>> widths = np.array([3.2, 4.8, 6.4, 8.0])
>>> round(consistent_range(1.0, np.array([1.0, 1.1, 1.05, 1.0]), widths), 3)
0.1
>>> round(consistent_range(1.0, np.array([2.5, 2.5, 1.2, 1.0]), widths), 3)  # 2.5": no room
0.2
"""

from __future__ import annotations

import numpy as np

from . import lensmodel

__all__ = ["FIELD_FRACTIONS", "RING_FACTOR", "RING_MARGIN", "DEFAULT_THRESHOLD",
           "square_masks", "consistent_values", "consistent_range", "field_dependence"]

#: Widths of the centred squares, as fractions of the model's field of view.
FIELD_FRACTIONS = (1 / 3, 1 / 2, 2 / 3, 5 / 6)
#: A square of width w holds a ring of radius theta when w / 2 >= RING_FACTOR * theta + RING_MARGIN.
RING_FACTOR = 1.2
#: See `RING_FACTOR` (arcsec).
RING_MARGIN = 0.3
#: Threshold of the relative range for models without a calibrated one.
DEFAULT_THRESHOLD = 0.3


def square_masks(npix, pixel_scale, fractions=FIELD_FRACTIONS):
    """Masks (True = hidden) of everything outside centred squares; shape ``(S, npix, npix)``.

    Returns the masks and the squares' widths in arcsec.
    """
    c = (npix - 1) / 2.0
    jj, ii = np.mgrid[:npix, :npix]
    chebyshev = np.maximum(np.abs(ii - c), np.abs(jj - c)) * pixel_scale
    widths = np.asarray(fractions, dtype=float) * npix * pixel_scale
    return np.stack([chebyshev > w / 2.0 + 1e-9 for w in widths]), widths


def consistent_values(theta_full, theta_squares, widths):
    """The full-field Einstein radius and those of the squares that hold their ring."""
    theta_squares = np.asarray(theta_squares, dtype=float)
    holds = np.asarray(widths) / 2.0 >= RING_FACTOR * theta_squares + RING_MARGIN
    return np.append(theta_squares[holds], float(theta_full))


def consistent_range(theta_full, theta_squares, widths):
    """Range (arcsec) of `consistent_values`."""
    return float(np.ptp(consistent_values(theta_full, theta_squares, widths)))


def field_dependence(loaded, images, noise_maps, masks, theta_full, batch_size=256):
    """Relative range of the Einstein radius over the fields of view (see module docstring).

    Parameters
    ----------
    loaded : `~astro_delens.nn.registry.LoadedEstimator`
    images, noise_maps, masks : ndarray, shape (N, n, n)
        Prepared cutouts on the model's grid.
    theta_full : array-like, shape (N,)
        The full-field Einstein radii.
    batch_size : int

    Returns
    -------
    relative_range : ndarray (N,)
        Range of the consistent Einstein radii divided by the full-field one.
    theta_range : ndarray (N, 2)
        The smallest and largest consistent Einstein radius (arcsec).
    """
    preset = loaded.preset
    squares, widths = square_masks(preset.npix, preset.pixel_scale)
    n, s = len(images), len(widths)
    if n == 0:
        return np.zeros(0), np.zeros((0, 2))
    rep = np.repeat(np.asarray(images), s, axis=0)
    rep_noise = np.repeat(np.asarray(noise_maps), s, axis=0)
    rep_mask = np.repeat(np.asarray(masks, dtype=bool), s, axis=0) | np.tile(squares, (n, 1, 1))
    mean, _ = loaded.predict(rep, rep_noise, rep_mask, batch_size=batch_size, symmetries=1)
    theta = mean[:, lensmodel.INDEX["theta_E"]].reshape(n, s)
    relative = np.empty(n)
    bounds = np.empty((n, 2))
    for k in range(n):
        values = consistent_values(theta_full[k], theta[k], widths)
        bounds[k] = values.min(), values.max()
        relative[k] = np.ptp(values) / float(theta_full[k])
    return relative, bounds
