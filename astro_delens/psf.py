"""Point-spread functions: every PSF the package uses at run time, in arcsec.

One unit throughout: FWHMs are in arcsec, PSF images are sampled on a stated
pixel scale and normalised to unit sum.

* `gaussian_psf` draws a circular Gaussian on a pixel grid and
  `measure_fwhm` measures the FWHM of any PSF image.
* `resample_psf` puts a user's PSF image on the model grid
  (`astro_delens.cutout.prepare_cutout` calls it).
* `lenstronomy_psf` makes the PSF of the physics tools of
  `astro_delens.forward`, from a PSF image or a FWHM.
* The networks do not need a PSF, but the physics tools convolve their models
  with one. When the user gives none, `assumed_psf_fwhm` picks a Gaussian FWHM
  appropriate to the data, in this order:

  1. a FWHM keyword of the image header (``PSF_FWHM``, ``PSFFWHM``, ``FWHM``,
     ``SEEING``; arcsec, or pixels when the keyword's comment says so);
  2. the instrument named by ``TELESCOP``/``INSTRUME``/``DETECTOR``/``PHOTMODE``/``FILTER``
     (typical in-focus FWHMs of HST ACS and WFC3, Euclid VIS, and the
     diffraction limit of JWST NIRCam at the filter's wavelength);
  3. the geometric mean of the model preset's training range of PSF FWHMs.

  The choice and its reason are recorded in the prepared cutout and stated in
  the physics tools' output (`psf_keywords` turns a prepared cutout into their
  PSF keywords); a PSF image from the user is always better.

The simulator draws its PSFs with GalSim (`astro_delens.training.instrument`),
also in arcsec.

Examples
--------
>>> from astropy.io import fits
>>> from astro_delens.presets import get_preset
>>> h = fits.Header({"TELESCOP": "JWST", "INSTRUME": "NIRCAM", "FILTER": "F444W"})
>>> fwhm, why = assumed_psf_fwhm(h, get_preset("survey"), pixel_scale=0.03)
>>> round(fwhm, 3), why
(0.145, 'JWST NIRCam F444W diffraction limit')
>>> psf = gaussian_psf(0.15, pixel_scale=0.03)
>>> psf.shape, bool(abs(measure_fwhm(psf, pixel_scale=0.03) - 0.15) < 0.015)
((23, 23), True)
"""

from __future__ import annotations

import re

import numpy as np

from .grids import GRID_TOLERANCE, affine_wcs, linear_wcs, reproject_stack

__all__ = ["gaussian_psf", "measure_fwhm", "resample_psf", "lenstronomy_psf",
           "assumed_psf_fwhm", "psf_keywords", "INSTRUMENT_FWHM", "INSTRUMENT_KEYWORDS",
           "FWHM_KEYWORDS"]

#: FWHM / sigma of a Gaussian.
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))

#: Header keywords read as a PSF FWHM (in this order).
FWHM_KEYWORDS = ("PSF_FWHM", "PSFFWHM", "FWHM", "SEEING")

#: Header keywords that name the instrument.
INSTRUMENT_KEYWORDS = ("TELESCOP", "INSTRUME", "DETECTOR", "PHOTMODE")

#: Typical PSF FWHM in arcsec of instruments (matched, case-insensitively, against
#: ``TELESCOP INSTRUME DETECTOR PHOTMODE``); first match wins. Values are the commonly quoted
#: in-focus FWHMs of drizzled or stacked images.
INSTRUMENT_FWHM = (
    (("WFC3", "IR"), 0.16, "HST WFC3/IR"),
    (("WFC3",), 0.08, "HST WFC3/UVIS"),
    (("ACS",), 0.10, "HST ACS/WFC"),
    (("WFPC2",), 0.12, "HST WFPC2"),
    (("EUCLID", "VIS"), 0.17, "Euclid VIS"),
    (("EUCLID", "NISP"), 0.45, "Euclid NISP"),
)

#: arcsec per micron of 1.03 lambda / D for JWST's 6.5 m aperture.
_JWST_ARCSEC_PER_MICRON = 1.03 * 206264.806 * 1e-6 / 6.5


