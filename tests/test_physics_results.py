"""The physics attached to the public results: the re-lensing check and refinement."""

import warnings

import numpy as np
import pytest

import astropy.units as u
from astropy.io import fits
from astropy.nddata import CCDData

from astro_delens import LensParameterEstimator, SourceReconstructor
from astro_delens.data._devtools import shared_data_dir
from astro_delens.forward import relens_check
from astro_delens.presets import get_preset
from astro_delens.psf import assumed_psf_fwhm
from astro_delens.source_result import NoCheckError, ReconstructedSource

PRESET = get_preset("survey")


# --------------------------------------------------------------------------
# the PSF assumed without one
# --------------------------------------------------------------------------
@pytest.mark.parametrize("cards, expected, why", [
    ({"PSF_FWHM": (0.15, "[arcsec] PSF FWHM")}, 0.15, "header PSF_FWHM"),
    ({"SEEING": (4.0, "FWHM in pixels")}, 0.2, "header SEEING = 4 pixels"),
    ({"TELESCOP": "JWST", "INSTRUME": "NIRCAM", "FILTER": "F150W"}, 0.0491, "NIRCam F150W"),
    ({"PHOTMODE": "ACS WFC1 F814W MJD#55000"}, 0.10, "HST ACS/WFC"),
    ({"TELESCOP": "HST", "INSTRUME": "WFC3", "DETECTOR": "IR"}, 0.16, "HST WFC3/IR"),
    ({"TELESCOP": "EUCLID", "INSTRUME": "VIS"}, 0.17, "Euclid VIS"),
    ({"TELESCOP": "Unknown"}, np.sqrt(0.07 * 0.25), "training range"),
])
def test_assumed_psf_fwhm_reads_header_then_instrument_then_preset(cards, expected, why):
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    fwhm, reason = assumed_psf_fwhm(header, PRESET, pixel_scale=0.05)
    assert fwhm == pytest.approx(expected, abs=5e-4)
    assert why in reason


# --------------------------------------------------------------------------
# sources carry their re-lensing check
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def example():
    from astro_delens.commands.demo import _example_data

    return _example_data()


@pytest.fixture(scope="module")
def checked(example):
    data, psf = example
    rec = SourceReconstructor("survey")
    return rec, rec.reconstruct(data, psf=psf)


def test_reconstruct_attaches_the_relens_check(checked):
    rec, source = checked
    assert isinstance(source, ReconstructedSource) and isinstance(source, CCDData)
    p = source.prepared
    direct = relens_check(p.image, p.noise_map, source.lens.mean, source.data,
                          PRESET.source_pixel_scale, PRESET.pixel_scale, psf=p.psf, mask=p.mask)
    assert source.reduced_chi2 == pytest.approx(direct.reduced_chi2, rel=1e-6)
    assert source.flag == direct.flag and source.flag_reasons == direct.flag_reasons
    np.testing.assert_allclose(source.model_image, direct.model_image, rtol=1e-6, atol=1e-9)
    assert source.residuals.shape == (PRESET.npix, PRESET.npix)
    assert source.lens_light_model.shape == (PRESET.npix, PRESET.npix)
    assert "supplied by the caller" in source.check.psf_used
    # the lens the check used is the estimator's
    est = LensParameterEstimator("survey").predict_prepared([p])[0]
    np.testing.assert_allclose(source.lens.mean, est.mean, rtol=1e-5)


def test_checked_source_writes_its_images_as_extensions(checked, tmp_path):
    _, source = checked
    path = tmp_path / "src.fits"
    source.write(path)
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        assert names == ["PRIMARY", "RELENS_MODEL", "LENS_LIGHT", "RESIDUALS"]
        assert hdul[0].header["RLCHI2"] == pytest.approx(source.reduced_chi2)
        assert hdul[0].header["RLFLAG"] == source.flag
        np.testing.assert_allclose(hdul["RESIDUALS"].data, source.residuals, rtol=1e-5,
                                   atol=1e-5)
        assert hdul["RESIDUALS"].header["CTYPE1"] == "RA---TAN"
    back = CCDData.read(path)
    np.testing.assert_array_equal(back.data, source.data)


def test_checked_source_plots_and_slices_lose_the_check(checked, tmp_path):
    _, source = checked
    fig = source.plot(tmp_path / "check.png")
    assert len(fig.axes) >= 4 and (tmp_path / "check.png").stat().st_size > 10_000
    assert f"reduced chi^2 {source.reduced_chi2:.2f}" in fig._suptitle.get_text()
    assert source.plot(title="J0000").texts[-1].get_text() == "J0000"
    part = source[10:20, 10:20]
    with pytest.raises(NoCheckError, match="no re-lensing check"):
        part.reduced_chi2


def test_check_off_and_without_psf(example):
    data, _ = example
    rec = SourceReconstructor("survey")
    plain = rec.reconstruct(data, check=False)
    with pytest.raises(NoCheckError):
        plain.flag
    assert plain.lens is not None  # the estimate is still attached
    # without a PSF the check assumes one from the header (the example records PSFFWHM)
    from astro_delens.data import example_path

    src = rec.reconstruct(example_path())
    assert "assumed Gaussian PSF" in src.check.psf_used
    assert "PSFFWHM" in src.check.psf_used
    assert np.isfinite(src.reduced_chi2)


