"""Which event loop pygase runs its own network loops on: uvloop when installed, else asyncio.

uvloop (``pip install "pygase[fast]"``) implements the asyncio event loop on libuv, in C: its
datagram transport, timers and wakeups cost the server a fraction of the Python loop's, which
is what a busy server spends most of its time in besides the socket calls themselves (see
bench/README.md for the two side by side). It is chosen automatically wherever pygase creates
a loop of its own (``Server.run`` and ``run_in_thread``, ``Client.connect`` and
``connect_in_thread``, the bots); coroutine forms such as ``Server.run_async`` run on whatever
loop the program runs. Game loops and handler threads stay on asyncio: they mostly sleep.

The environment variable ``PYGASE_EVENT_LOOP`` decides: ``auto`` (the default: uvloop if it
can be imported), ``asyncio`` (never uvloop) or ``uvloop`` (required: an error if missing).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from pygase_core.errors import UsageError

__all__ = ["ENVIRONMENT_VARIABLE", "event_loop_kind", "run"]

ENVIRONMENT_VARIABLE = "PYGASE_EVENT_LOOP"
_CHOICES = ("auto", "asyncio", "uvloop")
T = TypeVar("T")


def _uvloop() -> Any:
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return uvloop


def event_loop_kind() -> str:
    """``"uvloop"`` or ``"asyncio"``: what :func:`run` uses now, by ``PYGASE_EVENT_LOOP``.

    Raises:
        UsageError: if the variable names no known choice, or asks for uvloop that is not
            installed.
    """
    choice = os.environ.get(ENVIRONMENT_VARIABLE, "auto").strip().lower() or "auto"
    if choice not in _CHOICES:
        raise UsageError(
            f"{ENVIRONMENT_VARIABLE}={choice!r}: expected one of {', '.join(_CHOICES)}"
        )
    if choice == "asyncio":
        return "asyncio"
    if _uvloop() is not None:
        return "uvloop"
    if choice == "uvloop":
        raise UsageError(
            f"{ENVIRONMENT_VARIABLE}=uvloop, but uvloop is not installed"
            ' (pip install "pygase[fast]")'
        )
    return "asyncio"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a new event loop of the chosen kind (like ``asyncio.run``)."""
    try:
        kind = event_loop_kind()
    except UsageError:
        main.close()
        raise
    if kind == "uvloop":
        result: T = _uvloop().run(main)
        return result
    return asyncio.run(main)
