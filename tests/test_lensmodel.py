"""Tests of the lens-model definition: conversions, conventions and priors."""

import numpy as np
import pytest
from scipy import stats

from astro_delens import lensmodel


def convergence_map(params, n=40, scale=0.1):
    from lenstronomy.LensModel.lens_model import LensModel

    i, j = np.meshgrid(np.arange(n), np.arange(n))
    x, y = lensmodel.pixel_to_angle(i, j, n, scale)
    kwargs = lensmodel.to_lenstronomy_kwargs(params)
    return LensModel(["EPL"]).kappa(x, y, kwargs[:1])


def test_kwargs_round_trip():
    p = np.array([1.3, 2.1, 0.05, -0.1, 0.02, -0.03, 0.04, 0.01])
    kwargs = lensmodel.to_lenstronomy_kwargs(p)
    assert kwargs[0]["theta_E"] == 1.3 and kwargs[1]["ra_0"] == 0.02
    np.testing.assert_allclose(lensmodel.from_lenstronomy_kwargs(kwargs), p)


def test_kwargs_rejects_wrong_shape():
    with pytest.raises(ValueError, match="params"):
        lensmodel.to_lenstronomy_kwargs([1.0, 2.0])


def test_pixel_angle_round_trip():
    x, y = lensmodel.pixel_to_angle(np.array([0, 10, 63]), np.array([5, 0, 63]), 64, 0.08)
    i, j = lensmodel.angle_to_pixel(x, y, 64, 0.08)
    np.testing.assert_allclose(i, [0, 10, 63])
    np.testing.assert_allclose(j, [5, 0, 63])
    # column 0 is the eastern edge (positive x), row 0 the southern edge (negative y)
    assert x[0] > 0 and y[1] < 0


def test_major_axis_north_has_position_angle_zero():
    # e1 < 0, e2 = 0: lenstronomy phi = 90 deg, major axis along +y (north)
    p = np.array([1.0, 2.0, -0.2, 0.0, 0, 0, 0, 0])
    kappa = convergence_map(p)
    centre = kappa.shape[0] // 2
    # the convergence falls off more slowly along the major axis (along rows = north)
    assert kappa[centre + 8, centre] > kappa[centre, centre + 8]
    assert lensmodel.sky_quantities(p)["position_angle"].to_value("deg") == pytest.approx(0.0)


def test_major_axis_northeast_has_position_angle_45():
    # phi = 45 deg from east towards north: major axis to the north-east, PA = 45 deg
    p = np.array([1.0, 2.0, 0.0, 0.2, 0, 0, 0, 0])
    kappa = convergence_map(p)
    c = kappa.shape[0] // 2
    # north-east is up (row +) and left (column -) in our orientation
    assert kappa[c + 6, c - 6] > kappa[c + 6, c + 6]
    sky = lensmodel.sky_quantities(p)
    assert sky["position_angle"].to_value("deg") == pytest.approx(45.0)
    assert sky["axis_ratio"].value == pytest.approx((1 - 0.2) / (1 + 0.2))


def test_shear_quantities():
    p = np.array([1.0, 2.0, 0, 0, 0, 0, 0.0, 0.05])
    sky = lensmodel.sky_quantities(p)
    assert sky["shear"].value == pytest.approx(0.05)
    assert sky["shear_angle"].to_value("deg") == pytest.approx(45.0)


def test_sky_quantities_vectorised():
    p = np.zeros((5, 8))
    p[:, 0] = 1.0
    p[:, 2] = np.linspace(-0.2, 0.2, 5)
    q = lensmodel.sky_quantities(p)["axis_ratio"]
    assert q.shape == (5,) and np.all(q.value <= 1)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_rotation_is_a_group_action(k):
    p = np.array([1.0, 2.0, 0.1, -0.05, 0.1, 0.2, 0.03, -0.02])
    once = lensmodel.rotate_parameters(p, k)
    np.testing.assert_allclose(lensmodel.rotate_parameters(once, 4 - k), p)
    np.testing.assert_allclose(lensmodel.flip_parameters(lensmodel.flip_parameters(p)), p)


def test_unknown_preset():
    with pytest.raises(ValueError, match="preset"):
        lensmodel.get_priors("hubble")


def test_seed_priors_match_the_original_work():
    rng = np.random.default_rng(0)
    draws = lensmodel.sample_parameters("seed", rng, 20000)
    expected = {
        "theta_E": stats.uniform(0.8, 0.4), "gamma": stats.norm(2.0, 0.1),
        "e1": stats.uniform(-0.05, 0.1), "e2": stats.uniform(-0.05, 0.1),
        "center_x": stats.norm(0, 0.2), "center_y": stats.norm(0, 0.2),
        "gamma1": stats.norm(0, 0.16), "gamma2": stats.norm(0, 0.16),
    }
    for k, name in enumerate(lensmodel.PARAMETER_NAMES):
        assert stats.kstest(draws[:, k], expected[name].cdf).pvalue > 1e-3, name


def test_survey_priors_within_bounds_and_moments():
    draws = lensmodel.sample_parameters("survey", np.random.default_rng(1), 20000)
    mean, std = lensmodel.prior_moments("survey")
    for k, prior in enumerate(lensmodel.get_priors("survey").values()):
        low, high = prior.bounds
        assert draws[:, k].min() >= low and draws[:, k].max() <= high
        assert draws[:, k].mean() == pytest.approx(mean[k], abs=4 * std[k] / np.sqrt(20000))
        assert draws[:, k].std() == pytest.approx(std[k], rel=0.05)


def test_the_parameter_table_drives_the_conversions():
    p = np.arange(1.0, 9.0)
    kwargs = lensmodel.to_lenstronomy_kwargs(p)
    for i, spec in enumerate(lensmodel.PARAMETERS):
        assert lensmodel.INDEX[spec.name] == i
        assert kwargs[lensmodel.LENS_MODEL_LIST.index(spec.component)][spec.key] == p[i]
    assert lensmodel.lens_center(p) == (5.0, 6.0)
    # the shear is anchored at the lens centre
    assert (kwargs[1]["ra_0"], kwargs[1]["dec_0"]) == lensmodel.lens_center(p)


@pytest.mark.parametrize("preset", sorted(lensmodel.PRIORS))
def test_the_fit_bounds_hold_every_prior(preset):
    """At least the central 95% of each preset's prior (the seed's Gaussians are unbounded)."""
    rng = np.random.default_rng(0)
    for spec in lensmodel.PARAMETERS:
        draws = lensmodel.PRIORS[preset][spec.name].sample(rng, 20000)
        low, high = np.percentile(draws, [2.5, 97.5])
        assert spec.bounds[0] <= low and high <= spec.bounds[1], (preset, spec.name)
