"""Result objects and writers: lens-parameter estimates as tables, sources as NDData.

* `LensEstimate` holds the network's Gaussian posterior (mean and 1-sigma of the
  eight parameters of `astro_delens.lensmodel`) for one prepared cutout and turns
  it into an `~astropy.table.QTable` row (`LensEstimate.to_table`) with units,
  the derived sky quantities (axis ratio, position angle east of north, shear
  strength and angle, their errors propagated by sampling the Gaussian) and the
  lens centre as a `~astropy.coordinates.SkyCoord` when the input had a WCS.
* `provenance_header` records model, versions, checksums and the preprocessing
  steps as FITS cards; `write_table` and `write_fits` write atomically.

Examples
--------
>>> import numpy as np
>>> from astro_delens.results import derived_quantities
>>> mean = np.array([1.2, 2.0, 0.1, 0.0, 0.0, 0.0, 0.03, 0.0])
>>> std = np.full(8, 1e-6)
>>> d = derived_quantities(mean, std)
>>> round(float(d["axis_ratio"][0]), 3), float(d["position_angle"][0].to_value("deg"))
(0.818, 90.0)
"""

from __future__ import annotations

import copy
import json
import warnings

import numpy as np

import astropy.units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import QTable

from . import lensmodel
from ._version import __version__
from .files import atomic_write

__all__ = [
    "LensEstimate",
    "DERIVED_QUANTITIES",
    "derived_quantities",
    "estimates_table",
    "provenance_header",
    "header_text",
    "write_table",
    "write_fits",
    "plot_reconstruction",
]

#: Number of Gaussian samples used to propagate errors to the derived quantities.
N_SAMPLES = 4000

_ANGLES = ("position_angle", "shear_angle")
#: The quantities derived from the parameters, with errors, in every estimates table.
DERIVED_QUANTITIES = ("axis_ratio", "position_angle", "shear", "shear_angle")


def _wrapped_std(samples_deg, centre_deg):
    """Standard deviation of axial angles (period 180 deg) about ``centre_deg``."""
    diff = np.mod(samples_deg - centre_deg[..., None] + 90.0, 180.0) - 90.0
    return np.sqrt(np.mean(diff**2, axis=-1))


