"""Calibrate the uncertainties of a parameter network on a validation set.

Predicts the validation lenses, measures per parameter the normalised errors
|mean - truth| / sigma, and stores in the model's config.json the factor that
makes each parameter's 1-sigma intervals hold 68.27% of the truths (see
astro_delens.training.calibrate); SHA256SUMS is updated. Use a set that
training did not fit (its validation set), never the test set: evaluate on the
test set afterwards to measure the calibrated coverage. "astro-delens train
estimator" calibrates on its validation set when it finishes.

examples:
  astro-delens calibrate --model runs/survey/estimator --data survey_val.h5
"""

from __future__ import annotations

import argparse
import sys

from . import CommandError

HELP = "calibrate a parameter network's uncertainties on a validation set"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``astro-delens calibrate`` to ``parser``."""
    from . import positive_int

    parser.add_argument("--model", required=True, metavar="DIR", help="estimator model directory")
    parser.add_argument("--data", required=True, metavar="VAL.h5",
                        help="validation set of the model's preset (not the test set)")
    parser.add_argument("--max-samples", type=positive_int("--max-samples"), default=None,
                        help="use only the first N samples")
    parser.add_argument("--field-check-only", action="store_true",
                        help="set only the threshold of the field-dependence check "
                             "(astro_delens.fieldcheck), keeping the uncertainties' calibration")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args) -> int:
    """Run ``astro-delens calibrate``."""
    from ..nn.registry import ChecksumError, ModelNotFoundError, read_config
    from ..training.calibrate import calibrate_estimator, calibrate_field_check

    try:
        kind = read_config(args.model).get("kind")
    except ModelNotFoundError:
        raise CommandError(f"--model: {args.model} is not a model directory "
                           "(no config.json)") from None
    if kind != "estimator":
        raise CommandError(f"--model: {args.model} is a {kind}; only estimators have "
                           "uncertainties to calibrate")

    def log(msg):
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    try:
        calibrate = calibrate_field_check if args.field_check_only else calibrate_estimator
        calibrate(args.model, args.data, max_samples=args.max_samples, log=log)
    except ChecksumError as exc:
        raise CommandError(f"--model: {exc}", exit_code=1) from None
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    return 0
