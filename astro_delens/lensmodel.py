"""The lens model of astro_delens, defined once.

Every part of the package (simulation, networks, inference, the physics check)
describes a lens with the same eight numbers: an elliptical power-law mass
distribution (lenstronomy ``EPL``) plus an external shear (lenstronomy ``SHEAR``).

Parameters
----------
========  ======  ==============================================================
name      unit    meaning
========  ======  ==============================================================
theta_E   arcsec  Einstein radius (lenstronomy's ``EPL`` definition)
gamma             logarithmic slope of the 3D mass density (2 is isothermal)
e1, e2            ellipticity components, ``e = (1 - q) / (1 + q)``,
                  ``e1 = e cos 2 phi``, ``e2 = e sin 2 phi``
center_x  arcsec  lens centre, offset towards the **east** from the cutout centre
center_y  arcsec  lens centre, offset towards the **north** from the cutout centre
gamma1            external shear, ``gamma1 = g cos 2 phi_g``
gamma2            external shear, ``gamma2 = g sin 2 phi_g``
========  ======  ==============================================================

Coordinate conventions
----------------------
Angular coordinates are those of lenstronomy's ``data_configure_simple`` with
``inverse=True`` (`image_data_kwargs` builds them; lenstronomy's default,
``inverse=False``, would mirror the sky):

* ``x`` grows towards the east and ``y`` towards the north; ``(0, 0)`` is the
  centre of the cutout (for an even number of pixels, the corner shared by the
  four central pixels).
* Images are arrays ``image[row, column]`` shown with ``origin="lower"``:
  row 0 is the southern edge, column 0 the **eastern** edge (north up, east
  left, as on the sky). Pixel ``(column i, row j)`` of an ``n x n`` grid with
  pixel scale ``d`` has ``x = ((n - 1) / 2 - i) d`` and ``y = (j - (n - 1) / 2) d``.
* The angles ``phi`` (ellipticity) and ``phi_g`` (shear) in lenstronomy's
  parameterisation are measured in the ``x``-``y`` plane from ``+x`` (east)
  towards ``+y`` (north). The astronomer's position angle, east of north, is
  therefore ``PA = 90 deg - phi`` (taken modulo 180 deg, as an axis has no
  direction). The ellipticity angle is that of the mass distribution's major
  axis; the shear angle is lenstronomy's ``phi_g``.

Examples
--------
>>> import numpy as np
>>> from astro_delens import lensmodel
>>> p = np.array([1.2, 2.0, 0.1, 0.0, 0.0, 0.0, 0.03, 0.0])
>>> round(float(lensmodel.sky_quantities(p)["axis_ratio"]), 3)
0.818
>>> float(lensmodel.sky_quantities(p)["position_angle"].to_value("deg"))
90.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Parameter",
    "PARAMETERS",
    "PARAMETER_NAMES",
    "INDEX",
    "lens_center",
    "PARAMETER_UNITS",
    "LENS_MODEL_LIST",
    "Prior",
    "Uniform",
    "LogUniform",
    "Normal",
    "TruncatedNormal",
    "PRIORS",
    "get_priors",
    "sample_parameters",
    "to_lenstronomy_kwargs",
    "from_lenstronomy_kwargs",
    "sky_quantities",
    "rotate_parameters",
    "flip_parameters",
    "pixel_to_angle",
    "angle_to_pixel",
    "image_data_kwargs",
]


@dataclass(frozen=True)
class Parameter:
    """One lens parameter: everything the package needs to know about it.

    Attributes
    ----------
    name : str
    unit : str
        Understood by `astropy.units` (empty: dimensionless).
    component : str
        The lenstronomy mass component it belongs to (in `LENS_MODEL_LIST`).
    key : str
        Its lenstronomy keyword there.
    bounds : (float, float)
        Hard limits in fits (lenstronomy ``EPL`` needs 1 < gamma < 3).
    std_floor : float
        Smallest prior width in fits, so that an over-confident network cannot
        freeze the parameter.
    turn : {"scalar", "spin2", "x", "y"}
        How it changes when the image turns by a quarter (`rotate_parameters`):
        unchanged, sign flip (ellipticity and shear components), or as the
        ``x`` or ``y`` coordinate of a position.
    mirrored : bool
        Whether its sign flips when east and west are swapped (`flip_parameters`).
    meaning : str
    """

    name: str
    unit: str
    component: str
    key: str
    bounds: tuple
    std_floor: float
    turn: str
    mirrored: bool
    meaning: str


#: The eight lens parameters, in the order used by every array in the package.
PARAMETERS = (
    Parameter("theta_E", "arcsec", "EPL", "theta_E", (0.02, 20.0), 0.005, "scalar", False,
              "Einstein radius (lenstronomy's EPL definition)"),
    Parameter("gamma", "", "EPL", "gamma", (1.2, 2.8), 0.01, "scalar", False,
              "logarithmic slope of the 3D mass density (2 is isothermal)"),
    Parameter("e1", "", "EPL", "e1", (-0.6, 0.6), 0.005, "spin2", False,
              "ellipticity, e cos 2 phi"),
    Parameter("e2", "", "EPL", "e2", (-0.6, 0.6), 0.005, "spin2", True,
              "ellipticity, e sin 2 phi"),
    Parameter("center_x", "arcsec", "EPL", "center_x", (-np.inf, np.inf), 0.005, "x", True,
              "lens centre, offset towards the east from the cutout centre"),
    Parameter("center_y", "arcsec", "EPL", "center_y", (-np.inf, np.inf), 0.005, "y", False,
              "lens centre, offset towards the north from the cutout centre"),
    Parameter("gamma1", "", "SHEAR", "gamma1", (-0.4, 0.4), 0.003, "spin2", False,
              "external shear, g cos 2 phi_g"),
    Parameter("gamma2", "", "SHEAR", "gamma2", (-0.4, 0.4), 0.003, "spin2", True,
              "external shear, g sin 2 phi_g"),
)

#: The parameters' names, in array order.
PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)

#: Position of each parameter in the package's arrays, by name.
INDEX = {p.name: i for i, p in enumerate(PARAMETERS)}

#: Units of each parameter as strings understood by `astropy.units`
#: (the empty string means dimensionless).
PARAMETER_UNITS = {p.name: p.unit for p in PARAMETERS}

#: lenstronomy's names for the two mass components.
LENS_MODEL_LIST = ("EPL", "SHEAR")


def lens_center(params):
    """``(center_x, center_y)`` of a parameter array, as floats (arcsec)."""
    p = np.asarray(params, dtype=float)
    return float(p[INDEX["center_x"]]), float(p[INDEX["center_y"]])


# --------------------------------------------------------------------------
# priors
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Prior:
    """Base class of a one-dimensional prior; subclasses implement ``sample``."""

    def sample(self, rng: np.random.Generator, size=None):
        raise NotImplementedError

    @property
    def bounds(self) -> tuple[float, float]:
        """Smallest and largest value the prior can produce."""
        return (-np.inf, np.inf)


@dataclass(frozen=True)
class Uniform(Prior):
    """Uniform between ``low`` and ``high``."""

    low: float
    high: float

    def sample(self, rng, size=None):
        return rng.uniform(self.low, self.high, size)

    @property
    def mean(self) -> float:
        return 0.5 * (self.low + self.high)

    @property
    def std(self) -> float:
        return (self.high - self.low) / np.sqrt(12.0)

    @property
    def bounds(self):
        return (self.low, self.high)


@dataclass(frozen=True)
class LogUniform(Prior):
    """Uniform in the logarithm between ``low`` and ``high`` (both > 0)."""

    low: float
    high: float

    def sample(self, rng, size=None):
        return np.exp(rng.uniform(np.log(self.low), np.log(self.high), size))

    @property
    def mean(self) -> float:
        return (self.high - self.low) / np.log(self.high / self.low)

    @property
    def std(self) -> float:
        second = (self.high**2 - self.low**2) / (2 * np.log(self.high / self.low))
        return float(np.sqrt(second - self.mean**2))

    @property
    def bounds(self):
        return (self.low, self.high)


@dataclass(frozen=True)
class Normal(Prior):
    """Gaussian with mean ``mu`` and standard deviation ``sigma``."""

    mu: float
    sigma: float

    def sample(self, rng, size=None):
        return rng.normal(self.mu, self.sigma, size)

    @property
    def mean(self) -> float:
        return self.mu

    @property
    def std(self) -> float:
        return self.sigma


@dataclass(frozen=True)
class TruncatedNormal(Prior):
    """Gaussian ``N(mu, sigma)`` restricted to ``[low, high]`` (by rejection)."""

    mu: float
    sigma: float
    low: float
    high: float

    def sample(self, rng, size=None):
        shape = () if size is None else size
        out = rng.normal(self.mu, self.sigma, shape)
        bad = (out < self.low) | (out > self.high)
        while np.any(bad):
            out = np.where(bad, rng.normal(self.mu, self.sigma, shape), out)
            bad = (out < self.low) | (out > self.high)
        return out if size is not None else float(out)

    def _moments(self):
        from scipy.stats import truncnorm

        a = (self.low - self.mu) / self.sigma
        b = (self.high - self.mu) / self.sigma
        dist = truncnorm(a, b, loc=self.mu, scale=self.sigma)
        return float(dist.mean()), float(dist.std())

    @property
    def mean(self) -> float:
        return self._moments()[0]

    @property
    def std(self) -> float:
        return self._moments()[1]

    @property
    def bounds(self):
        return (self.low, self.high)


#: Priors of the eight parameters for each simulation preset.
#:
#: ``seed`` reproduces the original work's training distribution. ``survey``
#: covers galaxy-scale lenses seen from space (HST, Euclid, JWST): Einstein radii
#: 0.5"-3.0" (log-uniform, so that every octave is equally represented), slopes
#: around isothermal, axis ratios down to about 0.5 and external shear of a few
#: per cent, as found in SLACS/BELLS/SL2S lens models.
PRIORS = {
    "seed": {
        "theta_E": Uniform(0.8, 1.2),
        "gamma": Normal(2.0, 0.1),
        "e1": Uniform(-0.05, 0.05),
        "e2": Uniform(-0.05, 0.05),
        "center_x": Normal(0.0, 0.2),
        "center_y": Normal(0.0, 0.2),
        "gamma1": Normal(0.0, 0.16),
        "gamma2": Normal(0.0, 0.16),
    },
    "survey": {
        "theta_E": LogUniform(0.5, 3.0),
        "gamma": TruncatedNormal(2.0, 0.15, 1.6, 2.4),
        "e1": TruncatedNormal(0.0, 0.12, -0.3, 0.3),
        "e2": TruncatedNormal(0.0, 0.12, -0.3, 0.3),
        "center_x": TruncatedNormal(0.0, 0.1, -0.3, 0.3),
        "center_y": TruncatedNormal(0.0, 0.1, -0.3, 0.3),
        "gamma1": TruncatedNormal(0.0, 0.05, -0.15, 0.15),
        "gamma2": TruncatedNormal(0.0, 0.05, -0.15, 0.15),
    },
}
#: ``sky``: the ``survey`` lenses, up to 0.5" off the cutout centre.
PRIORS["sky"] = {**PRIORS["survey"],
                 "center_x": TruncatedNormal(0.0, 0.25, -0.5, 0.5),
                 "center_y": TruncatedNormal(0.0, 0.25, -0.5, 0.5)}


def get_priors(preset: str) -> dict:
    """Return the priors of a preset as ``{name: Prior}`` in `PARAMETER_NAMES` order.

    Raises
    ------
    ValueError
        If ``preset`` is not one of the known presets.
    """
    if preset not in PRIORS:
        raise ValueError(
            f"preset: unknown preset {preset!r}; expected one of {sorted(PRIORS)}"
        )
    return {name: PRIORS[preset][name] for name in PARAMETER_NAMES}


def sample_parameters(preset: str, rng: np.random.Generator, size: int | None = None):
    """Draw lens parameters from a preset's priors.

    Returns an array of shape ``(8,)`` (``size=None``) or ``(size, 8)``.
    """
    priors = get_priors(preset)
    values = [np.asarray(p.sample(rng, size), dtype=float) for p in priors.values()]
    return np.stack(values, axis=-1)


def prior_moments(preset: str) -> tuple[np.ndarray, np.ndarray]:
    """Means and standard deviations of a preset's priors, each of shape ``(8,)``."""
    priors = get_priors(preset)
    mean = np.array([p.mean for p in priors.values()], dtype=float)
    std = np.array([p.std for p in priors.values()], dtype=float)
    return mean, std


