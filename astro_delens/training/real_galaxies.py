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

As GalSim's `galsim.RealGalaxy` does, each stamp becomes an
`galsim.InterpolatedImage` convolved with the *deconvolution* of the HST PSF
stored with it, so the profile is the galaxy before the HST PSF. Such a profile
must be convolved with a PSF at least as broad as the original one (HST
F814W, FWHM about 0.1") before it is drawn, or the amplified noise of the
stamp shows. When a catalog's PSF files are missing, ``deconvolve="auto"``
falls back to the observed stamps (an extra blur of the HST PSF) with a
`RealGalaxyWarning`.

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

__all__ = ["RealGalaxySource", "RealGalaxyWarning", "find_catalog_file", "load_source_catalog"]

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
    deconvolve : {"auto", True, False}
        Deconvolve each stamp by its HST PSF as `galsim.RealGalaxy` does. ``"auto"``
        does so when the PSF files are present and otherwise uses the observed
        stamps with a `RealGalaxyWarning`; ``True`` requires the PSF files.
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

    def __init__(self, source_catalog, image_dir=None, deconvolve="auto", id_prefix=None,
                 cache_size=128):
        if deconvolve not in ("auto", True, False):
            raise ValueError(f"deconvolve: expected 'auto', True or False, got {deconvolve!r}")
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
                f"deconvolve={self.deconvolve})")

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
        if not self.deconvolve:
            return galsim.InterpolatedImage(image, pad_factor=4)
        psf = galsim.InterpolatedImage(cat.getPSFImage(index), flux=1.0)
        # As galsim.RealGalaxy: the PSF's stepk/maxk bound those of the galaxy, so that
        # faint galaxies do not get a spuriously small image in Fourier space.
        gal = galsim.InterpolatedImage(image, pad_factor=4, calculate_stepk=psf.stepk,
                                       calculate_maxk=psf.maxk)
        return galsim.Convolve([gal, galsim.Deconvolve(psf)])

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
            The galaxy centred as on its stamp, deconvolved by the HST PSF (see
            `RealGalaxySource`), with total flux ``flux``.
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
