"""The Server: serves a GameStateStore to clients over UDP and relays their events.

The Server holds no game logic and no state of its own: the state comes from a
:class:`~pygase_core.GameStateStore`, and client events go to the Server's own handlers and to
an ``event_wire`` (usually a :class:`~pygase_core.GameStateMachine`). Its network I/O is one
:class:`~pygase_core.edge.driver.EdgeDriver` driving the sans-IO ``ServerEndpoint``; whenever
the store changes, every client that lacks the new state is sent its delta at once.

The Server's own handlers, join and leave handlers and ack and failure callbacks are game
logic: they run on the server's :class:`~pygase_core.edge.worker.HandlerThread`, never on the
network loop, so a slow handler cannot stall acks, keep-alives or state for anybody.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
    EventQueueFullError,
    NotConnectedError,
    ProtocolError,
    ServerFullError,
    UsageError,
)
from pygase_core.model.codec import check_value
from pygase_core.model.events import Event
from pygase_core.model.handlers import EventHandlerRegistry, call_with_accepted_kwargs
from pygase_core.model.statemachine import DEFAULT_TICK_INTERVAL, GameStateMachine
from pygase_core.model.store import GameStateStore
from pygase_core.model.views import View, ViewRules
from pygase_core.protocol import control
from pygase_core.protocol.budget import BudgetUse
from pygase_core.protocol.connection import (
    Connection,
    ConnectionConfig,
    ControlToken,
    EventAcknowledged,
    EventGivenUp,
    EventReceived,
    PeerBack,
    PeerSilent,
)
from pygase_core.protocol.control import (
    CONTROL_RETRIES,
    Control,
    Joined,
    JoinRefused,
    JoinRequest,
    ListRequest,
    RoomList,
)
from pygase_core.protocol.crypto import format_address
from pygase_core.protocol.endpoint import (
    HOST_SUCCESSION,
    Address,
    ClientJoined,
    ClientLeft,
    ClientMoved,
    HostChanged,
    PeerNotice,
    ServerEndpoint,
    ShutdownRefused,
    ShutdownRequested,
    StateTooLarge,
)
from pygase_core.protocol.inputs import DEFAULT_MAX_INPUT_SIZE, InputReceiver
from pygase_core.protocol.linksim import LinkConditions, resolve_link
from pygase_core.protocol.packets import DisconnectReason
from pygase_core.protocol.statesync import DEFAULT_MAX_STATE_SIZE, PayloadCache
from pygase_core.protocol.viewsync import ViewedWorld, ViewerPayloads
from pygase_core.rooms.matchmaker import Matchmaker, RoomListing, RoomRecord, RoomType
from pygase_core.rooms.room import Room, RoomClient, RoomRunner, new_client_id

ROOM_DISPOSE_WAIT = 5.0
"""Seconds a stopping server waits, in all, for its rooms' last on_leave and on_dispose."""
SILENCE_BEFORE_WINDOW = 1.0
"""Seconds of silence after which a seated client counts as dropped; its room's reconnection
window starts then, so a seat is held this long plus the window."""


@dataclass(frozen=True)
class _Seat:
    """A session seated in a room."""

    record: RoomRecord
    client: RoomClient


class _RoomLink:
    """What one room's runner calls on its server, from the room's thread."""

    def __init__(self, server: Server, room_id: str) -> None:
        self._server = server
        self._room_id = room_id

    def send(
        self, client_ids: list[str] | None, payload: bytes, retries: int, callbacks: object
    ) -> None:
        """Queue a room's event to its seated clients, bounded like ``Server.dispatch_event``."""
        server, room_id = self._server, self._room_id
        targets = [address for address, _seat in server._room_seats(room_id, client_ids)]
        server._reserve_then(
            targets,
            lambda: server._room_send(room_id, client_ids, payload, retries, callbacks),
        )


class _FirstInOneWorld:
    """The default host_client: "first" for a server with a one-world store, else None."""

    def __repr__(self) -> str:
        return '"first" with a one-world store, else None'


_ONE_WORLD_FIRST: Any = _FirstInOneWorld()


class JoinGate(Protocol):
    """What decides a join before matchmaking does (called on the server's I/O loop)."""

    def admit(self, token_client_id: int | None, request: JoinRequest) -> JoinRequest | str:
        """The request to carry out (perhaps rewritten), or the reason to refuse it."""
        ...


class EventWire(Protocol):
    """Where the server repeats client events: anything with a ``push_event`` method.

    (``_push_event``, the name the original PyGaSe used, is accepted as well.)
    """

    def push_event(self, event: Event) -> None: ...


