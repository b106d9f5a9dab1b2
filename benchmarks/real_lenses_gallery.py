"""Run both public classes over every real lens of the shared data and draw a gallery.

Usage::

    python benchmarks/real_lenses_gallery.py [--model survey | --untrained] [--outdir DIR]

Every lens of ``../shared/data/real_lenses/manifest.json`` (beside the
repository) is opened as its manifest entry says (astro_delens.data._devtools),
its parameters are estimated (`LensParameterEstimator.predict_many`) and its
source reconstructed (`SourceReconstructor.reconstruct_many`). Written to
``--outdir`` (default ``real_lenses_gallery``):

* ``real_lenses_estimates.ecsv``: one row per lens (parameters, errors, sky
  quantities, lens centre on the sky where there is a WCS, out-of-domain flags);
* ``real_lenses_gallery.png``: for each lens, the prepared data on the model's
  grid (north up, east left; masked pixels blank) with the estimated Einstein
  radius drawn about the estimated centre, and the reconstructed source.

The table is also printed (name, theta_E, axis ratio, position angle, flags).
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="survey", help="model family or directory")
    parser.add_argument("--untrained", action="store_true",
                        help="use tiny untrained networks (a smoke test of the plumbing)")
    parser.add_argument("--outdir", default="real_lenses_gallery", help="output folder")
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
            sources = rec.reconstruct_prepared(prepared, centers)
        else:  # a reconstructor on another grid prepares its own cutouts
            sources = rec.reconstruct_many([load_real_lens(e) for e in entries])
    caught.extend(str(x.message) for x in w if not issubclass(x.category, DeprecationWarning))
    elapsed = time.perf_counter() - t0

    table = estimates_table(estimates, names)
    write_table(table, outdir / "real_lenses_estimates.ecsv", overwrite=True)
    gallery(prepared, estimates, sources, names, outdir / "real_lenses_gallery.png")
    print(f"model {est.model_info['name']!r}: {len(names)} lenses in {elapsed:.1f} s "
          f"({len(names) / elapsed:.1f} lenses/s, both networks)")
    print(f"{'lens':24s} {'theta_E':>8s} {'q':>6s} {'PA':>6s}  flags")
    for row in table:
        print(f"{row['input']:24s} {row['theta_E'].value:8.3f} {row['axis_ratio']:6.2f} "
              f"{row['position_angle'].value:6.1f}  {row['flags']}")
    print(f"{len(caught)} warnings; outputs in {outdir}/")
    for line in caught:
        print("  " + " ".join(line.split())[:160])
    return 0


if __name__ == "__main__":
    sys.exit(main())
