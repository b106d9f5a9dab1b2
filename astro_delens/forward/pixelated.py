"""Regularised pixelated source inversion, with the lens light solved at the same time.

Given a lens model, the image is linear in the source's surface brightness on
a grid of source-plane pixels and in the amplitudes of the lens galaxy's light.
The most probable source for a regularisation strength ``lambda`` minimises

    chi^2 + lambda * s^T H s,

where ``H`` penalises the source's gradient (Warren & Dye 2003), and
``lambda`` is the one that maximises the Bayesian evidence of the data
(Suyu et al. 2006, MNRAS 371, 983). The evidence also ranks lens models: a
wrong lens maps the multiple images of one source region to different source
pixels, and the source must become more complex (penalised) to fit them.

Rays are traced by lenstronomy (``EPL`` + ``SHEAR``) from ``supersampling**2``
points per image pixel, each shared between its four nearest source pixels
(bilinear interpolation); the lensed images are convolved with the PSF on
the image pixels. The lens light is a multi-Gaussian expansion (lenstronomy
``MULTI_GAUSSIAN_ELLIPSE``) in two groups, inside and outside half the
Einstein radius, each with its own ellipticity from the image's moments, so
that lens galaxies with isophote twists are followed; its amplitudes are free
(not regularised).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import lensmodel
from ._common import image_grid_kwargs, make_psf, moment_ellipticity, prepare_inputs
from .relens import _check_params

__all__ = ["PixelatedSource", "invert_pixelated", "EvidenceCheck", "evidence_check",
           "DEFAULT_EVIDENCE_THRESHOLD", "field_masks", "source_box",
           "smooth_light_columns", "light_centroid"]

_THETA_E = lensmodel.PARAMETER_NAMES.index("theta_E")
_CENTER_X = lensmodel.PARAMETER_NAMES.index("center_x")
_CENTER_Y = lensmodel.PARAMETER_NAMES.index("center_y")

#: Image pixels closer to the lens centre than this fraction of theta_E are not
#: traced to the source (see `invert_pixelated`).
CORE_FRACTION = 0.2


@dataclass(frozen=True)
class PixelatedSource:
    """The result of `invert_pixelated`.

    Attributes
    ----------
    source : ndarray (source_npix, source_npix)
        The source, flux per pixel of the output grid (centred on the lens
        centre, column 0 east, row 0 south, like the networks' sources).
    model_image, arcs_model, lens_light_model, background_model : ndarray (n, n)
        The fitted image and its three parts.
    residuals : ndarray (n, n)
        ``(image - model_image) / noise`` on the used pixels, 0 elsewhere.
    used : ndarray of bool (n, n)
        The pixels that entered the fit.
    other_objects : ndarray of bool (n, n)
        Pixels left out as other objects (see `field_masks`).
    chi2 : float
    reduced_chi2 : float
        ``chi2`` over the degrees of freedom: used pixels minus the lens
        light's amplitudes minus the source's effective number of parameters
        (Suyu et al. 2006, eq. 32).
    dof : float
    log_evidence : float
        ln of the Bayesian evidence (up to terms that depend on neither the
        lens model nor ``regularization``): compare lens models on one image
        with it.
    regularization : float
        The evidence-maximising strength ``lambda``.
    inversion_npix, inversion_pixel_scale : int, float
        The inversion's own source grid.
    inversion_center : (float, float)
        Its centre (arcsec, source plane).
    inversion_source : ndarray (inversion_npix, inversion_npix)
        The source on that grid, in image flux per image pixel (surface
        brightness times the image pixel area).
    psf_used : str
    seconds : float
    """

    source: np.ndarray
    model_image: np.ndarray
    arcs_model: np.ndarray
    lens_light_model: np.ndarray
    background_model: np.ndarray
    residuals: np.ndarray
    used: np.ndarray
    other_objects: np.ndarray
    chi2: float
    reduced_chi2: float
    dof: float
    log_evidence: float
    regularization: float
    inversion_npix: int
    inversion_pixel_scale: float
    inversion_center: tuple
    inversion_source: np.ndarray
    psf_used: str
    seconds: float = 0.0
    kwargs_lens_light: list = field(default_factory=list)


def field_masks(img, noise, use, columns, radius, theta_e, iterations=3, arc_threshold=2.0,
                outlier_threshold=3.0):
    """Arc pixels and other objects, found around a robust fit of the smooth light.

    ``columns`` (k, n_used) is the smooth model (lens light and background).
    Its amplitudes are fitted by weighted least squares, and the 3x3-smoothed
    residuals (in sigma of the mean) mark two kinds of pixels, dilated by two
    pixels and left out of the next fit:

    * arcs: above ``arc_threshold`` between `CORE_FRACTION` and twice the
      Einstein radius from the lens centre;
    * other objects: beyond ``outlier_threshold`` in absolute value further
      out (neighbours, stars, satellites), masked in the inversion.

    Returns
    -------
    arcs, others : ndarray of bool (n, n)
    """
    from scipy.ndimage import binary_dilation, uniform_filter

    from ._common import weighted_least_squares

    weights = 1.0 / noise[use] ** 2
    data = img[use]
    zone = (radius >= CORE_FRACTION * theta_e) & (radius <= 2.0 * theta_e) & use
    arcs = np.zeros_like(use)
    others = np.zeros_like(use)
    for _ in range(int(iterations)):
        fit_px = ~(arcs | others)[use]
        coef, _ = weighted_least_squares(columns[:, fit_px], data[fit_px], weights[fit_px])
        resid = np.zeros(use.shape)
        resid[use] = (data - columns.T @ coef) * np.sqrt(weights)
        smooth = uniform_filter(resid, 3, mode="constant") * 3.0  # a 3x3 mean has sigma 1/3
        arcs = binary_dilation(smooth > arc_threshold, iterations=2) & zone
        far = use & ~binary_dilation(zone, iterations=2) & (radius > CORE_FRACTION * theta_e)
        others = binary_dilation(np.abs(smooth) > outlier_threshold, iterations=2) & far
    return arcs, others


def source_box(beta_x, beta_y, params, pixel_scale, margin_pixels=3.0):
    """Centre and half-width (arcsec) of the square source grid that the inversion solves on.

    The box holds the source-plane positions ``beta_x``, ``beta_y`` of the
    arc pixels (their 2nd to 98th percentiles) with a margin of
    ``margin_pixels`` image pixels; it is at least three image pixels and at
    most the Einstein radius (plus the margin) wide on each side of its
    centre. Without arc pixels it is centred on the lens centre with half the
    Einstein radius.
    """
    theta_e = float(params[_THETA_E])
    center = (float(params[_CENTER_X]), float(params[_CENTER_Y]))
    margin = margin_pixels * pixel_scale
    if np.size(beta_x) < 3:
        return center, max(0.5 * theta_e, 3 * pixel_scale)
    lo_x, hi_x = np.percentile(beta_x, [2, 98])
    lo_y, hi_y = np.percentile(beta_y, [2, 98])
    half = max(hi_x - lo_x, hi_y - lo_y) / 2.0 + margin
    half = float(np.clip(half, 3 * pixel_scale, theta_e + margin))
    return (0.5 * (lo_x + hi_x), 0.5 * (lo_y + hi_y)), half


def _image_plane_rays(n, pixel_scale, supersampling):
    """``(x, y)`` of ``supersampling**2`` points per pixel, shape (n * n, s * s), pixel-major."""
    s = int(supersampling)
    jj, ii = np.mgrid[0:n, 0:n]
    x, y = lensmodel.pixel_to_angle(ii.ravel(), jj.ravel(), n, pixel_scale)
    offsets = ((np.arange(s) + 0.5) / s - 0.5) * pixel_scale
    ox, oy = np.meshgrid(offsets, offsets)
    return x[:, None] + ox.ravel()[None, :], y[:, None] + oy.ravel()[None, :]


def _mapping_matrix(beta_x, beta_y, npix_src, scale_src, center):
    """Sparse (image pixels, source pixels) matrix of bilinear weights of the traced rays.

    ``beta_x``, ``beta_y`` are (n_pixels, n_rays) source-plane positions; each
    pixel's row averages its rays. Source pixel ``(row r, column c)`` is
    number ``r * npix_src + c``, at ``x = ((npix_src - 1) / 2 - c) scale + cx``,
    ``y = (r - (npix_src - 1) / 2) scale + cy``.
    """
    from scipy.sparse import csr_matrix

    n_pix, n_rays = beta_x.shape
    half = (npix_src - 1) / 2.0
    col = half - (beta_x - center[0]) / scale_src
    row = half + (beta_y - center[1]) / scale_src
    c0, r0 = np.floor(col).astype(int), np.floor(row).astype(int)
    fc, fr = col - c0, row - r0
    inside = (c0 >= 0) & (c0 < npix_src - 1) & (r0 >= 0) & (r0 < npix_src - 1)
    pix = np.broadcast_to(np.arange(n_pix)[:, None], beta_x.shape)
    rows, cols, vals = [], [], []
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc),
                      (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rows.append(pix[inside])
        cols.append(((r0 + dr) * npix_src + c0 + dc)[inside])
        vals.append(w[inside] / n_rays)
    return csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n_pix, npix_src * npix_src))


def _drop_rows(matrix, rows):
    """``matrix`` with the rows where ``rows`` is True set to zero."""
    from scipy.sparse import diags

    return (diags((~rows).astype(float)) @ matrix).tocsr()


def _blurred_columns(mapping, kernel, n, use):
    """The lensed, PSF-convolved image of each source pixel that is hit, on the used pixels.

    Returns the dense (n_used, n_hit) matrix and the indices of the hit source pixels.
    """
    from scipy.signal import fftconvolve

    hit = np.flatnonzero(np.asarray(mapping.getnnz(axis=0)) > 0)
    out = np.empty((int(use.sum()), hit.size))
    csc = mapping.tocsc()
    for start in range(0, hit.size, 256):
        block = hit[start:start + 256]
        stack = csc[:, block].T.toarray().reshape(len(block), n, n)
        blurred = fftconvolve(stack, kernel[None], mode="same", axes=(1, 2))
        out[:, start:start + len(block)] = blurred[:, use].T
    return out, hit


def _gradient_regularization(npix_src, floor=1e-3):
    """``H = Dx^T Dx + Dy^T Dy + floor * I`` on the source grid (dense).

    The small zeroth-order ``floor`` makes ``H`` positive definite, so that
    its determinant (which enters the evidence) exists.
    """
    from scipy.sparse import diags, eye, kron

    m = npix_src
    diff = diags([-np.ones(m - 1), np.ones(m - 1)], [0, 1], shape=(m - 1, m))
    ident = eye(m)
    dx = kron(ident, diff)
    dy = kron(diff, ident)
    h = (dx.T @ dx + dy.T @ dy + floor * eye(m * m)).toarray()
    return h


def light_centroid(img, use, center, pixel_scale, window=0.3, iterations=5):
    """Centroid (arcsec) of the light within a Gaussian ``window`` (arcsec) near ``center``."""
    n = img.shape[0]
    jj, ii = np.mgrid[0:n, 0:n]
    x, y = lensmodel.pixel_to_angle(ii, jj, n, pixel_scale)
    light = np.clip(img, 0.0, None) * use
    cx, cy = center
    for _ in range(int(iterations)):
        w = np.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) / window**2) * light
        if not w.sum() > 0:
            return center
        cx, cy = float((w * x).sum() / w.sum()), float((w * y).sum() / w.sum())
    return cx, cy


def smooth_light_columns(data, psf_class, img, use, params, pixel_scale, n_gaussians=16,
                         supersampling=2):
    """The smooth part of the image as linear columns: lens light and background.

    The lens light is a ladder of elliptical Gaussians (lenstronomy
    ``GAUSSIAN_ELLIPSE``, widths from half a pixel to half the field) centred
    on the light's centroid near the mass centre, each with the ellipticity
    of the light's second moments at its own width, so that ellipticity
    gradients and isophote twists are followed; they are PSF-convolved. The
    background is a plane (constant and two gradients), not convolved.

    Returns
    -------
    columns : ndarray (k, n_used)
    model_list : list of str
    kwargs : list of dict
        lenstronomy keywords of the Gaussians (amplitudes 1).
    """
    from lenstronomy.ImSim.image_linear_solve import ImageLinearFit
    from lenstronomy.LightModel.light_model import LightModel

    n = img.shape[0]
    d = float(pixel_scale)
    cx, cy = light_centroid(img, use, (float(params[_CENTER_X]), float(params[_CENTER_Y])), d)
    model_list, kwargs = [], []
    for sigma in np.geomspace(0.5 * d, 0.5 * n * d, int(n_gaussians)):
        e1, e2 = moment_ellipticity(img, (cx, cy), d, max(sigma, d), use)
        model_list.append("GAUSSIAN_ELLIPSE")
        kwargs.append({"amp": 1.0, "sigma": float(sigma), "e1": e1, "e2": e2,
                       "center_x": cx, "center_y": cy})
    fit = ImageLinearFit(data, psf_class, source_model_class=LightModel([]),
                         lens_light_model_class=LightModel(model_list),
                         kwargs_numerics={"supersampling_factor": int(supersampling)},
                         likelihood_mask=use)
    light = np.asarray(fit.linear_response_matrix(None, [], kwargs, None), dtype=float)
    jj, ii = np.mgrid[0:n, 0:n]
    x, y = lensmodel.pixel_to_angle(ii[use], jj[use], n, d)
    half_width = 0.5 * n * d
    background = np.vstack([np.ones(x.size), x / half_width, y / half_width])
    return np.vstack([light.reshape(-1, int(use.sum())), background]), model_list, kwargs


class _Posterior:
    """Most probable amplitudes and evidence for one lens, as a function of ``lambda``."""

    def __init__(self, columns, data, weights, reg, n_source):
        self.n_source = n_source
        aw = columns * weights[:, None]
        self.f = columns.T @ aw
        self.b = aw.T @ data
        self.columns, self.data, self.weights = columns, data, weights
        self.reg = reg
        self.log_det_reg = 2.0 * float(np.sum(np.log(np.diag(np.linalg.cholesky(reg)))))
        self.scale = float(np.trace(self.f[:n_source, :n_source]) / np.trace(reg))

    def solve(self, lam):
        from scipy.linalg import cho_factor, cho_solve

        ns = self.n_source
        a = self.f.copy()
        a[:ns, :ns] += lam * self.reg
        factor = cho_factor(a, lower=True, check_finite=False)
        coef = cho_solve(factor, self.b, check_finite=False)
        r = self.data - self.columns @ coef
        chi2 = float(np.sum(r * r * self.weights))
        s = coef[:ns]
        penalty = float(s @ (self.reg @ s))
        log_det = 2.0 * float(np.sum(np.log(np.diag(factor[0]))))
        log_ev = 0.5 * (-chi2 - lam * penalty - log_det + ns * np.log(lam) + self.log_det_reg)
        return coef, chi2, log_ev, factor

    def effective_source_parameters(self, lam, factor):
        """Suyu et al. (2006) eq. 32: ``N_s - lambda Tr[(F + lambda H)^-1 H]`` (source block)."""
        from scipy.linalg import cho_solve

        ns = self.n_source
        full = np.zeros((self.f.shape[0], ns))
        full[:ns] = self.reg
        inv_h = cho_solve(factor, full, check_finite=False)[:ns]
        return float(ns - lam * np.trace(inv_h))

    def best(self):
        """The evidence-maximising ``lambda`` (bounded search in ``log10 lambda``)."""
        from scipy.optimize import minimize_scalar

        centre = np.log10(max(self.scale, 1e-300))
        res = minimize_scalar(lambda t: -self.solve(10.0**t)[2],
                              bounds=(centre - 6.0, centre + 3.0), method="bounded",
                              options={"xatol": 0.05})
        return 10.0 ** float(res.x)


def invert_pixelated(image, noise_map, params, pixel_scale, source_npix, source_pixel_scale,
                     psf=None, mask=None, psf_fwhm=2.0, supersampling=2, inversion_npix=32,
                     regularization=None, reference_fwhm=None, mask_other_objects=True):
    """The evidence-regularised pixelated source that a lens implies, and its re-lensed image.

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
    source_npix, source_pixel_scale : int, float
        The output source grid (centred on the lens centre).
    psf : array-like (k, k), optional
        PSF on the image pixels; a Gaussian of ``psf_fwhm`` pixels otherwise.
    mask : array-like of bool (n, n), optional
        ``True`` marks pixels to ignore.
    psf_fwhm : float
        FWHM (pixels) of the Gaussian PSF assumed without ``psf``.
    supersampling : int
        Rays per image pixel side.
    inversion_npix : int
        Pixels per side of the inversion's source grid, which spans
        `source_box` around the arcs' source-plane positions.
    regularization : float, optional
        Fix ``lambda`` instead of maximising the evidence.
    reference_fwhm : float, optional
        Convolve the output source with a circular Gaussian of this FWHM
        (arcsec), like the networks' source targets.
    mask_other_objects : bool
        Leave out the pixels of other objects found by `field_masks`. Lens
        models are compared on the same pixels: give the first inversion's
        ``used`` (inverted) as ``mask`` and False here.

    Returns
    -------
    PixelatedSource

    Raises
    ------
    ValueError
        For inconsistent shapes or invalid arguments.
    """
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.LensModel.lens_model import LensModel

    t0 = time.perf_counter()
    img, noise, use = prepare_inputs(image, noise_map, mask)
    p = _check_params(params)
    d = float(pixel_scale)
    if not d > 0:
        raise ValueError(f"pixel_scale: must be positive, got {pixel_scale!r}")
    m = int(inversion_npix)
    if m < 4:
        raise ValueError(f"inversion_npix: must be at least 4, got {inversion_npix!r}")
    if int(supersampling) < 1:
        raise ValueError(f"supersampling: must be >= 1, got {supersampling!r}")
    if regularization is not None and not float(regularization) > 0:
        raise ValueError(f"regularization: must be positive, got {regularization!r}")
    n = img.shape[0]
    psf_class, _, psf_desc = make_psf(psf, d, psf_fwhm)
    kernel = np.asarray(psf_class.kernel_point_source, dtype=float)
    center = (float(p[_CENTER_X]), float(p[_CENTER_Y]))
    theta_e = float(p[_THETA_E])
    data = ImageData(image_data=img, noise_map=noise, **image_grid_kwargs(n, d))
    smooth, ll_list, kwargs_ll = smooth_light_columns(data, psf_class, img, use, p, d)
    x, y = _image_plane_rays(n, d, supersampling)
    bx, by = LensModel(list(lensmodel.LENS_MODEL_LIST)).ray_shooting(
        x.ravel(), y.ravel(), lensmodel.to_lenstronomy_kwargs(p))
    bx, by = bx.reshape(x.shape), by.reshape(x.shape)
    radius = np.hypot(x.mean(axis=1) - center[0], y.mean(axis=1) - center[1]).reshape(n, n)

    # 1. where the arcs are, and which pixels belong to other objects
    arcs_px, others = field_masks(img, noise, use, smooth, radius, theta_e)
    if not mask_other_objects:
        others = np.zeros_like(use)
    smooth = smooth[:, ~others[use]]
    use = use & ~others
    # 2. a source grid around the arcs' source-plane positions
    box_center, half = source_box(bx.mean(axis=1).reshape(n, n)[arcs_px],
                                  by.mean(axis=1).reshape(n, n)[arcs_px], p, d)
    scale_src = 2.0 * half / (m - 1)
    mapping = _mapping_matrix(bx, by, m, scale_src, box_center)
    # The lens's core maps onto a ring of radius ~theta_E in the source plane:
    # there the source would trade flux with the lens light, so those rays are
    # not traced (a counter-image that faint belongs to the lens light's fit).
    mapping = _drop_rows(mapping, (radius < CORE_FRACTION * theta_e).ravel())
    source_columns, hit = _blurred_columns(mapping, kernel, n, use)
    # 3. source, lens light and background together, lambda by the evidence
    columns = np.hstack([source_columns, smooth.T])
    weights = 1.0 / noise[use] ** 2
    reg = _gradient_regularization(m)[np.ix_(hit, hit)]
    posterior = _Posterior(columns, img[use], weights, reg, hit.size)
    lam = posterior.best() if regularization is None else float(regularization)
    coef, chi2, log_ev, factor = posterior.solve(lam)
    n_eff = posterior.effective_source_parameters(lam, factor)
    dof = max(float(use.sum()) - smooth.shape[0] - n_eff, 1.0)

    n_light = len(ll_list)
    parts = np.split(coef, [hit.size, hit.size + n_light])
    images = []
    for cols, amp in ((source_columns.T, parts[0]), (smooth[:n_light], parts[1]),
                      (smooth[n_light:], parts[2])):
        im = np.zeros_like(img)
        im[use] = cols.T @ amp
        images.append(im)
    arcs, light, background = images
    model = arcs + light + background
    resid = np.where(use, (img - model) / noise, 0.0)
    grid = np.zeros(m * m)
    grid[hit] = parts[0]
    grid = grid.reshape(m, m)
    offset = (box_center[0] - center[0], box_center[1] - center[1])
    source = _on_output_grid(grid, scale_src, offset, d, int(source_npix),
                             float(source_pixel_scale), reference_fwhm)
    for kw, amp in zip(kwargs_ll, parts[1]):
        kw["amp"] = float(amp)
    return PixelatedSource(
        source=source, model_image=model, arcs_model=arcs, lens_light_model=light,
        background_model=background, residuals=resid, used=use, other_objects=others,
        chi2=chi2, reduced_chi2=chi2 / dof, dof=dof, log_evidence=log_ev, regularization=lam,
        inversion_npix=m, inversion_pixel_scale=scale_src, inversion_center=box_center,
        inversion_source=grid, psf_used=psf_desc, seconds=time.perf_counter() - t0,
        kwargs_lens_light=kwargs_ll,
    )


def _on_output_grid(grid, scale_src, offset, pixel_scale, npix_out, scale_out, reference_fwhm,
                    subsample=3):
    """Resample the inversion's source (image flux per image pixel) to flux per output pixel.

    ``offset`` is the inversion grid's centre relative to the output grid's.
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    from ._common import source_grid_coordinates

    m = grid.shape[0]
    # output sub-pixel positions relative to the (common) grid centre
    x, y = source_grid_coordinates(npix_out, scale_out, (0.0, 0.0), subsample)
    half = (m - 1) / 2.0
    col = half - (x - offset[0]) / scale_src
    row = half + (y - offset[1]) / scale_src
    sb = map_coordinates(grid, [row.ravel(), col.ravel()], order=1, mode="constant", cval=0.0)
    sb = sb.reshape(x.shape).reshape(npix_out, subsample, npix_out, subsample).mean(axis=(1, 3))
    out = sb * (scale_out / pixel_scale) ** 2
    if reference_fwhm is not None and reference_fwhm > 0:
        sigma_pix = float(reference_fwhm) / (2.0 * np.sqrt(2.0 * np.log(2.0))) / scale_out
        out = gaussian_filter(out, sigma_pix, mode="constant")
    return out


#: ln-evidence by which a lens with a different Einstein radius must beat the
#: answer before `evidence_check` flags it (set on `sky` simulations with the
#: networks' answers: ``benchmarks/evidence_check.py``).
DEFAULT_EVIDENCE_THRESHOLD = 20.0


@dataclass(frozen=True)
class EvidenceCheck:
    """The result of `evidence_check`.

    Attributes
    ----------
    theta_e : ndarray (k,)
        The Einstein radii tried (the answer's among them).
    log_evidence, reduced_chi2 : ndarray (k,)
        Of the pixelated inversion at each.
    answer_index : int
        Position of the answer's Einstein radius in ``theta_e``.
    delta_log_evidence : float
        Best ln-evidence of the other radii minus the answer's (positive: a
        different radius explains the data better).
    preferred_theta_e : float
        The radius of highest evidence.
    flag : bool
        ``delta_log_evidence > threshold``.
    threshold : float
    inversion : PixelatedSource
        The inversion at the answer.
    """

    theta_e: np.ndarray
    log_evidence: np.ndarray
    reduced_chi2: np.ndarray
    answer_index: int
    delta_log_evidence: float
    preferred_theta_e: float
    flag: bool
    threshold: float
    inversion: PixelatedSource


def evidence_check(image, noise_map, params, pixel_scale, source_npix, source_pixel_scale,
                   steps=(0.88, 1.12), threshold=DEFAULT_EVIDENCE_THRESHOLD, **options):
    """Does a lens with another Einstein radius explain the data better than the answer?

    The pixelated source is inverted (`invert_pixelated`) at the answer and at
    the answer with ``theta_E`` scaled by each of ``steps`` (the other
    parameters kept). A right answer has the highest Bayesian evidence; an
    answer that is off by more than the steps is beaten by the step towards
    the truth. Unlike a reduced chi^2, this does not depend on how well the
    rest of the image (lens light, neighbours) is modelled, which is the same
    at every radius.

    Parameters
    ----------
    image, noise_map, params, pixel_scale, source_npix, source_pixel_scale
        As `invert_pixelated`.
    steps : sequence of float
        Factors applied to ``theta_E``.
    threshold : float
        ln-evidence margin above which the answer is flagged.
    **options
        More keywords of `invert_pixelated` (``psf``, ``mask``...).

    Returns
    -------
    EvidenceCheck
    """
    p = _check_params(params)
    factors = np.array(sorted({1.0, *(float(s) for s in steps)}))
    if np.any(factors <= 0):
        raise ValueError(f"steps: must be positive factors, got {steps!r}")
    at_answer = invert_pixelated(image, noise_map, p, pixel_scale, source_npix,
                                 source_pixel_scale, **options)
    # every radius is judged on the pixels used at the answer
    options = {**options, "mask": ~at_answer.used, "mask_other_objects": False}
    results = []
    for factor in factors:
        trial = p.copy()
        trial[_THETA_E] *= factor
        results.append(at_answer if factor == 1.0 else invert_pixelated(
            image, noise_map, trial, pixel_scale, source_npix, source_pixel_scale, **options))
    log_ev = np.array([r.log_evidence for r in results])
    answer = int(np.flatnonzero(factors == 1.0)[0])
    others = np.delete(log_ev, answer)
    delta = float(others.max() - log_ev[answer]) if others.size else 0.0
    return EvidenceCheck(
        theta_e=factors * p[_THETA_E], log_evidence=log_ev,
        reduced_chi2=np.array([r.reduced_chi2 for r in results]), answer_index=answer,
        delta_log_evidence=delta, preferred_theta_e=float(factors[np.argmax(log_ev)] * p[_THETA_E]),
        flag=bool(delta > threshold), threshold=float(threshold), inversion=results[answer],
    )
