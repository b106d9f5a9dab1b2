"""Evaluate a trained model on a simulated test set.

The kind of model (estimator or reconstructor) is read from its config.json.
Writes REPORT/report.json and figures:

* estimator: per-parameter RMS, bias, RMS / prior std, median absolute
  fractional error of theta_E, mean predicted sigma and the fraction of true
  values inside the predicted 68% and 95% intervals; pred_vs_true.png and
  calibration.png;
* reconstructor: SSIM, PSNR, MSE and relative MSE of the normalised sources
  (data range: the per-image peak of the true normalised source) and the flux
  ratio; examples.png.

Unless --no-card is given, a summary is recorded in the model's config.json
and card.md, and its SHA256SUMS is updated.

examples:
  astro-delens evaluate --model models/survey/estimator --data test.h5 --report reports/est
  astro-delens evaluate --model rec --data test.h5 --report reports/rec --max-samples 500
"""

from __future__ import annotations

import argparse
import sys

from . import CommandError, positive_int
from ..nn.augment import SYMMETRY_COUNTS

HELP = "evaluate a trained model on a test set (metrics, figures, model card)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``astro-delens evaluate`` to ``parser``."""
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="model directory (or a shipped family/kind path)")
    parser.add_argument("--data", required=True, metavar="TEST.h5", help="test set")
    parser.add_argument("--report", required=True, metavar="DIR",
                        help="directory for report.json and the figures")
    parser.add_argument("--max-samples", type=positive_int("--max-samples"), default=None,
                        help="evaluate only the first N samples")
    parser.add_argument("--batch-size", type=positive_int("--batch-size"), default=64,
                        help="network batch size (default: 64)")
    parser.add_argument("--examples", type=positive_int("--examples"), default=6,
                        help="reconstructions in examples.png (default: 6)")
    parser.add_argument("--symmetries", type=int, choices=SYMMETRY_COUNTS, default=None,
                        help="average the answers over this many turns and flips of each "
                             "image (default: 8, as the API does)")
    parser.add_argument("--no-card", action="store_true",
                        help="do not record the results in the model's card")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args) -> int:
    """Run ``astro-delens evaluate``."""
    from ..nn.registry import ChecksumError, ModelNotFoundError, read_config
    from ..training.evaluate import evaluate_model

    try:
        read_config(args.model)
    except ModelNotFoundError:
        raise CommandError(f"--model: {args.model} is not a model directory "
                           "(no config.json)") from None

    def log(msg):
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    try:
        evaluate_model(args.model, args.data, args.report, max_samples=args.max_samples,
                       batch_size=args.batch_size, n_examples=args.examples,
                       update_card=not args.no_card, log=log, symmetries=args.symmetries)
    except ChecksumError as exc:
        raise CommandError(f"--model: {exc}", exit_code=1) from None
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    return 0
