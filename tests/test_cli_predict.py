"""Tests of ``astro-delens predict`` and ``astro-delens reconstruct`` (tiny untrained models)."""

import shutil

import numpy as np
import pytest

from astropy.io import fits
from astropy.table import QTable
from astropy.wcs import WCS

from astro_delens.cli import main
from astro_delens.data import example_path, example_truth

pytest.importorskip("keras")

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    from astro_delens.data._devtools import make_untrained_family

    return str(make_untrained_family(tmp_path_factory.mktemp("models") / "tiny"))


@pytest.fixture
def batch(tmp_path):
    """Two good files, a garbage file, a missing one and an array without pixel scale."""
    good1 = tmp_path / "lens_a.fits"
    good2 = tmp_path / "lens_b.fits"
    shutil.copy(example_path(), good1)
    shutil.copy(example_path(), good2)
    garbage = tmp_path / "garbage.fits"
    garbage.write_bytes(b"\x00not fits" * 500)
    bare = tmp_path / "bare.fits"
    fits.PrimaryHDU(fits.getdata(example_path(), "SCI")).writeto(bare)
    return {"good": [str(good1), str(good2)], "bad": [str(garbage), str(tmp_path / "nope.fits"),
                                                      str(bare)]}


def _lines(text, word):
    return [line for line in text.splitlines() if f": {word}:" in line]


def test_predict_mixed_batch(batch, family, tmp_path, capsys):
    out = tmp_path / "results.ecsv"
    files = [batch["good"][0], *batch["bad"], batch["good"][1]]
    status = main(["predict", *files, "--model", family, "-o", str(out)])
    err = capsys.readouterr().err
    assert status == 1
    errors = _lines(err, "error")
    assert len(errors) == 3
    for bad, line in zip(batch["bad"], errors):
        assert line.startswith(f"astro-delens predict: {bad}: error: ")
    assert "cannot read" in errors[0] and "no such file" in errors[1]
    assert "pixel_scale" in errors[2]
    table = QTable.read(out)
    assert list(table["input"]) == batch["good"]
    assert np.all(np.isfinite(table["theta_E"]))
    assert table["center"][0].separation(example_truth()["center"]).arcsec < 1.0
    assert table.meta["model"]["name"] == "tiny"
    assert "resample" in [s["step"] for s in table.meta["preprocessing"][batch["good"][0]]]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".results")]  # no temp file
    failures = QTable.read(tmp_path / "results.failures.ecsv")
    assert list(failures["input"]) == batch["bad"]
    assert failures["error"][1].startswith("FileNotFoundError")
    # a run without failures leaves no failures table behind
    assert main(["predict", batch["good"][0], "--model", family, "-o", str(out),
                 "--overwrite"]) == 0
    assert not (tmp_path / "results.failures.ecsv").exists()


def test_predict_all_good_and_usage_errors(batch, family, tmp_path, capsys):
    out = tmp_path / "ok.ecsv"
    assert main(["predict", batch["good"][0], "--model", family, "-o", str(out)]) == 0
    bare = batch["bad"][2]
    assert main(["predict", bare, "--pixel-scale", "0.1", "--x", "47.5", "--y", "47.5",
                 "--model", family, "-o", str(tmp_path / "bare.ecsv")]) == 0
    assert main(["predict", bare, "--noise", "NOISE", "--pixel-scale", "0.1", "--model", family,
                 "-o", str(tmp_path / "bare2.ecsv")]) == 1
    assert "noise: no HDU 'NOISE'" in capsys.readouterr().err
    truth = example_truth()["center"]
    assert main(["predict", batch["good"][0], "--ra", str(truth.ra.deg), "--dec",
                 str(truth.dec.deg), "--size", "7", "--model", family,
                 "-o", str(tmp_path / "sky.ecsv")]) == 0
    sky = QTable.read(tmp_path / "sky.ecsv")
    steps = sky.meta["preprocessing"][batch["good"][0]]
    assert steps[1]["size_arcsec"] == 7.0
    capsys.readouterr()
    usage = [
        ["predict", batch["good"][0], "--model", family, "-o", str(out)],  # exists
        ["predict", batch["good"][0], "--model", family, "-o", str(tmp_path / "x.csv")],
        ["predict", batch["good"][0], "--ra", "10", "--model", family,
         "-o", str(tmp_path / "a.ecsv")],
        ["predict", batch["good"][0], "--ra", "10", "--dec", "2", "--x", "3", "--y", "4",
         "--model", family, "-o", str(tmp_path / "b.ecsv")],
        ["predict", batch["good"][0], "--size", "big", "--model", family,
         "-o", str(tmp_path / "c.ecsv")],
        ["predict", batch["good"][0], "--model", str(tmp_path / "no_model"),
         "-o", str(tmp_path / "d.ecsv")],
    ]
    for argv in usage:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("astro-delens predict: error:")
    assert main(["predict", batch["good"][0], "--model", family, "-o", str(out),
                 "--overwrite"]) == 0


