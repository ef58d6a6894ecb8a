"""The Client: connects to a Server, keeps a synchronized game state, exchanges events.

The client's I/O runs on one asyncio loop (its own background thread with
:meth:`Client.connect_in_thread`, or the caller's loop with :meth:`Client.connect_async`). The
game reads the state through :meth:`Client.access_game_state`, which holds the state lock, and
sends events with :meth:`Client.dispatch_event` from any thread.

Plugins see the client's life through the hooks in :mod:`pygase_core.plugins`; a framework
adapter can claim the client and have its event handlers run on the game's frame thread. Without
one (a headless bot), handlers run on the client's I/O loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any

import pluggy

from pygase_core.edge.driver import (
    DatagramEndpoint,
    DeadlineTimer,
    logger,
    on_loop_thread,
    resolve,
    run_in_thread,
)
from pygase_core.errors import (
    ConnectionFailed,
    ConnectTimeoutError,
    NotConnectedError,
    ProtocolError,
    ServerFullError,
    TokenRejectedError,
    UsageError,
    VersionMismatchError,
)
from pygase_core.model.gamestate import GameState
from pygase_core.model.handlers import EventHandlerRegistry, dispatch_sync
from pygase_core.protocol.acks import ConnectionStats
from pygase_core.protocol.connection import (
    Connection,
    ConnectionClosed,
    ConnectionConfig,
    EventAcknowledged,
    EventReceived,
    StateReceived,
)
from pygase_core.protocol.crypto import ConnectToken
from pygase_core.protocol.endpoint import ClientEndpoint, ClientNotice, Connected, Refused
from pygase_core.protocol.eventwire import decode_event
from pygase_core.protocol.linksim import LinkConditions, resolve_link
from pygase_core.protocol.packets import FULL_STATE, DisconnectReason, RejectReason
from pygase_core.protocol.statesync import DEFAULT_MAX_STATE_SIZE, decode_state_payload


class ClientStatus(Enum):
    """Where a client is in its life."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"


_REASONS = {
    DisconnectReason.CLIENT_LEFT: "disconnected by this client",
    DisconnectReason.SHUTDOWN_REQUEST: "this client shut the server down",
    DisconnectReason.SERVER_SHUTDOWN: "the server shut down",
    DisconnectReason.TIMED_OUT: "the server stopped answering",
}


