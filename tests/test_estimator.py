"""Tests of LensParameterEstimator, SourceReconstructor and their results.

The networks are tiny untrained ones (astro_delens.data._devtools): these tests
check the plumbing, the units, the coordinate conversions and the provenance,
not the accuracy of trained models (that is the job of ``astro-delens evaluate``).
"""

import contextlib
import warnings

import numpy as np
import pytest

import astropy.units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import QTable
from astropy.wcs import WCS

from astro_delens import LensParameterEstimator, SourceReconstructor, lensmodel
from astro_delens.data import example_path, example_truth
from astro_delens.data._devtools import load_real_lens, real_lens_entries, shared_data_dir
from astro_delens.exceptions import AstroDelensWarning, OutOfDomainWarning

pytest.importorskip("keras")

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    from astro_delens.data._devtools import make_untrained_family

    return make_untrained_family(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def est(family):
    return LensParameterEstimator(family)


@pytest.fixture(scope="module")
def rec(family):
    return SourceReconstructor(family)


@contextlib.contextmanager
def quiet():
    """Untrained networks give out-of-prior estimates: silence those warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroDelensWarning)
        yield


class Oracle:
    """Stands in for the network: returns given parameters (physical units)."""

    def __init__(self, loaded, mean, std):
        self._loaded, self.mean, self.std = loaded, np.asarray(mean), np.asarray(std)

    def __getattr__(self, name):
        return getattr(self._loaded, name)

    def predict(self, image, noise_map, mask=None, batch_size=256, symmetries=8):
        n = len(image)
        return np.tile(self.mean, (n, 1)), np.tile(self.std, (n, 1))


def _truth_vector():
    t = example_truth()["params"]
    return np.array([t[name] for name in lensmodel.PARAMETER_NAMES])


# --------------------------------------------------------------------------
# the estimator
# --------------------------------------------------------------------------
def test_predict_gives_a_table_with_units_and_provenance(est):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroDelensWarning)
        result = est.predict(example_path(), noise="NOISE", psf="PSF")
    table = result.to_table()
    assert isinstance(table, QTable) and len(table) == 1
    for name in lensmodel.PARAMETER_NAMES:
        assert name in table.colnames and name + "_err" in table.colnames
        assert np.all(table[name + "_err"] >= 0 * table[name + "_err"])
    assert table["theta_E"].unit == u.arcsec and table["center_x_err"].unit == u.arcsec
    assert table["position_angle"].unit == u.deg and table["shear_angle_err"].unit == u.deg
    assert np.isscalar(table["gamma"][0]) or table["gamma"].unit is None
    for name in ("axis_ratio", "position_angle", "shear", "shear_angle"):
        assert np.isfinite(table[name][0]) and np.isfinite(table[name + "_err"][0])
    assert isinstance(table["center"], SkyCoord)
    assert table["center"][0].separation(SkyCoord(150.1163, 2.2057, unit="deg")) < 1 * u.arcsec
    assert table["input"][0] == "example_lens.fits[SCI]"
    meta = table.meta
    assert meta["model"]["name"] == "tiny"
    assert len(meta["model"]["sha256"]["model.weights.h5"]) == 64
    steps = [s["step"] for s in meta["preprocessing"]["example_lens.fits[SCI]"]]
    assert steps[:5] == ["read", "cutout", "background", "noise", "resample"] and "psf" in steps
    assert set(result.parameters) == set(lensmodel.PARAMETER_NAMES)
    assert "LensEstimate" in repr(result)


def test_table_conversions_recover_the_true_sky_geometry(est, monkeypatch):
    """An oracle network returning the truth on the prepared (north-up) grid gives the
    example's true lens centre on the sky and position angle east of north."""
    truth = example_truth()
    mean = _truth_vector()
    std = np.array([0.05, 0.05, 0.02, 0.02, 0.01, 0.01, 0.01, 0.01])
    monkeypatch.setattr(est, "_model", Oracle(est._model, mean, std))
    result = est.predict(example_path(), noise="NOISE", psf="PSF")
    assert result.flags == ()
    row = result.to_table()[0]
    assert row["center"].separation(truth["center"]) < 2 * u.mas
    assert row["position_angle"].to_value(u.deg) == pytest.approx(
        truth["position_angle"].to_value(u.deg), abs=1e-3)
    assert row["axis_ratio"] == pytest.approx(truth["axis_ratio"], abs=1e-5)
    header = fits.getheader(example_path())
    assert row["shear"] == pytest.approx(header["TSHEAR"], abs=1e-5)
    assert row["shear_angle"].to_value(u.deg) == pytest.approx(header["TSHPA"], abs=1e-3)
    # errors propagated by sampling agree with linear propagation
    e = np.hypot(mean[2], mean[3])
    pa_err = np.degrees(0.5 * 0.02 / e)
    assert row["position_angle_err"].to_value(u.deg) == pytest.approx(pa_err, rel=0.15)
    # the lens centre in input pixels: the example is turned by 30 deg
    x, y = result.center_pixel
    w = WCS(fits.getheader(example_path(), "SCI"))
    sky = w.pixel_to_world(x, y)
    assert sky.separation(truth["center"]) < 5 * u.mas


def test_estimates_outside_the_prior_are_flagged(est, monkeypatch):
    mean = _truth_vector()
    mean[0] = 4.5  # theta_E above the survey prior's 3"
    monkeypatch.setattr(est, "_model", Oracle(est._model, mean, np.full(8, 0.01)))
    with pytest.warns(OutOfDomainWarning) as record:
        result = est.predict(example_path(), noise="NOISE")
    codes = {w.message.code for w in record if issubclass(w.category, OutOfDomainWarning)}
    assert codes == {"prior", "field"}
    assert set(result.flags) == {"prior", "field"}
    assert result.to_table()["flags"][0] == "prior,field"


class FieldDrivenOracle(Oracle):
    """A network read by a neighbour: theta_E doubles when the outer field is visible."""

    def predict(self, image, noise_map, mask=None, batch_size=256, symmetries=8):
        mean, std = super().predict(image, noise_map, mask, batch_size, symmetries)
        n = image.shape[-1]
        masked_edge = np.asarray(mask)[:, n // 2, 0] if mask is not None else np.zeros(len(mean))
        mean = mean.copy()
        mean[:, 0] = np.where(masked_edge, mean[:, 0], 2 * mean[:, 0])
        return mean, std


def test_estimates_that_depend_on_the_field_are_flagged_and_widened(family):
    est = LensParameterEstimator(family)
    mean = _truth_vector()
    mean[0] = 1.0
    est._model = FieldDrivenOracle(est._model, mean, np.full(8, 0.01))
    with pytest.warns(OutOfDomainWarning, match="depends on what lies far") as record:
        result = est.predict(example_path(), noise="NOISE")
    assert "field_dependence" in result.flags
    assert {w.message.code for w in record} >= {"field_dependence"}
    # full field 2.0", every smaller square 1.0": the interval covers both
    assert result.mean[0] == pytest.approx(2.0)
    assert result.std[0] == pytest.approx(np.hypot(0.01, 0.5))
    assert result.std[1] == pytest.approx(0.01)
    # without the check: no flag, the network's own interval
    quiet_est = LensParameterEstimator(family, field_check=False)
    quiet_est._model = est._model
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfDomainWarning)
        plain = quiet_est.predict(example_path(), noise="NOISE")
    assert "field_dependence" not in plain.flags and plain.std[0] == pytest.approx(0.01)
    with pytest.raises(TypeError, match="field_check"):
        LensParameterEstimator(family, field_check="yes")


def test_field_dependence_threshold_comes_from_the_model(family):
    from astro_delens.fieldcheck import DEFAULT_THRESHOLD

    est = LensParameterEstimator(family)
    stored = (est._model.config.get("field_check") or {}).get("threshold", DEFAULT_THRESHOLD)
    assert est.field_check_threshold == pytest.approx(stored)


@pytest.mark.parametrize("form", ["path", "hdulist", "ccddata"])
def test_same_estimate_for_every_form(est, form):
    reference = est.prepare(example_path(), noise="NOISE")
    if form == "path":
        data, kw = example_path(), {"noise": "NOISE"}
    elif form == "hdulist":
        hdul = fits.open(example_path())
        data, kw = hdul, {"hdu": "SCI", "noise": hdul["NOISE"].data}
    else:
        with fits.open(example_path()) as hdul:
            data = CCDData(hdul["SCI"].data, wcs=WCS(hdul["SCI"].header), unit="adu",
                           uncertainty=StdDevUncertainty(hdul["NOISE"].data))
        kw = {}
    try:
        with quiet():
            a = est.predict_prepared([reference])[0]
            b = est.predict(data, **kw)
    finally:
        if form == "hdulist":
            data.close()
    np.testing.assert_allclose(b.mean, a.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.std, a.std, rtol=1e-5, atol=1e-6)


def test_predict_many_rows_names_and_failures(est):
    image = fits.getdata(example_path(), "SCI")
    items = [example_path(), (image, {"pixel_scale": 0.1 * u.arcsec}), "missing.fits"]
    with quiet():
        with pytest.raises(FileNotFoundError):
            est.predict_many(items)
        table = est.predict_many(items, on_error="warn", noise=None)
    assert len(table) == 3
    assert list(table["input"]) == [example_path(), "ndarray[1]", "missing.fits"]
    assert np.isfinite(table["theta_E"][:2]).all() and np.isnan(table["theta_E"][2])
    assert table["error"][2].startswith("FileNotFoundError") and table["error"][0] == ""
    assert table["flags"][2] == "error"
    assert np.isnan(table["center"][1].ra.deg) and np.isfinite(table["center"][0].ra.deg)
    with pytest.raises(TypeError, match="unexpected keyword"):
        est.predict_many([example_path()], pixelscale=0.1)
    with pytest.raises(ValueError, match="names"):
        est.predict_many([example_path()], names=["a", "b"])


def test_model_errors(family):
    from astro_delens.nn.registry import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="model"):
        LensParameterEstimator(family / "nowhere")
    with pytest.raises(TypeError, match="model"):
        LensParameterEstimator(3)
    with pytest.raises(ValueError, match="reconstructor"):
        LensParameterEstimator(family / "reconstructor")


