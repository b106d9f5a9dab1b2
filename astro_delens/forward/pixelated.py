"""Regularised pixelated source inversion, with the lens light solved at the same time.

Given a lens model, the image is linear in the source's surface brightness at
a set of source-plane points and in the amplitudes of the lens galaxy's light.
The most probable source for a regularisation strength ``lambda`` minimises

    chi^2 + lambda * s^T H s,

where ``H`` penalises the source's gradient (Warren & Dye 2003), and
``lambda`` is the one that maximises the Bayesian evidence of the data
(Suyu et al. 2006, MNRAS 371, 983). The evidence also ranks lens models: a
wrong lens maps the multiple images of one source region to different source
pixels, and the source must become more complex (penalised) to fit them.

The steps, top to bottom in `invert_pixelated`:

1. *Smooth light.* A ladder of elliptical Gaussians (lenstronomy
   ``GAUSSIAN_ELLIPSE``, each with the ellipticity of the light at its own
   width, so that isophote twists are followed) and a background plane are
   fitted robustly, with non-negative Gaussians; what stands above them near
   the Einstein radius is the arcs, what stands out elsewhere is other
   objects (masked). The fitted profile is kept, with free amplitudes for
   the core's Gaussians and for groups of the wider ones.
2. *Source mesh.* The arc pixels' centres are traced to the source plane
   (lenstronomy ``EPL`` + ``SHEAR``); they are the vertices of a Delaunay
   mesh, fine where the magnification is high (as in Vegetti & Koopmans
   2009), framed by a coarse grid.
3. *Inversion.* ``supersampling**2`` rays per image pixel are traced and
   interpolated linearly on the mesh; the lensed images of the vertices are
   convolved with the PSF, and the source, the light's amplitudes and the
   background are solved together, ``lambda`` by the evidence.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import lensmodel
from ..psf import lenstronomy_psf
from ._common import (
    check_params,
    check_source_grid,
    checked_inputs,
    image_grid_kwargs,
    moment_ellipticity,
    prepare_inputs,
    sample_on_source_grid,
)
from .relens import (
    DEFAULT_ARC_CHI2_THRESHOLD,
    RelensResult,
    arc_region,
    flag_reasons,
)

__all__ = ["PixelatedSource", "invert_pixelated", "as_relens_result",
           "INVERSION_CHI2_THRESHOLD", "EvidenceCheck",
           "evidence_check",
           "DEFAULT_EVIDENCE_THRESHOLD", "field_masks", "source_vertices",
           "smooth_light_columns", "light_centroid"]

_THETA_E = lensmodel.INDEX["theta_E"]
_CENTER_X = lensmodel.INDEX["center_x"]
_CENTER_Y = lensmodel.INDEX["center_y"]

#: Image pixels closer to the lens centre than this fraction of theta_E are not
#: traced to the source (see `invert_pixelated`).
CORE_FRACTION = 0.3


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
        Pixels left out as other objects (see ``field_masks``).
    arc_pixels : ndarray of bool (n, n)
        The pixels whose traced positions make the source mesh.
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
    source_vertices : ndarray (k, 2)
        The inversion's own source pixels: vertices ``(x, y)`` (arcsec) of a
        Delaunay mesh, dense where the magnification is high.
    source_values : ndarray (k,)
        The source at those vertices, in image flux per image pixel (surface
        brightness times the image pixel area), linearly interpolated
        between them.
    light_basis : ndarray (k, n, n)
        The smooth light's basis images (lens light, then background plane),
        whose amplitudes the inversion fits.
    n_light_basis : int
        How many of them are lens light.
    psf_used : str
    seconds : float
    kwargs_lens_light : list of dict
        lenstronomy keywords of the lens light's Gaussians, with the
        amplitudes of the robust pre-fit that fixed its profile (the
        inversion rescales groups of them: see ``lens_light_model``).
    """

    source: np.ndarray
    model_image: np.ndarray
    arcs_model: np.ndarray
    lens_light_model: np.ndarray
    background_model: np.ndarray
    residuals: np.ndarray
    used: np.ndarray
    other_objects: np.ndarray
    arc_pixels: np.ndarray
    chi2: float
    reduced_chi2: float
    dof: float
    log_evidence: float
    regularization: float
    source_vertices: np.ndarray
    source_values: np.ndarray
    light_basis: np.ndarray
    n_light_basis: int
    psf_used: str
    seconds: float = 0.0
    kwargs_lens_light: list = field(default_factory=list)


