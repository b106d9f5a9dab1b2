"""Turn any input image into a prepared cutout on a model's grid.

`prepare_cutout` is the single entry point used by
`~astro_delens.LensParameterEstimator` and `~astro_delens.SourceReconstructor`
(as `reproject`'s ``parse_input_data`` is for reproject). It accepts

* the name of a FITS file (``str`` or `pathlib.Path`; ``"file.fits[SCI]"`` picks
  an extension, as does the ``hdu`` keyword),
* an `~astropy.io.fits.HDUList` or an image HDU,
* an `~astropy.nddata.NDData` (e.g. `~astropy.nddata.CCDData`): its ``wcs``,
  ``uncertainty`` (any of `~astropy.nddata.StdDevUncertainty`,
  `~astropy.nddata.VarianceUncertainty`, `~astropy.nddata.InverseVariance`),
  ``mask`` and ``unit`` are used,
* a `~astropy.units.Quantity` or a `numpy.ndarray` (then ``pixel_scale`` is
  required and the array is taken to be in the standard sky orientation:
  north up and east left when shown with ``origin="lower"``),

and returns a `PreparedCutout` on the model's grid (``preset.npix`` x
``preset.npix`` pixels of ``preset.pixel_scale``), north up and east left,
centred on ``position``. The steps, each recorded in ``PreparedCutout.steps``:

1. **read**: data, WCS (celestial only), unit, noise, mask;
2. **cutout**: `~astropy.nddata.Cutout2D` around ``position`` (partial overlap
   padded and masked);
3. **background**: a constant sky level, the sigma-clipped median of the pixels
   outside the sources found by `photutils.segmentation` (skipped with
   ``background_subtracted=True``);
4. **noise**: the given noise map (or uncertainty) converted to a standard
   deviation, or else the sigma-clipped standard deviation of the sky pixels
   (a sky-only noise: without a gain the Poisson noise of the sources is unknown);
5. **resample**: with `reproject.reproject_interp` onto a north-up, east-left
   TAN WCS centred on ``position`` (or, without a celestial WCS, onto a linear
   grid of offsets in arcsec), with sub-pixel integration when the input pixels
   are smaller than the model's (each model pixel is the mean of ``k x k``
   bicubic samples, like the simulator's pixel integration). Flux per pixel is
   scaled by the ratio of pixel areas (not for surface-brightness units, e.g.
   ``MJy/sr``); the noise map is propagated through the same operator. When
   the input grid already equals the model's grid up to a whole-pixel shift the
   pixels are copied unchanged (the centre then moves by up to half a pixel);
6. **mask**: user mask, NaN/inf pixels, pixels with no noise information and
   pixels outside the data or outside ``size`` are masked; masked pixels are 0 in
   the image (see `astro_delens.nn.normalization`);
7. **contaminants**: sources found by `photutils.segmentation` that lie wholly
   outside the region where arcs can appear are masked (``mask_contaminants``);
8. **psf**: a given PSF is resampled onto the model grid (same orientation) and
   its FWHM measured; without one, the FWHM of the Gaussian that the physics
   checks will assume is chosen from the header, the instrument or the preset
   (`astro_delens.psf`) and recorded.

Inputs outside the model's training domain give an
`~astro_delens.exceptions.OutOfDomainWarning`; bad inputs raise `ValueError`,
`TypeError` or `OSError` naming the argument.

Examples
--------
>>> import numpy as np
>>> import astropy.units as u
>>> from astro_delens.cutout import prepare_cutout
>>> rng = np.random.default_rng(0)
>>> image = rng.normal(0.0, 0.01, (120, 120))
>>> image[58:62, 58:62] += 1.0
>>> prepared = prepare_cutout(image, "survey", pixel_scale=0.05 * u.arcsec)
>>> prepared.image.shape, prepared.pixel_scale
((96, 96), 0.1)
>>> [step["step"] for step in prepared.steps]
['read', 'cutout', 'background', 'noise', 'resample', 'mask', 'contaminants', 'psf']
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

import astropy.units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import (
    Cutout2D,
    InverseVariance,
    NDData,
    NDUncertainty,
    StdDevUncertainty,
    VarianceUncertainty,
)
from astropy.stats import sigma_clipped_stats
from astropy.wcs import WCS, FITSFixedWarning

from .exceptions import OutOfDomainWarning, PreprocessingWarning
from .presets import Preset, get_preset
from .grids import GRID_TOLERANCE, affine_wcs, linear_wcs, reproject_stack, tan_wcs
from .psf import (
    FWHM_KEYWORDS,
    INSTRUMENT_KEYWORDS,
    assumed_psf_fwhm,
    gaussian_psf,
    measure_fwhm,
    resample_psf,
)

__all__ = ["PreparedCutout", "prepare_cutout", "parse_input_data", "field_holds_arcs",
           "ACCEPTED_INPUTS", "ARC_REACH"]

#: What ``data`` may be, for error messages.
ACCEPTED_INPUTS = (
    "a FITS file name (str or pathlib.Path), an astropy.io.fits HDUList or image HDU, "
    "an astropy.nddata.NDData (e.g. CCDData), an astropy.units.Quantity or a numpy.ndarray"
)

#: A resampled pixel is masked when more than this fraction of its value
#: comes from masked input pixels.
MASK_THRESHOLD = 0.1
#: A noise value this many times the median noise marks a bad pixel
#: (e.g. the 1e16 of Euclid MER RMS maps).
NOISE_SENTINEL_FACTOR = 1e6
#: The sky is smooth, not noisy (a noise-free image), when the rms of the
#: second differences of neighbouring sky pixels (over sqrt(6)) is below this
#: fraction of the sky's rms: white noise gives 1, real drizzled HST, Euclid
#: and JWST images 0.09-0.84, the faint wings of noise-free simulations 0.01.
SMOOTH_SKY_FRACTION = 0.03
#: A sky rms below this fraction of the image's peak is rounding error: the
#: image is noise-free (a simulation).
NOISE_FREE_FRACTION = 1e-9

_EXT_RE = re.compile(r"^(?P<path>.+)\[(?P<ext>[^\[\]]+)\]$")


#: Keyword arguments of `prepare_cutout` that the public classes accept from users.
PREPARE_KEYWORDS = ("pixel_scale", "position", "size", "noise", "psf", "mask", "hdu",
                    "background_subtracted", "mask_contaminants")


# --------------------------------------------------------------------------
# the result
# --------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class PreparedCutout:
    """An image on a model's grid, ready for the networks (see `prepare_cutout`).

    Attributes
    ----------
    image : numpy.ndarray, shape (npix, npix), float32
        Background-subtracted image, flux per model pixel in ``unit``, north up
        and east left (row 0 south, column 0 east); 0 where masked.
    noise_map : numpy.ndarray, shape (npix, npix), float32
        1-sigma noise per pixel (the median noise where masked).
    mask : numpy.ndarray, shape (npix, npix), bool
        True where a pixel must be ignored.
    pixel_scale : float
        Model pixel scale in arcsec.
    wcs : astropy.wcs.WCS
        WCS of the model grid: celestial (TAN) when the input had a celestial
        WCS, else linear offsets in arcsec from the grid centre (x east, y north).
    center : astropy.coordinates.SkyCoord or None
        Sky position of the grid centre (ICRS), when known.
    psf : numpy.ndarray or None
        The PSF resampled onto the model grid (sum 1), when one was given.
    psf_fwhm : float or None
        FWHM of that PSF in arcsec.
    unit : astropy.units.UnitBase or None
        Unit of the image (None when unknown).
    preset : Preset
        The preset whose grid this is.
    label : str
        A short identifier of the input (file name and HDU, or the type).
    steps : tuple of dict
        The preprocessing log: one dict per step with its parameters.
    input_pixel_scale : float
        Pixel scale of the input in arcsec (geometric mean of the two axes).
    field_radius : float
        Radius in arcsec of the largest disc about the centre covered by data.
    domain_warnings : tuple of (str, str)
        ``(code, message)`` of every `OutOfDomainWarning` emitted.
    input_center : tuple of float
        Zero-based ``(x, y)`` pixel of the input image at the grid centre.
    input_jacobian : numpy.ndarray, shape (2, 2)
        d(east, north)/d(x, y) of the input image at that pixel (arcsec per pixel).
    assumed_psf_fwhm : float or None
        Without a PSF: the FWHM in arcsec of the Gaussian PSF that the re-lensing
        check assumes (see `astro_delens.psf`); None when a PSF was given.
    assumed_psf_reason : str
        Why that FWHM was chosen (header keyword, instrument, or preset).
    """

    image: np.ndarray
    noise_map: np.ndarray
    mask: np.ndarray
    pixel_scale: float
    wcs: WCS
    center: SkyCoord | None
    psf: np.ndarray | None
    psf_fwhm: float | None
    unit: u.UnitBase | None
    preset: Preset
    label: str
    steps: tuple = ()
    input_pixel_scale: float = float("nan")
    field_radius: float = float("nan")
    domain_warnings: tuple = field(default=())
    input_center: tuple = (float("nan"), float("nan"))
    input_jacobian: np.ndarray | None = None
    assumed_psf_fwhm: float | None = None
    assumed_psf_reason: str = ""

    def without_arrays(self) -> "PreparedCutout":
        """A copy without the image, noise, mask and PSF arrays (keeps the WCS and the log)."""
        return replace(self, image=None, noise_map=None, mask=None, psf=None)

    @property
    def shape(self):
        return self.image.shape

    @property
    def celestial(self) -> bool:
        """True when the grid has a celestial WCS."""
        return self.center is not None

    def offset_to_input_pixel(self, x, y):
        """Input-image pixel ``(x, y)`` (zero-based) of an offset from the grid centre.

        ``x`` east and ``y`` north in arcsec; exact for inputs without a WCS,
        linearised about the centre for a celestial WCS (use the SkyCoord there).
        """
        offset = np.array([float(x), float(y)])
        dx, dy = np.linalg.solve(self.input_jacobian, offset)
        return self.input_center[0] + dx, self.input_center[1] + dy

    def to_nddata(self):
        """The prepared image as a `~astropy.nddata.CCDData` (uncertainty, mask, WCS, unit)."""
        from astropy.nddata import CCDData

        return CCDData(
            self.image.copy(),
            uncertainty=StdDevUncertainty(self.noise_map.copy()),
            mask=self.mask.copy(),
            wcs=self.wcs.deepcopy(),
            unit=self.unit if self.unit is not None else u.dimensionless_unscaled,
            meta={"label": self.label, "steps": [dict(s) for s in self.steps]},
        )

    def __repr__(self):
        centre = (
            f"{self.center.to_string('hmsdms', precision=2)}" if self.center is not None
            else "offsets"
        )
        return (
            f"<PreparedCutout {self.label!r}: {self.image.shape[0]}x{self.image.shape[1]} at "
            f"{self.pixel_scale:g}\"/pix, centre {centre}, {int(self.mask.sum())} masked pixels>"
        )


@dataclass
class _Input:
    """What `parse_input_data` extracts from any accepted input."""

    data: np.ndarray
    wcs: WCS | None = None
    wcs_error: str | None = None
    unit: u.UnitBase | None = None
    std: np.ndarray | None = None
    std_source: str | None = None
    mask: np.ndarray | None = None
    header: fits.Header | None = None
    label: str = "array"
    hdulist_path: str | None = None
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------
def _as_2d(array, name):
    arr = np.asarray(array)
    if np.iscomplexobj(arr):
        raise TypeError(f"{name}: complex arrays are not supported")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D image, got an array of shape {arr.shape}")
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ValueError(f"{name}: the image of shape {arr.shape} is too small")
    return arr


def _parse_unit(value):
    """A unit from a BUNIT-like string; an `UnrecognizedUnit` when nothing fits."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, u.UnitBase):
        return value
    text = str(value).strip()
    low = text.lower()
    candidates = [
        (text, "generic"), (text, "fits"), (low, "generic"),
        (low.replace("electrons", "electron").replace("counts", "count"), "generic"),
        (low.replace("e-", "electron"), "generic"),
    ]
    for candidate, fmt in candidates:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return u.Unit(candidate, format=fmt)
        except (ValueError, TypeError):
            continue
    return u.Unit(text, parse_strict="silent")


