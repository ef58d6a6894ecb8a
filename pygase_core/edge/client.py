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
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from enum import Enum
from typing import Any

import pluggy

from pygase_core.edge import loops
from pygase_core.edge.driver import (
    EdgeDriver,
    EndpointViews,
    check_hostname,
    check_port,
    logger,
    on_loop_thread,
    resolve,
    run_in_thread,
)
from pygase_core.edge.pending import DEFAULT_MAX_PENDING_EVENTS, pending_for
from pygase_core.edge.worker import EventCallbacks, HandlerThread
from pygase_core.errors import (
    ConnectionFailed,
    ConnectTimeoutError,
    EventQueueFullError,
    JoinRefusedError,
    NotConnectedError,
    PayloadTooLargeError,
    ProtocolError,
    ServerFullError,
    ServerUnreachableError,
    ShutdownRefusedError,
    TokenRejectedError,
    UsageError,
    VersionMismatchError,
)
from pygase_core.model import codec
from pygase_core.model.codec import check_value
from pygase_core.model.events import Event
from pygase_core.model.gamestate import GameState
from pygase_core.model.handlers import EventHandlerRegistry, dispatch_sync
from pygase_core.model.prediction import (
    DEFAULT_MAX_CORRECTION,
    Prediction,
    Step,
    check_declaration,
)
from pygase_core.protocol import control
from pygase_core.protocol.acks import ConnectionStats
from pygase_core.protocol.connection import (
    Connection,
    ConnectionClosed,
    ConnectionConfig,
    ControlToken,
    EventAcknowledged,
    EventGivenUp,
    EventReceived,
    HostRoleChanged,
    PeerBack,
    PeerSilent,
    StateReceived,
)
from pygase_core.protocol.crypto import ConnectToken
from pygase_core.protocol.endpoint import (
    ClientEndpoint,
    ClientNotice,
    Connected,
    Refused,
    StateRefused,
)
from pygase_core.protocol.inputs import DEFAULT_MAX_INPUT_SIZE, InputClock
from pygase_core.protocol.linksim import LinkConditions, resolve_link
from pygase_core.protocol.packets import DisconnectReason, RejectReason
from pygase_core.protocol.statesync import DEFAULT_MAX_STATE_SIZE
from pygase_core.rooms.matchmaker import RoomListing

SILENCE_MARGIN = 1.0
"""Seconds a client waits beyond its room's reconnection window before it gives up."""


def join_request(
    room: object, room_id: object, create: object, options: object
) -> control.JoinRequest:
    """Check ``connect``'s room arguments where the caller passed them."""
    if room is not None and not isinstance(room, str):
        raise TypeError(f"room must be a room type's name (str) or None, not {room!r}")
    if room_id is not None and not isinstance(room_id, str):
        raise TypeError(f"room_id must be a str or None, not {room_id!r}")
    if room is not None and room_id is not None:
        raise ValueError("give room (a type to matchmake in) or room_id (one room), not both")
    if not isinstance(create, bool):
        raise TypeError("create must be True or False")
    if create and room is None:
        raise ValueError("create=True needs room=<the room type to create>")
    if options is None:
        options = {}
    if not isinstance(options, dict) or not all(isinstance(key, str) for key in options):
        raise TypeError("options must be a dict with str keys")
    check_value(options, "the join options")
    return control.JoinRequest(room, room_id, create, dict(options))


def _required_port(port: int | None) -> int:
    if port is None:
        raise TypeError("connect needs the server's port (or matchmaker='http://host:port')")
    return port


def _matchmaking_mode(
    port: object, connect_token: object, room: object, room_id: object, create: object,
    options: object,
) -> str:
    """Check ``connect(matchmaker=...)``'s arguments; the matchmaking mode they ask for."""
    if port is not None or connect_token is not None:
        raise ValueError("with matchmaker=..., the matchmaker names the node and issues the"
                         " token: give no port or connect_token")
    join_request(room, room_id, create, options)  # the same checks as without a matchmaker
    if room is None and room_id is None:
        raise ValueError("with matchmaker=..., give room (a room type) or room_id")
    return "join_by_id" if room_id is not None else "create" if create else "join_or_create"


def _seat_by(
    matchmaker: str, port: int | None, connect_token: object, room: str | None,
    room_id: str | None, create: bool, options: dict[str, Any] | None,
) -> tuple[int, str, bytes, str]:
    """Ask the matchmaker for a seat: the node's port and host, the token, the room id."""
    from pygase_core.cluster.seats import request_seat

    mode = _matchmaking_mode(port, connect_token, room, room_id, create, options)
    seat = request_seat(matchmaker, room, room_id=room_id, mode=mode, options=options)
    return seat.port, seat.host, seat.token, seat.room_id


