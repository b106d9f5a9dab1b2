"""Calibrate a parameter network's uncertainties on held-out simulations.

A Gaussian likelihood head learns sigmas that are right on average over the
training set, but not necessarily per parameter: a network can be
under-confident about a parameter it measures well (theta_E, the centre) and
over-confident elsewhere. `calibrate_estimator` measures, on a validation set
that training did not fit, the normalised errors ``z = (mean - truth) / sigma``
of each parameter and scales that parameter's sigma by the factor that brings
the fractions of validation truths inside the 1-sigma and 1.96-sigma intervals
closest to 68.27% and 95% (`best_scale`: errors have heavier tails than a
Gaussian, so matching the 68% level alone would leave the 95% intervals short).
Averaging the answers over symmetries of the square (``symmetries`` of
`astro_delens.nn.registry.LoadedEstimator.predict`) makes them more accurate
but not their sigmas smaller, so one set of scales is measured for each
number of symmetries (1, 4 and 8). The scales are stored in the model's
``config.json`` under ``calibration`` (with the data they came from and the
coverage before and after, keyed by the number of symmetries) and applied by
`astro_delens.nn.registry.LoadedEstimator.predict`.

The same validation lenses set the threshold of the field-dependence check
(`astro_delens.fieldcheck`): the relative range of the Einstein radius over
smaller fields of view that only `FIELD_FALSE_FLAG_RATE` (5%) of them exceed,
stored under ``field_check``.

The two centre coordinates, which a quarter turn of the image exchanges,
share one factor (`pooled_scale`). One scale per parameter keeps the
network's ranking of easy and hard lenses; it cannot fix a network whose
sigmas do not follow its errors. The test set
(`astro-delens evaluate`) then measures the calibrated coverage independently.
"""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import numpy as np

from .. import lensmodel
from .._version import __version__
from ..nn.augment import SYMMETRY_COUNTS

__all__ = ["calibrate_estimator", "calibrate_field_check", "coverage", "best_scale", "pooled_scale",
           "ONE_SIGMA"]

logger = logging.getLogger(__name__)

#: Probability mass of a Gaussian within one sigma.
ONE_SIGMA = 0.6826894921370859

#: Probability mass of a Gaussian within ``Z95`` sigma.
TWO_SIGMA = 0.95

#: Half-width, in sigma, of the central 95% of a Gaussian.
Z95 = 1.959964


def coverage(z) -> dict:
    """Fractions of ``|z|`` (N, 8) within the Gaussian 68.27% and 95% intervals, per parameter."""
    a = np.abs(np.asarray(z, dtype=float))
    return {"68": np.mean(a <= 1.0, axis=0).round(4).tolist(),
            "95": np.mean(a <= Z95, axis=0).round(4).tolist()}


def best_scale(z) -> np.ndarray:
    """Per-parameter sigma factors that best match the 68.27% and 95% coverages.

    For each column of ``z`` (N, 8), the factor ``s`` (searched on a fine
    logarithmic grid from 0.1 to 10) minimises
    ``((c68(s) - 0.6827) / 0.05)**2 + ((c95(s) - 0.95) / 0.03)**2``, where
    ``c68`` and ``c95`` are the fractions of ``|z| / s`` within 1 and 1.96:
    the deviations are weighed by the half-widths of the acceptable ranges
    63-73% and 92-98%.
    """
    a = np.abs(np.asarray(z, dtype=float))
    grid = np.geomspace(0.1, 10.0, 2001)
    out = np.empty(a.shape[1])
    for k in range(a.shape[1]):
        col = np.sort(a[:, k])
        c68 = np.searchsorted(col, grid, side="right") / len(col)
        c95 = np.searchsorted(col, Z95 * grid, side="right") / len(col)
        cost = ((c68 - ONE_SIGMA) / 0.05) ** 2 + ((c95 - TWO_SIGMA) / 0.03) ** 2
        out[k] = grid[int(np.argmin(cost))]
    return out


#: Columns that a quarter turn of the image exchanges (center_x, center_y): they share one
#: factor, so that calibrated sigmas turn with the image as the estimates do.
EXCHANGED = (lensmodel.PARAMETER_NAMES.index("center_x"),
             lensmodel.PARAMETER_NAMES.index("center_y"))


