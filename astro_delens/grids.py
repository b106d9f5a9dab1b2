"""Pixel grids and their world coordinates, and resampling between grids.

Every image the package makes or reads lives on a square grid, north up and
east left: the model grid of a preset, the source plane, a PSF stamp. This
module builds their WCS (`linear_wcs` for offsets in arcsec about the lens,
`tan_wcs` for the sky) and resamples stacks of images from one grid to another
with `reproject` (`reproject_stack`).

Examples
--------
>>> from astro_delens.grids import linear_wcs
>>> w = linear_wcs(4, 0.5)
>>> [round(float(v), 3) for v in w.pixel_to_world_values(0, 0)]
[0.75, -0.75]
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy.wcs import WCS

__all__ = ["linear_wcs", "tan_wcs", "affine_wcs", "reproject_stack", "GRID_TOLERANCE"]

#: Tolerance (relative to the model pixel) below which the input grid is
#: treated as identical to the model's grid and copied instead of resampled.
GRID_TOLERANCE = 1e-3


def affine_wcs(crpix, jacobian):
    """Linear WCS of offsets in arcsec (x east, y north) with any pixel-to-world Jacobian.

    Parameters
    ----------
    crpix : (float, float)
        The 1-based pixel (x, y) at offset (0, 0).
    jacobian : array-like (2, 2)
        d(x, y) / d(pixel x, pixel y) in arcsec per pixel.
    """
    w = WCS(naxis=2)
    w.wcs.ctype = ["XOFFSET", "YOFFSET"]
    w.wcs.cunit = ["arcsec", "arcsec"]
    w.wcs.crpix = list(crpix)
    w.wcs.crval = [0.0, 0.0]
    w.wcs.cdelt = [1.0, 1.0]
    w.wcs.pc = jacobian
    w.wcs.set()
    return w


def linear_wcs(npix, pixel_scale, crval=(0.0, 0.0)):
    """WCS of an ``npix`` x ``npix`` north-up, east-left grid of offsets in arcsec.

    The world coordinates are ``(x, y)`` offsets in arcsec (x east, y north),
    equal to ``crval`` at the grid centre, as in `astro_delens.lensmodel`.
    """
    w = WCS(naxis=2)
    w.wcs.ctype = ["XOFFSET", "YOFFSET"]
    w.wcs.cunit = ["arcsec", "arcsec"]
    w.wcs.crpix = [(npix + 1) / 2.0] * 2
    w.wcs.crval = list(crval)
    w.wcs.cdelt = [-pixel_scale, pixel_scale]
    w.wcs.set()
    return w


def tan_wcs(center, npix, pixel_scale):
    """North-up, east-left TAN WCS: ``npix`` pixels of ``pixel_scale`` arcsec about ``center``."""
    center = center.icrs
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = [center.ra.deg, center.dec.deg]
    w.wcs.crpix = [(npix + 1) / 2.0, (npix + 1) / 2.0]
    w.wcs.cdelt = [-pixel_scale / 3600.0, pixel_scale / 3600.0]
    w.wcs.radesys = "ICRS"
    w.wcs.set()
    return w


def reproject_stack(stack, wcs_in, wcs_out, n_out, k, order):
    """Reproject ``stack`` (C, H, W) onto ``wcs_out`` (n_out x n_out) as k x k sub-pixel means.

    Sampling each output pixel at ``k x k`` points and averaging keeps the flux
    of an input finer than the output (``k`` > 1); ``order`` is
    `reproject.reproject_interp`'s.
    """
    from reproject import reproject_interp

    if k > 1:
        fine = wcs_out.deepcopy()
        fine.wcs.crpix = [(n_out * k + 1) / 2.0] * 2
        fine.wcs.cdelt = np.asarray(fine.wcs.cdelt) / k  # our grids use CDELT, not CD
        fine.wcs.set()
        target, shape = fine, (n_out * k, n_out * k)
    else:
        target, shape = wcs_out, (n_out, n_out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = reproject_interp((stack, wcs_in), target, shape_out=shape, order=order,
                               return_footprint=False, roundtrip_coords=False)
    out = np.asarray(out, dtype=float)
    if k > 1:
        c = out.shape[0]
        out = out.reshape(c, n_out, k, n_out, k).mean(axis=(2, 4))
    return out
