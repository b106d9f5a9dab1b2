"""Tests of astro_delens.cutout: every input form, the geometry, noise, masks and bad input."""

import warnings

import numpy as np
import pytest

import astropy.units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import (
    CCDData,
    InverseVariance,
    NDData,
    StdDevUncertainty,
    VarianceUncertainty,
)
from astropy.wcs import WCS

from astro_delens import lensmodel
from astro_delens.cutout import PreparedCutout, parse_input_data, prepare_cutout
from astro_delens.exceptions import OutOfDomainWarning, PreprocessingWarning
from astro_delens.presets import get_preset

PRESET = get_preset("survey")
N, D = PRESET.npix, PRESET.pixel_scale
SKY = SkyCoord(150.1163, 2.2057, unit="deg")


# --------------------------------------------------------------------------
# an analytic sky: lens galaxy, arc and a compact knot (flux per arcsec^2)
# --------------------------------------------------------------------------
def scene(e, n, knot=True):
    """Surface brightness at east/north offsets (arcsec) from SKY."""
    x, y = e - 0.12, n + 0.07
    t = np.radians(40.0)
    a, b = np.cos(t) * x + np.sin(t) * y, -np.sin(t) * x + np.cos(t) * y
    lens = 30.0 * np.exp(-0.5 * (a**2 / 0.35**2 + b**2 / 0.22**2))
    r, phi = np.hypot(x, y), np.arctan2(y, x)
    arc = 6.0 * np.exp(-0.5 * ((r - 1.3) / 0.09) ** 2) * (1 + np.cos(phi - 1.0))
    knot = 15.0 * np.exp(-0.5 * ((e - 0.9) ** 2 + (n - 0.5) ** 2) / 0.07**2) if knot else 0.0
    return lens + arc + knot


def rot(theta_deg):
    t = np.radians(theta_deg)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def jacobian(theta_deg, scale, flip=False, scale_y=None):
    """d(east, north)/d(x, y) of a grid turned by theta (east towards north)."""
    base = np.array([[scale if flip else -scale, 0.0], [0.0, scale_y or scale]])
    return rot(theta_deg) @ base


def render(jac, shape, centre_pix=None, ss=4, offset=(0.0, 0.0), knot=True):
    """Flux per pixel of `scene` on a grid whose pixel ``centre_pix`` sits at ``offset``."""
    ny, nx = shape
    cx, cy = ((nx - 1) / 2.0, (ny - 1) / 2.0) if centre_pix is None else centre_pix
    sub = (np.arange(ss) + 0.5) / ss - 0.5
    yy, xx = np.mgrid[:ny, :nx].astype(float)
    total = np.zeros(shape)
    for dy in sub:
        for dx in sub:
            px, py = xx + dx - cx, yy + dy - cy
            e = jac[0, 0] * px + jac[0, 1] * py + offset[0]
            n = jac[1, 0] * px + jac[1, 1] * py + offset[1]
            total += scene(e, n, knot)
    return total / ss**2 * abs(np.linalg.det(jac))


def celestial_wcs(jac, shape, sky=SKY, crpix=None):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [sky.ra.deg, sky.dec.deg]
    w.wcs.crpix = list(crpix) if crpix is not None else [(shape[1] + 1) / 2.0,
                                                         (shape[0] + 1) / 2.0]
    w.wcs.cd = np.asarray(jac) / 3600.0
    w.wcs.radesys = "ICRS"
    w.wcs.set()
    return w


@pytest.fixture(scope="module")
def truth():
    """The scene on the model grid (north up, east left, 0.1")."""
    return render(np.array([[-D, 0.0], [0.0, D]]), (N, N))


def prep(data, **kw):
    kw.setdefault("background_subtracted", True)
    kw.setdefault("noise", 0.01)
    return prepare_cutout(data, "survey", **kw)