def derived_quantities(mean, std, n_samples=N_SAMPLES, seed=0) -> dict:
    """Sky quantities of the estimate and their 1-sigma errors.

    The point values come from ``mean``; the errors are the standard
    deviations of the quantities over ``n_samples`` draws from the independent
    Gaussians ``N(mean, std)`` (angles wrapped about the point value). The
    draws are the same for every row, so a row's errors do not depend on the
    other rows.

    Parameters
    ----------
    mean, std : array-like, shape (8,) or (N, 8)
    n_samples : int
    seed : int
        Seed of the sampling (results are reproducible).

    Returns
    -------
    dict
        ``axis_ratio``, ``position_angle``, ``shear``, ``shear_angle`` and each
        with ``_err``, as `~astropy.units.Quantity` of shape (N,).
    """
    mean = np.atleast_2d(np.asarray(mean, dtype=float))
    std = np.atleast_2d(np.asarray(std, dtype=float))
    if mean.shape[-1] != 8 or std.shape != mean.shape:
        raise ValueError(f"mean, std: expected matching shapes (N, 8), got {mean.shape}, "
                         f"{std.shape}")
    point = lensmodel.sky_quantities(mean)
    # the same standard-normal draws for every row: a row's errors do not depend on the
    # other rows of the table
    z = np.random.default_rng(seed).standard_normal((n_samples, 8))
    errors = {name: np.empty(mean.shape[0]) for name in DERIVED_QUANTITIES}
    chunk = max(1, 2_000_000 // (8 * n_samples))  # bounded memory for long tables
    for start in range(0, mean.shape[0], chunk):
        m, s = mean[start:start + chunk], std[start:start + chunk]
        draws = m[:, None, :] + s[:, None, :] * z
        sampled = lensmodel.sky_quantities(draws)
        for name in DERIVED_QUANTITIES:
            values = sampled[name].value
            if name in _ANGLES:
                centre = np.atleast_1d(point[name].to_value(u.deg))[start:start + chunk]
                errors[name][start:start + chunk] = _wrapped_std(values, centre)
            else:
                errors[name][start:start + chunk] = np.std(values, axis=-1)
    out = {}
    for name in DERIVED_QUANTITIES:
        value = np.atleast_1d(point[name])
        out[name] = value
        out[name + "_err"] = errors[name] * value.unit
    return out


class LensEstimate:
    """The lens parameters estimated for one input (see `~astro_delens.LensParameterEstimator`).

    Parameters
    ----------
    mean, std : array-like, shape (8,)
        Posterior mean and 1-sigma of the parameters
        (`astro_delens.lensmodel.PARAMETER_NAMES` order, arcsec and dimensionless).
    prepared : `~astro_delens.cutout.PreparedCutout`
        The cutout the networks saw (gives the WCS and the preprocessing log).
    model : dict
        Provenance of the model: ``name``, ``version``, ``sha256``, ``preset``.
    flags : sequence of str
        Codes of the out-of-domain warnings raised for this input.

    Attributes
    ----------
    mean, std : numpy.ndarray
        The estimate: the network's, or the refined one after `with_refinement`.
    network_mean, network_std : numpy.ndarray
        The network's own estimate (equal to ``mean``, ``std`` unless refined).
    refinement : `~astro_delens.forward.RefineResult` or None
        The lenstronomy fit that refined the estimate (None: not refined).
    prepared, model, flags, label
    """

    def __init__(self, mean, std, prepared, model, flags=()):
        self.mean = np.asarray(mean, dtype=float).copy()
        self.std = np.asarray(std, dtype=float).copy()
        if self.mean.shape != (8,) or self.std.shape != (8,):
            raise ValueError("mean, std: expected 8 values each")
        self.network_mean, self.network_std = self.mean.copy(), self.std.copy()
        self.refinement = None
        self.prepared = prepared
        self.model = dict(model)
        self.flags = tuple(dict.fromkeys(flags))
        self.label = prepared.label

    @property
    def refined(self) -> bool:
        """True when ``mean`` and ``std`` come from a lenstronomy refinement."""
        return self.refinement is not None

    def with_refinement(self, refinement) -> "LensEstimate":
        """A copy whose parameters are those of a `~astro_delens.forward.RefineResult`.

        The network's estimate stays in ``network_mean`` and ``network_std``.
        """
        out = LensEstimate(refinement.params, refinement.params_std, self.prepared, self.model,
                           self.flags)
        out.network_mean, out.network_std = self.network_mean.copy(), self.network_std.copy()
        out.refinement = refinement
        return out

    def without_arrays(self) -> "LensEstimate":
        """A copy whose prepared cutout has no arrays (for tables of long batches)."""
        out = copy.copy(self)
        out.prepared = self.prepared.without_arrays()
        return out

    # -- values ------------------------------------------------------------
    @property
    def parameters(self) -> dict:
        """``{name: Quantity}`` of the posterior means."""
        return {n: self.mean[i] * u.Unit(lensmodel.PARAMETER_UNITS[n])
                for i, n in enumerate(lensmodel.PARAMETER_NAMES)}

    @property
    def uncertainties(self) -> dict:
        """``{name: Quantity}`` of the 1-sigma uncertainties."""
        return {n: self.std[i] * u.Unit(lensmodel.PARAMETER_UNITS[n])
                for i, n in enumerate(lensmodel.PARAMETER_NAMES)}

    @property
    def center(self) -> SkyCoord | None:
        """Sky position of the lens centre (None without a celestial WCS)."""
        if self.prepared.center is None:
            return None
        n, d = self.prepared.preset.npix, self.prepared.pixel_scale
        i, j = lensmodel.angle_to_pixel(*lensmodel.lens_center(self.mean), n, d)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.prepared.wcs.pixel_to_world(float(i), float(j)).icrs

    @property
    def center_pixel(self):
        """Zero-based ``(x, y)`` pixel of the lens centre in the input image (linearised)."""
        return self.prepared.offset_to_input_pixel(*lensmodel.lens_center(self.mean))

    def sky_quantities(self) -> dict:
        """Axis ratio, position angle, shear and shear angle with errors (`derived_quantities`)."""
        d = derived_quantities(self.mean, self.std)
        return {k: v[0] for k, v in d.items()}

    # -- views -------------------------------------------------------------
    def to_table(self) -> QTable:
        """One-row `~astropy.table.QTable` of the estimate (see `estimates_table`)."""
        return estimates_table([self])

    def __repr__(self):
        p = ", ".join(f"{n}={m:.3g}±{s:.2g}" for n, m, s in
                      zip(lensmodel.PARAMETER_NAMES, self.mean, self.std))
        return f"<LensEstimate {self.label!r}: {p}>"


def estimates_table(estimates, labels=None) -> QTable:
    """A `~astropy.table.QTable` with one row per `LensEstimate`.

    Columns: ``input``; each parameter and its ``_err`` (``theta_E``,
    ``center_x``, ``center_y`` in arcsec, the others dimensionless);
    ``axis_ratio``, ``position_angle`` (deg, east of north), ``shear``,
    ``shear_angle`` (deg) and their ``_err``; ``center`` (`SkyCoord`, ICRS)
    when any input has a celestial WCS (NaN for those without); ``flags``
    (out-of-domain codes, comma-separated). When any estimate was refined:
    ``refined`` (bool), ``refine_reduced_chi2`` and ``refine_seconds``
    (NaN where not refined), and the network's own values as
    ``<parameter>_net`` and ``<parameter>_net_err``. The table ``meta``
    records the model, the package version, the conventions, the
    preprocessing of each input and the settings of any refinement.

    Parameters
    ----------
    estimates : list of LensEstimate
    labels : list of str, optional
        Identifiers of the inputs (default: each estimate's label).
    """
    estimates = list(estimates)
    labels = [e.label for e in estimates] if labels is None else [str(v) for v in labels]
    table = QTable()
    table["input"] = labels
    mean = np.array([e.mean for e in estimates]).reshape(-1, 8)
    std = np.array([e.std for e in estimates]).reshape(-1, 8)
    for i, name in enumerate(lensmodel.PARAMETER_NAMES):
        unit = lensmodel.PARAMETER_UNITS[name]
        if unit:
            table[name] = mean[:, i] * u.Unit(unit)
            table[name + "_err"] = std[:, i] * u.Unit(unit)
        else:
            table[name] = mean[:, i]
            table[name + "_err"] = std[:, i]
    if estimates:
        derived = derived_quantities(mean, std)
        for name in DERIVED_QUANTITIES:
            for key in (name, name + "_err"):
                q = derived[key]
                table[key] = q if q.unit != u.dimensionless_unscaled else q.value
    centers = [e.center for e in estimates]
    if any(c is not None for c in centers):
        ra = [c.ra.deg if c is not None else np.nan for c in centers]
        dec = [c.dec.deg if c is not None else np.nan for c in centers]
        table["center"] = SkyCoord(ra, dec, unit="deg", frame="icrs")
    table["flags"] = [",".join(e.flags) for e in estimates]
    if any(e.refined for e in estimates):
        _add_refinement_columns(table, estimates, labels)
    models = {json.dumps(e.model, sort_keys=True) for e in estimates}
    table.meta["astro_delens_version"] = __version__
    if len(models) == 1:
        table.meta["model"] = estimates[0].model
    else:
        table.meta["models"] = {lab: e.model for lab, e in zip(labels, estimates)}
    table.meta["conventions"] = (
        "center_x east and center_y north of the cutout centre (arcsec); position angles "
        "east of north in [0, 180) deg; e1, e2, gamma1, gamma2 as lenstronomy (x east, y north); "
        "errors of derived quantities from Gaussian sampling")
    table.meta["preprocessing"] = {lab: [dict(s) for s in e.prepared.steps]
                                   for lab, e in zip(labels, estimates)}
    return table


def _add_refinement_columns(table, estimates, labels):
    table["refined"] = [e.refined for e in estimates]
    table["refine_reduced_chi2"] = [e.refinement.reduced_chi2 if e.refined else np.nan
                                    for e in estimates]
    table["refine_seconds"] = [e.refinement.seconds if e.refined else np.nan
                               for e in estimates] * u.s
    net_mean = np.array([e.network_mean for e in estimates]).reshape(-1, 8)
    net_std = np.array([e.network_std for e in estimates]).reshape(-1, 8)
    for i, name in enumerate(lensmodel.PARAMETER_NAMES):
        unit = u.Unit(lensmodel.PARAMETER_UNITS[name] or "")
        for suffix, values in (("_net", net_mean[:, i]), ("_net_err", net_std[:, i])):
            table[name + suffix] = values * unit if unit != u.dimensionless_unscaled else values
    table.meta["refinement"] = {lab: e.refinement.settings for lab, e in zip(labels, estimates)
                                if e.refined}


# --------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------
def header_text(text, limit=None):
    """``text`` as a FITS header value: ASCII (other characters as ``?``), cut to ``limit``."""
    s = str(text).encode("ascii", "replace").decode("ascii")
    return s if limit is None else s[:limit]


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def provenance_header(model, prepared, extra=None) -> fits.Header:
    """FITS cards recording how a result was made.

    Parameters
    ----------
    model : dict
        ``name``, ``version``, ``sha256`` (``{file: digest}``), ``preset``, ``kind``
        and optionally ``symmetries``.
    prepared : `~astro_delens.cutout.PreparedCutout`
    extra : dict, optional
        More ``{keyword: value}`` cards (keywords of at most 8 characters).
    """
    h = fits.Header()
    h["ORIGIN"] = ("astro_delens", "software that made this file")
    h["ADVERS"] = (__version__, "astro_delens version")
    kind = model.get("kind", "model")
    h["ADKIND"] = (header_text(kind), "network that made this")
    h["ADMODEL"] = (header_text(model.get("name")), "model name")
    h["ADMODVER"] = (header_text(model.get("version")), "model version")
    h["ADPRESET"] = (header_text(model.get("preset")), "model preset (grid, training domain)")
    if model.get("symmetries") is not None:
        h["ADSYMM"] = (int(model["symmetries"]), "answers averaged over N turns/flips")
    sha = model.get("sha256") or {}
    if "model.weights.h5" in sha:
        h["ADSHAW"] = (sha["model.weights.h5"], "")
    if "config.json" in sha:
        h["ADSHAC"] = (sha["config.json"], "")
    h["ADINPUT"] = (header_text(prepared.label, 60), "input image")
    h["ADPIXSC"] = (float(prepared.pixel_scale), "[arcsec] model image pixel scale")
    h["ADINSC"] = (round(float(prepared.input_pixel_scale), 6), "[arcsec] input pixel scale")
    for key, value in (extra or {}).items():
        h[key] = value
    h["ADSTEPS"] = (header_text(json.dumps([dict(s) for s in prepared.steps],
                                           default=_json_default, separators=(",", ":"))),
                    "preprocessing steps (JSON)")
    for i, step in enumerate(prepared.steps, 1):
        text = ", ".join(f"{k}={v}" for k, v in step.items() if k != "step")
        h.add_history(header_text(f"astro_delens step {i} {step['step']}: {text}"))
    return h


# --------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------
def write_table(table, path, overwrite=False):
    """Write a table as ECSV atomically (temporary file in the same folder, then rename)."""
    return atomic_write(path, lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True),
                        overwrite=overwrite)


