"""Rooms: many game worlds in one server, each with its own state, game loop and clients.

Subclass :class:`Room` and register it with ``Server.define(name, RoomClass)``. Each room runs
on a thread of its own (a :class:`~pygase_core.edge.worker.HandlerThread`), where its game loop
(a :class:`~pygase_core.GameStateMachine`) steps and every hook runs, one at a time: a room whose
handler raises or blocks stalls nobody else. Hooks that take ``game_state`` (``time_step``,
``on_join``, ``on_leave`` and event handlers) run inside a step and return update dicts, as in
the original PyGaSe, so what they return is in the very state the clients then see.

Inputs (``Client.send_input``) reach :meth:`Room.on_input`, once per step and client, in tick
order, before ``time_step``; :meth:`Room.predict` declares the step the clients predict with,
which the default ``on_input`` applies. :meth:`Room.world_at` gives the world as a client saw
it when it made its input (lag compensation).

The :class:`RoomRunner` is the server's side of a room: it creates it, asks it about joins,
seats and unseats clients, pauses its loop while nobody is seated and disposes of it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pygase_core.edge.worker import EventCallbacks, HandlerThread
from pygase_core.errors import JoinRefusedError, UsageError
from pygase_core.model.codec import check_value
from pygase_core.model.events import Event
from pygase_core.model.gamestate import GameState
from pygase_core.model.handlers import Handler
from pygase_core.model.history import HistoricalState, StateHistory
from pygase_core.model.precision import PrecisionValue
from pygase_core.model.prediction import Step, apply_input, check_declaration
from pygase_core.model.statemachine import GameStateMachine
from pygase_core.model.store import GameStateStore
from pygase_core.model.views import View, ViewRules
from pygase_core.protocol.connection import ConnectionConfig
from pygase_core.protocol.inputs import InputReceiver
from pygase_core.protocol.statesync import PayloadCache
from pygase_core.protocol.viewsync import ViewedWorld

__all__ = ["Room", "RoomClient", "RoomRunner"]

_JOIN = "\x00room join"
_LEAVE = "\x00room leave"


@dataclass(eq=False)
class RoomClient:
    """A seated client, as its room sees it.

    ``id`` stays the same for the seat's whole life, also across a reconnection from a new
    address (``address`` is where the client is now). ``auth`` is what ``on_auth`` returned.
    """

    id: str
    address: Any
    auth: Any = None
    joined_at: float = field(default_factory=time.time)
    room_id: str = ""

    def __repr__(self) -> str:
        return f"RoomClient(id={self.id!r}, address={self.address!r})"


class Room:
    """One game world: subclass it and override the hooks you need.

    Class attributes (an instance may change them in :meth:`on_create`):

    * ``max_clients``: seats (default 8);
    * ``tick_interval``: seconds between game loop steps (default 0.02);
    * ``reconnection_window``: seconds a dropped client's seat is held for it to come back
      (default 10). The seat lasts as long as its session does, at least the server's
      ``timeout`` of silence; the window makes that ``1 + reconnection_window`` seconds
      when it is longer. With 0, a seat lasts only the server's ``timeout``;
    * ``auto_dispose``: dispose of the room once its last seat is free (default True);
    * ``precision``: declared precision of the room's state (see
      :class:`~pygase_core.GameStateStore`), None for float64 everywhere; a class attribute or
      set in ``__init__``, since the store is made before :meth:`on_create`;
    * ``views``: per-client view rules of the room's state (see :mod:`pygase_core.model.views`),
      whose callables are given the :class:`RoomClient`; read when the first client is seated,
      so :meth:`on_create` may set them;
    * ``history_seconds``: how far back :meth:`world_at` reaches (default 1).
    """

    max_clients: int = 8
    tick_interval: float = 0.02
    reconnection_window: float = 10.0
    auto_dispose: bool = True
    precision: Mapping[str, PrecisionValue] | None = None
    views: Sequence[View] = ()
    history_seconds: float = 1.0

    def __init__(self) -> None:
        self.room_id = ""
        """This room's random, unguessable id (set before :meth:`on_create`)."""
        self.name = ""
        """The room type's name, as given to ``Server.define``."""
        self.clients: list[RoomClient] = []
        """The seated clients, in the order they joined (changed only on the room's thread)."""
        self._metadata: dict[str, Any] = {}
        self._locked = False
        self.private = False
        """A private room is never offered by matchmaking or listed; join it by its id."""
        self._runner: RoomRunner | None = None
        self._prediction: tuple[tuple[str, ...], Step] | None = None

    # -- hooks -----------------------------------------------------------------------------------

    def on_create(self, options: dict[str, Any]) -> GameState | None:
        """Called once, before the first client joins; returns the room's initial state."""
        return GameState()

    def time_step(self, game_state: GameState, dt: float) -> dict[str, Any] | None:
        """One step of the room's simulation; returns a dict of changes (None: no change)."""
        return None

    def on_input(
        self, client: RoomClient, value: Any, game_state: GameState, dt: float
    ) -> dict[str, Any] | None:
        """One client's input for this step; returns a dict of changes (None: no change).

        Runs inside a step, after its events and before :meth:`time_step`, at most once per
        client per step, with each client's inputs in tick order; ``dt`` is the tick interval.
        By default it applies the step declared with :meth:`predict`.
        """
        if self._prediction is None:
            return None
        segments, step = self._prediction
        return apply_input(segments, step, client.id, value, game_state, dt)

    def on_auth(self, client: RoomClient, options: dict[str, Any]) -> Any:
        """Decide whether ``client`` may join; raise ``JoinRefusedError(reason)`` to refuse.

        What it returns becomes ``client.auth``. Runs on the room's thread, before the seat is
        taken, so ``client`` is not in :attr:`clients` yet.
        """
        return None

    def on_join(
        self, client: RoomClient, options: dict[str, Any], game_state: GameState
    ) -> dict[str, Any] | None:
        """A client took a seat (inside a step); returns a dict of changes or None."""
        return None

    def on_leave(
        self, client: RoomClient, consented: bool, game_state: GameState
    ) -> dict[str, Any] | None:
        """A client left (``consented``) or its reconnection window ran out; returns changes."""
        return None

    def on_dispose(self) -> None:
        """The room is going away (its last client left, or the server stops)."""

    # -- the room's API --------------------------------------------------------------------------

    def predict(self, path: str, step: Step) -> None:
        """Declare how an input moves its client's entity: the step clients predict with.

        ``path`` names the entity with ``{me}`` for the client's id (``"players.{me}"``),
        ``step(entity, value, dt)`` returns the entity after one input. The default
        :meth:`on_input` applies it; clients declare the same with ``Client.predict``.
        """
        self._prediction = (check_declaration(path, step), step)

    def world_at(self, client: RoomClient) -> HistoricalState | None:
        """The world as ``client`` saw it when it made its latest applied input.

        For fair hit tests: the state the client was showing then (its view, which is its
        state less its interpolation delay), from a history of about :attr:`history_seconds`;
        a view older than that is clamped to the oldest state kept (``clamped`` is set).
        None before the client's first input; ``ValueError`` for a client not seated here
        (in :meth:`on_leave` the leaving client still is).
        """
        if not isinstance(client, RoomClient):
            raise TypeError(f"world_at takes a RoomClient, not {type(client).__name__}")
        machine = self._require_runner().machine
        if all(seated.id != client.id for seated in self.clients):
            raise ValueError(f"world_at: client {client.id!r} is not seated in this room")
        return machine.view_of(client.id)

    @property
    def state_history(self) -> StateHistory | None:
        """The room's recent states by time_order (``state_history.at(time_order)``), kept
        from the first input on, about :attr:`history_seconds` long (None: no input yet)."""
        return self._require_runner().machine.history

    @property
    def metadata(self) -> dict[str, Any]:
        """A dict shown in room listings (for example a map name or a mode)."""
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        if not isinstance(value, dict):
            raise TypeError("metadata must be a dict")
        check_value(value, "a room's metadata")
        self._metadata = value

    @property
    def locked(self) -> bool:
        """Whether the room takes no new clients through matchmaking (a room id still works)."""
        return self._locked

    def lock(self) -> None:
        """Stop offering this room to matchmaking and listings."""
        self._locked = True

    def unlock(self) -> None:
        """Offer this room again (while it has a seat free)."""
        self._locked = False

    def register_event_handler(self, event_type: str, event_handler_function: Handler) -> None:
        """Call ``fn`` for client events of this type, inside the room's game loop steps.

        Handlers get the event's data plus those of ``game_state``, ``dt``, ``client`` (the
        :class:`RoomClient`) and ``client_address`` their signature accepts, and return a dict
        of changes (or None), as in the original PyGaSe.
        """
        self._require_runner().machine.register_event_handler(event_type, event_handler_function)

    def dispatch_event(
        self,
        event_type: str,
        *args: Any,
        target_client: RoomClient | str = "all",
        retries: int = 0,
        ack_callback: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Send an event to every seated client (``"all"``) or to one (a RoomClient or its id).

        ``ack_callback(client)`` runs on the room's thread once per client that acknowledged
        it. Unsupported data raises ``TypeError`` here; a client with the server's
        ``max_pending_events`` unsettled (a long outage) makes it raise
        :class:`~pygase_core.errors.EventQueueFullError`, and the event goes to nobody.
        """
        self._require_runner().dispatch(event_type, args, kwargs, target_client, retries,
                                        ack_callback)

    def _require_runner(self) -> RoomRunner:
        if self._runner is None:
            raise UsageError(
                "this room is not running yet: use it from its hooks (on_create and later)"
            )
        return self._runner


class RoomLink(Protocol):
    """What a room needs from its server (called from the room's thread)."""

    def send(
        self, client_ids: list[str] | None, payload: bytes, retries: int, callbacks: object
    ) -> None: ...


JoinDone = Callable[[RoomClient | None, str | None], None]
"""Called with the seated-to-be client, or None and the reason it was refused."""


class RoomRunner:
    """The server's handle on one room: its thread, game loop, store and shared payloads."""

    def __init__(
        self,
        room: Room,
        name: str,
        room_id: str,
        options: dict[str, Any],
        link: RoomLink,
        config: ConnectionConfig,
    ) -> None:
        self.room = room
        self.name = name
        self.room_id = room_id
        self.options = options
        self._link = link
        self._config = config
        for attribute, default in _room_defaults().items():
            if attribute not in vars(room):  # a subclass __init__ that skipped Room's
                setattr(room, attribute, default)
        room.room_id, room.name = room_id, name
        room._runner = self
        self.worker = HandlerThread(f"pygase-room-{name}-{room_id}")
        self.store = GameStateStore(GameState(), precision=room.precision)
        self.store.max_update_size = config.max_state_size
        self.cache = PayloadCache(self.store, config.max_state_size)
        self._viewed: ViewedWorld | None = None
        self.machine = GameStateMachine(self.store)
        self.machine.time_step = room.time_step  # type: ignore[method-assign, assignment]
        self.machine.on_input = room.on_input  # type: ignore[method-assign]
        self._inputs: dict[str, tuple[RoomClient, InputReceiver]] = {}
        """Each seated client's jitter buffer (replaced, never changed: the room reads it)."""
        self.machine.input_source = lambda: self._inputs.values()
        self.machine.register_event_handler(_JOIN, self._seat)
        self.machine.register_event_handler(_LEAVE, self._unseat)
        self._created: concurrent.futures.Future[None] | None = None
        self._loop_task: asyncio.Future[None] | None = None
        self.seated = 0
        """Clients with a seat, as the server counts them (its I/O loop)."""
        self._deciding = 0
        """Joins asked for and not decided yet."""
        self._counting = threading.Lock()

    def viewed(self) -> ViewedWorld | None:
        """The room's views (made from ``room.views`` at the first seat), or None without."""
        if self._viewed is None:
            rules = ViewRules(self.room.views)
            if rules:
                self._viewed = ViewedWorld(self.cache, rules)
        return self._viewed

    @property
    def reconnection_window(self) -> float:
        return float(self.room.reconnection_window)

    # -- called on the server's I/O loop ---------------------------------------------------------

    def request_join(self, client: RoomClient, options: dict[str, Any], done: JoinDone) -> None:
        """Create the room if need be, then ask ``on_auth``; ``done`` runs on the room thread."""
        with self._counting:
            self._deciding += 1  # until the server settles it: join_settled
        if self._created is None:
            self._created = self.worker.run_coroutine(self._create(), start=True)
        self.worker.run_coroutine(self._authorize(client, options, done), start=True)

    def create(self) -> concurrent.futures.Future[None]:
        """Run ``on_create`` now (not at the first join); the thread ends again when idle."""
        if self._created is None:
            self._created = self.worker.run_coroutine(self._create(), start=True)
            self.worker.run_coroutine(self._pause(), start=True)
        return self._created

    def join_settled(self) -> None:
        """The server seated or refused a join this room decided (on the I/O loop)."""
        with self._counting:
            self._deciding -= 1
        if self.seated == 0 and self._deciding == 0:
            self.worker.run_coroutine(self._pause(), start=True)

    def seat(
        self, client: RoomClient, options: dict[str, Any], inputs: InputReceiver | None = None
    ) -> None:
        """Give ``client`` its seat: ``on_join`` runs in the next step; the loop runs.

        ``inputs`` is the client's jitter buffer, which each step takes its input from.
        """
        self.seated += 1
        if inputs is not None:
            self._inputs = {**self._inputs, client.id: (client, inputs)}
        self.machine.push_event(Event(_JOIN, (client, options), {}, client.address, client))
        self.worker.run_coroutine(self._resume(), start=True)

    def unseat(self, client: RoomClient, consented: bool) -> None:
        """Free ``client``'s seat: ``on_leave`` runs; with nobody left the loop pauses."""
        self.seated -= 1
        self._inputs = {key: seat for key, seat in self._inputs.items() if key != client.id}
        self.machine.push_event(Event(_LEAVE, (client, consented), {}, client.address, client))
        if self.seated == 0:
            self.worker.run_coroutine(self._pause(), start=True)

    def push_event(self, event: Event) -> None:
        """A seated client's game event, for the next step."""
        self.machine.push_event(event)

    def dispose(self) -> concurrent.futures.Future[None]:
        """Stop the loop, run the last ``on_leave`` and ``on_dispose`` once, end the thread.

        Returns the future of the disposal (it resolves in any thread).
        """
        future = self.worker.run_coroutine(self._dispose(), start=True)
        future.add_done_callback(lambda _done: self.worker.stop(timeout=0))
        return future

    # -- on the room's thread --------------------------------------------------------------------

    async def _create(self) -> None:
        try:
            state = self.room.on_create(dict(self.options))
        except Exception as error:
            self.worker.failures.failed(f"{self.name}.on_create", error)
            state = None
        self._check_attributes()
        if state is None:
            state = GameState()
        if not isinstance(state, GameState):
            self.worker.failures.failed(
                f"{self.name}.on_create",
                TypeError(f"on_create returned {type(state).__name__}, expected a GameState"),
            )
            state = GameState()
        self.store.replace_state(state)

    async def _authorize(
        self, client: RoomClient, options: dict[str, Any], done: JoinDone
    ) -> None:
        await self._authorize_once(client, options, done)

    async def _authorize_once(
        self, client: RoomClient, options: dict[str, Any], done: JoinDone
    ) -> None:
        if self._created is not None:
            await asyncio.wrap_future(self._created)
        try:
            client.auth = self.room.on_auth(client, dict(options))
            if asyncio.iscoroutine(client.auth):
                client.auth = await client.auth
        except JoinRefusedError as refusal:
            done(None, refusal.reason)
            return
        except Exception as error:
            self.worker.failures.failed(f"{self.name}.on_auth", error)
            done(None, "the room could not decide on the join")
            return
        try:
            self.viewed()  # views set in on_create are checked here, never on the I/O loop
        except (TypeError, ValueError) as error:
            self.worker.failures.failed(f"{self.name}.views", error)
            done(None, "the room's views are not valid")  # (without them it would tell secrets)
            return
        done(client, None)

    async def _run_loop(self) -> None:
        with contextlib.suppress(RuntimeError):  # already running
            await self.machine.run_game_loop_async(float(self.room.tick_interval))

    async def _resume(self) -> None:
        """Run the game loop if anybody is seated and it is not running (room thread)."""
        if self.seated > 0 and not self.machine.running:
            self._loop_task = asyncio.ensure_future(self._run_loop())
            await asyncio.sleep(0)  # let it claim the machine before anything checks again

    async def _stop_loop(self) -> None:
        """Stop the game loop and wait until its step in progress (if any) has finished."""
        if not await self.machine.stop_async() and self._loop_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._loop_task)

    def _check_attributes(self) -> None:
        """What ``on_create`` may have set must still work; else the class's values hold."""
        room, cls = self.room, type(self.room)
        seats = room.max_clients
        if isinstance(seats, bool) or not isinstance(seats, int):
            self.worker.failures.failed(f"{self.name}.on_create", TypeError(
                f"max_clients must be an int, not {seats!r}"))
            room.max_clients = cls.max_clients
        tick = room.tick_interval
        if isinstance(tick, bool) or not isinstance(tick, int | float) or not tick > 0:
            self.worker.failures.failed(f"{self.name}.on_create", ValueError(
                f"tick_interval must be a number of seconds above 0, not {tick!r}"))
            room.tick_interval = cls.tick_interval
        try:
            self.machine.history_seconds = room.history_seconds
        except (TypeError, ValueError) as error:
            self.worker.failures.failed(f"{self.name}.on_create", error)
            room.history_seconds = cls.history_seconds  # checked by Server.define
            self.machine.history_seconds = cls.history_seconds
        window = room.reconnection_window
        if isinstance(window, bool) or not isinstance(window, int | float) or not window >= 0:
            self.worker.failures.failed(f"{self.name}.on_create", ValueError(
                f"reconnection_window must be 0 or more seconds, not {window!r}"))
            room.reconnection_window = cls.reconnection_window

    async def _pause(self) -> None:
        """Stop the game loop while nobody is seated: an idle room costs no CPU."""
        if self.seated > 0:
            return
        await self._stop_loop()
        await self.machine.apply_events_async()  # the last on_leave, before the pause
        await self._resume()  # somebody may have taken a seat meanwhile
        # Nobody seated, no join being decided: the thread ends until the next join, so an
        # idle room holds no thread, no event loop and no CPU.
        self.worker.stop_if(lambda: self.seated == 0 and self._deciding == 0)

    async def _dispose(self) -> None:
        await self._stop_loop()
        await self.machine.apply_events_async()
        self._call_dispose_here()

    def _call_dispose_here(self) -> None:
        try:
            self.room.on_dispose()
        except Exception as error:
            self.worker.failures.failed(f"{self.name}.on_dispose", error)

    def _seat(self, client: RoomClient, options: dict[str, Any], game_state: GameState) -> Any:
        self.room.clients.append(client)
        return self.room.on_join(client, options, game_state)

    def _unseat(self, client: RoomClient, consented: bool, game_state: GameState) -> Any:
        self.machine.forget_client(client)
        try:
            return self.room.on_leave(client, consented, game_state)
        finally:
            if client in self.room.clients:
                self.room.clients.remove(client)

    # -- the room's own calls --------------------------------------------------------------------

    def dispatch(
        self,
        event_type: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        target: RoomClient | str,
        retries: int,
        ack_callback: Callable[..., Any] | None,
    ) -> None:
        payload = self._config.encode_event(event_type, args, kwargs, retries)
        if ack_callback is not None and not callable(ack_callback):
            raise TypeError("ack_callback must be callable or None")
        if target == "all":
            client_ids = None
        elif isinstance(target, RoomClient):
            client_ids = [target.id]
        elif isinstance(target, str):
            client_ids = [target]
        else:
            raise TypeError("target_client must be 'all', a RoomClient or a client id")
        callbacks = None
        if ack_callback is not None:
            worker, seats = self.worker, self.room.clients

            def acknowledged(connection: object, client_id: str) -> None:
                client = next((c for c in list(seats) if c.id == client_id), None)
                worker.submit(ack_callback, client, what="a room's ack_callback")

            callbacks = EventCallbacks(acknowledged, None)
        self._link.send(client_ids, payload, retries, callbacks)


def _room_defaults() -> dict[str, Any]:
    """The instance attributes Room.__init__ sets, with their initial values."""
    blank = object.__new__(Room)
    Room.__init__(blank)
    return {key: value for key, value in vars(blank).items() if key != "_runner"}


def new_client_id() -> str:
    """A seat's stable id: random, URL-safe."""
    return secrets.token_urlsafe(8)
