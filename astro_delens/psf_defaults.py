"""The PSF width to assume for an image that came without a PSF.

The networks do not need a PSF, but the re-lensing check
(`astro_delens.forward.relens_check`) convolves its model with one. When the
user gives none, `assumed_psf_fwhm` picks a Gaussian FWHM appropriate to the
data, in this order:

1. a FWHM keyword of the image header (``PSF_FWHM``, ``PSFFWHM``, ``FWHM``,
   ``SEEING``; arcsec, or pixels when the keyword's comment says so);
2. the instrument named by ``TELESCOP``/``INSTRUME``/``DETECTOR``/``PHOTMODE``/``FILTER``
   (typical in-focus FWHMs of HST ACS and WFC3, Euclid VIS, and the
   diffraction limit of JWST NIRCam at the filter's wavelength);
3. the geometric mean of the model preset's training range of PSF FWHMs.

The choice and its reason are recorded in the prepared cutout and stated in
the check's output (`psf_keywords` turns a prepared cutout into the PSF
keywords of `astro_delens.forward`); a PSF image from the user is always
better.

Examples
--------
>>> from astropy.io import fits
>>> from astro_delens.presets import get_preset
>>> h = fits.Header({"TELESCOP": "JWST", "INSTRUME": "NIRCAM", "FILTER": "F444W"})
>>> fwhm, why = assumed_psf_fwhm(h, get_preset("survey"), pixel_scale=0.03)
>>> round(fwhm, 3), why
(0.145, 'JWST NIRCam F444W diffraction limit')
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["assumed_psf_fwhm", "psf_keywords", "INSTRUMENT_FWHM", "INSTRUMENT_KEYWORDS",
           "FWHM_KEYWORDS"]

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
    ``psf_fwhm`` in pixels) and a sentence saying so and why.
    """
    if prepared.psf is not None:
        return {"psf": np.asarray(prepared.psf)}, None
    fwhm, reason = prepared.assumed_psf_fwhm, prepared.assumed_psf_reason
    if fwhm is None:  # a cutout made by hand, without an assumption
        fwhm, reason = assumed_psf_fwhm(None, prepared.preset, prepared.pixel_scale)
    return {"psf": None, "psf_fwhm": fwhm / prepared.pixel_scale}, \
        f"assumed Gaussian PSF, FWHM {fwhm:.3g} arcsec ({reason}); no PSF was given"