def _is_surface_brightness(unit):
    """True for units per solid angle (e.g. MJy/sr), whose values do not scale with pixel area."""
    if unit is None or isinstance(unit, u.UnrecognizedUnit):
        return False
    try:
        for base, power in zip(unit.bases, unit.powers):
            if power < 0 and base.physical_type in ("angle", "solid angle"):
                return True
    except AttributeError:
        return False
    return False


def _angle_value(value, name, *, allow_pair=False):
    """Arcsec value(s) of an angle given as a Quantity (angle or angle/pix) or a number (arcsec)."""
    if isinstance(value, u.Quantity):
        q = value
        if q.unit.physical_type != "angle":
            try:
                q = q * u.pix
                if q.unit.physical_type != "angle":
                    raise u.UnitsError
            except u.UnitsError:
                raise ValueError(
                    f"{name}: expected an angle (e.g. 0.05 * u.arcsec), got unit {value.unit}"
                ) from None
        arr = np.asarray(q.to_value(u.arcsec), dtype=float)
    else:
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name}: expected an angle (astropy Quantity) or a number of arcsec, "
                f"got {type(value).__name__}"
            ) from None
    if arr.ndim == 0:
        arr = np.array([float(arr), float(arr)])
    elif not (allow_pair and arr.shape == (2,)):
        raise ValueError(f"{name}: expected a scalar angle, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name}: must be finite and positive, got {value!r}")
    return arr


def _std_from_uncertainty(unc, data_unit, name):
    """Standard deviation array from any NDUncertainty, in the data's unit."""
    arr = np.asarray(unc.array, dtype=float)
    unc_unit = getattr(unc, "unit", None)
    with np.errstate(divide="ignore", invalid="ignore"):
        if isinstance(unc, StdDevUncertainty):
            std, std_unit = arr, unc_unit
        elif isinstance(unc, VarianceUncertainty):
            std = np.sqrt(arr)
            std_unit = unc_unit ** 0.5 if unc_unit is not None else None
            if np.any(arr < 0):
                raise ValueError(f"{name}: the variance has negative values")
        elif isinstance(unc, InverseVariance):
            if np.any(arr < 0):
                raise ValueError(f"{name}: the inverse variance has negative values")
            std = 1.0 / np.sqrt(arr)
            std_unit = unc_unit ** -0.5 if unc_unit is not None else None
        else:
            try:
                converted = unc.represent_as(StdDevUncertainty)
            except Exception:
                raise TypeError(
                    f"{name}: cannot convert a {type(unc).__name__} to a standard deviation; "
                    "use StdDevUncertainty, VarianceUncertainty or InverseVariance"
                ) from None
            std, std_unit = np.asarray(converted.array, dtype=float), converted.unit
    if std_unit is not None and data_unit is not None and std_unit != data_unit:
        try:
            std = (std * std_unit).to_value(data_unit)
        except u.UnitConversionError:
            raise ValueError(
                f"{name}: unit {std_unit} is not compatible with the data unit {data_unit}"
            ) from None
    return std


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------
def _split_extension(path):
    """``"file.fits[SCI]"`` -> ("file.fits", "SCI"); ("file.fits", None) otherwise."""
    text = os.fspath(path)
    if os.path.exists(text):
        return text, None
    match = _EXT_RE.match(text)
    if match and os.path.exists(match["path"]):
        ext = match["ext"]
        if ext.lstrip("-").isdigit():
            ext = int(ext)
        elif "," in ext:
            name, ver = ext.split(",", 1)
            ext = (name.strip(), int(ver))
        return match["path"], ext
    return text, None


def _resolve_reference(value, ref_path):
    """``(path, ext)`` of a noise / mask / PSF given as a string.

    A FITS file (``"noise.fits"`` or ``"noise.fits[ERR]"``), or, when the data
    came from a file, the name or number of one of its extensions (``"ERR"``,
    ``"[2]"``). Strings that look like file names are never taken as extensions.
    """
    text = os.fspath(value)
    path, ext = _split_extension(text)
    looks_like_file = (os.sep in text or "." in text.split("[")[0])
    if not os.path.exists(path) and ref_path is not None and not looks_like_file:
        ext = text.strip("[]")
        return ref_path, int(ext) if ext.lstrip("-").isdigit() else ext
    return path, ext


