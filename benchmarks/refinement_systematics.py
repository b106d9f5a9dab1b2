"""The systematic uncertainty a refinement's Fisher errors miss, measured on simulated lenses.

Reads the per-lens JSON of ``benchmarks/refinement_accuracy.py --json`` and,
per parameter, finds the floor ``s`` such that 68.27% of the normalised errors
``|refined - true| / sqrt(sigma_fisher**2 + s**2)`` are below 1 on the *first
half* of the lenses (the calibration half); then prints the coverage of the
1- and 2-sigma intervals with that floor on the *second half* (the check half),
and without it. Finally the floors from all the lenses, the values to use
(``astro_delens.forward.refine.SYSTEMATIC_STD``).

Usage::

    python benchmarks/refinement_systematics.py reports/refine_survey.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from astro_delens import lensmodel
from astro_delens.training.calibrate import ONE_SIGMA


def floor_for(err, sigma):
    """Smallest floor (searched on a grid) giving 68.27% coverage of the 1-sigma intervals."""
    grid = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, 2000)])
    for s in grid:
        if np.mean(np.abs(err) <= np.sqrt(sigma ** 2 + s ** 2)) >= ONE_SIGMA:
            return float(s)
    return float(grid[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+", help="outputs of refinement_accuracy.py --json")
    args = ap.parse_args(argv)
    rows = []
    for path in args.json:
        with open(path) as fh:
            rows += json.load(fh)["rows"]
    true = np.array([r["true"] for r in rows])
    ref = np.array([r["refined"] for r in rows])
    # the Fisher errors alone: runs that recorded them apart from any floor already added
    # (refined_statistical_std), else refined_std, from runs made without floors
    sig = np.array([r.get("refined_statistical_std", r["refined_std"]) for r in rows])
    err = ref - true
    half = len(rows) // 2
    cal, chk = slice(0, half), slice(half, None)
    floors = np.array([floor_for(err[cal, k], sig[cal, k]) for k in range(8)])
    print(f"{len(rows)} lenses: floors from the first {half}, coverage on the other "
          f"{len(rows) - half}")
    print(f"{'parameter':<9} {'floor':>8} {'in 1 sigma':>11} {'(no floor)':>11} "
          f"{'in 2 sigma':>11} {'(no floor)':>11}")
    for k, name in enumerate(lensmodel.PARAMETER_NAMES):
        total = np.sqrt(sig[chk, k] ** 2 + floors[k] ** 2)
        e = np.abs(err[chk, k])
        print(f"{name:<9} {floors[k]:8.4f} {np.mean(e <= total):11.2f} "
              f"{np.mean(e <= sig[chk, k]):11.2f} {np.mean(e <= 2 * total):11.2f} "
              f"{np.mean(e <= 2 * sig[chk, k]):11.2f}")
    print("floors from the first half:", [round(float(v), 4) for v in floors])
    every = [floor_for(err[:, k], sig[:, k]) for k in range(8)]
    print("floors from all lenses (the values to use):", [round(float(v), 4) for v in every])


if __name__ == "__main__":
    main()
