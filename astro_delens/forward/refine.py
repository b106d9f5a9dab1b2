"""Refinement: a lenstronomy fit of the image that starts from the network's answer.

The network's estimate and uncertainties set the starting point, the initial
spread of a particle swarm, the parameter bounds and Gaussian priors
(lenstronomy ``prior_lens``) of a lenstronomy
`~lenstronomy.Workflow.fitting_sequence.FittingSequence`:

0. start values of the source (shapelet centre and scale; with
   ``n_max="auto"`` also the shapelet order, by BIC) and of the lens light's
   shape come from linear inversions at the network's lens
   (`~astro_delens.forward.invert_source`);
1. particle swarm optimisation (PSO) of all nonlinear parameters, the
   amplitudes of source and lens light being solved linearly at every step;
   the swarm's shapelets stop at order ``swarm_n_max`` (8), where they are
   cheap and enough to find the basin;
2. a bounded least-squares polish (`scipy.optimize.least_squares`, trust
   region) of the same likelihood (image chi^2 with the linear amplitudes
   re-solved, plus the priors) from the swarm's best position, with the
   shapelets of the full order ``n_max``: the swarm finds the basin, the
   polish converges in it at a fraction of the cost of a longer swarm;
3. optionally an MCMC (emcee) from there;
4. uncertainties of the eight lens parameters: from the MCMC chain when it
   ran, otherwise from the Fisher matrix ``J^T J`` of the polish's Jacobian
   at the best fit (numerical derivatives of the normalised residuals with
   the linear amplitudes re-solved, plus the prior terms), marginalised over
   the source and lens light parameters and multiplied by
   ``max(1, reduced chi^2)``. These are statistical errors: when the source
   model cannot represent the galaxy (very high signal-to-noise, complex
   sources), the lens parameters are also biased by amounts the Fisher matrix
   does not know about.

The arcs are supersampled (3 x 3 rays per pixel by default) in lenstronomy's
adaptive mode, only where they are; point-sampled arcs bias the lens by
several sigma at high signal-to-noise. Because the search is local (bounds
``bounds_nsigma`` network sigmas around the start) and the swarm small, a
refinement takes tens of CPU seconds on a 96 x 96 cutout, where a blind fit
with a wide swarm takes many minutes; see ``benchmarks/refinement_accuracy.py``.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import lensmodel
from ..exceptions import RefinementWarning
from ..psf import lenstronomy_psf
from ._common import (
    LENS_LIGHT_CHOICES,
    checked_inputs,
    evaluate_on_source_grid,
    image_grid_kwargs,
)

__all__ = ["RefineResult", "refine", "SOURCE_MODELS", "DEFAULT_STD_FLOOR", "PARAMETER_BOUNDS",
           "N_MAX_AUTO", "SWARM_N_MAX", "SYSTEMATIC_STD"]

#: Shapelet orders tried by ``refine(n_max="auto")``. Orders above 8 matter at
#: high signal-to-noise: on 50 seed lenses (noise 1% of the peak) they raised the
#: refinements within 0.005" of the true theta_E from 70% to 88%.
N_MAX_AUTO = (4, 6, 8, 12, 16)

#: Highest shapelet order of the particle swarm (`refine`'s ``swarm_n_max``).
SWARM_N_MAX = 8

#: Source models `refine` can fit.
SOURCE_MODELS = ("SHAPELETS", "SERSIC_ELLIPSE+SHAPELETS")

#: Smallest prior width used for each lens parameter (a network's sigma below
#: it is raised to it), so that an over-confident network cannot freeze a
#: parameter.
DEFAULT_STD_FLOOR = np.array([spec.std_floor for spec in lensmodel.PARAMETERS])

#: Systematic uncertainties of a refinement with the default settings, per preset: the
#: floors that, added in quadrature to the Fisher errors, make the 1-sigma intervals hold
#: 68% of the truths on 50 simulated lenses of the preset (seeds 1000-1049, not in any
#: training set; ``benchmarks/refinement_systematics.py`` on the output of
#: ``benchmarks/refinement_accuracy.py``, refinements started from the survey estimator
#: v5 and the seed estimator v3; from seed v5 they hold 62-72%). They stand for what the
#: Fisher matrix cannot know: a shapelet source and a Sersic lens light do not represent
#: the simulated galaxies exactly. `astro_delens.LensParameterEstimator.refine` uses the entry of
#: its preset.
SYSTEMATIC_STD = {
    "survey": (0.0065, 0.0630, 0.0175, 0.0211, 0.0115, 0.0087, 0.0109, 0.0083),
    "seed": (0.0014, 0.0213, 0.0097, 0.0055, 0.0023, 0.0017, 0.0049, 0.0043),
}

#: Hard limits of the lens parameters in the fit (`astro_delens.lensmodel.PARAMETERS`).
PARAMETER_BOUNDS = (
    np.array([spec.bounds[0] for spec in lensmodel.PARAMETERS]),
    np.array([spec.bounds[1] for spec in lensmodel.PARAMETERS]),
)

_LENS_KEYS = [(lensmodel.LENS_MODEL_LIST.index(spec.component), spec.key)
              for spec in lensmodel.PARAMETERS]


@dataclass
class RefineResult:
    """What `refine` returns.

    Attributes
    ----------
    params : ndarray (8,)
        Refined lens parameters (`astro_delens.lensmodel` order): the best fit
        of the PSO, or the MCMC chain's median when the MCMC ran.
    params_std : ndarray (8,)
        Their 1-sigma uncertainties (see ``uncertainty_method``), including
        ``systematic_std`` when it was given.
    covariance : ndarray (8, 8)
    uncertainty_method : str
        ``"fisher"`` or ``"mcmc"``.
    start : ndarray (8,)
        The network's estimate the fit started from.
    prior_std : ndarray (8,)
        Widths of the Gaussian priors (the network's sigmas, floored).
    lower, upper : ndarray (8,)
        Bounds of the search.
    reduced_chi2 : float
        Of the best fit, over the used pixels.
    start_reduced_chi2 : float
        Of the linear inversion (shapelet source and lens light solved, no
        supersampling) at the start, for comparison.
    model_image, arcs_model, lens_light_model, residuals : ndarray (n, n)
        The best-fit model, its parts, and ``(image - model) / noise``.
    source : ndarray or None
        The fitted source on the requested source grid (flux per source pixel),
        when ``source_npix`` and ``source_pixel_scale`` were given.
    kwargs_result : dict
        lenstronomy's best-fit keywords.
    samples : ndarray (m, 8) or None
        MCMC samples of the lens parameters.
    seconds : float
        Wall time.
    settings : dict
        A record that refinement ran and how: ``refined`` (True), sampler
        settings, models (``n_max`` the final shapelet order, ``swarm_n_max``
        the swarm's), PSF, bounds, ``at_bounds`` (the lens parameters that
        ended on the edge of the search range), seed, lenstronomy version.
    statistical_std : ndarray (8,) or None
        The uncertainties without the systematic part: what the data allow
        with these models (NaN without ``uncertainties``).
    """

    params: np.ndarray
    params_std: np.ndarray
    covariance: np.ndarray
    uncertainty_method: str
    start: np.ndarray
    prior_std: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    reduced_chi2: float
    start_reduced_chi2: float
    model_image: np.ndarray
    arcs_model: np.ndarray
    lens_light_model: np.ndarray
    residuals: np.ndarray
    source: np.ndarray | None
    kwargs_result: dict
    samples: np.ndarray | None
    seconds: float
    settings: dict = field(default_factory=dict)
    statistical_std: np.ndarray | None = None


def _require_emcee():
    import importlib.util

    if importlib.util.find_spec("emcee") is None:
        raise ImportError(
            "mcmc: mcmc=True needs the optional package emcee, which is not installed "
            "(pip install emcee), or use mcmc=False for PSO + Fisher uncertainties"
        )


def _lens_light_params(kind, kwargs_start, d, n):
    """[init, sigma, fixed, lower, upper] of the lens light."""
    if kind is None:
        return [[], [], [], [], []]
    kw = {k: (np.asarray(v).tolist() if np.ndim(v) else float(v))
          for k, v in kwargs_start[0].items() if k != "amp"}
    cx, cy = kw["center_x"], kw["center_y"]
    half = 0.5 * n * d
    sigma = {"e1": 0.05, "e2": 0.05, "center_x": 0.5 * d, "center_y": 0.5 * d}
    lower = {"e1": -0.6, "e2": -0.6, "center_x": cx - 5 * d, "center_y": cy - 5 * d}
    upper = {"e1": 0.6, "e2": 0.6, "center_x": cx + 5 * d, "center_y": cy + 5 * d}
    fixed = {}
    if kind == "sersic":
        kw["R_sersic"] = float(np.clip(kw["R_sersic"], 0.6 * d, 1.9 * half))
        kw["n_sersic"] = float(np.clip(kw["n_sersic"], 0.6, 7.5))
        sigma.update({"R_sersic": 0.2 * kw["R_sersic"], "n_sersic": 0.5})
        lower.update({"R_sersic": 0.5 * d, "n_sersic": 0.5})
        upper.update({"R_sersic": 2 * half, "n_sersic": 8.0})
    else:  # mge: the widths are fixed, the amplitudes linear
        fixed = {"sigma": kw["sigma"]}
    for k in ("e1", "e2"):
        kw[k] = float(np.clip(kw[k], -0.55, 0.55))
    return [[kw], [sigma], [fixed], [lower], [upper]]


def _source_params(source_model, n_max, beta, center, d, lens_std):
    """[init, sigma, fixed, lower, upper] of the source.

    The source centre may move by 5 pixels plus twice what the lens's
    uncertainty (Einstein radius and centre) can shift it by.
    """
    cx, cy = float(center[0]), float(center[1])
    i = lensmodel.INDEX
    shift = 2.0 * (lens_std[i["theta_E"]] + max(lens_std[i["center_x"]], lens_std[i["center_y"]]))
    sig, box = 0.5 * d + 0.25 * shift, 5 * d + shift
    shp = {"n_max": int(n_max), "beta": float(beta), "center_x": cx, "center_y": cy}
    shp_sigma = {"beta": 0.25 * beta, "center_x": sig, "center_y": sig}
    shp_lower = {"beta": 0.3 * beta, "center_x": cx - box, "center_y": cy - box}
    shp_upper = {"beta": 3.0 * beta, "center_x": cx + box, "center_y": cy + box}
    if source_model == "SHAPELETS":
        return [[shp], [shp_sigma], [{"n_max": int(n_max)}], [shp_lower], [shp_upper]]
    r0 = max(1.5 * beta, d)
    ser = {"R_sersic": r0, "n_sersic": 1.0, "e1": 0.0, "e2": 0.0, "center_x": cx, "center_y": cy}
    ser_sigma = {"R_sersic": 0.3 * r0, "n_sersic": 0.5, "e1": 0.1, "e2": 0.1,
                 "center_x": sig, "center_y": sig}
    ser_lower = {"R_sersic": 0.2 * d, "n_sersic": 0.5, "e1": -0.5, "e2": -0.5,
                 "center_x": cx - box, "center_y": cy - box}
    ser_upper = {"R_sersic": 10 * r0, "n_sersic": 6.0, "e1": 0.5, "e2": 0.5,
                 "center_x": cx + box, "center_y": cy + box}
    return [[ser, shp], [ser_sigma, shp_sigma], [{}, {"n_max": int(n_max)}],
            [ser_lower, shp_lower], [ser_upper, shp_upper]]


def _at_bounds(params, lower, upper, tolerance=0.01):
    """Names of the lens parameters within ``tolerance`` of the box width from its edges."""
    margin = tolerance * (upper - lower)
    edge = (params <= lower + margin) | (params >= upper - margin)
    return [name for name, hit in zip(lensmodel.PARAMETER_NAMES, edge) if hit]


def _arg_index(names, i, name, tie):
    """Index in lenstronomy's parameter array of lens parameter ``name`` of model ``i``."""
    if tie and name in ("center_x", "center_y"):
        return names.index(f"{name}_lens_light0")
    return names.index(f"{name}_lens{i}")


def _model_residuals(param_class, im_sim, img, noise, use, prior_idx, prior_mu, prior_sigma,
                     extra_rows=None):
    """Residual vector of a parameter array: data pixels, Gaussian priors, extra terms."""
    def residuals(a):
        kw = param_class.args2kwargs(np.asarray(a, dtype=float))
        model = im_sim.image_linear_solve(kw["kwargs_lens"], kw["kwargs_source"],
                                          kw["kwargs_lens_light"], None)[0]
        r_data = (img[use] - model[use]) / noise[use]
        parts = [r_data, (a[prior_idx] - prior_mu) / prior_sigma]
        if extra_rows is not None:
            parts.append(extra_rows(kw))
        return np.concatenate(parts)

    return residuals


def _polish(residuals, args0, lower, upper, scale, max_nfev):
    """Levenberg-Marquardt-type polish (scipy ``least_squares``, trust region, bounded)."""
    from scipy.optimize import least_squares

    lo = np.minimum(lower, args0 - 1e-9)
    hi = np.maximum(upper, args0 + 1e-9)
    return least_squares(residuals, args0, bounds=(lo, hi), x_scale=scale, method="trf",
                         diff_step=1e-3, max_nfev=int(max_nfev), xtol=1e-6, ftol=1e-6)


def _polished(residuals, args, param_class, scale, max_nfev):
    """The least-squares polish of ``args``: new args, their Jacobian and the evaluations made.

    The swarm's ``args`` are kept (with no Jacobian) when the polish does not
    lower the sum of squares.
    """
    lower, upper = (np.asarray(v, dtype=float) for v in param_class.param_limits())
    res = _polish(residuals, args, lower, upper, scale, max_nfev=max_nfev)
    if np.sum(res.fun**2) <= np.sum(residuals(args) ** 2):
        return res.x, res.jac, int(res.nfev)
    return args, None, int(res.nfev)


def _mcmc_samples(fit_seq, kwargs_start, n_burn, n_run, walker_ratio, tie):
    """emcee samples (n, 8) of the lens parameters, from ``kwargs_start``."""
    fit_seq.update_state(kwargs_start)
    chain_list = fit_seq.fit_sequence([["emcee", {
        "n_burn": int(n_burn), "n_run": int(n_run), "walkerRatio": int(walker_ratio),
        "sigma_scale": 0.1, "progress": False}]])
    _, chain, chain_names, _ = chain_list[-1]
    idx = [_arg_index(list(chain_names), i, name, tie) for i, name in _LENS_KEYS]
    return np.asarray(chain)[:, idx]


def _jacobian(residuals, args, steps):
    """Central-difference Jacobian of the residual vector."""
    cols = []
    for i in range(len(args)):
        h = np.zeros(len(args))
        h[i] = steps[i]
        cols.append((residuals(args + h) - residuals(args - h)) / (2 * steps[i]))
    return np.stack(cols, axis=1)


def _covariance(jac):
    fisher = jac.T @ jac
    try:
        return np.linalg.inv(fisher)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(fisher)


@dataclass
class _FitSetup:
    """The keywords of lenstronomy's ``FittingSequence`` for one refinement."""

    kwargs_data_joint: dict
    kwargs_model: dict
    kwargs_constraints: dict
    kwargs_likelihood: dict
    kwargs_params: dict
    kwargs_data: dict
    kwargs_numerics: dict
    source_list: list
    tie: bool
    center_rows: object

    def sequence(self):
        """A new ``FittingSequence`` (reads ``kwargs_params`` as it is now)."""
        from lenstronomy.Workflow.fitting_sequence import FittingSequence

        return FittingSequence(self.kwargs_data_joint, self.kwargs_model, self.kwargs_constraints,
                               self.kwargs_likelihood, self.kwargs_params, verbose=False)


def _fit_setup(img, noise, use, start, std, lower, upper, d, inv, n_swarm, beta0, source_model,
               lens_light, light_center_sigma, prior, kwargs_psf, supersampling,
               supersampling_region):
    """Parameters, priors, constraints, data and numerics of the fit, as lenstronomy wants them."""
    n = img.shape[0]
    kwargs_lens_init = lensmodel.to_lenstronomy_kwargs(start)
    lens_sigma = [{}, {}]
    lens_lower = [{}, {}]
    lens_upper = [{}, {}]
    for k, (i, name) in enumerate(_LENS_KEYS):
        lens_sigma[i][name] = float(std[k])
        lens_lower[i][name] = float(lower[k])
        lens_upper[i][name] = float(upper[k])
    kwargs_params = {
        "lens_model": [kwargs_lens_init, lens_sigma, [{}, {}], lens_lower, lens_upper],
        "source_model": _source_params(source_model, n_swarm, beta0, inv.center, d, std),
        # lenstronomy's FittingSequence needs this entry even without a lens-light model
        "lens_light_model": [[], [], [], [], []],
    }
    ll_list = []
    if lens_light is not None:
        ll_list = ["SERSIC_ELLIPSE" if lens_light == "sersic" else "MULTI_GAUSSIAN_ELLIPSE"]
        kwargs_params["lens_light_model"] = _lens_light_params(
            lens_light, inv.kwargs_lens_light, d, n)
    source_list = source_model.split("+")
    kwargs_model = {
        "lens_model_list": list(lensmodel.LENS_MODEL_LIST),
        "source_light_model_list": source_list,
        "lens_light_model_list": ll_list,
    }
    kwargs_constraints = {
        # the shear is anchored at the lens centre, as in astro_delens.lensmodel
        "joint_lens_with_lens": [[0, 1, {"ra_0": "center_x", "dec_0": "center_y"}]],
    }
    tie = light_center_sigma is not None and lens_light is not None and light_center_sigma == 0
    soft = light_center_sigma is not None and lens_light is not None and light_center_sigma > 0
    if tie:
        # the mass centre follows the light centre, which is sampled in its stead
        # within the lens centre's bounds and with its sigma
        kwargs_constraints["joint_lens_with_light"] = [[0, 0, ["center_x", "center_y"]]]
        init, sigma, _, low, up = kwargs_params["lens_light_model"]
        for k, key in ((4, "center_x"), (5, "center_y")):
            init[0][key] = float(start[k])
            sigma[0][key] = float(std[k])
            low[0][key] = float(lower[k])
            up[0][key] = float(upper[k])
    if len(source_list) == 2:
        kwargs_constraints["joint_source_with_source"] = [[0, 1, ["center_x", "center_y"]]]
    prior_lens = [[i, name, float(start[k]), float(std[k])]
                  for k, (i, name) in enumerate(_LENS_KEYS)] if prior else None
    if soft:
        sig_c = float(light_center_sigma)

        def center_rows(kw):
            lens, light = kw["kwargs_lens"][0], kw["kwargs_lens_light"][0]
            return np.array([lens["center_x"] - light["center_x"],
                             lens["center_y"] - light["center_y"]]) / sig_c

        def center_penalty(**kw):
            return -0.5 * float(np.sum(center_rows(kw) ** 2))
    else:
        center_rows = center_penalty = None
    kwargs_likelihood = {
        "custom_logL_addition": center_penalty,
        "check_bounds": True,
        "image_likelihood_mask_list": [use.astype(int)],
        "prior_lens": prior_lens,
        "source_marg": False,
    }
    kwargs_data = {"image_data": img, "noise_map": noise, **image_grid_kwargs(n, d)}
    kwargs_numerics = {"supersampling_factor": int(supersampling),
                       "supersampling_convolution": False}
    if supersampling_region == "arcs" and int(supersampling) > 1:
        # supersample only where it matters: the arcs (as the start inversion
        # sees them, above the noise, grown by 2 pixels) and the lens centre
        from scipy.ndimage import binary_dilation

        jj, ii = np.mgrid[0:n, 0:n]
        xx, yy = lensmodel.pixel_to_angle(ii, jj, n, d)
        region = binary_dilation(np.abs(inv.arcs_model) > noise, iterations=2)
        cx, cy = lensmodel.lens_center(start)
        region |= np.hypot(xx - cx, yy - cy) < max(3 * d, 0.3)
        kwargs_numerics = {"supersampling_factor": int(supersampling),
                           "compute_mode": "adaptive", "supersampled_indexes": region,
                           "supersampling_convolution": False}
    kwargs_data_joint = {"multi_band_list": [[kwargs_data, kwargs_psf, kwargs_numerics]],
                         "multi_band_type": "single-band"}
    return _FitSetup(kwargs_data_joint, kwargs_model, kwargs_constraints, kwargs_likelihood,
                     kwargs_params, kwargs_data, kwargs_numerics, source_list, tie, center_rows)


def _best_fit_model(im_sim, kwargs_result, img, noise, use, n_nonlinear, with_light):
    """The lens parameters, arcs, lens light, normalised residuals and reduced chi^2 of a fit.

    The linear amplitudes are solved at the fit's non-linear parameters; the
    degrees of freedom count both.
    """
    kw_src = kwargs_result["kwargs_source"]
    kw_ll = kwargs_result["kwargs_lens_light"]
    kw_lens = kwargs_result["kwargs_lens"]
    im_sim.image_linear_solve(kw_lens, kw_src, kw_ll)
    arcs_model = im_sim.source_surface_brightness(kw_src, kw_lens)
    lens_light_model = im_sim.lens_surface_brightness(kw_ll) if with_light else np.zeros_like(img)
    resid = np.where(use, (img - arcs_model - lens_light_model) / noise, 0.0)
    n_linear = im_sim.num_param_linear(kw_lens, kw_src, kw_ll, None)
    dof = max(int(use.sum()) - n_nonlinear - n_linear, 1)
    red = float(np.sum(resid[use] ** 2) / dof)
    return lensmodel.from_lenstronomy_kwargs(kw_lens), arcs_model, lens_light_model, resid, red


def _checked_std(params_std, std_floor, systematic_std):
    """The prior sigmas (floored) and the systematic sigmas (None when not given), checked."""
    std = np.asarray(params_std, dtype=float)
    if std.shape != (8,) or not np.all(np.isfinite(std)) or np.any(std < 0):
        raise ValueError(f"params_std: expected 8 finite non-negative values, got {params_std!r}")
    sys_std = None
    if systematic_std is not None:
        sys_std = np.asarray(systematic_std, dtype=float)
        if sys_std.shape not in ((), (8,)) or not np.all(np.isfinite(sys_std)) \
                or np.any(sys_std < 0):
            raise ValueError(f"systematic_std: expected 8 finite non-negative values, got "
                             f"{systematic_std!r}")
        sys_std = np.broadcast_to(sys_std, (8,))
    floor = np.broadcast_to(np.asarray(std_floor, dtype=float), (8,))
    return np.maximum(std, floor), sys_std


def _check_options(source_model, lens_light, n_particles, n_iterations, supersampling_region,
                   source_npix, source_pixel_scale, swarm_n_max, n_max):
    """Refuse options `refine` cannot use, naming them."""
    if source_model not in SOURCE_MODELS:
        raise ValueError(f"source_model: expected one of {SOURCE_MODELS}, got {source_model!r}")
    if lens_light not in LENS_LIGHT_CHOICES:
        raise ValueError(f"lens_light: expected one of {LENS_LIGHT_CHOICES}, got {lens_light!r}")
    if int(n_particles) < 2 or int(n_iterations) < 1:
        raise ValueError("n_particles, n_iterations: need at least 2 particles and 1 iteration")
    if supersampling_region not in ("arcs", "all"):
        raise ValueError(
            f"supersampling_region: expected 'arcs' or 'all', got {supersampling_region!r}")
    if (source_npix is None) != (source_pixel_scale is None):
        raise ValueError("source_npix, source_pixel_scale: give both or neither")
    if int(swarm_n_max) < 0:
        raise ValueError(f"swarm_n_max: must be a non-negative integer, got {swarm_n_max!r}")
    if not (isinstance(n_max, str) and n_max == "auto") and int(n_max) < 0:
        raise ValueError(f"n_max: must be a non-negative integer or 'auto', got {n_max!r}")


def refine(image, noise_map, params, params_std, pixel_scale, psf=None, mask=None, mcmc=False,
           n_particles=12, n_iterations=20, source_model="SHAPELETS", n_max="auto",
           lens_light="sersic", psf_fwhm=None, supersampling=3, supersampling_region="arcs",
           bounds_nsigma=4.0,
           std_floor=DEFAULT_STD_FLOOR, n_burn=100, n_run=100, walker_ratio=4, seed=None,
           source_npix=None, source_pixel_scale=None, uncertainties=True, polish=True,
           polish_iterations=6, prior=True, light_center_sigma=None, systematic_std=None,
           swarm_n_max=SWARM_N_MAX):
    """Refine a network's lens estimate with lenstronomy's fitting machinery.

    Parameters
    ----------
    image : array-like (n, n)
        Background-subtracted image, north up, east left, flux per pixel.
    noise_map : array-like (n, n) or float
        1-sigma noise per pixel.
    params : array-like (8,)
        The network's estimate (`astro_delens.lensmodel` order): the start.
    params_std : array-like (8,)
        The network's 1-sigma uncertainties: the widths of the Gaussian priors
        (lenstronomy ``prior_lens``) and of the swarm's initial spread; the
        search is bounded to ``bounds_nsigma`` of them around the start.
    pixel_scale : float
        Arcsec per image pixel.
    psf : array-like (k, k), optional
        PSF on the image pixels; a Gaussian of FWHM ``psf_fwhm`` otherwise.
    mask : array-like of bool (n, n), optional
        ``True`` marks pixels to ignore.
    mcmc : bool
        Run an emcee MCMC after the PSO (needs the optional package emcee).
    n_particles, n_iterations : int
        Size and length of the particle swarm.
    source_model : {"SHAPELETS", "SERSIC_ELLIPSE+SHAPELETS"}
        Source light: shapelets of order ``n_max`` (free scale and centre,
        linear amplitudes), optionally on top of an elliptical Sersic sharing
        the centre.
    n_max : int or "auto"
        Shapelet order. ``"auto"`` (default) picks, among `N_MAX_AUTO`, the
        order of lowest BIC in linear inversions: low orders for faint or
        smooth sources, high orders at high signal-to-noise, where a too
        simple source biases the lens (cost per model evaluation grows with
        the number of shapelets, ``(n_max + 1)(n_max + 2) / 2``). With the
        polish, the orders up to ``swarm_n_max`` compete at the start lens;
        where the highest of them wins, the higher ones compete again at the
        swarm's best lens, and the winner is the order of the polish.
        Without it, all of `N_MAX_AUTO` compete at the start lens.
    swarm_n_max : int
        Highest shapelet order of the particle swarm (default `SWARM_N_MAX`).
        With ``polish=True`` and a higher ``n_max``, the swarm fits shapelets
        of this order and the polish those of order ``n_max``; the swarm's
        many model evaluations stay cheap and the polish still converges to
        the optimum of the full order.
    lens_light : {"sersic", "mge", None}
        Lens light: an elliptical Sersic (default), concentric elliptical
        Gaussians of fixed widths, or none.
    psf_fwhm : float or None
        FWHM in arcsec of the Gaussian PSF assumed without ``psf``; None means two
        image pixels.
    supersampling : int
        Rays per pixel side in the fit (in ``supersampling_region``).
    supersampling_region : {"arcs", "all"}
        ``"arcs"`` (default): supersample only the pixels where the start
        inversion's arcs exceed the noise (grown by 2 pixels) and those within
        0.3" of the lens centre, one ray per pixel elsewhere (lenstronomy's
        adaptive mode; about as fast as no supersampling). Point-sampled arcs
        bias the lens parameters by several statistical sigmas at high
        signal-to-noise; supersampling the arcs removes most of it.
        ``"all"``: every pixel.
    bounds_nsigma : float
        Half-width of the search box in units of the prior widths. A lens
        parameter that ends on the box's edge (or on a physical limit) is
        listed in ``settings["at_bounds"]`` and gives a
        `~astro_delens.exceptions.RefinementWarning`.
    std_floor : array-like (8,)
        Smallest prior widths (see `DEFAULT_STD_FLOOR`).
    n_burn, n_run, walker_ratio : int
        emcee settings (``mcmc=True`` only).
    seed : int, optional
        Seed of lenstronomy's samplers (they use NumPy's global generator; its
        state is restored afterwards).
    source_npix, source_pixel_scale : int, float, optional
        Return the fitted source on this source-plane grid (centred on the
        refined lens centre), e.g. the network's grid.
    uncertainties : bool
        Compute the Fisher-matrix uncertainties (``mcmc=False``); without them
        ``params_std`` is NaN.
    polish : bool
        After the swarm, run a bounded trust-region least-squares fit
        (`scipy.optimize.least_squares`) of the same model from the swarm's
        best position; its Jacobian gives the Fisher matrix.
    light_center_sigma : float, optional
        Couple the mass centre to the lens light's centre: ``None`` (default)
        leaves them independent; a positive value (arcsec) adds a Gaussian
        penalty on their offset (lenstronomy ``custom_logL_addition``; the
        ``survey`` simulations scatter them by 0.01"); ``0`` ties them
        (lenstronomy ``joint_lens_with_light``; the light centre is then
        sampled in the mass centre's stead, with its bounds and prior).
        Ignored without lens light.
    prior : bool
        Use the Gaussian priors (default). ``False`` leaves only the bounds
        (flat priors), e.g. for a blind fit from a default guess with wide
        ``params_std``.
    polish_iterations : int
        Most iterations of the polish (each costs one model evaluation plus a
        numerical Jacobian, i.e. one more per free parameter).
    systematic_std : array-like (8,), optional
        Added in quadrature to the statistical uncertainties (Fisher or MCMC):
        the errors the models' simplifications leave (a shapelet source for a
        real galaxy, a Sersic lens light). ``None`` (default) adds nothing.

    Returns
    -------
    RefineResult

    Raises
    ------
    ImportError
        If ``mcmc=True`` and emcee is not installed.
    ValueError
        For invalid arguments.
    """
    if mcmc:
        _require_emcee()
    import lenstronomy
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.ImSim.image_linear_solve import ImageLinearFit
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    from .inversion import invert_source, shapelet_scale

    t0 = time.perf_counter()
    img, noise, use, start, d = checked_inputs(image, noise_map, params, pixel_scale, mask)
    std, sys_std = _checked_std(params_std, std_floor, systematic_std)
    _check_options(source_model, lens_light, n_particles, n_iterations, supersampling_region,
                   source_npix, source_pixel_scale, swarm_n_max, n_max)
    psf_class, kwargs_psf, psf_desc = lenstronomy_psf(psf, d, psf_fwhm)

    lo_hard, hi_hard = PARAMETER_BOUNDS
    start = np.clip(start, lo_hard + 1e-3, hi_hard - 1e-3)
    lower = np.maximum(start - bounds_nsigma * std, lo_hard)
    upper = np.minimum(start + bounds_nsigma * std, hi_hard)

    timing = {}
    tic = time.perf_counter()
    # 0. start values of source and lens light: a linear inversion at the start lens
    noise_in = np.where(use, noise, 0.0)

    def lowest_bic(orders, lens_params):
        """Order and inversion of lowest BIC (chi^2 + k ln N, k shapelet amplitudes)."""
        best = None
        for order in orders:
            trial = invert_source(img, noise_in, lens_params, d, 8, d, psf=psf, n_max=order,
                                  lens_light=lens_light, psf_fwhm=psf_fwhm, supersampling=1,
                                  n_beta=3)
            k = (order + 1) * (order + 2) // 2
            bic = trial.reduced_chi2 * trial.dof + k * np.log(use.sum())
            if best is None or bic < best[0]:
                best = (bic, order, trial)
        return best[1], best[2]

    swarm_n_max = int(swarm_n_max)
    auto = isinstance(n_max, str) and n_max == "auto"
    # with the polish, "auto" considers orders above swarm_n_max only at the swarm's
    # best lens: at a wrong start lens a very flexible source can pass for part of
    # the lens's error and would win the BIC for that reason
    split = auto and polish and max(N_MAX_AUTO) > swarm_n_max
    low_orders = [o for o in N_MAX_AUTO if o <= swarm_n_max] or [min(N_MAX_AUTO)]
    if auto:
        n_max, inv = lowest_bic(low_orders if split else N_MAX_AUTO, start)
        n_swarm = n_max
    else:
        n_max, inv = lowest_bic([int(n_max)], start)
        n_swarm = min(n_max, swarm_n_max) if polish else n_max
    beta0 = min(inv.beta, shapelet_scale(0.6 * start[lensmodel.INDEX["theta_E"]] + 2 * d, n_swarm))

    fit = _fit_setup(img, noise, use, start, std, lower, upper, d, inv, n_swarm, beta0,
                     source_model, lens_light, light_center_sigma, prior, kwargs_psf,
                     supersampling, supersampling_region)
    kwargs_params, tie, center_rows = fit.kwargs_params, fit.tie, fit.center_rows
    kwargs_data, kwargs_numerics = fit.kwargs_data, fit.kwargs_numerics
    ll_list, source_list = fit.kwargs_model["lens_light_model_list"], fit.source_list

    state = np.random.get_state() if seed is not None else None
    try:
        # lenstronomy's samplers print progress whatever their verbosity: keep it quiet
        with contextlib.redirect_stdout(io.StringIO()):
            if seed is not None:
                np.random.seed(int(seed))
            fit_seq = fit.sequence()
            timing["start_inversion"] = time.perf_counter() - tic
            tic = time.perf_counter()
            # 1. particle swarm
            fit_seq.fit_sequence([["PSO", {"sigma_scale": 1.0, "n_particles": int(n_particles),
                                           "n_iterations": int(n_iterations)}]])
            param_class = fit_seq.param_class
            names = list(param_class.num_param()[1])
            lens_idx = np.array([_arg_index(names, i, name, tie) for i, name in _LENS_KEYS])
            data = ImageData(**kwargs_data)
            source_light = LightModel(source_list)
            im_sim = ImageLinearFit(data, psf_class,
                                    lens_model_class=LensModel(list(lensmodel.LENS_MODEL_LIST)),
                                    source_model_class=source_light,
                                    lens_light_model_class=LightModel(ll_list),
                                    kwargs_numerics=kwargs_numerics, likelihood_mask=use)
            args = np.asarray(param_class.kwargs2args(**fit_seq.best_fit()), dtype=float)
            if split and n_swarm == max(low_orders):
                # the data wanted the swarm's highest order: may they want more?
                swarm_lens = lensmodel.from_lenstronomy_kwargs(
                    param_class.args2kwargs(args)["kwargs_lens"])
                tic_order = time.perf_counter()
                n_max, _ = lowest_bic([o for o in N_MAX_AUTO if o >= n_swarm], swarm_lens)
                timing["order_choice"] = time.perf_counter() - tic_order
            if n_swarm != n_max:
                # from here on the source has the full order; n_max is a fixed
                # parameter, so the parameter arrays keep their layout
                kwargs_params["source_model"] = _source_params(
                    source_model, n_max, beta0, inv.center, d, std)
                fit_seq = fit.sequence()
                param_class = fit_seq.param_class
            prior_idx = lens_idx if prior else np.zeros(0, dtype=int)
            residuals = _model_residuals(
                param_class, im_sim, img, noise, use, prior_idx,
                start if prior else np.zeros(0), std if prior else np.ones(0), center_rows)
            scale = np.abs(np.asarray(param_class.kwargs2args(
                kwargs_lens=kwargs_params["lens_model"][1],
                kwargs_source=kwargs_params["source_model"][1],
                kwargs_lens_light=kwargs_params["lens_light_model"][1]),
                dtype=float))
            scale = np.where(scale > 0, scale, 1e-3)
            timing["pso"] = time.perf_counter() - tic
            tic = time.perf_counter()
            # 2. local polish of the swarm's best position
            jac, n_polish = None, 0
            if polish:
                args, jac, n_polish = _polished(residuals, args, param_class, scale,
                                                polish_iterations)
            kwargs_result = param_class.args2kwargs(args)
            timing["polish"] = time.perf_counter() - tic
            tic = time.perf_counter()
            # 3. MCMC from there
            samples = None
            if mcmc:
                samples = _mcmc_samples(fit_seq, kwargs_result, n_burn, n_run, walker_ratio, tie)
                timing["mcmc"] = time.perf_counter() - tic
                tic = time.perf_counter()
    finally:
        if state is not None:
            np.random.set_state(state)

    n_nonlinear = len(args)
    best, arcs_model, lens_light_model, resid, red = _best_fit_model(
        im_sim, kwargs_result, img, noise, use, n_nonlinear, bool(ll_list))
    model = arcs_model + lens_light_model
    kw_src = kwargs_result["kwargs_source"]

    if mcmc:
        best = np.median(samples, axis=0)
        cov = np.cov(samples, rowvar=False)
        method = "mcmc"
    elif uncertainties:
        if jac is None:
            jac = _jacobian(residuals, args, 0.05 * scale)
        cov = _covariance(jac)[np.ix_(lens_idx, lens_idx)] * max(1.0, red)
        method = "fisher"
    else:
        cov = np.full((8, 8), np.nan)
        method = "none"
    statistical_std = np.sqrt(np.diag(cov))
    at_bounds = _at_bounds(best, lower, upper)
    if at_bounds:
        warnings.warn(RefinementWarning(
            f"refine: {', '.join(at_bounds)} ended at the edge of the search range "
            f"({bounds_nsigma:g} network sigmas around the start, within the physical limits): "
            "the start may be far off; check the fit (reduced chi^2 "
            f"{red:.2f}) or refine with a larger bounds_nsigma"), stacklevel=2)
    if sys_std is not None:
        cov = cov + np.diag(sys_std ** 2)
    timing["uncertainties_and_model"] = time.perf_counter() - tic

    source = None
    if source_npix is not None:
        source = evaluate_on_source_grid(source_light, kw_src, int(source_npix),
                                         float(source_pixel_scale), lensmodel.lens_center(best))
    settings = {
        "refined": True,
        "method": "lenstronomy FittingSequence PSO" + (" + least-squares polish" if polish else "")
        + (" + emcee" if mcmc else ""),
        "n_particles": int(n_particles), "n_iterations": int(n_iterations),
        "polish": bool(polish), "polish_evaluations": n_polish,
        "mcmc": bool(mcmc),
        "n_burn": int(n_burn) if mcmc else None, "n_run": int(n_run) if mcmc else None,
        "walker_ratio": int(walker_ratio) if mcmc else None,
        "source_model": source_model, "n_max": int(n_max), "swarm_n_max": int(n_swarm),
        "lens_light": lens_light,
        "psf": psf_desc, "supersampling": int(supersampling),
        "supersampling_region": supersampling_region,
        "light_center_sigma": light_center_sigma if lens_light is not None else None,
        "bounds_nsigma": float(bounds_nsigma),
        "priors": ("Gaussian, network mean and sigma (floored)" if prior
                   else "flat within the bounds"),
        "uncertainty_method": method, "seed": seed, "n_free_parameters": int(n_nonlinear),
        "at_bounds": at_bounds,
        "systematic_std": None if sys_std is None else sys_std.tolist(),
        "lenstronomy_version": lenstronomy.__version__,
        "seconds_per_stage": timing,
    }
    return RefineResult(
        params=best, params_std=np.sqrt(np.diag(cov)), covariance=cov,
        uncertainty_method=method, start=np.asarray(params, dtype=float), prior_std=std,
        lower=lower, upper=upper, reduced_chi2=red, start_reduced_chi2=float(inv.reduced_chi2),
        model_image=model, arcs_model=arcs_model,
        lens_light_model=lens_light_model, residuals=resid, source=source,
        kwargs_result=kwargs_result, samples=samples, seconds=time.perf_counter() - t0,
        settings=settings, statistical_std=statistical_std,
    )