# --------------------------------------------------------------------------
# the reconstructor
# --------------------------------------------------------------------------
def test_reconstruct_returns_ccddata_with_source_plane_wcs(rec, monkeypatch):
    mean = _truth_vector()
    monkeypatch.setattr(rec.estimator, "_model", Oracle(rec.estimator._model, mean,
                                                        np.full(8, 0.01)))
    with quiet():
        source = rec.reconstruct(example_path(), noise="NOISE", psf="PSF")
    preset = rec.preset
    assert isinstance(source, CCDData)
    assert source.shape == (preset.source_npix, preset.source_npix)
    assert source.unit == u.dimensionless_unscaled
    w = source.wcs
    assert list(w.wcs.ctype) == ["RA---TAN", "DEC--TAN"]
    np.testing.assert_allclose(w.wcs.cdelt, np.array([-1, 1]) * preset.source_pixel_scale / 3600)
    c = (preset.source_npix - 1) / 2.0
    assert w.pixel_to_world(c, c).separation(example_truth()["center"]) < 2 * u.mas
    h = source.meta
    assert h["ADMODEL"] == "tiny" and h["ADKIND"] == "reconstructor"
    assert len(h["ADSHAW"]) == 64 and h["ADESTMOD"] == "tiny"
    assert h["ADLENSRC"] == "estimator tiny" and "resample" in h["ADSTEPS"]
    assert any("astro_delens step" in str(v) for v in h["HISTORY"])
    hdu = source.to_hdu()[0]
    assert hdu.header["ADMODEL"] == "tiny" and "CTYPE1" in hdu.header


