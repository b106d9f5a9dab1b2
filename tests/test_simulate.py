"""Physics tests of the lens simulator."""

import numpy as np
import pytest

from astro_delens import lensmodel
from astro_delens.presets import get_preset
from astro_delens.training.simulate import LensSimulator, render_arcs, source_target

DELTA_PSF = np.pad(np.ones((1, 1)), 2)


def gaussian_source(n, scale, sigma, x0=0.0, y0=0.0):
    """Surface brightness of a round Gaussian at (x0 east, y0 north) on a grid in our orientation."""
    i, j = np.meshgrid(np.arange(n), np.arange(n))
    x, y = lensmodel.pixel_to_angle(i, j, n, scale)
    return np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))


@pytest.mark.parametrize("theta_E", [0.8, 1.5, 2.5])
def test_point_source_behind_round_lens_makes_ring_at_theta_E(theta_E):
    npix, scale = 96, 0.1
    params = np.array([theta_E, 2.0, 0, 0, 0, 0, 0, 0])
    source = gaussian_source(200, 0.01, 0.01)
    arcs = render_arcs(params, source, 0.01, npix, scale, DELTA_PSF, supersampling=5)
    i, j = np.meshgrid(np.arange(npix), np.arange(npix))
    x, y = lensmodel.pixel_to_angle(i, j, npix, scale)
    r = np.hypot(x, y)
    bins = np.arange(0, 4.0, scale / 2)
    which = np.digitize(r.ravel(), bins)
    profile = np.array([arcs.ravel()[which == b].mean() if np.any(which == b) else 0
                        for b in range(1, len(bins))])
    ring_radius = bins[np.argmax(profile)] + scale / 4
    assert abs(ring_radius - theta_E) < scale


def test_lensing_conserves_surface_brightness():
    npix, scale = 48, 0.1
    params = np.array([1.0, 2.1, 0.1, -0.05, 0.05, 0.0, 0.03, 0.02])
    uniform = np.full((400, 400), 3.0)  # 8" x 8" of uniform surface brightness
    arcs = render_arcs(params, uniform, 0.02, npix, scale, DELTA_PSF, supersampling=3)
    inner = arcs[8:-8, 8:-8] / scale**2
    np.testing.assert_allclose(inner, 3.0, rtol=1e-6)


def test_source_is_where_the_convention_says():
    """With a negligible lens, a source offset to the east and north appears up and left."""
    npix, scale = 64, 0.1
    params = np.array([1e-4, 2.0, 0, 0, 0, 0, 0, 0])
    source = gaussian_source(128, 0.05, 0.1, x0=1.0, y0=0.5)
    arcs = render_arcs(params, source, 0.05, npix, scale, DELTA_PSF)
    j, i = np.unravel_index(np.argmax(arcs), arcs.shape)
    x, y = lensmodel.pixel_to_angle(i, j, npix, scale)
    assert abs(x - 1.0) <= scale and abs(y - 0.5) <= scale


@pytest.mark.parametrize("preset", ["seed", "survey"])
def test_sample_contents(preset):
    p = get_preset(preset)
    sample = LensSimulator(preset).simulate(7)
    for key in ("image", "noise_map", "arcs", "lens_light"):
        assert sample[key].shape == (p.npix, p.npix) and sample[key].dtype == np.float32
    assert sample["source"].shape == (p.source_npix, p.source_npix)
    assert sample["params"].shape == (8,)
    assert sample["psf"].sum() == pytest.approx(1.0, rel=1e-5)
    assert sample["psf"].shape[0] % 2 == 1
    assert np.all(np.isfinite(sample["image"]))
    assert sample["arcs"].max() == pytest.approx(1.0)
    if p.noise:
        assert np.all(sample["noise_map"] > 0)
        residual = (sample["image"] - sample["arcs"] - sample["lens_light"]) / sample["noise_map"]
        assert np.std(residual) == pytest.approx(1.0, abs=0.05)
    else:
        np.testing.assert_array_equal(sample["image"], sample["arcs"])