# --------------------------------------------------------------------------
# input forms
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def north_up_file(tmp_path_factory):
    """A north-up image at 0.05" with a TAN WCS, a noise map and a mask, as a FITS file."""
    jac = jacobian(0, 0.05)
    shape = (200, 200)
    rng = np.random.default_rng(1)
    image = render(jac, shape) + rng.normal(0, 0.02, shape)
    noise = np.full(shape, 0.02)
    header = celestial_wcs(jac, shape).to_header()
    header["BUNIT"] = "electron/s"
    path = tmp_path_factory.mktemp("forms") / "lens.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image, header, name="SCI"),
                  fits.ImageHDU(noise, name="ERR")]).writeto(path)
    return path, image, noise, header


FORMS = ["path", "path-ext", "pathlib", "hdulist", "hdu", "nddata", "ccddata", "quantity",
         "ndarray", "masked"]


def _make_form(form, path, image, noise, header):
    wcs = WCS(header)
    scale = {"pixel_scale": 0.05 * u.arcsec}
    if form == "path":
        return str(path), {"hdu": "SCI", "noise": str(path) + "[ERR]"}
    if form == "path-ext":
        return str(path) + "[SCI]", {"noise": "ERR"}
    if form == "pathlib":
        return path, {"hdu": 1, "noise": noise}
    if form == "hdulist":
        return fits.open(path), {"hdu": "SCI", "noise": 0.02}
    if form == "hdu":
        return fits.ImageHDU(image, header), {"noise": noise}
    if form == "nddata":
        return NDData(image, wcs=wcs, uncertainty=StdDevUncertainty(noise),
                      unit="electron/s"), {"noise": None}
    if form == "ccddata":
        return CCDData(image, wcs=wcs, uncertainty=StdDevUncertainty(noise),
                       unit="electron/s"), {"noise": None}
    if form == "quantity":
        return image * u.electron / u.s, dict(scale, noise=noise)
    if form == "ndarray":
        return image, dict(scale, noise=0.02)
    if form == "masked":
        return np.ma.MaskedArray(image, mask=np.zeros(image.shape, bool)), dict(scale,
                                                                              noise=noise)
    raise AssertionError(form)


@pytest.fixture(scope="module")
def reference(north_up_file):
    path, image, noise, header = north_up_file
    data, kw = _make_form("path", *north_up_file)
    return prep(data, **kw)


@pytest.mark.parametrize("form", FORMS)
def test_every_input_form_gives_the_same_cutout(form, north_up_file, reference):
    data, kw = _make_form(form, *north_up_file)
    out = prep(data, **kw)
    assert isinstance(out, PreparedCutout)
    assert out.image.shape == (N, N) and out.image.dtype == np.float32
    peak = reference.image.max()
    # celestial (TAN) and linear grids agree to far below the noise
    np.testing.assert_allclose(out.image, reference.image, atol=2e-4 * peak)
    np.testing.assert_allclose(out.noise_map, reference.noise_map, rtol=1e-4)
    np.testing.assert_array_equal(out.mask, reference.mask)
    if form in ("quantity", "ndarray", "masked"):
        assert out.center is None and out.wcs.wcs.ctype[0] == "XOFFSET"
    else:
        assert out.center.separation(SKY) < 1 * u.mas
        assert out.wcs.wcs.ctype[0] == "RA---TAN"
    if form in ("path", "nddata", "ccddata", "quantity"):
        assert out.unit == u.electron / u.s
    if form == "hdulist":
        data.close()


@pytest.mark.parametrize("kind", ["std", "var", "ivar"])
def test_uncertainty_types_are_converted_to_std(kind, north_up_file, reference):
    path, image, noise, header = north_up_file
    unc = {"std": StdDevUncertainty(noise), "var": VarianceUncertainty(noise**2),
           "ivar": InverseVariance(1.0 / noise**2)}[kind]
    out = prep(CCDData(image, wcs=WCS(header), uncertainty=unc, unit="electron/s"), noise=None)
    np.testing.assert_allclose(out.noise_map, reference.noise_map, rtol=1e-5)


