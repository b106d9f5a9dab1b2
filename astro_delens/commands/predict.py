"""Estimate the lens parameters of FITS images into one ECSV table.

Each FILE is prepared (cutout, background, noise, resampling to the model's
north-up grid; see astro_delens.cutout), run through the parameter network, and
becomes one row of the table: the eight parameters and their 1-sigma errors,
axis ratio, position angle (east of north), shear and shear angle, and the lens
centre on the sky when the file has a celestial WCS. The table's metadata
records the model (name, version, SHA-256) and every preprocessing step.

A file that cannot be processed is reported on one line of stderr and
skipped; the exit status is then 1, and TABLE.failures.ecsv lists the files
that failed with their errors. Out-of-domain inputs give a warning line
and are flagged in the "flags" column. FILE may name an extension as
FILE[EXT]. --noise, --psf and --mask take a number (noise: constant 1-sigma;
psf: Gaussian FWHM in arcsec), a FITS file (optionally FILE[EXT]), or the name
or number of an extension of each input file.

With --workers N (a local cluster) or --scheduler ADDRESS (an existing one)
the files are shared out on Dask in partitions of --partition-size files; each
partition's rows are stored in TABLE.parts/ as soon as they are done, so that
running the same command again after an interruption resumes where it
stopped. The table is the same as without Dask, row for row.

examples:
  astro-delens predict lens1.fits lens2.fits -o results.ecsv
  astro-delens predict euclid_*.fits --hdu VIS_FLUX --noise VIS_RMS --psf VIS_PSF -o q1.ecsv
  astro-delens predict cutout.fits --ra 150.1163 --dec 2.2057 --size 8 -o one.ecsv
  astro-delens predict stamp.fits --pixel-scale 0.05 --noise 0.003 -o stamp.ecsv
  astro-delens predict q1/*.fits --hdu VIS_FLUX --workers 8 -o q1.ecsv
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings

from . import CommandError
from ..nn.augment import SYMMETRY_COUNTS

HELP = "estimate lens parameters of FITS images into an ECSV table"


# --------------------------------------------------------------------------
# options shared with ``astro-delens reconstruct``
# --------------------------------------------------------------------------
def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """Options describing the input images (shared by predict and reconstruct)."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="FITS images (FILE or FILE[EXT])")
    parser.add_argument("--hdu", metavar="HDU", default=None,
                        help="HDU holding the image: a number or an EXTNAME (default: the first "
                             "HDU with an image)")
    where = parser.add_argument_group("cutout centre (default: the image centre)")
    where.add_argument("--ra", metavar="RA", default=None,
                       help="right ascension (ICRS): degrees, or sexagesimal hours like 10:00:27.9")
    where.add_argument("--dec", metavar="DEC", default=None,
                       help="declination (ICRS): degrees, or sexagesimal like +02:12:20 "
                            "(write --dec=-02:12:20 for a negative one)")
    where.add_argument("--x", metavar="X", default=None, help="pixel column (zero-based)")
    where.add_argument("--y", metavar="Y", default=None, help="pixel row (zero-based)")
    parser.add_argument("--size", metavar="ARCSEC", default=None,
                        help="width of the region used, in arcsec (default: the model's field)")
    parser.add_argument("--pixel-scale", metavar="ARCSEC", default=None,
                        help="pixel scale in arcsec, for images without a celestial WCS")
    parser.add_argument("--noise", metavar="NOISE", default=None,
                        help="1-sigma noise: a number, a FITS noise map, or an extension of each "
                             "input file (default: estimated from the sky)")
    parser.add_argument("--psf", metavar="PSF", default=None,
                        help="PSF: a FITS image, an extension of each input file, or a Gaussian "
                             "FWHM in arcsec")
    parser.add_argument("--mask", metavar="MASK", default=None,
                        help="bad-pixel mask (non-zero = bad): a FITS image or an extension of "
                             "each input file")
    parser.add_argument("--background-subtracted", action="store_true",
                        help="the images have no sky background left: do not subtract one")
    parser.add_argument("--no-mask-contaminants", action="store_true",
                        help="do not mask sources far from the lens automatically")
    parser.add_argument("--model", default=None, metavar="MODEL",
                        help="model family name (sky, survey, seed) or model directory "
                             "(default: astro_delens.config.conf.default_model, sky unless "
                             "configured)")
    parser.add_argument("--symmetries", type=int, choices=SYMMETRY_COUNTS, default=None,
                        help="average the networks' answers over this many turns and flips "
                             "of each image (default: astro_delens.config.conf.symmetries, 8 "
                             "unless configured: the most accurate; 1 is about twice as fast "
                             "on a CPU)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")
    parser.add_argument("--no-progress", action="store_true",
                        help="do not show the progress bar (shown only on a terminal anyway)")


