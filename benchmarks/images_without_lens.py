"""What the shipped models say about images that hold no lens.

The networks always answer: an image without a lens still gets an Einstein
radius and an uncertainty. This benchmark measures how those answers, and the
re-lensing check, differ between images with and without a lens, on the
samples of the Gravitational Lens Finding Challenge 1.0 (Metcalf et al. 2019)
in ``../shared/data/lens_finding_challenge_sims`` (simulated by another code
than ours; no lens parameters come with them). Each image goes through the
public API as a user would pass it: the FITS file, its WCS giving the pixel
scale, the noise estimated from the sky, and the PSF assumed from the preset
(the files carry neither noise map nor PSF).

Printed for each set (``space_based``: Euclid-like VIS at 0.1"; and
``ground_based``: its first band, KiDS-like at 0.2", outside the ``survey``
preset's pixel scale): one line per image (theta_E and its 1-sigma error,
the check's reduced chi^2 over the cutout and over the arc region, the fitted
source amplitude, the flag; an image that fails counts as flagged), the
fraction of images flagged and the medians of theta_E's error and of the two
chi^2.

Usage::

    python benchmarks/images_without_lens.py [--model survey] [--sets space_based ground_based]
"""

import argparse
import sys
import warnings

import numpy as np

#: Where the images of each set and kind are.
FOLDERS = {
    "space_based": {"lens": "space_based/lens", "no lens": "space_based/nolens"},
    "ground_based": {"lens": "ground_based/lens/Band1", "no lens": "ground_based/nolens/Band1"},
}


def measure(rec, files):
    """One row (name, theta_E, its error, chi2, arc chi2, amplitude, flag) per file."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sources = rec.reconstruct_many([str(f) for f in files], on_error="warn")
    rows = []
    for path, src in zip(files, sources):
        if src is None or src.check is None:
            rows.append((path.name, np.nan, np.nan, np.nan, np.nan, np.nan, True))
            continue
        check = src.check
        rows.append((path.name, float(src.lens.mean[0]), float(src.lens.std[0]),
                     check.reduced_chi2, check.arc_reduced_chi2, check.source_amplitude,
                     bool(check.flag)))
    warned = sorted({" ".join(str(w.message).split())[:120] for w in caught
                     if not issubclass(w.category, DeprecationWarning)})
    return rows, warned


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="survey", help="model family or directory")
    parser.add_argument("--sets", nargs="+", choices=sorted(FOLDERS),
                        default=["space_based", "ground_based"])
    args = parser.parse_args(argv)

    from astro_delens import SourceReconstructor
    from astro_delens.data._devtools import shared_data_dir

    shared = shared_data_dir()
    challenge = None if shared is None else shared / "lens_finding_challenge_sims"
    if challenge is None or not challenge.is_dir():
        print("../shared/data/lens_finding_challenge_sims is absent: nothing to do",
              file=sys.stderr)
        return 1

    rec = SourceReconstructor(args.model)
    for name in args.sets:
        print(f"== {name}")
        for kind, folder in FOLDERS[name].items():
            files = sorted((challenge / folder).glob("*.fits"))
            rows, warned = measure(rec, files)
            print(f"{kind}: {len(files)} images")
            print(f"  {'file':28s} {'theta_E':>7s} {'+/-':>5s} {'chi2':>6s} {'arc':>6s} "
                  f"{'amp':>6s} flag")
            for file, theta, err, chi2, arc, amp, flag in rows:
                print(f"  {file:28s} {theta:7.2f} {err:5.2f} {chi2:6.2f} {arc:6.2f} "
                      f"{amp:6.2f} {'F' if flag else '-'}")
            table = np.array([r[1:6] for r in rows], float)
            print(f"  flagged {np.mean([r[6] for r in rows]):.0%}; medians: theta_E error "
                  f"{np.nanmedian(table[:, 1]):.3f}\", chi2 {np.nanmedian(table[:, 2]):.2f}, "
                  f"arc chi2 {np.nanmedian(table[:, 3]):.2f}")
            for line in warned:
                print(f"  warning: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
