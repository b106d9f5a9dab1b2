"""Run both public classes over every real lens of the shared data and draw a gallery.

Usage::

    python benchmarks/real_lenses_gallery.py [--model sky | --untrained] [--outdir DIR]

Every lens of ``../shared/data/real_lenses/manifest.json`` (beside the
repository) is opened as its manifest entry says (astro_delens.data._devtools),
its parameters are estimated (`LensParameterEstimator.predict_many`) and its
source reconstructed (`SourceReconstructor.reconstruct_many`). Written to
``--outdir`` (default ``real_lenses_gallery``):

* ``real_lenses_estimates.ecsv``: one row per lens (parameters, errors, sky
  quantities, lens centre on the sky where there is a WCS, out-of-domain flags);
* ``real_lenses_gallery.png``: for each lens, the prepared data on the model's
  grid (north up, east left; masked pixels blank) with the estimated Einstein
  radius drawn about the estimated centre, and the reconstructed source;
* ``checks/<name>.png``: the re-lensing check of each lens (data, model,
  normalised residuals, source with caustics), unless ``--no-check``.

The table is also printed (name, theta_E, axis ratio, position angle, the
check's reduced chi^2 and flag, out-of-domain flags), with the distribution
of the reduced chi^2.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def gallery(prepared, estimates, sources, names, path, columns=4):
    """The gallery figure (data and source side by side for each lens), saved to ``path``."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    n = len(names)
    rows = int(np.ceil(n / columns))
    fig = Figure(figsize=(3.2 * columns, 1.75 * rows), layout="constrained")
    axes = fig.subplots(rows, 2 * columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for k, (prep, est, src, name) in enumerate(zip(prepared, estimates, sources, names)):
        a, b = axes[k // columns, 2 * (k % columns)], axes[k // columns, 2 * (k % columns) + 1]
        half = prep.image.shape[0] * prep.pixel_scale / 2
        img = np.where(prep.mask, np.nan, prep.image)
        a.imshow(_stretch(img), origin="lower", extent=(half, -half, -half, half), cmap="magma")
        a.add_patch(Circle((est.mean[4], est.mean[5]), est.mean[0], fill=False, lw=0.6,
                           color="cyan"))
        a.set_title(name, fontsize=6)
        sh = src.shape[0] * prep.preset.source_pixel_scale / 2
        b.imshow(_stretch(np.asarray(src.data, float)), origin="lower",
                 extent=(sh, -sh, -sh, sh), cmap="magma")
        b.set_title(f"source, theta_E={est.mean[0]:.2f}\"", fontsize=6)
    fig.savefig(path, dpi=80)


def _stretch(image):
    finite = image[np.isfinite(image)]
    top = np.percentile(finite, 99.5) if finite.size else 1.0
    top = top if top > 0 else 1.0
    return np.arcsinh(np.clip(image, -0.05 * top, None) / (0.05 * top))


def main(argv=None):
    from astro_delens.nn.registry import DEFAULT_FAMILY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_FAMILY, help="model family or directory")
    parser.add_argument("--untrained", action="store_true",
                        help="use tiny untrained networks (a smoke test of the plumbing)")
    parser.add_argument("--outdir", default="real_lenses_gallery", help="output folder")
    parser.add_argument("--no-check", action="store_true", help="skip the re-lensing check")
    args = parser.parse_args(argv)

    from astro_delens import LensParameterEstimator, SourceReconstructor
    from astro_delens.data._devtools import load_real_lens, real_lens_entries, shared_data_dir
    from astro_delens.results import estimates_table, write_table

    if shared_data_dir() is None:
        print("../shared/data is absent: nothing to do", file=sys.stderr)
        return 1
    warnings.simplefilter("ignore", DeprecationWarning)
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    model = args.model
    if args.untrained:
        from astro_delens.data._devtools import make_untrained_family

        model = str(make_untrained_family(outdir / "untrained_models"))
    est = LensParameterEstimator(model)
    rec = SourceReconstructor(model, estimator=est)
    entries = real_lens_entries()
    names = [e["name"] for e in entries]
    t0 = time.perf_counter()
    prepared, caught = [], []
    for e in entries:
        data, kwargs = load_real_lens(e)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            prepared.append(est.prepare(data, **kwargs))
        caught.extend(f"{e['name']}: {x.message}" for x in w
                      if not issubclass(x.category, DeprecationWarning))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        estimates = est.predict_prepared(prepared)
        if rec._same_grid(est):
            centers = [((float(x.mean[4]), float(x.mean[5])), "estimator") for x in estimates]
            sources = rec.reconstruct_prepared(prepared, centers, estimates)
        else:  # a reconstructor on another grid prepares its own cutouts
            sources = rec.reconstruct_many([load_real_lens(e) for e in entries])
    caught.extend(str(x.message) for x in w if not issubclass(x.category, DeprecationWarning))
    elapsed = time.perf_counter() - t0
    check_seconds = 0.0
    if not args.no_check:
        (outdir / "checks").mkdir(exist_ok=True)
        t1 = time.perf_counter()
        for name, src in zip(names, sources):
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                rec.attach_check(src)
            caught.extend(f"{name}: {x.message}" for x in w
                          if not issubclass(x.category, DeprecationWarning))
        check_seconds = time.perf_counter() - t1
        for name, src in zip(names, sources):
            if src.check is not None:
                src.plot(outdir / "checks" / f"{name}.png")

    table = estimates_table(estimates, names)
    if not args.no_check:
        table["relens_chi2"] = [s.reduced_chi2 if s.check is not None else np.nan
                                for s in sources]
        table["relens_flag"] = [s.flag if s.check is not None else True for s in sources]
    write_table(table, outdir / "real_lenses_estimates.ecsv", overwrite=True)
    gallery(prepared, estimates, sources, names, outdir / "real_lenses_gallery.png")
    print(f"model {est.model_info['name']!r}: {len(names)} lenses in {elapsed:.1f} s "
          f"({len(names) / elapsed:.1f} lenses/s, both networks)")
    if not args.no_check:
        chi2 = np.asarray(table["relens_chi2"], float)
        print(f"re-lensing check: {check_seconds:.1f} s in all ({check_seconds / len(names):.2f} "
              f"s per lens); reduced chi2 percentiles [5, 25, 50, 75, 95] "
              f"{np.round(np.nanpercentile(chi2, [5, 25, 50, 75, 95]), 2).tolist()}; "
              f"flagged {np.mean(table['relens_flag']):.0%}")
    print(f"{'lens':24s} {'theta_E':>8s} {'q':>6s} {'PA':>6s} {'chi2':>7s} {'flag':>4s}  flags")
    for row in table:
        chi2 = f"{row['relens_chi2']:7.2f}" if "relens_chi2" in row.colnames else f"{'-':>7}"
        flag = ("F" if row["relens_flag"] else "-") if "relens_flag" in row.colnames else "-"
        print(f"{row['input']:24s} {row['theta_E'].value:8.3f} {row['axis_ratio']:6.2f} "
              f"{row['position_angle'].value:6.1f} {chi2} {flag:>4s}  {row['flags']}")
    print(f"{len(caught)} warnings; outputs in {outdir}/")
    for line in caught:
        print("  " + " ".join(line.split())[:160])
    return 0


if __name__ == "__main__":
    sys.exit(main())