# --------------------------------------------------------------------------
# conversions
# --------------------------------------------------------------------------
def to_lenstronomy_kwargs(params) -> list[dict]:
    """Convert the eight parameters to lenstronomy ``kwargs_lens``.

    The returned list matches `LENS_MODEL_LIST` (``["EPL", "SHEAR"]``); the shear
    is anchored at the lens centre.
    """
    p = np.asarray(params, dtype=float)
    if p.shape != (len(PARAMETERS),):
        raise ValueError(f"params: expected 8 values {PARAMETER_NAMES}, got shape {p.shape}")
    kwargs = [{} for _ in LENS_MODEL_LIST]
    for spec, value in zip(PARAMETERS, p):
        kwargs[LENS_MODEL_LIST.index(spec.component)][spec.key] = float(value)
    shear = kwargs[LENS_MODEL_LIST.index("SHEAR")]
    shear["ra_0"], shear["dec_0"] = lens_center(p)
    return kwargs


def from_lenstronomy_kwargs(kwargs_lens) -> np.ndarray:
    """Inverse of `to_lenstronomy_kwargs`: the eight parameters as an array."""
    return np.array([kwargs_lens[LENS_MODEL_LIST.index(spec.component)][spec.key]
                     for spec in PARAMETERS], dtype=float)


