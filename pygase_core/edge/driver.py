"""The asyncio edge shared by Server and Client: one driver per endpoint.

The protocol logic lives in sans-IO classes (``ServerEndpoint`` and ``ClientEndpoint`` in
:mod:`pygase_core.protocol.endpoint`). An :class:`EdgeDriver` owns what they cannot: the event
loop, the datagram socket and one timer. Every input (a datagram, the timer, a call from another
thread) ends in the same :meth:`EdgeDriver.transmit` step, which sends what the protocol produced
and re-arms the one timer to the protocol's next deadline. No per-connection tasks, no polling
loops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Protocol, cast

from pygase_core.edge import loops
from pygase_core.edge.calls import Call, LoopCalls
from pygase_core.errors import AddressResolutionError
from pygase_core.protocol.linksim import (
    Direction,
    LinkConditioner,
    LinkConditions,
    resolve_link,
)

logger = logging.getLogger("pygase")
Held = tuple[bytes, Any]
"""A datagram and its address, as a simulated link holds it."""
Outgoing = Iterable[tuple[bytes, Any]]
"""Datagrams to send, each with its address."""


class DatagramEndpoint(asyncio.DatagramProtocol):
    """Hands each received datagram to a callback; reports socket errors to the log only.

    An ICMP "port unreachable" surfaces as ``error_received`` on Linux; on the open internet it
    is routine, never a reason to stop serving.

    With ``link`` conditions (see :mod:`pygase_core.protocol.linksim`), datagrams in both
    directions pass through a simulated link first: each direction's conditioner decides their fate
    and holds them, and one timer per direction delivers them when due.
    """

    def __init__(
        self,
        on_datagram: Callable[[bytes, Any], None],
        link: LinkConditions | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._on_datagram = on_datagram
        self._on_error = on_error
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
        if self._on_error is not None:
            self._on_error(exc)

    def send_all(self, out: Outgoing, connected: bool) -> None:
        """Send datagrams (each with its address, which a connected socket leaves out).

        What is the same for every datagram (whether a simulated link holds them, whether the
        socket is open) is decided once for the batch.
        """
        outgoing, timer, sock = self._outgoing, self._out_timer, self._socket
        if outgoing is None or timer is None or outgoing.idle:
            if sock is None or sock.is_closing():
                return
            sendto = sock.sendto
            for data, addr in out:
                sendto(data, None if connected else addr)
            return
        now = self._now()
        for data, addr in out:
            outgoing.push((data, None if connected else addr), now)
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
        if when is not None and when == self._when:
            return
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


def check_port(port: object, call: str) -> int:
    """``port`` if it is a UDP port number (0 to 65535); else the error for ``call`` to raise."""
    if isinstance(port, bool) or not isinstance(port, int):
        hint = " (it takes the port first, then the hostname)" if isinstance(port, str) else ""
        raise TypeError(f"{call}: port must be an int from 0 to 65535, not {port!r}{hint}")
    if not 0 <= port <= 65535:
        raise ValueError(f"{call}: port must be from 0 to 65535, not {port}")
    return port


def check_hostname(hostname: object, call: str) -> str:
    """``hostname`` if it is a str; else the TypeError for ``call`` to raise."""
    if not isinstance(hostname, str):
        raise TypeError(f"{call}: hostname must be a str such as 'localhost', not {hostname!r}")
    return hostname


def resolve(hostname: str, port: int) -> list[tuple[int, Any]]:
    """Resolve a UDP address: ``(family, sockaddr)`` pairs, IPv4 first for a stable choice.

    Server and client use the same order, so ``localhost`` means the same socket on both ends
    even where it also resolves to ``::1``. A name that does not resolve raises
    :class:`~pygase_core.errors.AddressResolutionError` naming the host and port.
    """
    try:
        infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as error:
        raise AddressResolutionError(
            f"cannot resolve host {hostname!r} (port {port}): {error}"
        ) from error
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
            loops.run(main(ready))
        except BaseException as error:  # handed over to the starting thread
            failure.append(error)
            logger.debug("%s ended with %r", name, error)
        finally:
            ready.set()

    thread = threading.Thread(target=target, name=name, daemon=daemon)
    thread.start()
    ready.wait(ready_timeout)
    return thread, failure


SOCKET_BUFFER_SIZE = 4 * 1024 * 1024
"""What the driver asks the OS for as socket send and receive buffers: room for bursts."""
_FORCED = {socket.SO_RCVBUF: "SO_RCVBUFFORCE", socket.SO_SNDBUF: "SO_SNDBUFFORCE"}


def size_socket_buffers(sock: Any, size: int = SOCKET_BUFFER_SIZE) -> tuple[int, int]:
    """Ask for ``size``-byte receive and send buffers; returns what the OS granted.

    The OS caps the plain request (Linux at ``net.core.rmem_max``); a process allowed to
    (``CAP_NET_ADMIN``) may exceed the cap, which is tried where the option exists.
    """
    for option, forced in _FORCED.items():
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            if sock.getsockopt(socket.SOL_SOCKET, option) < size and hasattr(socket, forced):
                sock.setsockopt(socket.SOL_SOCKET, getattr(socket, forced), size)
        except OSError:
            pass  # not allowed here: keep what the OS gave
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
    )


def kernel_receive_drops(sock: Any) -> int | None:
    """Datagrams the OS dropped for this socket because its receive buffer was full.

    Read from ``/proc/net/udp`` and ``udp6`` on Linux (the ``drops`` column of the socket's
    inode); None where that is not available.
    """
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
    except OSError:
        return None
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table, encoding="ascii") as rows:
                next(rows, None)
                for row in rows:
                    fields = row.split()
                    if len(fields) >= 13 and fields[9] == inode:
                        return int(fields[12])
        except OSError:
            continue
    return None



class DrivenEndpoint(Protocol):
    """What a driver drives: a sans-IO endpoint that takes datagrams and time.

    Each input returns the datagrams to send and the notices of what happened;
    :meth:`get_timer` says when :meth:`handle_timer` is due next.
    """

    def receive_datagram(
        self, data: bytes, address: Any, now: float
    ) -> tuple[Outgoing, Sequence[Any]]: ...

    def handle_timer(self, now: float) -> tuple[Outgoing, Sequence[Any]]: ...

    def get_timer(self) -> float | None: ...


class EdgeDriver:
    """Owns the event loop, the datagram socket and the one timer of a Server or Client.

    ``on_notices`` gets every non-empty list of notices the endpoint returns, on the loop. The
    socket is bound (``local_addr``, a server) or connected (``remote_addr``, a client, so that
    the OS reports an unreachable server through ``on_socket_error``).
    """

    def __init__(
        self,
        endpoint: DrivenEndpoint,
        on_notices: Callable[[Sequence[Any]], None],
        link: LinkConditions | None = None,
        on_socket_error: Callable[[Exception, float], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._on_notices = on_notices
        self._on_socket_error = on_socket_error
        self._link = link
        self.loop: asyncio.AbstractEventLoop | None = None
        self.io: DatagramEndpoint | None = None
        self.sockname: Any = None
        self.buffer_sizes: tuple[int, int] | None = None
        """The socket's receive and send buffer sizes as the OS granted them."""
        self._socket: Any = None
        self._timer: DeadlineTimer | None = None
        self._calls: LoopCalls | None = None
        self._connected = False

    async def open(self, family: int, *, local_addr: Any = None, remote_addr: Any = None) -> None:
        """Create the socket on the running loop."""
        loop = asyncio.get_running_loop()
        _transport, io = await loop.create_datagram_endpoint(
            lambda: DatagramEndpoint(self._datagram, self._link, self._socket_error),
            local_addr=local_addr,
            remote_addr=remote_addr,
            family=family,
        )
        assert io.transport is not None
        self.loop, self.io = loop, io
        self._connected = remote_addr is not None
        self._timer = DeadlineTimer(loop, self._timer_fired)
        self._calls = LoopCalls(loop, self._run_calls)
        sock = io.transport.get_extra_info("socket")
        if sock is not None:  # asyncio's TransportSocket: options and fileno, no I/O
            self.buffer_sizes = size_socket_buffers(sock)
            self._socket = sock
        self.sockname = io.transport.get_extra_info("sockname")

    def now(self) -> float:
        """The loop's clock, which every input to the endpoint is stamped with."""
        assert self.loop is not None
        return self.loop.time()

    def kernel_drops(self) -> int | None:
        """See :func:`kernel_receive_drops` (None when closed or unknown)."""
        return None if self._socket is None else kernel_receive_drops(self._socket)

    # -- the one transmit step -----------------------------------------------------------------

    def transmit(self, out: Outgoing = ()) -> None:
        """Send what the endpoint produced, then re-arm the one timer to its next deadline."""
        io = self.io
        if io is None:
            return
        io.send_all(out, self._connected)
        if self._timer is not None:
            self._timer.reset(self.endpoint.get_timer())

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop (from any thread), then :meth:`transmit` its output.

        ``fn`` returns the datagrams to send (a list of ``(datagram, address)``) or anything
        else for none.

        For inputs that come from neither the socket nor the timer: a queued event, a state
        change, a disconnect. On the loop's own thread it runs at once; from any other it is
        queued (see :meth:`post`). Does nothing once the loop is gone.
        """
        loop = self.loop
        if loop is None:
            return
        if on_loop_thread(loop):
            if self.io is not None:
                out = fn(*args)
                self.transmit(out if isinstance(out, list) else ())
            return
        self.post(fn, *args)

    def post(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue ``fn(*args)`` to run on the loop soon, after everything queued before it.

        From any thread, the loop's own included (then it runs on a later turn). Calls queued
        before the loop gets to them share one wakeup, and their datagrams go out together
        with one re-arm of the timer. False if the loop is gone (nothing was queued).
        """
        calls = self._calls
        return calls is not None and calls.submit(fn, *args)

    def _run_calls(self, batch: list[Call]) -> None:
        out: list[tuple[bytes, Any]] = []
        for fn, args in batch:
            if self.io is None:
                return
            try:
                result = fn(*args)
            except Exception:  # the I/O loop must survive anything a call does
                logger.exception("unexpected error in a call to the network loop: %r", fn)
                continue
            if isinstance(result, list):
                out.extend(result)
        self.transmit(out)

    def _datagram(self, data: bytes, address: Any) -> None:
        out, notices = self.endpoint.receive_datagram(data, address, self.now())
        if notices:
            self._on_notices(notices)
        self.transmit(out)

    def _timer_fired(self) -> None:
        try:
            out, notices = self.endpoint.handle_timer(self.now())
        except Exception:
            # Whatever it was, the endpoint must keep its timer: log it and carry on.
            logger.exception("unexpected error in the network timer")
            if self._timer is not None:
                self._timer.reset(self.now() + 0.05)
            return
        if notices:
            self._on_notices(notices)
        self.transmit(out)

    def _socket_error(self, error: Exception) -> None:
        if self._on_socket_error is not None and self.loop is not None:
            self._on_socket_error(error, self.now())
            self.transmit()

    def close(self, last: Outgoing = ()) -> None:
        """Send ``last`` (farewells), stop the timer and close the socket."""
        self.transmit(last)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        io, self.io = self.io, None
        if io is not None and io.transport is not None:
            io.transport.close()
        self._socket = None
        self.sockname = None


