"""Tests of astro_delens.training.real_galaxies (GalSim RealGalaxyCatalog sources).

Synthetic catalogs written to tmp_path test the reader everywhere; the small real
COSMOS / AEGIS catalogs of ../shared/data/galaxies (evaluation-only data, never
copied into the repository) are used when present.
"""

import json
import pickle
from pathlib import Path

import galsim
import numpy as np
import pytest
from astropy.io import fits

from astro_delens.training.dataset import generate_dataset, open_dataset, split_indices
from astro_delens.training.real_galaxies import (
    RealGalaxySource, RealGalaxyWarning, clean_stamp, dominating_gaussian_fwhm, find_catalog_file,
    load_source_catalog,
)


GALAXIES = Path(__file__).parents[2] / "shared" / "data" / "galaxies"
needs_shared = pytest.mark.skipif(not GALAXIES.is_dir(),
                                  reason="../shared/data/galaxies (real galaxy stamps) absent")

SCALE = 0.03
GAL_SIGMA, PSF_SIGMA = 0.12, 0.06


def write_catalog(folder, idents=("11", "12", "13"), psf=True, columns=None):
    """A RealGalaxyCatalog of Gaussian galaxies observed through a Gaussian PSF."""
    folder.mkdir(exist_ok=True)
    observed = galsim.Convolve(galsim.Gaussian(sigma=GAL_SIGMA), galsim.Gaussian(sigma=PSF_SIGMA))
    stamp = observed.withFlux(50.0).drawImage(nx=64, ny=64, scale=SCALE, method="no_pixel").array
    psf_stamp = galsim.Gaussian(sigma=PSF_SIGMA).drawImage(nx=31, ny=31, scale=SCALE,
                                                           method="no_pixel").array
    gals = [stamp * (k + 1) for k in range(len(idents))]
    fits.HDUList([fits.PrimaryHDU(gals[0])] + [fits.ImageHDU(g) for g in gals[1:]]).writeto(
        folder / "gals.fits")
    if psf:
        psfs = [fits.ImageHDU(psf_stamp) for _ in idents[1:]]
        fits.HDUList([fits.PrimaryHDU(psf_stamp)] + psfs).writeto(folder / "psfs.fits")
    n = len(idents)
    cols = {
        "IDENT": ("K", [int(i) for i in idents]), "MAG": ("D", [22.0] * n),
        "BAND": ("5A", ["F814W"] * n),
        "WEIGHT": ("D", [1.0] * n), "GAL_FILENAME": ("20A", ["gals.fits"] * n),
        "PSF_FILENAME": ("20A", ["psfs.fits"] * n), "GAL_HDU": ("J", list(range(n))),
        "PSF_HDU": ("J", list(range(n))), "PIXEL_SCALE": ("D", [SCALE] * n),
        "NOISE_MEAN": ("D", [0.0] * n), "NOISE_VARIANCE": ("D", [1e-6] * n),
    }
    if columns is not None:
        cols = {k: v for k, v in cols.items() if k in columns}
    table = fits.BinTableHDU.from_columns([fits.Column(name=k, format=f, array=np.array(v))
                                          for k, (f, v) in cols.items()])
    path = folder / "real_galaxy_catalog_test.fits"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    return path


def sigma_of(profile):
    image = profile.drawImage(nx=96, ny=96, scale=SCALE / 2)
    return image.FindAdaptiveMom().moments_sigma * SCALE / 2