def _float(value, option, positive=False):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CommandError(f"{option}: expected a number, got {value!r}") from None
    if number != number or (positive and not number > 0):
        raise CommandError(f"{option}: expected a positive number, got {value!r}")
    return number


def _position(args):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    sky = (args.ra is not None, args.dec is not None)
    pix = (args.x is not None, args.y is not None)
    if any(sky) and any(pix):
        raise CommandError("--ra/--dec and --x/--y: give a sky position or a pixel position, "
                           "not both")
    if any(sky):
        if not all(sky):
            raise CommandError("--ra and --dec must be given together")
        ra_unit = u.hourangle if any(c in str(args.ra) for c in ":h ") else u.deg
        try:
            return SkyCoord(args.ra, args.dec, unit=(ra_unit, u.deg), frame="icrs")
        except (ValueError, TypeError, u.UnitsError) as exc:
            raise CommandError(f"--ra/--dec: cannot read {args.ra!r} {args.dec!r} ({exc})") \
                from None
    if any(pix):
        if not all(pix):
            raise CommandError("--x and --y must be given together")
        return (_float(args.x, "--x"), _float(args.y, "--y"))
    return None


def _hdu(value):
    if value is None:
        return None
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _aux(value, option, numeric_kind):
    """--noise / --psf / --mask: a number, or a file / extension reference (str)."""
    import astropy.units as u

    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return value  # a FITS file, FILE[EXT], or an extension of each input
    if numeric_kind is None:
        raise CommandError(f"{option}: expected a FITS file or an extension name, got {value!r}")
    if not number > 0 and not (numeric_kind == "noise" and number == 0):
        raise CommandError(f"{option}: expected a positive number, got {value!r}")
    return number * u.arcsec if numeric_kind == "fwhm" else number


def prepare_options(args) -> dict:
    """Keyword arguments of the public classes from the parsed options (usage errors raise)."""
    import astropy.units as u

    options = {
        "hdu": _hdu(args.hdu),
        "position": _position(args),
        "size": None if args.size is None else _float(args.size, "--size", True) * u.arcsec,
        "pixel_scale": None if args.pixel_scale is None
        else _float(args.pixel_scale, "--pixel-scale", True) * u.arcsec,
        "noise": _aux(args.noise, "--noise", "noise"),
        "psf": _aux(args.psf, "--psf", "fwhm"),
        "mask": _aux(args.mask, "--mask", None),
        "background_subtracted": bool(args.background_subtracted),
        "mask_contaminants": not args.no_mask_contaminants,
    }
    return options


def resolve_settings(args) -> None:
    """Fill the options left to the settings (`astro_delens.config`) from this process's.

    Done once, here, so that Dask workers use the settings of the command and
    the provenance records the values used.
    """
    from ..config import conf

    if args.symmetries is None:
        args.symmetries = int(conf.symmetries)


def load_model(cls, args, **kwargs):
    """Instantiate ``cls(args.model)``; a missing or broken model is a usage error."""
    from ..nn.registry import ChecksumError, ModelNotFoundError

    try:
        return cls(args.model, symmetries=args.symmetries, **kwargs)
    except (ModelNotFoundError, ChecksumError) as exc:
        raise CommandError(str(exc)) from None


