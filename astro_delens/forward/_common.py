"""Shared plumbing of the physics-in-the-loop tools: grids, inputs, lens light.

Everything here follows the conventions of `astro_delens.lensmodel`: angular
coordinates ``x`` (east) and ``y`` (north) in arcsec, images ``[row, column]``
with row 0 south and column 0 **east**, so that pixel ``(i, j)`` of an
``n x n`` grid of scale ``d`` sits at ``x = ((n - 1) / 2 - i) d``,
``y = (j - (n - 1) / 2) d``. lenstronomy's ``data_configure_simple`` puts east
on the right by default, so the lenstronomy data objects are built here from
`astro_delens.lensmodel.image_data_kwargs` (``inverse=True``).
"""

from __future__ import annotations

import numpy as np

from .. import lensmodel

__all__ = [
    "image_grid_kwargs",
    "prepare_inputs",
    "check_params",
    "checked_inputs",
    "check_source_grid",
    "source_grid_coordinates",
    "source_to_interpol_kwargs",
    "sample_on_source_grid",
    "evaluate_on_source_grid",
    "lens_light_setup",
    "moment_ellipticity",
    "weighted_least_squares",
    "fit_lens_light",
]


def image_grid_kwargs(npix: int, pixel_scale: float) -> dict:
    """Coordinate keywords of lenstronomy's ``ImageData`` in this package's convention.

    Parameters
    ----------
    npix : int
        Number of pixels on a side.
    pixel_scale : float
        Arcsec per pixel.

    Returns
    -------
    dict
        ``transform_pix2angle``, ``ra_at_xy_0`` and ``dec_at_xy_0``.
    """
    kw = lensmodel.image_data_kwargs(int(npix), float(pixel_scale))
    return {k: kw[k] for k in ("transform_pix2angle", "ra_at_xy_0", "dec_at_xy_0")}


def prepare_inputs(image, noise_map, mask=None):
    """Check and convert an image, its noise map and an optional mask.

    Parameters
    ----------
    image : array-like (n, n)
        Background-subtracted image, flux per pixel.
    noise_map : array-like (n, n) or float
        1-sigma noise per pixel (a number means the same noise everywhere).
    mask : array-like of bool (n, n), optional
        ``True`` marks pixels to **ignore** (the `numpy.ma` convention).

    Returns
    -------
    image, noise, use : ndarray
        ``image`` and ``noise`` as float64 arrays (noise of unusable pixels
        replaced by a large finite value), ``use`` a boolean array that is
        ``True`` for the pixels that enter the fit: not masked, finite data and
        a finite, positive noise.

    Raises
    ------
    ValueError
        If the shapes do not agree, the image is not square, or no pixel is
        usable.
    """
    img = np.asarray(image, dtype=float)
    if img.ndim != 2 or img.shape[0] != img.shape[1]:
        raise ValueError(f"image: expected a square 2-d array, got shape {img.shape}")
    noise = np.asarray(noise_map, dtype=float)
    if noise.ndim == 0:
        noise = np.full(img.shape, float(noise))
    if noise.shape != img.shape:
        raise ValueError(
            f"noise_map: shape {noise.shape} does not match image shape {img.shape}"
        )
    use = np.isfinite(img) & np.isfinite(noise) & (noise > 0)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != img.shape:
            raise ValueError(f"mask: shape {m.shape} does not match image shape {img.shape}")
        use &= ~m.astype(bool)
    if not use.any():
        raise ValueError(
            "noise_map: no pixel has a finite, positive noise and unmasked, finite data; "
            "the physics check needs a noise estimate (noise-free images cannot be tested)"
        )
    big = 1e6 * float(np.max(noise[use]))
    noise = np.where(use, noise, big)
    img = np.where(use, img, 0.0)
    return img, noise, use


def check_params(params):
    """The eight lens parameters as a finite float array (ValueError otherwise)."""
    p = np.asarray(params, dtype=float)
    if p.shape != (len(lensmodel.PARAMETERS),):
        raise ValueError(
            f"params: expected 8 values {lensmodel.PARAMETER_NAMES}, got shape {p.shape}"
        )
    if not np.all(np.isfinite(p)):
        raise ValueError("params: must be finite")
    return p


def checked_inputs(image, noise_map, params, pixel_scale, mask=None):
    """`prepare_inputs`, `check_params` and a positive pixel scale, in one step.

    Returns
    -------
    image, noise, use, params, pixel_scale
    """
    img, noise, use = prepare_inputs(image, noise_map, mask)
    p = check_params(params)
    d = float(pixel_scale)
    if not d > 0:
        raise ValueError(f"pixel_scale: must be positive, got {pixel_scale!r}")
    return img, noise, use, p, d