def fit_smooth_light(columns, n_light, data, weights):
    """Amplitudes of the smooth light: non-negative Gaussians, a free background plane.

    Positive Gaussians of one centre cannot make rings, so the lens light
    cannot take over the arcs.
    """
    from scipy.optimize import lsq_linear

    sw = np.sqrt(weights)
    k = columns.shape[0]
    lower = np.r_[np.zeros(n_light), np.full(k - n_light, -np.inf)]
    a = (columns * sw[None, :]).T
    scale = np.sqrt(np.sum(a * a, axis=0))
    scale[~(scale > 0)] = 1.0
    # a small ridge (on unit-norm columns) sends amplitudes the data do not
    # constrain (e.g. Gaussians on masked pixels only) to zero
    a = np.vstack([a / scale, 1e-3 * np.eye(k)])
    b = np.r_[data * sw, np.zeros(k)]
    res = lsq_linear(a, b, bounds=(lower, np.inf), method="bvls")
    return res.x / scale


def field_masks(img, noise, use, columns, n_light, radius, theta_e, iterations=3,
                arc_threshold=2.0, outlier_threshold=3.0):
    """Arc pixels and other objects, found around a robust fit of the smooth light.

    ``columns`` (k, n_used) is the smooth model: ``n_light`` lens-light
    columns, then the background's. Its amplitudes are fitted
    (`fit_smooth_light`) and the 3x3-smoothed residuals, in units of their own
    robust scatter (correlated noise makes it larger than a third of the
    noise), mark two kinds of pixels, dilated by two pixels and left out of
    the next fit:

    * arcs: above ``arc_threshold`` between ``CORE_FRACTION`` and twice the
      Einstein radius from the lens centre, together with the rest of any
      patch of bright pixels that reaches into that zone;
    * other objects: patches beyond ``outlier_threshold`` in absolute value
      that do not reach into it (neighbours, stars, satellites), masked in
      the inversion.

    Returns
    -------
    arcs, others : ndarray of bool (n, n)
    coef : ndarray (k,)
        The smooth light's amplitudes in the last fit.
    """
    from astropy.stats import mad_std
    from scipy.ndimage import binary_dilation, label, uniform_filter

    weights = 1.0 / noise[use] ** 2
    data = img[use]
    zone = (radius >= CORE_FRACTION * theta_e) & (radius <= 2.0 * theta_e) & use
    arcs = np.zeros_like(use)
    others = np.zeros_like(use)
    for _ in range(int(iterations)):
        fit_px = ~(arcs | others)[use]
        coef = fit_smooth_light(columns[:, fit_px], n_light, data[fit_px], weights[fit_px])
        resid = np.zeros(use.shape)
        resid[use] = (data - columns.T @ coef) * np.sqrt(weights)
        smooth = uniform_filter(resid, 3, mode="constant")
        scatter = mad_std(smooth[use & ~(arcs | others)])
        smooth /= scatter if scatter > 0 else 1.0
        patches, _ = label(np.abs(smooth) > min(arc_threshold, outlier_threshold))
        in_zone = np.unique(patches[zone & (smooth > arc_threshold)])
        arc_patch = np.isin(patches, in_zone[in_zone > 0])
        arcs = binary_dilation(arc_patch, iterations=2) & use
        bright = (np.abs(smooth) > outlier_threshold) & ~arc_patch
        others = binary_dilation(bright, iterations=2) & use & ~arcs & (
            radius > CORE_FRACTION * theta_e)
    return arcs, others, coef


