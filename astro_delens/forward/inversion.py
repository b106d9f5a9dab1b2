"""Linear source inversion: the source that a given lens implies, by lenstronomy's linear solver.

Given the lens, the source surface brightness expanded in a shapelet basis
(lenstronomy ``SHAPELETS``) and the lens galaxy's light are linear in their
amplitudes, so the best source follows from one weighted least-squares solve
(`~lenstronomy.ImSim.image_linear_solve.ImageLinearFit`). The result is
evaluated on the network's source-plane grid so that the two can be compared
pixel by pixel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import lensmodel
from ..psf import lenstronomy_psf
from ._common import (
    LENS_LIGHT_CHOICES,
    check_source_grid,
    checked_inputs,
    evaluate_on_source_grid,
    fit_lens_light,
    image_grid_kwargs,
    source_grid_coordinates,
)

__all__ = ["SourceInversion", "invert_source", "shapelet_scale"]


@dataclass
class SourceInversion:
    """The result of `invert_source`.

    Attributes
    ----------
    source : ndarray (source_npix, source_npix)
        The inverted source, flux per source pixel, on the grid centred on the
        lens centre (column 0 east, row 0 south), like the network's source.
    model_image, arcs_model, lens_light_model : ndarray (n, n)
        The fitted image and its two parts.
    residuals : ndarray (n, n)
        ``(image - model_image) / noise_map`` on the used pixels, 0 elsewhere.
    reduced_chi2 : float
    dof : int
        Used pixels minus linear amplitudes minus the lens light's fitted shape
        parameters.
    n_max : int
        Shapelet order.
    beta : float
        Shapelet scale (arcsec).
    center : (float, float)
        Source-plane centre of the shapelet basis (arcsec).
    psf_used : str
    kwargs_source, kwargs_lens_light : list of dict
        lenstronomy keywords of the solution.
    source_pixel_scale : float
    seconds : float
    """

    source: np.ndarray
    model_image: np.ndarray
    arcs_model: np.ndarray
    lens_light_model: np.ndarray
    residuals: np.ndarray
    reduced_chi2: float
    dof: int
    n_max: int
    beta: float
    center: tuple
    psf_used: str
    kwargs_source: list = field(default_factory=list)
    kwargs_lens_light: list = field(default_factory=list)
    source_pixel_scale: float = 0.0
    seconds: float = 0.0


def shapelet_scale(radius, n_max):
    """Shapelet ``beta`` whose basis of order ``n_max`` reaches out to ``radius``.

    A shapelet basis of order ``n_max`` and scale ``beta`` spans radii up to
    about ``beta * sqrt(n_max + 1)`` and resolves scales down to about
    ``beta / sqrt(n_max + 1)``.
    """
    return float(radius) / np.sqrt(n_max + 1.0)


def _source_moments(light_model, kwargs, center, radius, npix=64):
    """Centroid and rms radius of the positive part of a source model near ``center``."""
    x, y = source_grid_coordinates(npix, 2 * radius / npix, center)
    sb = light_model.surface_brightness(x.ravel(), y.ravel(), kwargs).reshape(x.shape)
    w = np.clip(sb, 0.0, None) ** 2
    if not w.sum() > 0:
        return center, radius / 3
    cx = float((w * x).sum() / w.sum())
    cy = float((w * y).sum() / w.sum())
    r2 = float((w * ((x - cx) ** 2 + (y - cy) ** 2)).sum() / w.sum())
    return (cx, cy), np.sqrt(r2)


def _solve(data, psf_class, lens_model, kwargs_lens, img, noise, use, n_max, beta, center,
           lens_light, params, d, kwargs_numerics, fit_lens_light_shape, lens_light_kwargs=None):
    """Shapelets + lens light for fixed ``n_max``, ``beta``, ``center``."""
    from lenstronomy.ImSim.image_linear_solve import ImageLinearFit
    from lenstronomy.LightModel.light_model import LightModel

    source_model = LightModel(["SHAPELETS"])
    kwargs_source = [{"amp": 1.0, "n_max": int(n_max), "beta": float(beta),
                      "center_x": float(center[0]), "center_y": float(center[1])}]
    src_fit = ImageLinearFit(data, psf_class, lens_model_class=lens_model,
                             source_model_class=source_model,
                             kwargs_numerics=kwargs_numerics, likelihood_mask=use)
    if lens_light_kwargs is None:
        columns = src_fit.linear_response_matrix(kwargs_lens, kwargs_source, [], None)
        ll_list, kwargs_ll, n_shape = fit_lens_light(
            data, psf_class, img, noise, use, columns, lens_light, params, d,
            fit_shape=fit_lens_light_shape)
    else:
        ll_list, kwargs_ll, n_shape = lens_light_kwargs
    fit = ImageLinearFit(data, psf_class, lens_model_class=lens_model,
                         source_model_class=source_model,
                         lens_light_model_class=LightModel(ll_list),
                         kwargs_numerics=kwargs_numerics, likelihood_mask=use)
    model, _, _, coef = fit.image_linear_solve(kwargs_lens, kwargs_source, kwargs_ll)
    if not np.any(coef):
        a = fit.linear_response_matrix(kwargs_lens, kwargs_source, kwargs_ll, None)
        w = 1.0 / noise[use]
        coef = np.linalg.lstsq((a * w[None, :]).T, img[use] * w, rcond=None)[0]
        fit.update_linear_kwargs(coef, kwargs_lens, kwargs_source, kwargs_ll, None)
        model = np.zeros_like(img)
        model[use] = a.T @ coef
    n_linear = fit.num_param_linear(kwargs_lens, kwargs_source, kwargs_ll, None)
    chi2 = float(np.sum(((img[use] - model[use]) / noise[use]) ** 2))
    return fit, source_model, kwargs_source, ll_list, kwargs_ll, n_linear + n_shape, chi2


def invert_source(image, noise_map, params, pixel_scale, source_npix, source_pixel_scale,
                  psf=None, mask=None, n_max=10, beta=None, lens_light="mge", psf_fwhm=None,
                  supersampling=3, reference_fwhm=None, fit_lens_light_shape=True, n_beta=5):
    """Solve for the source implied by a lens, linearly, and put it on the source grid.

    Two linear solves are made. The first uses a broad shapelet basis centred
    on the lens centre (which, for ``EPL`` + ``SHEAR`` anchored at the lens
    centre, is its own source-plane position) and reaching out to the whole
    multiply-imaged region (0.6 ``theta_E``); the second recentres the basis
    on the first solution's centroid; its scale ``beta`` (unless given) is
    the one of lowest chi^2 among ``n_beta`` values from half an image pixel
    to the scale at which the basis reaches 0.6 ``theta_E`` (a wider basis
    would reach the ring of radius ~``theta_E`` in the source plane onto which
    the lens galaxy's centre maps, and trade flux with the lens light). The
    lens light's shape is fitted in the first solve and kept.

    Parameters
    ----------
    image : array-like (n, n)
        Background-subtracted image, north up, east left, flux per pixel.
    noise_map : array-like (n, n) or float
        1-sigma noise per pixel.
    params : array-like (8,)
        Lens parameters (`astro_delens.lensmodel` order).
    pixel_scale : float
        Arcsec per image pixel.
    source_npix : int
        Pixels per side of the output source grid.
    source_pixel_scale : float
        Arcsec per source pixel.
    psf : array-like (k, k), optional
        PSF on the image pixels; a Gaussian of FWHM ``psf_fwhm`` otherwise.
    mask : array-like of bool (n, n), optional
        ``True`` marks pixels to ignore.
    n_max : int
        Shapelet order of the final solve (``(n_max + 1)(n_max + 2) / 2``
        amplitudes).
    beta : float, optional
        Shapelet scale (arcsec) of the final solve; by default the basis is
        scaled to reach 3 times the rms radius of the first solution.
    lens_light : {"mge", "sersic", None}
        Lens-light model solved together with the source (see
        `~astro_delens.forward.relens_check`).
    psf_fwhm : float or None
        FWHM in arcsec of the Gaussian PSF assumed without ``psf``; None means two
        image pixels.
    supersampling : int
        Rays per image pixel side.
    reference_fwhm : float, optional
        Convolve the output with a circular Gaussian of this FWHM (arcsec),
        e.g. the preset's ``source_reference_fwhm`` to compare with a network
        trained on such targets.
    fit_lens_light_shape : bool
        Optimise the lens light's shape (see `relens_check`).
    n_beta : int
        Number of trial shapelet scales when ``beta`` is not given.

    Returns
    -------
    SourceInversion

    Raises
    ------
    ValueError
        For inconsistent shapes or invalid arguments.
    """
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.LensModel.lens_model import LensModel

    t0 = time.perf_counter()
    img, noise, use, p, d = checked_inputs(image, noise_map, params, pixel_scale, mask)
    check_source_grid(source_npix, source_pixel_scale)
    if int(n_max) < 0:
        raise ValueError(f"n_max: must be >= 0, got {n_max!r}")
    if beta is not None and not float(beta) > 0:
        raise ValueError(f"beta: must be positive, got {beta!r}")
    if lens_light not in LENS_LIGHT_CHOICES:
        raise ValueError(f"lens_light: expected one of {LENS_LIGHT_CHOICES}, got {lens_light!r}")
    n = img.shape[0]
    psf_class, _, psf_desc = lenstronomy_psf(psf, d, psf_fwhm)
    data = ImageData(image_data=img, noise_map=noise, **image_grid_kwargs(n, d))
    lens_model = LensModel(list(lensmodel.LENS_MODEL_LIST))
    kwargs_lens = lensmodel.to_lenstronomy_kwargs(p)
    kwargs_numerics = {"supersampling_factor": int(supersampling),
                       "supersampling_convolution": False}
    lens_center = lensmodel.lens_center(p)

    # 1. a broad basis on the lens centre, covering the multiply imaged region;
    #    the lens light's shape is fitted here
    reach = 0.6 * p[lensmodel.INDEX["theta_E"]] + 2 * d
    n_first = min(int(n_max), 6)
    fit, source_model, kwargs_source, ll_list, kwargs_ll, _, _ = _solve(
        data, psf_class, lens_model, kwargs_lens, img, noise, use, n_first,
        shapelet_scale(reach, n_first), lens_center, lens_light, p, d,
        {"supersampling_factor": 1}, fit_lens_light_shape)
    n_shape = 0 if (not ll_list or not fit_lens_light_shape) else (
        6 if lens_light == "sersic" else 4)
    # the lens light's shape is kept from the first solve (its amplitudes are re-solved)
    kwargs_ll = [{k: v for k, v in kw.items()} for kw in kwargs_ll]
    center, _ = _source_moments(source_model, kwargs_source, lens_center, reach)
    # 2. recentred; the scale is the best (lowest chi^2, without supersampling)
    #    of a ladder from half a pixel to the largest basis that stays clear of
    #    the ring of radius ~theta_E onto which the lens galaxy's centre maps
    #    (there the source would trade flux with the lens light)
    if beta is None:
        ladder = np.geomspace(0.5 * d, max(shapelet_scale(reach, int(n_max)), 0.5 * d),
                              n_beta)
        best = None
        for b in ladder:
            chi2 = _solve(
                data, psf_class, lens_model, kwargs_lens, img, noise, use, int(n_max), b,
                center, lens_light, p, d, {"supersampling_factor": 1}, fit_lens_light_shape,
                lens_light_kwargs=(ll_list, [dict(k) for k in kwargs_ll], n_shape))[-1]
            if best is None or chi2 < best[0]:
                best = (chi2, b)
        beta = best[1]
    fit, source_model, kwargs_source, ll_list, kwargs_ll, n_fit, _ = _solve(
        data, psf_class, lens_model, kwargs_lens, img, noise, use, int(n_max), beta, center,
        lens_light, p, d, kwargs_numerics, fit_lens_light_shape,
        lens_light_kwargs=(ll_list, kwargs_ll, n_shape))

    arcs_model = fit.source_surface_brightness(kwargs_source, kwargs_lens)
    lens_light_model = fit.lens_surface_brightness(kwargs_ll) if ll_list else np.zeros_like(img)
    model = arcs_model + lens_light_model
    resid = np.where(use, (img - model) / noise, 0.0)
    dof = max(int(use.sum()) - int(n_fit), 1)
    red = float(np.sum(resid[use] ** 2) / dof)
    source = evaluate_on_source_grid(source_model, kwargs_source, int(source_npix),
                                     float(source_pixel_scale), lens_center,
                                     reference_fwhm=reference_fwhm)
    for kw in kwargs_source + kwargs_ll:
        kw["amp"] = np.asarray(kw["amp"], dtype=float)
    return SourceInversion(
        source=source, model_image=model, arcs_model=arcs_model,
        lens_light_model=lens_light_model, residuals=resid, reduced_chi2=red, dof=dof,
        n_max=int(n_max), beta=float(beta), center=(float(center[0]), float(center[1])),
        psf_used=psf_desc, kwargs_source=kwargs_source, kwargs_lens_light=kwargs_ll,
        source_pixel_scale=float(source_pixel_scale), seconds=time.perf_counter() - t0,
    )
