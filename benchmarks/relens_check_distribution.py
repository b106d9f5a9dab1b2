"""How often the re-lensing check flags the shipped networks' answers on simulated test lenses.

For the first N lenses of a test set (``astro-delens simulate --split test``),
the shipped model family runs through the public API
(`SourceReconstructor.reconstruct_many` on the images with their noise maps and
PSFs, check on) and, for comparison, the check is repeated with the *true*
lens and the network's source (``true lens``) to separate the lens's share of
the residuals from the source's. Prints the distribution of the reduced
chi^2, the fraction flagged, and how the flag relates to the networks' actual
errors (theta_E error, source correlation with the truth where it is bright).

With ``--inversion`` it also asks whether a *free* source could tell a wrong
lens from the right one: lenstronomy's linear shapelet inversion
(`astro_delens.forward.invert_source`, order ``--n-max``) is solved at the
network's lens and at the true lens, and the reduced chi^2 at the network's
lens is compared between lenses whose network estimate is far from the truth
(the squared normalised error of the eight parameters above the 99th
percentile of chi^2 with 8 degrees of freedom) and the others.

Usage::

    python benchmarks/relens_check_distribution.py --data work_data/survey_test.h5 --n 200
    python benchmarks/relens_check_distribution.py --data work_data/survey_test.h5 --n 200 \
        --inversion
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def _source_correlation(pred, true):
    """Pearson correlation over the pixels where the true source exceeds 5% of its peak."""
    region = true > 0.05 * true.max()
    if region.sum() < 5:
        return np.nan
    return float(np.corrcoef(pred[region], true[region])[0, 1])


def _inversion_chi2(prepared, network_lens, true_lens, n_max):
    """Reduced chi^2 of a free shapelet source at the network's lens and at the true lens."""
    from astro_delens.forward import invert_source
    from astro_delens.source_result import psf_keywords

    psf_kwargs, _ = psf_keywords(prepared)
    out = {}
    for name, lens in (("network", network_lens), ("true", true_lens)):
        t0 = time.process_time()
        # only the chi^2 is used: a small output source grid keeps it cheap
        inv = invert_source(prepared.image, prepared.noise_map, lens, prepared.pixel_scale,
                            source_npix=16, source_pixel_scale=0.1, mask=prepared.mask,
                            n_max=n_max, supersampling=1, n_beta=3, **psf_kwargs)
        out[f"inversion_chi2_{name}"] = inv.reduced_chi2
        out[f"inversion_cpu_{name}"] = time.process_time() - t0
    return out


