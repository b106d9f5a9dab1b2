"""Averaging the networks' answers over the symmetries of the square."""

import numpy as np
import pytest

from astro_delens.nn.augment import (
    inverse_transform_image,
    inverse_transform_params,
    symmetries_of_square,
    transform_image,
    transform_params,
)


def test_inverse_transforms_undo_the_transforms():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(3, 5, 5))
    params = rng.normal(size=(3, 8))
    seen = set()
    for k, flip in symmetries_of_square(8):
        seen.add(transform_image(image, k, flip).tobytes())
        np.testing.assert_array_equal(
            inverse_transform_image(transform_image(image, k, flip), k, flip), image)
        np.testing.assert_allclose(
            inverse_transform_params(transform_params(params, k, flip), k, flip), params)
    assert len(seen) == 8  # eight distinct symmetries
    assert symmetries_of_square(1) == [(0, False)]
    assert [f for _, f in symmetries_of_square(4)] == [False] * 4
    with pytest.raises(ValueError, match="symmetries"):
        symmetries_of_square(3)


@pytest.fixture(scope="module")
def seed_models():
    from astro_delens.nn.registry import load_estimator, load_reconstructor

    return load_estimator("seed"), load_reconstructor("seed")


def _smooth_image(n, seed):
    """An asymmetric arc-like image: a ring segment plus a blob, off centre."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n] - (n - 1) / 2.0
    r, phi = np.hypot(x - 2, y + 1), np.arctan2(y + 1, x - 2)
    ring = np.exp(-0.5 * ((r - 12) / 1.5) ** 2) * (1 + np.cos(phi - 0.7))
    blob = 0.5 * np.exp(-0.5 * ((x + 6) ** 2 + (y - 9) ** 2) / 4.0)
    return ring + blob + 0.01 * rng.normal(size=(n, n))


def test_averaged_estimates_turn_with_the_image(seed_models):
    est, _ = seed_models
    n = est.preset.npix
    image = _smooth_image(n, 1)
    noise = np.full((n, n), 0.01)
    mean, std = est.predict(image, noise, symmetries=8)
    single, _ = est.predict(image, noise, symmetries=1)
    for k, flip in [(1, False), (2, True), (3, True)]:
        m, s = est.predict(transform_image(image, k, flip).copy(), noise, symmetries=8)
        np.testing.assert_allclose(m, transform_params(mean, k, flip), atol=2e-5)
        np.testing.assert_allclose(s, np.abs(transform_params(std, k, flip)), rtol=1e-4)
    # the network alone is not equivariant, so the average is not the identity's answer
    assert np.max(np.abs(single - mean)) > 1e-4


def test_symmetries_one_is_the_plain_network(seed_models):
    from astro_delens.nn import normalization as norm

    est, _ = seed_models
    n = est.preset.npix
    image = _smooth_image(n, 2)
    x, _ = norm.normalize_inputs(image, None)
    out = est._run(x[None], 8)
    mean, std = est.predict(image, None, symmetries=1, calibrated=False)
    np.testing.assert_allclose(mean[0], norm.denormalize_params(out[0, :8], est.stats))


def test_averaged_sources_turn_with_the_image(seed_models):
    _, rec = seed_models
    n = rec.preset.npix
    image = _smooth_image(n, 3)
    noise = np.full((n, n), 0.01)
    source = rec.predict(image, noise, symmetries=8)[0]
    for k, flip in [(1, False), (0, True)]:
        turned = rec.predict(transform_image(image, k, flip).copy(), noise, symmetries=8)[0]
        np.testing.assert_allclose(turned, transform_image(source, k, flip),
                                   atol=1e-5 * np.abs(source).max())


def test_front_ends_check_and_record_symmetries():
    from astro_delens import LensParameterEstimator, SourceReconstructor

    with pytest.raises(ValueError, match="symmetries"):
        LensParameterEstimator("seed", symmetries=2)
    rec = SourceReconstructor("seed", symmetries=4)
    assert rec.symmetries == 4 and rec.estimator.symmetries == 4
    assert rec.model_info["symmetries"] == 4
    assert LensParameterEstimator("seed").model_info["symmetries"] == 8


def test_results_record_the_symmetries():
    import warnings

    import astropy.units as u

    from astro_delens import SourceReconstructor

    image = _smooth_image(64, 4)
    rec = SourceReconstructor("seed", symmetries=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = rec.reconstruct(image, pixel_scale=0.08 * u.arcsec, noise=0.01, check=False)
        table = rec.estimator.predict(image, pixel_scale=0.08 * u.arcsec,
                                      noise=0.01).to_table()
    assert source.meta["ADSYMM"] == 1
    assert table.meta["model"]["symmetries"] == 1
