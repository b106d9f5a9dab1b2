"""The physics on the real development lenses: the inverted source's fit and the evidence check.

Usage::

    python benchmarks/real_lenses_physics.py [--model sky] [--json FILE]

Each of the 15 development lenses of
``../shared/data/real_lenses/reference_einstein_radii.csv`` is opened as its
manifest entry says (`astro_delens.data._devtools.load_real_lens`) and
estimated with `LensParameterEstimator.predict`; then

* `SourceReconstructor` with ``method="inversion"`` inverts the source at that
  estimate (`astro_delens.forward.invert_pixelated`) and reports the fit's
  reduced chi^2 and the check's verdict;
* `astro_delens.forward.evidence_check` asks whether an Einstein radius 12%
  smaller or larger explains the data better (ln-evidence difference, the
  radius it prefers, and its flag).

Printed per lens against the development value, with the fractional error of
the estimate, so that one sees whether the flags fall on the wrong answers.
The reference values of the other real lenses are held back: this script
reads only the development file.
"""

import argparse
import json
import sys
import time
import warnings

import numpy as np


def main(argv=None):
    from astro_delens.nn.registry import DEFAULT_FAMILY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_FAMILY, help="model family or directory")
    parser.add_argument("--json", help="write every figure to this JSON file")
    args = parser.parse_args(argv)

    from astro_delens import LensParameterEstimator, SourceReconstructor
    from astro_delens.data._devtools import load_real_lens, real_lens_entries, shared_data_dir
    from astro_delens.forward import evidence_check
    from astro_delens.psf import psf_keywords
    from real_lenses_accuracy import _references

    root = shared_data_dir()
    if root is None:
        print("../shared/data is absent: nothing to do", file=sys.stderr)
        return 1
    est = LensParameterEstimator(args.model)
    rec = SourceReconstructor(args.model, estimator=est, method="inversion")
    preset = rec.preset
    refs = _references(root)
    rows = []
    print(f"model {est.model_info['name']!r}; source inverted at the network's lens")
    print(f"{'lens':18s} {'theta_E':>7s} {'ref':>5s} {'err':>7s} {'chi2':>6s} {'check':>7s} "
          f"{'dlnZ':>8s} {'prefers':>7s} {'flag':>5s} {'s':>5s}")
    for entry in real_lens_entries():
        ref = refs.get(entry["name"])
        if ref is None:
            continue
        data, kw = load_real_lens(entry, root)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the estimator's warnings: real_lenses_accuracy.py
            estimate = est.predict(data, **kw)
            source = rec.reconstruct(data, lens_center=estimate, **kw)
        prepared = source.prepared
        psf_kwargs, _ = psf_keywords(prepared)
        ev = evidence_check(prepared.image, prepared.noise_map, estimate.mean,
                            prepared.pixel_scale, preset.source_npix, preset.source_pixel_scale,
                            mask=prepared.mask, **psf_kwargs)
        seconds = time.perf_counter() - t0
        theta = float(estimate.mean[0])
        row = {"name": entry["name"], "theta_E": theta, "sigma": float(estimate.std[0]),
               "reference": ref, "fractional_error": (theta - ref) / ref,
               "reduced_chi2": source.reduced_chi2, "check_flag": source.flag,
               "delta_log_evidence": ev.delta_log_evidence,
               "preferred_theta_E": ev.preferred_theta_e, "evidence_flag": ev.flag,
               "seconds": seconds}
        rows.append(row)
        print(f"{entry['name']:18s} {theta:7.3f} {ref:5.2f} {row['fractional_error']:+7.1%} "
              f"{source.reduced_chi2:6.2f} {'flag' if source.flag else 'pass':>7s} "
              f"{ev.delta_log_evidence:8.1f} {ev.preferred_theta_e:7.3f} "
              f"{'yes' if ev.flag else 'no':>5s} {seconds:5.1f}", flush=True)
    err = np.abs([r["fractional_error"] for r in rows])
    flags = np.array([r["evidence_flag"] for r in rows])
    chi2 = np.array([r["reduced_chi2"] for r in rows])
    print(f"\n{len(rows)} development lenses: inversion reduced chi2 median {np.median(chi2):.2f}, "
          f"{np.mean([r['check_flag'] for r in rows]):.0%} flagged by the check; evidence check "
          f"flags {flags.sum()} ({', '.join(r['name'] for r in rows if r['evidence_flag']) or '-'})"
          f"; answers off by more than 20%: "
          f"{', '.join(r['name'] for r in rows if abs(r['fractional_error']) > 0.2) or '-'}; "
          f"median {np.median([r['seconds'] for r in rows]):.0f} s per lens")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows, "median_abs_error": float(np.median(err))},
                      fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
