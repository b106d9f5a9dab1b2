"""Evaluate a trained model on a test set: metrics (report.json), figures and the model card.

Parameter networks (estimators)
    For each of the eight parameters: RMS error, bias (mean of predicted minus
    true), RMS divided by the prior standard deviation (the standardisation
    std stored with the model: < 1 means the network learned something),
    the mean predicted standard deviation, and the fraction of true values
    inside the predicted 68.27% and 95.45% intervals (Gaussian ``mean +/- 1``
    and ``2 sigma``); for theta_E also the median absolute fractional error.
    Figures: predicted against true value per parameter, and a calibration
    plot (coverage of central intervals against their nominal level).
Source networks (reconstructors)
    On normalised sources (divided by the image scale, as the network sees
    them): MSE; relative MSE (MSE / peak**2); PSNR = 10 log10(peak**2 / MSE);
    SSIM (Gaussian window 11 px, sigma 1.5 px). The **data range** of PSNR and
    SSIM is the per-image peak of the true normalised source. Also the median
    ratio of predicted to true total flux. Figure: examples (image, true
    source, reconstruction, residual).

`evaluate_model` streams the test file in chunks, writes ``report.json`` and
PNGs to the report directory, and (unless told not to) records a summary in
the model's ``config.json`` under ``evaluation``, rewrites ``card.md`` and
updates ``SHA256SUMS``.
"""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path

import numpy as np

from .. import lensmodel
from .._version import __version__
from ..files import atomic_write_text, to_json, write_checksums
from ..nn import normalization as norm

__all__ = ["evaluate_model", "estimator_metrics", "reconstructor_metrics_batch",
           "coverage_curve", "NOMINAL_LEVELS"]

logger = logging.getLogger(__name__)

#: Nominal levels of the calibration curve.
NOMINAL_LEVELS = np.round(np.linspace(0.05, 0.95, 19), 2)
_Z68 = 1.0  # 68.27 %
_Z95 = 2.0  # 95.45 %


def _ndtri(p):
    from scipy.special import ndtri

    return ndtri(p)


def coverage_curve(mean, std, truth, levels=NOMINAL_LEVELS):
    """Fraction of ``truth`` inside central Gaussian intervals of each nominal level.

    Returns an array of shape ``(len(levels), n_params)``.
    """
    z = np.abs(np.asarray(truth) - np.asarray(mean)) / np.asarray(std)
    half = _ndtri(0.5 + 0.5 * np.asarray(levels))
    return np.stack([(z <= h).mean(axis=0) for h in half])


def estimator_metrics(mean, std, truth, prior_std) -> dict:
    """Per-parameter metrics of predicted means/stds against true values (see module doc)."""
    mean, std, truth = (np.asarray(a, dtype=np.float64) for a in (mean, std, truth))
    err = mean - truth
    rms = np.sqrt(np.mean(err ** 2, axis=0))
    z = np.abs(err) / std
    out = {}
    for k, name in enumerate(lensmodel.PARAMETER_NAMES):
        d = {
            "rms": float(rms[k]),
            "bias": float(np.mean(err[:, k])),
            "rms_over_prior_std": float(rms[k] / prior_std[k]),
            "mean_predicted_std": float(np.mean(std[:, k])),
            "coverage_68": float(np.mean(z[:, k] <= _Z68)),
            "coverage_95": float(np.mean(z[:, k] <= _Z95)),
            "unit": lensmodel.PARAMETER_UNITS[name],
        }
        if name == "theta_E":
            d["median_abs_fractional_error"] = float(np.median(np.abs(err[:, k]) / truth[:, k]))
        out[name] = d
    return out


def _ssim_batch(t, p):
    """SSIM of normalised sources relative to each true peak (same as the training loss)."""
    import keras

    peak = np.maximum(np.max(np.abs(t), axis=(1, 2), keepdims=True), 1e-12)
    a = (t / peak)[..., None].astype(np.float32)
    b = (p / peak)[..., None].astype(np.float32)
    if hasattr(keras.ops.image, "ssim"):
        s = keras.ops.image.ssim(a, b, max_val=1.0, filter_size=11, filter_sigma=1.5,
                                 data_format="channels_last")
    else:  # Keras before ops.image.ssim: the same SSIM written in keras.ops
        from ..nn.losses import ssim

        s = ssim(a, b, max_val=1.0, filter_size=11, filter_sigma=1.5)
    return np.asarray(keras.ops.convert_to_numpy(s), dtype=np.float64)