def _position_angle(phi):
    """lenstronomy angle (rad, +x=east towards +y=north) -> PA east of north in [0, 180) deg."""
    return np.mod(90.0 - np.degrees(phi), 180.0)


def sky_quantities(params) -> dict:
    """Quantities astronomers quote, derived from the eight parameters.

    Parameters
    ----------
    params : array-like, shape (8,) or (N, 8)

    Returns
    -------
    dict of `~astropy.units.Quantity`
        ``axis_ratio`` (q = b/a of the mass), ``position_angle`` (of the mass's
        major axis, east of north, in [0, 180) deg), ``shear`` (strength) and
        ``shear_angle`` (east of north, in [0, 180) deg).
    """
    import astropy.units as u
    from lenstronomy.Util import param_util

    p = np.asarray(params, dtype=float)
    phi, q = param_util.ellipticity2phi_q(p[..., INDEX["e1"]], p[..., INDEX["e2"]])
    phi_g, g = param_util.shear_cartesian2polar(p[..., INDEX["gamma1"]], p[..., INDEX["gamma2"]])
    return {
        "axis_ratio": np.asarray(q) * u.dimensionless_unscaled,
        "position_angle": _position_angle(np.asarray(phi)) * u.deg,
        "shear": np.asarray(g) * u.dimensionless_unscaled,
        "shear_angle": _position_angle(np.asarray(phi_g)) * u.deg,
    }


