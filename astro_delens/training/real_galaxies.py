"""Real galaxy stamps as lensing sources, read from GalSim's RealGalaxyCatalog format.

GalSim distributes the HST COSMOS galaxy samples (``galsim_download_cosmos -s
23.5`` or ``-s 25.2``) as a catalog FITS table (``real_galaxy_catalog_23.5.fits``)
plus FITS files holding one postage stamp per HDU for each galaxy and for the
PSF at its position. The same format is read by `galsim.RealGalaxyCatalog` and
`galsim.COSMOSCatalog`. `RealGalaxySource` turns such a catalog into a source
provider for `astro_delens.training.simulate.LensSimulator`::

    provider = RealGalaxySource("COSMOS_23.5_training_sample/real_galaxy_catalog_23.5.fits")
    profile = provider.profile(index, rng, flux=1.0)   # a galsim.GSObject
    provider.source_id(index)                          # "cosmos:<IDENT>"

A stamp holds the galaxy, its neighbours and the noise of the HST image.
Lensing magnifies all of it, and noise at a per cent of the galaxy's peak,
spread over the whole stamp, becomes arcs of noise in a simulated image of
high signal-to-noise. So each stamp is first *cleaned* (``clean=True``): the
sky level (sigma-clipped median) is subtracted and every pixel outside the
galaxy's own segment (`clean_stamp`: `photutils.segmentation.detect_sources`
at 2 sigma of the noise of the stamp smoothed by a 1-pixel Gaussian; the
segment that covers or lies nearest the centre, grown by 2 pixels) is set to
zero, which also removes the neighbours.

The cleaned stamp is lensed as observed, through the HST PSF (about 0.1" FWHM
in F814W), as lens simulators usually use such stamps. With ``deconvolve``,
it is instead deconvolved by the HST PSF stored with it, as
`galsim.RealGalaxy` does, and seen through a round Gaussian PSF of
``resolution`` arcsec FWHM. A deconvolved stamp has amplified noise at high
spatial frequencies, which must not be drawn (GalSim's rule: the new PSF must
be broader than the original at every frequency), so by default the Gaussian
is the narrowest one whose transfer function stays under the HST PSF's at
every spatial frequency: a rounder but blurrier source (about 0.18" FWHM for
the AEGIS F814W PSFs) than the observed stamp.

Which galaxies belong to the training, validation and test splits is decided
in `astro_delens.training.dataset` (`~astro_delens.training.dataset.assign_split`)
from `RealGalaxySource.source_id`, so that a galaxy never appears in two splits.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import numpy as np

__all__ = ["RealGalaxySource", "RealGalaxyWarning", "clean_stamp", "dominating_gaussian_fwhm",
           "find_catalog_file", "load_source_catalog"]

#: Catalog columns that every RealGalaxyCatalog must have.
REQUIRED_COLUMNS = ("IDENT", "GAL_FILENAME", "GAL_HDU", "PIXEL_SCALE")
#: Columns needed to deconvolve the stamps by their PSF.
PSF_COLUMNS = ("PSF_FILENAME", "PSF_HDU")


class RealGalaxyWarning(UserWarning):
    """Real galaxies are used in a degraded way (for example without deconvolution)."""


def _bad(message):
    return ValueError(f"source_catalog: {message}")


def find_catalog_file(source_catalog) -> Path:
    """The catalog FITS file of ``source_catalog`` (a file, or a folder holding one).

    A folder must contain exactly one ``real_galaxy_catalog*.fits`` file other than
    the ``*_fits.fits`` / ``*_selection.fits`` companions of GalSim's COSMOS samples.

    Raises
    ------
    ValueError
        If nothing suitable is found (the message names ``source_catalog``).
    """
    path = Path(os.fspath(source_catalog)).expanduser()
    if path.is_dir():
        found = sorted(
            p for p in path.glob("real_galaxy_catalog*.fits")
            if not p.stem.endswith(("_fits", "_selection"))
        )
        if len(found) != 1:
            raise _bad(
                f"expected one real_galaxy_catalog*.fits file in folder {str(path)!r}, "
                f"found {len(found)}"
            )
        path = found[0]
    if not path.is_file():
        raise _bad(f"no such file {str(path)!r}; expected a GalSim RealGalaxyCatalog FITS file")
    return path


def _read_table(path: Path):
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            if len(hdul) < 2 or not isinstance(hdul[1], (fits.BinTableHDU, fits.TableHDU)):
                raise _bad(f"{str(path)!r} has no table in HDU 1; expected a GalSim "
                           "RealGalaxyCatalog")
            table = hdul[1].data
            columns = {name.upper() for name in hdul[1].columns.names}
            return np.array(table), columns
    except ValueError:
        raise
    except OSError as exc:
        raise _bad(f"cannot read {str(path)!r} as FITS ({exc})") from None


def _column(table, name):
    for key in table.dtype.names:
        if key.upper() == name:
            return table[key]
    raise KeyError(name)


def _strings(values):
    """FITS table values as stripped ``str`` (bytes are decoded)."""
    return [(v.decode() if isinstance(v, bytes) else str(v)).strip() for v in values]


def _default_prefix(path: Path) -> str:
    name = path.name.lower()
    if "cosmos" in name or name.startswith("real_galaxy_catalog"):
        return "cosmos"
    return path.stem.lower().replace("_catalog", "") or "real"


class RealGalaxySource:
    """Real galaxy stamps from a GalSim RealGalaxyCatalog, as lensing sources.

    Parameters
    ----------
    source_catalog : str or path-like
        The catalog FITS file (``real_galaxy_catalog_23.5.fits``) or the folder
        holding it; the stamp files are looked for next to it (or in ``image_dir``).
    image_dir : str or path-like, optional
        Folder of the stamp and PSF files, if not that of the catalog.
    deconvolve : {False, "auto", True}
        Deconvolve each stamp by its HST PSF as `galsim.RealGalaxy` does, and
        convolve it with the round Gaussian of ``resolution``. ``"auto"`` does
        so when the PSF files are present and otherwise uses the observed stamps
        with a `RealGalaxyWarning`; ``True`` requires the PSF files. Default:
        the observed stamps.
    resolution : float, "psf" or None
        FWHM in arcsec of the round Gaussian PSF a deconvolved stamp is seen
        through; ``"psf"`` (default): the narrowest that does not amplify any
        spatial frequency of the stamp (`dominating_gaussian_fwhm`). ``None``
        gives the bare deconvolved profile, which must then be convolved with a
        PSF broader than the HST one before it is drawn, or its amplified noise
        shows.
    clean : bool
        Keep only the galaxy's own segment of each stamp, sky subtracted (see
        above). False lenses the stamp as it is, noise and neighbours included.
    id_prefix : str, optional
        Prefix of the source identifiers (default ``"cosmos"`` for COSMOS catalogs,
        otherwise the catalog's file name).
    cache_size : int
        Number of interpolated stamps kept in memory per process.

    Raises
    ------
    ValueError
        If the catalog is missing or malformed, or its stamp files are missing;
        the message names ``source_catalog``.
    """

    def __init__(self, source_catalog, image_dir=None, deconvolve=False, id_prefix=None,
                 cache_size=128, resolution="psf", clean=True):
        if deconvolve not in ("auto", True, False):
            raise ValueError(f"deconvolve: expected 'auto', True or False, got {deconvolve!r}")
        if not (resolution is None or (isinstance(resolution, str) and resolution == "psf")
                or (isinstance(resolution, (int, float)) and np.isfinite(resolution)
                    and resolution > 0)):
            raise ValueError(f"resolution: expected a FWHM in arcsec > 0, 'psf' or None, "
                             f"got {resolution!r}")
        self.resolution = resolution
        self.clean = bool(clean)
        self.catalog_file = find_catalog_file(source_catalog)
        self.image_dir = Path(image_dir) if image_dir is not None else self.catalog_file.parent
        table, columns = _read_table(self.catalog_file)
        self._check_columns(columns)
        if len(table) == 0:
            raise _bad(f"{str(self.catalog_file)!r} lists no galaxies")
        self.idents = _strings(_column(table, "IDENT"))
        self._gal_files = _strings(_column(table, "GAL_FILENAME"))
        self._check_files(self._gal_files, "galaxy stamp")
        self.deconvolve = self._decide_deconvolve(deconvolve, table, columns)
        self.id_prefix = id_prefix or _default_prefix(self.catalog_file)
        self._cache_size = int(cache_size)
        self._catalog = None
        self._ids = self._make_ids()

    # ------------------------------------------------------------------ checks
    def _check_columns(self, columns):
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise _bad(
                f"{str(self.catalog_file)!r} lacks column(s) {missing}; expected a GalSim "
                f"RealGalaxyCatalog with columns {list(REQUIRED_COLUMNS + PSF_COLUMNS)}"
            )

    def _missing(self, names):
        return sorted({n for n in names if not (self.image_dir / n).is_file()})

    def _check_files(self, names, what):
        missing = self._missing(names)
        if missing:
            raise _bad(f"{what} file(s) {missing} not found in {str(self.image_dir)!r}")

    def _decide_deconvolve(self, deconvolve, table, columns):
        if deconvolve is False:
            return False
        has_columns = all(c in columns for c in PSF_COLUMNS)
        missing = (self._missing(_strings(_column(table, "PSF_FILENAME")))
                   if has_columns else ["(no PSF_FILENAME/PSF_HDU columns)"])
        if not missing:
            return True
        if deconvolve is True:
            raise _bad(f"PSF file(s) {missing} not found in {str(self.image_dir)!r}; they are "
                       "needed to deconvolve the stamps (or pass deconvolve=False)")
        warnings.warn(
            f"source_catalog: PSF file(s) {missing} of {str(self.catalog_file)!r} not found; "
            "using the observed stamps without deconvolving the HST PSF",
            RealGalaxyWarning, stacklevel=2,
        )
        return False

    def _make_ids(self):
        counts = {}
        for ident in self.idents:
            counts[ident] = counts.get(ident, 0) + 1
        return [
            f"{self.id_prefix}:{ident}" if counts[ident] == 1 else f"{self.id_prefix}:{ident}:{i}"
            for i, ident in enumerate(self.idents)
        ]

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.idents)

    def __repr__(self) -> str:
        return (f"RealGalaxySource({str(self.catalog_file)!r}, n={len(self)}, "
                f"deconvolve={self.deconvolve}, resolution={self.resolution!r}, "
                f"clean={self.clean})")

    @property
    def ids(self) -> list[str]:
        """Identifiers of all galaxies: ``"<prefix>:<IDENT>"``, plus ``":<row>"`` if repeated."""
        return list(self._ids)

    def source_id(self, index: int) -> str:
        """Identifier of galaxy ``index``, e.g. ``"cosmos:141190"``."""
        return self._ids[self._check_index(index)]

    def split_key(self, index: int) -> str:
        """What decides the split of galaxy ``index``: ``"<prefix>:<IDENT>"``.

        Unlike `source_id` it has no row suffix, so rows repeating a galaxy share it
        and all land in the same split.
        """
        return f"{self.id_prefix}:{self.idents[self._check_index(index)]}"

    def _check_index(self, index) -> int:
        i = int(index)
        if not 0 <= i < len(self):
            raise IndexError(f"index: expected 0 <= index < {len(self)}, got {index}")
        return i

    @property
    def settings(self) -> dict:
        """How the stamps are turned into sources: ``clean``, ``deconvolve``, ``resolution``."""
        return {"clean": self.clean, "deconvolve": bool(self.deconvolve),
                "resolution": self.resolution}

    @property
    def catalog(self):
        """The underlying `galsim.RealGalaxyCatalog` (opened lazily, once per process)."""
        if self._catalog is None:
            import galsim

            # An absolute file name: GalSim joins ``dir`` and ``file_name``.
            self._catalog = galsim.RealGalaxyCatalog(str(self.catalog_file.resolve()),
                                                     dir=str(self.image_dir.resolve()))
        return self._catalog

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_catalog"] = None
        state.pop("_stamp_cache", None)
        return state

    def _stamp(self, index):
        """The interpolated stamp of galaxy ``index`` at its catalog flux (cached)."""
        cache = self.__dict__.get("_stamp_cache")
        if cache is None:
            cache = functools.lru_cache(maxsize=self._cache_size)(self._build_stamp)
            self.__dict__["_stamp_cache"] = cache
        return cache(index)

    def _build_stamp(self, index):
        import galsim

        cat = self.catalog
        image = cat.getGalImage(index)
        if self.clean:
            image = galsim.Image(clean_stamp(image.array), scale=image.scale)
        if not self.deconvolve:
            return galsim.InterpolatedImage(image, pad_factor=4)
        psf_image = cat.getPSFImage(index)
        psf = galsim.InterpolatedImage(psf_image, flux=1.0)
        # As galsim.RealGalaxy: the PSF's stepk/maxk bound those of the galaxy, so that
        # faint galaxies do not get a spuriously small image in Fourier space.
        gal = galsim.InterpolatedImage(image, pad_factor=4, calculate_stepk=psf.stepk,
                                       calculate_maxk=psf.maxk)
        parts = [gal, galsim.Deconvolve(psf)]
        if self.resolution is not None:
            fwhm = (dominating_gaussian_fwhm(psf_image) if self.resolution == "psf"
                    else float(self.resolution))
            parts.append(galsim.Gaussian(fwhm=fwhm))
        return galsim.Convolve(parts)

    def pixel_scale(self, index: int) -> float:
        """Pixel scale (arcsec) of the stamp of galaxy ``index``."""
        return float(self.catalog.pixel_scale[self._check_index(index)])

    def profile(self, index: int, rng=None, flux: float = 1.0, rotate: bool = True,
                dilate: float = 1.0):
        """The GalSim profile of galaxy ``index``.

        Parameters
        ----------
        index : int
            Row of the catalog.
        rng : numpy.random.Generator or int, optional
            Draws the random rotation (uniform in angle).
        flux : float
            Total flux of the returned profile.
        rotate : bool
            Turn the galaxy by a random angle.
        dilate : float
            Scale the galaxy's size by this factor (flux preserved).

        Returns
        -------
        galsim.GSObject
            The galaxy centred as on its stamp (cleaned unless ``clean`` is
            False), as observed or, with ``deconvolve``, seen through the round
            PSF of ``resolution`` (see `RealGalaxySource`), with total flux
            ``flux``.
        """
        import galsim

        i = self._check_index(index)
        if not np.isfinite(flux):
            raise ValueError(f"flux: expected a finite number, got {flux}")
        if not (np.isfinite(dilate) and dilate > 0):
            raise ValueError(f"dilate: expected a positive number, got {dilate}")
        prof = self._stamp(i).withFlux(float(flux))
        if dilate != 1.0:
            prof = prof.dilate(float(dilate))
        if rotate:
            rng = np.random.default_rng(rng)
            prof = prof.rotate(float(rng.uniform(0.0, 360.0)) * galsim.degrees)
        return prof


def dominating_gaussian_fwhm(psf_image, floor=1e-3):
    """FWHM (arcsec) of the narrowest round Gaussian whose transfer function is below the PSF's.

    A stamp deconvolved by ``psf_image`` (a `galsim.Image` with a scale) and
    convolved with this Gaussian has no spatial frequency amplified, wherever
    the PSF's transfer function (the modulus of its Fourier transform, unit at
    zero frequency) is at least ``floor``; beyond, GalSim's own maxk of the
    PSF cuts the deconvolution off.
    """
    psf = np.asarray(psf_image.array, dtype=float)
    psf = psf / psf.sum()
    n = 4 * max(psf.shape)  # zero padding: a fine grid of frequencies
    mtf = np.abs(np.fft.fft2(psf, s=(n, n)))
    freq = np.fft.fftfreq(n, d=float(psf_image.scale))
    k = np.hypot(*np.meshgrid(freq, freq))
    use = (mtf >= floor) & (k > 0)
    # exp(-2 pi^2 sigma^2 k^2) <= mtf(k) for every such k
    sigma2 = np.max(-np.log(np.minimum(mtf[use], 1.0)) / (2.0 * np.pi ** 2 * k[use] ** 2))
    return float(2.0 * np.sqrt(2.0 * np.log(2.0)) * np.sqrt(sigma2))


def clean_stamp(stamp, n_sigma=2.0, grow=2):
    """The galaxy at the centre of ``stamp``, sky subtracted, with every other pixel zero.

    The stamp is smoothed by a Gaussian of 1 pixel; sources are the groups of
    at least 5 connected pixels of the smoothed stamp above ``n_sigma`` times
    its noise (`photutils.segmentation.detect_sources`). The sky level and the
    noise (of the smoothed stamp, so that the correlated noise of drizzled
    images is measured as it is) are sigma-clipped statistics of the pixels
    away from the sources, found once with the statistics of the whole stamp.
    The galaxy is the source covering the centre, or else the nearest to it,
    grown by ``grow`` pixels. A stamp without any source is returned sky
    subtracted only.
    """
    from astropy.convolution import Gaussian2DKernel, convolve
    from astropy.stats import sigma_clipped_stats
    from photutils.segmentation import detect_sources
    from photutils.utils import circular_footprint
    from scipy.ndimage import binary_dilation

    data = np.asarray(stamp, dtype=float)
    smooth = convolve(data, Gaussian2DKernel(1.0), boundary="extend")
    away = np.ones(data.shape, dtype=bool)
    for _ in range(2):
        _, sky, _ = sigma_clipped_stats(data[away], sigma=3.0, maxiters=10)
        _, smooth_sky, smooth_noise = sigma_clipped_stats(smooth[away], sigma=3.0, maxiters=10)
        if not smooth_noise > 0:
            return data - sky
        segments = detect_sources(smooth - smooth_sky, n_sigma * smooth_noise, 5)
        if segments is None:
            return data - sky
        labels = segments.data
        grown = binary_dilation(labels > 0, structure=circular_footprint(5).astype(bool))
        if (~grown).sum() < 50:
            break
        away = ~grown
    ny, nx = labels.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    distance = np.hypot(yy - (ny - 1) / 2, xx - (nx - 1) / 2)
    nearest = labels[labels > 0][np.argmin(distance[labels > 0])]
    keep = binary_dilation(labels == nearest, structure=circular_footprint(grow).astype(bool))
    return np.where(keep, data - sky, 0.0)


def load_source_catalog(source_catalog, **kwargs):
    """Open ``source_catalog`` as a `RealGalaxySource`; pass a provider through unchanged.

    Anything with ``__len__``, ``profile`` and ``source_id`` is accepted as is.
    """
    if source_catalog is None:
        return None
    if all(hasattr(source_catalog, a) for a in ("__len__", "profile", "source_id")):
        return source_catalog
    if not isinstance(source_catalog, (str, os.PathLike)):
        raise ValueError(
            f"source_catalog: expected a path to a GalSim RealGalaxyCatalog or a source "
            f"provider, got {type(source_catalog).__name__}"
        )
    return RealGalaxySource(source_catalog, **kwargs)
