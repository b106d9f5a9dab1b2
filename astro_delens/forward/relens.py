"""The re-lensing check: does the estimated lens, applied to the estimated source, explain the data?

The network's source (a pixelised surface brightness on the source-plane grid)
is lensed by the network's lens through lenstronomy -- ``INTERPOL`` light
profile, ``EPL`` + ``SHEAR`` deflection, sub-pixel supersampling, the PSF --
and compared with the image. Two things are solved for, linearly and jointly
with lenstronomy's `~lenstronomy.ImSim.image_linear_solve.ImageLinearFit`:
the overall amplitude of the source and the amplitudes of the lens galaxy's
light. The lens parameters and the source's shape are *not* fitted: the check
asks whether the answer as given explains the data.

What a flag means: the lens *and* source together leave residuals above the
noise. It is not a test of the lens alone. On simulated ``survey`` lenses the
flags come almost entirely from the source network's imperfections, and even
a free shapelet source solved at the network's lens
(`~astro_delens.forward.invert_source`) fits about as well at a wrong lens
as at the true one (``benchmarks/relens_check_distribution.py --inversion``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import lensmodel
from ..psf import lenstronomy_psf
from ._common import (
    LENS_LIGHT_CHOICES,
    check_params,
    checked_inputs,
    fit_lens_light,
    image_grid_kwargs,
    source_to_interpol_kwargs,
)

__all__ = [
    "RelensResult",
    "relens_check",
    "render_lensed_source",
    "DEFAULT_CHI2_THRESHOLD",
    "DEFAULT_ARC_CHI2_THRESHOLD",
    "DEFAULT_AMPLITUDE_RANGE",
]

#: Reduced chi^2 (all used pixels) above which `relens_check` flags a result.
#: With the true lens and the true source target, simulated ``survey`` lenses
#: give 0.98-1.05 (the target is the source convolved with a reference PSF,
#: which leaves small residuals at high signal-to-noise).
DEFAULT_CHI2_THRESHOLD = 1.3

#: Reduced chi^2 over the arc region above which a result is flagged. The arcs
#: cover a small part of the cutout, so at low signal-to-noise a wrong lens
#: hardly moves the global chi^2 but does move this one.
DEFAULT_ARC_CHI2_THRESHOLD = 2.0

#: Range of the fitted source amplitude outside which a result is flagged: the
#: network's source is in the image's flux units, so a good answer needs a
#: factor near 1; a wrong lens sends the lensed source off the arcs and the
#: factor towards 0.
DEFAULT_AMPLITUDE_RANGE = (0.5, 2.0)


@dataclass
class RelensResult:
    """What `relens_check` found.

    Attributes
    ----------
    model_image : ndarray (n, n)
        ``arcs_model + lens_light_model``.
    lens_light_model : ndarray (n, n)
        The lens galaxy's light, PSF-convolved (zeros without a lens-light model).
    arcs_model : ndarray (n, n)
        The source lensed by ``params`` and PSF-convolved, with the fitted amplitude.
    residuals : ndarray (n, n)
        ``(image - model_image) / noise_map``; zero where a pixel is not used.
    reduced_chi2 : float
        ``chi2 / dof`` over the used pixels.
    chi2 : float
    dof : int
        Used pixels minus the fitted parameters (linear amplitudes and the
        lens light's shape parameters). The eight lens parameters are given,
        not fitted, and are not subtracted.
    arc_reduced_chi2 : float
        Mean squared normalised residual over ``arc_region`` (NaN if empty).
    arc_region : ndarray of bool (n, n)
        Where the model puts source light (above half the noise) or the data,
        minus the lens-light model and smoothed over 3x3 pixels, exceed three
        times the noise of that mean; dilated by one pixel.
    flag : bool
        ``True`` when the residuals say that the lens and source do not
        explain the data: any of ``flag_reasons``.
    flag_reasons : list of str
        Which tests failed: ``reduced_chi2 > chi2_threshold``,
        ``arc_reduced_chi2 > arc_chi2_threshold``, source amplitude outside
        ``amplitude_range``.
    chi2_threshold : float
    psf_used : str
        Which PSF the model was convolved with.
    lens_light : str or None
        Lens-light model (``"mge"``, ``"sersic"`` or ``None``).
    source_amplitude : float
        Fitted factor multiplying the given source (1 when the source's flux
        normalisation agrees with the image).
    used : ndarray of bool (n, n)
        Pixels that entered the fit.
    params, source, source_pixel_scale, pixel_scale, image, noise_map
        The inputs (as float arrays).
    kwargs_lens, kwargs_lens_light : list of dict
        The lenstronomy keywords of the model.
    notes : list of str
        Anything unusual (e.g. a lensed source that misses the image).
    seconds : float
        Wall time of the check.
    """

    model_image: np.ndarray
    lens_light_model: np.ndarray
    arcs_model: np.ndarray
    residuals: np.ndarray
    reduced_chi2: float
    chi2: float
    dof: int
    arc_reduced_chi2: float
    arc_region: np.ndarray
    flag: bool
    flag_reasons: list
    chi2_threshold: float
    psf_used: str
    lens_light: str | None
    source_amplitude: float
    used: np.ndarray
    params: np.ndarray
    source: np.ndarray
    source_pixel_scale: float
    pixel_scale: float
    image: np.ndarray
    noise_map: np.ndarray
    kwargs_lens: list = field(default_factory=list)
    kwargs_lens_light: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    def plot(self, fig=None, residual_range=5.0, critical_curves=True):
        """Data, model, normalised residuals and the source with the lens's curves.

        The critical curves (image panels) and caustics (source panel) are
        those of the estimated lens, computed by lenstronomy's
        `~lenstronomy.LensModel.lens_model_extensions.LensModelExtensions.critical_curve_caustics`.

        Parameters
        ----------
        fig : `matplotlib.figure.Figure`, optional
            Figure to draw into (a new one otherwise).
        residual_range : float
            Colour scale of the residual panel, ``[-residual_range, residual_range]``.
        critical_curves : bool
            Draw critical curves and caustics.

        Returns
        -------
        `matplotlib.figure.Figure`
        """
        from .plotting import plot_relens

        return plot_relens(self, fig=fig, residual_range=residual_range,
                           critical_curves=critical_curves)


def _lensed(data, psf_class, lens_model, kwargs_lens, source, source_pixel_scale,
            kwargs_numerics):
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LightModel.light_model import LightModel

    center = (kwargs_lens[0]["center_x"], kwargs_lens[0]["center_y"])
    model = ImageModel(data, psf_class, lens_model_class=lens_model,
                       source_model_class=LightModel(["INTERPOL"]),
                       kwargs_numerics=kwargs_numerics)
    return model.image(kwargs_lens, [source_to_interpol_kwargs(source, source_pixel_scale, center)],
                       lens_light_add=False)


def render_lensed_source(params, source, source_pixel_scale, npix, pixel_scale, psf=None,
                         psf_fwhm=None, supersampling=3):
    """Lens a pixelised source with lenstronomy and convolve it with the PSF.

    This is the forward model of `relens_check` without the fit: lenstronomy
    ``INTERPOL`` source on the source-plane grid centred on the lens centre,
    ``EPL`` + ``SHEAR`` deflection, ``supersampling`` rays per pixel side.

    Parameters
    ----------
    params : array-like (8,)
        Lens parameters (`astro_delens.lensmodel` order).
    source : array-like (m, m)
        Source flux per source pixel, column 0 east, row 0 south, centred on
        ``params[4:6]``.
    source_pixel_scale : float
        Arcsec per source pixel.
    npix : int
        Pixels per side of the image.
    pixel_scale : float
        Arcsec per image pixel.
    psf : array-like (k, k), optional
        PSF on the image pixels; a Gaussian of FWHM ``psf_fwhm`` otherwise.
    psf_fwhm : float or None
        FWHM in arcsec of the Gaussian PSF assumed without ``psf``; None means two
        image pixels.
    supersampling : int

    Returns
    -------
    ndarray (npix, npix)
        Flux per image pixel.
    """
    from lenstronomy.Data.pixel_grid import PixelGrid
    from lenstronomy.LensModel.lens_model import LensModel

    p = check_params(params)
    src = np.asarray(source, dtype=float)
    if src.ndim != 2 or src.shape[0] != src.shape[1]:
        raise ValueError(f"source: expected a square 2-d array, got shape {src.shape}")
    psf_class, _, _ = lenstronomy_psf(psf, float(pixel_scale), psf_fwhm)
    g = image_grid_kwargs(int(npix), float(pixel_scale))
    grid = PixelGrid(int(npix), int(npix), g["transform_pix2angle"], g["ra_at_xy_0"],
                     g["dec_at_xy_0"])
    return _lensed(grid, psf_class, LensModel(list(lensmodel.LENS_MODEL_LIST)),
                   lensmodel.to_lenstronomy_kwargs(p), src, float(source_pixel_scale),
                   {"supersampling_factor": int(supersampling),
                    "supersampling_convolution": False})


def arc_region(img, noise, use, lens_light_model, arcs_model, residuals):
    """Where the arcs are, and the reduced chi^2 there.

    The region is where the model puts source light (above half the noise) or
    the data show light beyond the lens galaxy's (3x3-smoothed, above 3 sigma
    of the mean), dilated by one pixel.

    Returns
    -------
    region : ndarray of bool (n, n)
    arc_reduced_chi2 : float
        Mean squared normalised residual over the region (NaN when it is empty).
    """
    from scipy.ndimage import binary_dilation, uniform_filter

    excess = uniform_filter(np.where(use, img - lens_light_model, 0.0), 3, mode="constant")
    region = (arcs_model > 0.5 * noise) | (excess > noise)
    region = binary_dilation(region, iterations=1) & use
    n_region = int(region.sum())
    arc_red = float(np.sum(residuals[region] ** 2) / n_region) if n_region else float("nan")
    return region, arc_red


def flag_reasons(reduced_chi2, arc_reduced_chi2, amplitude,
                 chi2_threshold=DEFAULT_CHI2_THRESHOLD,
                 arc_chi2_threshold=DEFAULT_ARC_CHI2_THRESHOLD,
                 amplitude_range=DEFAULT_AMPLITUDE_RANGE):
    """The check's failed tests, as sentences (empty when the model explains the data)."""
    reasons = []
    if reduced_chi2 > chi2_threshold:
        reasons.append(f"reduced chi2 {reduced_chi2:.3g} > {chi2_threshold:g}")
    if np.isfinite(arc_reduced_chi2) and arc_reduced_chi2 > arc_chi2_threshold:
        reasons.append(f"reduced chi2 in the arc region {arc_reduced_chi2:.3g} > "
                       f"{arc_chi2_threshold:g}")
    lo, hi = amplitude_range
    if not (lo <= amplitude <= hi):
        reasons.append(f"source amplitude {amplitude:.3g} outside [{lo:g}, {hi:g}]")
    return reasons


