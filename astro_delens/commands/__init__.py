"""The sub-commands of ``astro-delens``, one module each (see `astro_delens.cli`)."""


class CommandError(Exception):
    """An expected failure of a sub-command; `astro_delens.cli.main` returns ``exit_code``."""

    def __init__(self, message, exit_code=2):
        super().__init__(message)
        self.exit_code = exit_code