def test_profile_is_the_observed_galaxy_or_deconvolved_on_request(tmp_path):
    catalog = write_catalog(tmp_path / "cat")
    source = RealGalaxySource(catalog, deconvolve="auto")
    assert len(source) == 3 and source.deconvolve is True
    assert source.ids == ["cosmos:11", "cosmos:12", "cosmos:13"]
    assert source.source_id(1) == "cosmos:12" and source.split_key(1) == "cosmos:12"
    profile = source.profile(1, np.random.default_rng(0), flux=2.5)
    assert profile.flux == pytest.approx(2.5)
    # deconvolved, the galaxy is seen through the narrowest round Gaussian that does not
    # amplify any frequency: for a Gaussian PSF, that PSF (the stamp's pixel blurs a little)
    pixel = SCALE / np.sqrt(12)
    seen = np.hypot(np.hypot(GAL_SIGMA, PSF_SIGMA), pixel)
    assert sigma_of(profile) == pytest.approx(seen, rel=0.03)
    # by default the stamp is used as observed: the same size here
    observed = RealGalaxySource(catalog)
    assert observed.deconvolve is False
    assert sigma_of(observed.profile(1, 0)) == pytest.approx(seen, rel=0.03)
    # the bare deconvolution gives back the galaxy's own size
    bare = RealGalaxySource(catalog, deconvolve=True, resolution=None, clean=False)
    reference = galsim.Convolve(bare.profile(1, 0), galsim.Gaussian(sigma=0.05))
    assert sigma_of(reference) == pytest.approx(np.hypot(np.hypot(GAL_SIGMA, 0.05), pixel),
                                                rel=0.03)
    sharp = RealGalaxySource(catalog, deconvolve=True, resolution=0.1).profile(1, 0)
    assert sigma_of(sharp) == pytest.approx(
        np.hypot(np.hypot(GAL_SIGMA, 0.1 / 2.3548), pixel), rel=0.03)
    with pytest.raises(ValueError, match="^resolution:"):
        RealGalaxySource(catalog, resolution=-1.0)


def test_dominating_gaussian_of_a_psf():
    gaussian = galsim.Gaussian(fwhm=0.1).drawImage(nx=41, ny=41, scale=0.03, method="no_pixel")
    assert dominating_gaussian_fwhm(gaussian) == pytest.approx(0.1, rel=0.03)
    # an Airy pattern's transfer function falls below that of the Gaussian of its FWHM
    airy = galsim.Airy(lam_over_diam=0.08, obscuration=0.3).drawImage(nx=81, ny=81, scale=0.01,
                                                                    method="no_pixel")
    assert dominating_gaussian_fwhm(airy) > 1.2 * airy.calculateFWHM()


def test_clean_stamp_keeps_only_the_central_galaxy():
    rng = np.random.default_rng(4)
    galaxy = galsim.Exponential(half_light_radius=0.2, flux=30.0)
    neighbour = galsim.Gaussian(sigma=0.1, flux=20.0).shift(0.9, 0.7)
    noiseless = (galaxy + neighbour).drawImage(nx=80, ny=80, scale=SCALE).array
    stamp = noiseless + 0.3 + rng.normal(0.0, 0.02, noiseless.shape)
    clean = clean_stamp(stamp)
    only_galaxy = galaxy.drawImage(nx=80, ny=80, scale=SCALE).array
    # the sky is gone, the neighbour too, and the galaxy keeps all but its faintest outskirts
    assert 0.9 < clean.sum() / only_galaxy.sum() < 1.0
    neighbour_pixels = neighbour.drawImage(nx=80, ny=80, scale=SCALE).array > 0.05
    assert not clean[neighbour_pixels].any()
    assert (clean == 0).mean() > 0.5
    # pure noise keeps its pixels, sky subtracted
    flat = rng.normal(1.0, 0.01, (40, 40))
    assert abs(clean_stamp(flat).mean()) < 0.01


def test_rotation_is_reproducible_and_dilation_scales(tmp_path):
    source = RealGalaxySource(write_catalog(tmp_path / "cat"))
    draw = lambda p: galsim.Convolve(p, galsim.Gaussian(sigma=0.05)).drawImage(  # noqa: E731
        nx=48, ny=48, scale=0.05).array
    a = draw(source.profile(0, np.random.default_rng(5)))
    b = draw(pickle.loads(pickle.dumps(source)).profile(0, np.random.default_rng(5)))
    np.testing.assert_array_equal(a, b)
    small = sigma_of(source.profile(0, 1, rotate=False))
    big = sigma_of(source.profile(0, 1, rotate=False, dilate=2.0))
    assert big / small == pytest.approx(2.0, rel=0.05)
    with pytest.raises(IndexError):
        source.profile(3)
    with pytest.raises(ValueError, match="^dilate:"):
        source.profile(0, dilate=0)


def test_folder_and_repeated_galaxies(tmp_path):
    path = write_catalog(tmp_path / "cat", idents=("5", "5", "6"))
    source = RealGalaxySource(path.parent)
    assert source.catalog_file == path
    assert source.ids == ["cosmos:5:0", "cosmos:5:1", "cosmos:6"]
    assert source.split_key(0) == source.split_key(1) == "cosmos:5"
    assert load_source_catalog(source) is source and load_source_catalog(None) is None