class Client:
    """Exchange events with a pygase server and access a synchronized game state.

    Arguments (all optional):
        plugin_manager: the pluggy manager whose hooks this client calls; by default one from
            :func:`pygase_core.plugins.get_plugin_manager`, made when first needed.
        connect_timeout: seconds to wait for the server's answer to the handshake.
        timeout: seconds of silence after which the connection counts as lost.
        max_state_size / max_event_size: largest encoded state or event in bytes.
        link: simulated network conditions for this client's datagrams (a
            :class:`~pygase_core.protocol.linksim.LinkConditions` or a string such as
            ``"average"``); None reads the ``PYGASE_LINK`` environment variable.

    Blocking calls have coroutine forms named with an ``_async`` suffix (``connect_async``,
    ``disconnect_async``).
    """

    def __init__(
        self,
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        connect_timeout: float = 5.0,
        timeout: float = 5.0,
        max_state_size: int = DEFAULT_MAX_STATE_SIZE,
        max_event_size: int = DEFAULT_MAX_STATE_SIZE,
        link: LinkConditions | str | None = None,
    ) -> None:
        self._config = ConnectionConfig(
            timeout=timeout, max_state_size=max_state_size, max_event_size=max_event_size
        )
        self.connect_timeout = connect_timeout
        self._plugin_manager = plugin_manager
        self._handlers = EventHandlerRegistry()
        self._state_lock = threading.RLock()
        self._game_state = GameState()
        self._status = ClientStatus.DISCONNECTED
        self.disconnect_reason: str | None = None
        """Why the last connection ended (None while connected or before connecting)."""
        self._endpoint: ClientEndpoint | None = None
        self._io: DatagramEndpoint | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: DeadlineTimer | None = None
        self._done: asyncio.Event | None = None
        self._finished = threading.Event()
        self._finished.set()
        self._event_dispatcher: Callable[[Callable[[], object]], None] | None = None
        self._server_address: Any = None
        self._start_lock = threading.Lock()
        self._link = resolve_link(link)
        self.plugin_manager.hook.pygase_client_created(client=self)

    # -- properties ----------------------------------------------------------------------------

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The plugin manager whose hooks this client calls."""
        if self._plugin_manager is None:
            from pygase_core.plugins import get_plugin_manager

            self._plugin_manager = get_plugin_manager()
        return self._plugin_manager

    @property
    def connection(self) -> Connection | None:
        """The protocol state of the current session (None before the handshake completes)."""
        return self._endpoint.connection if self._endpoint is not None else None

    @property
    def status(self) -> ClientStatus:
        """Disconnected, connecting or connected."""
        return self._status

    @property
    def stats(self) -> ConnectionStats | None:
        """RTT, loss and traffic figures of the current session."""
        connection = self.connection
        return connection.stats if connection is not None else None

    @property
    def is_host(self) -> bool:
        """Whether this client may shut the server down."""
        return self._endpoint is not None and self._endpoint.is_host

    # -- connecting ----------------------------------------------------------------------------

    async def connect_async(
        self,
        port: int,
        hostname: str = "localhost",
        *,
        connect_token: ConnectToken | bytes | None = None,
        ready: threading.Event | None = None,
    ) -> None:
        """Connect and serve the connection until it ends (coroutine form of :meth:`connect`).

        With a ``connect_token`` (see :func:`pygase_core.protocol.crypto.make_connect_token`)
        the session is encrypted; a server with a secret key accepts nothing else.

        Raises :class:`~pygase_core.errors.ServerFullError`,
        :class:`~pygase_core.errors.ConnectTimeoutError` or another
        :class:`~pygase_core.errors.ConnectionFailed` if the handshake fails.
        """
        if isinstance(connect_token, bytes):
            connect_token = ConnectToken.from_bytes(connect_token)
        with self._start_lock:
            if not self._finished.is_set():
                raise UsageError("this client is already connected or connecting")
            self._finished.clear()
        loop = asyncio.get_running_loop()
        try:
            self._loop = loop
            self._status = ClientStatus.CONNECTING
            self.disconnect_reason = None
            with self._state_lock:
                self._game_state = GameState()
            self._done = asyncio.Event()
            self._handshake_result: asyncio.Future[bool] = loop.create_future()
            self._endpoint = ClientEndpoint(
                loop.time(),
                config=self._config,
                connect_timeout=self.connect_timeout,
                token=connect_token,
            )
            self._timer = DeadlineTimer(loop, self._on_timer)
            family, address = resolve(hostname, port)[0]
            self._server_address = address
            _transport, self._io = await loop.create_datagram_endpoint(
                lambda: DatagramEndpoint(self._on_datagram, self._link),
                remote_addr=address[:2],
                family=family,
            )
            self._send(self._endpoint.start(loop.time()))
            self._timer.arm(self._endpoint.next_deadline())
            await self._handshake_result
            if ready is not None:
                ready.set()
            await self._done.wait()
        finally:
            if self._timer is not None:
                self._timer.cancel()
            if self._io is not None and self._io.transport is not None:
                self._io.transport.close()
            self._io = None
            self._status = ClientStatus.DISCONNECTED
            self._loop = None
            self._finished.set()

    def connect(
        self,
        port: int,
        hostname: str = "localhost",
        *,
        connect_token: ConnectToken | bytes | None = None,
    ) -> None:
        """Open a connection to a pygase server and serve it until it ends (blocking)."""
        asyncio.run(self.connect_async(port, hostname, connect_token=connect_token))

    def connect_in_thread(
        self,
        port: int,
        hostname: str = "localhost",
        *,
        connect_token: ConnectToken | bytes | None = None,
    ) -> threading.Thread:
        """Connect from a background thread; returns the thread once the handshake succeeded.

        Raises the handshake's error in the calling thread if it failed.
        """

        async def main(ready: threading.Event) -> None:
            await self.connect_async(port, hostname, connect_token=connect_token, ready=ready)

        thread, failure = run_in_thread("pygase-client", main, daemon=True)
        if failure:
            raise failure[0]
        return thread

    def disconnect(self, shutdown_server: bool = False) -> None:
        """Close the connection; with ``shutdown_server`` the host also stops the server.

        Safe from any thread; from another thread it waits until the connection is closed.
        """
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._close, shutdown_server)
        except RuntimeError:
            return
        if not on_loop_thread(loop):
            self._finished.wait(5.0)

    async def disconnect_async(self, shutdown_server: bool = False) -> None:
        """Coroutine form of :meth:`disconnect`."""
        loop = self._loop
        if loop is None:
            return
        if loop is asyncio.get_running_loop():
            self._close(shutdown_server)
        else:
            await asyncio.to_thread(self.disconnect, shutdown_server)

    def _close(self, shutdown_server: bool) -> None:
        endpoint = self._endpoint
        if endpoint is not None and endpoint.connection is not None:
            reason = (
                DisconnectReason.SHUTDOWN_REQUEST if shutdown_server
                else DisconnectReason.CLIENT_LEFT
            )
            self._send(endpoint.close(reason))
            self._finish(_REASONS[reason])
        else:
            self._fail(ConnectionFailed("disconnected before the handshake completed"))

    def wait_until_disconnected(self, timeout: float | None = None) -> bool:
        """Block until the connection has ended; False if ``timeout`` passed first."""
        return self._finished.wait(timeout)

    # -- state and events ----------------------------------------------------------------------

    @contextlib.contextmanager
    def access_game_state(self) -> Iterator[GameState]:
        """Hold the state lock and give the synchronized game state, for a ``with`` block.

        The I/O thread cannot change the state while the block runs, so what you read is
        consistent. Keep the block short, and do not keep the object past it.
        """
        with self._state_lock:
            yield self._game_state

    def register_event_handler(
        self, event_type: str, event_handler_function: Callable[..., Any]
    ) -> None:
        """Call ``event_handler_function(*data, **data)`` for server events of this type."""
        self._handlers.register(event_type, event_handler_function)

    def dispatch_event(
        self,
        event_type: str,
        *args: Any,
        retries: int = 0,
        ack_callback: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Send an event to the server.

        The event is encoded here, so unsupported data raises ``TypeError`` in the caller.
        ``retries`` is how often it is resent if unacknowledged; ``ack_callback()`` runs once
        when the server acknowledged it.
        """
        payload = self._config.encode_event(event_type, args, kwargs, retries)
        loop = self._loop
        if loop is None or self._status is not ClientStatus.CONNECTED:
            raise NotConnectedError("the client is not connected")
        if on_loop_thread(loop):
            self._queue_event(payload, retries, ack_callback)
        else:
            loop.call_soon_threadsafe(self._queue_event, payload, retries, ack_callback)

    def _queue_event(
        self, payload: bytes, retries: int, ack_callback: Callable[[], Any] | None
    ) -> None:
        connection = self.connection
        if connection is None or connection.closed is not None or self._timer is None:
            return
        connection.queue_event(payload, retries, ack_callback)
        self._timer.arm(self._now())

    # -- I/O callbacks -------------------------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _send(self, datagrams: list[bytes]) -> None:
        io = self._io
        if io is not None:
            for datagram in datagrams:
                io.send(datagram)

    def _on_datagram(self, data: bytes, address: Any) -> None:
        endpoint = self._endpoint
        if endpoint is None:
            return
        if address[:2] != self._server_address[:2]:
            endpoint.drops["unknown address"] += 1
            return
        out, events = endpoint.datagram_received(data, self._now())
        self._send(out)
        self._handle(events)
        if self._timer is not None and not self._finished.is_set():
            self._timer.arm(endpoint.next_deadline())

    def _on_timer(self) -> None:
        endpoint = self._endpoint
        if endpoint is None or self._timer is None:
            return
        out, events = endpoint.poll(self._now())
        self._send(out)
        self._handle(events)
        if self._status is not ClientStatus.DISCONNECTED and not self._done_set():
            self._timer.reset(endpoint.next_deadline())

    def _done_set(self) -> bool:
        return self._done is None or self._done.is_set()

    def _handle(self, events: list[ClientNotice]) -> None:
        for event in events:
            if isinstance(event, StateReceived):
                self._apply_state(event)
            elif isinstance(event, EventReceived):
                self._server_event(event.payload)
            elif isinstance(event, EventAcknowledged):
                if callable(event.token):
                    self._deliver(event.token)
            elif isinstance(event, Connected):
                self._status = ClientStatus.CONNECTED
                hook = self.plugin_manager.hook
                self._event_dispatcher = hook.pygase_event_dispatcher(client=self)
                if not self._handshake_result.done():
                    self._handshake_result.set_result(True)
                hook.pygase_client_connected(client=self)
            elif isinstance(event, Refused):
                if event.reason is RejectReason.SERVER_FULL:
                    self._fail(ServerFullError("the server is full"))
                elif event.reason is RejectReason.INVALID_TOKEN:
                    self._fail(TokenRejectedError(
                        "the server refused the connect token (invalid, expired or used)"))
                elif event.reason is RejectReason.TOKEN_REQUIRED:
                    self._fail(TokenRejectedError("the server requires a connect token"))
                elif event.reason is RejectReason.VERSION_MISMATCH:
                    self._fail(VersionMismatchError("the server speaks another protocol version"))
                else:
                    self._fail(
                        ConnectTimeoutError(
                            f"no answer from the server within {self.connect_timeout} s"
                        )
                    )
            elif isinstance(event, ConnectionClosed):
                self._finish(_REASONS[event.reason])

    def _fail(self, error: ConnectionFailed) -> None:
        self.disconnect_reason = str(error)
        if not self._handshake_result.done():
            self._handshake_result.set_exception(error)
        if self._done is not None:
            self._done.set()

    def _finish(self, reason: str) -> None:
        if self._done is None or self._done.is_set():
            return
        self._status = ClientStatus.DISCONNECTED
        self.disconnect_reason = reason
        logger.info("pygase client disconnected: %s", reason)
        self._done.set()
        self.plugin_manager.hook.pygase_client_disconnected(client=self, reason=reason)

    def _apply_state(self, received: StateReceived) -> None:
        connection = self.connection
        try:
            decoded = decode_state_payload(received.base, received.target, received.payload)
        except ProtocolError:
            if self._endpoint is not None:
                self._endpoint.drops["undecodable state"] += 1
            return
        with self._state_lock:
            if received.base == FULL_STATE:
                assert isinstance(decoded, GameState)
                if connection is not None and connection.applied_time_order is not None and (
                    decoded.time_order <= connection.applied_time_order
                ):
                    return
                self._game_state = decoded
            elif not self._game_state._apply_owned(decoded):  # type: ignore[arg-type]
                return  # (the decoded delta is this client's own: no need to copy its values)
            if connection is not None:
                connection.applied_time_order = self._game_state.time_order
            self.plugin_manager.hook.pygase_state_changed(
                client=self, game_state=self._game_state, time_order=self._game_state.time_order
            )

    def _server_event(self, payload: bytes) -> None:
        try:
            event = decode_event(payload)
        except ProtocolError:
            if self._endpoint is not None:
                self._endpoint.drops["undecodable event"] += 1
            return
        self.plugin_manager.hook.pygase_event_received(
            client=self, event_type=event.event_type, args=event.args, kwargs=event.kwargs
        )
        if self._event_dispatcher is not None and event.event_type not in self._handlers:
            return  # an adapter delivers it its own way (a framework event), not unhandled
        self._deliver(lambda: dispatch_sync(self._handlers, event, {}))

    def _deliver(self, thunk: Callable[[], object]) -> None:
        """Run a handler thunk where the game wants it: the adapter's frame thread, or here."""
        dispatcher = self._event_dispatcher
        if dispatcher is not None:
            dispatcher(thunk)
            return
        try:
            result = thunk()
            if asyncio.iscoroutine(result):
                asyncio.get_running_loop().create_task(result)
        except Exception:
            logger.exception("client callback %r failed", thunk)

