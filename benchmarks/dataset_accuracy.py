"""Accuracy on a test set of ``astro-delens simulate``, through the public classes.

Usage::

    python benchmarks/dataset_accuracy.py DATA.h5 [--model sky] [-n 400] [--symmetries 8]
        [--no-field-check]

The first ``n`` images of ``DATA.h5`` (e.g. ``astro-delens simulate --preset
survey --split test -n 400 -o survey_test.h5 --seed 902``) are given to
`LensParameterEstimator.predict_many` as a user would give them: arrays with
their pixel scale and, for presets with noise, their noise map (noise-free
presets: no noise map, as for a user's noise-free array). Printed: the
Einstein radius's median |dtheta_E| / theta_E, the fraction off by more than
20% (and of those, without any warning), the fractions of truths inside the
68% and 95% intervals, the fraction flagged, and the RMS of every parameter.
"""

import argparse
import sys
import time
import warnings

import numpy as np


def main(argv=None):
    from astro_delens.nn.registry import DEFAULT_FAMILY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="HDF5 test set made by astro-delens simulate")
    parser.add_argument("--model", default=DEFAULT_FAMILY, help="model family or directory")
    parser.add_argument("-n", type=int, default=400, help="number of lenses (default 400)")
    parser.add_argument("--symmetries", type=int, default=8, choices=(1, 4, 8))
    parser.add_argument("--no-field-check", action="store_true")
    args = parser.parse_args(argv)

    import astropy.units as u
    import h5py

    from astro_delens import LensParameterEstimator, lensmodel

    with h5py.File(args.data, "r") as f:
        n = min(args.n, len(f["image"]))
        images = f["image"][:n]
        noise = f["noise_map"][:n]
        truth = f["params"][:n]
        scales = f["pixel_scale"][:n]
        preset = str(f.attrs.get("preset"))
    noise_free = not np.any(noise)
    items = []
    for image, sigma, scale in zip(images, noise, scales):
        kwargs = {"pixel_scale": float(scale) * u.arcsec}
        if not noise_free:
            kwargs["noise"] = sigma
        items.append((image, kwargs))
    est = LensParameterEstimator(args.model, symmetries=args.symmetries,
                                 field_check=not args.no_field_check)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        table = est.predict_many(items, progress=False)
        wall = time.perf_counter() - t0
    mean = np.stack([np.asarray(table[name]) for name in lensmodel.PARAMETER_NAMES], axis=1)
    std = np.stack([np.asarray(table[name + "_err"]) for name in lensmodel.PARAMETER_NAMES],
                   axis=1)
    flagged = np.array([bool(flags) for flags in table["flags"]])
    frac = np.abs(mean[:, 0] / truth[:, 0] - 1)
    z = np.abs(mean[:, 0] - truth[:, 0]) / std[:, 0]
    off = frac > 0.2
    print(f"{n} lenses of {args.data} (preset {preset}{', noise-free' if noise_free else ''}); "
          f"model {est.model_info['name']!r} ({est.model_info['path']}), "
          f"{args.symmetries} symmetries, field check "
          f"{'off' if args.no_field_check else 'on'}; {n / wall:.1f} cutouts/s")
    print(f"theta_E: median |dtheta_E|/theta_E {np.median(frac):.2%}; off by > 20% "
          f"{off.mean():.1%} (without a warning {np.mean(off & ~flagged):.1%}); in 68% "
          f"{np.mean(z <= 1):.1%}, in 95% {np.mean(z <= 1.96):.1%}; flagged {flagged.mean():.1%}")
    rms = np.sqrt(np.mean((mean - truth) ** 2, axis=0))
    print("RMS: " + ", ".join(f"{name} {value:.4g}"
                              for name, value in zip(lensmodel.PARAMETER_NAMES, rms)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
