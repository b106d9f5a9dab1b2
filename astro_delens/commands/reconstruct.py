"""Reconstruct the unlensed sources of FITS images, one FITS file per image.

Each FILE is prepared as for "astro-delens predict", its lens centre estimated
by the parameter network of the same model family, and its source
reconstructed by the source network. DIR/<name>_source.fits holds the source
(flux per source pixel, north up, east left) with a WCS of the source plane
whose reference pixel is the lens centre (a celestial TAN WCS when the input
has one, else offsets in arcsec), and the provenance in its header: model name,
version and SHA-256, and every preprocessing step. Unless --no-check is
given, the source is re-lensed by the estimated lens (lenstronomy, with the
lens light solved linearly) and the model image, lens light and normalised
residuals are added as extensions RELENS_MODEL, LENS_LIGHT and RESIDUALS, with
the reduced chi^2 (RLCHI2) and the flag (RLFLAG, true when the re-lensed
source does not explain the data) in the primary header. With --plot,
DIR/<name>_source.png shows the data, the re-lensed model, the normalised
residuals and the source with the lens's critical curves and caustics (with
--no-check: the data beside the source).

A file that cannot be processed is reported on one line of stderr and
skipped; the exit status is then 1.

examples:
  astro-delens reconstruct lens1.fits lens2.fits --outdir sources/
  astro-delens reconstruct euclid_*.fits --hdu VIS_FLUX --noise VIS_RMS --psf VIS_PSF \\
      --outdir q1_sources --plot
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path


from . import CommandError
from .predict import (
    Reporter,
    add_input_arguments,
    command_line,
    load_model,
    prepare_options,
    show_progress,
)

HELP = "reconstruct the unlensed sources of FITS images into FITS files"


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


def run(args) -> int:
    """Run ``astro-delens reconstruct``; returns the exit status."""
    from ..reconstructor import SourceReconstructor
    from ..results import write_fits

    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise CommandError(f"--outdir: {str(outdir)!r} exists and is not a folder")
    stems = output_names(args.files)
    targets = {f: outdir / f"{s}_source.fits" for f, s in zip(args.files, stems)}
    plots = {f: outdir / f"{s}_source.png" for f, s in zip(args.files, stems)}
    if not args.overwrite:
        existing = [str(p) for p in targets.values() if p.exists()]
        if args.plot:
            existing += [str(p) for p in plots.values() if p.exists()]
        if existing:
            raise CommandError(f"--outdir: {existing[0]!r} exists"
                               + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else "")
                               + "; use --overwrite to replace")
    options = prepare_options(args)
    rec = load_model(SourceReconstructor, args)
    outdir.mkdir(parents=True, exist_ok=True)
    report = Reporter("reconstruct")
    written = 0
    for outcome in rec.iter_reconstruct(list(args.files), on_error="skip", check=False,
                                        progress=show_progress(args),
                                        context=report.warnings_for, **options):
        name, source = outcome.item.name, outcome.result
        if not outcome.ok:
            report.fail(name, outcome.error)
            continue
        source.meta.add_history(f"made by: {command_line(args, 'reconstruct', [name])}")
        try:
            if not args.no_check:
                with report.warnings_for(name):
                    rec.attach_check(source)
            write_fits(source, targets[name], overwrite=True)
            if args.plot:
                source.plot(plots[name])
            written += 1
        except Exception as exc:
            report.fail(name, exc)
    report.line(f"wrote {written} of {len(args.files)} sources to {outdir}")
    return 1 if report.failed else 0