def check_source_grid(source_npix, source_pixel_scale):
    """``(npix, scale)`` of an output source grid (ValueError unless both are positive)."""
    if int(source_npix) < 1:
        raise ValueError(f"source_npix: must be positive, got {source_npix!r}")
    if not float(source_pixel_scale) > 0:
        raise ValueError(f"source_pixel_scale: must be positive, got {source_pixel_scale!r}")
    return int(source_npix), float(source_pixel_scale)


def source_grid_coordinates(source_npix, source_pixel_scale, center=(0.0, 0.0), subsample=1):
    """Angular coordinates (x east, y north) of a source-plane grid.

    The grid follows `astro_delens.lensmodel`'s convention (column 0 east,
    row 0 south) and is centred on ``center`` (the lens centre).

    Parameters
    ----------
    source_npix : int
    source_pixel_scale : float
        Arcsec per source pixel.
    center : (float, float)
        ``(x, y)`` of the grid centre.
    subsample : int
        Points per pixel side (``subsample**2`` points per pixel, at the centres
        of equal sub-pixels).

    Returns
    -------
    x, y : ndarray (source_npix * subsample, source_npix * subsample)
    """
    n, s = int(source_npix), int(subsample)
    ds = float(source_pixel_scale)
    idx = (np.arange(n * s) + 0.5) / s - 0.5  # sub-pixel centres in pixel units
    c = (n - 1) / 2.0
    x = (c - idx)[None, :] * ds + float(center[0])
    y = (idx - c)[:, None] * ds + float(center[1])
    x, y = np.broadcast_arrays(x, y)
    return x.copy(), y.copy()


def source_to_interpol_kwargs(source, source_pixel_scale, center):
    """lenstronomy ``INTERPOL`` keywords for a source array in this package's convention.

    Parameters
    ----------
    source : array-like (m, m)
        Source flux **per source pixel**, column 0 east, row 0 south, centred
        on ``center``.
    source_pixel_scale : float
    center : (float, float)

    Notes
    -----
    lenstronomy's ``INTERPOL`` wants surface brightness (flux per arcsec^2)
    and maps increasing columns to increasing ``x`` (east to the right), so the
    array is divided by the pixel area and flipped left-right.
    """
    ds = float(source_pixel_scale)
    return {
        "image": np.fliplr(np.asarray(source, dtype=float)) / ds**2,
        "amp": 1.0,
        "center_x": float(center[0]),
        "center_y": float(center[1]),
        "phi_G": 0.0,
        "scale": ds,
    }


def sample_on_source_grid(surface_brightness, source_npix, source_pixel_scale, center,
                          subsample=3, reference_fwhm=None):
    """Flux per source pixel of a surface brightness on the source-plane grid.

    Parameters
    ----------
    surface_brightness : callable
        ``f(x, y)`` -> flux per arcsec^2 at the (flat) arrays of positions.
    source_npix, source_pixel_scale : int, float
    center : (float, float)
        Grid centre (the lens centre).
    subsample : int
        Sub-pixel samples per side used to integrate over each pixel.
    reference_fwhm : float, optional
        If given, the result is convolved with a circular Gaussian of this
        FWHM (arcsec), like the network's source target.

    Returns
    -------
    ndarray (source_npix, source_npix)
    """
    n, s = int(source_npix), int(subsample)
    x, y = source_grid_coordinates(n, source_pixel_scale, center, s)
    sb = np.asarray(surface_brightness(x.ravel(), y.ravel()), dtype=float).reshape(x.shape)
    sb = sb.reshape(n, s, n, s).mean(axis=(1, 3))
    out = sb * float(source_pixel_scale) ** 2
    if reference_fwhm is not None and reference_fwhm > 0:
        from scipy.ndimage import gaussian_filter

        sigma_pix = float(reference_fwhm) / (2.0 * np.sqrt(2.0 * np.log(2.0))) / float(
            source_pixel_scale
        )
        out = gaussian_filter(out, sigma_pix, mode="constant")
    return out


def evaluate_on_source_grid(light_model, kwargs_light, source_npix, source_pixel_scale,
                            center, subsample=3, reference_fwhm=None):
    """Flux per source pixel of a lenstronomy light model on the source-plane grid.

    Parameters
    ----------
    light_model : `lenstronomy.LightModel.light_model.LightModel`
    kwargs_light : list of dict
    source_npix, source_pixel_scale, center, subsample, reference_fwhm
        As `sample_on_source_grid`.

    Returns
    -------
    ndarray (source_npix, source_npix)
    """
    return sample_on_source_grid(
        lambda x, y: light_model.surface_brightness(x, y, kwargs_light), source_npix,
        source_pixel_scale, center, subsample=subsample, reference_fwhm=reference_fwhm)


