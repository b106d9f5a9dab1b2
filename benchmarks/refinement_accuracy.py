"""Accuracy and cost of the network alone, of refinement from it, and of a blind lenstronomy fit.

For N simulated lenses of a preset (seeds ``--first-seed`` onwards, not in any
training set):

(o) *network*: the shipped model family of the preset (``--model``) through
    the public API, ``LensParameterEstimator.predict`` on the image with its
    noise map and PSF (``--start perturbed`` replaces it by the truth
    perturbed with Gaussian errors of a typical network, ``--net-std``);
(a) *refined*: ``LensParameterEstimator.refine`` of that estimate, i.e.
    `astro_delens.forward.refine` with the network's values and sigmas as
    start, priors and bounds;
(b) *blind*: for every ``--blind-every``-th lens, a fit from a default guess
    (the preset's prior means) with flat priors over wide bounds (3 prior
    sigmas) and a big particle swarm (``--blind-particles`` x
    ``--blind-iterations``, default 60 x 150), the same models and polish;
(c) *reference* (``--reference``): the same fit as (a) but started at the
    true lens, with flat priors over the same box widths around it: the
    optimum these models reach near the truth. Where the data cannot pin
    theta_E to 0.005" (faint arcs) or the models cannot follow the source,
    this fit misses the truth too; ``|refined - reference|`` then measures
    whether the refinement *converged*, apart from what the data and the
    models allow.

Noise-free presets (``seed``): the network sees the noise-free image (its
training domain); the fits see it with Gaussian noise of ``--noise-fraction``
of the brightest pixel added, since a fit needs a noise model.

Prints one row per lens and a summary: theta_E errors, all parameters'
normalised errors, the refined Fisher uncertainties' coverage, wall and CPU
seconds. The machine may be shared: CPU seconds (``time.process_time``) are
the steadier measure.

Usage::

    python benchmarks/refinement_accuracy.py --n 50 --blind-every 10
    python benchmarks/refinement_accuracy.py --preset seed --n 50 --blind-every 10
    python benchmarks/refinement_accuracy.py --n 50 --skip-blind --reference
    python benchmarks/refinement_accuracy.py --n 3 --skip-blind  # a quick check

Split over processes (one per core) and merged::

    python benchmarks/refinement_accuracy.py --n 25 --reference --json a.json &
    python benchmarks/refinement_accuracy.py --n 25 --first-seed 1025 --reference --json b.json
    python benchmarks/refinement_accuracy.py --summarise a.json b.json
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
    ap.add_argument("--model", default=None,
                    help="model family giving the start (default: the preset's name)")
    ap.add_argument("--start", choices=["network", "perturbed"], default="network")
    ap.add_argument("--noise-fraction", type=float, default=0.01,
                    help="noise sigma / brightest pixel for noise-free presets")
    ap.add_argument("--blind-every", type=int, default=1,
                    help="run the blind fit on every k-th lens only (it is slow)")
    ap.add_argument("--n", type=int, default=20, help="number of lenses")
    ap.add_argument("--first-seed", type=int, default=1000)
    ap.add_argument("--net-std", type=float, nargs=8, default=NET_STD,
                    help="network-like 1-sigma errors (theta_E relative)")
    ap.add_argument("--particles", type=int, default=12)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--polish-iterations", type=int, default=6)
    ap.add_argument("--bounds-nsigma", type=float, default=None,
                    help="half-width of the refinement's search box in network sigmas "
                         "(default: the refinement's own)")
    ap.add_argument("--n-max", default="auto", help="shapelet order or 'auto'")
    ap.add_argument("--lens-light", default="sersic", choices=["sersic", "mge", "none"])
    ap.add_argument("--light-center-sigma", type=float, default=None,
                    help="Gaussian coupling (arcsec) of mass and light centres; 0 ties them")
    ap.add_argument("--blind-particles", type=int, default=60)
    ap.add_argument("--blind-iterations", type=int, default=150)
    ap.add_argument("--skip-blind", action="store_true")
    ap.add_argument("--reference", action="store_true",
                    help="also fit from the true lens (flat priors): the attainable optimum")
    ap.add_argument("--json", help="write the per-lens results to this file")
    ap.add_argument("--summarise", nargs="+", metavar="JSON",
                    help="only print the summary of earlier runs' --json files, merged "
                         "(for example runs split over seeds to use several cores)")
    args = ap.parse_args(argv)
    if args.summarise:
        _summarise_files(args.summarise)
        return

    import warnings

    import astropy.units as u

    from astro_delens import LensParameterEstimator
    from astro_delens.results import LensEstimate
    from astro_delens.training.simulate import LensSimulator

    preset = get_preset(args.preset)
    sim = LensSimulator(preset.name)
    est = LensParameterEstimator(args.model or preset.name)
    rng = np.random.default_rng(args.first_seed)
    prior_mean, prior_std = lensmodel.prior_moments(preset.name)
    lens_light = None if args.lens_light == "none" else args.lens_light
    n_max = args.n_max if args.n_max == "auto" else int(args.n_max)
    bounds = {} if args.bounds_nsigma is None else {"bounds_nsigma": args.bounds_nsigma}
    common = dict(n_max=n_max, lens_light=lens_light, light_center_sigma=args.light_center_sigma,
                  polish_iterations=args.polish_iterations, seed=0)
    rows = []
    head = (f"{'seed':>5} {'thE':>5} {'snr':>5} {'llr':>5} | {'dthEn':>7} {'dthE':>7} "
            f"{'sig':>6} {'chi2':>5} {'nmax':>4} {'wall':>6} {'cpu':>6} | {'dthEb':>7} "
            f"{'chi2b':>5} {'wallb':>6} {'cpub':>6}")
    print(head)
    print("-" * len(head))
    for k in range(args.n):
        seed = args.first_seed + k
        s = sim.simulate(seed)
        p = s["params"]
        noise_free = not np.any(s["noise_map"])
        clean = s["image"]
        if noise_free:
            # one noise generator per lens, so runs split over seeds see the same noise
            noise_rng = np.random.default_rng([seed, 7])
            sigma = args.noise_fraction * float(np.max(s["image"]))
            s["noise_map"] = np.full_like(s["image"], sigma)
            s["image"] = s["image"] + noise_rng.normal(0.0, sigma, s["image"].shape).astype(
                s["image"].dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # out-of-domain notes are not the point here
            # the network sees its training domain (noise-free images for noise-free presets)
            net, net_wall, _ = _timed(
                est.predict, clean if noise_free else s["image"],
                pixel_scale=preset.pixel_scale * u.arcsec,
                noise=np.zeros_like(clean) if noise_free else s["noise_map"], psf=s["psf"],
                background_subtracted=True, mask_contaminants=False)
            if noise_free:  # the fits need the noisy image and its noise
                net = LensEstimate(net.mean, net.std, est.prepare(
                    s["image"], pixel_scale=preset.pixel_scale * u.arcsec,
                    noise=s["noise_map"], psf=s["psf"], background_subtracted=True,
                    mask_contaminants=False), net.model)
        if args.start == "perturbed":
            std = np.array(args.net_std, dtype=float)
            std[0] *= p[0]
            start = p + rng.normal(0.0, std)
            start[1] = np.clip(start[1], 1.25, 2.75)
            net = LensEstimate(start, std, net.prepared, net.model)
        start, std = net.network_mean, net.network_std
        refined, wall, cpu = _timed(
            est.refine, net, n_particles=args.particles, n_iterations=args.iterations,
            **bounds, **common)
        ref = refined.refinement
        row = {
            "seed": seed, "theta_E": float(p[0]), "snr": float(s["meta"]["snr"]),
            "lens_light_ratio": float(s["meta"]["lens_light_ratio"]),
            "true": p.tolist(), "start": start.tolist(), "start_std": std.tolist(),
            "network_seconds": net_wall, "refined": ref.params.tolist(),
            "refined_std": ref.params_std.tolist(), "refined_chi2": ref.reduced_chi2,
            "refined_statistical_std": ref.statistical_std.tolist(),
            "refined_n_max": ref.settings["n_max"],
            "refined_at_bounds": ref.settings["at_bounds"],
            "refined_wall": wall, "refined_cpu": cpu,
        }
        if args.reference:
            rf, _, rcpu = _timed(
                refine, s["image"], s["noise_map"], p, std, preset.pixel_scale, psf=s["psf"],
                n_particles=args.particles, n_iterations=args.iterations, prior=False,
                uncertainties=False, **common)
            row.update({"reference": rf.params.tolist(), "reference_chi2": rf.reduced_chi2,
                        "reference_cpu": rcpu})
        blind_txt = f"{'-':>7} {'-':>5} {'-':>6} {'-':>6}"
        if not args.skip_blind and k % args.blind_every == 0:
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
        if args.json:  # after every lens, so that an interrupted run keeps what it did
            _write_json(args.json, args, rows)
        m = s["meta"]
        print(f"{seed:5d} {p[0]:5.2f} {m['snr']:5.0f} {m['lens_light_ratio']:5.1f} | "
              f"{start[0] - p[0]:+7.3f} {ref.params[0] - p[0]:+7.3f} {ref.params_std[0]:6.3f} "
              f"{ref.reduced_chi2:5.2f} {ref.settings['n_max']:4d} {wall:6.1f} {cpu:6.1f} | "
              f"{blind_txt}" + (f" | ref {row['reference'][0] - p[0]:+7.4f} "
                                f"{row['reference_chi2']:5.2f}" if args.reference else ""),
              flush=True)

    _summary(rows, args)


def _write_json(path, args, rows):
    with open(path, "w") as fh:
        json.dump({"args": vars(args), "rows": rows}, fh, indent=1)


def _summarise_files(paths):
    """Print the summary of the rows of several ``--json`` files, in seed order."""
    runs = []
    for path in paths:
        with open(path) as fh:
            runs.append(json.load(fh))
    rows = sorted((row for run in runs for row in run["rows"]), key=lambda row: row["seed"])
    seeds = [row["seed"] for row in rows]
    if len(set(seeds)) != len(seeds):
        raise SystemExit("--summarise: the files share lenses (seeds); give each lens once")
    presets = {run["args"]["preset"] for run in runs}
    if len(presets) != 1:
        raise SystemExit(f"--summarise: the files mix presets {sorted(presets)}")
    _summary(rows, argparse.Namespace(**runs[0]["args"]))


def _summary(rows, args):
    true = np.array([r["true"] for r in rows])
    start = np.array([r["start"] for r in rows])
    sstd = np.array([r["start_std"] for r in rows])
    refd = np.array([r["refined"] for r in rows])
    rstd = np.array([r["refined_std"] for r in rows])
    blind_rows = [r for r in rows if "blind" in r]

    def line(name, est, truth):
        err = est - truth
        d0 = np.abs(err[:, 0])
        print(f"  {name:<8} {len(est):4d}  {np.median(d0 / truth[:, 0]):9.4f} "
              f"{np.median(d0):8.4f} {np.mean(d0 < 0.005):6.0%} {np.mean(d0 < 0.02):6.0%}  "
              + " ".join(f"{v:7.4f}" for v in np.sqrt(np.mean(err ** 2, axis=0))))

    print()
    print(f"summary over {len(rows)} lenses of preset {args.preset!r} "
          f"(start: {args.start}; blind fit on {len(blind_rows)})")
    print(f"  {'':<8} {'n':>4}  {'med|dthE|/thE':>9} {'med|dthE|':>8} {'<0.005':>6} {'<0.02':>6}  "
          "RMS of " + " ".join(f"{n[:7]:>7}" for n in lensmodel.PARAMETER_NAMES))
    line("network", start, true)
    line("refined", refd, true)
    if blind_rows:
        bt = np.array([r["true"] for r in blind_rows])
        line("blind", np.array([r["blind"] for r in blind_rows]), bt)
        sub = np.array([i for i, r in enumerate(rows) if "blind" in r])
        line("refined*", refd[sub], true[sub])
        print("  (refined*: the same lenses as the blind fit)")
    if all("refined_statistical_std" in r for r in rows):
        stat = np.array([r["refined_statistical_std"][0] for r in rows])
        d0 = np.abs(refd[:, 0] - true[:, 0])
        pinned = stat <= 0.0025
        print(f"  statistical sigma(theta_E) of the refined fits (no systematic part): median "
              f"{np.median(stat):.4f}\", 10-90% {np.percentile(stat, 10):.4f}-"
              f"{np.percentile(stat, 90):.4f}\"; {pinned.mean():.0%} of the lenses have "
              f"sigma <= 0.0025\" (data that can pin theta_E to 0.005\" at 2 sigma)"
              + (f", and {np.mean(d0[pinned] < 0.005):.0%} of those are within 0.005\""
                 if pinned.any() else ""))
    ref_rows = [r for r in rows if "reference" in r]
    if ref_rows:
        refr = np.array([r["reference"] for r in ref_rows])
        line("ref.", refr, np.array([r["true"] for r in ref_rows]))
        sub = np.array([i for i, r in enumerate(rows) if "reference" in r])
        gap = np.abs(refd[sub, 0] - refr[:, 0])
        dchi = np.array([rows[i]["refined_chi2"] - r["reference_chi2"]
                         for i, r in zip(sub, ref_rows)])
        print(f"  (ref.: fit started at the truth, flat priors.) refined theta_E within 0.005\" "
              f"of the reference: {np.mean(gap < 0.005):.0%}, within 0.002\": "
              f"{np.mean(gap < 0.002):.0%}; refined reduced chi^2 at most 0.02 above the "
              f"reference's: {np.mean(dchi <= 0.02):.0%}")
    for name, est, sig in (("network", start, sstd), ("refined", refd, rstd)):
        pull = np.abs(est - true) / sig
        print(f"  {name} coverage within 1 sigma", np.round(np.mean(pull < 1, axis=0), 2),
              "(0.68 if calibrated); 2 sigma", np.round(np.mean(pull < 2, axis=0), 2))
    rw = np.median([r["refined_wall"] for r in rows])
    rc = np.median([r["refined_cpu"] for r in rows])
    nw = np.median([r["network_seconds"] for r in rows])
    print(f"  network: {nw:.2f} s wall per lens (one image at a time, incl. preparation)")
    print(f"  refined: {rw:.1f} s wall, {rc:.1f} s CPU per lens (median; "
          f"{args.particles} particles x {args.iterations} iterations + polish)")
    if blind_rows:
        bw = np.median([r["blind_wall"] for r in blind_rows])
        bc = np.median([r["blind_cpu"] for r in blind_rows])
        print(f"  blind:   {bw:.1f} s wall, {bc:.1f} s CPU per lens ({args.blind_particles} x "
              f"{args.blind_iterations} + polish); refined/blind CPU = {rc / bc:.2f}")


if __name__ == "__main__":
    main()
