"""The ``astro-delens`` command line: a thin dispatcher over `astro_delens.commands`.

Each sub-command lives in its own module of `astro_delens.commands` that defines
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. The
dispatcher turns expected failures into one line on stderr and an exit status,
never a traceback:

* 0 success; 1 the command ran but (some of) its work failed;
* 2 usage errors (bad options, bad input named by the message).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .commands import CommandError

__all__ = ["main", "CommandError"]

#: sub-command name -> module under astro_delens.commands
COMMANDS = {
    "simulate": "simulate",
    "train": "train",
    "evaluate": "evaluate",
    "calibrate": "calibrate",
    "models": "models",
    "predict": "predict",
    "reconstruct": "reconstruct",
    "demo": "demo",
}


#: Sub-commands that run networks (Keras' backend is started before them).
NETWORK_COMMANDS = ("train", "evaluate", "calibrate", "predict", "reconstruct", "demo")


def _start_backend_quietly():
    """Start Keras' backend with its C++ start-up lines kept off the terminal.

    TensorFlow prints "Could not find cuda drivers" and "failed call to cuInit:
    ... UNKNOWN ERROR (303)" on every machine without a GPU, before its log
    level applies; users read them as failures. Python errors still show.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras

        keras.ops.convert_to_numpy(keras.ops.zeros(1))  # the device start-up logs too
    except Exception:  # the command itself reports a broken backend when it needs it
        pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _available_commands():
    found = {}
    for name, module in COMMANDS.items():
        try:
            found[name] = importlib.import_module(f"astro_delens.commands.{module}")
        except ModuleNotFoundError as exc:  # a command not built yet
            if exc.name != f"astro_delens.commands.{module}":
                raise
    return found


def build_parser():
    """The argument parser of ``astro-delens`` with every available sub-command."""
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="astro-delens",
        description="Strong-lens parameter estimation and source reconstruction.",
    )
    parser.add_argument("--version", action="version", version=f"astro-delens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _available_commands().items():
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    """Run ``astro-delens`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    if args.command in NETWORK_COMMANDS:
        _start_backend_quietly()
    try:
        return int(args._run(args) or 0)
    except CommandError as exc:
        print(f"astro-delens {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (ValueError, TypeError, OSError) as exc:
        print(f"astro-delens {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"astro-delens {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
