"""The handler thread: game logic callbacks run here, in order, off the network I/O loop.

Event handlers, join and leave handlers and ack callbacks are the game's code, and the game's
code may be slow. Run on the I/O loop, one slow handler would freeze every client's acks,
keep-alives and state. A :class:`HandlerThread` runs them on a thread of their own, one at a
time in the order they were submitted, with an event loop of its own for coroutine handlers;
a callback that takes longer than ``overrun_after`` is logged with its duration, and failures
are logged without flooding (see :class:`~pygase_core.model.failurelog.FailureLog`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from pygase_core.edge.calls import LoopCalls
from pygase_core.model.failurelog import FailureLog

__all__ = ["EventCallbacks", "HandlerThread"]

logger = logging.getLogger("pygase")
T = TypeVar("T")


class HandlerThread:
    """One thread with its own event loop that runs submitted callbacks in order."""

    def __init__(self, name: str, *, overrun_after: float = 0.1) -> None:
        self.name = name
        self.overrun_after = overrun_after
        self.failures = FailureLog(logger)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._calls: LoopCalls | None = None
        """Submissions queue here: a burst of them wakes the thread once."""
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Future[None] | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def running(self) -> bool:
        """Whether the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (again, after :meth:`stop`); returns once it can take callbacks."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive() and not self._stopping:
            return
        # A thread that is stopping finishes on its own (it runs nothing new): a fresh one
        # starts beside it, so the caller (often the network loop) never waits for it.
        self._stopping = False
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name=self.name, daemon=True
        )
        self._thread.start()
        ready.wait()

    def _main(self, ready: threading.Event) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._calls = LoopCalls(self._loop)
            self._stop = self._loop.create_future()
            ready.set()
            await self._stop
            if self._tasks:  # coroutine handlers still running get a moment to finish
                await asyncio.wait(set(self._tasks), timeout=1.0)

        loop_of_this_run: list[asyncio.AbstractEventLoop | None] = [None]

        async def tracked() -> None:
            loop_of_this_run[0] = asyncio.get_running_loop()
            await main()

        try:
            asyncio.run(tracked())
        finally:
            with self._lock:
                if self._loop is loop_of_this_run[0]:
                    self._loop = None
                    self._calls = None
            ready.set()

    def submit(self, fn: Callable[..., Any], *args: Any, what: str = "") -> bool:
        """Run ``fn(*args)`` on the thread after everything submitted before; False if stopped."""
        with self._lock:
            calls = self._calls
            if self._loop is None or calls is None or self._stopping:
                return False
            return calls.submit(self._run, fn, args, what or _describe(fn))

    def run_coroutine(
        self, coroutine: Coroutine[Any, Any, T], *, start: bool = False
    ) -> concurrent.futures.Future[T]:
        """Run a coroutine on the thread's loop; its future resolves in any thread.

        With ``start`` the thread is started (again) if it is not running or is stopping.
        """
        with self._lock:
            if start and (self._loop is None or self._stopping):
                self._start_locked()
            loop = self._loop
            if loop is None or self._stopping:
                coroutine.close()
                raise RuntimeError(f"{self.name} is not running")
            return asyncio.run_coroutine_threadsafe(coroutine, loop)

    def stop_if(self, idle: Callable[[], bool]) -> bool:
        """End the thread if ``idle()`` holds, decided atomically with anything submitted.

        For a thread that stops itself when it has nothing to do (a room nobody is in):
        whoever submits work first and then calls :meth:`run_coroutine` with ``start`` either
        sees the thread stopping and starts a new one, or made ``idle()`` false in time.
        """
        with self._lock:
            if not idle() or self._loop is None or self._stopping:
                return False
            self._stopping = True
            self._resolve_after_queued()
            return True

    def _resolve_after_queued(self) -> None:
        """End this run of the thread once everything submitted before has run (lock held)."""
        if self._calls is not None:
            self._calls.submit(_resolve, self._stop)

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], what: str) -> None:
        started = time.monotonic()
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(lambda done: self._finished(done, what))
        except Exception as error:
            self.failures.failed(what, error)
        took = time.monotonic() - started
        if took > self.overrun_after:
            self.failures.overran(what, took, self.overrun_after)

    def _finished(self, task: asyncio.Task[Any], what: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            assert error is not None
            self.failures.failed(what, error)

    def stop(self, timeout: float = 5.0) -> None:
        """Run what was submitted so far, then end the thread; waits up to ``timeout``."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is not None:
                self._stopping = True
                self._resolve_after_queued()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.failures.flush()


def _resolve(future: asyncio.Future[None] | None) -> None:
    """End one run of the thread (its own stop future, on its own loop)."""
    if future is not None and not future.done():
        future.set_result(None)


def _describe(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


@dataclass(frozen=True)
class EventCallbacks:
    """What a sent event carries through the protocol, to be called back when it settles."""

    on_ack: Callable[..., Any] | None
    on_failure: Callable[..., Any] | None

    @classmethod
    def of(
        cls, on_ack: Callable[..., Any] | None, on_failure: Callable[..., Any] | None
    ) -> EventCallbacks | None:
        """The callbacks to carry (None if there are none); raises TypeError at the caller."""
        for name, callback in (("ack_callback", on_ack), ("failure_callback", on_failure)):
            if callback is not None and not callable(callback):
                raise TypeError(f"{name} must be callable or None, not {callback!r}")
        if on_ack is None and on_failure is None:
            return None
        return cls(on_ack, on_failure)
