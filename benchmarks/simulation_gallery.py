"""A gallery of simulated lenses for each preset: observed image, arcs and source target.

Usage::

    python benchmarks/simulation_gallery.py [OUTPUT.png] [--per-preset 3] [--seed 0]

The default output is ``docs/_static/simulation_gallery.png``. Images are shown
north up, east left (``origin="lower"``, x axis increasing to the left), with an
arcsinh stretch; the dashed circle marks the Einstein radius around the lens
centre. The lenses are those of the ``test`` split of a dataset made with
``--seed`` (`astro_delens.training.dataset.sample_seed`).
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from astro_delens.presets import PRESETS  # noqa: E402
from astro_delens.training.dataset import sample_seed  # noqa: E402
from astro_delens.training.simulate import LensSimulator  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1] / "docs" / "_static" / "simulation_gallery.png"
COLUMNS = (("image", "observed image"), ("arcs", "arcs (no noise, no lens light)"),
           ("source", "source target"))


def _show(ax, array, half_width, params=None):
    """Draw ``array`` north up / east left with an arcsinh stretch."""
    scale = np.percentile(np.abs(array), 99.5) or 1.0
    ax.imshow(np.arcsinh(array / (0.1 * scale)), origin="lower", cmap="magma",
              extent=[half_width, -half_width, -half_width, half_width])
    if params is not None:
        t = np.linspace(0, 2 * np.pi, 200)
        ax.plot(params[4] + params[0] * np.cos(t), params[5] + params[0] * np.sin(t),
                ls="--", lw=0.6, color="cyan")
    ax.set_xlim(half_width, -half_width)
    ax.set_ylim(-half_width, half_width)
    ax.tick_params(labelsize=6)


def _caption(name, sample):
    m, p = sample["meta"], sample["params"]
    snr = "no noise" if not np.isfinite(m["snr"]) else f"S/N {m['snr']:.0f}"
    return (f"{name}: $\\theta_E$={p[0]:.2f}\", {m['psf_kind']} PSF {m['psf_fwhm']:.2f}\", "
            f"{snr}, light x{m['lens_light_ratio']:.1f}, {m['source_kind']}")


def gallery(output, per_preset=3, seed=0):
    """Simulate ``per_preset`` lenses of every preset and save the figure to ``output``."""
    rows = [(name, i) for name in sorted(PRESETS) for i in range(per_preset)]
    fig = plt.figure(figsize=(7.5, 2.6 * len(rows)), layout="constrained")
    sims = {name: LensSimulator(name) for name in PRESETS}
    for subfig, (name, i) in zip(fig.subfigures(len(rows), 1), rows):
        preset = PRESETS[name]
        sample = sims[name].simulate(sample_seed(seed, "test", i))
        subfig.suptitle(_caption(name, sample), fontsize=8)
        for ax, (key, title) in zip(subfig.subplots(1, len(COLUMNS)), COLUMNS):
            source = key == "source"
            width = (preset.source_field_of_view if source else preset.field_of_view) / 2
            _show(ax, sample[key], width, None if source else sample["params"])
            ax.set_title(title, fontsize=7)
            ax.set_xlabel("arcsec (east left)", fontsize=6)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default=str(DEFAULT),
                        help=f"PNG file to write (default {DEFAULT})")
    parser.add_argument("--per-preset", type=int, default=3, help="lenses per preset (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    args = parser.parse_args(argv)
    print(gallery(args.output, args.per_preset, args.seed))


if __name__ == "__main__":
    main()
