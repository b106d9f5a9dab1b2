"""Train a lens-parameter network (estimator) or a source network (reconstructor).

Batches are streamed from the HDF5 files made by ``astro-delens simulate``,
augmented on the fly by random flips and quarter turns, and normalised exactly
as at inference. The output directory becomes a model directory (config.json,
model.weights.h5, card.md, SHA256SUMS, history.csv) that ``astro-delens
evaluate``, ``predict`` and ``reconstruct`` can use.

The state of the last finished epoch is kept in OUT/.training/: if training is
interrupted, running the same command again resumes it. The model keeps the
weights of the epoch with the lowest validation loss; with --keep-epochs every
epoch's weights are kept in OUT/epochs/ as well, and
astro_delens.training.train.select_epoch makes the model use another one.

--config takes a JSON object (inline or a file name) of architecture
hyperparameters, e.g. '{"widths": [32, 64, 128, 192]}' (estimator) or
'{"base_width": 24}' (reconstructor), and optionally training ones: "loss"
({"beta": 0.5, "weights": [8 per-parameter weights]} for the estimator,
{"alpha": 0.1} for the reconstructor),
"mask_probability", "lens_light_removal" (the probability of training on a
lens with its light subtracted), "weight_decay", "global_clipnorm",
"warmup_epochs", "freeze_batchnorm" (true: batch normalisation keeps its
stored statistics, for fine-tuning a trained network with --init).
With --init, an estimator may grow: '{"keypoints": 16}' adds a keypoint
branch to its head, '{"cascade": true}' a second network that sees the image
re-centred on the first one's answer and corrects it (the first is frozen).
The word "tiny" selects a tiny network, for smoke tests.

examples:
  astro-delens train estimator --train train.h5 --val val.h5 --out models/survey/estimator
  astro-delens train reconstructor --train train.h5 --val val.h5 --out rec --epochs 30
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from . import CommandError

HELP = "train a parameter estimator or a source reconstructor on simulated lenses"


def _positive_int(name):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: expected a positive integer, "
                                             f"got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name}: expected a positive integer, got {text!r}")
        return value

    return parse


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"--seed: expected a non-negative integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--lr: expected a positive number, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``astro-delens train`` to ``parser``."""
    parser.add_argument("kind", choices=["estimator", "reconstructor"],
                        help="which network to train")
    parser.add_argument("--train", required=True, nargs="+", metavar="TRAIN.h5",
                        help="training set: one file, or several of the same preset (e.g. two "
                             "simulation runs with different seeds) read as one")
    parser.add_argument("--val", required=True, metavar="VAL.h5",
                        help="validation set (same preset)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output model directory")
    parser.add_argument("--config", metavar="JSON",
                        help="hyperparameters: a JSON object, a JSON file, or 'tiny'")
    parser.add_argument("--epochs", type=_positive_int("--epochs"), default=50,
                        help="maximum number of epochs (default: 50)")
    parser.add_argument("--batch-size", type=_positive_int("--batch-size"), default=32,
                        help="batch size (default: 32)")
    parser.add_argument("--lr", type=_positive_float, default=1e-3,
                        help="peak learning rate (default: 1e-3)")
    parser.add_argument("--lr-schedule", choices=["cosine", "plateau", "constant"],
                        default="cosine",
                        help="cosine decay after a one-epoch warm-up (default), halve on "
                             "plateau, or constant")
    parser.add_argument("--seed", type=_non_negative_int, default=0,
                        help="random seed of initialisation, shuffling and augmentation "
                             "(default: 0)")
    parser.add_argument("--max-samples", type=_positive_int("--max-samples"), default=None,
                        help="use only the first N training samples")
    parser.add_argument("--max-val-samples", type=_positive_int("--max-val-samples"),
                        default=None, help="use only the first N validation samples")
    parser.add_argument("--patience", type=_positive_int("--patience"), default=8,
                        help="stop after this many epochs without a better validation loss "
                             "(default: 8)")
    parser.add_argument("--no-augment", action="store_true",
                        help="do not flip and rotate the training samples")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the contents of --out")
    parser.add_argument("--init", metavar="MODEL_DIR",
                        help="start from this model's weights (same kind, and a preset "
                             "with the same grids; its architecture and normalisation are "
                             "kept), e.g. to continue training a model on more data or to "
                             "fine-tune a survey model on the sky preset")
    parser.add_argument("--keep-epochs", action="store_true",
                        help="also keep the weights after every epoch in OUT/epochs/, to "
                             "choose another epoch than the one of the lowest validation "
                             "loss afterwards (astro_delens.training.train.select_epoch)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch output")


def parse_config(text, kind):
    """Turn the --config value into a dict (JSON object, JSON file, or 'tiny')."""
    if text is None:
        return {}
    if text.strip() == "tiny":
        from ..nn import architectures

        return dict(architectures.TINY_ESTIMATOR if kind == "estimator"
                    else architectures.TINY_RECONSTRUCTOR)
    source = text
    if not text.lstrip().startswith("{"):
        path = Path(text)
        if not path.exists():
            raise CommandError(f"--config: {text!r} is neither a JSON object nor an existing file")
        source = path.read_text()
    try:
        config = json.loads(source)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--config: invalid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise CommandError("--config: expected a JSON object")
    return config


def _command_line(args) -> str:
    """The command line equivalent to ``args`` (recorded in the model's provenance)."""
    words = ["astro-delens", "train", args.kind, "--train", *args.train, "--val", args.val,
             "--out", args.out]
    if args.config is not None:
        words += ["--config", args.config]
    words += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
              "--lr", repr(args.lr), "--lr-schedule", args.lr_schedule, "--seed", str(args.seed),
              "--patience", str(args.patience)]
    if args.max_samples is not None:
        words += ["--max-samples", str(args.max_samples)]
    if args.max_val_samples is not None:
        words += ["--max-val-samples", str(args.max_val_samples)]
    if args.no_augment:
        words.append("--no-augment")
    if args.init is not None:
        words += ["--init", args.init]
    if args.keep_epochs:
        words.append("--keep-epochs")
    return shlex.join(words)


def run(args) -> int:
    """Run ``astro-delens train``."""
    from ..training.train import train_model

    config = parse_config(args.config, args.kind)

    def log(msg):
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    try:
        train_model(
            args.kind, args.train, args.val, args.out, config,
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
            max_samples=args.max_samples, max_val_samples=args.max_val_samples,
            patience=args.patience, lr_schedule=args.lr_schedule,
            augment=not args.no_augment, overwrite=args.overwrite,
            verbose=0 if args.quiet else "auto", log=log,
            command=_command_line(args), init=args.init, keep_epochs=args.keep_epochs,
        )
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    except RuntimeError as exc:
        raise CommandError(str(exc), exit_code=1) from None
    return 0