def _header_fwhm(header, pixel_scale):
    for key in FWHM_KEYWORDS:
        if key not in header:
            continue
        try:
            value = float(header[key])
        except (TypeError, ValueError):
            continue
        if not (np.isfinite(value) and value > 0):
            continue
        comment = str(header.comments[key]).lower()
        if "pix" in comment:
            return value * pixel_scale, f"header {key} = {value:g} pixels"
        return value, f"header {key} = {value:g} arcsec"
    return None


def _instrument_fwhm(header):
    words = " ".join(str(header.get(k, "")) for k in INSTRUMENT_KEYWORDS)
    words = words.upper()
    if "JWST" in words and "NIRCAM" in words:
        match = re.match(r"F(\d{3})", str(header.get("FILTER", "")).strip().upper())
        if match:
            microns = int(match.group(1)) / 100.0
            band = str(header["FILTER"]).strip().upper()
            return _JWST_ARCSEC_PER_MICRON * microns, f"JWST NIRCam {band} diffraction limit"
    for needed, fwhm, name in INSTRUMENT_FWHM:
        if all(word in words for word in needed):
            return fwhm, f"typical {name}"
    return None


def assumed_psf_fwhm(header, preset, pixel_scale):
    """A Gaussian PSF FWHM (arcsec) for data without a PSF, and why it was chosen.

    Parameters
    ----------
    header : `~astropy.io.fits.Header` or None
        The image's header (primary and extension cards merged is best).
    preset : `~astro_delens.presets.Preset`
        The model's preset (its PSF range is the last resort).
    pixel_scale : float
        Input pixel scale in arcsec (for FWHM keywords given in pixels).

    Returns
    -------
    (float, str)
    """
    if header is not None:
        for finder in (lambda: _header_fwhm(header, pixel_scale), lambda: _instrument_fwhm(header)):
            found = finder()
            if found is not None:
                return float(found[0]), found[1]
    low, high = preset.psf_fwhm_range
    return float(np.sqrt(low * high)), f"middle of the {preset.name!r} training range"


def psf_keywords(prepared):
    """The PSF keywords of the physics tools for a prepared cutout, and what was assumed.

    Returns ``({"psf": array}, None)`` when the cutout has a PSF, else the
    keywords of a Gaussian of ``prepared.assumed_psf_fwhm`` (``psf=None``,
    ``psf_fwhm`` in arcsec) and a sentence saying so and why.
    """
    if prepared.psf is not None:
        return {"psf": np.asarray(prepared.psf)}, None
    fwhm, reason = prepared.assumed_psf_fwhm, prepared.assumed_psf_reason
    if fwhm is None:  # a cutout made by hand, without an assumption
        fwhm, reason = assumed_psf_fwhm(None, prepared.preset, prepared.pixel_scale)
    return {"psf": None, "psf_fwhm": fwhm}, \
        f"assumed Gaussian PSF, FWHM {fwhm:.3g} arcsec ({reason}); no PSF was given"


# --------------------------------------------------------------------------
# PSF images
# --------------------------------------------------------------------------
def gaussian_psf(fwhm, pixel_scale):
    """A circular Gaussian PSF of ``fwhm`` arcsec on pixels of ``pixel_scale`` arcsec.

    Sampled at the pixel centres, truncated at 5 sigma (as lenstronomy's own
    Gaussian convolution is), odd size of at least 5 pixels, unit sum.
    """
    sigma = float(fwhm) / _FWHM_PER_SIGMA / float(pixel_scale)
    half = max(2, int(np.ceil(5.0 * sigma)))
    y, x = np.mgrid[-half:half + 1, -half:half + 1]
    kernel = np.exp(-0.5 * (x**2 + y**2) / sigma**2)
    return (kernel / kernel.sum()).astype(np.float32)


def measure_fwhm(psf, pixel_scale):
    """FWHM in arcsec of a PSF image, from the area above half maximum (4x upsampled)."""
    from scipy.ndimage import zoom

    fine = zoom(np.asarray(psf, dtype=float), 4, order=1)
    peak = fine.max()
    if not peak > 0:
        return float("nan")
    area = float(np.sum(fine >= 0.5 * peak)) * (pixel_scale / 4.0) ** 2
    return 2.0 * np.sqrt(area / np.pi)