def test_simulation_is_deterministic():
    sim = LensSimulator("survey")
    a, b = sim.simulate([3, 1, 4]), sim.simulate([3, 1, 4])
    for key in ("image", "source", "params", "psf"):
        np.testing.assert_array_equal(a[key], b[key])
    c = sim.simulate([3, 1, 5])
    assert not np.array_equal(a["params"], c["params"])


def test_params_follow_the_preset_priors():
    """The lens parameters of simulated samples are draws from the preset's priors."""
    sim = LensSimulator("seed")
    params = np.array([sim.source_for(s) and sim.simulate(s)["params"] for s in range(3)])
    from astro_delens.training.simulate import _streams

    expected = np.array([lensmodel.sample_parameters("seed", _streams(s)[0]) for s in range(3)])
    np.testing.assert_array_equal(params, expected)


@pytest.mark.parametrize("preset", ["seed", "survey"])
def test_arcs_equal_independent_lenstronomy_rendering(preset):
    """Re-render a stored sample's arcs from its stored parameters, source target and PSF with
    lenstronomy set up here, independently of the simulator's code."""
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel
    from lenstronomy.Util.simulation_util import data_configure_simple

    p = get_preset(preset)
    sample = LensSimulator(preset).simulate(11)
    t, g, e1, e2, cx, cy, g1, g2 = sample["params"]
    kwargs_lens = [dict(theta_E=t, gamma=g, e1=e1, e2=e2, center_x=cx, center_y=cy),
                   dict(gamma1=g1, gamma2=g2, ra_0=cx, dec_0=cy)]
    model = ImageModel(
        ImageData(**data_configure_simple(p.npix, p.pixel_scale, inverse=True)),
        PSF(psf_type="PIXEL", kernel_point_source=sample["psf"].astype(float)),
        lens_model_class=LensModel(["EPL", "SHEAR"]),
        source_model_class=LightModel(["INTERPOL"]),
        kwargs_numerics={"supersampling_factor": p.supersampling},
    )
    # INTERPOL wants +x (east) along increasing columns: flip our east-left source.
    sb = np.fliplr(sample["source"].astype(float)) / p.source_pixel_scale**2
    kwargs_source = [dict(image=sb, amp=1, center_x=cx, center_y=cy, phi_G=0,
                          scale=p.source_pixel_scale)]
    image = model.image(kwargs_lens, kwargs_source, lens_light_add=False)
    np.testing.assert_allclose(sample["arcs"], image, atol=2e-5 * image.max())


@pytest.mark.parametrize("preset", ["seed", "survey"])
def test_source_target_is_the_redrawn_galaxy(preset):
    """The stored target has the shape and position of the GalSim galaxy re-drawn for its seed
    (its flux is scaled so that the arcs peak at 1)."""
    p = get_preset(preset)
    sim = LensSimulator(preset)
    sample = sim.simulate(13)
    profile, _, _, (sx, sy) = sim.source_for(13)
    drawn = profile.shift(-sx, sy).drawImage(nx=p.source_npix, ny=p.source_npix,
                                            scale=p.source_pixel_scale).array
    target = sample["source"]
    i, j = np.meshgrid(np.arange(p.source_npix), np.arange(p.source_npix))
    x, y = lensmodel.pixel_to_angle(i, j, p.source_npix, p.source_pixel_scale)
    for coordinate in (x, y):
        centroid_target = (coordinate * target).sum() / target.sum()
        centroid_drawn = (coordinate * drawn).sum() / drawn.sum()
        assert centroid_target == pytest.approx(centroid_drawn, abs=0.2 * p.source_pixel_scale)
    normalised = target / target.sum() - drawn / drawn.sum()
    assert np.abs(normalised).sum() < 0.1


def test_source_target_conserves_flux():
    fine = np.zeros((64, 64))
    fine[30:34, 28:36] = 1.0
    target = source_target(fine, 0.02, 0.08)
    assert target.shape == (32, 32)
    assert target.sum() == pytest.approx(fine.sum() * 0.02**2, rel=1e-3)
