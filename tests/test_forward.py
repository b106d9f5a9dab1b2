"""Tests of the physics-in-the-loop tools (astro_delens.forward)."""

import numpy as np
import pytest

from astro_delens import lensmodel
from astro_delens.forward import (
    RelensResult,
    invert_source,
    refine,
    relens_check,
    render_lensed_source,
)
from astro_delens.forward.plotting import critical_curves_and_caustics, curve_grid_scale
from astro_delens.presets import get_preset
from lens_fixtures import survey_lens  # noqa: F401 (a fixture)

PRESET = get_preset("survey")


def _check(sample, params, **kwargs):
    return relens_check(sample["image"], sample["noise_map"], params, sample["source"],
                        PRESET.source_pixel_scale, PRESET.pixel_scale, psf=sample["psf"],
                        **kwargs)


# --------------------------------------------------------------------------
# conventions
# --------------------------------------------------------------------------
def test_interpol_orientation_matches_lensmodel():
    """A source pixel to the north-east lands north-east (left, up) without lensing."""
    n, d, m, ds = 64, 0.1, 64, 0.05
    source = np.zeros((m, m))
    i_src, j_src = 10, 45  # column 10: east of centre; row 45: north of centre
    source[j_src, i_src] = 1.0
    params = np.array([1e-4, 2.0, 0.0, 0.0, 0.3, -0.2, 0.0, 0.0])  # no lensing, offset centre
    image = render_lensed_source(params, source, ds, n, d, psf_fwhm=1.0 * d)
    x = ((m - 1) / 2 - i_src) * ds + params[4]
    y = (j_src - (m - 1) / 2) * ds + params[5]
    assert x > 0 and y > 0
    col, row = lensmodel.angle_to_pixel(x, y, n, d)
    j, i = np.unravel_index(np.argmax(image), image.shape)
    assert abs(i - col) <= 0.75 and abs(j - row) <= 0.75
    assert i < n / 2 and j > n / 2  # east is left, north is up
    # surface brightness is conserved: flux per source pixel -> flux per image pixel
    assert image.sum() == pytest.approx(1.0, rel=0.02)


# --------------------------------------------------------------------------
# re-lensing check
# --------------------------------------------------------------------------
def test_relens_true_answer_fits_and_wrong_theta_e_does_not(survey_lens):
    p = survey_lens["params"]
    good = _check(survey_lens, p)
    assert isinstance(good, RelensResult)
    assert 0.8 < good.reduced_chi2 < 1.3
    assert good.arc_reduced_chi2 < 2.0
    assert good.source_amplitude == pytest.approx(1.0, abs=0.15)
    assert not good.flag, good.flag_reasons
    assert good.dof < good.used.sum()
    assert "pixelised PSF" in good.psf_used
    assert good.lens_light_model.max() > 0.3 * survey_lens["lens_light"].max()

    wrong = p.copy()
    wrong[0] *= 1.2
    bad = _check(survey_lens, wrong)
    assert bad.reduced_chi2 > 2 * good.reduced_chi2
    assert bad.arc_reduced_chi2 > 2 * good.arc_reduced_chi2
    assert bad.flag and bad.flag_reasons


def test_relens_without_psf_and_with_mask(survey_lens):
    mask = np.zeros(survey_lens["image"].shape, dtype=bool)
    mask[:10, :10] = True
    r = relens_check(survey_lens["image"], survey_lens["noise_map"], survey_lens["params"],
                     survey_lens["source"], PRESET.source_pixel_scale, PRESET.pixel_scale,
                     mask=mask, psf_fwhm=survey_lens["meta"]["psf_fwhm"],
                     lens_light="sersic")
    assert "Gaussian" in r.psf_used and "assumed" in r.psf_used
    assert not r.used[:10, :10].any() and np.all(r.residuals[:10, :10] == 0)
    assert r.reduced_chi2 < 1.5


