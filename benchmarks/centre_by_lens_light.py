"""Where the parameter network's lens-centre error comes from: RMS by lens light.

A lens galaxy that shines marks its own centre; without lens light the centre
must be read from the symmetry of the arcs alone. This script predicts the
lenses of a simulated test set (``astro-delens simulate --split test``) with a
parameter network, answers averaged over ``--symmetries`` symmetries as in
``astro-delens evaluate``, and prints the centre RMS (and theta_E's median
fractional error) in classes of the ratio of lens light to arc flux stored with
every lens (``lens_light_ratio``; 0 for lenses without light), with each class's
share of the total squared centre error.

With ``--refine N`` it then asks whether the arcs hold the centre of lenses
without light better than the network reads it: the first N such lenses with
S/N of at least ``--min-snr`` are fitted with lenstronomy
(`astro_delens.forward.refine`: shapelet source, no lens-light model, flat
priors, bounded to 4 x 1.5 network sigmas around the network's answer), and a
second time from the true lens, and the centre errors of the three are printed
(about 20 CPU seconds per lens).

Usage::

    python benchmarks/centre_by_lens_light.py --data work_data/survey_test.h5
    python benchmarks/centre_by_lens_light.py --model runs/survey_estimator_kp1 \
        --data work_data/survey_test.h5
    python benchmarks/centre_by_lens_light.py --data work_data/survey_test.h5 --refine 24
"""

from __future__ import annotations

import argparse
import time

import h5py
import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="survey",
                        help="shipped family or estimator directory (default: survey)")
    parser.add_argument("--data", required=True, help="simulated test set (HDF5)")
    parser.add_argument("--n", type=int, default=None, help="first N lenses only")
    parser.add_argument("--symmetries", type=int, default=8, choices=(1, 4, 8))
    parser.add_argument("--refine", type=int, default=0, metavar="N",
                        help="also fit N lenses without lens light with lenstronomy")
    parser.add_argument("--min-snr", type=float, default=20.0,
                        help="S/N of the lenses fitted with --refine (default 20)")
    args = parser.parse_args(argv)

    from astro_delens.nn.registry import load_estimator

    estimator = load_estimator(args.model)
    with h5py.File(args.data, "r") as f:
        n = f["params"].shape[0] if args.n is None else min(args.n, f["params"].shape[0])
        truth = f["params"][:n]
        ratio = f["lens_light_ratio"][:n]
        snr = f["snr"][:n]
        t0 = time.perf_counter()
        answers = [estimator.predict(f["image"][i:min(i + 250, n)],
                                     f["noise_map"][i:min(i + 250, n)],
                                     symmetries=args.symmetries)
                   for i in range(0, n, 250)]
        mean = np.concatenate([a[0] for a in answers])
        std = np.concatenate([a[1] for a in answers])
        elapsed = time.perf_counter() - t0
        _print_classes(estimator, args, n, truth, ratio, mean, elapsed)
        if args.refine:
            chosen = np.flatnonzero((ratio == 0) & (snr >= args.min_snr))[:args.refine]
            _refine_without_light(f, chosen, truth, mean, std, estimator.preset.pixel_scale)


def _print_classes(estimator, args, n, truth, ratio, mean, elapsed):
    """Print the centre RMS and theta_E's median error in classes of lens light."""
    from astro_delens import lensmodel

    names = list(lensmodel.PARAMETER_NAMES)
    ix, iy, it = names.index("center_x"), names.index("center_y"), names.index("theta_E")
    sq = (mean[:, ix] - truth[:, ix]) ** 2 + (mean[:, iy] - truth[:, iy]) ** 2
    frac = np.abs(mean[:, it] / truth[:, it] - 1)

    print(f"model {estimator.name} on {n} lenses of {args.data}, {args.symmetries} symmetries "
          f"({elapsed:.0f} s)")
    header = ("lens light", "N", "centre RMS x, y (arcsec)", "share of error",
              "theta_E med. err")
    print(f"{header[0]:24s} {header[1]:>5s} {header[2]:>24s} {header[3]:>15s} {header[4]:>17s}")
    classes = {"all": np.ones(n, bool), "none": ratio == 0,
               "fainter than the arcs": (ratio > 0) & (ratio < 1),
               "1-5 x the arcs": (ratio >= 1) & (ratio < 5), "over 5 x the arcs": ratio >= 5}
    for label, sel in classes.items():
        if not sel.any():
            continue
        rx = np.sqrt(np.mean((mean[sel, ix] - truth[sel, ix]) ** 2))
        ry = np.sqrt(np.mean((mean[sel, iy] - truth[sel, iy]) ** 2))
        share = sq[sel].sum() / sq.sum()
        print(f"{label:24s} {sel.sum():5d} {rx:14.4f} {ry:9.4f} {share:15.0%} "
              f"{np.median(frac[sel]):16.2%}")


def _refine_without_light(f, chosen, truth, mean, std, pixel_scale):
    """Fit ``chosen`` lenses from the network's answer and from the truth; print centre errors."""
    import warnings

    from astro_delens import lensmodel
    from astro_delens.exceptions import RefinementWarning
    from astro_delens.forward import refine

    names = list(lensmodel.PARAMETER_NAMES)
    centre = [names.index("center_x"), names.index("center_y")]

    fits = {"network": [], "refined from the network": [], "refined from the truth": []}
    cpu = []
    for i in chosen:
        fits["network"].append(mean[i])
        for label, start in (("refined from the network", mean[i]),
                             ("refined from the truth", truth[i])):
            t0 = time.process_time()
            with warnings.catch_warnings():
                # fits that end at their box's edge still count
                warnings.simplefilter("ignore", RefinementWarning)
                res = refine(f["image"][i], f["noise_map"][i], start, 1.5 * std[i], pixel_scale,
                             psf=f["psf"][i], lens_light=None, prior=False, seed=int(i),
                             uncertainties=False)
            cpu.append(time.process_time() - t0)
            fits[label].append(res.params)
    print(f"\n{len(chosen)} lenses without lens light, S/N >= the threshold; lenstronomy fits "
          f"of {np.median(cpu):.0f} CPU s (median)")
    print(f"{'':28s} {'centre RMS per axis':>20s} {'median offset':>14s}")
    for label, params in fits.items():
        d = np.asarray(params)[:, centre] - truth[chosen][:, centre]
        print(f"{label:28s} {np.sqrt(np.mean(d ** 2)):20.4f} "
              f"{np.median(np.hypot(d[:, 0], d[:, 1])):14.4f}")


if __name__ == "__main__":
    main()
