"""A stop request that survives Python dropping an exception raised inside a finaliser.

The CLI's SIGTERM/Ctrl-C handler raises KeyboardInterrupt where the main thread happens to be;
if that is inside a `__del__` (tqdm bars, tensors being collected), Python prints and drops it.
The handler therefore also records the request, and long loops call `check()` at safe points.
"""

from __future__ import annotations

_requested = [False]


def request_stop() -> None:
    _requested[0] = True


def reset() -> None:
    _requested[0] = False


def requested() -> bool:
    return _requested[0]


def check() -> None:
    """Raise KeyboardInterrupt if a stop was requested and not acted on yet."""
    if requested():
        raise KeyboardInterrupt