def test_inputs_are_not_modified(north_up_file):
    path, image, noise, header = north_up_file
    img = image.copy()
    img[5, 5] = np.nan
    nse, msk = noise.copy(), np.zeros(image.shape, bool)
    msk[10:20, 10:20] = True
    before = (img.copy(), nse.copy(), msk.copy())
    prep(img, pixel_scale=0.05 * u.arcsec, noise=nse, mask=msk, background_subtracted=False)
    nd = CCDData(img, unit="adu", mask=msk, uncertainty=StdDevUncertainty(nse))
    prep(nd, pixel_scale=0.05 * u.arcsec, noise=None)
    np.testing.assert_array_equal(img, before[0])
    np.testing.assert_array_equal(nse, before[1])
    np.testing.assert_array_equal(msk, before[2])
    np.testing.assert_array_equal(nd.data, before[0])


def test_parse_input_data_reads_unit_and_wcs(north_up_file):
    path, *_ = north_up_file
    inp = parse_input_data(str(path) + "[SCI]")
    assert inp.wcs.has_celestial and inp.unit == u.electron / u.s
    assert inp.label == "lens.fits[SCI]"
    with pytest.raises(TypeError, match="data: expected"):
        parse_input_data([[1.0, 2.0], [3.0, 4.0]])


# --------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------
def _centroid(image):
    jj, ii = np.mgrid[: image.shape[0], : image.shape[1]]
    return np.array([np.sum(image * ii), np.sum(image * jj)]) / image.sum()


@pytest.mark.parametrize("theta, scale, flip", [
    (30.0, 0.05, False),    # HST-like pixels, turned by 30 deg
    (-70.0, 0.08, False),   # WFC3/IR-like pixels
    (30.0, 0.1, False),     # the model's pixel, turned: no sub-pixels, bicubic only
    (15.0, 0.05, True),     # east to the right (mirrored WCS)
])
def test_rotated_wcs_matches_north_up(theta, scale, flip, truth):
    jac = jacobian(theta, scale, flip=flip)
    n_in = int(np.ceil(N * D * 1.45 / scale))
    image = render(jac, (n_in, n_in))
    out = prep(fits.ImageHDU(image, celestial_wcs(jac, image.shape).to_header()))
    assert not out.mask.any()
    peak = truth.max()
    tol = {0.05: 0.01, 0.08: 0.02, 0.1: 0.03}[scale]  # the knot is barely sampled at 0.1"
    assert np.abs(out.image - truth).max() < tol * peak
    assert out.image.sum() == pytest.approx(truth.sum(), rel=2e-3)
    np.testing.assert_allclose(_centroid(out.image), _centroid(truth), atol=0.01)
    assert out.center.separation(SKY) < 1 * u.mas
    # the grid is north up and east left: the knot (0.9" E, 0.5" N) is where it should be
    residual = out.image - render(np.array([[-D, 0.0], [0.0, D]]), (N, N), knot=False)
    j, i = np.unravel_index(np.argmax(residual), residual.shape)
    x, y = lensmodel.pixel_to_angle(i, j, N, D)
    assert np.hypot(x - 0.9, y - 0.5) <= 0.75 * D
    step = [s for s in out.steps if s["step"] == "read"][0]
    assert step["flipped"] is flip


def _orientation(image):
    """Centroid and major-axis angle (deg, from east towards north) of the lens core."""
    jj, ii = np.mgrid[:N, :N]
    x, y = lensmodel.pixel_to_angle(ii, jj, N, D)
    w = image * (np.hypot(x - 0.12, y + 0.07) < 0.6)
    xc, yc = np.sum(w * x) / w.sum(), np.sum(w * y) / w.sum()
    sxx, syy = np.sum(w * (x - xc) ** 2), np.sum(w * (y - yc) ** 2)
    sxy = np.sum(w * (x - xc) * (y - yc))
    return xc, yc, 0.5 * np.degrees(np.arctan2(2 * sxy, sxx - syy))


