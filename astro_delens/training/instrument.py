"""The instrument of the simulations: point-spread functions and pixel noise.

PSF kinds
---------
``gaussian``
    a circular Gaussian;
``moffat``
    a Moffat profile with ``beta`` in 2.5-4.5 (ground-like wings);
``airy``
    an obscured Airy pattern (central obscuration 0.1-0.4) blurred by a small
    Gaussian jitter: the diffraction-limited core and rings of a space telescope;
``file``
    a pixelised PSF read from FITS files (e.g. HST PSF libraries), resampled to
    the image pixel scale with GalSim's `~galsim.InterpolatedImage`.

PSFs are drawn on the image pixel grid (pixel response included), normalised to
unit sum, with an odd size.

Noise
-----
The image is sky-subtracted. Noise is Gaussian with variance
``sigma_sky**2 + model / c`` (sky plus Poisson noise of the sources, in the
Gaussian limit), where ``c`` converts flux to counts. Given the peak
signal-to-noise ``snr`` of the arcs and the sky level ``B`` in counts per pixel,
``c = snr * sqrt(B) / peak(arcs)`` and ``sigma_sky = sqrt(B) / c``.
"""

from __future__ import annotations

from dataclasses import dataclass

import galsim
import numpy as np

__all__ = ["PSFBank", "draw_psf", "psf_stamp_size", "add_noise"]


def psf_stamp_size(fwhm_max: float, pixel_scale: float, minimum: int = 21) -> int:
    """Odd stamp size (pixels) holding a PSF of FWHM ``fwhm_max`` and its wings."""
    n = int(np.ceil(6 * fwhm_max / pixel_scale)) | 1
    return max(n, minimum | 1)


@dataclass
class PSFBank:
    """Pixelised PSFs read from FITS files, for the ``file`` PSF kind.

    Parameters
    ----------
    entries : list of str or (str, float)
        FITS paths, each optionally with its pixel scale in arcsec as
        ``"path:scale"`` or ``(path, scale)``. Without a scale, the header's
        ``PIXSCALE``, ``PIXSCAL1``, ``CDELT1`` or ``CD1_1`` (degrees) is used.
        Every 2-D image and every plane of a 3-D cube in the file is one PSF.
    """

    entries: list

    def __post_init__(self):
        self.images = []  # list of (array, pixel_scale)
        for entry in self.entries:
            path, scale = _split_entry(entry)
            self.images.extend(_read_psf_file(path, scale))
        if not self.images:
            raise ValueError(f"psf_files: no PSF image found in {self.entries!r}")

    def __len__(self):
        return len(self.images)

    def profile(self, index: int) -> galsim.GSObject:
        """The PSF ``index`` as a GalSim profile (unit flux)."""
        array, scale = self.images[index]
        return galsim.InterpolatedImage(galsim.Image(array, scale=scale), normalization="flux")


def _split_entry(entry):
    if isinstance(entry, (tuple, list)):
        return str(entry[0]), float(entry[1])
    text = str(entry)
    head, sep, tail = text.rpartition(":")
    if sep:
        try:
            return head, float(tail)
        except ValueError:
            pass
    return text, None


def _header_scale(header):
    for key in ("PIXSCALE", "PIXSCAL1"):
        if key in header:
            return abs(float(header[key]))
    for key in ("CDELT1", "CD1_1"):
        if key in header:
            return abs(float(header[key])) * 3600.0
    return None


def _read_psf_file(path, scale):
    from astropy.io import fits

    try:
        hdus = fits.open(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"psf_files: cannot read {path!r} as FITS ({exc})") from None
    images = []
    with hdus:
        for hdu in hdus:
            if hdu.data is None or hdu.data.ndim not in (2, 3):
                continue
            pixel_scale = scale or _header_scale(hdu.header)
            if pixel_scale is None:
                raise ValueError(
                    f"psf_files: {path!r} has no pixel scale in its header; give it as "
                    "'path:scale'")
            planes = hdu.data[None] if hdu.data.ndim == 2 else hdu.data
            for plane in planes:
                plane = np.nan_to_num(np.asarray(plane, dtype=float))
                if plane.sum() > 0:
                    images.append((plane / plane.sum(), pixel_scale))
    return images


def draw_psf(kind, fwhm, pixel_scale, npix, rng, bank=None):
    """Draw a PSF on the image pixel grid.

    Parameters
    ----------
    kind : {"gaussian", "moffat", "airy", "file"}
    fwhm : float
        Target FWHM in arcsec (ignored for ``file``, whose PSF has its own).
    pixel_scale : float
        Image pixel scale in arcsec.
    npix : int
        Odd stamp size.
    rng : numpy.random.Generator
    bank : PSFBank, optional
        Required for ``kind="file"``.

    Returns
    -------
    psf : ndarray (npix, npix), unit sum
    measured_fwhm : float
        FWHM of the drawn PSF in arcsec (GalSim's ``calculateFWHM``).
    """
    if kind == "gaussian":
        profile = galsim.Gaussian(fwhm=fwhm)
    elif kind == "moffat":
        profile = galsim.Moffat(beta=rng.uniform(2.5, 4.5), fwhm=fwhm)
    elif kind == "airy":
        obscuration = rng.uniform(0.1, 0.4)
        jitter = galsim.Gaussian(fwhm=0.3 * fwhm)
        # An obscured Airy core has FWHM ~ 1.0 lambda/D; the jitter broadens it a little.
        airy = galsim.Airy(lam_over_diam=0.95 * fwhm / 1.028, obscuration=obscuration)
        profile = galsim.Convolve(airy, jitter)
    elif kind == "file":
        if bank is None or len(bank) == 0:
            raise ValueError("kind: the 'file' PSF kind needs psf_files")
        profile = bank.profile(int(rng.integers(len(bank))))
    else:
        raise ValueError(f"kind: unknown PSF kind {kind!r}")
    image = profile.drawImage(nx=npix, ny=npix, scale=pixel_scale, method="auto")
    measured = image.calculateFWHM()
    psf = np.clip(image.array.astype(float), 0.0, None)
    return (psf / psf.sum()).astype(np.float32), float(measured)


def add_noise(model, arcs_peak, snr, sky_counts, rng):
    """Add sky and Poisson noise to a noiseless sky-subtracted ``model``.

    Parameters
    ----------
    model : ndarray
        Noiseless image (arcs plus lens light), flux per pixel.
    arcs_peak : float
        Peak of the arcs alone, which ``snr`` refers to.
    snr : float
        Peak signal-to-noise ratio of the arcs against the sky noise.
    sky_counts : float
        Sky level in counts per pixel (sets how much Poisson noise the sources add).
    rng : numpy.random.Generator

    Returns
    -------
    image, noise_map : ndarray
        The noisy image and its 1-sigma noise map (flux per pixel).
    """
    counts_per_flux = snr * np.sqrt(sky_counts) / arcs_peak
    variance = (sky_counts + counts_per_flux * np.clip(model, 0.0, None)) / counts_per_flux**2
    noise_map = np.sqrt(variance)
    image = model + rng.normal(size=model.shape) * noise_map
    return image.astype(np.float32), noise_map.astype(np.float32)