# --------------------------------------------------------------------------
# symmetries of the image grid
# --------------------------------------------------------------------------
def rotate_parameters(params, k: int = 1) -> np.ndarray:
    """Parameters of the lens seen in ``np.rot90(image, k)``.

    With this module's pixel convention, ``np.rot90(image, 1)`` turns the sky by
    +90 deg in the ``x``-``y`` plane: positions map ``(x, y) -> (-y, x)`` and the
    spin-2 quantities (ellipticity, shear) turn by 180 deg, i.e. change sign.

    Parameters
    ----------
    params : array-like, shape (..., 8)
    k : int
        Number of quarter turns, as in `numpy.rot90`.
    """
    p = np.array(params, dtype=float, copy=True)
    for _ in range(int(k) % 4):
        x, y = p[..., _X].copy(), p[..., _Y].copy()
        p[..., _X], p[..., _Y] = -y, x
        p[..., _SPIN2] *= -1.0
    return p


def flip_parameters(params) -> np.ndarray:
    """Parameters of the lens seen in ``np.fliplr(image)`` (east and west swapped).

    The mirror ``x -> -x`` flips the sign of ``center_x`` and of the second
    (45 degree) component of ellipticity and shear.
    """
    p = np.array(params, dtype=float, copy=True)
    p[..., _MIRRORED] *= -1.0
    return p


_SPIN2 = [i for i, spec in enumerate(PARAMETERS) if spec.turn == "spin2"]
_X = next(i for i, spec in enumerate(PARAMETERS) if spec.turn == "x")
_Y = next(i for i, spec in enumerate(PARAMETERS) if spec.turn == "y")
_MIRRORED = [i for i, spec in enumerate(PARAMETERS) if spec.mirrored]


def pixel_to_angle(i, j, n: int, pixel_scale: float):
    """Angular coordinates (x east, y north; arcsec) of pixel (column ``i``, row ``j``)."""
    c = (n - 1) / 2.0
    return (c - np.asarray(i, float)) * pixel_scale, (np.asarray(j, float) - c) * pixel_scale


def angle_to_pixel(x, y, n: int, pixel_scale: float):
    """Inverse of `pixel_to_angle`: (column, row) of angular position ``(x, y)``."""
    c = (n - 1) / 2.0
    return c - np.asarray(x, float) / pixel_scale, c + np.asarray(y, float) / pixel_scale


def image_data_kwargs(npix: int, pixel_scale: float, **kwargs) -> dict:
    """lenstronomy ``kwargs_data`` of an ``npix`` x ``npix`` grid in this module's orientation.

    This is ``data_configure_simple(npix, pixel_scale, inverse=True)``: column 0
    is the eastern edge and ``x`` grows to the east (left), as on the sky.
    Extra keywords (``exposure_time``, ``background_rms``) are passed on.
    """
    from lenstronomy.Util.simulation_util import data_configure_simple

    return data_configure_simple(npix, pixel_scale, inverse=True, **kwargs)
