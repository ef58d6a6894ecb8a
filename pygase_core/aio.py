"""The asyncio edge shared by Server and Client: a datagram protocol, a deadline timer, threads.

The protocol logic lives in sans-IO classes; this module only moves their bytes through one
asyncio ``DatagramProtocol`` per endpoint and wakes them with one timer per endpoint, re-armed to
the earliest deadline they report. No per-connection tasks, no polling loops.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any, cast

logger = logging.getLogger("pygase")


class DatagramEndpoint(asyncio.DatagramProtocol):
    """Hands each received datagram to a callback; reports socket errors to the log only.

    An ICMP "port unreachable" surfaces as ``error_received`` on Linux; on the open internet it
    is routine, never a reason to stop serving.
    """

    def __init__(self, on_datagram: Callable[[bytes, Any], None]) -> None:
        self._on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self._on_datagram(data, addr)
        except Exception:  # the I/O loop must survive anything a datagram triggers
            logger.exception("unexpected error while handling a datagram from %s", addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("socket error: %s", exc)

    def send(self, data: bytes, addr: Any = None) -> None:
        """Send a datagram if the socket is still open."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)


class DeadlineTimer:
    """One ``call_at`` handle, moved to the earliest deadline anyone asks for."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._when: float | None = None

    def _fire(self) -> None:
        self._handle = None
        self._when = None
        self._callback()

    def arm(self, when: float | None) -> None:
        """Make sure the callback runs no later than ``when`` (None: nothing to do)."""
        if when is None or (self._when is not None and self._when <= when):
            return
        self.cancel()
        self._when = when
        self._handle = self._loop.call_at(max(when, self._loop.time()), self._fire)

    def reset(self, when: float | None) -> None:
        """Replace the deadline, also with a later one."""
        self.cancel()
        self.arm(when)

    def cancel(self) -> None:
        """Drop the pending deadline."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._when = None


def on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the calling thread is running ``loop``."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def call_on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    """Run ``fn`` on the loop: directly from its own thread, else through a thread-safe call."""
    if on_loop_thread(loop):
        fn(*args)
    else:
        loop.call_soon_threadsafe(fn, *args)


def resolve(hostname: str, port: int) -> list[tuple[int, Any]]:
    """Resolve a UDP address: ``(family, sockaddr)`` pairs, IPv4 first for a stable choice.

    Server and client use the same order, so ``localhost`` means the same socket on both ends
    even where it also resolves to ``::1``.
    """
    infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_DGRAM)
    seen: list[tuple[int, Any]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if (family, sockaddr) not in seen:
            seen.append((family, sockaddr))
    seen.sort(key=lambda pair: 0 if pair[0] == socket.AF_INET else 1)
    return seen


def run_in_thread(
    name: str,
    main: Callable[[threading.Event], Coroutine[Any, Any, None]],
    daemon: bool,
    ready_timeout: float | None = None,
) -> tuple[threading.Thread, list[BaseException]]:
    """Run ``main(ready)`` in a new thread with its own event loop; wait until it sets ``ready``.

    Returns the thread and a list that holds the exception ``main`` raised, if it ended with one
    before (or after) becoming ready, so the caller can re-raise it in its own thread.
    """
    ready = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(main(ready))
        except BaseException as error:  # handed over to the starting thread
            failure.append(error)
            logger.debug("%s ended with %r", name, error)
        finally:
            ready.set()

    thread = threading.Thread(target=target, name=name, daemon=daemon)
    thread.start()
    ready.wait(ready_timeout)
    return thread, failure