def light_groups(columns, coef, n_light, sigmas, theta_e):
    """The fitted lens light as a few columns: its Gaussians summed in groups of width.

    Gaussians narrower than a fifth of the Einstein radius stay free; the
    others are summed in groups (`light_group_index`) that keep the fitted
    profile within each group and a free amplitude between them; the
    background columns follow unchanged.
    """
    group = light_group_index(sigmas, theta_e)
    out = [columns[k] for k in np.flatnonzero(group < 0)]
    for g in range(group.max() + 1):
        member = np.flatnonzero(group == g)
        if member.size and np.any(coef[member] > 0):
            out.append(coef[member] @ columns[member])
    return np.vstack(out + [columns[n_light:]])


def light_group_index(sigmas, theta_e):
    """Group of each lens-light Gaussian: -1 (free on its own) inside a fifth of theta_E,
    then 0 up to half of it, 1 up to theta_E, 2 beyond.

    Gaussians much narrower than the Einstein radius cannot reach the arcs,
    so they stay free and follow the galaxy's core.
    """
    return np.digitize(sigmas, (theta_e / 5.0, theta_e / 2.0, theta_e)) - 1


def _image_plane_rays(n, pixel_scale, supersampling):
    """``(x, y)`` of ``supersampling**2`` points per pixel, shape (n * n, s * s), pixel-major."""
    s = int(supersampling)
    jj, ii = np.mgrid[0:n, 0:n]
    x, y = lensmodel.pixel_to_angle(ii.ravel(), jj.ravel(), n, pixel_scale)
    offsets = ((np.arange(s) + 0.5) / s - 0.5) * pixel_scale
    ox, oy = np.meshgrid(offsets, offsets)
    return x[:, None] + ox.ravel()[None, :], y[:, None] + oy.ravel()[None, :]


def source_vertices(beta_x, beta_y, arcs, params, pixel_scale, n_frame=10, max_vertices=2500):
    """Vertices of the source mesh: the traced arc pixels, inside a coarse frame.

    Every arc pixel (half of them, in a checkerboard, when there are more
    than ``max_vertices``) is traced to the source plane, so that the mesh is
    as fine as the magnification makes the data; a ``n_frame x n_frame`` grid over the
    traced region, 20% wider, lets the source fade out around it. Without
    arc pixels the mesh is a grid over half the Einstein radius around the
    lens centre.

    Parameters
    ----------
    beta_x, beta_y : ndarray (n, n)
        Source-plane positions of the image pixels' centres.
    arcs : ndarray of bool (n, n)
    params : ndarray (8,)
    pixel_scale : float

    Returns
    -------
    ndarray (k, 2)
    """
    rows, cols = np.nonzero(arcs)
    if rows.size > max_vertices:
        keep = (rows + cols) % 2 == 0  # a checkerboard: half of them
        rows, cols = rows[keep], cols[keep]
    points = np.column_stack([beta_x[rows, cols], beta_y[rows, cols]])
    points = points[np.all(np.isfinite(points), axis=1)]
    if len(points) >= 3:
        lo, hi = points.min(axis=0), points.max(axis=0)
        pad = 0.2 * (hi - lo) + pixel_scale
        lo, hi = lo - pad, hi + pad
    else:
        c = np.array([params[_CENTER_X], params[_CENTER_Y]], dtype=float)
        half = max(0.5 * float(params[_THETA_E]), 3 * pixel_scale)
        lo, hi = c - half, c + half
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], n_frame), np.linspace(lo[1], hi[1], n_frame))
    frame = np.column_stack([gx.ravel(), gy.ravel()])
    vertices = np.vstack([points, frame])
    # merge vertices closer than a hundredth of a pixel (degenerate triangles)
    _, first = np.unique(np.round(vertices / (0.01 * pixel_scale)), axis=0, return_index=True)
    return vertices[np.sort(first)]