class EndpointViews:
    """What a Server and a Client both show of their edge: drops, the simulated link.

    Both keep their :class:`EdgeDriver` in ``_driver``, their sans-IO endpoint (which counts
    its drops) in ``_endpoint`` and their link conditions in ``_link``.
    """

    _driver: EdgeDriver | None
    _endpoint: Any
    _link: LinkConditions | None

    @property
    def receive_buffer_drops(self) -> int | None:
        """Datagrams the OS dropped because the socket's receive buffer was full.

        Counted by the OS for the socket's life (Linux); None where the OS does not say.
        """
        return self._driver.kernel_drops() if self._driver is not None else None

    @property
    def drops(self) -> dict[str, int]:
        """Datagrams dropped since the endpoint started, by reason.

        Includes ``"receive buffer full (OS)"`` where the OS reports how many datagrams it
        dropped before they could be read (Linux).
        """
        drops = dict(self._endpoint.drops) if self._endpoint is not None else {}
        kernel = self._driver.kernel_drops() if self._driver is not None else None
        if kernel:
            drops["receive buffer full (OS)"] = kernel
        return drops

    @property
    def link(self) -> LinkConditions | None:
        """The simulated network conditions of this endpoint's datagrams (None: none).

        Settable, also while connected, for tests that change the network midway.
        """
        return self._link

    @link.setter
    def link(self, conditions: LinkConditions | str | None) -> None:
        self._link = None if conditions is None else resolve_link(conditions)
        driver = self._driver
        if driver is not None and driver.io is not None:
            driver.io.link = self._link

    @property
    def link_conditioners(self) -> tuple[LinkConditioner[Any] | None, LinkConditioner[Any] | None]:
        """The simulated link's ``(outgoing, incoming)`` halves with their counters, if any."""
        driver = self._driver
        if driver is None or driver.io is None:
            return None, None
        return driver.io.conditioners

