"""Simulate strong lenses of a preset into an HDF5 training set.

Each sample holds the observed image, its noise map, the lensed arcs, the lens
galaxy's light, the source target, the PSF and the eight lens parameters (see
the layout in `astro_delens.training.dataset`). The file depends only on the
preset, -n, --split, --seed and the input files, not on --workers.

Samples are written to OUTPUT.partial as they are made; if the run is
interrupted, running the same command again resumes it. OUTPUT appears, complete,
only at the end.

Training, validation and test sets are made with --split train/val/test; they
never share a source galaxy.

examples:
  astro-delens simulate --preset survey -n 100000 --split train -o train.h5 --seed 1 --workers 8
  astro-delens simulate --preset survey -n 5000 --split val -o val.h5 --seed 1
  astro-delens simulate --preset survey -n 2000 --split train -o cosmos.h5 \\
      --source-catalog COSMOS_23.5_training_sample/real_galaxy_catalog_23.5.fits
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import warnings

from . import CommandError

HELP = "simulate a training / validation / test set of lenses into an HDF5 file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``astro-delens simulate`` to ``parser``."""
    from ..presets import PRESETS
    from ..training.dataset import SPLITS

    parser.add_argument(
        "--preset", default="survey", metavar="NAME",
        help=f"simulation preset, one of {', '.join(sorted(PRESETS))} (default: survey)")
    parser.add_argument(
        "-n", "--n", dest="n", required=True, metavar="N",
        help="number of lenses to simulate (a positive integer)")
    parser.add_argument(
        "--split", default="train", metavar="SPLIT",
        help=f"which split the file is, one of {', '.join(SPLITS)} (default: train); splits "
             "get different random lenses and never share a source galaxy")
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUTPUT",
        help="output HDF5 file (written as OUTPUT.partial until complete)")
    parser.add_argument(
        "--seed", default="0", metavar="SEED",
        help="master random seed, a non-negative integer (default: 0)")
    parser.add_argument(
        "--workers", default="1", metavar="K",
        help="number of worker processes (default: 1); the result does not depend on it")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing OUTPUT and discard an unfinished OUTPUT.partial instead of "
             "resuming it")
    parser.add_argument(
        "--source-catalog", metavar="PATH", default=None,
        help="lens real galaxies from a GalSim RealGalaxyCatalog (e.g. the COSMOS 23.5 "
             "sample: real_galaxy_catalog_23.5.fits, or the folder holding it) instead of "
             "procedural sources (each stamp cleaned to its galaxy's own segment and "
             "lensed as observed); the catalog is split 80/10/10 per cent between "
             "train/val/test by galaxy")
    parser.add_argument(
        "--psf-file", dest="psf_files", action="append", metavar="PATH[:SCALE]", default=None,
        help="FITS file of real PSFs (every 2-D image or cube plane is one PSF), optionally "
             "with its pixel scale in arcsec; repeat for several files. Used for a share "
             "of the lenses of presets that vary the PSF")
    parser.add_argument(
        "--no-progress", action="store_true",
        help="do not show the progress bar (it is shown only on a terminal anyway)")


def _integer(value, name, minimum):
    try:
        number = int(str(value), 10)
    except ValueError:
        number = None
    if number is None or number < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise CommandError(f"{name}: expected {what}, got {value!r}")
    return number


def command_line(args, n, seed, workers) -> str:
    """The canonical command line of ``args`` (stored in the file's ``command`` attribute)."""
    words = ["astro-delens", "simulate", "--preset", args.preset, "-n", str(n),
             "--split", args.split, "-o", args.output, "--seed", str(seed),
             "--workers", str(workers)]
    if args.source_catalog:
        words += ["--source-catalog", args.source_catalog]
    for path in args.psf_files or []:
        words += ["--psf-file", path]
    if args.overwrite:
        words.append("--overwrite")
    return shlex.join(words)


@contextlib.contextmanager
def _one_line_warnings():
    """Show warnings as one ``astro-delens simulate: warning: ...`` line each."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"astro-delens simulate: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _written(output) -> str:
    from ..training.dataset import PARTIAL_SUFFIX

    try:
        import h5py

        with h5py.File(str(output) + PARTIAL_SUFFIX, "r") as h5:
            return f"{int(h5.attrs['n_written'])} of {int(h5.attrs['n'])} samples written; "
    except Exception:  # nothing written yet, or unreadable
        return ""


def run(args) -> int:
    """Run ``astro-delens simulate``; returns the exit status."""
    from ..training.dataset import generate_dataset

    n = _integer(args.n, "-n", 1)
    seed = _integer(args.seed, "--seed", 0)
    workers = _integer(args.workers, "--workers", 1)
    with _one_line_warnings():
        try:
            path = generate_dataset(
                args.output, args.preset, n, args.split, seed, workers=workers,
                overwrite=args.overwrite, source_catalog=args.source_catalog,
                psf_files=args.psf_files, progress=not args.no_progress,
                command=command_line(args, n, seed, workers),
            )
        except KeyboardInterrupt:
            raise CommandError(f"interrupted ({_written(args.output)}run the same command "
                               "again to resume)", exit_code=130) from None
        except RuntimeError as exc:  # the simulation itself failed (worker crash, ...)
            reason = " ".join(str(exc).split())
            raise CommandError(f"simulation failed: {reason} ({_written(args.output)}run the "
                               "same command again to resume)", exit_code=1) from None
    print(f"wrote {n} {args.split} lenses of preset {args.preset!r} to {path}")
    return 0
