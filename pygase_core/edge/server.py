"""The Server: serves a GameStateStore to clients over UDP and relays their events.

The Server holds no game logic and no state of its own: the state comes from a
:class:`~pygase_core.GameStateStore`, and client events go to the Server's own handlers and
to an ``event_wire`` (usually a :class:`~pygase_core.GameStateMachine`). Its I/O is
one asyncio datagram endpoint driving the sans-IO
:class:`~pygase_core.protocol.endpoint.ServerEndpoint`. Whenever the store changes, every client
that lacks the new state is sent its delta at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from pygase_core.edge.driver import (
    DatagramEndpoint,
    DeadlineTimer,
    call_on_loop,
    logger,
    on_loop_thread,
    resolve,
    run_in_thread,
)
from pygase_core.errors import NotConnectedError, ProtocolError, UsageError
from pygase_core.model.events import Event
from pygase_core.model.handlers import EventHandlerRegistry, dispatch_sync
from pygase_core.model.store import GameStateStore
from pygase_core.protocol.connection import (
    Connection,
    ConnectionConfig,
    EventAcknowledged,
    EventReceived,
)
from pygase_core.protocol.crypto import format_address
from pygase_core.protocol.endpoint import (
    Address,
    ClientJoined,
    ClientLeft,
    PeerNotice,
    ServerEndpoint,
    ServerNotice,
    ShutdownRequested,
)
from pygase_core.protocol.eventwire import decode_event
from pygase_core.protocol.linksim import LinkConditions, resolve_link
from pygase_core.protocol.packets import DisconnectReason
from pygase_core.protocol.statesync import DEFAULT_MAX_STATE_SIZE, PayloadCache


class EventWire(Protocol):
    """Where the server repeats client events: anything with a ``_push_event`` method."""

    def _push_event(self, event: Event) -> None: ...


class Server:
    """Listen to clients and orchestrate the flow of events and state updates.

    Arguments:
        game_state_store: the store whose state is served.
        max_clients: connections beyond this are refused (the client gets ``ServerFullError``).
        timeout: seconds of silence after which a client is dropped.
        max_state_size / max_event_size: largest encoded state or event in bytes.
        host_client: ``"first"`` (the first client to connect may shut the server down) or None
            (no client may).
        link: simulated network conditions for this server's datagrams (a
            :class:`~pygase_core.protocol.linksim.LinkConditions` or a string such as
            ``"average"``); None reads the ``PYGASE_LINK`` environment variable.
        secret_key: 32 bytes shared with whatever issues connect tokens; when set, only
            clients with a valid token (:func:`pygase_core.protocol.crypto.make_connect_token`) may
            connect, and every session is encrypted.
        public_address: the ``host:port`` tokens name for this server, if it differs from the
            address it is bound to (behind NAT, for example).

    Blocking calls have coroutine forms named with an ``_async`` suffix (``run_async``,
    ``shutdown_async``) for programs that run their own asyncio loop.
    """

    def __init__(
        self,
        game_state_store: GameStateStore,
        *,
        max_clients: int = 64,
        timeout: float = 5.0,
        max_state_size: int = DEFAULT_MAX_STATE_SIZE,
        max_event_size: int = DEFAULT_MAX_STATE_SIZE,
        host_client: str | None = "first",
        link: LinkConditions | str | None = None,
        secret_key: bytes | None = None,
        public_address: str | None = None,
    ) -> None:
        if not isinstance(game_state_store, GameStateStore):
            raise TypeError("game_state_store must be a GameStateStore")
        if secret_key is not None and (not isinstance(secret_key, bytes) or len(secret_key) != 32):
            raise ValueError(
                "secret_key must be 32 bytes (see pygase_core.protocol.crypto.generate_key)"
            )
        self._secret_key = secret_key
        self._public_address = public_address
        limit = game_state_store.max_update_size
        game_state_store.max_update_size = (
            max_state_size if limit is None else min(limit, max_state_size)
        )
        if host_client not in ("first", None):
            raise ValueError("host_client must be 'first' or None")
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self.game_state_store = game_state_store
        self.max_clients = max_clients
        self._config = ConnectionConfig(
            timeout=timeout, max_state_size=max_state_size, max_event_size=max_event_size
        )
        self._host_is_first_client = host_client == "first"
        self._handlers = EventHandlerRegistry()
        self._join_handlers: list[Callable[..., Any]] = []
        self._leave_handlers: list[Callable[..., Any]] = []
        self._cache = PayloadCache(game_state_store, max_state_size)
        self._endpoint: ServerEndpoint | None = None
        self._io: DatagramEndpoint | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: DeadlineTimer | None = None
        self._stop: asyncio.Event | None = None
        self._stopped = threading.Event()
        self._stopped.set()
        self._event_wire: EventWire | None = None
        self._sockname: Any = None
        self._lock = threading.Lock()
        self._link = resolve_link(link)

    # -- read-only views -----------------------------------------------------------------------

    @property
    def connections(self) -> dict[Address, Connection]:
        """Each connected client's address, leading to its server-side connection."""
        return self._endpoint.connections if self._endpoint is not None else {}

    @property
    def host_client(self) -> Address | None:
        """Address of the host client (who may shut the server down), if there is one."""
        return self._endpoint.host if self._endpoint is not None else None

    @property
    def hostname(self) -> str | None:
        """The address the server listens on; None while it is not running."""
        return None if self._sockname is None else str(self._sockname[0])

    @property
    def port(self) -> int | None:
        """The port the server listens on; None while it is not running."""
        return None if self._sockname is None else int(self._sockname[1])

    @property
    def drops(self) -> dict[str, int]:
        """Datagrams dropped since the server started, by reason."""
        return dict(self._endpoint.drops) if self._endpoint is not None else {}

    @property
    def running(self) -> bool:
        """Whether the server is bound and serving."""
        return self._sockname is not None

    # -- running -------------------------------------------------------------------------------

    async def run_async(
        self,
        port: int = 0,
        hostname: str = "localhost",
        event_wire: EventWire | None = None,
        *,
        ready: threading.Event | None = None,
    ) -> None:
        """Serve until :meth:`shutdown` (coroutine form of :meth:`run`)."""
        with self._lock:
            if not self._stopped.is_set():
                raise UsageError("the server is already running")
            self._stopped.clear()
        try:
            loop = asyncio.get_running_loop()
            self._loop = loop
            self._event_wire = event_wire
            self._stop = asyncio.Event()
            self._endpoint = ServerEndpoint(
                loop.time(),
                max_clients=self.max_clients,
                config=self._config,
                host_is_first_client=self._host_is_first_client,
                secret_key=self._secret_key,
                unix_offset=time.time() - loop.time(),
            )
            self._timer = DeadlineTimer(loop, self._on_timer)
            self._io = await self._bind(loop, hostname, port)
            self._endpoint.address_text = self._public_address or format_address(
                str(self._sockname[0]), int(self._sockname[1])
            )
            self.game_state_store.add_listener(self._on_state_pushed)
            logger.info("pygase server listening on %s port %s", self.hostname, self.port)
            if ready is not None:
                ready.set()
            try:
                await self._stop.wait()
            finally:
                self.game_state_store.remove_listener(self._on_state_pushed)
                self._close_all(DisconnectReason.SERVER_SHUTDOWN)
        finally:
            self._sockname = None
            self._loop = None
            self._stopped.set()

    async def _bind(
        self, loop: asyncio.AbstractEventLoop, hostname: str, port: int
    ) -> DatagramEndpoint:
        errors: list[OSError] = []
        for family, sockaddr in resolve(hostname, port):
            try:
                _transport, protocol = await loop.create_datagram_endpoint(
                    lambda: DatagramEndpoint(self._on_datagram, self._link),
                    local_addr=sockaddr[:2],
                    family=family,
                )
            except OSError as error:
                errors.append(error)
                continue
            assert protocol.transport is not None
            self._sockname = protocol.transport.get_extra_info("sockname")
            return protocol
        raise errors[0] if errors else OSError(f"cannot resolve {hostname!r}")

    def run(
        self, port: int = 0, hostname: str = "localhost", event_wire: EventWire | None = None
    ) -> None:
        """Start the server under the given address and serve until :meth:`shutdown`.

        ``port=0`` lets the operating system choose a free port (see :attr:`port`).
        ``event_wire`` receives every client event (typically a GameStateMachine).
        """
        asyncio.run(self.run_async(port, hostname, event_wire))

    def run_in_thread(
        self,
        port: int = 0,
        hostname: str = "localhost",
        event_wire: EventWire | None = None,
        daemon: bool = True,
    ) -> threading.Thread:
        """Start the server in a background thread; returns once it is bound and serving."""

        async def main(ready: threading.Event) -> None:
            await self.run_async(port, hostname, event_wire, ready=ready)

        thread, failure = run_in_thread("pygase-server", main, daemon)
        if failure:
            raise failure[0]
        return thread

    def shutdown(self) -> None:
        """Disconnect every client and stop serving; :meth:`run` may start it again.

        Safe to call from any thread; from another thread it waits until the server stopped.
        """
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._request_stop)
        except RuntimeError:  # the loop closed meanwhile
            return
        if not on_loop_thread(loop):
            self._stopped.wait(5.0)

    async def shutdown_async(self) -> None:
        """Coroutine form of :meth:`shutdown`."""
        loop = self._loop
        if loop is None:
            return
        if loop is asyncio.get_running_loop():
            self._request_stop()
            return
        await asyncio.to_thread(self.shutdown)

    def _request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _close_all(self, reason: DisconnectReason) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._endpoint is not None and self._io is not None:
            leaving = list(self._endpoint.connections)
            self._send(self._endpoint.disconnect_all(reason))
            self._handle([ClientLeft(address, reason) for address in leaving])
        if self._io is not None and self._io.transport is not None:
            self._io.transport.close()
        self._io = None

    # -- events --------------------------------------------------------------------------------

    def register_event_handler(
        self, event_type: str, event_handler_function: Callable[..., Any]
    ) -> None:
        """Call ``event_handler_function(*data, client_address=...)`` for events of this type.

        The handler gets ``client_address`` only if its signature accepts it. It may be a
        coroutine function.
        """
        self._handlers.register(event_type, event_handler_function)

    def on_client_joined(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``handler(client_address)`` whenever a client completes its handshake.

        Runs on the server's I/O loop (a coroutine function is scheduled there); a failure is
        logged and isolated. Returns the handler, so it also works as a decorator.
        """
        if not callable(handler):
            raise TypeError("handler must be callable")
        self._join_handlers.append(handler)
        return handler

    def on_client_left(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``handler(client_address, reason)`` whenever a client's session ends.

        ``reason`` is ``"client left"``, ``"shutdown request"``, ``"timed out"`` or ``"server
        shutdown"``. Same rules as :meth:`on_client_joined`.
        """
        if not callable(handler):
            raise TypeError("handler must be callable")
        self._leave_handlers.append(handler)
        return handler

    def dispatch_event(
        self,
        event_type: str,
        *args: Any,
        target_client: Address | str = "all",
        retries: int = 0,
        ack_callback: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Send an event to one client (by address) or to ``"all"``.

        The event is encoded here, so unsupported data raises ``TypeError`` in the caller.
        ``retries`` is how often it is resent if unacknowledged; ``ack_callback(connection)``
        runs once when a client acknowledged it.
        """
        payload = self._config.encode_event(event_type, args, kwargs, retries)
        loop = self._loop
        if loop is None:
            raise NotConnectedError("the server is not running")
        if target_client != "all" and target_client not in self.connections:
            raise NotConnectedError(f"no client is connected from {target_client!r}")
        call_on_loop(loop, self._queue_event, payload, target_client, retries, ack_callback)

    def _queue_event(
        self,
        payload: bytes,
        target: Address | str,
        retries: int,
        ack_callback: Callable[..., Any] | None,
    ) -> None:
        endpoint, timer = self._endpoint, self._timer
        if endpoint is None or timer is None:
            return
        targets = list(endpoint.connections) if target == "all" else [target]
        for address in targets:
            connection = endpoint.connections.get(address)
            if connection is not None:
                connection.queue_event(payload, retries, ack_callback)
                timer.arm(self._now())

    # -- I/O callbacks -------------------------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _send(self, out: list[tuple[bytes, Address]]) -> None:
        io = self._io
        if io is None:
            return
        for datagram, address in out:
            io.send(datagram, address)

    def _on_datagram(self, data: bytes, address: Address) -> None:
        endpoint = self._endpoint
        if endpoint is None:
            return
        out, events = endpoint.datagram_received(data, address, self._now(), self._cache)
        self._send(out)
        self._handle(events)
        connection = endpoint.connections.get(address)
        if connection is not None and self._timer is not None:
            self._timer.arm(connection.next_deadline(self._cache))

    def _on_timer(self) -> None:
        endpoint, timer = self._endpoint, self._timer
        if endpoint is None or timer is None:
            return
        try:
            out, events = endpoint.poll(self._now(), self._cache)
        except Exception:
            # Whatever it was, the server must keep its timer: log it and carry on.
            logger.exception("unexpected error in the server's timer")
            timer.reset(self._now() + 0.05)
            return
        oversize = self._cache.oversize
        if oversize is not None:
            # Said once per state version; the clients keep the last state that fitted.
            self._cache.oversize = None
            logger.error("cannot send the game state: %s", oversize)
        self._send(out)
        timer.reset(endpoint.earliest_deadline)
        self._handle(events)  # after the reset: what handlers queue may only move it earlier

    def _on_state_pushed(self, time_order: int) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):
            call_on_loop(loop, self._state_changed)

    def _state_changed(self) -> None:
        if self._timer is not None and self._endpoint is not None and self._endpoint.connections:
            self._timer.arm(self._now())

    def _handle(self, events: list[ServerNotice]) -> None:
        for event in events:
            if isinstance(event, PeerNotice):
                inner = event.notice
                if isinstance(inner, EventReceived):
                    self._client_event(event.address, inner.payload)
                elif isinstance(inner, EventAcknowledged) and inner.token is not None:
                    connection = self.connections.get(event.address)
                    _run_callback(inner.token, connection)
            elif isinstance(event, ClientJoined):
                logger.info("client %s joined%s", event.address, " (host)" if event.is_host else "")
                if self._timer is not None:
                    self._timer.arm(self._now())
                for handler in self._join_handlers:
                    _run_callback(handler, event.address)
            elif isinstance(event, ClientLeft):
                reason = event.reason.name.lower().replace("_", " ")
                logger.info("client %s left: %s", event.address, reason)
                for handler in self._leave_handlers:
                    _run_callback(handler, event.address, reason)
            elif isinstance(event, ShutdownRequested):
                logger.info("the host client %s asked the server to shut down", event.address)
                self._request_stop()

    def _client_event(self, address: Address, payload: bytes) -> None:
        try:
            decoded = decode_event(payload)
        except ProtocolError:
            if self._endpoint is not None:
                self._endpoint.drops["undecodable event"] += 1
            return
        event = Event(decoded.event_type, decoded.args, decoded.kwargs, address)
        handled = event.event_type in self._handlers
        if handled:
            dispatch_sync(self._handlers, event, {"client_address": address})
        if self._event_wire is not None:
            self._event_wire._push_event(event)
        elif not handled:
            logger.warning("no handler for event type %r from %s", event.event_type, address)


def _run_callback(callback: object, *args: Any) -> None:
    """Run a callback (function or coroutine function) on the loop, isolating its failures."""
    if not callable(callback):
        return
    try:
        result = callback(*args)
        if asyncio.iscoroutine(result):
            asyncio.get_running_loop().create_task(result)
    except Exception:
        logger.exception("callback %r failed", callback)
