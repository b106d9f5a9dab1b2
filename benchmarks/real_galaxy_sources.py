"""How the shipped models do on lenses whose sources are real galaxies.

The shipped models were trained on procedural sources only. This benchmark
lenses the real HST galaxy stamps of ``../shared/data/galaxies`` (COSMOS and
AEGIS, in GalSim's RealGalaxyCatalog format; evaluation only, never used for
training or tuning) with the simulator of a preset, and measures the models
through the public API on them and, as a control, on the *same* lenses (same
lens, lens light, PSF, signal-to-noise) with the procedural source the
simulator would have drawn instead:

* the estimator: Einstein radius median absolute fractional error, RMS of
  every parameter, and the fraction of truths within the 68% and 95% intervals;
* the reconstructor: the correlation of the reconstructed source with the
  true one (on the source grid), median.

The galaxies are few (19 stamps), so the lenses repeat them with other
orientations, sizes and positions (as the simulator draws them).

Usage::

    python benchmarks/real_galaxy_sources.py --n 200
    python benchmarks/real_galaxy_sources.py --n 200 --symmetries 1
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from astro_delens import lensmodel

GALAXIES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "galaxies"

#: The RealGalaxyCatalog files of ../shared/data/galaxies.
CATALOGS = ("cosmos_paltas", "aegis_galsim/AEGIS_F814w_catalog.fits", "cosmos_slsim",
            "cosmos_galsim/test_catalog.fits")


def simulate(preset, n, first_seed, galaxy_sources):
    """Pairs of samples (real source, procedural source) for seeds first_seed...

    The real sources cycle through ``galaxy_sources`` (one `RealGalaxySource` per catalog).
    """
    from astro_delens.training.simulate import LensSimulator

    real = [LensSimulator(preset, source_catalog=c) for c in galaxy_sources]
    procedural = LensSimulator(preset)
    pairs = []
    for k in range(n):
        seed = first_seed + k
        pairs.append((real[k % len(real)].simulate(seed), procedural.simulate(seed)))
    return pairs


def measure(est, rec, samples, pixel_scale):
    """Estimates and source correlations of ``samples`` through the public API."""
    import astropy.units as u

    inputs = [(s["image"], {"noise": s["noise_map"], "psf": s["psf"]}) for s in samples]
    common = dict(pixel_scale=pixel_scale * u.arcsec, background_subtracted=True,
                  mask_contaminants=False)
    table = est.predict_many(inputs, **common)
    names = lensmodel.PARAMETER_NAMES
    mean = np.stack([np.asarray(table[name]) for name in names], axis=1)
    std = np.stack([np.asarray(table[f"{name}_err"]) for name in names], axis=1)
    sources = rec.reconstruct_many(inputs, check=False, **common)
    corr = np.array([np.corrcoef(np.asarray(src.data).ravel(), s["source"].ravel())[0, 1]
                     for src, s in zip(sources, samples)])
    return mean, std, corr


def report(label, mean, std, truth, corr, names):
    err = mean - truth
    frac = np.abs(err[:, 0]) / truth[:, 0]
    rms = np.sqrt(np.mean(err ** 2, axis=0))
    in68 = np.mean(np.abs(err) <= std, axis=0)
    in95 = np.mean(np.abs(err) <= 1.96 * std, axis=0)
    print(f"{label}: theta_E median |frac err| {np.median(frac):.3f}, source correlation "
          f"median {np.median(corr):.2f}")
    print("   " + " ".join(f"{n[:8]:>8}" for n in names))
    print("RMS" + " ".join(f"{v:8.4f}" for v in rms))
    print("68%" + " ".join(f"{v:8.2f}" for v in in68))
    print("95%" + " ".join(f"{v:8.2f}" for v in in95))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="survey", help="model family (default: survey)")
    ap.add_argument("--n", type=int, default=200, help="number of lenses")
    ap.add_argument("--first-seed", type=int, default=7000)
    ap.add_argument("--symmetries", type=int, default=8, choices=(1, 4, 8))
    ap.add_argument("--galaxies", type=Path, default=GALAXIES,
                    help="folder of the catalogs (default: ../shared/data/galaxies)")
    args = ap.parse_args(argv)

    from astro_delens import LensParameterEstimator, SourceReconstructor
    from astro_delens.training.real_galaxies import RealGalaxySource, RealGalaxyWarning

    catalogs = [args.galaxies / c for c in CATALOGS if (args.galaxies / c).exists()]
    if not catalogs:
        sys.exit(f"no galaxy catalogs under {args.galaxies}")
    with warnings.catch_warnings():
        # some catalogs lack their PSF files: the observed stamps are used (an extra
        # blur of the HST PSF, far below the survey preset's PSF)
        warnings.simplefilter("ignore", RealGalaxyWarning)
        providers = [RealGalaxySource(c) for c in catalogs]
    est = LensParameterEstimator(args.model, symmetries=args.symmetries)
    rec = SourceReconstructor(args.model, symmetries=args.symmetries)
    preset = est.preset
    print(f"{args.n} lenses of preset {preset.name!r}, seeds {args.first_seed}-"
          f"{args.first_seed + args.n - 1}; sources from {sum(len(p) for p in providers)} "
          f"galaxies of {len(providers)} catalogs; model {args.model!r}, "
          f"{args.symmetries} symmetries")
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RealGalaxyWarning)
        pairs = simulate(preset.name, args.n, args.first_seed, providers)
    print(f"simulated in {time.perf_counter() - tic:.0f} s")
    truth = np.stack([real["params"] for real, _ in pairs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # out-of-domain notes are counted by the figures
        for label, k in (("real galaxies", 0), ("procedural (same lenses)", 1)):
            mean, std, corr = measure(est, rec, [pair[k] for pair in pairs], preset.pixel_scale)
            report(label, mean, std, truth, corr, lensmodel.PARAMETER_NAMES)
            report_by_catalog(mean, std, truth,
                              [str(c.relative_to(args.galaxies)) for c in catalogs])


def report_by_catalog(mean, std, truth, catalog_names):
    """theta_E's figures for the lenses of each catalog (lens k has catalog k mod the number)."""
    err = mean[:, 0] - truth[:, 0]
    which = np.arange(len(truth)) % len(catalog_names)
    for c, name in enumerate(catalog_names):
        sel = which == c
        frac = np.median(np.abs(err[sel]) / truth[sel, 0])
        in68 = np.mean(np.abs(err[sel]) <= std[sel, 0])
        in95 = np.mean(np.abs(err[sel]) <= 1.96 * std[sel, 0])
        print(f"    theta_E, sources from {name} ({sel.sum()} lenses): median |frac err| "
              f"{frac:.3f}, within 68% / 95% intervals {in68:.2f} / {in95:.2f}")


if __name__ == "__main__":
    main()