class Reporter:
    """One line on stderr per problem, written through tqdm so the bar stays intact."""

    def __init__(self, command):
        self.command = command
        self.failed = []

    def line(self, text):
        from tqdm.auto import tqdm

        tqdm.write(f"astro-delens {self.command}: {text}", file=sys.stderr)

    def fail(self, name, exc):
        message = " ".join(str(exc).split()) or type(exc).__name__
        self.failed.append((name, message))
        self.line(f"{name}: error: {message}")

    def failures_table(self):
        """The inputs that failed and why, as a `~astropy.table.Table` (``input``, ``error``)."""
        from astropy.table import Table

        return Table({"input": [n for n, _ in self.failed], "error": [m for _, m in self.failed]},
                     dtype=(str, str))

    @contextlib.contextmanager
    def warnings_for(self, name):
        """Show the warnings raised while processing ``name`` as one line each."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        seen = set()
        for w in caught:
            if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
                continue
            text = " ".join(str(w.message).split())
            if text not in seen:
                seen.add(text)
                self.line(f"{name}: warning: {text}" if name else f"warning: {text}")


def command_line(args, command, files=None) -> str:
    """The command line that ``args`` stands for (recorded with the outputs)."""
    import shlex

    words = ["astro-delens", command, *(args.files if files is None else files)]
    for option in ("hdu", "ra", "dec", "x", "y", "size", "pixel_scale", "noise", "psf", "mask",
                   "model", "symmetries", "output", "outdir"):
        value = getattr(args, option, None)
        if value is not None:
            words.append(f"--{option.replace('_', '-')}={value}")
    for flag in ("background_subtracted", "no_mask_contaminants", "no_field_check", "no_check",
                 "overwrite", "plot"):
        if getattr(args, flag, False):
            words.append(f"--{flag.replace('_', '-')}")
    return shlex.join(words)


def progress_bar(args, total):
    """A tqdm bar over ``total`` files on stderr (shown as `show_progress` says)."""
    from tqdm.auto import tqdm

    from ..batch import show_progress as shown

    return tqdm(total=total, disable=not shown(show_progress(args)), unit="file",
                file=sys.stderr)


def show_progress(args):
    """``progress`` for the public classes: off with --no-progress, else on a terminal."""
    return False if args.no_progress else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``astro-delens predict`` to ``parser``."""
    add_input_arguments(parser)
    parser.add_argument("-o", "--output", required=True, metavar="TABLE",
                        help="output ECSV table (one row per file that succeeded)")
    parser.add_argument("--no-field-check", action="store_true",
                        help="skip the check that theta_E does not depend on objects far from "
                             "the lens (astro_delens.fieldcheck; saves four network passes)")
    add_dask_arguments(parser, "the configured partition_size, 256 unless changed")


def add_dask_arguments(parser, partition_size):
    """--workers, --scheduler and --partition-size (shared by predict and reconstruct)."""
    dask = parser.add_argument_group(
        "scale-out on Dask (needs: pip install \"astro_delens[dask]\")")
    dask.add_argument("--workers", type=int, metavar="N", default=None,
                      help="run on a local Dask cluster of N worker processes")
    dask.add_argument("--scheduler", metavar="ADDRESS", default=None,
                      help="run on an existing Dask cluster (e.g. tcp://10.0.0.1:8786, or the "
                           "address of a dask-jobqueue cluster)")
    dask.add_argument("--partition-size", type=int, metavar="N", default=None,
                      help="files per Dask task (default: about four tasks per worker "
                           f"thread, at most {partition_size}; give it to resume a run on a "
                           "cluster of another size)")


def partition_size(args):
    """--partition-size, checked (only with --workers or --scheduler); None when not given."""
    if args.partition_size is None:
        return None
    if args.workers is None and args.scheduler is None:
        raise CommandError("--partition-size: only with --workers or --scheduler")
    if args.partition_size < 1:
        raise CommandError(f"--partition-size: expected a positive integer, "
                           f"got {args.partition_size}")
    return args.partition_size