def resample_psf(psf, jacobian, pixel_scale, n_max):
    """A PSF image (unit sum) on a north-up grid of ``pixel_scale`` arcsec.

    Parameters
    ----------
    psf : array-like (H, W)
        The PSF image as given.
    jacobian : array-like (2, 2)
        Its pixels' d(x, y) / d(pixel x, pixel y), arcsec per pixel (the
        input image's local Jacobian, scaled to the PSF's own pixel scale).
    pixel_scale : float
        The output pixel scale.
    n_max : int
        The largest output size (odd).
    """
    psf = np.asarray(psf, dtype=float)
    psf = np.where(np.isfinite(psf), psf, 0.0)
    n_in = np.array(psf.shape)
    # centre on the flux centroid of the bright core
    core = psf >= 0.1 * psf.max()
    jj, ii = np.nonzero(core)
    w = psf[core]
    cx, cy = float(np.sum(ii * w) / w.sum()), float(np.sum(jj * w) / w.sum())
    in_scale = float(np.sqrt(abs(np.linalg.det(jacobian))))
    n_out = int(np.ceil(max(n_in) * in_scale / pixel_scale))
    n_out = n_out + 1 - n_out % 2
    n_out = int(min(max(n_out, 3), n_max))
    same_grid = (abs(in_scale - pixel_scale) / pixel_scale < GRID_TOLERANCE
                 and np.allclose(jacobian, [[-pixel_scale, 0], [0, pixel_scale]],
                                 atol=GRID_TOLERANCE * pixel_scale))
    if same_grid and abs(cx - round(cx)) < 1e-6 and abs(cy - round(cy)) < 1e-6:
        h = n_out // 2
        padded = np.pad(psf, h)
        out = np.array(padded[int(round(cy)): int(round(cy)) + n_out,
                              int(round(cx)): int(round(cx)) + n_out])
    else:
        k = max(1, int(np.ceil(pixel_scale / in_scale - 1e-6)))
        out = reproject_stack(psf[None], affine_wcs((cx + 1.0, cy + 1.0), jacobian),
                              linear_wcs(n_out, pixel_scale), n_out, k, "bicubic")[0]
    out = np.clip(np.where(np.isfinite(out), out, 0.0), 0.0, None)
    total = out.sum()
    if not total > 0:
        raise ValueError("psf: the PSF has no positive flux")
    return (out / total).astype(np.float32)


def lenstronomy_psf(psf, pixel_scale, psf_fwhm=None):
    """A lenstronomy ``PSF`` for the physics tools, and a one-line description of it.

    Parameters
    ----------
    psf : array-like (k, k) or None
        PSF sampled on the image pixels (odd ``k``; normalised here to unit
        sum). ``None`` means a circular Gaussian of FWHM ``psf_fwhm``.
    pixel_scale : float
        Arcsec per image pixel.
    psf_fwhm : float or None
        FWHM in arcsec of the assumed Gaussian PSF; None means two image
        pixels.

    Returns
    -------
    psf_class : `lenstronomy.Data.psf.PSF`
    kwargs_psf : dict
        The keywords that build ``psf_class`` (for lenstronomy's fitting classes).
    description : str
    """
    from lenstronomy.Data.psf import PSF

    pixel_scale = float(pixel_scale)
    if psf is None:
        fwhm = 2.0 * pixel_scale if psf_fwhm is None else float(psf_fwhm)
        if not (np.isfinite(fwhm) and fwhm > 0):
            raise ValueError(f"psf_fwhm: expected a positive FWHM in arcsec, got {psf_fwhm!r}")
        # A pixel kernel, not lenstronomy's "GAUSSIAN" type: since lenstronomy 1.14
        # the adaptive supersampling of the refinement refuses Gaussian convolution.
        kernel = gaussian_psf(fwhm, pixel_scale).astype(float)
        desc = (f"assumed Gaussian PSF, FWHM {fwhm:.4g} arcsec "
                f"({fwhm / pixel_scale:.3g} pixels); no PSF was given")
    else:
        kernel = np.asarray(psf, dtype=float)
        if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
            raise ValueError(
                f"psf: expected a square array with an odd number of pixels, got {kernel.shape}")
        if not np.all(np.isfinite(kernel)) or kernel.sum() <= 0:
            raise ValueError("psf: must be finite with a positive sum")
        kernel = kernel / kernel.sum()
        desc = f"pixelised PSF supplied by the caller ({kernel.shape[0]}x{kernel.shape[1]} pixels)"
    kwargs = {"psf_type": "PIXEL", "kernel_point_source": kernel}
    return PSF(**kwargs), kwargs, desc