def test_position_angle_on_the_prepared_grid(truth):
    """The lens galaxy's orientation (40 deg from east towards north) survives resampling."""
    jac = jacobian(50.0, 0.05)
    image = render(jac, (290, 290))
    out = prep(fits.ImageHDU(image, celestial_wcs(jac, image.shape).to_header()))
    xc, yc, phi = _orientation(out.image)
    xt, yt, phit = _orientation(truth)
    assert phit == pytest.approx(40.0, abs=2.5)  # the measure itself (window, pixels)
    assert phi == pytest.approx(phit, abs=0.2)
    assert (xc, yc) == pytest.approx((xt, yt), abs=0.003)
    # as a position angle east of north: 90 - 40 = 50 deg
    pa = float(lensmodel._position_angle(np.radians(phi)))
    assert pa == pytest.approx(90.0 - phit, abs=0.2)


def test_sip_and_non_square_pixels(truth):
    """Pixel scale and orientation come from the full WCS (SIP included)."""
    jac = rot(20.0) @ np.array([[-0.04, 0.0], [0.0, 0.06]])
    shape = (230, 330)
    w = celestial_wcs(jac, shape)
    header = w.to_header()
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    header.update({"A_ORDER": 2, "B_ORDER": 2, "A_2_0": 2e-5, "A_0_2": -1e-5, "A_1_1": 1e-5,
                   "B_2_0": -1e-5, "B_0_2": 1.5e-5, "B_1_1": 0.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sip = WCS(header)
    # render through the distorted WCS: sky offsets of every sub-pixel
    ss = 3
    sub = (np.arange(ss) + 0.5) / ss - 0.5
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    image = np.zeros(shape)
    for dy in sub:
        for dx in sub:
            sky = sip.pixel_to_world(xx + dx, yy + dy)
            de, dn = SKY.spherical_offsets_to(sky)
            image += scene(de.to_value(u.arcsec), dn.to_value(u.arcsec))
    image *= abs(np.linalg.det(jac)) / ss**2
    out = prep(fits.ImageHDU(image, header))
    step = [s for s in out.steps if s["step"] == "read"][0]
    assert step["pixel_scale_arcsec"] == pytest.approx(np.sqrt(0.04 * 0.06), rel=1e-3)
    ok = ~out.mask
    assert ok.sum() > 0.6 * N * N
    assert np.abs(out.image - truth)[ok].max() < 0.015 * truth.max()


def test_same_lens_at_two_pixel_scales(truth):
    """0.05" and 0.1" samplings of one lens give the same prepared cutout and S/N scaling."""
    fine = render(jacobian(0, 0.05), (200, 200))
    coarse = render(jacobian(0, 0.1), (100, 100))
    a = prep(fine, pixel_scale=0.05 * u.arcsec, noise=0.01)
    b = prep(coarse, pixel_scale=0.1 * u.arcsec, noise=0.02)
    peak = truth.max()
    assert np.abs(a.image - b.image).max() < 0.005 * peak
    assert np.abs(b.image - truth).max() < 1e-6 * peak  # the 0.1" grid is copied unchanged
    # 2x2 pixels of noise 0.01 summed: 0.02 per model pixel, as the 0.1" image says
    np.testing.assert_allclose(a.noise_map, 0.02, rtol=0.02)
    np.testing.assert_allclose(b.noise_map, 0.02, rtol=1e-6)
    assert [s["method"] for s in b.steps if s["step"] == "resample"][0].startswith("copy")


def test_array_orientation_is_north_up_east_left():
    """Without a WCS, column 0 is east: a source left of centre has x > 0."""
    image = np.zeros((96, 96))
    image[60, 20] = 1.0  # row 60 (north of centre), column 20 (east of centre)
    out = prep(image, pixel_scale=D * u.arcsec, mask_contaminants=False)
    j, i = np.unravel_index(np.argmax(out.image), out.image.shape)
    x, y = lensmodel.pixel_to_angle(i, j, N, D)
    assert x > 0 and y > 0
    assert out.offset_to_input_pixel(x, y) == pytest.approx((20, 60))


def test_pixel_and_sky_positions_agree(north_up_file):
    path, image, noise, header = north_up_file
    w = WCS(header)
    target = w.pixel_to_world(120.3, 90.7)
    a = prep(str(path), hdu="SCI", position=target)
    b = prep(str(path), hdu="SCI", position=(120.3, 90.7))
    np.testing.assert_allclose(a.image, b.image, atol=1e-6 * a.image.max())
    assert a.center.separation(target) < 1 * u.mas
    # partial overlap: padded and masked, never NaN
    with pytest.warns(OutOfDomainWarning, match="too small"):
        c = prep(str(path), hdu="SCI", position=(5.0, 100.0), mask_contaminants=False)
    # x = 5 is near column 0, the east edge: the model grid's east (left) side is off the image
    assert c.mask[:, :10].all() and not c.mask[:, -10:].any()
    assert np.all(np.isfinite(c.image)) and np.all(c.image[c.mask] == 0)
    assert c.field_radius < 1.0


# --------------------------------------------------------------------------
# background, noise, masks, contaminants, PSF
# --------------------------------------------------------------------------
def test_background_and_noise_are_estimated():
    rng = np.random.default_rng(3)
    image = 20 * render(jacobian(0, 0.05), (240, 240)) + 7.5 + rng.normal(0, 0.05, (240, 240))
    out = prepare_cutout(image, "survey", pixel_scale=0.05 * u.arcsec)
    bkg = [s for s in out.steps if s["step"] == "background"][0]
    noise = [s for s in out.steps if s["step"] == "noise"][0]
    assert bkg["value"] == pytest.approx(7.5, abs=0.005)
    assert noise["value"] == pytest.approx(0.05, rel=0.05)
    np.testing.assert_allclose(out.noise_map[~out.mask], 0.1, rtol=0.06)  # 2x2 summed
    # background_subtracted=True leaves the level alone
    kept = prepare_cutout(image, "survey", pixel_scale=0.05 * u.arcsec,
                          background_subtracted=True)
    assert np.median(kept.image[~kept.mask]) > 25  # 7.5 per 0.05" pixel, 30 per model pixel


@pytest.mark.parametrize("seed", [2927304825882076910, 7784260216864635276])
def test_noise_free_simulations_keep_zero_noise_and_no_background(seed):
    # seed lenses whose arcs fill the field: their faint wings looked like a noisy sky
    from astro_delens.training.simulate import LensSimulator

    image = LensSimulator("seed").simulate(seed)["image"]
    out = prepare_cutout(image, "seed", pixel_scale=0.08 * u.arcsec)
    assert not out.mask.any()
    np.testing.assert_array_equal(out.noise_map, 0.0)
    np.testing.assert_allclose(out.image, image, atol=1e-7 * image.max())


def test_noise_is_not_mistaken_for_a_smooth_sky():
    # drizzle-like correlated noise still counts as noise
    from scipy.ndimage import convolve

    rng = np.random.default_rng(8)
    kernel = np.array([[0.49, 0.7, 0.49], [0.7, 1.0, 0.7], [0.49, 0.7, 0.49]])
    noise = convolve(rng.normal(0, 1, (96, 96)), kernel / np.sqrt(np.sum(kernel**2)))
    out = prepare_cutout(render(jacobian(0, 0.1), (96, 96)) + 0.05 * noise, "survey",
                         pixel_scale=0.1 * u.arcsec)
    assert np.median(out.noise_map) == pytest.approx(0.05, rel=0.15)


def test_masks_nan_and_noise_sentinels(truth):
    image = render(jacobian(0, 0.1), (96, 96))
    image[10, 10] = np.nan
    image[12, 40] = np.inf
    noise = np.full(image.shape, 0.02)
    noise[80, 80] = 1e16  # Euclid's bad-pixel marker
    mask = np.zeros(image.shape, bool)
    mask[30:34, 60:64] = True
    out = prep(image, pixel_scale=D * u.arcsec, noise=noise, mask=mask)
    assert out.mask[10, 10] and out.mask[12, 40] and out.mask[80, 80]
    assert out.mask[30:34, 60:64].all()
    assert np.all(out.image[out.mask] == 0)
    assert np.all(np.isfinite(out.noise_map)) and np.all(out.noise_map > 0)
    assert out.mask.sum() == 3 + 16


def test_contaminants_far_from_the_lens_are_masked(truth):
    rng = np.random.default_rng(5)
    image = truth.copy()
    jj, ii = np.mgrid[:N, :N]
    x, y = lensmodel.pixel_to_angle(ii, jj, N, D)
    image += 50 * np.exp(-0.5 * ((x + 4.2) ** 2 + (y - 3.9) ** 2) / 0.15**2)  # far away
    image += rng.normal(0, 0.05, image.shape)
    on = prep(image, pixel_scale=D * u.arcsec, noise=0.05)
    off = prep(image, pixel_scale=D * u.arcsec, noise=0.05, mask_contaminants=False)
    far = np.hypot(x + 4.2, y - 3.9) < 0.3
    assert on.mask[far].all() and not off.mask.any()
    assert not on.mask[np.hypot(x, y) < 2.5].any()  # the lens and its arcs are kept


def test_psf_is_resampled_and_measured():
    sigma = 0.15 / 2.3548 / 0.05
    yy, xx = np.mgrid[-12:13, -12:13]
    psf = np.exp(-0.5 * (xx**2 + yy**2) / sigma**2)
    image = render(jacobian(0, 0.05), (200, 200))
    out = prep(image, pixel_scale=0.05 * u.arcsec, psf=psf)
    assert out.psf.shape[0] % 2 == 1 and out.psf.sum() == pytest.approx(1.0, rel=1e-5)
    assert out.psf_fwhm == pytest.approx(0.15, rel=0.1)
    j, i = np.unravel_index(np.argmax(out.psf), out.psf.shape)
    assert (i, j) == (out.psf.shape[1] // 2, out.psf.shape[0] // 2)
    gauss = prep(image, pixel_scale=0.05 * u.arcsec, psf=0.12 * u.arcsec)
    assert gauss.psf_fwhm == pytest.approx(0.12)
    with pytest.warns(OutOfDomainWarning, match="PSF FWHM") as record:
        prep(image, pixel_scale=0.05 * u.arcsec, psf=0.9 * u.arcsec)
    assert record[0].message.code == "psf"


# --------------------------------------------------------------------------
# out of domain
# --------------------------------------------------------------------------
def test_out_of_domain_warnings(truth):
    coarse = render(jacobian(0, 0.3), (40, 40))
    with pytest.warns(OutOfDomainWarning, match="coarser") as record:
        out = prep(coarse, pixel_scale=0.3 * u.arcsec)
    assert "pixel_scale" in [code for code, _ in out.domain_warnings]
    assert record[0].message.code == "pixel_scale"
    with pytest.warns(OutOfDomainWarning, match="too small"):
        prep(truth, pixel_scale=D * u.arcsec, size=0.8 * u.arcsec)
    with pytest.warns(OutOfDomainWarning, match="signal-to-noise"):
        prep(truth, pixel_scale=D * u.arcsec, noise=100.0)
    with pytest.warns(OutOfDomainWarning, match="noise-free"):
        prepare_cutout(truth, "seed", pixel_scale=0.08 * u.arcsec, noise=0.5,
                       background_subtracted=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = prep(truth, pixel_scale=D * u.arcsec, warn=False, noise=100.0)
    assert [c for c, _ in ok.domain_warnings] == ["snr"]


def test_too_few_sky_pixels_warns():
    rng = np.random.default_rng(2)
    image = rng.normal(0, 1, (60, 60))
    mask = np.ones(image.shape, bool)
    mask[28:33, 28:34] = False  # 30 valid pixels
    with pytest.warns(PreprocessingWarning, match="sky pixels"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OutOfDomainWarning)
            prepare_cutout(image, "survey", pixel_scale=0.1 * u.arcsec, mask=mask)


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
def _broken_wcs_hdu():
    header = celestial_wcs(jacobian(0, 0.1), (50, 50)).to_header()
    header["PC1_1"] = header["PC2_2"] = 0.0
    header["PC1_2"] = header["PC2_1"] = 0.0
    return fits.ImageHDU(np.random.default_rng(0).random((50, 50)), header)


def _linear_wcs_hdu():
    header = fits.Header({"CTYPE1": "LINEAR", "CTYPE2": "LINEAR", "CDELT1": 0.1, "CDELT2": 0.1})
    return fits.ImageHDU(np.random.default_rng(0).random((50, 50)), header)


RNG = np.random.default_rng(9)
GOOD = RNG.random((50, 50))


@pytest.mark.parametrize("data, kwargs, error, match", [
    (GOOD, {}, ValueError, "pixel_scale"),
    (GOOD, {"pixel_scale": 1 * u.m}, ValueError, "pixel_scale"),
    (GOOD, {"pixel_scale": -0.1}, ValueError, "pixel_scale"),
    (GOOD, {"pixel_scale": 0.1, "position": SKY}, ValueError, "position.*celestial WCS"),
    (_linear_wcs_hdu(), {"pixel_scale": 0.1, "position": SKY}, ValueError,
     "position.*celestial WCS"),
    (_broken_wcs_hdu(), {"position": SKY}, ValueError, "position.*WCS is broken"),
    (_broken_wcs_hdu(), {}, ValueError, "WCS is broken"),
    (GOOD, {"pixel_scale": 0.1, "position": (80.0, 10.0)}, ValueError, "position.*off the image"),
    (GOOD, {"pixel_scale": 0.1, "position": (1.0, 2.0, 3.0)}, ValueError, "position"),
    (np.full((50, 50), np.nan), {"pixel_scale": 0.1}, ValueError, "data.*no valid pixel"),
    (np.full((50, 50), 3.0), {"pixel_scale": 0.1}, ValueError, "data.*constant"),
    (RNG.random((2, 50, 50)), {"pixel_scale": 0.1}, ValueError, "data.*2-D"),
    (RNG.random(50), {"pixel_scale": 0.1}, ValueError, "data.*2-D"),
    (GOOD, {"pixel_scale": 0.1, "noise": -GOOD}, ValueError, "noise.*negative"),
    (GOOD, {"pixel_scale": 0.1, "noise": np.ones((5, 5))}, ValueError, "noise.*shape"),
    (GOOD, {"pixel_scale": 0.1, "mask": np.ones((5, 5))}, ValueError, "mask.*shape"),
    (GOOD, {"pixel_scale": 0.1, "size": 1 * u.kg}, ValueError, "size"),
    (GOOD, {"pixel_scale": 0.1, "psf": np.ones(3)}, ValueError, "psf"),
    ([[1, 2], [3, 4]], {"pixel_scale": 0.1}, TypeError, "data: expected"),
    ("no_such_file.fits", {}, FileNotFoundError, "data: no such file"),
])
def test_bad_input_raises_naming_the_argument(data, kwargs, error, match):
    with pytest.raises(error, match=match):
        prepare_cutout(data, "survey", **kwargs)


def test_unreadable_fits_and_missing_hdu(tmp_path):
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"this is not a FITS file" * 200)
    with pytest.raises(OSError, match="data: cannot read"):
        prepare_cutout(bad, "survey")
    good = tmp_path / "good.fits"
    fits.PrimaryHDU(GOOD).writeto(good)
    with pytest.raises(ValueError, match="hdu: no HDU 'SCI'"):
        prepare_cutout(good, "survey", hdu="SCI", pixel_scale=0.1)
    with pytest.raises(OSError, match="noise: cannot read"):
        prepare_cutout(good, "survey", pixel_scale=0.1, noise=bad)


def test_one_rule_says_whether_the_field_holds_the_arcs():
    from astro_delens.cutout import ARC_REACH, field_holds_arcs

    assert field_holds_arcs(float("nan"), 3.0) and field_holds_arcs(float("inf"), 3.0)
    assert field_holds_arcs(1.0, 0.5, psf_fwhm=0.2)            # arcs reach 0.6" + 0.2"
    assert not field_holds_arcs(1.0, 1.0, psf_fwhm=0.2)        # 1.2" + 0.2"
    assert field_holds_arcs(ARC_REACH * 1.0, 1.0, psf_fwhm=None)
    assert not field_holds_arcs(ARC_REACH * 1.0, 1.0, psf_fwhm=0.1)
