"""Reconstruct the unlensed sources of FITS images, one FITS file per image.

Each FILE is prepared as for "astro-delens predict", its lens centre estimated
by the parameter network of the same model family, and its source
reconstructed by the source network (or, with --method inversion, by a
regularised pixelated inversion at the estimated lens). DIR/<name>_source.fits
holds the source (flux per source pixel, north up, east left) with a WCS of the
source plane whose reference pixel is the lens centre (a celestial TAN WCS
when the input has one, else offsets in arcsec), and the provenance in its
header: model name, version and SHA-256, and every preprocessing step. Unless
--no-check is given, the source is re-lensed by the estimated lens
(lenstronomy, with the lens light solved linearly; for an inversion, its own
fit) and the model image, lens light and normalised
residuals are added as extensions RELENS_MODEL, LENS_LIGHT and RESIDUALS, with
the reduced chi^2 (RLCHI2) and the flag (RLFLAG, true when the re-lensed
source does not explain the data) in the primary header. With --plot,
DIR/<name>_source.png shows the data, the re-lensed model, the normalised
residuals and the source with the lens's critical curves and caustics (with
--no-check: the data beside the source).

A file that cannot be processed is reported on one line of stderr and
skipped; the exit status is then 1. --skip-existing leaves out the files
already reconstructed in DIR, to finish an interrupted run. With --workers N
or --scheduler ADDRESS the files are shared out on a Dask cluster; each worker
writes its files into DIR (which the workers must see).

examples:
  astro-delens reconstruct lens1.fits lens2.fits --outdir sources/
  astro-delens reconstruct euclid_*.fits --hdu VIS_FLUX --noise VIS_RMS --psf VIS_PSF \\
      --outdir q1_sources --plot
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from pathlib import Path


from . import CommandError
from .predict import (
    Reporter,
    add_dask_arguments,
    add_input_arguments,
    command_line,
    dask_client,
    load_model,
    partition_size,
    prepare_options,
    progress_bar,
    resolve_settings,
    show_progress,
)

HELP = "reconstruct the unlensed sources of FITS images into FITS files"

#: Files per Dask task of ``--workers`` / ``--scheduler``.
PARTITION_SIZE = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``astro-delens reconstruct`` to ``parser``."""
    add_input_arguments(parser)
    parser.add_argument("--outdir", required=True, metavar="DIR",
                        help="output folder (created if needed)")
    parser.add_argument("--plot", action="store_true",
                        help="also write a PNG figure (data and source) per file")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the re-lensing check (by default the source is re-lensed "
                             "by the estimated lens with lenstronomy and the model, lens light "
                             "and normalised residuals are added to the FITS file as "
                             "extensions RELENS_MODEL, LENS_LIGHT and RESIDUALS, with the "
                             "reduced chi^2 and the flag in the primary header)")
    parser.add_argument("--method", choices=("network", "inversion"), default="network",
                        help="where the source comes from: the source network (default, "
                             "fast) or a regularised pixelated inversion at the estimated "
                             "lens, solved with the lens light (lenstronomy ray tracing; "
                             "5-15 CPU seconds per file; its fit is the check)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="leave out the files whose source FITS file is already in DIR "
                             "(to finish an interrupted run)")
    add_dask_arguments(parser, PARTITION_SIZE)


def output_names(files):
    """``<stem>`` per input file, unique (a suffix -2, -3, ... on repeats)."""
    names, seen = [], {}
    for f in files:
        base = re.sub(r"\[[^\]]*\]$", "", os.fspath(f))
        stem = Path(base).name
        for ext in (".fits.gz", ".fits.fz", ".fits", ".fit", ".fts"):
            if stem.lower().endswith(ext):
                stem = stem[: -len(ext)]
                break
        count = seen.get(stem, 0) + 1
        seen[stem] = count
        names.append(stem if count == 1 else f"{stem}-{count}")
    return names


def write_source(rec, source, target, plot, command, check):
    """Record ``command``, run the re-lensing check, write the FITS file and the figure."""
    from ..results import write_fits

    source.meta.add_history(f"made by: {command}")
    if check:
        source = rec.attach_check(source)
    write_fits(source, target, overwrite=True)
    if plot is not None:
        source.plot(plot)