def _print_inversion(rows, q):
    """Can the free-source chi^2 at the network's lens tell a wrong lens from a right one?"""
    from scipy.stats import chi2 as chi2_dist, spearmanr

    inv = np.array([r["inversion_chi2_network"] for r in rows])
    inv_true = np.array([r["inversion_chi2_true"] for r in rows])
    err = np.array([r["network_error_chi2"] for r in rows])
    frac = np.array([abs(r["theta_E_net"] - r["theta_E"]) / r["theta_E"] for r in rows])
    wrong = err > chi2_dist.ppf(0.99, 8)
    cpu = np.median([r["inversion_cpu_network"] for r in rows])
    print(f"  free shapelet source (median {cpu:.2f} CPU s per inversion):")
    print(f"    reduced chi2 at the network's lens, percentiles {q}: "
          f"{np.round(np.percentile(inv, q), 3).tolist()}")
    print(f"    reduced chi2 at the true lens:                     "
          f"{np.round(np.percentile(inv_true, q), 3).tolist()}")
    print(f"    {wrong.sum()} lenses with the network's estimate off by more than its "
          f"99% region (chi2_8 > {chi2_dist.ppf(0.99, 8):.1f})")
    for threshold in (1.1, 1.2, 1.3, 1.5):
        flag = inv > threshold
        of_wrong = f"{flag[wrong].mean():4.0%}" if wrong.any() else "   -"
        print(f"    chi2 > {threshold}: flags {flag.mean():4.0%} of all, {of_wrong} of those off, "
              f"{flag[~wrong].mean():4.0%} of the others, {(inv_true > threshold).mean():4.0%} "
              f"at the true lens")
    rho = spearmanr(inv - inv_true, err).statistic
    rho_frac = spearmanr(inv, frac).statistic
    print(f"    Spearman rank correlation: chi2(network) - chi2(true) with the network's "
          f"error chi2_8 {rho:+.2f}; chi2(network) with |dtheta_E|/theta_E {rho_frac:+.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="test set (HDF5)")
    ap.add_argument("--model", default="survey", help="model family")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--inversion", action="store_true",
                    help="also solve a free shapelet source at the network's and the true lens")
    ap.add_argument("--n-max", type=int, default=8, help="shapelet order of --inversion")
    ap.add_argument("--json", help="write the per-lens results to this file")
    args = ap.parse_args(argv)

    import h5py

    import astropy.units as u

    from astro_delens import SourceReconstructor
    from astro_delens.source_result import run_relens_check

    rec = SourceReconstructor(args.model)
    preset = rec.preset
    with h5py.File(args.data, "r") as f:
        n = min(args.n, len(f["params"]))
        images, noises, psfs = f["image"][:n], f["noise_map"][:n], f["psf"][:n]
        params, sources = f["params"][:n], f["source"][:n]
        snr, llr = f["snr"][:n], f["lens_light_ratio"][:n]
    inputs = [(img, {"noise": nm, "psf": p}) for img, nm, p in zip(images, noises, psfs)]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # out-of-domain notes are reported by other benchmarks
        out = rec.reconstruct_many(inputs, pixel_scale=preset.pixel_scale * u.arcsec,
                                   background_subtracted=True, mask_contaminants=False)
    seconds = time.perf_counter() - t0
    rows = []
    for k, src in enumerate(out):
        true_lens = run_relens_check(src.data, src.prepared, params[k])
        rows.append({
            "index": k, "snr": float(snr[k]), "lens_light_ratio": float(llr[k]),
            "theta_E": float(params[k, 0]), "theta_E_net": float(src.lens.mean[0]),
            "reduced_chi2": src.reduced_chi2, "arc_chi2": src.check.arc_reduced_chi2,
            "amplitude": src.check.source_amplitude, "flag": src.flag,
            "true_lens_chi2": true_lens.reduced_chi2, "true_lens_flag": true_lens.flag,
            "source_corr": _source_correlation(np.asarray(src.data), sources[k]),
            "network_error_chi2": float(np.sum(
                ((np.asarray(src.lens.mean) - params[k]) / np.asarray(src.lens.std)) ** 2)),
        })
        if args.inversion:
            rows[-1].update(_inversion_chi2(src.prepared, src.lens.mean, params[k], args.n_max))
    chi2 = np.array([r["reduced_chi2"] for r in rows])
    flag = np.array([r["flag"] for r in rows])
    tchi2 = np.array([r["true_lens_chi2"] for r in rows])
    tflag = np.array([r["true_lens_flag"] for r in rows])
    frac = np.array([abs(r["theta_E_net"] - r["theta_E"]) / r["theta_E"] for r in rows])
    corr = np.array([r["source_corr"] for r in rows])
    s = np.array([r["snr"] for r in rows])
    q = [5, 25, 50, 75, 95]
    print(f"{n} test lenses of {args.data} (model {args.model!r}); networks + check "
          f"{seconds:.1f} s ({seconds / n:.2f} s per lens)")
    print(f"  reduced chi2 (network lens + source), percentiles {q}: "
          f"{np.round(np.percentile(chi2, q), 2).tolist()}; flagged {flag.mean():.0%}")
    print(f"  reduced chi2 (true lens + network source):        "
          f"{np.round(np.percentile(tchi2, q), 2).tolist()}; flagged {tflag.mean():.0%}")
    for lo, hi in ((0, 20), (20, 50), (50, 1e9)):
        sel = (s >= lo) & (s < hi)
        if sel.any():
            print(f"  S/N {lo:>3}-{hi if hi < 1e9 else 'max':>3}: {sel.sum():4d} lenses, flagged "
                  f"{flag[sel].mean():5.0%}, median chi2 {np.median(chi2[sel]):6.2f}")
    for name, sel in (("flagged", flag), ("not flagged", ~flag)):
        if sel.any():
            print(f"  {name:<12}: median |dtheta_E|/theta_E {np.median(frac[sel]):.3f}, "
                  f"median source correlation {np.nanmedian(corr[sel]):.2f} ({sel.sum()} lenses)")
    if args.inversion:
        _print_inversion(rows, q)
    if args.json:
        import json

        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