def _checked_source(source, source_pixel_scale):
    """The source as a float array and its pixel scale, checked."""
    src = np.asarray(source, dtype=float)
    if src.ndim != 2 or src.shape[0] != src.shape[1]:
        raise ValueError(f"source: expected a square 2-d array, got shape {src.shape}")
    if not np.all(np.isfinite(src)):
        raise ValueError("source: must be finite")
    if not np.any(src):
        raise ValueError("source: is zero everywhere; there is nothing to re-lens")
    ds = float(source_pixel_scale)
    if not ds > 0:
        raise ValueError(f"source_pixel_scale: must be positive, got {source_pixel_scale!r}")
    return src, ds


def _solve_amplitudes(fit, kwargs_lens, kwargs_source, kwargs_ll, img, noise, use):
    """Solve the linear amplitudes in place by weighted least squares; notes on how.

    lenstronomy's solver returns zeros for an ill-conditioned system; then
    the amplitudes are solved by `numpy.linalg.lstsq`.
    """
    coef = fit.image_linear_solve(kwargs_lens, kwargs_source, kwargs_ll)[3]
    if not np.size(coef) or np.any(coef):
        return []
    a = fit.linear_response_matrix(kwargs_lens, kwargs_source, kwargs_ll, None)
    w = 1.0 / noise[use]
    coef = np.linalg.lstsq((a * w[None, :]).T, img[use] * w, rcond=None)[0]
    fit.update_linear_kwargs(coef, kwargs_lens, kwargs_source, kwargs_ll, None)
    return ["ill-conditioned linear system, solved by least squares"]


