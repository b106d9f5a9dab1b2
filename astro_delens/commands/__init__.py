"""The sub-commands of ``astro-delens``, one module each (see `astro_delens.cli`)."""

import argparse


class CommandError(Exception):
    """An expected failure of a sub-command; `astro_delens.cli.main` returns ``exit_code``."""

    def __init__(self, message, exit_code=2):
        super().__init__(message)
        self.exit_code = exit_code


def positive_int(name):
    """An argparse ``type`` accepting positive integers, naming the option ``name`` otherwise."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name}: expected a positive integer, got {text!r}")
        return value

    return parse