def moment_ellipticity(image, weight_center, pixel_scale, window_sigma, use=None):
    """Ellipticity ``(e1, e2)`` of the light near a point, from weighted second moments.

    Parameters
    ----------
    image : ndarray (n, n)
    weight_center : (float, float)
        ``(x, y)`` of the window centre (arcsec).
    pixel_scale : float
    window_sigma : float
        Width (arcsec) of the circular Gaussian window.
    use : ndarray of bool, optional
        Pixels to include.

    Returns
    -------
    e1, e2 : float
        lenstronomy's ellipticity (``e = (1 - q) / (1 + q)``), clipped to
        ``|e| <= 0.5``; ``(0, 0)`` when the moments are not usable.
    """
    n = image.shape[0]
    jj, ii = np.mgrid[0:n, 0:n]
    x, y = lensmodel.pixel_to_angle(ii, jj, n, pixel_scale)
    dx, dy = x - weight_center[0], y - weight_center[1]
    w = np.exp(-0.5 * (dx**2 + dy**2) / window_sigma**2) * np.clip(image, 0.0, None)
    if use is not None:
        w = w * use
    total = w.sum()
    if not total > 0:
        return 0.0, 0.0
    qxx = (w * dx * dx).sum() / total
    qyy = (w * dy * dy).sum() / total
    qxy = (w * dx * dy).sum() / total
    evals, evecs = np.linalg.eigh(np.array([[qxx, qxy], [qxy, qyy]]))
    if not evals[0] > 0:
        return 0.0, 0.0
    q = float(np.sqrt(evals[0] / evals[1]))
    major = evecs[:, 1]
    phi = float(np.arctan2(major[1], major[0]))
    e = min((1 - q) / (1 + q), 0.5)
    return e * np.cos(2 * phi), e * np.sin(2 * phi)


#: Lens-light model names accepted by the forward tools.
LENS_LIGHT_CHOICES = ("mge", "sersic", None)


def lens_light_setup(kind, params, pixel_scale, npix, n_gaussians=12):
    """Model list, starting keywords and nonlinear parameter names of the lens light.

    Parameters
    ----------
    kind : {"mge", "sersic", None}
        ``"mge"``: concentric elliptical Gaussians (lenstronomy
        ``MULTI_GAUSSIAN_ELLIPSE``) with widths fixed on a logarithmic ladder
        from half a pixel to half the field of view and free (linear)
        amplitudes; ``"sersic"``: one ``SERSIC_ELLIPSE``; ``None``: no lens
        light.
    params : ndarray (8,)
        Lens parameters; the light starts at the mass centre.
    pixel_scale : float
    npix : int
    n_gaussians : int
        Number of Gaussians of the ``"mge"`` model.

    Returns
    -------
    model_list : list of str
    kwargs : list of dict
    """
    if kind not in LENS_LIGHT_CHOICES:
        raise ValueError(f"lens_light: expected one of {LENS_LIGHT_CHOICES}, got {kind!r}")
    cx, cy = lensmodel.lens_center(params)
    if kind is None:
        return [], []
    if kind == "mge":
        sigmas = np.geomspace(0.5 * pixel_scale, 0.5 * npix * pixel_scale, int(n_gaussians))
        return ["MULTI_GAUSSIAN_ELLIPSE"], [{
            "amp": np.ones(len(sigmas)), "sigma": sigmas, "e1": 0.0, "e2": 0.0,
            "center_x": cx, "center_y": cy,
        }]
    theta_E = float(params[lensmodel.INDEX["theta_E"]])
    return ["SERSIC_ELLIPSE"], [{
        "amp": 1.0, "R_sersic": max(theta_E, 2 * pixel_scale), "n_sersic": 4.0,
        "e1": 0.0, "e2": 0.0, "center_x": cx, "center_y": cy,
    }]


def weighted_least_squares(columns, data, weights):
    """Coefficients and chi^2 of ``data ~ columns.T @ coef`` with weights ``1 / sigma^2``.

    Parameters
    ----------
    columns : ndarray (k, m)
    data, weights : ndarray (m,)

    Returns
    -------
    coef : ndarray (k,)
    chi2 : float
    """
    aw = columns * weights[None, :]
    m = aw @ columns.T
    b = aw @ data
    try:
        coef = np.linalg.solve(m, b)
    except np.linalg.LinAlgError:
        coef = np.linalg.lstsq(m, b, rcond=None)[0]
    r = data - columns.T @ coef
    return coef, float(np.sum(r * r * weights))