def test_relens_plot_draws_lenstronomys_curves(survey_lens):
    from matplotlib.figure import Figure

    r = _check(survey_lens, survey_lens["params"], fit_lens_light_shape=False)
    fig = r.plot()
    assert isinstance(fig, Figure)
    window = PRESET.npix * PRESET.pixel_scale
    ra_c, dec_c, ra_k, dec_k = critical_curves_and_caustics(
        survey_lens["params"], window, curve_grid_scale(PRESET.pixel_scale, window))
    # the same curves, straight from lenstronomy
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LensModel.lens_model_extensions import LensModelExtensions

    p = survey_lens["params"]
    ref = LensModelExtensions(LensModel(["EPL", "SHEAR"])).critical_curve_caustics(
        lensmodel.to_lenstronomy_kwargs(p), compute_window=window,
        grid_scale=curve_grid_scale(PRESET.pixel_scale, window), center_x=p[4], center_y=p[5])
    for mine, theirs in zip((ra_c, dec_c, ra_k, dec_k), ref):
        assert len(mine) == len(theirs) >= 1
        for a, b in zip(mine, theirs):
            np.testing.assert_allclose(a, b)
    panels = {ax.get_label(): ax for ax in fig.axes}
    image_ax, source_ax = panels["data"], panels["source"]
    crit = [ln for ln in image_ax.get_lines() if ln.get_gid() == "critical_curve"]
    caus = [ln for ln in source_ax.get_lines() if ln.get_gid() == "caustic"]
    assert len(crit) == len(ref[0]) and len(caus) == len(ref[2])
    for ln, x, y in zip(crit, ref[0], ref[1]):
        np.testing.assert_allclose(ln.get_xdata(), x)
        np.testing.assert_allclose(ln.get_ydata(), y)
    for ln, x, y in zip(caus, ref[2], ref[3]):
        np.testing.assert_allclose(ln.get_xdata(), x)
        np.testing.assert_allclose(ln.get_ydata(), y)
    # the tangential critical curve of a theta_E lens passes at ~theta_E from the centre
    r_crit = max(np.median(np.hypot(x - p[4], y - p[5])) for x, y in zip(ra_c, dec_c))
    assert r_crit == pytest.approx(p[0], rel=0.25)
    # east is left: the image axis runs from +x to -x
    left, right = image_ax.get_xlim()
    assert left > right


def test_relens_argument_errors(survey_lens):
    s = survey_lens
    with pytest.raises(ValueError, match="params"):
        _check(s, s["params"][:7])
    with pytest.raises(ValueError, match="noise_map"):
        relens_check(s["image"], s["noise_map"][:10], s["params"], s["source"], 0.05, 0.1)
    with pytest.raises(ValueError, match="noise_map"):
        relens_check(s["image"], np.zeros_like(s["image"]), s["params"], s["source"], 0.05, 0.1)
    with pytest.raises(ValueError, match="lens_light"):
        _check(s, s["params"], lens_light="chameleon")
    with pytest.raises(ValueError, match="psf"):
        relens_check(s["image"], s["noise_map"], s["params"], s["source"], 0.05, 0.1,
                     psf=np.ones((4, 4)))
    with pytest.raises(ValueError, match="source"):
        relens_check(s["image"], s["noise_map"], s["params"], np.zeros((8, 8)), 0.05, 0.1)
    with pytest.raises(ValueError, match="source"):
        relens_check(s["image"], s["noise_map"], s["params"], np.ones((8, 6)), 0.05, 0.1)


# --------------------------------------------------------------------------
# linear source inversion
# --------------------------------------------------------------------------
def test_invert_source_matches_the_target(survey_lens):
    s = survey_lens
    inv = invert_source(s["image"], s["noise_map"], s["params"], PRESET.pixel_scale,
                        PRESET.source_npix, PRESET.source_pixel_scale, psf=s["psf"], n_max=8,
                        lens_light="sersic", reference_fwhm=PRESET.source_reference_fwhm,
                        n_beta=3)
    assert inv.source.shape == s["source"].shape
    assert inv.reduced_chi2 < 1.5
    corr = np.corrcoef(inv.source.ravel(), s["source"].ravel())[0, 1]
    assert corr > 0.7
    assert inv.source.sum() == pytest.approx(s["source"].sum(), rel=0.3)
    # the basis sits near the true source position (meta: offset from the lens centre)
    true_center = (s["params"][4] + s["meta"]["source_x"], s["params"][5] + s["meta"]["source_y"])
    assert np.hypot(inv.center[0] - true_center[0], inv.center[1] - true_center[1]) < 0.3


