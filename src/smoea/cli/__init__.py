"""The `smoea` command line: flags (generated from the config dataclasses), commands, main.

The engine (pipeline, search, evaluator, ...) never imports this package.
"""

from smoea.cli.flags import build_parser, parse_args
from smoea.cli.main import main

__all__ = ["build_parser", "main", "parse_args"]