@contextlib.contextmanager
def _fits_for(path, name, ref):
    """The HDUList of ``path``; the data's own (already read) HDUList when it is that file."""
    ref_path, ref_hdul = ref if ref is not None else (None, None)
    if ref_hdul is not None and path == ref_path:
        yield ref_hdul
        return
    hdul = _open_fits(path, name)
    try:
        yield hdul
    finally:
        hdul.close()


def _open_fits(path, name):
    """Open a FITS file fully into memory; OSError naming ``name`` when that fails."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
            for h in hdul:  # force the data to load while the file is open
                _ = h.data
        return hdul
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: no such file: {path!r}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{name}: {path!r} is a directory, not a FITS file") from None
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError, ...
        raise OSError(f"{name}: cannot read {path!r} as a FITS file ({exc})") from None


def _is_image_hdu(h):
    return isinstance(h, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)) and (
        h.data is not None and np.ndim(h.data) >= 2
    )


def _select_hdu(hdul, hdu, name, source):
    if hdu is not None:
        try:
            selected = hdul[hdu]
        except (KeyError, IndexError):
            names = [h.name or str(i) for i, h in enumerate(hdul)]
            arg = "hdu" if name == "data" else name
            raise ValueError(f"{arg}: no HDU {hdu!r} in {source}; it has {names}") from None
        if not _is_image_hdu(selected):
            arg = "hdu" if name == "data" else name
            raise ValueError(f"{arg}: HDU {hdu!r} of {source} holds no image data")
        return selected, hdu
    for i, h in enumerate(hdul):
        if _is_image_hdu(h):
            return h, (h.name if h.name and h.name != "PRIMARY" else i)
    raise ValueError(f"{name}: {source} holds no image HDU")


def _declares_celestial(header):
    ctypes = [str(header.get(f"CTYPE{i}", "")).upper() for i in (1, 2)]
    return any(c[:4] in ("RA--", "DEC-", "GLON", "GLAT", "ELON", "ELAT") for c in ctypes)


def _wcs_from_header(header):
    """(celestial WCS or None, error message or None)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            w = WCS(header, relax=True)
    except Exception as exc:
        reason = " ".join(str(exc).split())
        if _declares_celestial(header):
            return None, f"the WCS is broken (it cannot be parsed: {reason})"
        return None, f"the header WCS cannot be parsed ({reason})"
    if not w.has_celestial:
        return None, None
    return w.celestial, None


def _header_pixel_scale(header):
    """Pixel scale (arcsec; x, y) from PIXSCALE-like keywords of a header without a WCS."""
    if header is None:
        return None
    for kx, ky in (("PIXSCAX", "PIXSCAY"), ("PIXSCAL1", "PIXSCAL2")):
        if kx in header and ky in header:
            try:
                return np.array([float(header[kx]), float(header[ky])])
            except (TypeError, ValueError):
                pass
    for key in ("PIXSCALE", "PIXSCAL", "PIXELSCL"):
        if key in header:
            try:
                v = float(header[key])
            except (TypeError, ValueError):
                continue
            if v > 0:
                return np.array([v, v])
    return None


def _from_hdu(h, label):
    header = h.header.copy()
    wcs, err = _wcs_from_header(header)
    return _Input(
        data=_as_2d(h.data, "data"),
        wcs=wcs,
        wcs_error=err,
        unit=_parse_unit(header.get("BUNIT")),
        header=header,
        label=label,
    )


