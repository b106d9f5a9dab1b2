"""Accuracy and cost of lenstronomy refinement from a network-like start vs a blind fit.

For N simulated lenses of a preset:

(a) *refined*: the true parameters perturbed by Gaussian errors of a typical
    network (``--net-std``, theta_E relative), refined with
    `astro_delens.forward.refine` (priors = that start and those widths);
(b) *blind*: a fit from a default guess (the preset's prior means) with flat
    priors over wide bounds (3 prior sigmas) and a big particle swarm
    (``--blind-particles`` x ``--blind-iterations``, default 60 x 150), the
    same models and polish.

Prints one row per lens and a summary: theta_E errors, all parameters'
normalised errors, the refined Fisher uncertainties' coverage, wall and CPU
seconds. The machine may be shared: CPU seconds (``time.process_time``) are
the steadier measure.

Usage::

    python benchmarks/refinement_accuracy.py --n 20              # the full run (slow)
    python benchmarks/refinement_accuracy.py --n 3 --skip-blind  # a quick check
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from astro_delens import lensmodel
from astro_delens.forward import refine
from astro_delens.presets import get_preset

#: Typical network errors (1 sigma): theta_E as a fraction, the rest absolute.
NET_STD = (0.05, 0.08, 0.04, 0.04, 0.03, 0.03, 0.02, 0.02)


def _timed(fn, *args, **kwargs):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w, time.process_time() - c


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="survey")
    ap.add_argument("--n", type=int, default=20, help="number of lenses")
    ap.add_argument("--first-seed", type=int, default=1000)
    ap.add_argument("--net-std", type=float, nargs=8, default=NET_STD,
                    help="network-like 1-sigma errors (theta_E relative)")
    ap.add_argument("--particles", type=int, default=12)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--polish-iterations", type=int, default=6)
    ap.add_argument("--n-max", default="auto", help="shapelet order or 'auto'")
    ap.add_argument("--lens-light", default="sersic", choices=["sersic", "mge", "none"])
    ap.add_argument("--light-center-sigma", type=float, default=None,
                    help="Gaussian coupling (arcsec) of mass and light centres; 0 ties them")
    ap.add_argument("--blind-particles", type=int, default=60)
    ap.add_argument("--blind-iterations", type=int, default=150)
    ap.add_argument("--skip-blind", action="store_true")
    ap.add_argument("--json", help="write the per-lens results to this file")
    args = ap.parse_args(argv)

    from astro_delens.training.simulate import LensSimulator

    preset = get_preset(args.preset)
    sim = LensSimulator(preset.name)
    rng = np.random.default_rng(args.first_seed)
    prior_mean, prior_std = lensmodel.prior_moments(preset.name)
    lens_light = None if args.lens_light == "none" else args.lens_light
    n_max = args.n_max if args.n_max == "auto" else int(args.n_max)
    common = dict(n_max=n_max, lens_light=lens_light, light_center_sigma=args.light_center_sigma,
                  polish_iterations=args.polish_iterations, seed=0)
    rows = []
    head = (f"{'seed':>5} {'thE':>5} {'snr':>5} {'llr':>5} | {'dthE0':>7} {'dthE':>7} "
            f"{'sig':>6} {'chi2':>5} {'nmax':>4} {'wall':>6} {'cpu':>6} | {'dthEb':>7} "
            f"{'chi2b':>5} {'wallb':>6} {'cpub':>6}")
    print(head)
    print("-" * len(head))
    for k in range(args.n):
        seed = args.first_seed + k
        s = sim.simulate(seed)
        p = s["params"]
        std = np.array(args.net_std, dtype=float)
        std[0] *= p[0]
        start = p + rng.normal(0.0, std)
        start[1] = np.clip(start[1], 1.25, 2.75)
        ref, wall, cpu = _timed(
            refine, s["image"], s["noise_map"], start, std, preset.pixel_scale, psf=s["psf"],
            n_particles=args.particles, n_iterations=args.iterations, **common)
        row = {
            "seed": seed, "theta_E": float(p[0]), "snr": float(s["meta"]["snr"]),
            "lens_light_ratio": float(s["meta"]["lens_light_ratio"]),
            "true": p.tolist(), "start": start.tolist(), "refined": ref.params.tolist(),
            "refined_std": ref.params_std.tolist(), "refined_chi2": ref.reduced_chi2,
            "refined_n_max": ref.settings["n_max"],
            "refined_wall": wall, "refined_cpu": cpu,
        }
        blind_txt = f"{'-':>7} {'-':>5} {'-':>6} {'-':>6}"
        if not args.skip_blind:
            bl, bwall, bcpu = _timed(
                refine, s["image"], s["noise_map"], prior_mean, prior_std, preset.pixel_scale,
                psf=s["psf"], n_particles=args.blind_particles,
                n_iterations=args.blind_iterations, prior=False, bounds_nsigma=3.0,
                uncertainties=False, **common)
            row.update({"blind": bl.params.tolist(), "blind_chi2": bl.reduced_chi2,
                        "blind_wall": bwall, "blind_cpu": bcpu})
            blind_txt = (f"{bl.params[0] - p[0]:+7.3f} {bl.reduced_chi2:5.2f} {bwall:6.1f} "
                         f"{bcpu:6.1f}")
        rows.append(row)
        m = s["meta"]
        print(f"{seed:5d} {p[0]:5.2f} {m['snr']:5.0f} {m['lens_light_ratio']:5.1f} | "
              f"{start[0] - p[0]:+7.3f} {ref.params[0] - p[0]:+7.3f} {ref.params_std[0]:6.3f} "
              f"{ref.reduced_chi2:5.2f} {ref.settings['n_max']:4d} {wall:6.1f} {cpu:6.1f} | "
              f"{blind_txt}", flush=True)

    true = np.array([r["true"] for r in rows])
    start = np.array([r["start"] for r in rows])
    refd = np.array([r["refined"] for r in rows])
    rstd = np.array([r["refined_std"] for r in rows])
    rel = lambda est: np.abs(est[:, 0] - true[:, 0]) / true[:, 0]  # noqa: E731
    print()
    print("summary over", len(rows), "lenses (medians)")
    print(f"  |dtheta_E|/theta_E   start {np.median(rel(start)):.4f}   refined "
          f"{np.median(rel(refd)):.4f}", end="")
    if not args.skip_blind:
        blind = np.array([r["blind"] for r in rows])
        print(f"   blind {np.median(rel(blind)):.4f}")
    else:
        print()
    print("  |error| per parameter", lensmodel.PARAMETER_NAMES)
    print("    start  ", np.round(np.median(np.abs(start - true), axis=0), 4))
    print("    refined", np.round(np.median(np.abs(refd - true), axis=0), 4))
    if not args.skip_blind:
        print("    blind  ", np.round(np.median(np.abs(blind - true), axis=0), 4))
    pull = np.abs(refd - true) / rstd
    print("  refined Fisher coverage: fraction within 1 sigma",
          np.round(np.mean(pull < 1, axis=0), 2), " (68% if calibrated)")
    print("                            fraction within 2 sigma",
          np.round(np.mean(pull < 2, axis=0), 2), " (95% if calibrated)")
    rw = np.median([r["refined_wall"] for r in rows])
    rc = np.median([r["refined_cpu"] for r in rows])
    print(f"  refined: {rw:.1f} s wall, {rc:.1f} s CPU per lens "
          f"({args.particles} particles x {args.iterations} iterations + polish)")
    if not args.skip_blind:
        bw = np.median([r["blind_wall"] for r in rows])
        bc = np.median([r["blind_cpu"] for r in rows])
        print(f"  blind:   {bw:.1f} s wall, {bc:.1f} s CPU per lens "
              f"({args.blind_particles} x {args.blind_iterations} + polish); "
              f"refined/blind CPU = {rc / bc:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