def fit_lens_light(data, psf_class, img, noise, use, fixed_columns, kind, params, pixel_scale,
                   fit_shape=True, search_supersampling=1):
    """Shape of the lens light, fitted with the other (linear) components held as columns.

    The lens light's nonlinear parameters (ellipticity and centre; for
    ``"sersic"`` also ``R_sersic`` and ``n_sersic``) start from the image's
    second moments around the lens centre (after removing the best fit of
    ``fixed_columns``) and are optimised by Nelder-Mead; at every step all
    amplitudes (lens light and ``fixed_columns``) are solved linearly.

    Parameters
    ----------
    data : `lenstronomy.Data.imaging_data.ImageData`
    psf_class : `lenstronomy.Data.psf.PSF`
    img, noise : ndarray (n, n)
    use : ndarray of bool (n, n)
    fixed_columns : ndarray (k, n_used)
        Responses of the other components (e.g. the lensed source) on the
        used pixels; ``k`` may be 0.
    kind : {"mge", "sersic", None}
    params : ndarray (8,)
    pixel_scale : float
    fit_shape : bool
        Run the Nelder-Mead search (else keep the moment-based shape).
    search_supersampling : int
        Supersampling of the lens light during the search.

    Returns
    -------
    model_list : list of str
    kwargs : list of dict
    n_shape : int
        Number of shape parameters fitted (0 without a search).
    """
    from lenstronomy.ImSim.image_linear_solve import ImageLinearFit
    from lenstronomy.LightModel.light_model import LightModel
    from scipy.optimize import minimize

    n = img.shape[0]
    d = float(pixel_scale)
    ll_list, kwargs_ll = lens_light_setup(kind, params, d, n)
    if not ll_list:
        return ll_list, kwargs_ll, 0
    weights = 1.0 / noise[use] ** 2
    data_used = img[use]
    sw = np.sqrt(weights)
    fixed_columns = np.asarray(fixed_columns, dtype=float).reshape(-1, data_used.size)
    dw = data_used * sw
    if fixed_columns.shape[0]:
        # Project the fixed components out once: the lens light is then fitted
        # to what they cannot explain, and each step costs only the lens light.
        u, sv, _ = np.linalg.svd((fixed_columns * sw[None, :]).T, full_matrices=False)
        q = u[:, sv > sv[0] * 1e-10] if sv.size and sv[0] > 0 else np.zeros((dw.size, 0))
    else:
        q = np.zeros((dw.size, 0))
    d_perp = dw - q @ (q.T @ dw)
    ll_fit = ImageLinearFit(data, psf_class, source_model_class=LightModel([]),
                            lens_light_model_class=LightModel(ll_list),
                            kwargs_numerics={"supersampling_factor": int(search_supersampling)},
                            likelihood_mask=use)

    def chi2_of(kw):
        lw = (ll_fit.linear_response_matrix(None, [], kw, None) * sw[None, :]).T
        lw = lw - q @ (q.T @ lw)
        b = lw.T @ d_perp
        try:
            coef = np.linalg.solve(lw.T @ lw, b)
        except np.linalg.LinAlgError:
            coef = np.linalg.lstsq(lw, d_perp, rcond=None)[0]
        r = d_perp - lw @ coef
        return float(r @ r)

    center = lensmodel.lens_center(params)
    resid = np.zeros_like(img)
    resid[use] = (dw - q @ (q.T @ dw)) / sw  # data minus the best fit of the fixed columns
    window = max(3 * d, 0.5 * float(params[lensmodel.INDEX["theta_E"]]))
    kwargs_ll[0]["e1"], kwargs_ll[0]["e2"] = moment_ellipticity(resid, center, d, window, use)
    if not fit_shape:
        return ll_list, kwargs_ll, 0

    sersic = kind == "sersic"
    x0 = [kwargs_ll[0][k] for k in ("e1", "e2", "center_x", "center_y")]
    if sersic:
        x0 += [np.log(kwargs_ll[0]["R_sersic"]), np.log(kwargs_ll[0]["n_sersic"])]
    x0 = np.array(x0, dtype=float)

    def unpack(x):
        kw = dict(kwargs_ll[0])
        kw["e1"], kw["e2"], kw["center_x"], kw["center_y"] = (float(v) for v in x[:4])
        if sersic:
            kw["R_sersic"] = float(np.exp(x[4]))
            kw["n_sersic"] = float(np.clip(np.exp(x[5]), 0.5, 8.0))
        return [kw]

    def objective(x):
        if np.hypot(x[0], x[1]) > 0.8:
            return 1e30
        return chi2_of(unpack(x))

    steps = np.array([0.05, 0.05, d, d] + ([0.3, 0.3] if sersic else []))
    simplex = np.vstack([x0] + [x0 + np.eye(len(x0))[k] * steps[k] for k in range(len(x0))])
    res = minimize(objective, x0, method="Nelder-Mead",
                   options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 0.5,
                            "maxfev": 150 * len(x0)})
    return ll_list, unpack(res.x), len(x0)