@contextlib.contextmanager
def dask_client(args, kind):
    """A ``distributed.Client`` for --workers or --scheduler; usage errors raise CommandError.

    The ``kind`` of model of --model ("estimator" or "reconstructor") is checked
    here, before any worker starts.
    """
    from ..nn.registry import ChecksumError, ModelNotFoundError, resolve_model_dir, \
        verify_checksums

    if args.workers is not None and args.scheduler is not None:
        raise CommandError("--workers and --scheduler: give one (a local cluster, or an "
                           "existing one), not both")
    if args.workers is not None and args.workers < 1:
        raise CommandError(f"--workers: expected a positive integer, got {args.workers}")
    try:
        import distributed

        from ..parallel import local_client
    except ImportError:
        raise CommandError("--workers/--scheduler need Dask: pip install "
                           "\"astro_delens[dask]\"") from None
    try:
        verify_checksums(resolve_model_dir(args.model, kind))
    except (ModelNotFoundError, ChecksumError) as exc:
        raise CommandError(str(exc)) from None
    try:
        client = local_client(args.workers) if args.workers is not None \
            else distributed.Client(args.scheduler, timeout="20s")
    except OSError as exc:
        raise CommandError(f"--scheduler: cannot reach {args.scheduler!r} ({exc})") from None
    try:
        yield client
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None and args.workers is not None:
            cluster.close()


def _predict_serial(args, options, report):
    """Estimates of the files in this process (a table, or None when none succeeded)."""
    from ..estimator import LensParameterEstimator
    from ..results import estimates_table

    estimator = load_model(LensParameterEstimator, args, field_check=not args.no_field_check)
    estimates, labels = [], []
    for outcome in estimator.iter_predict(list(args.files), on_error="skip",
                                          progress=show_progress(args),
                                          context=report.warnings_for, **options):
        if outcome.ok:
            estimates.append(outcome.result)
            labels.append(outcome.item.name)
        else:
            report.fail(outcome.item.name, outcome.error)
    return estimates_table(estimates, labels) if estimates else None


def _predict_on_dask(args, options, report):
    """Estimates of the files on a Dask cluster, partitions kept in ``TABLE.parts``."""
    import shutil

    from ..parallel import balanced_partition_size, predict_to_table

    size = partition_size(args)
    parts = f"{args.output}.parts"
    with dask_client(args, "estimator") as client, progress_bar(args, len(args.files)) as bar:
        def on_part(n_inputs, messages, failures):  # failures are reported once, below
            for message in messages:
                report.line(f"warning: {message}")
            bar.update(n_inputs)

        if size is None:
            size = balanced_partition_size(len(args.files), client)
        table, failed = predict_to_table(
            args.files, client=client, parts_dir=parts, model=args.model, partition_size=size,
            estimator_options={"symmetries": args.symmetries,
                               "field_check": not args.no_field_check},
            prepare_options=options, on_part=on_part)
    for name, error in failed.iterrows():
        report.fail(name, error)
    shutil.rmtree(parts, ignore_errors=True)
    return table


def run(args) -> int:
    """Run ``astro-delens predict``; returns the exit status."""
    from ..results import write_table

    if not str(args.output).lower().endswith(".ecsv"):
        raise CommandError(f"--output: expected an .ecsv file name, got {args.output!r}")
    if os.path.exists(args.output) and not args.overwrite:
        raise CommandError(f"--output: {args.output!r} exists; use --overwrite to replace it")
    resolve_settings(args)
    options = prepare_options(args)
    if os.path.exists(failures_path(args.output)):
        os.remove(failures_path(args.output))  # from an earlier run of this table
    report = Reporter("predict")
    if args.workers is None and args.scheduler is None:
        partition_size(args)  # an error when given
        table = _predict_serial(args, options, report)
    else:
        table = _predict_on_dask(args, options, report)
    if table is not None:
        table.meta["command"] = command_line(args, "predict")
        write_table(table, args.output, overwrite=True)
        report.line(f"wrote {len(table)} of {len(args.files)} estimates to {args.output}")
    else:
        report.line("no file could be processed; no table written")
    if report.failed:
        failures = failures_path(args.output)
        write_table(report.failures_table(), failures, overwrite=True)
        report.line(f"the {len(report.failed)} file(s) that failed, and why: {failures}")
    return 1 if report.failed else 0


def failures_path(output):
    """``TABLE.ecsv`` -> ``TABLE.failures.ecsv``: the inputs that failed."""
    return f"{str(output)[:-len('.ecsv')]}.failures.ecsv"
