"""Simulated lenses of the ``seed`` and ``survey`` presets next to their source targets.

Used by ``docs/simulation.rst`` (``.. plot::``) and for the picture in the README
(``python docs/plots/simulation_gallery.py docs/_static/simulation_gallery.png``).
"""

import sys
import warnings

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import PowerNorm

from astro_delens.training.simulate import LensSimulator

# (preset, seed) of the lenses shown
LENSES = [("seed", 1), ("seed", 2), ("seed", 3), ("survey", 0), ("survey", 1), ("survey", 5)]
ROWS = ["image", "arcs", "source"]

fig, axes = plt.subplots(len(ROWS), len(LENSES), figsize=(2.0 * len(LENSES), 6.6),
                         layout="constrained")
simulators = {}
for column, (preset, seed) in enumerate(LENSES):
    sim = simulators.setdefault(preset, LensSimulator(preset))
    with warnings.catch_warnings():  # NumPy 2 deprecation inside lenstronomy's FFT
        warnings.simplefilter("ignore", DeprecationWarning)
        sample = sim.simulate(seed)
    p, meta = sim.preset, sample["meta"]
    half = p.field_of_view / 2
    src_half = p.source_field_of_view / 2
    for row, key in enumerate(ROWS):
        ax = axes[row, column]
        data = sample[key]
        # x grows to the east = to the left: extent from +half (left) to -half (right)
        extent = [src_half, -src_half, -src_half, src_half] if key == "source" else \
            [half, -half, -half, half]
        # a square-root stretch shows faint arcs next to a bright lens galaxy
        ax.imshow(data, origin="lower", extent=extent, cmap="afmhot",
                  norm=PowerNorm(0.5, vmin=0, vmax=np.percentile(data, 99.8)))
        ax.set_xticks([])
        ax.set_yticks([])
        if key == "source":  # the source's centre, relative to the lens centre
            ax.plot(meta["source_x"], meta["source_y"], "+", color="c", ms=8)
    theta_E = sample["params"][0]
    snr = "no noise" if not np.isfinite(meta["snr"]) else f"S/N {meta['snr']:.0f}"
    axes[0, column].set_title(f"{preset} #{seed}\n" + r"$\theta_E$" + f" = {theta_E:.2f}\", {snr}",
                              fontsize=9)
    axes[2, column].set_xlabel(f"{meta['source_kind']}, {meta['psf_kind']} PSF", fontsize=8)
for row, key in enumerate(ROWS):
    axes[row, 0].set_ylabel(key)

if __name__ == "__main__" and len(sys.argv) > 1:
    fig.savefig(sys.argv[1], dpi=80)