def parse_input_data(data, *, hdu=None) -> _Input:
    """Extract the image, WCS, unit, noise and mask from any accepted input.

    Parameters
    ----------
    data : str, pathlib.Path, HDUList, image HDU, NDData, Quantity or ndarray
        See the module docstring.
    hdu : int, str or tuple, optional
        The HDU of a FITS file or HDUList (default: the first with an image).

    Returns
    -------
    object
        With attributes ``data`` (2-D array, not a copy: never modify it), ``wcs`` (celestial
        `~astropy.wcs.WCS` or None), ``unit``, ``std`` (noise as standard
        deviation or None), ``mask`` (bool or None), ``header`` and ``label``.

    Raises
    ------
    TypeError
        If ``data`` is of no accepted type.
    OSError
        If a file cannot be read as FITS.
    ValueError
        If the image is not 2-D or the HDU does not exist.
    """
    if isinstance(data, (str, os.PathLike)):
        path, ext = _split_extension(data)
        if ext is not None and hdu is not None and ext != hdu:
            raise ValueError(f"hdu: {hdu!r} conflicts with the extension in {os.fspath(data)!r}")
        hdu = hdu if hdu is not None else ext
        hdul = _open_fits(path, "data")
        try:
            selected, which = _select_hdu(hdul, hdu, "data", repr(path))
            out = _from_hdu(selected, f"{Path(path).name}[{which}]")
            out.hdulist_path = path
            out.extra["hdulist"] = hdul  # its data are in memory: reused for noise, PSF, mask
            out.extra["primary_header"] = hdul[0].header.copy()
        finally:
            hdul.close()
        return out
    if isinstance(data, fits.HDUList):
        selected, which = _select_hdu(data, hdu, "data", "the HDUList")
        filename = data.filename()
        label = f"{Path(filename).name if filename else 'HDUList'}[{which}]"
        return _from_hdu(selected, label)
    if isinstance(data, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
        if data.data is None:
            raise ValueError("data: the HDU holds no data")
        return _from_hdu(data, f"HDU[{data.name or 'PRIMARY'}]")
    if isinstance(data, NDData):
        arr = _as_2d(data.data, "data")
        wcs = data.wcs
        wcs_err = None
        if wcs is not None:
            low = getattr(wcs, "low_level_wcs", wcs)
            if isinstance(low, WCS):
                wcs = low.celestial if low.has_celestial else None
            else:
                raise TypeError(
                    f"data.wcs: only astropy.wcs.WCS is supported, got {type(wcs).__name__}"
                )
        unit = data.unit
        if isinstance(data.data, u.Quantity):
            unit = data.data.unit
            arr = _as_2d(data.data.value, "data")
        std = None
        if data.uncertainty is not None:
            if not isinstance(data.uncertainty, NDUncertainty):
                raise TypeError("data.uncertainty: expected an astropy NDUncertainty")
            std = _std_from_uncertainty(data.uncertainty, unit, "data.uncertainty")
        mask = None
        if data.mask is not None:
            mask = np.array(data.mask) != 0
        header = None
        if isinstance(data.meta, fits.Header):
            header = data.meta.copy()
        name = type(data).__name__
        return _Input(
            data=arr, wcs=wcs, wcs_error=wcs_err, unit=unit, std=std,
            std_source=f"{name}.uncertainty ({type(data.uncertainty).__name__})"
            if std is not None else None,
            mask=mask,
            header=header, label=name,
        )
    if isinstance(data, u.Quantity):
        return _Input(data=_as_2d(data.value, "data"), unit=data.unit, label="Quantity")
    if isinstance(data, np.ma.MaskedArray):
        arr = _as_2d(np.ma.getdata(data), "data")
        mask = np.ma.getmaskarray(data).reshape(arr.shape)
        return _Input(data=arr, mask=mask, label="MaskedArray")
    if isinstance(data, np.ndarray):
        return _Input(data=_as_2d(data, "data"), label="ndarray")
    raise TypeError(f"data: expected {ACCEPTED_INPUTS}; got {type(data).__name__}")


def _read_aux_array(value, name, shape, ref=None):
    """Array of an auxiliary input (noise, mask): ndarray, Quantity, HDU, NDData or FITS name.

    A string that is not an existing file but names an extension (``"VIS_RMS"``
    or ``"[2]"``) is looked up in ``ref``, ``(path, HDUList)`` of the file the data came from.
    """
    unit = None
    if isinstance(value, (str, os.PathLike)):
        path, ext = _resolve_reference(value, ref[0] if ref else None)
        with _fits_for(path, name, ref) as hdul:
            selected, _ = _select_hdu(hdul, ext, name, repr(path))
            arr = np.array(selected.data, dtype=float)
            unit = _parse_unit(selected.header.get("BUNIT"))
    elif isinstance(value, fits.HDUList):
        selected, _ = _select_hdu(value, None, name, "the HDUList")
        arr = np.array(selected.data, dtype=float)
    elif isinstance(value, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
        arr = np.array(value.data, dtype=float)
        unit = _parse_unit(value.header.get("BUNIT"))
    elif isinstance(value, NDData):
        arr = np.array(value.data, dtype=float)
        unit = value.unit
    elif isinstance(value, u.Quantity):
        arr, unit = np.array(value.value, dtype=float), value.unit
    else:
        try:
            arr = np.array(value, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name}: expected an array, a Quantity, an HDU or a FITS file name, "
                f"got {type(value).__name__}"
            ) from None
    if shape is not None and arr.ndim != 0:
        while arr.ndim > 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.shape != tuple(shape):
            raise ValueError(f"{name}: shape {arr.shape} does not match the data shape {shape}")
    return arr, unit


def _parse_noise(noise, inp, ref):
    """(std array or None, description) from the ``noise`` argument or the input's uncertainty."""
    shape = inp.data.shape
    if noise is None:
        if inp.std is not None:
            std = np.array(inp.std, dtype=float)
            if std.shape != shape:
                raise ValueError(
                    f"data.uncertainty: shape {std.shape} does not match the data shape {shape}"
                )
            return std, inp.std_source
        return None, None
    if isinstance(noise, NDUncertainty):
        std = _std_from_uncertainty(noise, inp.unit, "noise")
        desc = f"noise ({type(noise).__name__})"
    else:
        std, unit = _read_aux_array(noise, "noise", shape, ref)
        if unit is not None and inp.unit is not None and unit != inp.unit:
            try:
                std = (std * unit).to_value(inp.unit)
            except u.UnitConversionError:
                raise ValueError(
                    f"noise: unit {unit} is not compatible with the data unit {inp.unit}"
                ) from None
        desc = "noise (constant)" if np.ndim(std) == 0 else "noise map"
        if isinstance(noise, (str, os.PathLike)):
            desc = f"noise map {os.fspath(noise)!r}"
    std = np.broadcast_to(np.asarray(std, dtype=float), shape).copy()
    if np.ndim(std) != 2 or std.shape != shape:
        raise ValueError(f"noise: shape {np.shape(std)} does not match the data shape {shape}")
    if np.any(std[np.isfinite(std)] < 0):
        raise ValueError("noise: the noise map has negative values (expected 1-sigma >= 0)")
    return std, desc


def _parse_mask(mask, inp, ref):
    shape = inp.data.shape
    if mask is None:
        return None
    arr, _ = _read_aux_array(mask, "mask", shape, ref)
    if arr.ndim != 2:
        raise ValueError(f"mask: expected a 2-D array of the data shape {shape}")
    return np.asarray(arr != 0)  # NaN counts as masked


# --------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------
def _check_celestial_wcs(wcs, shape):
    """Raise ValueError when a celestial WCS cannot map the image centre both ways."""
    try:
        matrix = wcs.pixel_scale_matrix
        det = float(np.linalg.det(matrix))
        cy, cx = (np.asarray(shape) - 1) / 2.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            world = wcs.pixel_to_world_values(cx, cy)
            back = wcs.world_to_pixel_values(*world)
    except Exception as exc:
        raise ValueError(f"data: the WCS is broken ({exc})") from None
    if not np.isfinite(det) or det == 0.0:
        raise ValueError("data: the WCS is broken (its pixel scale matrix is singular)")
    if not (np.all(np.isfinite(world)) and np.all(np.isfinite(back))) or np.hypot(
        back[0] - cx, back[1] - cy
    ) > 1e-3:
        raise ValueError("data: the WCS is broken (it cannot map the image centre to the sky)")


def _local_jacobian(wcs, x, y):
    """d(east, north)/d(x, y) in arcsec per pixel at pixel (x, y) of a celestial WCS."""
    xs = np.array([x, x + 0.5, x - 0.5, x, x])
    ys = np.array([y, y, y, y + 0.5, y - 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sky = wcs.pixel_to_world(xs, ys)
    sky = sky.icrs if hasattr(sky, "icrs") else sky
    dlon, dlat = sky[0].spherical_offsets_to(sky[1:])
    e = dlon.to_value(u.arcsec)
    n = dlat.to_value(u.arcsec)
    jac = np.array([[e[0] - e[1], e[2] - e[3]], [n[0] - n[1], n[2] - n[3]]])
    if not np.all(np.isfinite(jac)) or abs(np.linalg.det(jac)) == 0:
        raise ValueError("data: the WCS is broken (no finite pixel scale at the position)")
    return jac, sky[0]


def _parse_position(position, inp, wcs):
    """Pixel (x, y) of the cutout centre, and its SkyCoord when the WCS is celestial."""
    ny, nx = inp.data.shape
    if position is None:
        x, y = (nx - 1) / 2.0, (ny - 1) / 2.0
    elif isinstance(position, SkyCoord):
        if not position.isscalar:
            raise ValueError("position: expected a single SkyCoord, not an array of them")
        if wcs is None:
            reason = f": {inp.wcs_error}" if inp.wcs_error else ""
            raise ValueError(
                "position: a SkyCoord position needs data with a celestial WCS, "
                f"but {inp.label} has none{reason}; give a pixel position (x, y) instead"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                x, y = (float(v) for v in wcs.world_to_pixel(position))
        except Exception as exc:
            raise ValueError(f"position: cannot convert {position} to pixels ({exc})") from None
    else:
        if isinstance(position, u.Quantity):
            if position.unit not in (u.pix, u.dimensionless_unscaled):
                raise ValueError(
                    f"position: a Quantity position must be in pixels, got {position.unit}"
                )
            position = position.value
        try:
            pos = np.asarray(position, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(
                "position: expected a SkyCoord or a pixel position (x, y), "
                f"got {type(position).__name__}"
            ) from None
        if pos.shape != (2,):
            raise ValueError(f"position: expected a pixel position (x, y), got shape {pos.shape}")
        x, y = float(pos[0]), float(pos[1])
    if not (np.isfinite(x) and np.isfinite(y)):
        raise ValueError(f"position: ({x}, {y}) is not finite (off the WCS's sky?)")
    if not (-0.5 <= x <= nx - 0.5 and -0.5 <= y <= ny - 0.5):
        raise ValueError(
            f"position: pixel ({x:.1f}, {y:.1f}) is off the image of {nx} x {ny} pixels"
        )
    return x, y


# --------------------------------------------------------------------------
# image statistics
# --------------------------------------------------------------------------
def _clipped_stats(values, **kwargs):
    """`~astropy.stats.sigma_clipped_stats` of a 1-D array, as floats.

    Given as one row with ``axis=1``, which takes astropy's compiled clipping
    path: the same numbers, in half the time.
    """
    mean, median, std = sigma_clipped_stats(np.asarray(values)[None, :], axis=1, **kwargs)
    return float(mean[0]), float(median[0]), float(std[0])


def _source_mask(data, bad, rms_guess=None):
    """Pixels covered by sources (photutils segmentation), dilated by a few pixels."""
    from photutils.segmentation import detect_sources
    from photutils.utils import circular_footprint
    from scipy.ndimage import binary_dilation

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if rms_guess is None:
            _, med, rms = _clipped_stats(data[~bad], sigma=3.0, maxiters=10)
        else:
            med, rms = 0.0, rms_guess
        if not np.isfinite(rms) or rms <= 0:
            return np.zeros_like(bad)
        # n_pixels given by position: photutils < 2 calls it npixels
        segm = detect_sources(np.where(bad, med, data) - med, 2.0 * rms, 5, mask=bad)
    if segm is None:
        return np.zeros_like(bad)
    return binary_dilation(segm.data > 0, structure=circular_footprint(2).astype(bool))


def _sky_statistics(data, bad):
    """(background, rms, number of sky pixels, smooth) from the pixels outside the sources.

    ``smooth`` is True when the sky varies far less from pixel to pixel than
    across the cutout (`SMOOTH_SKY_FRACTION`), or its rms is rounding error
    (`NOISE_FREE_FRACTION`): the image is noise-free, and what looks like sky
    is the smooth wings of the lens and arcs, not noise.
    """
    from astropy.stats import mad_std

    sources = _source_mask(data, bad)
    sky = ~(bad | sources)
    n_sky = int(sky.sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if n_sky >= 50:
            _, median, std = _clipped_stats(data[sky], sigma=3.0, maxiters=10,
                                            stdfunc="mad_std")
        else:
            _, median, std = _clipped_stats(data[~bad], sigma=2.5, maxiters=20,
                                            stdfunc="mad_std")
    triples = sky[:, 2:] & sky[:, 1:-1] & sky[:, :-2]
    # a sky rms that is rounding error (~1e-15 of the peak): a noise-free image
    smooth = bool(0 < std <= NOISE_FREE_FRACTION * np.max(np.abs(data[~bad]), initial=0.0))
    if not smooth and triples.sum() >= 50 and np.isfinite(std) and std > 0:
        # second differences: blind to gradients; sqrt(6) sigma for white noise
        second = data[:, 2:] - 2.0 * data[:, 1:-1] + data[:, :-2]
        smooth = float(mad_std(second[triples])) / np.sqrt(6.0) < SMOOTH_SKY_FRACTION * std
    return float(median), float(std), n_sky, smooth


# --------------------------------------------------------------------------
# resampling
# --------------------------------------------------------------------------
def _parse_psf(psf, inp, in_jac, in_scale, preset, ref, steps):
    """The PSF on the model grid and its FWHM in arcsec (None, None without a PSF)."""
    if psf is None:
        return None, None
    d = preset.pixel_scale
    if isinstance(psf, u.Quantity) and psf.unit.physical_type == "angle" and psf.isscalar:
        fwhm = float(psf.to_value(u.arcsec))
        if not (np.isfinite(fwhm) and fwhm > 0):
            raise ValueError(f"psf: a FWHM must be positive, got {psf}")
        out = gaussian_psf(fwhm, d)
        steps.append({"step": "psf", "kind": "gaussian", "fwhm_arcsec": fwhm,
                      "shape": list(out.shape)})
        return out, fwhm
    header_scale = None
    if isinstance(psf, (str, os.PathLike)):
        path, ext = _resolve_reference(psf, ref[0] if ref else None)
        with _fits_for(path, "psf", ref) as hdul:
            selected, _ = _select_hdu(hdul, ext, "psf", repr(path))
            arr = np.array(selected.data, dtype=float)
            header_scale = _header_pixel_scale(selected.header)
        source = f"{Path(path).name}[{ext if ext is not None else 0}]"
    elif isinstance(psf, (fits.PrimaryHDU, fits.ImageHDU)):
        arr = np.array(psf.data, dtype=float)
        header_scale = _header_pixel_scale(psf.header)
        source = "HDU"
    else:
        arr, _ = _read_aux_array(psf, "psf", None)
        source = type(psf).__name__
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or min(arr.shape) < 3:
        raise ValueError(f"psf: expected a 2-D PSF image of at least 3 x 3 pixels, got {arr.shape}")
    if not np.any(np.isfinite(arr)) or not np.nanmax(arr) > 0:
        raise ValueError("psf: the PSF has no positive pixel")
    psf_jac = in_jac
    psf_scale = in_scale
    if header_scale is not None:
        psf_scale = float(np.sqrt(header_scale[0] * header_scale[1]))
        psf_jac = in_jac * (psf_scale / in_scale)
    n_max = preset.npix - 1 if preset.npix % 2 == 0 else preset.npix
    out = resample_psf(arr, psf_jac, d, n_max)
    fwhm = measure_fwhm(np.where(np.isfinite(arr), arr, 0.0), psf_scale)
    steps.append({"step": "psf", "kind": "image", "source": source,
                  "input_pixel_scale_arcsec": psf_scale, "input_shape": list(arr.shape),
                  "shape": list(out.shape), "fwhm_arcsec": round(float(fwhm), 4)})
    return out, fwhm


def _input_geometry(inp, pixel_scale, position, pending_warnings):
    """Step 1 geometry: WCS (or None), pixel position, local Jacobian, sky position.

    Returns ``(wcs, (x0, y0), jacobian, skycoord or None, pixel-scale source)``;
    the Jacobian is d(east, north)/d(x, y) in arcsec per pixel at the position.
    """
    wcs = inp.wcs
    scale_arg = None if pixel_scale is None else _angle_value(pixel_scale, "pixel_scale",
                                                              allow_pair=True)
    if wcs is not None:
        try:
            _check_celestial_wcs(wcs, inp.data.shape)
        except ValueError as exc:
            if isinstance(position, SkyCoord):
                raise ValueError(f"position: a SkyCoord position needs a working celestial "
                                 f"WCS; {exc}") from None
            if scale_arg is None:
                raise ValueError(f"{exc}; give pixel_scale to ignore it") from None
            pending_warnings.append(PreprocessingWarning(
                f"{exc}; ignoring the WCS and using pixel_scale={scale_arg[0]:g}\""))
            inp.wcs_error, wcs = str(exc), None
    if wcs is None and inp.wcs_error and inp.wcs_error.startswith("the WCS is broken"):
        if isinstance(position, SkyCoord):
            raise ValueError(f"position: a SkyCoord position needs a working celestial WCS, "
                             f"but in {inp.label} {inp.wcs_error}")
        if scale_arg is None:
            raise ValueError(f"data: in {inp.label} {inp.wcs_error}; give pixel_scale to "
                             "ignore it")
    header_scale = None
    if wcs is None and scale_arg is None:
        header_scale = _header_pixel_scale(inp.header)
        if header_scale is None:
            raise ValueError(
                f"pixel_scale: {inp.label} has no celestial WCS"
                + (f" ({inp.wcs_error})" if inp.wcs_error else "")
                + "; give its pixel scale, e.g. pixel_scale=0.05 * u.arcsec"
            )
    x0, y0 = _parse_position(position, inp, wcs)
    if wcs is not None:
        in_jac, sky0 = _local_jacobian(wcs, x0, y0)
        if scale_arg is not None:
            wcs_scale = np.sqrt(abs(np.linalg.det(in_jac)))
            if abs(np.sqrt(scale_arg[0] * scale_arg[1]) / wcs_scale - 1) > 0.01:
                pending_warnings.append(PreprocessingWarning(
                    f"pixel_scale={scale_arg[0]:g}\" ignored: the WCS gives {wcs_scale:.5g}\""))
    else:
        sxy = scale_arg if scale_arg is not None else header_scale
        in_jac = np.array([[-sxy[0], 0.0], [0.0, sxy[1]]])
        sky0 = None
    source = "wcs" if wcs is not None else ("argument" if scale_arg is not None else "header")
    return wcs, (x0, y0), in_jac, sky0, source


def _sky_and_noise(data_c, std_c, bad_c, in_jac, centre, region, background_subtracted,
                   noise_desc, label, steps, pending_warnings):
    """Steps 3 and 4: background-subtracted image (0 at bad pixels) and variance map."""
    xc, yc = centre
    # statistics within the square of side ``region`` (arcsec) that is used
    yy, xx = np.mgrid[: data_c.shape[0], : data_c.shape[1]]
    offs = np.einsum("ij,jkl->ikl", in_jac, np.array([xx - xc, yy - yc]))
    in_region = np.maximum(np.abs(offs[0]), np.abs(offs[1])) <= region / 2.0
    stat_bad = bad_c | ~in_region
    if (~stat_bad).sum() < 25:
        stat_bad = bad_c
    bkg, rms, n_sky, smooth = _sky_statistics(np.where(bad_c, 0.0, data_c), stat_bad)
    if std_c is None and smooth:
        # a noise-free image: its "sky" is the wings of the lens and arcs
        steps.append({"step": "background", "method": "none (noise-free image: the sky "
                      "varies smoothly, not from pixel to pixel)"})
        steps.append({"step": "noise", "method": "noise-free image: zero"})
        return np.where(bad_c, 0.0, data_c), np.zeros(data_c.shape)
    if background_subtracted:
        steps.append({"step": "background", "method": "none (background_subtracted=True)"})
        bkg_value = 0.0
    else:
        if n_sky < 50:
            pending_warnings.append(PreprocessingWarning(
                f"background: only {n_sky} sky pixels in the cutout of {label}; the "
                "background is a clipped median of all pixels"))
        bkg_value = bkg if np.isfinite(bkg) else 0.0
        steps.append({"step": "background", "method": "sigma_clipped_stats, sources masked "
                      "(photutils.segmentation)", "value": float(bkg_value), "n_sky": n_sky})
    image_c = np.where(bad_c, 0.0, data_c - bkg_value)
    if std_c is None:
        if not (np.isfinite(rms) and rms > 0):
            rms_all = float(np.std(data_c[~bad_c]))
            rms = rms_all if rms_all > 0 else 1.0
            pending_warnings.append(PreprocessingWarning(
                f"noise: no sky noise measurable in {label}; using the standard deviation "
                "of the cutout"))
        var_c = np.full(data_c.shape, rms**2)
        steps.append({"step": "noise", "method": "sky rms (sigma-clipped MAD of the source-"
                      "free pixels); no Poisson term", "value": float(rms), "n_sky": n_sky})
    else:
        var_c = np.nan_to_num(std_c, nan=0.0, posinf=0.0) ** 2
        median_var = float(np.median(var_c[~bad_c]))
        # bad pixels get the typical variance, so that their neighbours are not biased low
        var_c = np.where(bad_c, median_var, var_c)
        steps.append({"step": "noise", "method": noise_desc, "median": float(np.sqrt(median_var))})
    return image_c, var_c


def _resample(image_c, var_c, bad_c, outside_c, cut, wcs, sky0, in_jac, position, centre,
              preset, sb_units, steps):
    """Step 5: the native cutout on the model grid.

    Returns image, noise, bad fraction, outside flags, the grid WCS and the input
    pixel at the grid centre.
    """
    n, d = preset.npix, float(preset.pixel_scale)
    x0, y0 = position
    xc, yc = centre
    j_out = np.array([[-d, 0.0], [0.0, d]])
    ratio = d / float(np.sqrt(abs(np.linalg.det(in_jac))))
    c_out = (n - 1) / 2.0
    if np.allclose(in_jac, j_out, rtol=0.0, atol=GRID_TOLERANCE * d):
        # the input grid is the model's up to a shift: copy whole pixels
        ox, oy = int(round(xc - c_out)), int(round(yc - c_out))
        sl = (slice(oy, oy + n), slice(ox, ox + n))
        image_o, var_o = image_c[sl].copy(), var_c[sl].copy()
        bad_o, outside_o = bad_c[sl].astype(float), outside_c[sl].copy()
        f_noise, flux_scale = 1.0, 1.0
        grid_wcs = cut.wcs.slice(sl) if wcs is not None else linear_wcs(n, d)
        shift = [ox + c_out - xc, oy + c_out - yc]
        steps.append({"step": "resample", "method": "copy (input grid equals the model grid)",
                      "shift_pixels": [round(float(v), 4) for v in shift], "flux_scale": 1.0})
        grid_center_in = (x0 + shift[0], y0 + shift[1])
    else:
        if wcs is not None:
            grid_wcs = tan_wcs(sky0, n, d)
            wcs_in = cut.wcs
        else:
            grid_wcs = linear_wcs(n, d)
            wcs_in = affine_wcs((xc + 1.0, yc + 1.0), in_jac)
        grid_center_in = (x0, y0)
        k = max(1, int(np.ceil(ratio - 1e-6)))
        rng = np.random.default_rng(12345)
        white = np.where(bad_c, 0.0, rng.normal(size=image_c.shape))
        # the image (and a white-noise probe of its operator) with bicubic samples, the
        # variance and the masks with bilinear ones (positive, no ringing)
        image_o, white_o = reproject_stack(np.stack([image_c, white]), wcs_in, grid_wcs, n, k,
                                           "bicubic")
        var_o, bad_o, outside_o = reproject_stack(
            np.stack([var_c, bad_c.astype(float), outside_c.astype(float)]),
            wcs_in, grid_wcs, n, k, "bilinear")
        outside_o = ~np.isfinite(outside_o) | (np.nan_to_num(outside_o, nan=1.0) > 0.5)
        area_ratio = d * d / abs(np.linalg.det(in_jac))
        flux_scale = 1.0 if sb_units else area_ratio
        ok = ~outside_o & (np.nan_to_num(bad_o, nan=1.0) <= MASK_THRESHOLD)
        f_noise = float(np.std(white_o[ok])) if ok.sum() > 10 else 1.0
        image_o = image_o * flux_scale
        steps.append({
            "step": "resample", "method": "reproject_interp (bicubic"
            + (f", mean of {k}x{k} sub-pixels" if k > 1 else "") + ")",
            "grid": "TAN, north up, east left" if wcs is not None else "linear offsets (arcsec)",
            "scale_ratio": round(float(ratio), 6), "flux_scale": round(float(flux_scale), 6),
            "noise_factor": round(f_noise, 4),
            "units": "surface brightness (not scaled by area)" if sb_units else "flux per pixel",
        })
    noise_o = np.sqrt(np.clip(np.nan_to_num(var_o, nan=0.0), 0.0, None)) * f_noise * flux_scale
    return image_o, noise_o, bad_o, outside_o, grid_wcs, grid_center_in


# --------------------------------------------------------------------------
# the entry point
# --------------------------------------------------------------------------
def prepare_cutout(
    data,
    preset="survey",
    *,
    pixel_scale=None,
    position=None,
    size=None,
    noise=None,
    psf=None,
    mask=None,
    hdu=None,
    background_subtracted=False,
    mask_contaminants=True,
    warn=True,
) -> PreparedCutout:
    """Prepare any input image for a model of ``preset`` (see the module docstring).

    Parameters
    ----------
    data : str, pathlib.Path, HDUList, image HDU, NDData, Quantity or ndarray
        The image. Arrays and Quantities are taken as north up, east left.
    preset : str or `~astro_delens.presets.Preset`
        The model's preset, which fixes the output grid.
    pixel_scale : `~astropy.units.Quantity` or float, optional
        Pixel scale of the input (arcsec if a number; one value or ``(x, y)``).
        Required for data without a celestial WCS (unless the header has a
        ``PIXSCALE`` keyword); ignored, with a warning, when a WCS gives it.
    position : `~astropy.coordinates.SkyCoord` or (x, y), optional
        Centre of the cutout: a sky position (needs a celestial WCS) or a
        zero-based pixel position ``(x, y)`` (column, row). Default: the centre
        of the image.
    size : `~astropy.units.Quantity`, optional
        Width of the square region of the input that is used (arcsec if a
        number). Default: the model's field of view. Model pixels outside it are
        masked; a larger region is used to estimate the background and noise.
    noise : float, Quantity, ndarray, NDUncertainty, HDU or FITS name, optional
        1-sigma noise per input pixel (a constant or a map). Default: the
        uncertainty of an NDData, or else estimated from the sky.
    psf : ndarray, HDU, FITS name or `~astropy.units.Quantity`, optional
        The PSF on the input's pixel grid (or with a ``PIXSCALE`` header
        keyword), or the FWHM of a Gaussian PSF as an angle.
    mask : array-like of bool, HDU or FITS name, optional
        True (non-zero) where input pixels must be ignored; combined with the
        mask of an NDData and with NaN/inf pixels.
    hdu : int, str or tuple, optional
        HDU of a FITS file or HDUList (default: the first holding an image).
        For ``noise``, ``mask`` and ``psf`` given as strings that are not files,
        the string names an extension of the data's FITS file.
    background_subtracted : bool
        True when the sky background has already been removed.
    mask_contaminants : bool
        Mask sources lying wholly outside the region where arcs can appear.
    warn : bool
        Emit the `~astro_delens.exceptions.OutOfDomainWarning` (they are always
        recorded in ``domain_warnings``).

    Returns
    -------
    PreparedCutout

    Raises
    ------
    TypeError
        For an input of an unsupported type.
    ValueError
        For bad input: no pixel scale for an array, a SkyCoord position without
        a celestial WCS or with a broken one, a position off the image, an
        all-NaN or constant cutout, wrong dimensions, a negative noise map.
    OSError
        For a file that cannot be read as FITS.
    """
    preset = get_preset(preset)
    n, d = preset.npix, float(preset.pixel_scale)
    steps = []
    pending_warnings = []

    # 1. read --------------------------------------------------------------
    inp = parse_input_data(data, hdu=hdu)
    ref = (inp.hdulist_path, inp.extra.get("hdulist"))
    noise_std, noise_desc = _parse_noise(noise, inp, ref)
    bad_in = _bad_input_pixels(inp, _parse_mask(mask, inp, ref), noise_std)
    wcs, (x0, y0), in_jac, sky0, scale_source = _input_geometry(
        inp, pixel_scale, position, pending_warnings)
    in_scale = float(np.sqrt(abs(np.linalg.det(in_jac))))
    steps.append({
        "step": "read", "input": inp.label, "shape": list(inp.data.shape),
        "wcs": "celestial" if wcs is not None else "none",
        "pixel_scale_arcsec": round(in_scale, 6),
        "pixel_scale_source": scale_source,
        "position_pixel": [round(x0, 3), round(y0, 3)],
        "unit": None if inp.unit is None else inp.unit.to_string(),
        "rotation_deg": round(float(np.degrees(np.arctan2(in_jac[0, 1], in_jac[1, 1]))), 4),
        "flipped": bool(np.linalg.det(in_jac) > 0),
    })

    # 2. cutout ------------------------------------------------------------
    fov = n * d
    size_arcsec = fov if size is None else float(_angle_value(size, "size")[0])
    cut, data_c, bad_c, outside_c, std_c = _native_cutout(
        inp, wcs, (x0, y0), in_jac, size_arcsec, max(size_arcsec, fov), bad_in, noise_std, steps)
    xc, yc = cut.input_position_cutout

    # 3. background & 4. noise ----------------------------------------------
    image_c, var_c = _sky_and_noise(
        data_c, std_c, bad_c, in_jac, (xc, yc), max(size_arcsec, fov), background_subtracted,
        noise_desc, inp.label, steps, pending_warnings)

    # 5. resample ------------------------------------------------------------
    image_o, noise_o, bad_o, outside_o, grid_wcs, grid_center_in = _resample(
        image_c, var_c, bad_c, outside_c, cut, wcs, sky0, in_jac, (x0, y0), (xc, yc),
        preset, _is_surface_brightness(inp.unit), steps)
    c_out = (n - 1) / 2.0

    # 6. mask --------------------------------------------------------------
    mask_o, r_grid, field_radius = _grid_mask(image_o, noise_o, bad_o, outside_o, preset,
                                              size_arcsec, inp.label, steps)

    # 7. contaminants --------------------------------------------------------
    keep_radius = _keep_radius(preset)
    image_o, noise_o, mask_o = _masked_contaminants(image_o, noise_o, mask_o, r_grid, keep_radius,
                                                    d, mask_contaminants, steps)

    # 8. psf ---------------------------------------------------------------
    psf_out, psf_fwhm = _parse_psf(psf, inp, in_jac, in_scale, preset, ref, steps)
    assumed_fwhm, assumed_reason = None, ""
    if psf_out is None:
        assumed_fwhm, assumed_reason = assumed_psf_fwhm(_merged_header(inp), preset, in_scale)
        steps.append({"step": "psf", "kind": "none given",
                      "assumed_gaussian_fwhm_arcsec": round(assumed_fwhm, 4),
                      "reason": assumed_reason})

    center = None
    if wcs is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            center = grid_wcs.pixel_to_world(c_out, c_out).icrs

    # domain checks ------------------------------------------------------------
    domain = _domain_checks(preset, in_scale, psf_fwhm, assumed_fwhm, image_o, noise_o, mask_o,
                            r_grid, keep_radius, field_radius, inp.label)
    if warn:
        for w in pending_warnings:
            warnings.warn(w, stacklevel=2)
        for code, message in domain:
            warnings.warn(OutOfDomainWarning(message, code), stacklevel=2)

    def _ro(a, dtype):
        a = np.ascontiguousarray(a, dtype=dtype)
        a.setflags(write=False)
        return a

    return PreparedCutout(
        image=_ro(image_o, np.float32),
        noise_map=_ro(noise_o, np.float32),
        mask=_ro(mask_o, bool),
        pixel_scale=d,
        wcs=grid_wcs,
        center=center,
        psf=None if psf_out is None else _ro(psf_out, np.float32),
        psf_fwhm=psf_fwhm,
        unit=inp.unit,
        preset=preset,
        label=inp.label,
        steps=tuple(steps),
        input_pixel_scale=in_scale,
        field_radius=field_radius,
        domain_warnings=tuple(domain),
        input_center=(float(grid_center_in[0]), float(grid_center_in[1])),
        input_jacobian=in_jac,
        assumed_psf_fwhm=assumed_fwhm,
        assumed_psf_reason=assumed_reason,
    )


def _bad_input_pixels(inp, user_mask, noise_std):
    """Input pixels not to use: not finite, masked by the data or the user, or without a
    usable noise (zero, not finite, or a sentinel far above the median noise)."""
    bad = ~np.isfinite(inp.data)
    if inp.mask is not None:
        if inp.mask.shape != inp.data.shape:
            raise ValueError(
                f"data.mask: shape {inp.mask.shape} does not match the data shape {inp.data.shape}"
            )
        bad |= inp.mask
    if user_mask is not None:
        bad |= user_mask
    if noise_std is not None:
        finite = np.isfinite(noise_std) & (noise_std > 0)
        if np.any(finite):
            med = float(np.median(noise_std[finite]))
            bad |= ~np.isfinite(noise_std) | (noise_std > NOISE_SENTINEL_FACTOR * med)
            bad |= noise_std == 0
        else:
            bad |= ~np.isfinite(noise_std)
    return bad


def _native_cutout(inp, wcs, position, in_jac, size_arcsec, extent, bad_in, noise_std, steps):
    """Step 2: a native-pixel cutout holding a square of ``extent`` arcsec at any rotation.

    Returns the `~astropy.nddata.Cutout2D`, its data, bad and outside flags,
    and its noise (None when none was given).
    """
    x0, y0 = position
    radius = extent / 2.0 * np.sqrt(2.0)
    smallest = float(np.min(np.linalg.svd(in_jac, compute_uv=False)))
    # keep memory sane for tiny input pixels: a 4k x 4k native cutout at most
    half = min(int(np.ceil(radius / smallest)) + 4, 2048)
    side = 2 * half + 1
    # Cutout2D copies the cutout only (the input is never modified)
    arr = inp.data if inp.data.dtype.kind == "f" else inp.data.astype(float)
    cut = Cutout2D(arr, (x0, y0), (side, side), wcs=wcs, mode="partial", fill_value=np.nan,
                   copy=True)

    def on_cutout(a, fill):
        out = np.full(cut.shape, fill, dtype=a.dtype)
        out[cut.slices_cutout] = a[cut.slices_original]
        return out

    data_c = np.asarray(cut.data, dtype=float)
    outside_c = np.ones(cut.shape, bool)
    outside_c[cut.slices_cutout] = False
    bad_c = on_cutout(bad_in, True) | outside_c | ~np.isfinite(data_c)
    std_c = None if noise_std is None else on_cutout(noise_std, np.nan)
    steps.append({"step": "cutout", "size_arcsec": round(size_arcsec, 4),
                  "native_shape": list(cut.shape),
                  "origin_original": [int(v) for v in cut.origin_original],
                  "padded": bool(outside_c.any())})
    valid = ~bad_c
    if not valid.any():
        raise ValueError(
            f"data: the cutout of {inp.label} around pixel ({x0:.1f}, {y0:.1f}) holds no valid "
            "pixel (all NaN, infinite or masked)"
        )
    vals = data_c[valid]
    if np.ptp(vals) == 0:
        raise ValueError(
            f"data: the cutout of {inp.label} is constant (every valid pixel equals {vals[0]:g})"
        )
    return cut, data_c, bad_c, outside_c, std_c


def _grid_mask(image, noise, bad, outside, preset, size_arcsec, label, steps):
    """Step 6: the mask on the model grid, each pixel's radius, and the radius of the field.

    Masked: pixels outside the data or the requested size, mostly made of bad
    input pixels, or not finite. The field radius is the distance from the
    centre to the nearest pixel outside the data.
    """
    n, d = preset.npix, float(preset.pixel_scale)
    c = (n - 1) / 2.0
    jj, ii = np.mgrid[:n, :n]
    gx, gy = (c - ii) * d, (jj - c) * d
    outside_size = np.maximum(np.abs(gx), np.abs(gy)) > size_arcsec / 2.0 + 1e-9
    outside_all = np.asarray(outside, bool) | outside_size
    mask = (outside_all | (np.nan_to_num(bad, nan=1.0) > MASK_THRESHOLD)
            | ~np.isfinite(image) | ~np.isfinite(noise))
    if mask.all():
        raise ValueError(f"data: no valid pixel of {label} falls on the model grid")
    r_grid = np.hypot(gx, gy)
    field_radius = (float(r_grid[outside_all].min()) if outside_all.any()
                    else float(np.max(np.abs(gx)) + d / 2))
    steps.append({"step": "mask", "n_masked": int(mask.sum()),
                  "n_outside": int(outside_all.sum()),
                  "field_radius_arcsec": round(field_radius, 3)})
    return mask, r_grid, field_radius


def _masked_contaminants(image, noise, mask, r_grid, keep_radius, d, enabled, steps):
    """Step 7: other objects masked (when ``enabled`` and the data are noisy), then masked
    pixels set to zero with the median noise.
    """
    valid_noise = noise[~mask]
    median_noise = float(np.median(valid_noise)) if valid_noise.size else 0.0
    if enabled:
        if median_noise > 0:
            cont, n_seg = _contaminant_mask(image, noise, mask, r_grid, keep_radius, d)
            mask = mask | cont
            steps.append({"step": "contaminants", "method": "photutils.segmentation, 3 sigma",
                          "keep_radius_arcsec": round(keep_radius, 3), "n_masked_sources": n_seg,
                          "n_pixels": int(cont.sum())})
        else:
            steps.append({"step": "contaminants", "method": "skipped (noise-free data)"})
    return np.where(mask, 0.0, image), np.where(mask, median_noise, noise), mask


def _merged_header(inp):
    """The cards that describe the PSF, from the image's header and then the primary header."""
    merged = fits.Header()
    for header in (inp.extra.get("primary_header"), inp.header):
        if header is None:
            continue
        for key in FWHM_KEYWORDS + INSTRUMENT_KEYWORDS + ("FILTER",):
            if key in header:
                merged[key] = (header[key], header.comments[key])
    return merged


def _keep_radius(preset):
    """Radius (arcsec) inside which arcs can appear: 1.25 x the largest Einstein radius."""
    from . import lensmodel

    try:
        high = lensmodel.get_priors(preset.name)["theta_E"].bounds[1]
    except ValueError:
        high = np.inf
    if not np.isfinite(high):
        high = 0.3 * preset.field_of_view
    return float(min(1.25 * high, 0.5 * preset.field_of_view))


@functools.lru_cache(maxsize=1)
def _smoothing_kernel():
    """The detection kernel of `_contaminant_mask` (built once: astropy models are slow to make)."""
    from photutils.segmentation import make_2dgaussian_kernel

    return make_2dgaussian_kernel(2.0, size=5).array


def _contaminant_mask(image, noise, mask, r_grid, keep_radius, d):
    """Sources detected wholly outside ``keep_radius`` (dilated by 2 pixels)."""
    from photutils.segmentation import detect_sources
    from photutils.utils import circular_footprint
    from scipy.ndimage import binary_dilation, convolve

    kernel = _smoothing_kernel()
    filled = np.where(mask, 0.0, image)
    smooth = convolve(filled, kernel, mode="constant")
    threshold = 3.0 * noise * np.sqrt(np.sum(kernel**2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        segm = detect_sources(smooth, threshold, 5, mask=mask)  # n_pixels, by position
    if segm is None:
        return np.zeros_like(mask), 0
    labels = segm.data
    inner = np.unique(labels[(r_grid <= keep_radius) & (labels > 0)])
    far = np.setdiff1d(segm.labels, inner)
    if far.size == 0:
        return np.zeros_like(mask), 0
    cont = np.isin(labels, far)
    cont = binary_dilation(cont, structure=circular_footprint(2).astype(bool))
    cont &= ~np.isin(labels, inner)
    return cont, int(far.size)


#: The arcs of a lens reach out to about this many Einstein radii from its centre.
ARC_REACH = 1.2


def field_holds_arcs(field_radius, theta_e, psf_fwhm=None):
    """Whether data reaching ``field_radius`` arcsec from the centre hold a lens's arcs.

    The arcs of a lens of Einstein radius ``theta_e`` are taken to reach
    `ARC_REACH` times ``theta_e``, blurred by the PSF's FWHM (arcsec; nothing
    when None). An unbounded field (``nan`` or ``inf``) holds them.
    """
    margin = psf_fwhm if psf_fwhm is not None and np.isfinite(psf_fwhm) else 0.0
    return not np.isfinite(field_radius) or field_radius >= ARC_REACH * theta_e + margin


def _domain_checks(preset, in_scale, psf_fwhm, assumed_fwhm, image, noise, mask, r_grid,
                   keep_radius, field_radius, label):
    """``[(code, message)]`` for inputs outside the preset's training domain.

    ``psf_fwhm`` is the FWHM of the PSF given (None without one),
    ``assumed_fwhm`` the one assumed otherwise.
    """
    from . import lensmodel

    out = []
    d = preset.pixel_scale
    if in_scale > 1.5 * d:
        out.append(("pixel_scale", (
            f"{label}: pixel scale {in_scale:.3g}\" is much coarser than the model's {d:g}\"; "
            "resampling cannot restore the lost resolution")))
    if psf_fwhm is not None and np.isfinite(psf_fwhm):
        low, high = preset.psf_fwhm_range
        if psf_fwhm < 0.5 * low or psf_fwhm > 1.5 * high:
            out.append(("psf", (
                f"{label}: PSF FWHM {psf_fwhm:.3g}\" is far outside the training range "
                f"{low:g}\"-{high:g}\" of preset {preset.name!r}")))
    inner = (~mask) & (r_grid <= keep_radius) & (noise > 0)
    if inner.any():
        snr_peak = float(np.max(image[inner] / noise[inner]))
        if preset.noise:
            low, high = preset.snr_range
            top = high * (1.0 + preset.lens_light_ratio_range[1]) * 3.0
            if snr_peak < low:
                out.append(("snr", (
                    f"{label}: peak signal-to-noise {snr_peak:.3g} is below the training range "
                    f"({low:g}-{high:g} for the arcs); nothing may be detectable")))
            elif snr_peak > top:
                out.append(("snr", (
                    f"{label}: peak signal-to-noise {snr_peak:.3g} is far above anything in "
                    f"training (up to about {top:.0f} with lens light)")))
        elif snr_peak < 1e3:
            out.append(("noise_free", (
                f"{label}: model preset {preset.name!r} was trained on noise-free images, "
                f"but the peak signal-to-noise is {snr_peak:.3g}")))
    try:
        low_theta = lensmodel.get_priors(preset.name)["theta_E"].bounds[0]
    except ValueError:
        low_theta = 0.0
    if not field_holds_arcs(field_radius, max(low_theta, 0.0), psf_fwhm or assumed_fwhm):
        out.append(("field", (
            f"{label}: the data cover only {field_radius:.2f}\" around the centre, too small "
            "to hold the arcs")))
    return out
