"""On-the-fly data augmentation by the symmetries of the square pixel grid (NumPy only).

A sample is transformed by an optional left-right flip (`numpy.fliplr`)
followed by ``k`` quarter turns (`numpy.rot90`), applied to the image, noise
map, mask and source target alike (the source grid is centred on the lens
centre, and both grids share the pixel convention of
`astro_delens.lensmodel`, so the same array operation is the same sky
transformation for both). The lens parameters follow with
`astro_delens.lensmodel.flip_parameters` then
`astro_delens.lensmodel.rotate_parameters`.

Examples
--------
>>> import numpy as np
>>> from astro_delens.nn.augment import transform_params, transform_image
>>> p = np.array([1.0, 2.0, 0.1, 0.05, 0.2, 0.1, 0.01, 0.02])
>>> transform_params(p, k=1, flip=False)[[2, 3, 4, 5]]
array([-0.1 , -0.05, -0.1 ,  0.2 ])
>>> transform_image(np.arange(4).reshape(2, 2), k=0, flip=True)
array([[1, 0],
       [3, 2]])
"""

from __future__ import annotations

import numpy as np

from .. import lensmodel

__all__ = ["transform_image", "transform_params", "inverse_transform_image",
           "inverse_transform_params", "symmetries_of_square", "SYMMETRY_COUNTS",
           "random_transforms", "augment_batch", "random_masks"]

#: Numbers of symmetries of the square an answer can be averaged over (`symmetries_of_square`).
SYMMETRY_COUNTS = (1, 4, 8)


def transform_image(image, k: int = 0, flip: bool = False):
    """Flip (if ``flip``) then rotate by ``k`` quarter turns the last two axes of ``image``."""
    a = np.asarray(image)
    if flip:
        a = np.flip(a, axis=-1)
    return np.rot90(a, int(k) % 4, axes=(-2, -1))


def transform_params(params, k: int = 0, flip: bool = False):
    """The lens parameters ``(..., 8)`` seen in ``transform_image(image, k, flip)``."""
    p = np.asarray(params, dtype=float)
    if flip:
        p = lensmodel.flip_parameters(p)
    return lensmodel.rotate_parameters(p, int(k) % 4)


def inverse_transform_image(image, k: int = 0, flip: bool = False):
    """Undo `transform_image`: turn back by ``k`` quarter turns, then flip (if ``flip``)."""
    a = np.rot90(np.asarray(image), -int(k) % 4, axes=(-2, -1))
    return np.flip(a, axis=-1) if flip else a


def inverse_transform_params(params, k: int = 0, flip: bool = False):
    """Undo `transform_params`: the parameters of the original image."""
    p = lensmodel.rotate_parameters(np.asarray(params, dtype=float), -int(k) % 4)
    return lensmodel.flip_parameters(p) if flip else p


def symmetries_of_square(n: int = 8) -> list:
    """The first ``n`` symmetries of the square as ``(k, flip)`` pairs, the identity first.

    ``n = 1`` is the identity alone, ``n = 4`` the four rotations, ``n = 8``
    all rotations with and without the flip.
    """
    if isinstance(n, bool) or n not in SYMMETRY_COUNTS:
        raise ValueError(f"symmetries: expected 1, 4 or 8, got {n!r}")
    return [(k, flip) for flip in (False, True) for k in range(4)][:n]


def random_transforms(rng: np.random.Generator, n: int):
    """``n`` random (k, flip) pairs, uniform over the 8 symmetries of the square."""
    return rng.integers(0, 4, size=n), rng.integers(0, 2, size=n).astype(bool)


def augment_batch(rng, arrays, params=None):
    """Apply an independent random symmetry to every sample of a batch.

    Parameters
    ----------
    rng : numpy.random.Generator
    arrays : sequence of array-like or None
        Arrays of shape ``(N, H, W)`` (or ``(N, H, W, C)`` is *not* supported:
        transform before stacking channels); None entries are passed through.
    params : array-like, shape (N, 8), optional

    Returns
    -------
    list, params
        The transformed arrays (new, contiguous) and parameters (or None).
    """
    arrays = list(arrays)
    n = next(len(a) for a in arrays if a is not None)
    ks, flips = random_transforms(rng, n)
    out = []
    for a in arrays:
        if a is None:
            out.append(None)
            continue
        a = np.asarray(a)
        if a.ndim != 3:
            raise ValueError(f"arrays: expected (N, H, W) arrays, got shape {a.shape}")
        b = np.empty_like(a)
        for i in range(n):
            b[i] = transform_image(a[i], ks[i], flips[i])
        out.append(b)
    new_params = None
    if params is not None:
        p = np.asarray(params, dtype=float)
        new_params = np.stack([transform_params(p[i], ks[i], flips[i]) for i in range(n)])
    return out, new_params


def random_masks(rng, n: int, npix: int, probability: float = 0.0, max_radius: float = 0.08,
                 border_fraction: float = 0.5, min_field: float = 0.25):
    """Random masks imitating what real cutouts lose (True = masked).

    Each of the ``n`` masks is, with ``probability``, non-empty: with
    ``border_fraction``, a *small field* -- everything outside a square of
    half-width between ``min_field * npix`` and ``npix / 2`` pixels, shifted by
    up to a tenth of the grid, as when the input cutout is smaller than the
    model's field; otherwise one to three *neighbours* -- discs of radius up to
    ``max_radius * npix`` pixels at random positions. Either kind gets about
    0.2% of random bad pixels. The other masks are empty.
    """
    masks = np.zeros((n, npix, npix), dtype=bool)
    if probability <= 0:
        return masks
    yy, xx = np.mgrid[0:npix, 0:npix]
    centre = (npix - 1) / 2.0
    for i in np.flatnonzero(rng.random(n) < probability):
        if rng.random() < border_fraction:
            half = rng.uniform(min_field * npix, 0.5 * npix)
            cy, cx = centre + rng.uniform(-0.1, 0.1, 2) * npix
            masks[i] = (np.abs(yy - cy) > half) | (np.abs(xx - cx) > half)
        else:
            for _ in range(rng.integers(1, 4)):
                cy, cx = rng.uniform(0, npix, 2)
                r = rng.uniform(1.0, max(1.0, max_radius * npix))
                masks[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        masks[i] |= rng.random((npix, npix)) < 0.002
    return masks
