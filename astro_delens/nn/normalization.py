"""The one normalisation of network inputs and targets, shared by training and inference.

Everything here is plain NumPy (no Keras import), so that data pipelines and the
physics checks can use it cheaply.

Inputs
------
`normalize_inputs` turns an observed image and its 1-sigma noise map into the
two-channel array a network reads:

* ``scale`` is a robust amplitude of each image: the `PERCENTILE` (99.5th)
  percentile of its unmasked pixels, floored at `NOISE_FLOOR` (3) times the
  median unmasked noise, and never zero (an empty, noise-free image gets 1);
* channel 0 is ``image / scale``, with masked pixels set to 0;
* channel 1 is ``noise_map / scale``, with masked pixels set to `MASKED_NOISE`
  (a value far above any real normalised noise, so "masked" reads as "no
  information"); noise-free data give zeros.

A mask is a boolean array broadcastable to the image, **True where a pixel must
be ignored** (the `numpy.ma` convention). Non-finite image or noise pixels are
always treated as masked.

Targets
-------
The source target is divided by the same ``scale`` (`normalize_source`), so
that the reconstructor predicts the source relative to the image's amplitude;
`denormalize_source` undoes it. Lens parameters are standardised with the mean
and standard deviation of the preset's priors (`param_stats`,
`normalize_params`, `denormalize_params`).

Examples
--------
>>> import numpy as np
>>> from astro_delens.nn.normalization import normalize_inputs
>>> image = np.zeros((8, 8))
>>> x, scale = normalize_inputs(image, np.full((8, 8), 0.5))
>>> x.shape, x.dtype, float(scale)
((8, 8, 2), dtype('float32'), 1.5)
>>> float(x[0, 0, 1])
0.3333333432674408
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "PERCENTILE",
    "NOISE_FLOOR",
    "MASKED_NOISE",
    "METHOD",
    "image_scale",
    "normalize_inputs",
    "normalize_source",
    "denormalize_source",
    "param_stats",
    "normalize_params",
    "denormalize_params",
    "description",
]

#: Percentile of the unmasked pixels used as the amplitude of an image.
PERCENTILE = 99.5
#: The amplitude is at least this many times the median unmasked noise.
NOISE_FLOOR = 3.0
#: Value of the noise channel at masked pixels.
MASKED_NOISE = 10.0
#: Identifier of this normalisation, stored in model configurations.
METHOD = "percentile-v1"


def description() -> dict:
    """The settings of this normalisation as a JSON-serialisable dict (stored with models)."""
    return {
        "method": METHOD,
        "percentile": PERCENTILE,
        "noise_floor": NOISE_FLOOR,
        "masked_noise": MASKED_NOISE,
    }


def _prepare(image, noise_map, mask):
    img = np.asarray(image, dtype=np.float64)
    if img.ndim < 2:
        raise ValueError(f"image: expected shape (..., H, W), got {img.shape}")
    if noise_map is None:
        noise = np.zeros_like(img)
    else:
        noise = np.asarray(noise_map, dtype=np.float64)
        if noise.shape != img.shape:
            try:
                noise = np.broadcast_to(noise, img.shape)
            except ValueError:
                raise ValueError(
                    f"noise_map: shape {noise.shape} does not match image shape {img.shape}"
                ) from None
    bad = ~np.isfinite(img) | ~np.isfinite(noise)
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != bool:
            m = m != 0
        try:
            m = np.broadcast_to(m, img.shape)
        except ValueError:
            raise ValueError(
                f"mask: shape {m.shape} cannot be broadcast to image shape {img.shape}"
            ) from None
        bad = bad | m
    return img, noise, bad


def image_scale(image, noise_map=None, mask=None) -> np.ndarray:
    """Robust amplitude of each image (see module docstring).

    Parameters
    ----------
    image : array-like, shape (..., H, W)
    noise_map : array-like, shape (..., H, W), optional
        1-sigma noise per pixel.
    mask : array-like of bool, optional
        True where a pixel must be ignored.

    Returns
    -------
    numpy.ndarray, shape (...)
        Strictly positive float64 amplitudes.
    """
    img, noise, bad = _prepare(image, noise_map, mask)
    return _scale(img, noise, bad)


def _scale(img, noise, bad):
    lead = img.shape[:-2]
    if not bad.any():  # the common case, without the (slow) NaN-aware reductions
        flat = img.reshape(lead + (-1,))
        amp = np.percentile(flat, PERCENTILE, axis=-1)
        floor = NOISE_FLOOR * np.median(noise.reshape(lead + (-1,)), axis=-1)
        peak = np.max(np.abs(flat), axis=-1)
    else:
        flat = np.where(bad, np.nan, img).reshape(lead + (-1,))
        nflat = np.where(bad, np.nan, noise).reshape(lead + (-1,))
        all_bad = np.all(bad.reshape(lead + (-1,)), axis=-1)
        # nan-reductions warn on all-NaN slices: fill those with zeros first
        flat = np.where(all_bad[..., None], 0.0, flat)
        nflat = np.where(all_bad[..., None], 0.0, nflat)
        amp = np.nanpercentile(flat, PERCENTILE, axis=-1)
        floor = NOISE_FLOOR * np.nanmedian(nflat, axis=-1)
        peak = np.nanmax(np.abs(flat), axis=-1)
    scale = np.maximum(amp, floor)
    # an empty (or negative) noise-free image: fall back to the largest |pixel|, then 1
    scale = np.where(scale > 0, scale, peak)
    scale = np.where((scale > 0) & np.isfinite(scale), scale, 1.0)
    return np.asarray(scale, dtype=np.float64)


def normalize_inputs(image, noise_map, mask=None):
    """Normalise images and noise maps into the two-channel network input.

    Parameters
    ----------
    image : array-like, shape (..., H, W)
        Background-subtracted image(s) on the model's grid.
    noise_map : array-like, shape (..., H, W) or None
        1-sigma noise per pixel; None or zeros for noise-free data.
    mask : array-like of bool, optional
        Broadcastable to ``image``; True where a pixel must be ignored.

    Returns
    -------
    x : numpy.ndarray, shape (..., H, W, 2), float32
        Channel 0 ``image / scale`` (0 where masked), channel 1
        ``noise_map / scale`` (`MASKED_NOISE` where masked).
    scale : numpy.ndarray, shape (...)
        The amplitude each image was divided by (float64, > 0).
    """
    img, noise, bad = _prepare(image, noise_map, mask)
    scale = _scale(img, noise, bad)
    s = scale[..., None, None]
    x = np.empty(img.shape + (2,), dtype=np.float32)
    x[..., 0] = np.where(bad, 0.0, img / s)
    x[..., 1] = np.where(bad, MASKED_NOISE, noise / s)
    return x, scale


def normalize_source(source, scale):
    """Divide source target(s) of shape (..., S, S) by the image scale(s) of shape (...)."""
    src = np.asarray(source, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    if src.ndim < 2:
        raise ValueError(f"source: expected shape (..., S, S), got {src.shape}")
    return (src / s[..., None, None]).astype(np.float32)


def denormalize_source(source_norm, scale):
    """Inverse of `normalize_source`: multiply by the image scale(s)."""
    src = np.asarray(source_norm, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    if src.ndim < 2:
        raise ValueError(f"source_norm: expected shape (..., S, S), got {src.shape}")
    return (src * s[..., None, None]).astype(np.float32)


def param_stats(preset) -> dict:
    """Standardisation statistics of a preset: ``{"mean": [8], "std": [8]}`` of its priors.

    Parameters
    ----------
    preset : str or `~astro_delens.presets.Preset`
        A preset known to `astro_delens.lensmodel.PRIORS`.
    """
    from .. import lensmodel

    name = getattr(preset, "name", preset)
    mean, std = lensmodel.prior_moments(name)
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def _stats_arrays(stats):
    try:
        mean = np.asarray(stats["mean"], dtype=np.float64)
        std = np.asarray(stats["std"], dtype=np.float64)
    except (KeyError, TypeError):
        raise ValueError('stats: expected a dict with "mean" and "std" lists') from None
    if mean.shape != std.shape or mean.ndim != 1:
        raise ValueError(f"stats: mean {mean.shape} and std {std.shape} must be equal 1-d shapes")
    if np.any(~(std > 0)):
        raise ValueError("stats: every std must be > 0")
    return mean, std


def normalize_params(params, stats):
    """Standardise parameters ``(..., 8)``: ``(params - mean) / std``."""
    mean, std = _stats_arrays(stats)
    p = np.asarray(params, dtype=np.float64)
    if p.shape[-1:] != mean.shape:
        raise ValueError(f"params: expected last axis {mean.shape[0]}, got shape {p.shape}")
    return ((p - mean) / std).astype(np.float32)


def denormalize_params(z, stats):
    """Inverse of `normalize_params`: ``z * std + mean`` (float64)."""
    mean, std = _stats_arrays(stats)
    z = np.asarray(z, dtype=np.float64)
    if z.shape[-1:] != mean.shape:
        raise ValueError(f"z: expected last axis {mean.shape[0]}, got shape {z.shape}")
    return z * std + mean