# --------------------------------------------------------------------------
# refinement
# --------------------------------------------------------------------------
def test_refine_improves_a_perturbed_start(survey_lens):
    s = survey_lens
    p = s["params"]
    std = np.array([0.04 * p[0], 0.05, 0.03, 0.03, 0.02, 0.02, 0.015, 0.015])
    start = p + np.array([1.5, -0.5, 1.0, -1.0, 1.0, -1.0, 0.5, 0.5]) * std
    res = refine(s["image"], s["noise_map"], start, std, PRESET.pixel_scale, psf=s["psf"],
                 n_particles=8, n_iterations=5, polish_iterations=5, seed=3,
                 source_npix=32, source_pixel_scale=PRESET.source_pixel_scale)
    assert res.settings["refined"] is True
    assert res.settings["uncertainty_method"] == "fisher"
    assert res.params.shape == (8,) and res.params_std.shape == (8,)
    assert np.all(np.isfinite(res.params_std)) and np.all(res.params_std > 0)
    # the Einstein radius and the overall (prior-normalised) error improve
    assert abs(res.params[0] - p[0]) < 0.3 * abs(start[0] - p[0])
    z_start = np.sum(((start - p) / std) ** 2)
    z_final = np.sum(((res.params - p) / std) ** 2)
    assert z_final < 0.4 * z_start
    # the errors are compatible with the Fisher uncertainties (loosely: the
    # shapelet source cannot represent the simulated galaxy exactly)
    assert np.all(np.abs(res.params - p) < 5 * res.params_std + 0.1 * std)
    assert res.reduced_chi2 < min(1.2, res.start_reduced_chi2)
    assert res.source.shape == (32, 32)
    assert np.all((res.params >= res.lower - 1e-9) & (res.params <= res.upper + 1e-9))


def test_refine_with_the_assumed_gaussian_psf_and_supersampled_arcs(survey_lens):
    # the default path when a user gives no PSF: lenstronomy >= 1.14 refuses its own
    # Gaussian convolution in the adaptive supersampling of the arcs
    s = survey_lens
    p = s["params"]
    std = np.array([0.04 * p[0], 0.05, 0.03, 0.03, 0.02, 0.02, 0.015, 0.015])
    start = p + np.array([1.5, -0.5, 1.0, -1.0, 1.0, -1.0, 0.5, 0.5]) * std
    res = refine(s["image"], s["noise_map"], start, std, PRESET.pixel_scale, psf=None,
                 psf_fwhm=None, supersampling=2, supersampling_region="arcs", n_particles=8,
                 n_iterations=5, polish_iterations=5, seed=3, uncertainties=False)
    assert "assumed Gaussian PSF" in res.settings["psf"]
    assert abs(res.params[0] - p[0]) < 0.5 * abs(start[0] - p[0])


def test_assumed_gaussian_psf_is_a_normalised_pixel_kernel():
    from astro_delens.psf import lenstronomy_psf, measure_fwhm

    psf_class, kwargs, description = lenstronomy_psf(None, 0.1, psf_fwhm=0.25)
    kernel = kwargs["kernel_point_source"]
    assert kwargs["psf_type"] == "PIXEL" and kernel.shape[0] % 2 == 1
    assert np.isclose(kernel.sum(), 1.0)
    # FWHM from the area above half maximum, within half a pixel
    assert abs(measure_fwhm(kernel, 0.1) - 0.25) < 0.05
    assert "assumed Gaussian PSF, FWHM 0.25 arcsec (2.5 pixels)" in description
    # without a FWHM: two pixels
    _, kwargs, description = lenstronomy_psf(None, 0.05)
    assert abs(measure_fwhm(kwargs["kernel_point_source"], 0.05) - 0.1) < 0.025
    with pytest.raises(ValueError, match="psf_fwhm"):
        lenstronomy_psf(None, 0.1, psf_fwhm=-1.0)