class Server(EndpointViews):
    """Listen to clients and orchestrate the flow of events and state updates.

    Arguments:
        game_state_store: the store of the server's one world (the original PyGaSe's form);
            None for a server that hosts only rooms defined with :meth:`define`.
        max_clients: connections beyond this are refused (the client gets ``ServerFullError``).
        timeout: seconds of silence after which a client is dropped.
        max_state_size / max_event_size: largest encoded state or event in bytes.
        host_client: ``"first"`` (the first client to connect is the host, who may shut the
            server down) or None (no client may). The default is ``"first"`` for a server
            with a ``game_state_store`` and None for one that hosts only rooms, where no
            player of one room should be able to end everybody's game.
        host_succession: ``"longest-connected"`` (when the host leaves or times out, the client
            connected longest becomes the host) or None (the role ends with the host).
        link: simulated network conditions for this server's datagrams (a
            :class:`~pygase_core.protocol.linksim.LinkConditions` or a string such as
            ``"average"``); None reads the ``PYGASE_LINK`` environment variable.
        secret_key: 32 bytes shared with whatever issues connect tokens; when set, only
            clients with a valid token (:func:`pygase_core.protocol.crypto.make_connect_token`)
            may connect, and every session is encrypted.
        public_address: the ``host:port`` tokens name for this server, if it differs from the
            address it is bound to (behind NAT, for example).
        handler_overrun: seconds after which a handler or callback is logged as slow.
        views: per-client views of the one world's state (a list of
            :class:`~pygase_core.model.views.GridView`, :class:`~pygase_core.model.views.FilterView`
            and :class:`~pygase_core.model.views.PrivateField` rules, whose callables are given
            the client's address): each client is sent only what its view shows. Rooms have
            their own ``Room.views``.
        max_bandwidth: bytes of state per second each connection may be sent (for example
            64_000), in the one world and in rooms; None for no limit. Beyond it a client gets
            fewer, combined deltas, still exact; the entries entering its view go in by
            how long they waited, then nearest first (or by a view's ``priority``).
            :attr:`budget_use` shows what the budgets did.
        max_input_size: largest encoded input (``Client.send_input``) accepted, in bytes (1 to
            255); larger ones are dropped and counted. Joining clients are told, and refuse
            larger inputs at ``send_input``.

    Blocking calls have coroutine forms named with an ``_async`` suffix (``run_async``,
    ``shutdown_async``) for programs that run their own asyncio loop.
    """

    def __init__(
        self,
        game_state_store: GameStateStore | None = None,
        *,
        max_clients: int = 64,
        max_rooms: int = 1000,
        timeout: float = 5.0,
        max_state_size: int = DEFAULT_MAX_STATE_SIZE,
        max_event_size: int = DEFAULT_MAX_STATE_SIZE,
        host_client: str | None = _ONE_WORLD_FIRST,
        host_succession: str | None = "longest-connected",
        link: LinkConditions | str | None = None,
        secret_key: bytes | None = None,
        public_address: str | None = None,
        handler_overrun: float = 0.1,
        views: Sequence[View] | None = None,
        max_bandwidth: int | None = None,
        max_input_size: int = DEFAULT_MAX_INPUT_SIZE,
    ) -> None:
        if isinstance(max_input_size, bool) or not isinstance(max_input_size, int):
            raise TypeError("max_input_size must be an int")
        if game_state_store is not None and not isinstance(game_state_store, GameStateStore):
            raise TypeError("game_state_store must be a GameStateStore or None")
        if secret_key is not None and (not isinstance(secret_key, bytes) or len(secret_key) != 32):
            raise ValueError(
                "secret_key must be 32 bytes (see pygase_core.protocol.crypto.generate_key)"
            )
        if host_client is _ONE_WORLD_FIRST:
            host_client = "first" if game_state_store is not None else None
        if host_client not in ("first", None):
            raise ValueError("host_client must be 'first' or None")
        if host_succession not in HOST_SUCCESSION:
            raise ValueError(f"host_succession must be one of {HOST_SUCCESSION}")
        if isinstance(max_clients, bool) or not isinstance(max_clients, int) or max_clients < 1:
            raise ValueError("max_clients must be an int of at least 1")
        self._secret_key = secret_key
        self._public_address = public_address
        if game_state_store is not None:
            limit = game_state_store.max_update_size
            game_state_store.max_update_size = (
                max_state_size if limit is None else min(limit, max_state_size)
            )
        self.game_state_store = game_state_store
        self.max_clients = max_clients
        self._config = ConnectionConfig(
            timeout=timeout, max_state_size=max_state_size, max_event_size=max_event_size,
            max_bandwidth=max_bandwidth, max_input_size=max_input_size,
        )
        self._host_is_first_client = host_client == "first"
        self._host_succession = host_succession
        self._handlers = EventHandlerRegistry()
        self._join_handlers: list[Callable[..., Any]] = []
        self._leave_handlers: list[Callable[..., Any]] = []
        self._move_handlers: list[Callable[..., Any]] = []
        self._cache = (
            PayloadCache(game_state_store, max_state_size) if game_state_store is not None
            else None
        )
        rules = ViewRules(views) if views is not None else None
        if rules and self._cache is None:
            raise ValueError("views apply to the server's one world: give it a game_state_store"
                             " (each room has its own Room.views)")
        self._viewed = ViewedWorld(self._cache, rules) if rules and self._cache else None
        self._viewer_payloads: dict[Address, ViewerPayloads] = {}
        """The payloads of each client sent through a view, by the client's address."""
        self._matchmaker = Matchmaker(max_rooms)
        self._runners: dict[str, RoomRunner] = {}
        self._seats: dict[Address, _Seat] = {}
        self._joining: dict[int, Address] = {}
        """Joins being decided: session id to where the session was when it asked."""
        self._stopping_rooms = False
        self._world: set[Address] = set()
        """Sessions in the server's one world (the game_state_store's)."""
        self._world_inputs: dict[Address, tuple[RoomClient, InputReceiver]] = {}
        """The one world's clients and their jitter buffers (replaced, never changed: the game
        loop's thread reads it)."""
        self._machine: GameStateMachine | None = None
        self._endpoint: ServerEndpoint | None = None
        self._driver: EdgeDriver | None = None
        self._worker = HandlerThread("pygase-server-handlers", overrun_after=handler_overrun)
        self._stop: asyncio.Event | None = None
        self._stopped = threading.Event()
        self._stopped.set()
        self._event_wire: Any = None
        self._lock = threading.Lock()
        self._link = resolve_link(link)
        self.join_gate: JoinGate | None = None
        """Decides, on the I/O loop, which room a session may join (a cluster node's seat
        reservations, :mod:`pygase_core.cluster.reservations`); None lets every join through."""

    def require_connect_tokens(self, secret_key: bytes, public_address: str | None = None) -> None:
        """Admit only clients with a connect token from now on (the next :meth:`run`).

        Same as ``Server(secret_key=..., public_address=...)``, for a server made elsewhere (a
        module that ``pygase node`` hosts). Raises ``UsageError`` while it runs.
        """
        if not isinstance(secret_key, bytes) or len(secret_key) != 32:
            raise ValueError(
                "secret_key must be 32 bytes (see pygase_core.protocol.crypto.generate_key)"
            )
        if public_address is not None and not isinstance(public_address, str):
            raise TypeError("public_address must be a 'host:port' str or None")
        if self.running:
            raise UsageError("the server runs: set its connect tokens before run()")
        self._secret_key = secret_key
        self._public_address = public_address

    # -- read-only views -----------------------------------------------------------------------

    @property
    def connections(self) -> dict[Address, Connection]:
        """Each connected client's address, leading to its server-side connection."""
        return self._endpoint.connections if self._endpoint is not None else {}

    @property
    def budget_use(self) -> dict[Address, BudgetUse]:
        """Each client's bandwidth budget use (empty without ``max_bandwidth``)."""
        endpoint = self._endpoint
        if endpoint is None:
            return {}
        return {
            address: session.connection.state_out.budget.use()
            for address, session in list(endpoint.sessions.items())
            if session.connection.state_out is not None
            and session.connection.state_out.budget is not None
        }

    @property
    def host_client(self) -> Address | None:
        """Address of the host client (who may shut the server down), if there is one."""
        return self._endpoint.host if self._endpoint is not None else None

    @property
    def hostname(self) -> str | None:
        """The address the server listens on; None while it is not running."""
        sockname = self._sockname
        return None if sockname is None else str(sockname[0])

    @property
    def port(self) -> int | None:
        """The port the server listens on; None while it is not running."""
        sockname = self._sockname
        return None if sockname is None else int(sockname[1])

    @property
    def _sockname(self) -> Any:
        driver = self._driver
        return None if driver is None else driver.sockname

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
        check_port(port, "Server.run")
        check_hostname(hostname, "Server.run")
        wire = _event_wire(event_wire)
        addresses = resolve(hostname, port)
        with self._lock:
            if not self._stopped.is_set():
                raise UsageError("the server is already running")
            self._stopped.clear()
        try:
            loop = asyncio.get_running_loop()
            self._event_wire = wire
            if isinstance(event_wire, GameStateMachine):
                self._machine = event_wire
                event_wire.input_source = lambda: self._world_inputs.values()
            self._stop = asyncio.Event()
            endpoint = self._endpoint = ServerEndpoint(
                loop.time(),
                max_clients=self.max_clients,
                config=self._config,
                host_is_first_client=self._host_is_first_client,
                host_succession=self._host_succession,
                secret_key=self._secret_key,
                unix_offset=time.time() - loop.time(),
            )
            driver = self._driver = EdgeDriver(endpoint, self._on_notices, self._link)
            await self._bind(driver, addresses, hostname, port)
            endpoint.address_text = self._public_address or format_address(
                str(driver.sockname[0]), int(driver.sockname[1])
            )
            self._worker.start()
            if self.game_state_store is not None:
                self.game_state_store.add_listener(self._on_state_pushed)
            shown = f" ({self.hostname})" if self.hostname != hostname else ""
            logger.info("pygase server listening on %s port %s%s", hostname, self.port, shown)
            if ready is not None:
                ready.set()
            try:
                await self._stop.wait()
            finally:
                if self.game_state_store is not None:
                    self.game_state_store.remove_listener(self._on_state_pushed)
                self._stopping_rooms = True
                self._close_all(DisconnectReason.SERVER_SHUTDOWN)
                await asyncio.to_thread(self._dispose_rooms)
                self._stopping_rooms = False
                await asyncio.to_thread(self._worker.stop)
        finally:
            self._driver = None
            self._stopped.set()

    @staticmethod
    async def _bind(
        driver: EdgeDriver, addresses: list[tuple[int, Any]], hostname: str, port: int
    ) -> None:
        errors: list[OSError] = []
        for family, sockaddr in addresses:
            try:
                await driver.open(family, local_addr=sockaddr[:2])
            except OSError as error:
                # uvloop wraps the system's error (with its errno) in one of its own
                cause = error.__cause__
                wrapped = error.errno is None and isinstance(cause, OSError)
                errors.append(cause if wrapped else error)  # type: ignore[arg-type]
                continue
            return
        if errors:
            raise OSError(
                errors[0].errno, f"cannot listen on {hostname} port {port}: {errors[0].strerror}"
            )
        raise OSError(f"cannot listen on {hostname} port {port}: no address")

    def run(
        self, port: int = 0, hostname: str = "localhost", event_wire: EventWire | None = None
    ) -> None:
        """Start the server under the given address and serve until :meth:`shutdown`.

        ``port=0`` lets the operating system choose a free port (see :attr:`port`).
        ``event_wire`` receives every client event (typically a GameStateMachine). Logs where
        it listens; a program that configured no logging gets that line on stderr.
        """
        check_port(port, "Server.run")
        check_hostname(hostname, "Server.run")
        announce_on_stderr()
        loops.run(self.run_async(port, hostname, event_wire))

    def run_in_thread(
        self,
        port: int = 0,
        hostname: str = "localhost",
        event_wire: EventWire | None = None,
        daemon: bool = True,
    ) -> threading.Thread:
        """Start the server in a background thread; returns once it is bound and serving."""
        check_port(port, "Server.run_in_thread")
        check_hostname(hostname, "Server.run_in_thread")

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
        driver = self._driver
        loop = driver.loop if driver is not None else None
        if driver is None or loop is None:
            return
        if not driver.post(self._request_stop):  # the loop closed meanwhile
            return
        if not on_loop_thread(loop):
            self._stopped.wait(ROOM_DISPOSE_WAIT + 5.0)

    async def shutdown_async(self) -> None:
        """Coroutine form of :meth:`shutdown`."""
        driver = self._driver
        loop = driver.loop if driver is not None else None
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
        endpoint, driver = self._endpoint, self._driver
        if endpoint is None or driver is None:
            return
        farewells, notices = endpoint.shutdown(reason)
        self._on_notices(notices)
        driver.close(farewells)

    # -- rooms ---------------------------------------------------------------------------------

    def define(
        self,
        name: str,
        room_class: type[Room],
        *,
        filter_by: tuple[str, ...] | list[str] = (),
        **default_options: Any,
    ) -> None:
        """Register a room type: clients join rooms of it with ``connect(room=name)``.

        ``filter_by`` names the join options that must match for matchmaking to seat a
        client in an existing room (``filter_by=("mode",)`` keeps modes apart);
        ``default_options`` are the options a join without them gets. One UDP port serves
        every room.
        """
        self._matchmaker.define(name, room_class, filter_by, default_options)

    @property
    def rooms(self) -> list[RoomListing]:
        """Every room this server runs (private and locked ones included), oldest first."""
        return [record.listing() for record in list(self._matchmaker.rooms.values())]

    def create_room(self, name: str, **options: Any) -> str:
        """Create a room of a defined type now, with no client in it; returns its id.

        ``on_create`` runs before this returns. The room is offered to matchmaking like any
        other (unless ``options`` say ``private=True``); with ``auto_dispose`` it goes away
        again once a client has joined and left. Safe to call from any thread while the server
        runs.
        """
        room_type = self._matchmaker.types.get(name) if isinstance(name, str) else None
        if room_type is None:
            raise ValueError(f"no room type {name!r} is defined (see Server.define)")
        check_value(options, "the room's options")
        driver = self._driver
        if driver is None or driver.loop is None:
            raise NotConnectedError("the server is not running")
        made: concurrent.futures.Future[
            tuple[str, concurrent.futures.Future[None]]
        ] = concurrent.futures.Future()

        def create() -> None:
            if self._matchmaker.at_capacity:
                made.set_exception(ServerFullError("no capacity left for another room"))
                return
            try:
                record = self._create_room(room_type, room_type.options_for(options))
            except Exception as error:  # the room class itself failed: say so at the call
                made.set_exception(error)
                return
            record.room.private = bool(record.options.get("private", False))
            made.set_result((record.room_id, self._runners[record.room_id].create()))

        if on_loop_thread(driver.loop):
            create()
        else:
            driver.call(create)
        room_id, created = made.result(timeout=10.0)
        created.result(timeout=10.0)
        return room_id

    def _create_room(
        self, room_type: RoomType, options: dict[str, Any], for_join: bool = False
    ) -> RoomRecord:
        room = room_type.room_class()
        record = self._matchmaker.add(room_type, options, room)
        record.disposable = for_join
        runner = RoomRunner(
            room, room_type.name, record.room_id, options, _RoomLink(self, record.room_id),
            self._config,
        )
        runner.store.add_listener(self._on_state_pushed)
        self._runners[record.room_id] = runner
        return record

    def _join(self, address: Address, request: JoinRequest, rerouted: bool = False) -> None:
        endpoint = self._endpoint
        session = endpoint.sessions.get(address) if endpoint is not None else None
        if endpoint is None or session is None:
            return
        session_id = session.connection.session_id
        if address in self._seats or address in self._world or (
            session_id in self._joining and not rerouted
        ):
            return  # asked twice: the first answer stands
        if self.join_gate is not None and not rerouted:
            verdict = self.join_gate.admit(session.token_client_id, request)
            if isinstance(verdict, str):
                self._answer(address, JoinRefused(verdict, "refused"))
                return
            request = verdict
        if request.room is None and request.room_id is None:
            if self._cache is None:
                self._answer(address, JoinRefused(
                    "this server hosts rooms: connect with room=... or room_id=...", "missing"))
                return
            seated = session  # the viewer is where the session is now, also after a move
            endpoint.assign_cache(address, self._payloads_for(
                address, self._cache, self._viewed, lambda: seated.address))
            endpoint.room_caches.add(self._cache)
            self._world.add(address)
            client = RoomClient(new_client_id(), address)
            inputs = session.connection.inputs_in
            if inputs is not None:
                self._world_inputs = {**self._world_inputs, address: (client, inputs)}
            machine = self._machine
            tick = machine.tick_interval if machine is not None else DEFAULT_TICK_INTERVAL
            self._answer(address, Joined(
                "", None, client.id, 0.0, tick, self._config.max_input_size
            ))
            return
        matchmaker = self._matchmaker
        if request.room_id is not None:
            record = matchmaker.rooms.get(request.room_id)
            if record is None or record.disposing:
                self._answer(address, JoinRefused(f"no room {request.room_id!r}", "missing"))
                return
            options = record.room_type.options_for(request.options)
        else:
            room_type = matchmaker.types.get(str(request.room))
            if room_type is None:
                self._answer(address, JoinRefused(f"no room type {request.room!r}", "missing"))
                return
            options = room_type.options_for(request.options)
            record = None if request.create else matchmaker.find(room_type, options)
            if record is None:
                if matchmaker.at_capacity:
                    self._answer(address, JoinRefused(
                        f"no capacity left for rooms of type {room_type.name!r}", "full"))
                    return
                try:
                    record = self._create_room(room_type, options, for_join=True)
                except Exception as error:
                    logger.exception("the room class of %r failed to construct", room_type.name)
                    self._answer(address, JoinRefused(f"the room could not be made: {error}",
                                                      "refused"))
                    return
                if request.create and options.get("private"):
                    record.room.private = True
        if record.free <= 0:
            self._answer(address, JoinRefused(f"room {record.room_id!r} is full", "full"))
            self._dispose_if_empty(record)
            return
        record.pending += 1
        self._joining[session_id] = address
        client = RoomClient(new_client_id(), address, room_id=record.room_id)
        driver = self._driver
        assert driver is not None

        def decided(seated: RoomClient | None, reason: str | None) -> None:
            driver.call(
                self._join_decided, session_id, record, seated, reason, options, request,
                rerouted,
            )

        self._runners[record.room_id].request_join(client, options, decided)

    def _join_decided(
        self,
        session_id: int,
        record: RoomRecord,
        client: RoomClient | None,
        reason: str | None,
        options: dict[str, Any],
        request: JoinRequest,
        rerouted: bool,
    ) -> None:
        """A room decided a join (on the I/O loop); the session may have moved or gone."""
        record.pending -= 1
        self._joining.pop(session_id, None)
        runner = self._runners.get(record.room_id)
        if runner is not None:
            runner.join_settled()
        endpoint = self._endpoint
        session = endpoint.session_by_id(session_id) if endpoint is not None else None
        address = session.address if session is not None else None
        if session is None or client is None or record.disposing or runner is None:
            if address is not None:
                self._answer(address, JoinRefused(reason or "the room closed", "refused"))
            self._dispose_if_empty(record)
            return
        if record.seated >= record.max_clients:
            # The room has fewer seats than it had when this join was placed (its on_create
            # set max_clients): matchmake again (every new room seats at least its first
            # join, so this ends), or refuse a join by id, or to a room of no seats, as full.
            self._dispose_if_empty(record)
            if request.room_id is not None or record.max_clients < 1:
                self._answer(address, JoinRefused(f"room {record.room_id!r} is full", "full"))
            else:
                self._join(address, dataclasses.replace(request, create=False), rerouted=True)
            return
        client.address = address
        record.seated += 1
        record.disposable = True
        self._seats[address] = _Seat(record, client)
        assert endpoint is not None
        endpoint.assign_cache(
            address, self._payloads_for(address, runner.cache, runner.viewed(), lambda: client)
        )
        endpoint.room_caches.add(runner.cache)
        window = runner.reconnection_window
        if window > 0:
            connection = session.connection
            connection.timeout = max(connection.timeout, SILENCE_BEFORE_WINDOW + window)
        runner.seat(client, options, session.connection.inputs_in)
        self._answer(address, Joined(
            record.room_id, record.room_type.name, client.id, window,
            float(runner.room.tick_interval), self._config.max_input_size,
        ))
        assert endpoint is not None
        endpoint.state_changed()

    def _payloads_for(
        self,
        address: Address,
        cache: PayloadCache,
        viewed: ViewedWorld | None,
        viewer: Callable[[], Any],
    ) -> PayloadCache:
        """What a client of a world is sent from: the world's cache, or its own view of it."""
        if viewed is None:
            return cache
        session = self._endpoint.sessions.get(address) if self._endpoint is not None else None
        sender = session.connection.state_out if session is not None else None
        budget = sender.budget if sender is not None else None
        payloads = self._viewer_payloads[address] = viewed.viewer(viewer, budget)
        return payloads

    def _follow(self, old: Address, new: Address) -> None:
        """A client's session moved to a new address: its seat and memberships follow."""
        payloads = self._viewer_payloads.pop(old, None)
        if payloads is not None:
            self._viewer_payloads[new] = payloads
        seat = self._seats.pop(old, None)
        if seat is not None:
            seat.client.address = new
            self._seats[new] = seat
        if old in self._world:
            self._world.discard(old)
            self._world.add(new)
            inputs = dict(self._world_inputs)
            moved = inputs.pop(old, None)
            if moved is not None:
                moved[0].address = new
                inputs[new] = moved
            self._world_inputs = inputs
        for session_id, address in list(self._joining.items()):
            if address == old:
                self._joining[session_id] = new

    def _leave_room(self, address: Address, reason: DisconnectReason) -> None:
        self._world.discard(address)
        payloads = self._viewer_payloads.pop(address, None)
        if payloads is not None and self._endpoint is not None:
            self._endpoint.forget_cache(payloads)
        if address in self._world_inputs:
            gone, _inputs = self._world_inputs[address]
            self._world_inputs = {
                key: seat for key, seat in self._world_inputs.items() if key != address
            }
            if self._machine is not None:
                self._machine.forget_client(gone)
        for session_id, joining in list(self._joining.items()):
            if joining == address:
                del self._joining[session_id]  # its decision, when it comes, finds no session
        seat = self._seats.pop(address, None)
        if seat is None:
            return
        record = seat.record
        record.seated -= 1
        consented = reason in (DisconnectReason.CLIENT_LEFT, DisconnectReason.SHUTDOWN_REQUEST)
        runner = self._runners.get(record.room_id)
        if runner is not None:
            runner.unseat(seat.client, consented)
        self._dispose_if_empty(record)

    def _dispose_if_empty(self, record: RoomRecord) -> None:
        if (
            not record.empty or record.disposing or not record.disposable
            or not record.room.auto_dispose or self._stopping_rooms
        ):
            return  # (a stopping server disposes of every room itself, and waits)
        record.disposing = True
        self._matchmaker.remove(record.room_id)
        runner = self._runners.pop(record.room_id, None)
        if runner is not None:
            runner.store.remove_listener(self._on_state_pushed)
            if self._endpoint is not None:
                self._endpoint.room_caches.discard(runner.cache)
                self._endpoint.forget_cache(runner.cache)
            runner.dispose()

    def _dispose_rooms(self) -> None:
        """The server stops: every room is disposed of at once, waited for together."""
        runners = list(self._runners.values())
        self._runners.clear()
        self._matchmaker.rooms.clear()
        disposals = [runner.dispose() for runner in runners]
        concurrent.futures.wait(disposals, timeout=ROOM_DISPOSE_WAIT)
        for runner in runners:
            runner.worker.stop(timeout=1.0)
        self._seats.clear()
        self._world.clear()
        self._world_inputs = {}
        self._joining.clear()

    def _answer(self, address: Address, message: Control) -> None:
        if self._endpoint is not None:
            self._endpoint.queue_event(
                address, control.encode(message), CONTROL_RETRIES, ControlToken()
            )

    def _room_seats(
        self, room_id: str, client_ids: list[str] | None
    ) -> list[tuple[Address, _Seat]]:
        """The seats of one room (all, or those of the given client ids), where they are now."""
        return [
            (address, seat) for address, seat in list(self._seats.items())
            if seat.record.room_id == room_id
            and (client_ids is None or seat.client.id in client_ids)
        ]

    def _room_send(
        self,
        room_id: str,
        client_ids: list[str] | None,
        payload: bytes,
        retries: int,
        callbacks: object,
    ) -> None:
        endpoint = self._endpoint
        if endpoint is None:
            return
        for address, seat in self._room_seats(room_id, client_ids):
            token = callbacks
            if isinstance(callbacks, EventCallbacks) and callbacks.on_ack is not None:
                on_ack, client_id = callbacks.on_ack, seat.client.id
                token = EventCallbacks(
                    lambda connection, on_ack=on_ack, client_id=client_id: on_ack(
                        connection, client_id
                    ),
                    None,
                )
            endpoint.queue_event(address, payload, retries, token)

    def _control(self, address: Address, event: Event) -> None:
        try:
            message = control.parse(event)
        except ProtocolError:
            if self._endpoint is not None:
                self._endpoint.drops["malformed control message"] += 1
            return
        if isinstance(message, JoinRequest):
            self._join(address, message)
        elif isinstance(message, ListRequest):
            listings = self._matchmaker.listings(message.room)
            self._answer(address, RoomList([dataclasses.asdict(item) for item in listings]))
        elif self._endpoint is not None:
            self._endpoint.drops["unexpected control message"] += 1

    # -- events --------------------------------------------------------------------------------

    def register_event_handler(
        self, event_type: str, event_handler_function: Callable[..., Any]
    ) -> None:
        """Call ``event_handler_function(*data, client_address=...)`` for events of this type.

        The handler gets ``client_address`` only if its signature accepts it. It may be a
        coroutine function. It runs on the server's handler thread, in arrival order.
        """
        self._handlers.register(event_type, event_handler_function)

    def on_client_joined(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``handler(client_address)`` whenever a client completes its handshake.

        Runs on the server's handler thread (a coroutine function runs on that thread's
        loop); a failure is logged and isolated. Returns the handler, so it also works as a
        decorator.
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

    def on_client_moved(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``handler(old_address, new_address)`` whenever a client's session moves.

        A session follows its client to a new address (a NAT that rebinds, a phone changing
        networks); from then on its events carry ``client_address=new_address``. A game that
        keys its players by address re-keys them here: the handler runs on the handler thread
        before this server's event handlers get any event from the new address (an
        ``event_wire`` such as a GameStateMachine handles its events in its own loop, in order
        among themselves). Same rules as :meth:`on_client_joined`.
        """
        if not callable(handler):
            raise TypeError("handler must be callable")
        self._move_handlers.append(handler)
        return handler

    max_pending_events: int = DEFAULT_MAX_PENDING_EVENTS
    """How many events may be unsettled (neither acknowledged nor given up) per client; one
    more makes :meth:`dispatch_event` raise :class:`~pygase_core.errors.EventQueueFullError`."""

    def dispatch_event(
        self,
        event_type: str,
        *args: Any,
        target_client: Address | str = "all",
        retries: int = 0,
        ack_callback: Callable[..., Any] | None = None,
        failure_callback: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Send an event to one client (by address) or to ``"all"``.

        The event is encoded here, so unsupported data raises ``TypeError`` in the caller.
        ``retries`` is how often it is resent if unacknowledged. ``ack_callback(connection)``
        runs once per client that acknowledged it, whenever that ack arrives while the
        connection lives; ``failure_callback(connection)`` runs once per client for which
        pygase gave the event up (see the event channel's rules in the docs).

        A client whose session is silent (an outage) gets the event when it is heard again.
        If a target has :attr:`max_pending_events` events unsettled, raises
        :class:`~pygase_core.errors.EventQueueFullError` and queues the event to nobody.
        """
        payload = self._config.encode_event(event_type, args, kwargs, retries)
        callbacks = EventCallbacks.of(ack_callback, failure_callback)
        driver, endpoint = self._driver, self._endpoint
        if driver is None or endpoint is None or driver.loop is None:
            raise NotConnectedError("the server is not running")
        if target_client != "all" and target_client not in endpoint.sessions:
            raise NotConnectedError(f"no client is connected from {target_client!r}")
        if target_client == "all":
            world = self._world
            targets = [address for address in list(endpoint.sessions) if address in world]
        else:
            targets = [target_client]
        self._reserve_then(
            targets, lambda: self._queue_event(payload, target_client, retries, callbacks)
        )

    def _reserve_then(self, targets: list[Address], queue: Callable[[], None]) -> None:
        """Count one more unsettled event for every target, then ``queue`` it on the loop.

        Raises :class:`~pygase_core.errors.EventQueueFullError` in the caller's thread, queueing
        to nobody, if any target already has :attr:`max_pending_events` unsettled.
        """
        driver, endpoint = self._driver, self._endpoint
        if driver is None or endpoint is None:
            return
        sessions = endpoint.sessions

        def queued(address: Address) -> Callable[[], int]:
            def count() -> int:
                session = sessions.get(address)
                return 0 if session is None else session.connection.game_events_in_flight
            return count

        pending = pending_for(endpoint)
        limit = self.max_pending_events
        full = pending.reserve([(address, queued(address)) for address in targets], limit)
        if full:
            raise EventQueueFullError(
                f"{limit} events to client {full[0]!r} are unsettled (neither acknowledged nor"
                " given up), the limit (Server.max_pending_events); queued to nobody"
            )

        driver.call(pending.hand_over, targets, queue)

    def _queue_event(
        self, payload: bytes, target: Address | str, retries: int, callbacks: object
    ) -> None:
        endpoint = self._endpoint
        if endpoint is None:
            return
        if target == "all":
            targets = [address for address in endpoint.sessions if address in self._world]
        else:
            targets = [target]
        for address in targets:
            endpoint.queue_event(address, payload, retries, callbacks)

    # -- notices from the protocol -------------------------------------------------------------

    def _on_state_pushed(self, time_order: int) -> None:
        """A world's state changed (any thread): tell the I/O loop.

        Pushes from many rooms' threads between two turns of the I/O loop share one wakeup
        (the driver queues calls from other threads behind a single one), and one pass over
        the sessions serves them all.
        """
        driver, endpoint = self._driver, self._endpoint
        if driver is None or endpoint is None:
            return
        driver.call(self._state_changed)

    def _state_changed(self) -> None:
        if self._endpoint is not None:
            self._endpoint.state_changed()

    def _on_notices(self, notices: Sequence[Any]) -> None:
        for notice in notices:
            if isinstance(notice, PeerNotice):
                inner = notice.notice
                if isinstance(inner, EventReceived):
                    self._client_event(notice.address, inner.payload)
                elif isinstance(inner, EventAcknowledged | EventGivenUp):
                    self._settled(notice.address, inner)
                elif isinstance(inner, PeerSilent):
                    logger.debug("client %s is silent", notice.address)
                elif isinstance(inner, PeerBack):
                    logger.debug("client %s is back", notice.address)
            elif isinstance(notice, ClientJoined):
                logger.info(
                    "client %s joined%s", notice.address, " (host)" if notice.is_host else ""
                )
                for handler in self._join_handlers:
                    self._worker.submit(handler, notice.address, what="join handler")
            elif isinstance(notice, ClientLeft):
                reason = notice.reason.name.lower().replace("_", " ")
                logger.info("client %s left: %s", notice.address, reason)
                self._leave_room(notice.address, notice.reason)
                for handler in self._leave_handlers:
                    self._worker.submit(handler, notice.address, reason, what="leave handler")
            elif isinstance(notice, ClientMoved):
                logger.info(
                    "client %s moved to %s (session %016x)",
                    notice.old_address, notice.new_address, notice.session_id,
                )
                self._follow(notice.old_address, notice.new_address)
                for handler in self._move_handlers:
                    self._worker.submit(
                        handler, notice.old_address, notice.new_address, what="move handler"
                    )
            elif isinstance(notice, StateTooLarge):
                logger.error("cannot send the game state: %s", notice.reason)
            elif isinstance(notice, HostChanged):
                logger.info("the host role passed to %s", notice.address)
            elif isinstance(notice, ShutdownRequested):
                logger.info("the host client %s asked the server to shut down", notice.address)
                self._request_stop()
            elif isinstance(notice, ShutdownRefused):
                logger.warning(
                    "client %s asked the server to shut down but is not the host; refused",
                    notice.address,
                )

    def _settled(self, address: Address, notice: EventAcknowledged | EventGivenUp) -> None:
        callbacks = notice.token
        if not isinstance(callbacks, EventCallbacks):
            return
        acked = isinstance(notice, EventAcknowledged)
        callback = callbacks.on_ack if acked else callbacks.on_failure
        if callback is None:
            return
        session = self._endpoint.sessions.get(address) if self._endpoint is not None else None
        connection = session.connection if session is not None else None
        what = "ack_callback" if acked else "failure_callback"
        self._worker.submit(callback, connection, what=what)

    def _client_event(self, address: Address, payload: bytes) -> None:
        decoded = self._endpoint.decode_event(payload) if self._endpoint is not None else None
        if decoded is None:
            return
        if control.is_control(decoded.event_type):
            self._control(address, decoded)
            return
        seat = self._seats.get(address)
        if seat is not None:
            runner = self._runners.get(seat.record.room_id)
            if runner is not None:
                runner.push_event(
                    Event(decoded.event_type, decoded.args, decoded.kwargs, address, seat.client)
                )
            return
        if address not in self._world:
            if self._endpoint is not None:
                self._endpoint.drops["event from a client in no room"] += 1
            return
        event = Event(decoded.event_type, decoded.args, decoded.kwargs, address)
        handler = self._handlers.get(event.event_type)
        handled = handler is not None
        if handler is not None:
            self._worker.submit(
                call_with_accepted_kwargs,
                handler,
                event.args,
                event.kwargs,
                {"client_address": address},
                what=f"the server's handler for {event.event_type!r}",
            )
        if self._event_wire is not None:
            self._event_wire(event)
        elif not handled:
            logger.warning("no handler for event type %r from %s", event.event_type, address)


def _event_wire(wire: object) -> Callable[[Event], None] | None:
    """The push method of an event wire, checked where the caller passes it."""
    if wire is None:
        return None
    push = getattr(wire, "push_event", None) or getattr(wire, "_push_event", None)
    if not callable(push):
        raise TypeError(
            "event_wire must have a push_event(event) method (a GameStateMachine, for example)"
        )
    return push  # type: ignore[no-any-return]


def announce_on_stderr() -> None:
    """Make pygase's INFO lines (where the server listens, who joined) reach stderr.

    Only for programs that configured no logging at all: ``python mygame.py`` should say where
    it listens. A program with its own logging setup keeps it untouched.
    """
    pygase_logger = logging.getLogger("pygase")
    if logging.getLogger().handlers or pygase_logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    pygase_logger.addHandler(handler)
    if pygase_logger.level == logging.NOTSET:
        pygase_logger.setLevel(logging.INFO)
