"""Calls from other threads into an event loop: in order, with one wakeup for a whole burst.

``loop.call_soon_threadsafe`` writes to the loop's self-pipe on every call: a system call in the
calling thread and a wakeup of the loop for each. A game thread that dispatches ten events and
pushes a state in one tick would wake the network loop eleven times. :class:`LoopCalls` queues
the calls instead and schedules one drain while none is pending; the drain runs everything
queued so far, in the order it was queued, and hands the batch to one runner (the driver sends
the datagrams of a whole batch and re-arms its timer once).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Call", "LoopCalls"]

logger = logging.getLogger("pygase")

Call = tuple[Callable[..., Any], tuple[Any, ...]]
"""A queued call: the function and its arguments."""


def run_each(batch: list[Call]) -> None:
    """The plain runner: call each in turn; one that fails is logged and the rest still run."""
    for fn, args in batch:
        try:
            fn(*args)
        except Exception:
            logger.exception("a call queued to the event loop failed: %r", fn)


class LoopCalls:
    """A queue of calls to one loop, drained in order by a single scheduled callback.

    Args:
        loop: the loop the calls run on.
        runner: takes each drained batch, oldest call first (default: :func:`run_each`).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        runner: Callable[[list[Call]], None] = run_each,
    ) -> None:
        self._loop = loop
        self._runner = runner
        self._lock = threading.Lock()
        self._queued: list[Call] = []
        self._scheduled = False
        self.wakeups = 0
        """How many drains were scheduled (each one write to the loop's self-pipe)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue ``fn(*args)`` from any thread; False if the loop is closed (nothing queued)."""
        with self._lock:
            self._queued.append((fn, args))
            if self._scheduled:
                return True
            self._scheduled = True
            self.wakeups += 1
            try:
                # Under the lock, so a drain cannot run between the flag and the wakeup.
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop closed
                self._queued.clear()
                self._scheduled = False
                return False
        return True

    def _drain(self) -> None:
        with self._lock:
            batch, self._queued = self._queued, []
            self._scheduled = False
        if batch:
            self._runner(batch)
