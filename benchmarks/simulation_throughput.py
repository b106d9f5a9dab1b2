"""Simulation throughput: lenses per second on one core, for each preset.

Usage::

    python benchmarks/simulation_throughput.py [-n 50] [--preset seed --preset survey]

Each preset is timed in this single process (numerical libraries limited to one
thread) over ``n`` lenses, after one warm-up lens that pays for imports and
caches. Both the wall-clock rate and the CPU-time rate are printed; on a busy
machine the CPU-time rate is the better measure of one core's throughput. Writing
to HDF5 is not included (it costs a few per cent).
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

from astro_delens.presets import PRESETS  # noqa: E402
from astro_delens.training.dataset import sample_seed  # noqa: E402
from astro_delens.training.simulate import LensSimulator  # noqa: E402


def measure(preset, n, seed=0):
    """``(wall seconds, CPU seconds)`` to simulate ``n`` lenses of ``preset``."""
    sim = LensSimulator(preset)
    sim.simulate(sample_seed(seed, "test", n))  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        sim.simulate(sample_seed(seed, "test", i))
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="lenses per preset (default 50)")
    parser.add_argument("--preset", action="append", choices=sorted(PRESETS),
                        help="preset(s) to time (default: all)")
    args = parser.parse_args(argv)
    print(f"{'preset':8s} {'n':>5s} {'wall s':>8s} {'cpu s':>8s} "
          f"{'lenses/s (wall)':>16s} {'lenses/s/core (cpu)':>20s}")
    for name in args.preset or sorted(PRESETS):
        wall, cpu = measure(name, args.n)
        print(f"{name:8s} {args.n:5d} {wall:8.2f} {cpu:8.2f} {args.n / wall:16.2f} "
              f"{args.n / cpu:20.2f}")


if __name__ == "__main__":
    main()