def write_sources(rec, jobs, options, check, progress=False, context=None):
    """Reconstruct and write the files of ``jobs``; yield ``(file, error or None)`` of each.

    ``jobs`` holds ``(file, target, plot or None, command)``; ``context`` as
    `astro_delens.batch.run`, also entered around each file's writing.
    """
    context = context or (lambda name: contextlib.nullcontext())
    by_file = {job[0]: job for job in jobs}
    # an inversion's check is its own fit, made with the source; the network's
    # source is checked file by file as it is written
    inline = rec.method == "inversion"
    for outcome in rec.iter_reconstruct(list(by_file), on_error="skip", check=check and inline,
                                        progress=progress, context=context, **options):
        name, error = outcome.item.name, outcome.error
        if outcome.ok:
            try:
                with context(name):
                    write_source(rec, outcome.result, *by_file[name][1:],
                                 check=check and not inline)
            except Exception as exc:  # one bad file never stops the batch
                error = f"{type(exc).__name__}: {exc}"
        yield name, error


def reconstruct_part(jobs, model, symmetries, options, check, method="network"):
    """Reconstruct and write one partition's files (on a Dask worker).

    Returns the ``(file, error or None)`` of each job (see `write_sources`) and
    the warnings raised, one line each.
    """
    import warnings

    from ..parallel import cached_model, warning_lines
    from ..reconstructor import SourceReconstructor

    rec = cached_model(SourceReconstructor, model, {"symmetries": symmetries, "method": method})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        done = list(write_sources(rec, jobs, options, check))
    return done, warning_lines(caught)


def _reconstruct_serial(args, jobs, options, report):
    """Run the jobs in this process; returns the number of files written."""
    from ..reconstructor import SourceReconstructor

    rec = load_model(SourceReconstructor, args, method=args.method)
    written = 0
    for name, error in write_sources(rec, jobs, options, not args.no_check,
                                     show_progress(args), report.warnings_for):
        if error is None:
            written += 1
        else:
            report.fail(name, error)
    return written


def _reconstruct_on_dask(args, jobs, options, report):
    """Run the jobs on a Dask cluster; returns the number of files written."""
    from ..parallel import balanced_partition_size, partitions

    size = partition_size(args)
    written = 0
    with dask_client(args, "reconstructor") as client, progress_bar(args, len(jobs)) as bar:
        from distributed import as_completed

        if size is None:
            size = balanced_partition_size(len(jobs), client, PARTITION_SIZE)
        futures = [client.submit(reconstruct_part, part, args.model, args.symmetries, options,
                                 not args.no_check, args.method, pure=False)
                   for part in partitions(jobs, size)]
        for future in as_completed(futures):
            done, messages = future.result()
            bar.update(len(done))
            for message in messages:
                report.line(f"warning: {message}")
            for name, error in done:
                if error is None:
                    written += 1
                else:
                    report.fail(name, error)
    return written


def run(args) -> int:
    """Run ``astro-delens reconstruct``; returns the exit status."""
    resolve_settings(args)
    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise CommandError(f"--outdir: {str(outdir)!r} exists and is not a folder")
    stems = output_names(args.files)
    targets = {f: outdir / f"{s}_source.fits" for f, s in zip(args.files, stems)}
    plots = {f: outdir / f"{s}_source.png" for f, s in zip(args.files, stems)}
    if args.skip_existing:
        skipped = {f for f in args.files if targets[f].exists()}
    else:
        skipped = set()
        if not args.overwrite:
            existing = [str(p) for p in targets.values() if p.exists()]
            if args.plot:
                existing += [str(p) for p in plots.values() if p.exists()]
            if existing:
                raise CommandError(
                    f"--outdir: {existing[0]!r} exists"
                    + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else "")
                    + "; use --overwrite to replace, or --skip-existing to keep")
    todo = [f for f in dict.fromkeys(args.files) if f not in skipped]
    options = prepare_options(args)
    outdir.mkdir(parents=True, exist_ok=True)
    report = Reporter("reconstruct")
    if skipped:
        report.line(f"{len(skipped)} file(s) already reconstructed in {outdir}: skipped")
    jobs = [(f, targets[f], plots[f] if args.plot else None,
             command_line(args, "reconstruct", [f])) for f in todo]
    if args.workers is not None or args.scheduler is not None:
        written = _reconstruct_on_dask(args, jobs, options, report)
    else:
        partition_size(args)  # an error when given
        written = _reconstruct_serial(args, jobs, options, report)
    report.line(f"wrote {written} of {len(args.files)} sources to {outdir}"
                + (f" ({len(skipped)} were there already)" if skipped else ""))
    return 1 if report.failed else 0
