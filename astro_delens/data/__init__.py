"""Data shipped with astro_delens: a small example lens made by the project itself.

``example_lens.fits`` is a strong lens simulated with
`~astro_delens.training.simulate.LensSimulator` (``survey`` preset: lens light,
PSF and noise) by ``astro_delens/data/make_example.py``. It has a celestial TAN
WCS at a made-up sky position, rotated by 30 degrees (so it must be resampled
to north up), a constant sky level, a noise map (``NOISE``) and the PSF
(``PSF``). Its primary header records the script, the seed and the true lens
parameters in the sky frame (see `example_truth`).

Examples
--------
>>> from astro_delens.data import example_path, example_truth
>>> from astro_delens import lensmodel
>>> from astropy.io import fits
>>> with fits.open(example_path()) as hdul:
...     [h.name for h in hdul]
['PRIMARY', 'SCI', 'NOISE', 'PSF']
>>> sorted(example_truth()["params"]) == sorted(lensmodel.PARAMETER_NAMES)
True
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_DIR", "example_path", "example_truth"]

#: The folder of the package data.
DATA_DIR = Path(__file__).resolve().parent

_TRUE_KEYS = {
    "theta_E": "TTHETAE", "gamma": "TGAMMA", "e1": "TE1", "e2": "TE2",
    "center_x": "TCENX", "center_y": "TCENY", "gamma1": "TGAMMA1", "gamma2": "TGAMMA2",
}


def example_path() -> str:
    """Path of the bundled example lens ``example_lens.fits`` (a str).

    Raises
    ------
    FileNotFoundError
        If the file is missing (run ``python -m astro_delens.data.make_example``).
    """
    path = DATA_DIR / "example_lens.fits"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; make it with: python -m astro_delens.data.make_example")
    return str(path)


def example_truth() -> dict:
    """The true parameters of the example lens, read from its header.

    Returns
    -------
    dict
        ``params`` (``{name: float}`` in the sky frame: ``center_x`` east and
        ``center_y`` north of the image centre, arcsec), ``center`` (the lens
        centre as a `~astropy.coordinates.SkyCoord`), ``position_angle`` and
        ``axis_ratio`` of the mass, and ``seed``.
    """
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astropy.io import fits

    header = fits.getheader(example_path(), 0)
    params = {name: float(header[key]) for name, key in _TRUE_KEYS.items()}
    return {
        "params": params,
        "center": SkyCoord(header["TLENSRA"], header["TLENSDEC"], unit="deg", frame="icrs"),
        "position_angle": float(header["TPA"]) * u.deg,
        "axis_ratio": float(header["TQ"]),
        "seed": int(header["SEED"]),
    }
