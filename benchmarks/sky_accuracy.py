"""Accuracy on held-out ``sky`` simulations at their native pixel scales, through the public classes.

Usage::

    python benchmarks/sky_accuracy.py [--model sky] [--n 300] [--first-index 0]
        [--psf-file PATH[:SCALE] ...] [--no-field-objects] [--json FILE]

Lenses of the ``sky`` preset's test split (``astro_delens.training.sky``;
dataset seed 12, the seed of the shipped model's test set) are drawn at their
native pixel scale (0.03"-0.2") with everything the preset puts in the sky,
and given to `LensParameterEstimator.predict_many` as a user would give them:
arrays with their pixel scale, and the noise map for the half of the lenses
the simulator marks ``noise_given`` (the others have it estimated). Default
settings otherwise. Printed:

* the Einstein radius: median |dtheta_E| / theta_E, the fraction off by more
  than 20% (and of those, the fraction without any warning), and the
  fractions of truths inside the 68% and 95% intervals;
* the same per native pixel scale, and for lenses with and without a
  neighbour or star in the cutout;
* the contaminant mask of `prepare_cutout`: the fraction of the field
  objects' flux (on the model grid) left unmasked, the fraction of the arcs'
  flux masked and the fraction of lenses with any arc flux masked.

``--no-field-objects`` draws the same lenses without neighbours, satellites
and stars, for the side-by-side comparison.
"""

import argparse
import json
import sys
import time
import warnings

import numpy as np

TEST_SEED = 12


def _on_grid(native, scale, preset):
    """A noise-free native image resampled onto the model grid as `prepare_cutout` does."""
    from astro_delens.cutout import prepare_cutout

    if not np.any(native):
        return np.zeros((preset.npix, preset.npix))
    prepared = prepare_cutout(native, preset, pixel_scale=scale, noise=np.ones_like(native),
                              background_subtracted=True, mask_contaminants=False, warn=False)
    return np.asarray(prepared.image, dtype=float)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sky", help="model family or directory")
    parser.add_argument("--n", type=int, default=300, help="number of lenses")
    parser.add_argument("--first-index", type=int, default=0, help="first test-split index")
    parser.add_argument("--psf-file", action="append", default=None, metavar="PATH[:SCALE]",
                        help="real PSFs for the 'file' kind (as in the training data)")
    parser.add_argument("--no-field-objects", action="store_true",
                        help="leave neighbours, satellites and stars out")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args(argv)

    from astro_delens import LensParameterEstimator
    from astro_delens.training.dataset import sample_seed
    from astro_delens.training.simulate import make_simulator

    est = LensParameterEstimator(args.model)
    sim = make_simulator("sky", psf_files=args.psf_file)
    sim.field_objects = not args.no_field_objects
    items, truths, metas, natives = [], [], [], []
    t0 = time.perf_counter()
    for index in range(args.first_index, args.first_index + args.n):
        for attempt in range(10):
            try:
                s = sim.simulate_native(sample_seed(TEST_SEED, "test", index, attempt))
                break
            except RuntimeError:
                continue
        meta = s["meta"]
        kwargs = {"pixel_scale": meta["pixel_scale"]}
        if meta["noise_given"]:
            kwargs["noise"] = s["native_noise_map"]
        items.append((s["native_image"], kwargs))
        truths.append(s["params"])
        metas.append(meta)
        natives.append((s["native_field"], s["native_arcs"], meta["pixel_scale"]))
    t_sim = time.perf_counter() - t0
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        table = est.predict_many(items, progress=False)
        t_est = time.perf_counter() - t0
        prepared = [est.prepare(data, **kw) for data, kw in items]  # for the mask figures

    truth = np.array(truths)[:, 0]
    theta = np.asarray(table["theta_E"].value)
    sigma = np.asarray(table["theta_E_err"].value)
    flagged = np.array([bool(f) for f in table["flags"]])
    frac = np.abs(theta / truth - 1)
    z = np.abs(theta - truth) / sigma

    def figures(sel):
        sel = np.asarray(sel, bool)
        off = sel & (frac > 0.2)
        return {"n": int(sel.sum()), "median_abs_fractional_error": float(np.median(frac[sel])),
                "off_by_more_than_20pc": float(np.mean(frac[sel] > 0.2)),
                "off_and_silent": float(np.mean(off[sel] & ~flagged[sel])),
                "inside_68": float(np.mean(z[sel] <= 1.0)),
                "inside_95": float(np.mean(z[sel] <= 1.96)),
                "flagged": float(np.mean(flagged[sel]))}

    def line(name, f):
        return (f"{name:28s} n={f['n']:4d}  median {f['median_abs_fractional_error']:6.2%}  "
                f">20% {f['off_by_more_than_20pc']:6.1%} (silent {f['off_and_silent']:5.1%})  "
                f"in 68% {f['inside_68']:5.1%}  in 95% {f['inside_95']:5.1%}  "
                f"flagged {f['flagged']:5.1%}")

    out = {"model": est.model_info, "n": args.n, "first_index": args.first_index,
           "field_objects": not args.no_field_objects, "all": figures(np.ones(len(truth)))}
    print(f"model {est.model_info['name']!r}: {args.n} sky test lenses (indices "
          f"{args.first_index}-{args.first_index + args.n - 1}), simulated in {t_sim:.0f} s, "
          f"estimated in {t_est:.0f} s")
    print(line("all", out["all"]))
    scales = np.array([m["pixel_scale"] for m in metas])
    for scale in np.unique(scales):
        out[f"scale_{scale:g}"] = figures(scales == scale)
        print(line(f"native scale {scale:g}\"", out[f"scale_{scale:g}"]))
    if not args.no_field_objects:
        crowded = np.array([m["n_field_galaxies"] + m["n_stars"] > 0 for m in metas])
        out["with_field_objects"] = figures(crowded)
        out["without_field_objects"] = figures(~crowded)
        print(line("with neighbours or stars", out["with_field_objects"]))
        print(line("without", out["without_field_objects"]))

        left, arcs_masked, any_arc = [], [], []
        for (field, arcs, scale), prep in zip(natives, prepared):
            mask = np.asarray(prep.mask)
            # pixels of the grid the cutout covers (a smaller cutout is not masking)
            ramp = 1.0 + 1e-6 * np.arange(field.size).reshape(field.shape)  # not constant
            inside = _on_grid(ramp, scale, est.preset) > 0.5
            field_grid = np.clip(_on_grid(field, scale, est.preset), 0, None) * inside
            arcs_grid = np.clip(_on_grid(arcs, scale, est.preset), 0, None) * inside
            if field_grid.sum() > 0:
                left.append(field_grid[~mask].sum() / field_grid.sum())
            arcs_masked.append(arcs_grid[mask].sum() / max(arcs_grid.sum(), 1e-30))
            bright = arcs_grid > 0.1 * arcs_grid.max()
            any_arc.append(bool(np.any(mask & bright)))
        out["mask"] = {"field_flux_unmasked": float(np.mean(left)),
                       "arc_flux_masked": float(np.mean(arcs_masked)),
                       "lenses_with_arc_masked": float(np.mean(any_arc))}
        print(f"contaminant mask: field-object flux left unmasked {np.mean(left):.1%} "
              f"(mean over {len(left)} lenses); arc flux masked {np.mean(arcs_masked):.2%}; "
              f"lenses with any arc pixel above 10% of the arcs' peak masked "
              f"{np.mean(any_arc):.1%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
