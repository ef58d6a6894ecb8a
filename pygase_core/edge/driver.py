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

from pygase_core.protocol.linksim import Direction, LinkConditioner, LinkConditions

logger = logging.getLogger("pygase")
Held = tuple[bytes, Any]
"""A datagram and its address, as a simulated link holds it."""


class DatagramEndpoint(asyncio.DatagramProtocol):
    """Hands each received datagram to a callback; reports socket errors to the log only.

    An ICMP "port unreachable" surfaces as ``error_received`` on Linux; on the open internet it
    is routine, never a reason to stop serving.

    With ``link`` conditions (see :mod:`pygase_core.protocol.linksim`), datagrams in both
    directions pass through a simulated link first: each direction's conditioner decides their fate
    and holds them, and one timer per direction delivers them when due.
    """

    def __init__(
        self, on_datagram: Callable[[bytes, Any], None], link: LinkConditions | None = None
    ) -> None:
        self._on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None
        self._socket: asyncio.DatagramTransport | None = None
        self._link: LinkConditions | None = None
        self._outgoing: LinkConditioner[Held] | None = None
        self._incoming: LinkConditioner[Held] | None = None
        self._out_timer: DeadlineTimer | None = None
        self._in_timer: DeadlineTimer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        if link is not None:
            self.link = link

    @property
    def link(self) -> LinkConditions | None:
        """The simulated link's conditions (None: none).

        Settable, also while running, for tests that change the network midway; datagrams
        already held keep their delivery times.
        """
        return self._link

    @link.setter
    def link(self, conditions: LinkConditions | None) -> None:
        self._link = conditions
        out_dir = conditions.outgoing if conditions is not None else Direction()
        in_dir = conditions.incoming if conditions is not None else Direction()
        if self._outgoing is None or self._incoming is None:
            out_rng, in_rng = (conditions or LinkConditions()).generators()
            self._outgoing = LinkConditioner(out_dir, out_rng)
            self._incoming = LinkConditioner(in_dir, in_rng)
        else:
            self._outgoing.conditions = out_dir
            self._incoming.conditions = in_dir

    @property
    def conditioners(self) -> tuple[LinkConditioner[Held] | None, LinkConditioner[Held] | None]:
        """The simulated link's ``(outgoing, incoming)`` halves, for their counters."""
        return self._outgoing, self._incoming

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._socket = cast(asyncio.DatagramTransport, transport)
        self.transport = _FlushingTransport(self._socket, self._flush_outgoing)
        self._loop = loop = asyncio.get_running_loop()
        self._out_timer = DeadlineTimer(loop, self._deliver_outgoing)
        self._in_timer = DeadlineTimer(loop, self._deliver_incoming)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._out_timer, self._in_timer):
            if timer is not None:
                timer.cancel()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        incoming, timer = self._incoming, self._in_timer
        if incoming is None or timer is None or incoming.idle:
            self._handle(data, addr)
            return
        incoming.push((data, addr), self._now())
        timer.arm(incoming.next_due())

    def _handle(self, data: bytes, addr: Any) -> None:
        try:
            self._on_datagram(data, addr)
        except Exception:  # the I/O loop must survive anything a datagram triggers
            logger.exception("unexpected error while handling a datagram from %s", addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("socket error: %s", exc)

    def send(self, data: bytes, addr: Any = None) -> None:
        """Send a datagram if the socket is still open."""
        outgoing, timer = self._outgoing, self._out_timer
        if outgoing is None or timer is None or outgoing.idle:
            self._sendto(data, addr)
            return
        outgoing.push((data, addr), self._now())
        timer.arm(outgoing.next_due())

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _sendto(self, data: bytes, addr: Any) -> None:
        if self._socket is not None and not self._socket.is_closing():
            self._socket.sendto(data, addr)

    def _deliver_outgoing(self) -> None:
        outgoing, timer = self._outgoing, self._out_timer
        if outgoing is None or timer is None:
            return
        for data, addr in outgoing.pop_due(self._now()):
            self._sendto(data, addr)
        timer.arm(outgoing.next_due())

    def _deliver_incoming(self) -> None:
        incoming, timer = self._incoming, self._in_timer
        if incoming is None or timer is None:
            return
        for data, addr in incoming.pop_due(self._now()):
            self._handle(data, addr)
        timer.arm(incoming.next_due())

    def _flush_outgoing(self) -> None:
        """Send what the simulated link still holds before the socket closes.

        A real network would deliver those datagrams (a farewell disconnect among them) after
        the socket closed; sending them early is closer to that than losing them.
        """
        if self._outgoing is not None:
            for data, addr in self._outgoing.pop_all():
                self._sendto(data, addr)


class _FlushingTransport(asyncio.DatagramTransport):
    """The socket's transport as the endpoint's owner sees it: closing flushes the link first."""

    def __init__(self, inner: asyncio.DatagramTransport, before_close: Callable[[], None]) -> None:
        super().__init__()
        self._inner = inner
        self._before_close = before_close

    def sendto(self, data: Any, addr: Any = None) -> None:
        self._inner.sendto(data, addr)

    def abort(self) -> None:
        self._inner.abort()

    def close(self) -> None:
        if not self._inner.is_closing():
            self._before_close()
        self._inner.close()

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)


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