def write_fits(obj, path, overwrite=False):
    """Write a `~astropy.nddata.CCDData` or an HDUList as FITS atomically."""
    def write(tmp):
        hdul = obj.to_hdu() if hasattr(obj, "to_hdu") else obj
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            hdul.writeto(tmp, overwrite=True, output_verify="silentfix")

    return atomic_write(path, write, overwrite=overwrite)


def plot_reconstruction(prepared, source, path=None, title=None, overwrite=True):
    """Figure of the prepared data and the reconstructed source, saved as PNG to ``path``.

    Returns the `matplotlib.figure.Figure` (made without pyplot, no display needed).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.0), layout="constrained")
    axes = fig.subplots(1, 2)
    n, d = prepared.image.shape[0], prepared.pixel_scale
    half = n * d / 2.0
    img = np.where(prepared.mask, np.nan, prepared.image)
    _show(axes[0], img, half, "data (model grid)")
    src = np.asarray(source.data if hasattr(source, "data") else source, dtype=float)
    sh = src.shape[0] * prepared.preset.source_pixel_scale / 2.0
    _show(axes[1], src, sh, "reconstructed source")
    if title:
        fig.suptitle(title)
    if path is not None:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"),
                     overwrite=overwrite)
    return fig


def _show(ax, image, half, title):
    finite = image[np.isfinite(image)]
    vmax = np.percentile(finite, 99.5) if finite.size else 1.0
    vmin = -0.05 * vmax
    ax.imshow(np.arcsinh(np.clip(image, vmin, None) / (0.05 * vmax + 1e-30)),
              origin="lower", extent=(half, -half, -half, half), cmap="magma")
    ax.set_xlabel("x (arcsec, east)")
    ax.set_ylabel("y (arcsec, north)")
    ax.set_title(title)