def relens_check(image, noise_map, params, source, source_pixel_scale, pixel_scale, psf=None,
                 mask=None, lens_light="mge", psf_fwhm=None, supersampling=3,
                 chi2_threshold=DEFAULT_CHI2_THRESHOLD,
                 arc_chi2_threshold=DEFAULT_ARC_CHI2_THRESHOLD,
                 amplitude_range=DEFAULT_AMPLITUDE_RANGE, fit_lens_light_shape=True,
                 search_supersampling=1):
    """Re-lens the estimated source with the estimated lens and compare with the data.

    Parameters
    ----------
    image : array-like (n, n)
        Background-subtracted image, north up, east left (see
        `astro_delens.lensmodel`), flux per pixel.
    noise_map : array-like (n, n) or float
        1-sigma noise per pixel. Pixels with zero, negative or non-finite noise
        are left out.
    params : array-like (8,)
        Lens parameters (`astro_delens.lensmodel.PARAMETER_NAMES` order).
    source : array-like (m, m)
        Source flux per source pixel on a grid centred on the lens centre
        ``params[4:6]``, column 0 east, row 0 south (the network's output).
    source_pixel_scale : float
        Arcsec per source pixel.
    pixel_scale : float
        Arcsec per image pixel.
    psf : array-like (k, k), optional
        PSF on the image pixels (odd ``k``). Without it a Gaussian of FWHM
        FWHM ``psf_fwhm`` is assumed and `RelensResult.psf_used` says so.
    mask : array-like of bool (n, n), optional
        ``True`` marks pixels to ignore.
    lens_light : {"mge", "sersic", None}
        Model of the lens galaxy's light, solved together with the source
        amplitude: ``"mge"`` (default), concentric elliptical Gaussians of
        fixed widths and free amplitudes; ``"sersic"``, one elliptical Sersic
        profile; ``None``, no lens light (images where it was subtracted).
    psf_fwhm : float or None
        FWHM in arcsec of the Gaussian PSF assumed without ``psf``; None means two
        image pixels.
    supersampling : int
        Rays per image pixel side.
    chi2_threshold : float
        Reduced chi^2 (all used pixels) above which the result is flagged.
    arc_chi2_threshold : float
        Reduced chi^2 over the arc region above which the result is flagged.
    amplitude_range : (float, float)
        Range of the fitted source amplitude outside which the result is flagged.
    fit_lens_light_shape : bool
        Optimise the lens light's ellipticity and centre (and, for ``"sersic"``,
        its radius and index) by Nelder-Mead, the amplitudes being solved
        linearly at each step. With ``False`` the shape comes from the image's
        second moments around the lens centre.
    search_supersampling : int
        Supersampling of the lens light during that search (the final model
        uses ``supersampling``).

    Returns
    -------
    RelensResult

    Raises
    ------
    ValueError
        For inconsistent shapes, non-finite parameters, or an unknown
        ``lens_light``.

    Notes
    -----
    The lens light's centre starts at the mass centre and is free within the
    Nelder-Mead search (galaxies' light and mass centres agree to a few
    hundredths of an arcsec), as is its ellipticity; these shape parameters
    count against the degrees of freedom.
    """
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.ImSim.image_linear_solve import ImageLinearFit
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    t0 = time.perf_counter()
    img, noise, use, p, d = checked_inputs(image, noise_map, params, pixel_scale, mask)
    src, ds = _checked_source(source, source_pixel_scale)
    if lens_light not in LENS_LIGHT_CHOICES:
        raise ValueError(f"lens_light: expected one of {LENS_LIGHT_CHOICES}, got {lens_light!r}")
    if int(supersampling) < 1:
        raise ValueError(f"supersampling: must be >= 1, got {supersampling!r}")

    n = img.shape[0]
    psf_class, _, psf_desc = lenstronomy_psf(psf, d, psf_fwhm)
    data = ImageData(image_data=img, noise_map=noise, **image_grid_kwargs(n, d))
    kwargs_numerics = {"supersampling_factor": int(supersampling),
                       "supersampling_convolution": False}
    lens_model = LensModel(list(lensmodel.LENS_MODEL_LIST))
    kwargs_lens = lensmodel.to_lenstronomy_kwargs(p)
    center = lensmodel.lens_center(p)

    # The lensed source for unit amplitude, computed once.
    arcs_unit = _lensed(data, psf_class, lens_model, kwargs_lens, src, ds, kwargs_numerics)

    ll_list, kwargs_ll, n_shape = fit_lens_light(
        data, psf_class, img, noise, use, arcs_unit[use][None, :], lens_light, p, d,
        fit_shape=fit_lens_light_shape, search_supersampling=search_supersampling)

    has_arcs = bool(np.any(arcs_unit[use] != 0))
    notes = []
    if not has_arcs:
        notes.append("the lensed source falls outside the used pixels")
    fit = ImageLinearFit(data, psf_class, lens_model_class=lens_model,
                         source_model_class=LightModel(["INTERPOL"] if has_arcs else []),
                         lens_light_model_class=LightModel(ll_list),
                         kwargs_numerics=kwargs_numerics, likelihood_mask=use)
    kwargs_source = [source_to_interpol_kwargs(src, ds, center)] if has_arcs else []
    if has_arcs or ll_list:
        notes += _solve_amplitudes(fit, kwargs_lens, kwargs_source, kwargs_ll, img, noise, use)
    n_linear = fit.num_param_linear(kwargs_lens, kwargs_source, kwargs_ll, None)
    arcs_model = (fit.source_surface_brightness(kwargs_source, kwargs_lens) if has_arcs
                  else np.zeros_like(img))
    lens_light_model = (fit.lens_surface_brightness(kwargs_ll) if ll_list
                        else np.zeros_like(img))
    model = arcs_model + lens_light_model
    resid = np.where(use, (img - model) / noise, 0.0)
    chi2 = float(np.sum(resid[use] ** 2))
    dof = int(use.sum()) - int(n_linear) - n_shape
    if dof < 1:
        raise ValueError("mask: too few usable pixels for the number of fitted amplitudes")
    red = chi2 / dof
    amplitude = float(kwargs_source[0]["amp"]) if has_arcs else float("nan")

    region, arc_red = arc_region(img, noise, use, lens_light_model, arcs_model, resid)
    reasons = flag_reasons(red, arc_red, amplitude, chi2_threshold, arc_chi2_threshold,
                           amplitude_range)
    for kw in kwargs_ll:
        kw["amp"] = np.asarray(kw["amp"], dtype=float)
    return RelensResult(
        model_image=model, lens_light_model=lens_light_model, arcs_model=arcs_model,
        residuals=resid, reduced_chi2=red, chi2=chi2, dof=dof,
        arc_reduced_chi2=arc_red, arc_region=region,
        flag=bool(reasons), flag_reasons=reasons, chi2_threshold=float(chi2_threshold),
        psf_used=psf_desc, lens_light=lens_light,
        source_amplitude=amplitude, used=use, params=p, source=src,
        source_pixel_scale=ds, pixel_scale=d, image=img,
        noise_map=np.where(use, noise, np.nan), notes=notes,
        kwargs_lens=kwargs_lens, kwargs_lens_light=kwargs_ll,
        seconds=time.perf_counter() - t0,
    )
