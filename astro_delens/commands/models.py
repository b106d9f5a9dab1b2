"""List the trained models shipped with astro_delens, with their model cards.

A model family (e.g. "survey", "seed") holds a parameter estimator and a
source reconstructor trained on one simulation preset; pass its name to
``astro-delens predict --model`` / ``reconstruct --model``, or to
`astro_delens.nn.registry.load_estimator`. With --verify, the SHA-256
checksum of every file is checked (exit status 1 if one fails).

examples:
  astro-delens models
  astro-delens models --full
  astro-delens models --json
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "list the shipped models and their cards"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``astro-delens models`` to ``parser``."""
    parser.add_argument("--full", action="store_true", help="print the complete model cards")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--verify", action="store_true",
                        help="check the SHA-256 checksums of every shipped file")
    parser.add_argument("--models-dir", metavar="DIR", default=None,
                        help="list the families in DIR instead of the shipped ones")


def _summary(card):
    t = card.get("training") or {}
    ev = card.get("evaluation") or {}
    parts = [f"preset {card.get('preset')}"]
    if t:
        parts.append(f"trained on {t.get('n_train')} lenses, {t.get('epochs_run')} epochs")
    if ev.get("summary"):
        parts.append(ev["summary"])
    elif not ev:
        parts.append("not evaluated")
    return "; ".join(str(p) for p in parts)


def run(args) -> int:
    """Run ``astro-delens models``."""
    from ..nn.registry import ChecksumError, list_models, verify_checksums

    families = list_models(args.models_dir)
    status = 0
    if args.verify:
        for fam in families:
            for kind, card in fam["models"].items():
                try:
                    verify_checksums(card["path"])
                    card["verified"] = True
                except ChecksumError as exc:
                    card["verified"] = False
                    card["error"] = str(exc)
                    status = 1
    if args.json:
        print(json.dumps(families, indent=2, default=str))
        return status
    if not families:
        print("No trained models are shipped with this installation yet. Train one with "
              "'astro-delens train' and load it by its directory.")
        return 0
    for fam in families:
        print(f"{fam['name']}  ({fam['path']})")
        for kind, card in fam["models"].items():
            if "error" in card and not args.verify:
                print(f"  {kind}: unreadable ({card['error']})")
                continue
            line = f"  {kind}: {_summary(card)}"
            if args.verify:
                line += "  [checksums OK]" if card.get("verified") else f"  [{card['error']}]"
            print(line)
            if args.full and card.get("markdown"):
                print()
                for text in card["markdown"].rstrip().splitlines():
                    print(f"    {text}")
                print()
    sys.stdout.flush()
    return status
