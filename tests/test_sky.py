"""Tests of the ``sky`` preset's simulator: native pixel scales, a crowded sky, prepare_cutout."""

import warnings

import numpy as np
import pytest

import astropy.units as u

from astro_delens import lensmodel
from astro_delens.cutout import prepare_cutout
from astro_delens.nn.normalization import MASKED_NOISE, normalize_inputs
from astro_delens.presets import get_preset
from astro_delens.training.simulate import LensSimulator, make_simulator
from astro_delens.training.sky import NATIVE_SCALES, SkySimulator

SKY = get_preset("sky")


@pytest.fixture(scope="module")
def sim():
    return make_simulator("sky")


@pytest.fixture(scope="module")
def samples(sim):
    return [sim.simulate(seed) for seed in range(12)]


def test_make_simulator_picks_the_presets_simulator():
    assert isinstance(make_simulator("sky"), SkySimulator)
    assert type(make_simulator("survey")) is LensSimulator


def test_sky_priors_allow_off_centre_lenses_and_keep_the_survey_lenses():
    sky, survey = lensmodel.get_priors("sky"), lensmodel.get_priors("survey")
    assert sky["center_x"].bounds == (-0.5, 0.5) and sky["center_y"].bounds == (-0.5, 0.5)
    for name in ("theta_E", "gamma", "e1", "e2", "gamma1", "gamma2"):
        assert sky[name] is survey[name]
    assert (SKY.npix, SKY.pixel_scale) == (get_preset("survey").npix,
                                           get_preset("survey").pixel_scale)


def test_samples_are_prepared_cutouts_on_the_model_grid(samples):
    for s in samples:
        assert s["image"].shape == (SKY.npix, SKY.npix) == s["noise_map"].shape
        assert s["arcs"].shape == s["lens_light"].shape == (SKY.npix, SKY.npix)
        assert s["source"].shape == (SKY.source_npix, SKY.source_npix)
        masked = ~np.isfinite(s["noise_map"])
        # masked pixels: zero image, NaN noise, which the normalisation reads as masked
        assert np.all(s["image"][masked] == 0)
        assert np.all(s["noise_map"][~masked] > 0)
        x, _ = normalize_inputs(s["image"], s["noise_map"])
        assert np.all(np.isfinite(x)) and np.all(x[..., 1][masked] == MASKED_NOISE)
        assert s["meta"]["pixel_scale"] in NATIVE_SCALES
        assert np.isclose(s["arcs"].max(), 1.0)
    scales = {s["meta"]["pixel_scale"] for s in samples}
    assert len(scales) >= 3  # several native pixel scales in a dozen lenses


def test_the_sky_is_crowded_and_varied(samples):
    metas = [s["meta"] for s in samples]
    assert sum(m["n_field_galaxies"] + m["n_stars"] > 0 for m in metas) >= 6
    assert any(m["noise_given"] for m in metas) and not all(m["noise_given"] for m in metas)
    draws = [SkySimulator("sky")._instrument(np.random.default_rng(k)) for k in range(40)]
    widths = np.array([scale * npix for scale, _, _, _, npix in draws])
    assert 0.05 < np.mean(widths < SKY.field_of_view) < 0.5  # a fifth are smaller than the grid
    ratios = [m["lens_light_ratio"] for m in metas]
    assert max(ratios) > 3 and min(r for r in ratios if r > 0) >= 0.3


def test_simulate_is_prepare_cutout_of_the_native_image(sim):
    native = sim.simulate_native(5)
    meta = native["meta"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_cutout(native["native_image"], "sky",
                                  pixel_scale=meta["pixel_scale"] * u.arcsec,
                                  noise=native["native_noise_map"] if meta["noise_given"]
                                  else None)
    sample = sim.simulate(5)
    np.testing.assert_allclose(sample["image"], prepared.image, atol=1e-5)
    np.testing.assert_array_equal(~np.isfinite(sample["noise_map"]), prepared.mask)
    np.testing.assert_array_equal(sample["params"], native["params"])


def test_field_objects_can_be_left_out_with_the_same_lens(sim):
    crowded = sim.simulate_native(3)
    clean_sim = make_simulator("sky")
    clean_sim.field_objects = False
    clean = clean_sim.simulate_native(3)
    np.testing.assert_array_equal(crowded["params"], clean["params"])
    np.testing.assert_allclose(crowded["native_arcs"], clean["native_arcs"])
    assert crowded["meta"]["n_field_galaxies"] + crowded["meta"]["n_stars"] > 0
    assert np.any(crowded["native_field"]) and not np.any(clean["native_field"])


def test_the_lens_centre_follows_the_package_orientation(sim):
    # the lens light peaks where params puts the lens centre (x east, y north)
    for seed in range(20):
        s = sim.simulate(seed)
        if s["meta"]["lens_light_ratio"] > 5 and abs(s["params"][4]) > 0.2:
            break
    peak = np.unravel_index(np.argmax(s["lens_light"]), s["lens_light"].shape)
    x, y = lensmodel.pixel_to_angle(peak[1], peak[0], SKY.npix, SKY.pixel_scale)
    assert abs(x - s["params"][4]) < 0.15 and abs(y - s["params"][5]) < 0.15


def test_sky_dataset_round_trip(tmp_path):
    from astro_delens.training.dataset import generate_dataset, open_dataset

    path = generate_dataset(tmp_path / "sky.h5", "sky", 3, "val", seed=4, progress=False)
    with open_dataset(path) as ds:
        assert ds.preset_name == "sky" and len(ds) == 3
        batch = ds.read([0, 1, 2], fields=["image", "noise_map", "params"])
    assert batch["image"].shape == (3, SKY.npix, SKY.npix)
    assert np.all(np.abs(batch["params"][:, 4:6]) <= 0.5)