def _mapping_matrix(beta_x, beta_y, mesh):
    """Sparse (image pixels, vertices) matrix of the rays' linear interpolation weights.

    ``beta_x``, ``beta_y`` are (n_pixels, n_rays) source-plane positions (NaN
    for rays not traced); each pixel's row averages its rays. Rays outside the
    mesh see no source.
    """
    from scipy.sparse import csr_matrix

    n_pix, n_rays = beta_x.shape
    pts = np.column_stack([beta_x.ravel(), beta_y.ravel()])
    finite = np.all(np.isfinite(pts), axis=1)
    simplex = np.full(len(pts), -1)
    simplex[finite] = mesh.find_simplex(pts[finite])
    inside = simplex >= 0
    t = mesh.transform[simplex[inside]]
    b = np.einsum("ijk,ik->ij", t[:, :2], pts[inside] - t[:, 2])
    weights = np.column_stack([b, 1.0 - b.sum(axis=1)])
    rows = np.repeat(np.flatnonzero(inside) // n_rays, 3)
    cols = mesh.simplices[simplex[inside]].ravel()
    return csr_matrix((weights.ravel() / n_rays, (rows, cols)),
                      shape=(n_pix, len(mesh.points)))


def _blurred_columns(mapping, kernel, n, use):
    """The lensed, PSF-convolved image of each source pixel that is hit, on the used pixels.

    Returns the sparse (n_used, n_hit) matrix (values below 1e-9 of a
    column's peak dropped) and the indices of the hit source pixels.
    """
    from scipy.signal import fftconvolve
    from scipy.sparse import csc_matrix, hstack

    hit = np.flatnonzero(np.asarray(mapping.getnnz(axis=0)) > 0)
    csc = mapping.tocsc()
    blocks = []
    for start in range(0, hit.size, 256):
        block = hit[start:start + 256]
        stack = csc[:, block].T.toarray().reshape(len(block), n, n)
        dense = fftconvolve(stack, kernel[None], mode="same", axes=(1, 2))[:, use].T
        peak = np.abs(dense).max(axis=0, initial=0.0)
        dense[np.abs(dense) < 1e-9 * peak[None, :]] = 0.0
        blocks.append(csc_matrix(dense))
    if not blocks:
        return csc_matrix((int(use.sum()), 0)), hit
    return hstack(blocks, format="csr"), hit


def _mesh_regularization(mesh, floor=1e-3):
    """``H = D^T D + floor * I``, ``D`` the differences along the mesh's edges (dense).

    The discrete gradient on an irregular mesh; the small zeroth-order
    ``floor`` makes ``H`` positive definite, so that its determinant (which
    enters the evidence) exists.
    """
    from scipy.sparse import coo_matrix, eye

    tri = mesh.simplices
    edges = np.vstack([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [0, 2]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    k = len(edges)
    d = coo_matrix((np.r_[np.ones(k), -np.ones(k)],
                    (np.r_[np.arange(k), np.arange(k)], np.r_[edges[:, 0], edges[:, 1]])),
                   shape=(k, len(mesh.points))).tocsr()
    return (d.T @ d + floor * eye(len(mesh.points))).toarray()


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
    """Most probable amplitudes and evidence for one lens, as a function of ``lambda``.

    ``source`` (sparse, n_used x n_source) and ``light`` (dense, n_used x k)
    are the responses of the source pixels and of the smooth light.
    """

    def __init__(self, source, light, data, weights, reg):
        ns = source.shape[1]
        self.n_source = ns
        # unit-norm light columns keep the system well scaled; the source's
        # columns are left alone (the regularisation acts on them)
        norm = np.sqrt(np.sum(light * light * weights[:, None], axis=0))
        self.column_scale = np.r_[np.ones(ns), np.where(norm > 0, norm, 1.0)]
        light = light / self.column_scale[ns:]
        sw = source.multiply(weights[:, None]).tocsr()
        lw = light * weights[:, None]
        f = np.empty((ns + light.shape[1],) * 2)
        f[:ns, :ns] = (source.T @ sw).toarray()
        f[:ns, ns:] = np.asarray(sw.T @ light)
        f[ns:, :ns] = f[:ns, ns:].T
        f[ns:, ns:] = light.T @ lw
        self.f = f
        self.b = np.r_[sw.T @ data, lw.T @ data]
        self.data_term = float(np.sum(weights * data * data))
        self.reg = reg
        self.log_det_reg = 2.0 * float(np.sum(np.log(np.diag(np.linalg.cholesky(reg)))))
        self.scale = float(np.trace(f[:ns, :ns]) / np.trace(reg)) if ns else 1.0

    def solve(self, lam):
        from scipy.linalg import cho_factor, cho_solve

        ns = self.n_source
        a = self.f.copy()
        a[:ns, :ns] += lam * self.reg
        # a whisper of ridge keeps nearly collinear lens-light columns solvable
        a[np.diag_indices_from(a)] += 1e-9 * np.max(np.diag(a)[:ns], initial=1.0)
        factor = cho_factor(a, lower=True, check_finite=False)
        coef = cho_solve(factor, self.b, check_finite=False)
        # chi^2 = |d - M c|^2_W expanded, so that M is never applied again
        chi2 = max(self.data_term - 2.0 * coef @ self.b + coef @ (self.f @ coef), 0.0)
        s = coef[:ns]
        penalty = float(s @ (self.reg @ s))
        log_det = 2.0 * float(np.sum(np.log(np.diag(factor[0]))))
        log_ev = 0.5 * (-chi2 - lam * penalty - log_det + ns * np.log(lam) + self.log_det_reg)
        return coef / self.column_scale, float(chi2), log_ev, factor

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
                              options={"xatol": 0.1})
        return 10.0 ** float(res.x)


def _drop_core(beta_x, beta_y, core):
    """Traced positions (n_pixels, n_rays) with the rays of the ``core`` pixels set to NaN.

    The core maps onto a ring of radius ~theta_E in the source plane: there the
    source would trade flux with the lens light, so those rays are not traced
    (a counter-image that faint belongs to the lens light's fit).
    """
    bx, by = beta_x.copy(), beta_y.copy()
    bx[core], by[core] = np.nan, np.nan
    return bx, by


class _MeshFit:
    """The inversion on one source mesh: columns, lambda, amplitudes, evidence."""

    def __init__(self, traced, mesh, kernel, n, img, noise, use, smooth, regularization):
        self.mesh = mesh
        mapping = _mapping_matrix(traced[0], traced[1], mesh)
        self.source_columns, self.hit = _blurred_columns(mapping, kernel, n, use)
        weights = 1.0 / noise[use] ** 2
        reg = _mesh_regularization(mesh)[np.ix_(self.hit, self.hit)]
        posterior = _Posterior(self.source_columns, smooth.T, img[use], weights, reg)
        self.lam = posterior.best() if regularization is None else float(regularization)
        self.coef, self.chi2, self.log_evidence, factor = posterior.solve(self.lam)
        self.n_eff = posterior.effective_source_parameters(self.lam, factor)

    def values(self):
        """The source at the mesh's vertices (zero where no ray constrains it)."""
        out = np.zeros(len(self.mesh.points))
        out[self.hit] = self.coef[:self.hit.size]
        return out


def invert_pixelated(image, noise_map, params, pixel_scale, source_npix, source_pixel_scale,
                     psf=None, mask=None, psf_fwhm=None, supersampling=2, regularization=None,
                     reference_fwhm=None, mask_other_objects=True, reference=None):
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
        PSF on the image pixels; a Gaussian of FWHM ``psf_fwhm`` otherwise.
    mask : array-like of bool (n, n), optional
        ``True`` marks pixels to ignore.
    psf_fwhm : float or None
        FWHM in arcsec of the Gaussian PSF assumed without ``psf``; None means two
        image pixels.
    supersampling : int
        Rays per image pixel side.
    regularization : float, optional
        Fix ``lambda`` instead of maximising the evidence.
    reference_fwhm : float, optional
        Convolve the output source with a circular Gaussian of this FWHM
        (arcsec), like the networks' source targets.
    mask_other_objects : bool
        Leave out the pixels of other objects found by ``field_masks``.
    reference : PixelatedSource, optional
        An inversion of the same image whose pixels, arc pixels and smooth
        light basis are kept, so that lens models are compared on equal
        terms (as `evidence_check` does).

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
    img, noise, use, p, d = checked_inputs(image, noise_map, params, pixel_scale, mask)
    check_source_grid(source_npix, source_pixel_scale)
    if int(supersampling) < 1:
        raise ValueError(f"supersampling: must be >= 1, got {supersampling!r}")
    if regularization is not None and not float(regularization) > 0:
        raise ValueError(f"regularization: must be positive, got {regularization!r}")
    n = img.shape[0]
    psf_class, _, psf_desc = lenstronomy_psf(psf, d, psf_fwhm)
    kernel = np.asarray(psf_class.kernel_point_source, dtype=float)
    center = (float(p[_CENTER_X]), float(p[_CENTER_Y]))
    theta_e = float(p[_THETA_E])
    x, y = _image_plane_rays(n, d, supersampling)
    bx, by = LensModel(list(lensmodel.LENS_MODEL_LIST)).ray_shooting(
        x.ravel(), y.ravel(), lensmodel.to_lenstronomy_kwargs(p))
    bx, by = bx.reshape(x.shape), by.reshape(x.shape)
    radius = np.hypot(x.mean(axis=1) - center[0], y.mean(axis=1) - center[1]).reshape(n, n)

    # 1. where the arcs are, which pixels belong to other objects, and the
    #    smooth light's basis (unless a reference inversion fixes them)
    if reference is None:
        data = ImageData(image_data=img, noise_map=noise, **image_grid_kwargs(n, d))
        light_basis, n_light, kwargs_ll, arcs_px, others = _smooth_light(
            data, psf_class, img, noise, use, p, d, radius)
        if not mask_other_objects:
            others = np.zeros_like(use)
    else:
        light_basis, n_light = reference.light_basis, reference.n_light_basis
        kwargs_ll, arcs_px = reference.kwargs_lens_light, reference.arc_pixels
        others = ~reference.used
    use = use & ~others
    smooth = light_basis[:, use]
    # 2. a source mesh from the arcs' traced pixels
    from scipy.interpolate import LinearNDInterpolator
    from scipy.spatial import Delaunay

    bx, by = _drop_core(bx, by, (radius < CORE_FRACTION * theta_e).ravel())
    centres_x, centres_y = (b.mean(axis=1).reshape(n, n) for b in (bx, by))
    mesh = Delaunay(source_vertices(centres_x, centres_y, arcs_px & use, p, d))
    fit = _MeshFit((bx, by), mesh, kernel, n, img, noise, use, smooth, regularization)
    hit = fit.hit
    dof = max(float(use.sum()) - smooth.shape[0] - fit.n_eff, 1.0)

    # 3. the model's parts on the image
    parts = np.split(fit.coef, [hit.size, hit.size + n_light])
    images = []
    for cols, amp in ((fit.source_columns.T, parts[0]), (smooth[:n_light], parts[1]),
                      (smooth[n_light:], parts[2])):
        im = np.zeros_like(img)
        im[use] = cols.T @ amp
        images.append(im)
    arcs, light, background = images
    model = arcs + light + background
    resid = np.where(use, (img - model) / noise, 0.0)
    values = fit.values()
    # the values are image flux per image pixel: per arcsec^2 once divided by its area
    interpolate = LinearNDInterpolator(mesh, values / d**2, fill_value=0.0)
    source = sample_on_source_grid(interpolate, source_npix, source_pixel_scale, center,
                                   reference_fwhm=reference_fwhm)
    return PixelatedSource(
        source=source, model_image=model, arcs_model=arcs, lens_light_model=light,
        background_model=background, residuals=resid, used=use, other_objects=others,
        arc_pixels=arcs_px, chi2=fit.chi2, reduced_chi2=fit.chi2 / dof, dof=dof,
        log_evidence=fit.log_evidence, regularization=fit.lam, source_vertices=mesh.points,
        source_values=values, light_basis=light_basis, n_light_basis=n_light,
        psf_used=psf_desc, seconds=time.perf_counter() - t0, kwargs_lens_light=kwargs_ll,
    )


def _smooth_light(data, psf_class, img, noise, use, params, pixel_scale, radius):
    """The smooth light's basis images and the arc and other-object pixels.

    Returns ``(basis, n_light, kwargs, arcs, others)``: the basis (k, n, n)
    holds ``n_light`` lens-light images (PSF-convolved; `light_groups`) and
    then the background's; ``kwargs`` are the Gaussians' lenstronomy keywords
    with the amplitudes of the robust pre-fit that fixed the profile.
    """
    theta_e = float(params[_THETA_E])
    columns, model_list, kwargs = smooth_light_columns(data, psf_class, img, use, params,
                                                       pixel_scale)
    n_gauss = len(model_list)
    arcs, others, coef = field_masks(img, noise, use, columns, n_gauss, radius, theta_e)
    sigmas = np.array([kw["sigma"] for kw in kwargs])
    grouped = light_groups(columns, coef, n_gauss, sigmas, theta_e)
    n_light = grouped.shape[0] - (columns.shape[0] - n_gauss)
    basis = np.zeros((grouped.shape[0],) + img.shape)
    basis[:, use] = grouped
    for kw, amp in zip(kwargs, coef):
        kw["amp"] = float(amp)
    return basis, n_light, kwargs, arcs, others


#: Reduced chi^2 above which an inversion's fit is flagged as not explaining the
#: data: at the *true* lens, 40 clean ``survey`` test lenses exceed it 5% of the
#: time (95th percentile 1.40; ``benchmarks/evidence_check.py --data
#: survey_test.h5 --n 40``). The fit does not tell a wrong lens from a right
#: one (a free source fits both): that is `evidence_check`'s job.
INVERSION_CHI2_THRESHOLD = 1.5


def as_relens_result(inversion, image, noise_map, params, pixel_scale, source_pixel_scale,
                     chi2_threshold=INVERSION_CHI2_THRESHOLD,
                     arc_chi2_threshold=DEFAULT_ARC_CHI2_THRESHOLD):
    """The re-lensing check's result for an inversion: its own fit, judged by the same tests.

    The inversion *is* a re-lensing of its source with the lens, fitted with
    the lens light, so its model and residuals are the check's; the source
    amplitude is 1 by construction and the background plane is counted with
    the lens light.

    Parameters
    ----------
    inversion : PixelatedSource
    image, noise_map, params, pixel_scale, source_pixel_scale
        As given to `invert_pixelated`.
    chi2_threshold : float
        Reduced chi^2 above which the fit is flagged (``INVERSION_CHI2_THRESHOLD``).
    arc_chi2_threshold : float
        As `~astro_delens.forward.relens_check`.

    Returns
    -------
    `~astro_delens.forward.RelensResult`
    """
    img, noise, _ = prepare_inputs(image, noise_map)
    use = inversion.used
    light = inversion.lens_light_model + inversion.background_model
    region, arc_red = arc_region(img, noise, use, light, inversion.arcs_model,
                                 inversion.residuals)
    reasons = flag_reasons(inversion.reduced_chi2, arc_red, 1.0, chi2_threshold,
                           arc_chi2_threshold)
    p = check_params(params)
    return RelensResult(
        model_image=inversion.model_image, lens_light_model=light,
        arcs_model=inversion.arcs_model, residuals=inversion.residuals,
        reduced_chi2=inversion.reduced_chi2, chi2=inversion.chi2, dof=inversion.dof,
        arc_reduced_chi2=arc_red, arc_region=region, flag=bool(reasons),
        flag_reasons=reasons, chi2_threshold=float(chi2_threshold),
        psf_used=inversion.psf_used, lens_light="mge", source_amplitude=1.0, used=use,
        params=p, source=inversion.source, source_pixel_scale=float(source_pixel_scale),
        pixel_scale=float(pixel_scale), image=np.where(use, img, 0.0),
        noise_map=np.where(use, noise, np.nan),
        kwargs_lens=lensmodel.to_lenstronomy_kwargs(p),
        kwargs_lens_light=inversion.kwargs_lens_light,
        notes=[f"pixelated source inversion ({len(inversion.source_values)} source pixels, "
               f"lambda {inversion.regularization:.3g}); "
               f"{int(inversion.other_objects.sum())} pixels of other objects left out"],
        seconds=inversion.seconds,
    )


#: ln-evidence by which a lens with a different Einstein radius must beat the
#: answer before `evidence_check` flags it. Set on 40 validation lenses of the
#: ``sky`` preset with the ``sky`` estimator's answers
#: (``benchmarks/evidence_check.py --data sky_val.h5 --n 40``): from 5 to 50 it
#: flags all 5 answers off by more than 20% and 19% of those within 5%; 100
#: flags 3 of the 5.
DEFAULT_EVIDENCE_THRESHOLD = 50.0


@dataclass(frozen=True)
class EvidenceCheck:
    """The result of `evidence_check`.

    Attributes
    ----------
    theta_e : ndarray (k,)
        The Einstein radii tried (the answer's among them).
    log_evidence : ndarray (k,)
        Of the pixelated inversion at each, divided by the answer's reduced
        chi^2 when that exceeds 1 (the noise scaled up to what the model
        leaves).
    reduced_chi2 : ndarray (k,)
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
    the truth. All radii are judged on the same pixels with the same smooth
    light and mesh rule (the answer's inversion is their ``reference``), so
    that what the model leaves unexplained is shared; where the answer's
    reduced chi^2 exceeds 1 the differences are scaled down by it. They are
    still noisy where much is left unexplained (bright unmasked neighbours,
    lens light the Gaussians cannot follow), hence a threshold set on
    realistic simulations.

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
    p = check_params(params)
    factors = np.array(sorted({1.0, *(float(s) for s in steps)}))
    if np.any(factors <= 0):
        raise ValueError(f"steps: must be positive factors, got {steps!r}")
    at_answer = invert_pixelated(image, noise_map, p, pixel_scale, source_npix,
                                 source_pixel_scale, **options)
    # every radius is judged on the same pixels, mesh rule and smooth light
    options = {**options, "reference": at_answer}
    results = []
    for factor in factors:
        trial = p.copy()
        trial[_THETA_E] *= factor
        results.append(at_answer if factor == 1.0 else invert_pixelated(
            image, noise_map, trial, pixel_scale, source_npix, source_pixel_scale, **options))
    answer = int(np.flatnonzero(factors == 1.0)[0])
    # Where the model cannot reach the noise (unmodelled light), the evidence
    # differences are inflated by the misfit: scale them as if the noise were
    # larger by sqrt(reduced chi^2) of the answer's fit.
    inflation = max(results[answer].reduced_chi2, 1.0)
    log_ev = np.array([r.log_evidence for r in results]) / inflation
    others = np.delete(log_ev, answer)
    delta = float(others.max() - log_ev[answer]) if others.size else 0.0
    return EvidenceCheck(
        theta_e=factors * p[_THETA_E], log_evidence=log_ev,
        reduced_chi2=np.array([r.reduced_chi2 for r in results]), answer_index=answer,
        delta_log_evidence=delta, preferred_theta_e=float(factors[np.argmax(log_ev)] * p[_THETA_E]),
        flag=bool(delta > threshold), threshold=float(threshold), inversion=results[answer],
    )
