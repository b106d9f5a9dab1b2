"""Seconds the re-lensing check adds per cutout, and how it separates right from wrong answers.

For N simulated lenses of a preset, runs `astro_delens.forward.relens_check`
with the true lens and source (what a perfect network would return), with
theta_E off by ``--wrong`` (default 5 %), and times the check and the plot.
Prints one row per lens and a summary. The machine may be shared: CPU seconds
(``time.process_time``) are the steadier measure.

Usage::

    python benchmarks/relens_check_cost.py --n 50
    python benchmarks/relens_check_cost.py --n 3 --lens-light sersic
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from astro_delens.forward import relens_check
from astro_delens.presets import get_preset


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="survey")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--first-seed", type=int, default=2000)
    ap.add_argument("--lens-light", default="mge", choices=["mge", "sersic", "none"])
    ap.add_argument("--wrong", type=float, default=0.05, help="relative theta_E error")
    ap.add_argument("--no-psf", action="store_true",
                    help="do not pass the PSF (the check assumes a Gaussian)")
    ap.add_argument("--plot", action="store_true", help="also time RelensResult.plot()")
    args = ap.parse_args(argv)

    from astro_delens.training.simulate import LensSimulator

    preset = get_preset(args.preset)
    sim = LensSimulator(preset.name)
    lens_light = None if args.lens_light == "none" else args.lens_light
    rows = []
    head = (f"{'seed':>5} {'thE':>5} {'snr':>5} {'llr':>5} | {'chi2':>6} {'arc':>6} {'amp':>5} "
            f"{'flag':>4} | {'chi2w':>6} {'arcw':>6} {'ampw':>5} {'flagw':>5} | {'wall':>5} "
            f"{'cpu':>5} {'plot':>5}")
    print(head)
    print("-" * len(head))
    for k in range(args.n):
        seed = args.first_seed + k
        s = sim.simulate(seed)
        if preset.noise is False:
            raise SystemExit("preset: the check needs noisy images (noise_map > 0)")
        kw = dict(psf=None if args.no_psf else s["psf"], lens_light=lens_light)
        if args.no_psf:
            kw["psf_fwhm"] = s["meta"]["psf_fwhm"]
        w, c = time.perf_counter(), time.process_time()
        good = relens_check(s["image"], s["noise_map"], s["params"], s["source"],
                            preset.source_pixel_scale, preset.pixel_scale, **kw)
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        plot_s = float("nan")
        if args.plot:
            t = time.perf_counter()
            good.plot()
            plot_s = time.perf_counter() - t
        wrong = s["params"].copy()
        wrong[0] *= 1 + args.wrong
        bad = relens_check(s["image"], s["noise_map"], wrong, s["source"],
                           preset.source_pixel_scale, preset.pixel_scale, **kw)
        rows.append((good.reduced_chi2, good.arc_reduced_chi2, good.source_amplitude, good.flag,
                     bad.reduced_chi2, bad.arc_reduced_chi2, bad.source_amplitude, bad.flag,
                     wall, cpu, plot_s))
        m = s["meta"]
        print(f"{seed:5d} {s['params'][0]:5.2f} {m['snr']:5.0f} {m['lens_light_ratio']:5.1f} | "
              f"{good.reduced_chi2:6.3f} {good.arc_reduced_chi2:6.2f} {good.source_amplitude:5.2f} "
              f"{'F' if good.flag else '-':>4} | {bad.reduced_chi2:6.3f} "
              f"{bad.arc_reduced_chi2:6.2f} {bad.source_amplitude:5.2f} "
              f"{'F' if bad.flag else '-':>5} | {wall:5.2f} {cpu:5.2f} "
              f"{plot_s:5.2f}", flush=True)
    a = np.array(rows, dtype=float)
    print()
    print(f"summary over {len(rows)} cutouts ({preset.npix}x{preset.npix}, lens light "
          f"{args.lens_light}, PSF {'assumed Gaussian' if args.no_psf else 'given'})")
    print(f"  true answer : reduced chi2 median {np.median(a[:, 0]):.3f} "
          f"[{a[:, 0].min():.3f}, {a[:, 0].max():.3f}], arc chi2 median {np.median(a[:, 1]):.2f} "
          f"(max {np.nanmax(a[:, 1]):.2f}); flagged {a[:, 3].mean():.0%} (false alarms)")
    print(f"  theta_E {args.wrong:+.0%}: reduced chi2 median {np.median(a[:, 4]):.3f}, "
          f"arc chi2 median {np.median(a[:, 5]):.2f}; flagged {a[:, 7].mean():.0%}")
    print(f"  cost per cutout: {np.median(a[:, 8]):.2f} s wall, {np.median(a[:, 9]):.2f} s CPU "
          f"(median; max {a[:, 8].max():.2f} s wall)", end="")
    if args.plot:
        print(f"; plot {np.nanmedian(a[:, 10]):.2f} s")
    else:
        print()


if __name__ == "__main__":
    main()