def test_reconstruct_mixed_batch(batch, family, tmp_path, capsys):
    outdir = tmp_path / "sources"
    files = [batch["good"][0], batch["bad"][0], batch["good"][1], batch["bad"][1]]
    status = main(["reconstruct", *files, "--noise", "NOISE", "--model", family,
                   "--outdir", str(outdir), "--plot"])
    err = capsys.readouterr().err
    assert status == 1
    assert len(_lines(err, "error")) == 2
    names = sorted(p.name for p in outdir.iterdir())
    assert names == ["lens_a_source.fits", "lens_a_source.png", "lens_b_source.fits",
                     "lens_b_source.png"]
    with fits.open(outdir / "lens_a_source.fits") as hdul:
        h = hdul[0].header
        assert h["ADMODEL"] == "tiny" and h["ADKIND"] == "reconstructor"
        assert len(h["ADSHAW"]) == 64 and "ADSTEPS" in h and "HISTORY" in h
        w = WCS(h)
        assert w.has_celestial and h["CTYPE1"] == "RA---TAN"
        assert hdul[0].data.shape == (96, 96) and np.all(np.isfinite(hdul[0].data))
        assert [h.name for h in hdul[1:4]] == ["RELENS_MODEL", "LENS_LIGHT", "RESIDUALS"]
        assert h["RLCHI2"] > 0 and isinstance(h["RLFLAG"], bool)
        assert hdul["RESIDUALS"].data.shape == hdul["RELENS_MODEL"].data.shape
    # existing outputs need --overwrite (a usage error, before any work)
    assert main(["reconstruct", batch["good"][0], "--model", family,
                 "--outdir", str(outdir)]) == 2
    assert main(["reconstruct", batch["good"][0], "--model", family,
                 "--outdir", str(outdir), "--overwrite"]) == 0


def test_reconstruct_by_inversion(tmp_path, capsys):
    outdir = tmp_path / "inverted"
    status = main(["reconstruct", str(example_path()), "--hdu", "SCI", "--noise", "NOISE",
                   "--psf", "PSF", "--model", "survey", "--method", "inversion",
                   "--outdir", str(outdir)])
    assert status == 0, capsys.readouterr().err
    with fits.open(outdir / "example_lens_source.fits") as hdul:
        h = hdul[0].header
        assert h["ADSRCMTH"] == "inversion"
        assert [x.name for x in hdul[1:4]] == ["RELENS_MODEL", "LENS_LIGHT", "RESIDUALS"]
        assert 0.8 < h["RLCHI2"] < 1.6  # the inversion explains the example


def test_reconstruct_output_names_are_unique():
    from astro_delens.commands.reconstruct import output_names

    assert output_names(["a/x.fits", "b/x.fits", "c/y.fits.gz", "x.fits[SCI]"]) == \
        ["x", "x-2", "y", "x-3"]


def test_predict_field_check_can_be_switched_off(batch, family, tmp_path, capsys):
    with_check, without = tmp_path / "with.ecsv", tmp_path / "without.ecsv"
    assert main(["predict", batch["good"][0], "--model", family, "-o", str(with_check)]) == 0
    assert main(["predict", batch["good"][0], "--model", family, "-o", str(without),
                 "--no-field-check"]) == 0
    capsys.readouterr()
    a, b = QTable.read(with_check), QTable.read(without)
    # the same estimate; the check may only widen the Einstein radius's interval
    assert a["theta_E"][0] == b["theta_E"][0]
    assert a["theta_E_err"][0] >= b["theta_E_err"][0]
    assert "field_dependence" not in str(b["flags"][0])


def test_demo_writes_its_files(family, tmp_path, capsys):
    """The README's first command, with tiny networks (the shipped ones: test_shipped_models)."""
    import warnings

    from astro_delens.exceptions import AstroDelensWarning

    out = tmp_path / "demo"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstroDelensWarning)  # untrained: out of domain
        assert main(["demo", "--outdir", str(out), "--model", family]) == 0
    text = capsys.readouterr().out
    assert "theta_E" in text and "re-lensing check: reduced chi^2" in text
    for name in ("example_parameters.ecsv", "example_source.fits", "example.png",
                 "example_relens.png"):
        assert (out / name).stat().st_size > 0, name
    assert QTable.read(out / "example_parameters.ecsv")["theta_E"].unit == "arcsec"
