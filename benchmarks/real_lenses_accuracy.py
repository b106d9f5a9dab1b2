"""Einstein radii of the real lenses through the public classes, against the development values.

Usage::

    python benchmarks/real_lenses_accuracy.py [--model sky] [--symmetries 8] [--json FILE]

Every lens of ``../shared/data/real_lenses/manifest.json`` is opened as its
manifest entry says (`astro_delens.data._devtools.load_real_lens`: the image,
its noise map, PSF and masks as a user would pass them) and its parameters
are estimated with `LensParameterEstimator.predict`, default settings.
Printed:

* one row per lens: the estimate, its 1-sigma error and 68% interval, the
  out-of-domain flags, and, for the 15 development lenses of
  ``reference_einstein_radii.csv``, the reference value and the fractional
  error;
* the development set's figures: median |dtheta_E| / theta_E, the lenses off
  by more than 20% (and of those, the ones without any warning), and how many
  references fall inside the 1- and 2-sigma intervals;
* consistency on real data, which needs no reference: for every SLACS lens
  the estimate from the manifest's 5" cutout against the 10" cutout, and the
  5" cutout at its native pixel scale against the same pixels binned 2 x 2;
  the pairs should agree within their 1-sigma intervals (``|a - b| <=
  sigma_a + sigma_b``).

The reference values of the other real lenses are held back to judge the
project: this script reads only the development file.
"""

import argparse
import csv
import json
import sys
import warnings

import numpy as np