def test_reconstruct_without_wcs_gives_linear_offsets(rec):
    image = fits.getdata(example_path(), "SCI")
    with quiet():
        src = rec.reconstruct(image, pixel_scale=0.1 * u.arcsec,
                              lens_center=(0.2, -0.1) * u.arcsec)
        many = rec.reconstruct_many([example_path(), "missing.fits"], on_error="warn")
    assert list(src.wcs.wcs.ctype) == ["XOFFSET", "YOFFSET"]
    c = (src.shape[0] - 1) / 2.0
    np.testing.assert_allclose(src.wcs.pixel_to_world_values(c, c), (0.2, -0.1), atol=1e-9)
    assert src.meta["ADLENSRC"] == "given offsets"
    assert isinstance(many[0], CCDData) and many[1] is None
    with pytest.raises(ValueError, match="lens_center"):
        rec.reconstruct(image, pixel_scale=0.1 * u.arcsec, lens_center=SkyCoord(1, 2, unit="deg"))


# --------------------------------------------------------------------------
# real lenses (shared data, beside the repository)
# --------------------------------------------------------------------------
@pytest.mark.skipif(shared_data_dir() is None, reason="../shared/data is absent")
def test_every_real_lens_runs_end_to_end(est, rec):
    entries = real_lens_entries()
    assert len(entries) > 30
    items = [load_real_lens(e) for e in entries]
    names = [e["name"] for e in entries]
    with quiet():
        table = est.predict_many(items, names=names)
        sources = rec.reconstruct_many(items)
    assert list(table["input"]) == names
    for name in lensmodel.PARAMETER_NAMES:
        assert np.all(np.isfinite(table[name])) and np.all(np.isfinite(table[name + "_err"]))
    with_wcs = np.array([bool(e.get("wcs")) for e in entries])
    assert np.all(np.isfinite(table["center"].ra.deg[with_wcs]))
    assert np.all(np.isnan(table["center"].ra.deg[~with_wcs]))
    for e, src in zip(entries, sources):
        assert src.shape == (rec.preset.source_npix,) * 2 and np.all(np.isfinite(src.data))
        assert src.wcs.wcs.ctype[0] == ("RA---TAN" if e.get("wcs") else "XOFFSET")