def pooled_scale(z) -> np.ndarray:
    """`best_scale` per column, with one factor fitted to the `EXCHANGED` columns together."""
    z = np.asarray(z, dtype=float)
    scale = best_scale(z)
    cols = list(EXCHANGED)
    scale[cols] = best_scale(z[:, cols].reshape(-1, 1))[0]
    return scale


def _predict_raw(loaded, path, n, batch_size, chunk=500):
    """Uncalibrated estimates from each of the 8 symmetries, (8, n, 8), and the truths."""
    import h5py

    means, stds, truths = [], [], []
    with h5py.File(path, "r") as f:
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            m, s = loaded.predict_symmetries(f["image"][start:stop], f["noise_map"][start:stop],
                                             batch_size=batch_size, symmetries=8)
            means.append(m)
            stds.append(s)
            truths.append(f["params"][start:stop])
    return np.concatenate(means, axis=1), np.concatenate(stds, axis=1), np.concatenate(truths)


def _open(model_dir, data, max_samples, log):
    """The loaded network, the data's info, the number of samples to use and the logger."""
    from ..nn.registry import load_estimator
    from .train import read_h5_info

    if log is None:
        log = logger.info
    loaded = load_estimator(model_dir)
    info = read_h5_info(data, "estimator")
    dp, preset = info["preset"], loaded.preset
    if (dp.npix, dp.pixel_scale) != (preset.npix, preset.pixel_scale):
        raise ValueError(f"data: preset {dp.name!r} does not match the model's {preset.name!r}")
    n = info["n"] if max_samples is None else min(int(max_samples), info["n"])
    return loaded, info, n, log


def calibrate_estimator(model_dir, data, *, max_samples=None, batch_size=64, log=None) -> dict:
    """Measure and store per-parameter sigma scales of an estimator (see the module doc).

    Parameters
    ----------
    model_dir : path-like
        An estimator model directory; its ``config.json`` and ``SHA256SUMS`` are rewritten.
    data : path-like
        A validation HDF5 set of the model's preset, not used to fit the weights.
    max_samples : int, optional
        Use only the first N samples.
    batch_size : int
    log : callable, optional
        Called with status lines (default: this module's logger, at INFO level).

    Returns
    -------
    dict
        The ``calibration`` entry written to ``config.json``.
    """
    import json

    from ..files import atomic_write_text, sha256_file, to_json, write_checksums
    from ..nn.registry import DEFAULT_SYMMETRIES, combine_symmetries

    model_dir = Path(model_dir)
    loaded, info, n, log = _open(model_dir, data, max_samples, log)
    if n < 100:
        raise ValueError(f"data: {n} samples are too few to calibrate (at least 100 needed)")
    log(f"calibrating the uncertainties of {model_dir} on {n} samples of {data}")
    means, stds, truth = _predict_raw(loaded, info["path"], n, batch_size)
    scales, before, after = {}, {}, {}
    for count in SYMMETRY_COUNTS:
        mean, std = combine_symmetries(means[:count], stds[:count])
        z = (mean - truth) / std
        key = str(count)
        scales[key] = [round(float(v), 5) for v in pooled_scale(z)]
        before[key], after[key] = coverage(z), coverage(z / np.asarray(scales[key]))
    entry = {
        "method": "per-parameter factor on the network's sigma that brings the fractions of "
                  "truths within 1 and 1.96 sigma closest to 68.27% and 95% on the data below "
                  "(astro_delens.training.calibrate.best_scale), for the network's answers "
                  "averaged over 1, 4 and 8 symmetries of the square",
        "parameter_names": list(lensmodel.PARAMETER_NAMES),
        "sigma_scale": scales,
        "data": {"path": str(info["path"]), "n": int(n), "sha256": sha256_file(info["path"]),
                 "seed": info.get("seed"), "split": info.get("split")},
        "coverage_before": before,
        "coverage_after": after,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__,
    }
    key = str(DEFAULT_SYMMETRIES)
    theta = combine_symmetries(means[:DEFAULT_SYMMETRIES], stds[:DEFAULT_SYMMETRIES])[0][:, 0]
    field_entry = _field_check_entry(loaded, info, n, batch_size, theta)
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["calibration"] = entry
    cfg["field_check"] = field_entry
    atomic_write_text(model_dir / "config.json", to_json(cfg, indent=2) + "\n")
    write_checksums(model_dir, names=_checksummed(model_dir))
    for name, factor, held in zip(lensmodel.PARAMETER_NAMES, scales[key], before[key]["68"]):
        log(f"  {name:<8} sigma x {factor:.3f}  (68% interval held {held:.1%} before; "
            f"{DEFAULT_SYMMETRIES} symmetries)")
    log(f"  after: 68% intervals hold {after[key]['68']}, 95% intervals {after[key]['95']}")
    log(f"  field check: flags a relative theta_E range above {field_entry['threshold']:.3f} "
        f"({FIELD_FALSE_FLAG_RATE:.0%} of these lenses)")
    return entry