def _challenge_images(kind):
    shared = shared_data_dir()
    folder = None if shared is None else shared / "lens_finding_challenge_sims/space_based" / kind
    if folder is None or not folder.is_dir():
        pytest.skip("../shared/data/lens_finding_challenge_sims absent")
    return sorted(folder.glob("*.fits"))


def test_images_without_a_lens_are_flagged():
    # the networks answer on any image; the check must not pass an image that
    # holds no lens (Lens Finding Challenge samples, another simulator)
    files = _challenge_images("nolens")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sources = SourceReconstructor("survey").reconstruct_many([str(f) for f in files])
    assert len(sources) >= 5
    assert all(src.flag for src in sources), [f.name for f, s in zip(files, sources)
                                              if not s.flag]


def test_check_needs_a_lens_estimate(example):
    data, psf = example
    rec = SourceReconstructor("survey", estimator=None)
    with pytest.warns(UserWarning, match="re-lensing check skipped"):
        src = rec.reconstruct(data, psf=psf, lens_center=(0.0, 0.0) * u.arcsec)
    assert src.check is None
    with pytest.raises(NoCheckError):
        src.residuals


# --------------------------------------------------------------------------
# refinement through the estimator
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def survey_lens():
    from astro_delens.training.simulate import LensSimulator

    sim = LensSimulator("survey")
    for seed in range(40):
        s = sim.simulate(seed)
        if s["meta"]["snr"] >= 40 and s["params"][0] < 2.0:
            return s
    pytest.fail("no bright survey lens among 40 seeds")


def test_predict_refine_records_the_fit(survey_lens):
    s = survey_lens
    est = LensParameterEstimator("survey")
    data = CCDData(s["image"], unit="adu", uncertainty=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = est.predict(data, pixel_scale=PRESET.pixel_scale * u.arcsec, noise=s["noise_map"],
                          psf=s["psf"], background_subtracted=True, mask_contaminants=False,
                          refine=True,
                          refine_options=dict(n_particles=6, n_iterations=3, n_max=4,
                                              polish_iterations=3, systematic_std=0.02))
    assert res.refined and res.refinement.settings["refined"] is True
    assert np.all(res.std >= 0.02)   # the systematic term is added in quadrature
    np.testing.assert_allclose(res.std ** 2, res.refinement.statistical_std ** 2 + 0.02 ** 2)
    assert res.refinement.settings["systematic_std"] == [0.02] * 8
    assert res.refinement.reduced_chi2 <= res.refinement.start_reduced_chi2
    np.testing.assert_allclose(res.mean, res.refinement.params)
    assert not np.allclose(res.network_mean, res.mean)
    table = res.to_table()
    assert bool(table["refined"][0])
    assert table["theta_E_net"][0].to_value(u.arcsec) == pytest.approx(res.network_mean[0])
    assert table["theta_E"][0].to_value(u.arcsec) == pytest.approx(res.mean[0])
    assert "refinement" in table.meta
    # the refined Einstein radius is closer to the truth than the network's
    truth = s["params"][0]
    assert abs(res.mean[0] - truth) < max(abs(res.network_mean[0] - truth), 0.01)


def test_refine_argument_errors():
    est = LensParameterEstimator("survey")
    with pytest.raises(TypeError, match="estimate: expected a LensEstimate"):
        est.refine(np.zeros(8))


# --------------------------------------------------------------------------
# the inversion as the source
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def inverted(example, checked):
    data, psf = example
    _, network_source = checked
    rec = SourceReconstructor("survey", method="inversion")
    return rec.reconstruct(data, psf=psf, lens_center=network_source.lens), network_source


def test_inversion_source_explains_the_example_better_than_the_network(inverted, tmp_path):
    source, network_source = inverted
    assert isinstance(source, ReconstructedSource)
    assert source.shape == network_source.shape
    assert source.meta["ADSRCMTH"] == "inversion" and source.meta["ADREGLAM"] > 0
    # the same lens, a source that explains the data far better
    np.testing.assert_array_equal(source.lens.mean, network_source.lens.mean)
    assert source.reduced_chi2 < 1.6 < network_source.reduced_chi2
    assert "pixelated source inversion" in source.check.notes[0]
    assert "supplied by the caller" in source.check.psf_used
    # its WCS is the network's: the same grid on the sky
    assert source.wcs.wcs.crval.tolist() == network_source.wcs.wcs.crval.tolist()
    source.write(tmp_path / "inv.fits")
    with fits.open(tmp_path / "inv.fits") as hdul:
        assert hdul[0].header["RLCHI2"] == pytest.approx(source.reduced_chi2)
        assert hdul[0].header["ADSRCMTH"] == "inversion"


def test_inversion_needs_a_lens_estimate_and_a_known_method(example):
    data, psf = example
    rec = SourceReconstructor("survey", estimator=None, method="inversion")
    with pytest.raises(ValueError, match="needs a lens estimate"):
        rec.reconstruct(data, psf=psf)
    with pytest.raises(ValueError, match="method: expected one of"):
        SourceReconstructor("survey", method="shapelets")
