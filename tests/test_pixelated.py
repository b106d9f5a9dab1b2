"""Tests of the regularised pixelated source inversion and its evidence check."""

import numpy as np
import pytest

from astro_delens.forward import EvidenceCheck, PixelatedSource, evidence_check, invert_pixelated
from astro_delens.presets import get_preset
from lens_fixtures import survey_lens  # noqa: F401 (a fixture)

PRESET = get_preset("survey")
GRID = (PRESET.pixel_scale, PRESET.source_npix, PRESET.source_pixel_scale)


def _invert(sample, params, **kwargs):
    return invert_pixelated(sample["image"], sample["noise_map"], params, *GRID,
                            psf=sample["psf"], **kwargs)


def _source_correlation(pred, true):
    region = true > 0.05 * true.max()
    return np.corrcoef(pred[region], true[region])[0, 1]


def test_inversion_at_the_true_lens_explains_the_data(survey_lens):
    s = survey_lens
    inv = _invert(s, s["params"], reference_fwhm=PRESET.source_reference_fwhm)
    assert isinstance(inv, PixelatedSource)
    assert inv.source.shape == s["source"].shape
    assert 0.8 < inv.reduced_chi2 < 1.3
    assert _source_correlation(inv.source, s["source"]) > 0.6
    # the parts add up to the model, and the residuals are the normalised difference
    np.testing.assert_allclose(inv.arcs_model + inv.lens_light_model + inv.background_model,
                               inv.model_image)
    used = inv.used
    np.testing.assert_allclose(inv.residuals[used],
                               (s["image"] - inv.model_image)[used] / s["noise_map"][used])
    assert inv.regularization > 0 and np.isfinite(inv.log_evidence)


def test_wrong_einstein_radius_has_lower_evidence_and_is_flagged(survey_lens):
    s = survey_lens
    wrong = s["params"].copy()
    wrong[0] *= 1.2
    at_truth = evidence_check(s["image"], s["noise_map"], s["params"], *GRID, psf=s["psf"])
    at_wrong = evidence_check(s["image"], s["noise_map"], wrong, *GRID, psf=s["psf"])
    assert isinstance(at_truth, EvidenceCheck)
    assert not at_truth.flag and at_truth.delta_log_evidence < 0
    assert at_wrong.flag and at_wrong.delta_log_evidence > at_wrong.threshold
    assert at_wrong.preferred_theta_e < wrong[0]  # the step towards the truth wins
    assert at_truth.theta_e[at_truth.answer_index] == pytest.approx(s["params"][0])


def test_fixed_regularization_and_an_assumed_psf(survey_lens):
    s = survey_lens
    weak = invert_pixelated(s["image"], s["noise_map"], s["params"], *GRID, regularization=1e-6)
    strong = invert_pixelated(s["image"], s["noise_map"], s["params"], *GRID, regularization=1e6)
    assert weak.regularization == 1e-6
    assert "assumed Gaussian PSF" in weak.psf_used
    # a weakly regularised source follows the noise: lower chi^2, rougher source
    assert weak.chi2 < strong.chi2
    rough = [np.abs(np.diff(r.source, axis=1)).sum() for r in (weak, strong)]
    assert rough[0] > rough[1]


def test_masked_pixels_are_left_out(survey_lens):
    s = survey_lens
    mask = np.zeros(s["image"].shape, bool)
    mask[:10] = True
    inv = _invert(s, s["params"], mask=mask, mask_other_objects=False)
    assert not inv.used[:10].any()
    assert np.all(inv.residuals[:10] == 0)


@pytest.mark.parametrize("kwargs, match", [
    ({"regularization": 0.0}, "regularization"),
    ({"supersampling": 0}, "supersampling"),
])
def test_argument_errors(survey_lens, kwargs, match):
    s = survey_lens
    with pytest.raises(ValueError, match=match):
        _invert(s, s["params"], **kwargs)


def test_evidence_check_steps_must_be_positive(survey_lens):
    s = survey_lens
    with pytest.raises(ValueError, match="steps"):
        evidence_check(s["image"], s["noise_map"], s["params"], *GRID, steps=(-1.0,))