def calibrate_field_check(model_dir, data, *, max_samples=None, batch_size=256, log=None) -> dict:
    """Set only the field-dependence threshold of a parameter network (``field_check``).

    For models whose uncertainties were calibrated before the check existed:
    their ``calibration`` entry is kept. Parameters as `calibrate_estimator`.

    Returns
    -------
    dict
        The ``field_check`` entry written to ``config.json``.
    """
    import json

    from ..files import atomic_write_text, to_json, write_checksums

    model_dir = Path(model_dir)
    loaded, info, n, log = _open(model_dir, data, max_samples, log)
    log(f"setting the field-check threshold of {model_dir} on {n} samples of {data}")
    entry = _field_check_entry(loaded, info, n, batch_size)
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["field_check"] = entry
    atomic_write_text(model_dir / "config.json", to_json(cfg, indent=2) + "\n")
    write_checksums(model_dir, names=_checksummed(model_dir))
    log(f"  field check: flags a relative theta_E range above {entry['threshold']:.3f} "
        f"({FIELD_FALSE_FLAG_RATE:.0%} of these lenses)")
    return entry


#: Fraction of validation lenses the field-dependence check may flag.
FIELD_FALSE_FLAG_RATE = 0.05


def _field_check_entry(loaded, info, n, batch_size, theta=None):
    """The ``field_check`` entry: the threshold `FIELD_FALSE_FLAG_RATE` of the data exceed.

    ``theta``: the full-field Einstein radii (default: predicted here).
    """
    import h5py

    from ..fieldcheck import FIELD_FRACTIONS, RING_FACTOR, RING_MARGIN, field_dependence
    from ..files import sha256_file

    with h5py.File(info["path"], "r") as f:
        images, noise = f["image"][:n], f["noise_map"][:n]
    if theta is None:
        theta = loaded.predict(images, noise, ~np.isfinite(noise), batch_size=batch_size)[0][:, 0]
    relative, _ = field_dependence(loaded, images, noise, ~np.isfinite(noise), theta,
                                   batch_size=batch_size)
    return {
        "method": "relative range of theta_E over centred squares of the field that hold the "
                  "ring (astro_delens.fieldcheck); threshold exceeded by "
                  f"{FIELD_FALSE_FLAG_RATE:.0%} of the data below",
        "threshold": round(float(np.quantile(relative, 1 - FIELD_FALSE_FLAG_RATE)), 4),
        "fractions": [round(v, 4) for v in FIELD_FRACTIONS],
        "ring": [RING_FACTOR, RING_MARGIN],
        "percentiles_50_90_99": np.percentile(relative, [50, 90, 99]).round(4).tolist(),
        "data": {"path": str(info["path"]), "n": int(n), "sha256": sha256_file(info["path"])},
    }


def _checksummed(model_dir):
    """The files SHA256SUMS already lists (so that extra files such as history.csv stay listed)."""
    from ..nn.registry import read_sums

    try:
        return tuple(read_sums(model_dir))
    except ValueError:  # no or unreadable SHA256SUMS (ChecksumError)
        return ("config.json", "model.weights.h5", "card.md")