def reconstructor_metrics_batch(true_norm, pred_norm) -> dict:
    """Per-image metrics of normalised sources ``(N, S, S)``: arrays of length N."""
    t = np.asarray(true_norm, dtype=np.float64)
    p = np.asarray(pred_norm, dtype=np.float64)
    peak = np.max(np.abs(t), axis=(1, 2))
    mse = np.mean((t - p) ** 2, axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = mse / peak ** 2
        psnr = 10.0 * np.log10(peak ** 2 / mse)
        flux = p.sum(axis=(1, 2)) / t.sum(axis=(1, 2))
        # Scores that an empty prediction cannot game: sources cover a few per cent of
        # the grid, so SSIM and PSNR over the whole grid are dominated by empty sky.
        nmse = np.sum((t - p) ** 2, axis=(1, 2)) / np.sum(t ** 2, axis=(1, 2))
        tc = t - t.mean(axis=(1, 2), keepdims=True)
        pc = p - p.mean(axis=(1, 2), keepdims=True)
        corr = np.sum(tc * pc, axis=(1, 2)) / np.sqrt(np.sum(tc ** 2, axis=(1, 2))
                                                      * np.sum(pc ** 2, axis=(1, 2)))
    return {"mse": mse, "relative_mse": rel, "psnr": psnr, "ssim": _ssim_batch(t, p),
            "flux_ratio": flux, "normalised_error": nmse, "correlation": corr,
            "ssim_source_region": _ssim_source_region(t, p), "peak": peak}


def _ssim_source_region(t, p, threshold=0.05):
    """Mean SSIM map (as in `_ssim_batch`) over the pixels where the true source exceeds
    ``threshold`` of its peak, dilated by the SSIM window: SSIM where there is a source."""
    from scipy.ndimage import binary_dilation

    peak = np.maximum(np.max(np.abs(t), axis=(1, 2), keepdims=True), 1e-12)
    a, b = (t / peak).astype(np.float32), (p / peak).astype(np.float32)
    out = np.empty(len(t))
    for k in range(len(t)):
        region = binary_dilation(a[k] > threshold, iterations=5)
        smap = _ssim_map(a[k], b[k])
        out[k] = smap[region].mean() if region.any() else np.nan
    return out


def _ssim_map(a, b, sigma=1.5, max_val=1.0):
    """Per-pixel SSIM (Gaussian window) of two 2-D images, with scipy filters."""
    from scipy.ndimage import gaussian_filter

    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mu_a, mu_b = gaussian_filter(a, sigma), gaussian_filter(b, sigma)
    var_a = gaussian_filter(a * a, sigma) - mu_a ** 2
    var_b = gaussian_filter(b * b, sigma) - mu_b ** 2
    cov = gaussian_filter(a * b, sigma) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def _stat(a):
    a = np.asarray(a, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"mean": None, "median": None, "p16": None, "p84": None}
    return {"mean": float(a.mean()), "median": float(np.median(a)),
            "p16": float(np.percentile(a, 16)), "p84": float(np.percentile(a, 84))}


# --------------------------------------------------------------------------
# figures (matplotlib's object interface: no pyplot, no global backend)
# --------------------------------------------------------------------------
def _figure(**kw):
    from matplotlib.figure import Figure

    return Figure(**kw)


def _plot_pred_vs_true(mean, std, truth, path, max_points=2000):
    fig = _figure(figsize=(14, 7), layout="constrained")
    axes = fig.subplots(2, 4)
    n = len(truth)
    sel = np.random.default_rng(0).permutation(n)[:max_points]
    for k, (ax, name) in enumerate(zip(axes.flat, lensmodel.PARAMETER_NAMES)):
        t, m, s = truth[sel, k], mean[sel, k], std[sel, k]
        ax.errorbar(t, m, yerr=s, fmt=".", ms=2, lw=0.3, alpha=0.4, color="C0")
        lo, hi = np.nanmin([t.min(), m.min()]), np.nanmax([t.max(), m.max()])
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        unit = lensmodel.PARAMETER_UNITS[name]
        label = f"{name} [{unit}]" if unit else name
        ax.set_xlabel(f"true {label}")
        ax.set_ylabel(f"predicted {label}")
        rms = np.sqrt(np.mean((mean[:, k] - truth[:, k]) ** 2))
        ax.set_title(f"{name}: RMS {rms:.3g}", fontsize=10)
    fig.savefig(path, dpi=110)


def _plot_calibration(cov, path):
    fig = _figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for k, name in enumerate(lensmodel.PARAMETER_NAMES):
        ax.plot(NOMINAL_LEVELS, cov[:, k], "-", marker=".", label=name)
    ax.set_xlabel("nominal coverage of central interval")
    ax.set_ylabel("fraction of true values inside")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Calibration of the predicted uncertainties", fontsize=10)
    fig.savefig(path, dpi=110)


def _plot_examples(examples, path, preset):
    n = len(examples)
    fig = _figure(figsize=(12, 3 * n), layout="constrained")
    axes = fig.subplots(n, 4, squeeze=False)
    hw = 0.5 * preset.npix * preset.pixel_scale
    hs = 0.5 * preset.source_npix * preset.source_pixel_scale
    for row, ex in zip(axes, examples):
        vmax = max(float(np.max(ex["true"])), 1e-12)
        panels = [
            (ex["image"], "observed image", hw, None),
            (ex["true"], "true source", hs, vmax),
            (ex["pred"], f"reconstruction (SSIM {ex['ssim']:.2f})", hs, vmax),
            (ex["pred"] - ex["true"], "residual", hs, None),
        ]
        for ax, (img, title, h, vm) in zip(row, panels):
            kw = {"vmin": 0, "vmax": vm} if vm is not None else {}
            if title == "residual":
                r = max(float(np.max(np.abs(img))), 1e-12)
                kw = {"vmin": -r, "vmax": r, "cmap": "RdBu_r"}
            im = ax.imshow(img, origin="lower", extent=[h, -h, -h, h], **kw)
            fig.colorbar(im, ax=ax, shrink=0.8)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel('x (E) ["]')
            ax.set_ylabel('y (N) ["]')
    fig.savefig(path, dpi=90)


# --------------------------------------------------------------------------
# card
# --------------------------------------------------------------------------
def _symmetry_phrase(symmetries):
    """How the evaluated answers were made, in words for the model card."""
    if symmetries == 1:
        return "the network's answers alone (no averaging over symmetries)"
    return f"the answers averaged over {symmetries} symmetries of the square"


def _card_markdown(cfg, report) -> str:
    from .train import _card_stub

    stub = _card_stub(cfg) if cfg.get("training") else f"# astro_delens {cfg['kind']}\n"
    head = stub.split("## Evaluation")[0].rstrip() + "\n\n"
    ev = report
    lines = ["## Evaluation", "",
             f"Test set `{Path(ev['data']['path']).name}` ({ev['n']} lenses, preset "
             f"{cfg['preset']['name']}), evaluated {ev['date']} with astro_delens "
             f"{ev['package_version']}, {_symmetry_phrase(ev.get('symmetries', 1))}.", ""]
    m = ev["metrics"]
    if cfg["kind"] == "estimator":
        lines += ["| parameter | RMS | bias | RMS / prior std | mean sigma | in 68% | in 95% |",
                  "|---|---|---|---|---|---|---|"]
        for name in lensmodel.PARAMETER_NAMES:
            d = m[name]
            lines.append(f"| {name} | {d['rms']:.4g} | {d['bias']:.2g} | "
                         f"{d['rms_over_prior_std']:.3f} | {d['mean_predicted_std']:.3g} | "
                         f"{d['coverage_68']:.2f} | {d['coverage_95']:.2f} |")
        lines += ["", f"Median absolute fractional error of theta_E: "
                      f"{m['theta_E']['median_abs_fractional_error']:.2%}.",
                  "Intervals are the predicted Gaussian mean +/- 1 and 2 sigma "
                  "(nominal 68.3% and 95.4%)."]
    else:
        lines += ["| metric | median | 16th-84th percentile |", "|---|---|---|"]
        for key in ("ssim", "psnr", "ssim_source_region", "normalised_error", "correlation",
                    "relative_mse", "flux_ratio"):
            d = m.get(key, {"median": None})
            if d["median"] is None:
                continue
            lines.append(f"| {key} | {d['median']:.4g} | {d['p16']:.4g} - {d['p84']:.4g} |")
        lines += ["", ev["data_range"]]
    lines += ["", "## Limitations", "",
              "Trained and tested on simulations of the preset above only; real images must be "
              "resampled to the model's grid, background-subtracted and oriented north up, east "
              "left. Check predictions against the physics (re-lensing) before trusting them.",
              ""]
    return head + "\n".join(lines)


#: Hand-written card sections that re-evaluating a model keeps.
KEPT_CARD_SECTIONS = ("## Known shortcomings",)


def _kept_sections(card_path) -> str:
    """The `KEPT_CARD_SECTIONS` of an existing card (each to the next ``## `` heading)."""
    try:
        text = Path(card_path).read_text()
    except FileNotFoundError:
        return ""
    kept = []
    for heading in KEPT_CARD_SECTIONS:
        start = text.find(heading)
        if start < 0:
            continue
        end = text.find("\n## ", start + len(heading))
        kept.append(text[start:] if end < 0 else text[start:end + 1])
    return "".join("\n" + section.rstrip() + "\n" for section in kept)


def _summary_line(kind, metrics):
    if kind == "estimator":
        return (f"theta_E median |frac. err| "
                f"{metrics['theta_E']['median_abs_fractional_error']:.1%}; RMS/prior std "
                + ", ".join(f"{n} {metrics[n]['rms_over_prior_std']:.2f}"
                            for n in lensmodel.PARAMETER_NAMES))
    return (f"median SSIM {metrics['ssim']['median']:.3f}, median PSNR "
            f"{metrics['psnr']['median']:.1f} dB; where the source is: median SSIM "
            f"{metrics['ssim_source_region']['median']:.3f}, normalised error "
            f"{metrics['normalised_error']['median']:.3f}, correlation "
            f"{metrics['correlation']['median']:.3f}")


# --------------------------------------------------------------------------
# main entry point
# --------------------------------------------------------------------------
def evaluate_model(model_dir, data, report_dir, *, max_samples=None, batch_size=64,
                   chunk=512, n_examples=6, update_card=True, verify=True, log=None,
                   symmetries=None) -> dict:
    """Evaluate a model directory on a test set.

    Parameters
    ----------
    model_dir : path-like
        A model directory (estimator or reconstructor: read from config.json).
    data : path-like
        Test HDF5 file of the model's preset.
    report_dir : path-like
        Where report.json and the figures are written (created).
    max_samples : int, optional
        Use only the first samples of the file.
    batch_size, chunk : int
        Network batch size; samples read from the file at a time.
    n_examples : int
        Reconstructions shown in the examples figure.
    update_card : bool
        Record the results in the model's config.json and card.md (and
        SHA256SUMS).
    verify : bool
        Verify the model's checksums before loading.
    log : callable, optional
    symmetries : {8, 4, 1}, optional
        Number of symmetries of the square the answers are averaged over
        (default: `astro_delens.nn.registry.DEFAULT_SYMMETRIES`, as in use).

    Returns
    -------
    dict
        The report (as written to report.json).
    """
    from ..nn.registry import DEFAULT_SYMMETRIES, load_model
    from .train import read_h5_info

    if log is None:
        log = logger.info
    model_dir = Path(model_dir)
    symmetries = DEFAULT_SYMMETRIES if symmetries is None else symmetries
    loaded = load_model(model_dir, verify=verify)
    kind = loaded.kind
    info = read_h5_info(data, kind)
    preset = loaded.preset
    dp = info["preset"]
    if (dp.npix, dp.pixel_scale) != (preset.npix, preset.pixel_scale) or (
            kind == "reconstructor"
            and (dp.source_npix, dp.source_pixel_scale)
            != (preset.source_npix, preset.source_pixel_scale)):
        raise ValueError(f"data: preset {dp.name!r} ({dp.npix} px at {dp.pixel_scale}\") does "
                         f"not match the model's {preset.name!r} ({preset.npix} px at "
                         f"{preset.pixel_scale}\")")
    n = info["n"] if max_samples is None else min(int(max_samples), info["n"])
    if n < 1:
        raise ValueError("max_samples: no samples to evaluate")
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    log(f"evaluating {kind} {model_dir} on {n} samples of {data}")

    report = {
        "kind": kind,
        "model": str(model_dir.resolve()),
        "model_name": loaded.name,
        "model_sha256": loaded.sha256,
        "data": {k: v for k, v in info.items() if k != "preset"},
        "preset": preset.to_dict(),
        "n": n,
        "symmetries": symmetries,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "package_version": __version__,
        "figures": [],
    }
    if kind == "estimator":
        mean, std, truth = _estimates(loaded, info["path"], n, chunk, batch_size, symmetries)
        prior_std = np.asarray(loaded.stats["std"], dtype=np.float64)
        metrics = estimator_metrics(mean, std, truth, prior_std)
        cov = coverage_curve(mean, std, truth)
        report["metrics"] = metrics
        report["calibration"] = {
            "nominal": [float(v) for v in NOMINAL_LEVELS],
            "coverage": {name: [float(v) for v in cov[:, k]]
                         for k, name in enumerate(lensmodel.PARAMETER_NAMES)},
        }
        report["prior_std"] = [float(v) for v in prior_std]
        report["intervals"] = ("Gaussian mean +/- 1 sigma (68.27%) and +/- 2 sigma (95.45%) of "
                               "the predicted distribution")
        _plot_pred_vs_true(mean, std, truth, report_dir / "pred_vs_true.png")
        _plot_calibration(cov, report_dir / "calibration.png")
        report["figures"] = ["pred_vs_true.png", "calibration.png"]
    else:
        arrays, examples = _source_metrics(loaded, info["path"], n, chunk, batch_size,
                                           symmetries, n_examples)
        report["metrics"] = {k: _stat(v) for k, v in arrays.items() if k != "peak"}
        report["metrics"]["mse"]["unit"] = "normalised source units squared (source / image scale)"
        report["data_range"] = (
            "Sources are compared as the network sees them, divided by the image scale of "
            "astro_delens.nn.normalization; the data range of PSNR and SSIM (window 11 px, "
            "sigma 1.5 px) is the per-image peak of the true normalised source; relative_mse "
            "= MSE / peak**2; flux_ratio = predicted / true total flux. Sources cover a few "
            "per cent of the grid, so SSIM and PSNR over the grid reward an empty prediction; "
            "ssim_source_region (SSIM where the true source exceeds 5% of its peak, dilated "
            "by 5 px), normalised_error (sum (p - t)^2 / sum t^2; 1 for an empty prediction) "
            "and correlation (Pearson) measure the source itself.")
        if examples:
            _plot_examples(examples, report_dir / "examples.png", preset)
            report["figures"] = ["examples.png"]
    report["summary"] = _summary_line(kind, report["metrics"])
    atomic_write_text(report_dir / "report.json", to_json(report, indent=2) + "\n")
    log(f"{report['summary']}\nreport written to {report_dir}")

    if update_card:
        if not os.access(model_dir, os.W_OK):
            log(f"note: {model_dir} is not writable; its card was not updated")
        else:
            _record_evaluation(model_dir, loaded.config, report)
    return report


def _estimates(loaded, path, n, chunk, batch_size, symmetries):
    """Means, sigmas and truths (n, 8) of the first ``n`` lenses of a dataset file."""
    import h5py

    means, stds, truths = [], [], []
    with h5py.File(path, "r") as f:
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            m, s = loaded.predict(f["image"][start:stop], f["noise_map"][start:stop],
                                  batch_size=batch_size, symmetries=symmetries)
            means.append(m)
            stds.append(s)
            truths.append(f["params"][start:stop])
    return tuple(np.concatenate(a) for a in (means, stds, truths))


def _source_metrics(loaded, path, n, chunk, batch_size, symmetries, n_examples):
    """Per-image source metrics (`reconstructor_metrics_batch`) and the first examples."""
    import h5py

    per_image, examples = {}, []
    with h5py.File(path, "r") as f:
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            x, scale = norm.normalize_inputs(f["image"][start:stop], f["noise_map"][start:stop])
            pred = loaded.predict_normalized(x, batch_size, symmetries)
            true = norm.normalize_source(f["source"][start:stop], scale)
            res = reconstructor_metrics_batch(true, pred)
            for key, val in res.items():
                per_image.setdefault(key, []).append(val)
            for i in range(min(n_examples - len(examples), stop - start)):
                examples.append({"image": x[i, ..., 0], "true": true[i], "pred": pred[i],
                                 "ssim": float(res["ssim"][i])})
    return {k: np.concatenate(v) for k, v in per_image.items()}, examples


def _record_evaluation(model_dir, config, report):
    """Write the evaluation into the model's config.json, card and checksums."""
    cfg = dict(config)
    cfg["evaluation"] = {
        "data": report["data"], "n": report["n"], "symmetries": report["symmetries"],
        "date": report["date"],
        "package_version": __version__, "summary": report["summary"],
        "metrics": report["metrics"],
    }
    if report["kind"] == "reconstructor":
        cfg["evaluation"]["data_range"] = report["data_range"]
    cfg["status"] = "evaluated"
    atomic_write_text(model_dir / "config.json", to_json(cfg, indent=2) + "\n")
    card = _card_markdown(cfg, report) + _kept_sections(model_dir / "card.md")
    atomic_write_text(model_dir / "card.md", card)
    write_checksums(model_dir)
