"""`smoea`'s entry point: parse, dispatch, and turn a user's mistake into one line and exit 2."""

from __future__ import annotations

import signal
import sys

from smoea import distributed, interrupt
from smoea.cli import commands
from smoea.cli.flags import parse_args
from smoea.errors import SmoeaError

COMMANDS = {
    "train": commands.cmd_train,
    "prune": commands.cmd_prune,
    "compare": commands.cmd_compare,
    "evaluate": commands.cmd_evaluate,
    "export": commands.cmd_export,
}


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 2 for a SmoeaError (one line), 130 when interrupted."""
    interrupt.reset()
    commands.resume_hint[0] = ""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    grouped = distributed.init()
    try:
        _run(argv)
        return 0
    except SmoeaError as exc:
        message = " ".join(str(exc).split())  # always one line
        print(f"smoea: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = commands.resume_hint[0]
        resume = f"; the last completed step is saved: resume with {hint}" if hint else ""
        print(f"\nsmoea: interrupted{resume}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if grouped:
            distributed.close()


def _run(argv: list[str] | None) -> None:
    """Run the command; an error after a stop request is the interruption's doing.

    Under torchrun a rank that stopped leaves its peers' collectives failing ("connection
    closed by peer"); a peer whose own KeyboardInterrupt Python dropped inside a finaliser
    then sees only that error, and must still report the interruption, not a traceback.
    """
    try:
        args = parse_args(argv)
        COMMANDS[args.command](args)
    except Exception:
        if interrupt.requested():  # a pending handler may raise KeyboardInterrupt here: same end
            raise KeyboardInterrupt from None
        raise


def _raise_interrupt(signum, frame):
    interrupt.request_stop()
    raise KeyboardInterrupt