def _estimate(est, data, kwargs):
    """``(theta_E, sigma, flags, warning messages)`` of one input through `predict`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = est.predict(data, **kwargs)
    messages = [" ".join(str(w.message).split()) for w in caught
                if not issubclass(w.category, DeprecationWarning)]
    return float(res.mean[0]), float(res.std[0]), list(res.flags), messages


def _binned(path, hdu):
    """The image of ``path[hdu]`` binned 2 x 2 (flux summed) and its pixel scale (arcsec)."""
    from astropy.io import fits
    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales

    with fits.open(path) as hdul:
        data = np.asarray(hdul[hdu].data, dtype=float)
        scale = float(np.mean(proj_plane_pixel_scales(WCS(hdul[hdu].header).celestial))) * 3600
    ny, nx = (s // 2 * 2 for s in data.shape)
    binned = data[:ny, :nx].reshape(ny // 2, 2, nx // 2, 2).sum(axis=(1, 3))
    return binned, 2 * scale


def _references(root):
    with open(root / "real_lenses" / "reference_einstein_radii.csv") as f:
        return {row["name"]: float(row["theta_E_arcsec"]) for row in csv.DictReader(f)}


def main(argv=None):
    from astro_delens.nn.registry import DEFAULT_FAMILY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_FAMILY, help="model family or directory")
    parser.add_argument("--symmetries", type=int, default=None,
                        help="symmetries averaged (default: the estimator's default)")
    parser.add_argument("--json", help="write every figure to this JSON file")
    args = parser.parse_args(argv)

    import astropy.units as u

    from astro_delens import LensParameterEstimator
    from astro_delens.data._devtools import load_real_lens, real_lens_entries, shared_data_dir

    root = shared_data_dir()
    if root is None:
        print("../shared/data is absent: nothing to do", file=sys.stderr)
        return 1
    kwargs = {} if args.symmetries is None else {"symmetries": args.symmetries}
    est = LensParameterEstimator(args.model, **kwargs)
    refs = _references(root)
    entries = real_lens_entries()

    rows = []
    print(f"model {est.model_info['name']!r}, {est.symmetries} symmetries")
    print(f"{'lens':26s} {'theta_E':>7s} {'sigma':>6s} {'68% interval':>13s} {'ref':>6s} "
          f"{'err':>7s}  flags")
    for e in entries:
        data, kw = load_real_lens(e, root)
        theta, sigma, flags, messages = _estimate(est, data, kw)
        ref = refs.get(e["name"])
        row = {"name": e["name"], "instrument": e.get("instrument", ""), "theta_E": theta,
               "sigma": sigma, "flags": flags, "warnings": messages, "reference": ref}
        if ref is not None:
            row["fractional_error"] = (theta - ref) / ref
        rows.append(row)
        err = f"{row['fractional_error']:+7.1%}" if ref is not None else f"{'':>7s}"
        refs_text = f"{ref:6.2f}" if ref is not None else f"{'':>6s}"
        print(f"{e['name']:26s} {theta:7.3f} {sigma:6.3f} {theta - sigma:6.2f}-{theta + sigma:<6.2f}"
              f" {refs_text} {err}  {','.join(flags) or '-'}")

    dev = [r for r in rows if r["reference"] is not None]
    frac = np.array([abs(r["fractional_error"]) for r in dev])
    pulls = np.array([abs(r["theta_E"] - r["reference"]) / r["sigma"] for r in dev])
    off = [r for r in dev if abs(r["fractional_error"]) > 0.2]
    silent = [r for r in off if not r["flags"]]
    summary = {
        "n_development": len(dev),
        "median_abs_fractional_error": float(np.median(frac)),
        "n_off_by_more_than_20pc": len(off),
        "n_off_by_more_than_20pc_without_warning": len(silent),
        "inside_1sigma": int(np.sum(pulls <= 1)), "inside_2sigma": int(np.sum(pulls <= 2)),
        "n_flagged": int(sum(bool(r["flags"]) for r in dev)),
    }
    print(f"\ndevelopment lenses ({len(dev)}, DESI HST F140W): median |dtheta_E|/theta_E "
          f"{summary['median_abs_fractional_error']:.1%}; off by > 20%: {len(off)} "
          f"({len(silent)} of them without a warning: {[r['name'] for r in silent]}); "
          f"references inside 1 sigma {summary['inside_1sigma']}, inside 2 sigma "
          f"{summary['inside_2sigma']}; flagged {summary['n_flagged']}")

    consistency = []
    header = ("SLACS lens", '5" cutout', '10" cutout', "ok", '5" binned 2x2', "ok")
    print("\n{:18s} {:>14s} {:>14s} {:>3s} {:>14s} {:>3s}".format(*header))
    for e in entries:
        if not e.get("larger_cutout"):
            continue
        data, kw = load_real_lens(e, root)
        small = _estimate(est, data, kw)
        large = _estimate(est, str(root / "real_lenses" / e["larger_cutout"]), kw)
        binned, scale = _binned(data, e["hdu"])
        kw_binned = {k: v for k, v in kw.items() if k not in ("hdu",)}
        kw_binned["pixel_scale"] = scale * u.arcsec
        kw_binned.pop("psf", None)  # the PSF file is on the native grid
        coarse = _estimate(est, binned, kw_binned)

        def agree(a, b):
            return abs(a[0] - b[0]) <= a[1] + b[1]

        item = {"name": e["name"], "small": small[:2], "large": large[:2],
                "binned": coarse[:2], "small_vs_large": agree(small, large),
                "native_vs_binned": agree(small, coarse),
                "flags": {"small": small[2], "large": large[2], "binned": coarse[2]}}
        consistency.append(item)
        print(f"{e['name']:18s} {small[0]:6.3f}+-{small[1]:5.3f} {large[0]:6.3f}+-{large[1]:5.3f} "
              f"{'yes' if item['small_vs_large'] else 'NO':>3s} {coarse[0]:6.3f}+-{coarse[1]:5.3f} "
              f"{'yes' if item['native_vs_binned'] else 'NO':>3s}")
    if consistency:
        n_ok = sum(c["small_vs_large"] for c in consistency)
        n_ok_bin = sum(c["native_vs_binned"] for c in consistency)
        print(f"agree within 1 sigma: 5\" vs 10\" {n_ok}/{len(consistency)}, native vs binned "
              f"{n_ok_bin}/{len(consistency)}")
        summary.update(consistency_small_vs_large=n_ok, consistency_native_vs_binned=n_ok_bin,
                       n_consistency=len(consistency))

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": est.model_info, "symmetries": est.symmetries, "summary": summary,
                       "lenses": rows, "consistency": consistency}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