def _listing(data: dict[str, Any]) -> RoomListing:
    metadata = data.get("metadata")
    return RoomListing(
        str(data.get("room_id", "")), str(data.get("room", "")), int(data.get("clients", 0)),
        int(data.get("max_clients", 0)), dict(metadata) if isinstance(metadata, dict) else {},
    )


def _quiet_plugins() -> pluggy.PluginManager:
    """A plugin manager with no plugins, for the short sessions of room listings."""
    from pygase_core.plugins import PROJECT_NAME, PygaseHookSpecs

    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(PygaseHookSpecs)
    return manager


class ClientStatus(Enum):
    """Where a client is in its life.

    ``RECONNECTING``: connected, but nothing has come from the server for a while (an outage,
    perhaps a new network); the session lives on, events queue, and it is ``CONNECTED`` again
    as soon as the server is heard, or ``DISCONNECTED`` after ``timeout`` seconds of silence.
    """

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"


_REASONS = {
    DisconnectReason.CLIENT_LEFT: "disconnected by this client",
    DisconnectReason.SHUTDOWN_REQUEST: "this client shut the server down",
    DisconnectReason.SERVER_SHUTDOWN: "the server shut down",
    DisconnectReason.TIMED_OUT: "the server stopped answering",
}


class Client(EndpointViews):
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
        max_input_size: largest encoded input of :meth:`send_input`, in bytes (at most 255).

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
        max_input_size: int = DEFAULT_MAX_INPUT_SIZE,
    ) -> None:
        if isinstance(max_input_size, bool) or not isinstance(max_input_size, int):
            raise TypeError("max_input_size must be an int")
        self._config = ConnectionConfig(
            timeout=timeout, max_state_size=max_state_size, max_event_size=max_event_size,
            max_input_size=max_input_size,
        )
        numeric = isinstance(connect_timeout, int | float) and not isinstance(connect_timeout, bool)
        if not (numeric and math.isfinite(connect_timeout) and connect_timeout > 0):
            raise ValueError(f"connect_timeout must be a positive number of seconds, not"
                             f" {connect_timeout!r}")
        self.connect_timeout = float(connect_timeout)
        self._join_timer: asyncio.TimerHandle | None = None
        self._plugin_manager = plugin_manager
        self._handlers = EventHandlerRegistry()
        self._state_lock = threading.RLock()
        self._game_state = GameState()
        self._status = ClientStatus.DISCONNECTED
        self.disconnect_reason: str | None = None
        """Why the last connection ended (None while connected or before connecting)."""
        self._endpoint: ClientEndpoint | None = None
        self._driver: EdgeDriver | None = None
        self._worker = HandlerThread("pygase-client-handlers")
        self._use_worker = False
        self._target = ""
        self._request: control.JoinRequest | control.ListRequest = control.JoinRequest()
        self._listing: list[RoomListing] = []
        self._early_state: StateReceived | None = None
        self.room_id: str | None = None
        """The id of the room this client is seated in (None: none, or the one world)."""
        self.id: str | None = None
        """This client's seat id, stable across reconnections (None before joining)."""
        self._done: asyncio.Event | None = None
        self._finished = threading.Event()
        self._finished.set()
        self._event_dispatcher: Callable[[Callable[[], object]], None] | None = None
        self._start_lock = threading.Lock()
        self._link = resolve_link(link)
        self.tick_interval = 0.02
        """Seconds one input lasts: the tick interval of the world joined (from its answer)."""
        self._input_clock: InputClock | None = None
        self._input_lock = threading.Lock()
        self._server_max_input = DEFAULT_MAX_INPUT_SIZE
        """The largest input the server joined accepts (it says so when the client joins)."""
        self._declared: tuple[str, Step, float, tuple[str, ...] | None] | None = None
        self._prediction: Prediction | None = None
        self.predicting = True
        """Whether frames show the own entity predicted (True) or as the server last said;
        inputs are sent either way, so this can be toggled at any time to feel the difference."""
        self._view: int | None = None
        self.plugin_manager.hook.pygase_client_created(client=self)

    # -- properties ----------------------------------------------------------------------------

    @property
    def view(self) -> int | None:
        """The state time_order the player is looking at (frame adapters set it each frame to
        their snapshot's); sent with each input, for lag compensation. None: the newest.

        Setting it to anything but None or an int from 0 to 2**64 - 1 raises (``TypeError``,
        ``ValueError``) there, before it could reach an input on the wire.
        """
        return self._view

    @view.setter
    def view(self, time_order: int | None) -> None:
        if time_order is not None:
            if isinstance(time_order, bool) or not isinstance(time_order, int):
                raise TypeError(f"view must be a state's time_order (an int) or None,"
                                f" not {time_order!r}")
            if not 0 <= time_order < 2**64:
                raise ValueError(f"view must be a time_order from 0 to 2**64 - 1,"
                                 f" not {time_order}")
        self._view = time_order

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
    def left_view(self) -> dict[str, set[Any]]:
        """Entries removed from the state because they left this client's view, not deleted.

        Per viewed attribute of the state (a server's or room's ``views``), the keys of the
        entries the server took out of this client's view; a key is listed until its entry comes
        back. An entry that vanished and is not listed was deleted by the server; one deleted
        while out of view stays listed for the session (the server says nothing about entries
        outside a view). (A new dict.)
        """
        with self._state_lock:
            endpoint = self._endpoint
            if endpoint is None:
                return {}
            return {name: set(keys) for name, keys in endpoint.left_view.items() if keys}

    @property
    def status(self) -> ClientStatus:
        """Disconnected, connecting, connected or reconnecting (see :class:`ClientStatus`)."""
        return self._status

    @property
    def pending_events(self) -> int:
        """Events dispatched in this session and neither acknowledged nor given up yet."""
        endpoint = self._endpoint
        connection = endpoint.connection if endpoint is not None else None
        if endpoint is None or connection is None:
            return 0
        return pending_for(endpoint).unsettled(None, lambda: connection.game_events_in_flight)

    @property
    def stats(self) -> ConnectionStats | None:
        """RTT, loss and traffic figures of the current session."""
        connection = self.connection
        return connection.stats if connection is not None else None

    @staticmethod
    def list_rooms(
        port: int, hostname: str = "localhost", room: str | None = None, *,
        timeout: float = 5.0,
    ) -> list[RoomListing]:
        """The open, public rooms of a server (of one type, or all), asked for just now.

        Each :class:`~pygase_core.rooms.matchmaker.RoomListing` has ``room_id``, ``room``
        (its type), ``clients`` (seats taken), ``max_clients`` and ``metadata``. Opens a short
        session of its own; raises like :meth:`connect` if the server cannot be reached.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return loops.run(Client.list_rooms_async(port, hostname, room, timeout=timeout))
        raise UsageError("an event loop runs in this thread: await Client.list_rooms_async()")

    @staticmethod
    async def list_rooms_async(
        port: int, hostname: str = "localhost", room: str | None = None, *,
        timeout: float = 5.0,
    ) -> list[RoomListing]:
        """Coroutine form of :meth:`list_rooms`."""
        check_port(port, "Client.list_rooms")
        check_hostname(hostname, "Client.list_rooms")
        if room is not None and not isinstance(room, str):
            raise TypeError("room must be a room type's name (str) or None")
        asker = Client(connect_timeout=timeout, plugin_manager=_quiet_plugins())
        await asker._serve(
            port, hostname, None, None, own_loop=False, request=control.ListRequest(room)
        )
        return list(asker._listing)

    @property
    def is_host(self) -> bool:
        """Whether this client may shut the server down."""
        return self._endpoint is not None and self._endpoint.is_host

    # -- connecting ----------------------------------------------------------------------------

    async def connect_async(
        self,
        port: int | None = None,
        hostname: str = "localhost",
        *,
        connect_token: ConnectToken | bytes | None = None,
        room: str | None = None,
        room_id: str | None = None,
        create: bool = False,
        options: dict[str, Any] | None = None,
        ready: threading.Event | None = None,
        matchmaker: str | None = None,
    ) -> None:
        """Connect and serve the connection until it ends (coroutine form of :meth:`connect`).

        With a ``connect_token`` (see :func:`pygase_core.protocol.crypto.make_connect_token`)
        the session is encrypted; a server with a secret key accepts nothing else. Event
        handlers and callbacks run on the running loop (the thread forms run them on a handler
        thread instead, see :meth:`connect`).

        Raises a :class:`~pygase_core.errors.ConnectionFailed` naming the host and port if the
        handshake fails: ``AddressResolutionError``, ``ServerUnreachableError``,
        ``ConnectTimeoutError``, ``ServerFullError``, ``TokenRejectedError`` or
        ``VersionMismatchError``.
        """
        if matchmaker is not None:
            from pygase_core.cluster.seats import request_seat_async

            mode = _matchmaking_mode(port, connect_token, room, room_id, create, options)
            seat = await request_seat_async(matchmaker, room, room_id=room_id, mode=mode,
                                            options=options)
            port, hostname, connect_token = seat.port, seat.host, seat.token
            room, room_id, create = None, seat.room_id, False
        port = _required_port(port)
        request = join_request(room, room_id, create, options)
        await self._serve(port, hostname, connect_token, ready, own_loop=False, request=request)

    async def _serve(
        self,
        port: int,
        hostname: str,
        connect_token: ConnectToken | bytes | None,
        ready: threading.Event | None,
        own_loop: bool,
        request: control.JoinRequest | control.ListRequest,
    ) -> None:
        check_port(port, "Client.connect")
        check_hostname(hostname, "Client.connect")
        if isinstance(connect_token, bytes):
            connect_token = ConnectToken.from_bytes(connect_token)
        elif connect_token is not None and not isinstance(connect_token, ConnectToken):
            raise TypeError("connect_token must be a ConnectToken, its bytes, or None")
        with self._start_lock:
            if not self._finished.is_set():
                raise UsageError("this client is already connected or connecting")
            self._finished.clear()
        loop = asyncio.get_running_loop()
        self._target = f"{hostname} port {port}"
        driver: EdgeDriver | None = None
        try:
            self._status = ClientStatus.CONNECTING
            self.disconnect_reason = None
            with self._state_lock:
                self._game_state = GameState()
            self._done = asyncio.Event()
            self._handshake_result: asyncio.Future[bool] = loop.create_future()
            self._request = request
            self._listing = []
            self._early_state = None
            encoded = control.encode(request)
            if len(encoded) > self._config.max_event_size:
                raise PayloadTooLargeError(
                    f"the join options encode to {len(encoded)} bytes, over the maximum of"
                    f" {self._config.max_event_size}"
                )
            self.room_id = None
            self.id = None
            with self._input_lock:
                self._input_clock = None
                self._prediction = None
            self._view = None
            family, address = resolve(hostname, port)[0]
            endpoint = self._endpoint = ClientEndpoint(
                loop.time(),
                config=self._config,
                connect_timeout=self.connect_timeout,
                token=connect_token,
                server_address=address,
            )
            if own_loop:
                self._worker.start()
            self._use_worker = own_loop
            driver = EdgeDriver(endpoint, self._on_notices, self._link, self._socket_error)
            await driver.open(family, remote_addr=address[:2])
            self._driver = driver
            driver.transmit([(datagram, address) for datagram in endpoint.start(loop.time())])
            await self._handshake_result
            if ready is not None:
                ready.set()
            await self._done.wait()
        finally:
            self._driver = None
            if self._join_timer is not None:
                self._join_timer.cancel()
                self._join_timer = None
            if driver is not None:
                driver.close()
            self._status = ClientStatus.DISCONNECTED
            self._settle_pending()
            if own_loop:
                await asyncio.to_thread(self._worker.stop)
            self._finished.set()

    def connect(
        self,
        port: int | None = None,
        hostname: str = "localhost",
        *,
        connect_token: ConnectToken | bytes | None = None,
        room: str | None = None,
        room_id: str | None = None,
        create: bool = False,
        options: dict[str, Any] | None = None,
        matchmaker: str | None = None,
    ) -> None:
        """Open a connection to a pygase server and serve it until it ends (blocking).

        Without ``room`` or ``room_id`` the client joins the server's one world (a server
        made with a GameStateStore). ``room="chase"`` joins the best open room of that type
        whose ``filter_by`` options match ``options``, or creates one; ``create=True`` always
        creates one (``options={"private": True}`` makes it private); ``room_id=...`` joins
        that room, also a private or locked one. A room's refusal raises
        :class:`~pygase_core.errors.JoinRefusedError`; no capacity left raises
        :class:`~pygase_core.errors.ServerFullError`.

        ``matchmaker="http://host:port"`` (with ``room``, ``create`` or ``room_id``, and no
        port) asks a cluster's matchmaker for a seat first, then connects to the node its
        connect token names (see the Scaling out guide); the matchmaker's refusals raise
        ``JoinRefusedError``, an unreachable one
        :class:`~pygase_core.errors.MatchmakerError`.

        Event handlers and ack/failure callbacks run on the client's handler thread (or, with
        a frame adapter, on the game's frame thread), never on the network loop.
        """
        if matchmaker is not None:
            port, hostname, connect_token, room_id = _seat_by(
                matchmaker, port, connect_token, room, room_id, create, options
            )
            room, create = None, False
        port = _required_port(port)
        check_port(port, "Client.connect")
        check_hostname(hostname, "Client.connect")
        request = join_request(room, room_id, create, options)
        loops.run(
            self._serve(port, hostname, connect_token, None, own_loop=True, request=request)
        )

    def connect_in_thread(
        self,
        port: int | None = None,
        hostname: str = "localhost",
        *,
        connect_token: ConnectToken | bytes | None = None,
        room: str | None = None,
        room_id: str | None = None,
        create: bool = False,
        options: dict[str, Any] | None = None,
        matchmaker: str | None = None,
    ) -> threading.Thread:
        """Connect from a background thread; returns the thread once the handshake succeeded.

        Raises the handshake's error in the calling thread if it failed.
        """
        if matchmaker is not None:
            port, hostname, connect_token, room_id = _seat_by(
                matchmaker, port, connect_token, room, room_id, create, options
            )
            room, create = None, False
        port = _required_port(port)
        check_port(port, "Client.connect_in_thread")
        check_hostname(hostname, "Client.connect_in_thread")

        request = join_request(room, room_id, create, options)

        async def main(ready: threading.Event) -> None:
            await self._serve(
                port, hostname, connect_token, ready, own_loop=True, request=request
            )

        thread, failure = run_in_thread("pygase-client", main, daemon=True)
        if failure:
            raise failure[0]
        return thread

    def disconnect(self, shutdown_server: bool = False) -> None:
        """Close the connection; with ``shutdown_server`` the host also stops the server.

        Safe from any thread; from another thread it waits until the connection is closed. A
        client that is not the host still disconnects, then raises
        :class:`~pygase_core.errors.ShutdownRefusedError`: the server keeps running.
        """
        refused = shutdown_server and self._status is ClientStatus.CONNECTED and not self.is_host
        driver = self._driver
        loop = driver.loop if driver is not None else None
        if driver is None or loop is None:
            return
        if not driver.post(self._close, shutdown_server and not refused):
            return
        if not on_loop_thread(loop):
            self._finished.wait(5.0)
        if refused:
            raise ShutdownRefusedError(
                "this client is not the host, so the server keeps running (disconnected anyway)"
            )

    async def disconnect_async(self, shutdown_server: bool = False) -> None:
        """Coroutine form of :meth:`disconnect`."""
        driver = self._driver
        loop = driver.loop if driver is not None else None
        if loop is None:
            return
        if loop is asyncio.get_running_loop():
            refused = (
                shutdown_server and self._status is ClientStatus.CONNECTED and not self.is_host
            )
            self._close(shutdown_server and not refused)
            if refused:
                raise ShutdownRefusedError(
                    "this client is not the host, so the server keeps running"
                    " (disconnected anyway)"
                )
        else:
            await asyncio.to_thread(self.disconnect, shutdown_server)

    def _close(self, shutdown_server: bool) -> None:
        endpoint, driver = self._endpoint, self._driver
        if endpoint is not None and endpoint.connection is not None:
            reason = (
                DisconnectReason.SHUTDOWN_REQUEST if shutdown_server
                else DisconnectReason.CLIENT_LEFT
            )
            if driver is not None:
                driver.transmit(endpoint.close_session(reason))
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

    max_pending_events: int = DEFAULT_MAX_PENDING_EVENTS
    """How many events may be unsettled (neither acknowledged nor given up) at once; one more
    makes :meth:`dispatch_event` raise :class:`~pygase_core.errors.EventQueueFullError`."""

    def dispatch_event(
        self,
        event_type: str,
        *args: Any,
        retries: int = 0,
        ack_callback: Callable[[], Any] | None = None,
        failure_callback: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Send an event to the server.

        The event is encoded here, so unsupported data raises ``TypeError`` in the caller.
        ``retries`` is how often it is resent if unacknowledged (with exponential backoff).
        ``ack_callback()`` runs once when the server acknowledged the whole event, whenever
        that ack arrives while the connection lives; ``failure_callback()`` runs once if
        pygase gives the event up (retries spent and at least about a second without an ack,
        or the connection ended first).

        While the client is reconnecting the event waits and goes out when the server is heard
        again (sends to a silent server spend no retries). With :attr:`max_pending_events`
        events unsettled, raises :class:`~pygase_core.errors.EventQueueFullError` instead.
        """
        payload = self._config.encode_event(event_type, args, kwargs, retries)
        callbacks = EventCallbacks.of(ack_callback, failure_callback)
        driver, endpoint = self._driver, self._endpoint
        connection = endpoint.connection if endpoint is not None else None
        if (
            driver is None
            or endpoint is None
            or connection is None
            or self._status not in (ClientStatus.CONNECTED, ClientStatus.RECONNECTING)
        ):
            raise NotConnectedError("the client is not connected")
        pending = pending_for(endpoint)
        limit = self.max_pending_events
        if pending.reserve([(None, lambda: connection.game_events_in_flight)], limit):
            raise EventQueueFullError(
                f"{limit} events to the server are unsettled (neither acknowledged nor given"
                f" up), the limit (Client.max_pending_events)"
                + (": the client is reconnecting" if self._status is ClientStatus.RECONNECTING
                   else "")
            )

        def queue() -> None:
            endpoint.queue_event(payload, retries, callbacks)

        driver.call(pending.hand_over, [None], queue)

    # -- inputs and prediction ------------------------------------------------------------------

    def send_input(self, value: Any) -> int | None:
        """Send what the player does now (any sendable value, typically a small dict or tuple).

        Call it every frame. The value belongs to the current input tick (ticks last
        :attr:`tick_interval`, the server's step): the first call of a tick starts that tick's
        input, and a changed value starts the next tick at once (at most one tick ahead), so a
        key press is never held back. Other calls start no input and return None; else the
        input's tick is returned. Inputs travel unreliably but redundantly (every packet
        repeats the ones the server has not acknowledged) and the server applies at most one
        per step, in tick order (``on_input``). With a :meth:`predict` declaration the own
        entity moves at once.

        Raises ``TypeError`` for a value that cannot be sent,
        :class:`~pygase_core.errors.PayloadTooLargeError` for one over ``max_input_size``
        bytes and :class:`~pygase_core.errors.NotConnectedError` without a joined session.
        If the :meth:`predict` step raises, the error reaches this call, but only after the
        input was sent: the server applies it all the same.
        """
        data = codec.pack(value)
        if len(data) > self._config.max_input_size:
            raise PayloadTooLargeError(
                f"the input encodes to {len(data)} bytes, over the maximum of"
                f" {self._config.max_input_size} (Client(max_input_size=...), at most 255)"
            )
        if len(data) > self._server_max_input:
            raise PayloadTooLargeError(
                f"the input encodes to {len(data)} bytes, over the server's maximum of"
                f" {self._server_max_input} (Server(max_input_size=...)): it would be dropped"
            )
        driver, endpoint = self._driver, self._endpoint
        connection = endpoint.connection if endpoint is not None else None
        if (
            driver is None or connection is None
            or self._status not in (ClientStatus.CONNECTED, ClientStatus.RECONNECTING)
        ):
            raise NotConnectedError("the client is not connected")
        loop = driver.loop
        if loop is None:
            raise NotConnectedError("the client is not connected")
        with self._input_lock:
            clock = self._input_clock
            if clock is None:
                raise NotConnectedError("the client has not joined a world yet")
            inputs = connection.inputs_out
            tick = clock.stamp(value, loop.time(), inputs.slack if inputs is not None else None)
            if tick is None:
                return None
            view = self.view
            if view is None:
                view = connection.applied_time_order or 0

            def queue() -> None:
                connection.queue_input(tick, view, data)

            driver.call(queue)  # under the lock: the loop gets the ticks in their order
            prediction = self._prediction
            if prediction is not None:
                # After the input is on its way: a failing step raises here, to the caller,
                # and the server still gets the input (the prediction leaves it out).
                prediction.add_input(tick, codec.unpack(data))  # the value as the server sees it
        return tick

    def predict(
        self,
        path: str,
        step: Step,
        *,
        max_correction: float = DEFAULT_MAX_CORRECTION,
        smooth: Sequence[str] | None = None,
    ) -> None:
        """Predict the own entity at ``path`` with ``step``, the function the server applies.

        ``path`` names it with ``{me}`` for this client's id (``"players.{me}"``);
        ``step(entity, value, dt)`` returns the entity after one input (the server declares
        the same with ``Room.predict``). Each frame then shows the entity as the latest state
        has it plus the inputs the server has not applied yet (:attr:`prediction`);
        a misprediction is corrected by at most ``max_correction`` per frame, over the
        numeric fields named in ``smooth`` (None: all of the entity's). Call it before or
        after connecting.
        """
        check_declaration(path, step)
        if isinstance(max_correction, bool) or not isinstance(max_correction, int | float) or not (
            math.isfinite(max_correction) and max_correction > 0
        ):
            raise ValueError(f"max_correction must be a positive number, not {max_correction!r}")
        if smooth is not None and (
            isinstance(smooth, str) or not all(isinstance(name, str) for name in smooth)
        ):
            raise TypeError("smooth must be a sequence of field names or None")
        fields = None if smooth is None else tuple(smooth)
        with self._input_lock:
            self._declared = (path, step, float(max_correction), fields)
            if self.id is not None:
                self._prediction = self._make_prediction()

    def _make_prediction(self) -> Prediction | None:
        declared, me = self._declared, self.id
        if declared is None or me is None:
            return None
        path, step, max_correction, fields = declared
        prediction = Prediction(
            path, step, self.tick_interval, me, max_correction=max_correction, smooth=fields
        )
        with self._state_lock:
            prediction.reconcile(self._game_state, None)
        return prediction

    @property
    def prediction(self) -> Prediction | None:
        """The own entity's prediction (None without :meth:`predict` or before joining).

        ``prediction.sample()`` is the entity to draw this frame, ``prediction.stats``
        counts mispredictions and corrections.
        """
        return self._prediction

    @property
    def input_stats(self) -> tuple[int, int | None]:
        """Inputs not acknowledged yet, and the last tick the server applied (None: none)."""
        connection = self.connection
        inputs = connection.inputs_out if connection is not None else None
        if inputs is None:
            return 0, None
        return inputs.pending, inputs.acked

    # -- notices from the protocol -------------------------------------------------------------

    def _socket_error(self, error: Exception, now: float) -> None:
        if isinstance(error, ConnectionRefusedError) and self._endpoint is not None:
            self._endpoint.unreachable(now)

    def _on_notices(self, notices: Sequence[ClientNotice]) -> None:
        for notice in notices:
            if isinstance(notice, StateReceived):
                if self._status is ClientStatus.CONNECTING:
                    self._early_state = notice  # applied once the join is answered
                else:
                    self._apply_state(notice)
            elif isinstance(notice, EventReceived):
                self._server_event(notice.payload)
            elif isinstance(notice, EventAcknowledged | EventGivenUp):
                self._settled(notice)
            elif isinstance(notice, Connected):
                # In session; the answer to the join request completes the connect.
                endpoint = self._endpoint
                loop = asyncio.get_running_loop()
                self._join_timer = loop.call_later(self.connect_timeout, self._join_timed_out)
                if endpoint is not None:
                    endpoint.queue_event(
                        control.encode(self._request), control.CONTROL_RETRIES, ControlToken()
                    )
            elif isinstance(notice, Refused):
                self._fail(self._refusal(notice))
            elif isinstance(notice, ConnectionClosed):
                self._finish(_REASONS[notice.reason])
            elif isinstance(notice, HostRoleChanged):
                logger.info(
                    "this client %s the host", "is now" if notice.is_host else "is no longer"
                )
            elif isinstance(notice, StateRefused):
                logger.error(
                    "pygase client cannot receive the game state: %s (raise Client's"
                    " max_state_size to take it)", notice.reason,
                )
            elif isinstance(notice, PeerSilent) and self._status is ClientStatus.CONNECTED:
                self._status = ClientStatus.RECONNECTING
                logger.info(
                    "pygase client reconnecting: nothing from %s for %.1f s",
                    self._target, self._config.silent_after,
                )
            elif isinstance(notice, PeerBack) and self._status is ClientStatus.RECONNECTING:
                self._status = ClientStatus.CONNECTED
                connection = self.connection
                outage = connection.last_outage if connection is not None else None
                logger.info("pygase client resumed after %.1f s", outage or 0.0)

    def _refusal(self, notice: Refused) -> ConnectionFailed:
        target = self._target
        if notice.reason is RejectReason.SERVER_FULL:
            return ServerFullError(f"the server at {target} is full")
        if notice.reason is RejectReason.INVALID_TOKEN:
            return TokenRejectedError(
                f"the server at {target} refused the connect token (invalid, expired or used)"
            )
        if notice.reason is RejectReason.TOKEN_REQUIRED:
            return TokenRejectedError(f"the server at {target} requires a connect token")
        if notice.reason is RejectReason.VERSION_MISMATCH:
            return VersionMismatchError(
                f"the server at {target} speaks another pygase protocol version"
            )
        if notice.unreachable:
            return ServerUnreachableError(
                f"nothing listens at {target} (the operating system reports the port"
                " unreachable); is the server running?"
            )
        return ConnectTimeoutError(f"no answer from {target} within {self.connect_timeout} s")

    def _settled(self, notice: EventAcknowledged | EventGivenUp) -> None:
        callbacks = notice.token
        if isinstance(callbacks, ControlToken) and isinstance(notice, EventGivenUp):
            if not self._handshake_result.done():
                self._leave_quietly()
                self._fail(ConnectTimeoutError(
                    f"{self._target} did not take the join request"))
            return
        if not isinstance(callbacks, EventCallbacks):
            return
        callback = (
            callbacks.on_ack if isinstance(notice, EventAcknowledged) else callbacks.on_failure
        )
        if callback is not None:
            self._deliver(callback)

    def _settle_pending(self) -> None:
        """The session ended: every event still in flight is given up (failure callbacks)."""
        endpoint = self._endpoint
        connection = endpoint.connection if endpoint is not None else None
        if connection is not None:
            for notice in connection.abandon_events():
                self._settled(notice)

    def _fail(self, error: ConnectionFailed) -> None:
        self.disconnect_reason = str(error)
        if not self._handshake_result.done():
            self._handshake_result.set_exception(error)
        if self._done is not None:
            self._done.set()

    def _finish(self, reason: str) -> None:
        if self._done is None or self._done.is_set():
            return
        if not self._handshake_result.done():  # it ended before the join was answered
            self._handshake_result.set_exception(
                ConnectionFailed(f"the session with {self._target} ended before it joined:"
                                 f" {reason}")
            )
        self._status = ClientStatus.DISCONNECTED
        self.disconnect_reason = reason
        logger.info("pygase client disconnected: %s", reason)
        self._done.set()
        self.plugin_manager.hook.pygase_client_disconnected(client=self, reason=reason)

    def _apply_state(self, received: StateReceived) -> None:
        endpoint = self._endpoint
        if endpoint is None:
            return
        with self._state_lock:
            state = endpoint.apply_state(received, self._game_state)
            if state is None:
                return
            self._game_state = state
            prediction, connection = self._prediction, endpoint.connection
            if prediction is not None and connection is not None:
                inputs = connection.inputs_out
                acked = inputs.ack_for(state.time_order) if inputs is not None else None
                prediction.reconcile(state, acked)  # no game code: the replay waits for a frame
            self.plugin_manager.hook.pygase_state_changed(
                client=self, game_state=state, time_order=state.time_order
            )

    def _control(self, event: Event) -> None:
        try:
            message = control.parse(event)
        except ProtocolError:
            if self._endpoint is not None:
                self._endpoint.drops["malformed control message"] += 1
            return
        if isinstance(message, control.Joined):
            self.room_id = message.room_id or None
            self.id = message.client_id
            self.tick_interval = message.tick_interval
            with self._input_lock:
                self._server_max_input = message.max_input_size
                self._input_clock = InputClock(message.tick_interval)
                self._prediction = self._make_prediction()
            connection = self.connection
            if connection is not None and message.reconnection_window > 0:
                connection.timeout = max(
                    connection.timeout, message.reconnection_window + 2 * SILENCE_MARGIN
                )
            self._status = ClientStatus.CONNECTED
            hook = self.plugin_manager.hook
            self._event_dispatcher = hook.pygase_event_dispatcher(client=self)
            if not self._handshake_result.done():
                self._handshake_result.set_result(True)
            hook.pygase_client_connected(client=self)
            early, self._early_state = self._early_state, None
            if early is not None:
                self._apply_state(early)
        elif isinstance(message, control.JoinRefused):
            error: ConnectionFailed = (
                ServerFullError(message.reason) if message.kind == "full"
                else JoinRefusedError(message.reason)
            )
            self._leave_quietly()
            self._fail(error)
        elif isinstance(message, control.RoomList):
            self._listing = [_listing(room) for room in message.rooms]
            self._leave_quietly()
            if not self._handshake_result.done():
                self._handshake_result.set_result(True)
            if self._done is not None:
                self._done.set()

    def _join_timed_out(self) -> None:
        if not self._handshake_result.done():
            self._leave_quietly()
            self._fail(ConnectTimeoutError(
                f"{self._target} did not answer the join within {self.connect_timeout} s"))

    def _leave_quietly(self) -> None:
        endpoint, driver = self._endpoint, self._driver
        if endpoint is not None and driver is not None:
            driver.transmit(endpoint.close_session(DisconnectReason.CLIENT_LEFT))

    def _server_event(self, payload: bytes) -> None:
        event = self._endpoint.decode_event(payload) if self._endpoint is not None else None
        if event is None:
            return
        if control.is_control(event.event_type):
            self._control(event)
            return
        self.plugin_manager.hook.pygase_event_received(
            client=self, event_type=event.event_type, args=event.args, kwargs=event.kwargs
        )
        if self._event_dispatcher is not None and event.event_type not in self._handlers:
            return  # an adapter delivers it its own way (a framework event), not unhandled
        self._deliver(lambda: dispatch_sync(self._handlers, event, {}))

    def _deliver(self, thunk: Callable[[], object]) -> None:
        """Run a handler or callback where the game wants it.

        On the adapter's frame thread if a frame adapter claimed the client; else on the
        client's handler thread (thread forms) or the caller's loop (``connect_async``).
        """
        dispatcher = self._event_dispatcher
        if dispatcher is not None:
            dispatcher(thunk)
            return
        if self._use_worker and self._worker.submit(thunk):
            return
        try:
            result = thunk()
            if asyncio.iscoroutine(result):
                asyncio.get_running_loop().create_task(result)
        except Exception:
            logger.exception("client callback %r failed", thunk)
