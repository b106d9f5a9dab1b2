"""Arrays in, a parameter table out: `LensParameterEstimator.predict_many` in cutouts per second.

Usage::

    python benchmarks/predict_many_throughput.py [-n 256] [--model sky]

``n`` lenses of the ``survey`` preset (arrays on the model's 0.1" grid, with
their noise maps) are estimated after a warm-up, with the default settings
(8 symmetries, field check on) and with the check off and one symmetry, and the
wall-clock rate of each is printed, with the share of the time spent
preparing the cutouts.
"""

import argparse
import time
import warnings


def main(argv=None):
    from astro_delens.nn.registry import DEFAULT_FAMILY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=256, help="number of cutouts (default 256)")
    parser.add_argument("--model", default=DEFAULT_FAMILY, help="model family or directory")
    args = parser.parse_args(argv)

    from astro_delens import LensParameterEstimator
    from astro_delens.training.simulate import LensSimulator

    sim = LensSimulator("survey")
    samples = [sim.simulate(seed) for seed in range(args.n)]
    items = [(s["image"], {"pixel_scale": 0.1, "noise": s["noise_map"]}) for s in samples]
    warnings.simplefilter("ignore")
    print(f"{args.n} arrays of 96 x 96 pixels, model {args.model!r}")
    for label, options in (("default (8 symmetries, field check)", {}),
                           ("8 symmetries, no field check", {"field_check": False}),
                           ("1 symmetry, no field check", {"field_check": False,
                                                           "symmetries": 1})):
        est = LensParameterEstimator(args.model, **options)
        est.predict_many(items[:16])  # warm-up
        t0 = time.perf_counter()
        prepared = [est.prepare(data, **kw) for data, kw in items]
        t_prep = time.perf_counter() - t0
        t0 = time.perf_counter()
        est.predict_many(items)
        wall = time.perf_counter() - t0
        print(f"{label:38s} {args.n / wall:6.1f} cutouts/s (preparing alone "
              f"{args.n / t_prep:6.1f}/s, {t_prep / wall:.0%} of the time)")
        del prepared
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