def test_refine_without_lens_light(survey_lens):
    s = survey_lens
    p = s["params"]
    arcs_only = s["image"] - s["lens_light"]  # the noiseless light taken away, the noise kept
    std = np.array([0.04 * p[0], 0.05, 0.03, 0.03, 0.02, 0.02, 0.015, 0.015])
    start = p + np.array([1.5, -0.5, 1.0, -1.0, 1.0, -1.0, 0.5, 0.5]) * std
    res = refine(arcs_only, s["noise_map"], start, std, PRESET.pixel_scale, psf=s["psf"],
                 lens_light=None, n_particles=8, n_iterations=5, polish_iterations=5, seed=3,
                 supersampling=1, uncertainties=False)
    assert res.settings["lens_light"] is None
    assert not np.any(res.lens_light_model)
    assert abs(res.params[0] - p[0]) < 0.3 * abs(start[0] - p[0])
    assert res.reduced_chi2 < min(1.5, res.start_reduced_chi2)


def test_refine_polishes_with_a_higher_order_than_the_swarm(survey_lens):
    s = survey_lens
    std = np.array([0.04 * s["params"][0], 0.05, 0.03, 0.03, 0.02, 0.02, 0.015, 0.015])
    common = dict(n_particles=6, n_iterations=3, polish_iterations=3, seed=3, supersampling=1,
                  uncertainties=False)
    low = refine(s["image"], s["noise_map"], s["params"], std, PRESET.pixel_scale,
                 psf=s["psf"], n_max=4, **common)
    high = refine(s["image"], s["noise_map"], s["params"], std, PRESET.pixel_scale,
                  psf=s["psf"], n_max=8, swarm_n_max=4, **common)
    assert (low.settings["n_max"], low.settings["swarm_n_max"]) == (4, 4)
    assert (high.settings["n_max"], high.settings["swarm_n_max"]) == (8, 4)
    assert high.kwargs_result["kwargs_source"][0]["n_max"] == 8
    # the same swarm, then a source with more freedom: a better fit
    assert high.reduced_chi2 < low.reduced_chi2
    # without the polish the swarm fits the full order itself
    whole = refine(s["image"], s["noise_map"], s["params"], std, PRESET.pixel_scale,
                   psf=s["psf"], n_max=6, swarm_n_max=4, polish=False, **common)
    assert (whole.settings["n_max"], whole.settings["swarm_n_max"]) == (6, 6)


def test_refine_warns_when_it_ends_at_the_edge_of_its_search_box(survey_lens):
    from astro_delens.exceptions import RefinementWarning

    s = survey_lens
    p = s["params"]
    std = np.array([0.01 * p[0], 0.05, 0.03, 0.03, 0.02, 0.02, 0.015, 0.015])
    start = p.copy()
    start[0] -= 6 * std[0]  # theta_E 6 sigma low, searched within 1 sigma only
    with pytest.warns(RefinementWarning, match="theta_E"):
        res = refine(s["image"], s["noise_map"], start, std, PRESET.pixel_scale, psf=s["psf"],
                     n_particles=6, n_iterations=3, polish_iterations=3, seed=3, n_max=4,
                     supersampling=1, uncertainties=False, bounds_nsigma=1.0)
    assert "theta_E" in res.settings["at_bounds"]
    assert res.params[0] == pytest.approx(res.upper[0], abs=0.01 * (res.upper[0] - res.lower[0]))


def test_refine_mcmc_needs_emcee(survey_lens):
    try:
        import emcee  # noqa: F401
    except ImportError:
        s = survey_lens
        with pytest.raises(ImportError, match="emcee"):
            refine(s["image"], s["noise_map"], s["params"], np.full(8, 0.01), 0.1, mcmc=True)
    else:
        pytest.skip("emcee is installed")


def test_refine_argument_errors(survey_lens):
    s = survey_lens
    with pytest.raises(ValueError, match="params_std"):
        refine(s["image"], s["noise_map"], s["params"], np.full(7, 0.01), 0.1)
    with pytest.raises(ValueError, match="source_model"):
        refine(s["image"], s["noise_map"], s["params"], np.full(8, 0.01), 0.1,
               source_model="INTERPOL")
    with pytest.raises(ValueError, match="swarm_n_max"):
        refine(s["image"], s["noise_map"], s["params"], np.full(8, 0.01), 0.1, swarm_n_max=-1)
    with pytest.raises(ValueError, match="systematic_std"):
        refine(s["image"], s["noise_map"], s["params"], np.full(8, 0.01), 0.1,
               systematic_std=[0.01, -1.0])
