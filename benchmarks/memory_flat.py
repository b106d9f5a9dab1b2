"""Memory over a long run: `LensParameterEstimator.iter_predict` on many arrays, RSS as it goes.

Usage::

    python benchmarks/memory_flat.py [-n 10000] [--model sky] [--distinct 32]

``distinct`` lenses of the ``survey`` preset are simulated once and handed out
again and again by a generator (so the inputs themselves take no memory) to
`LensParameterEstimator.iter_predict`, with the default settings. The
resident memory of the process (current and peak, from ``/proc/self/status``)
is printed after the first chunk and then at every tenth of the run, with the
throughput; a flat memory shows that nothing accumulates per input.
"""

import argparse
import time
import warnings


def _rss_mib():
    """(current, peak) resident memory of this process in MiB (Linux)."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount, _ = line.split()
                values[key[:-1]] = int(amount) / 1024
    return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10000)
    parser.add_argument("--model", default=None, help="model family or directory")
    parser.add_argument("--distinct", type=int, default=32)
    args = parser.parse_args(argv)

    from astro_delens import LensParameterEstimator
    from astro_delens.training.simulate import LensSimulator

    warnings.simplefilter("ignore")
    sim = LensSimulator("survey")
    samples = [sim.simulate(seed) for seed in range(args.distinct)]

    def inputs():
        for k in range(args.n):
            s = samples[k % len(samples)]
            yield s["image"], {"pixel_scale": 0.1, "noise": s["noise_map"]}

    est = LensParameterEstimator(args.model)
    print(f"{args.n} arrays through iter_predict, model {est.model_info['name']!r}")
    print(f"{'done':>7} {'RSS MiB':>8} {'peak MiB':>9} {'cutouts/s':>10}")
    t0 = time.perf_counter()
    marks = {128} | {args.n * k // 10 for k in range(1, 11)}
    done = 0
    for outcome in est.iter_predict(inputs(), on_error="skip"):
        done += 1
        if done in marks:
            rss, peak = _rss_mib()
            print(f"{done:7d} {rss:8.0f} {peak:9.0f} {done / (time.perf_counter() - t0):10.1f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