def test_missing_psf_files(tmp_path):
    path = write_catalog(tmp_path / "cat", psf=False)
    with pytest.warns(RealGalaxyWarning, match="without deconvolving"):
        source = RealGalaxySource(path, deconvolve="auto")
    assert source.deconvolve is False
    assert source.profile(0, 0).flux == pytest.approx(1.0)
    with pytest.raises(ValueError, match="^source_catalog: PSF file"):
        RealGalaxySource(path, deconvolve=True)
    assert RealGalaxySource(path, deconvolve=False).deconvolve is False


def test_malformed_catalogs_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="^source_catalog: no such file"):
        RealGalaxySource(tmp_path / "nothing.fits")
    with pytest.raises(ValueError, match="^source_catalog: expected one"):
        find_catalog_file(tmp_path)
    (tmp_path / "text.fits").write_text("not fits")
    with pytest.raises(ValueError, match="^source_catalog: cannot read"):
        RealGalaxySource(tmp_path / "text.fits")
    fits.PrimaryHDU(np.zeros((3, 3))).writeto(tmp_path / "image.fits")
    with pytest.raises(ValueError, match="^source_catalog: .*no table"):
        RealGalaxySource(tmp_path / "image.fits")
    lacking = write_catalog(tmp_path / "a", columns=("IDENT", "GAL_HDU"))
    with pytest.raises(ValueError, match="^source_catalog: .*lacks column"):
        RealGalaxySource(lacking)
    path = write_catalog(tmp_path / "b")
    (path.parent / "gals.fits").unlink()
    with pytest.raises(ValueError, match="^source_catalog: galaxy stamp file"):
        RealGalaxySource(path)
    with pytest.raises(ValueError, match="^source_catalog: expected a path"):
        load_source_catalog(3)


def test_dataset_from_a_catalog_uses_only_its_split(tmp_path):
    path = write_catalog(tmp_path / "cat", idents=tuple(str(i) for i in range(100, 140)))
    source = RealGalaxySource(path)
    out = generate_dataset(tmp_path / "val.h5", "seed", 3, "val", 1, source_catalog=path,
                           progress=False)
    allowed = {source.source_id(i) for i in split_indices(source, "val")}
    with open_dataset(out) as data:
        ids = data.read(slice(None), ["source_id", "source_kind"])
        assert data.attrs["source_catalog"] == str(path.resolve())
        assert json.loads(data.attrs["source_processing"]) == {
            "clean": True, "deconvolve": False, "resolution": "psf"}
    assert set(ids["source_id"]) <= allowed and set(ids["source_kind"]) == {"real"}


# --------------------------------------------------------------------------- real stamps
@needs_shared
@pytest.mark.parametrize("catalog, n, prefix", [
    ("cosmos_galsim/test_catalog.fits", 2, "test"),
    ("aegis_galsim/AEGIS_F814w_catalog.fits", 5, "aegis_f814w"),
])
def test_real_catalogs_with_psfs(catalog, n, prefix):
    source = RealGalaxySource(GALAXIES / catalog, deconvolve="auto")
    assert len(source) == n and source.deconvolve is True
    assert all(i.startswith(prefix + ":") for i in source.ids)
    for index in range(n):
        image = galsim.Convolve(source.profile(index, index, flux=1.0),
                                galsim.Gaussian(fwhm=0.1)).drawImage(nx=128, ny=128, scale=0.05)
        assert np.isfinite(image.array).all()
        assert image.array.sum() == pytest.approx(1.0, abs=0.1)


@needs_shared
def test_cosmos_sample_without_psf_files():
    with pytest.warns(RealGalaxyWarning):
        source = RealGalaxySource(GALAXIES / "cosmos_paltas", deconvolve="auto")
    assert len(source) == 10 and source.source_id(0) == "cosmos:141190"
    parts = [set(split_indices(source, s)) for s in ("train", "val", "test")]
    assert sum(map(len, parts)) == 10 and len(set().union(*parts)) == 10
    profile = source.profile(3, np.random.default_rng(1), flux=3.0)
    image = galsim.Convolve(profile, galsim.Gaussian(fwhm=0.1)).drawImage(nx=200, ny=200,
                                                                         scale=0.05)
    assert image.array.sum() == pytest.approx(3.0, rel=0.05)
