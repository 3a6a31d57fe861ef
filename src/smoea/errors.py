"""The one exception type that means 'the user asked for something we cannot do'."""


class SmoeaError(Exception):
    """A user mistake or bad input: the CLI prints its message on one line and exits with 2."""
