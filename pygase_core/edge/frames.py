"""What frame-loop adapters (pygame, arcade, and others) have in common.

A :class:`FrameSession` runs one client for a game with a frame loop: the client's I/O thread only
queues events and copies states, and everything the game sees happens in ``pump()``, on the
game's own thread, once per frame. :class:`FrameSessionHooks` is the plugin an adapter registers
through the ``pygase`` entry points: it acts only on the clients its own sessions created. A new
adapter subclasses :class:`FrameSession` and exposes a ``FrameSessionHooks(name)`` instance as its
entry point.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

import pluggy

from pygase_core.errors import UsageError
from pygase_core.model.interpolation import Snapshot, SnapshotInterpolator
from pygase_core.model.prediction import DEFAULT_MAX_CORRECTION, Prediction, Step
from pygase_core.plugins import DISABLE_ENV_VAR, EventDispatcher, get_plugin_manager, hookimpl

if TYPE_CHECKING:
    from pygase_core.edge.client import Client, ClientStatus

__all__ = ["FrameSession", "FrameSessionHooks", "session_attribute", "state_as_dict"]


def session_attribute(adapter: str) -> str:
    """Return the client attribute through which adapter ``adapter`` marks the clients it owns.

    Each adapter's plugin module acts only on clients carrying its own attribute, which is how
    several adapters can be installed at once without claiming each other's clients.
    """
    return f"_pygase_{adapter}_session"


def state_as_dict(game_state: Any) -> dict[str, Any]:
    """Return the fields of a game state (or any mapping or plain object) as a new dict."""
    if isinstance(game_state, dict):
        return dict(game_state)
    to_dict = getattr(game_state, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    return {key: value for key, value in vars(game_state).items() if not key.startswith("_")}


class FrameSession:
    """Run one :class:`~pygase_core.Client` on behalf of a game with a frame loop.

    This is the framework-neutral core of the pygame and arcade adapters. The client's I/O thread
    only appends to a queue and copies states into a :class:`SnapshotInterpolator`; everything
    the game sees happens in :meth:`pump`, on the game's own thread, once per frame: event
    handlers run, status changes are announced and the frame's :attr:`snapshot` is taken. That
    way game code never needs a lock and never races the network. With :meth:`predict`, the
    snapshot's own entity is the predicted one (other entities stay interpolated), and
    :meth:`send_input` sends the frame's input.

    Args:
        adapter: the adapter's entry-point name (``"pygame"``, ``"arcade"``); it names the
            plugin that must be registered and the attribute that marks the client as owned.
        plugin: the adapter's :class:`FrameSessionHooks`, registered on ``plugin_manager`` if
            the entry point did not load it (for example with a hand-made manager).
        interpolate: dotted paths of numeric state fields to interpolate, e.g.
            ``("players.*.x", "players.*.y")``; see :mod:`pygase_core.model.interpolation`.
        interpolation_delay: how far in the past to render, in seconds; ``None`` adapts to
            about two server update intervals.
        max_extrapolation: how long named fields keep moving when updates are late, in seconds.
        plugin_manager: the manager for the client; by default :func:`get_plugin_manager`.
        clock: monotonic time source in seconds.

    Raises:
        UsageError: if the adapter's plugin is disabled through ``PYGASE_DISABLE_PLUGINS``,
            because without it events could not reach the frame thread.
    """

    def __init__(
        self,
        adapter: str,
        plugin: object,
        *,
        interpolate: Iterable[str] = (),
        interpolation_delay: float | None = None,
        max_extrapolation: float = 0.05,
        plugin_manager: pluggy.PluginManager | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from pygase_core.edge.client import Client

        manager = get_plugin_manager() if plugin_manager is None else plugin_manager
        if manager.is_blocked(adapter):
            raise UsageError(
                f"the {adapter!r} plugin is disabled (see {DISABLE_ENV_VAR}), but its adapter"
                " is in use: remove it from the list"
            )
        if not manager.has_plugin(adapter) and not manager.is_registered(plugin):
            manager.register(plugin, name=adapter)
        self.adapter = adapter
        self._clock = clock
        self.interpolator = SnapshotInterpolator(
            interpolate,
            delay=interpolation_delay,
            max_extrapolation=max_extrapolation,
            clock=clock,
        )
        self._inbox: deque[Callable[[], object]] = deque()
        self._frame_open = False
        self.snapshot: Snapshot | None = None
        """The state to draw this frame, taken by the last :meth:`pump` (None before the first)."""
        self.client = Client(plugin_manager=manager)
        """The underlying client, for anything this session does not wrap."""
        setattr(self.client, session_attribute(adapter), self)

    # -- what the game calls, on its own thread --------------------------------------------------

    def connect(
        self,
        port: int,
        hostname: str = "localhost",
        *,
        room: str | None = None,
        room_id: str | None = None,
        create: bool = False,
        options: dict[str, Any] | None = None,
        connect_token: Any = None,
    ) -> None:
        """Connect to a server; returns once joined, I/O continues in a thread.

        The room arguments are :meth:`Client.connect`'s: ``room`` to matchmake into a room
        type, ``create`` for a new room, ``room_id`` for one room, ``options`` for the join.

        Raises:
            ConnectionFailed: (or a subclass) if the server refused or did not answer.
        """
        self.interpolator.clear()
        self.snapshot = None
        self.client.connect_in_thread(
            port, hostname, connect_token=connect_token, room=room, room_id=room_id,
            create=create, options=options,
        )

    def disconnect(self, shutdown_server: bool = False) -> None:
        """Leave the server; with ``shutdown_server`` a host client also stops it."""
        self.client.disconnect(shutdown_server=shutdown_server)

    def dispatch_event(self, event_type: str, *args: Any, **kwargs: Any) -> None:
        """Send an event to the server (see :meth:`Client.dispatch_event`)."""
        self.client.dispatch_event(event_type, *args, **kwargs)

    def send_input(self, value: Any) -> int | None:
        """Send this frame's input (see :meth:`Client.send_input`); call it every frame.

        With a :meth:`predict` declaration the current :attr:`snapshot` shows the input's
        effect at once, so the frame drawn after this call already has the own entity moved.
        """
        tick = self.client.send_input(value)
        if tick is not None and self.snapshot is not None:
            self._overlay(self.snapshot, sample=False)
        return tick

    def predict(
        self,
        path: str,
        step: Step,
        *,
        max_correction: float = DEFAULT_MAX_CORRECTION,
        smooth: Iterable[str] | None = None,
    ) -> None:
        """Predict the own entity (see :meth:`Client.predict`); every snapshot includes it."""
        self.client.predict(
            path, step, max_correction=max_correction,
            smooth=None if smooth is None else tuple(smooth),
        )

    @property
    def prediction(self) -> Prediction | None:
        """The own entity's prediction (see :attr:`Client.prediction`): its ``stats`` count
        mispredictions and how far corrections moved the entity. None before joining."""
        return self.client.prediction

    @property
    def predicting(self) -> bool:
        """Whether snapshots show the own entity predicted; set False to show it as the
        server last said (inputs are sent either way), to feel the difference."""
        return self.client.predicting

    @predicting.setter
    def predicting(self, on: bool) -> None:
        self.client.predicting = bool(on)

    def _overlay(self, snapshot: Snapshot, sample: bool) -> None:
        """Put the predicted own entity into the snapshot (``sample``: a new frame's)."""
        prediction = self.client.prediction
        if prediction is None:
            return
        entity = prediction.sample() if sample else prediction.current()
        if entity is None or not self.client.predicting:
            return
        data: Any = snapshot._data
        *parents, last = prediction.path
        for part in parents:
            child = data.get(part) if isinstance(data, dict) else None
            if not isinstance(child, dict):
                return
            data = child
        data[last] = entity

    def register_event_handler(self, event_type: str, handler: Callable[..., Any]) -> None:
        """Have ``handler(*args, **kwargs)`` called for server events of this type.

        The handler runs on the game's thread, inside :meth:`pump`.
        """
        self.client.register_event_handler(event_type, handler)

    def pump(self) -> Snapshot | None:
        """Start a frame: deliver what arrived, then take this frame's snapshot.

        Call it once per frame from the game's thread, before reading input and drawing. Ends
        the previous frame first if :meth:`end_frame` was not called. Event handlers and ack
        callbacks run here; coroutine functions among them are run to completion here too, so
        keep them short, as anything else that runs in a frame.

        Returns:
            the new :attr:`snapshot`, or ``None`` while no state has been received.
        """
        now = self._clock()
        self._end_frame(now)
        while True:
            try:
                delivery = self._inbox.popleft()
            except IndexError:
                break
            result = delivery()
            if inspect.iscoroutine(result):  # an ack callback that is a coroutine function
                asyncio.run(result)
        snapshot = self.snapshot = self.interpolator.sample(now)
        if snapshot is not None:
            self.client.view = snapshot.time_order
            self._overlay(snapshot, sample=True)
        self._frame_open = True
        self.client.plugin_manager.hook.pygase_frame_started(client=self.client, frame_time=now)
        return self.snapshot

    def end_frame(self) -> None:
        """Mark the current frame as drawn, for plugins watching ``pygase_frame_ended``."""
        self._end_frame(self._clock())

    def _end_frame(self, now: float) -> None:
        if self._frame_open:
            self._frame_open = False
            self.client.plugin_manager.hook.pygase_frame_ended(client=self.client, frame_time=now)

    @property
    def status(self) -> ClientStatus:
        """Whether the client is disconnected, connecting, connected or reconnecting, right now.

        Reconnecting (an outage) is not announced through :meth:`on_status_changed`: the
        session lives on, so the game sees only its end if it ends.
        """
        return self.client.status

    @property
    def disconnect_reason(self) -> str | None:
        """Why the last connection ended, or ``None`` while connected or before connecting."""
        return self.client.disconnect_reason

    def status_text(self) -> str:
        """Describe the connection status in a few words, for a status line."""
        status = self.client.status.value
        reason = self.client.disconnect_reason
        return f"{status}: {reason}" if reason else status

    def stats_text(self) -> str:
        """Summarize round-trip time, loss and traffic in one line, for an overlay."""
        stats = self.client.stats
        if stats is None:
            return self.status_text()
        rtt = "-" if stats.rtt is None else f"{stats.rtt * 1000:.0f} ms"
        return (
            f"RTT {rtt}  loss {stats.packet_loss * 100:.1f}%"
            f"  in {stats.kbps_in:.1f} kB/s  out {stats.kbps_out:.1f} kB/s"
        )

    # -- what adapters override ------------------------------------------------------------------

    def on_server_event(
        self, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Announce a server event to the game; runs in :meth:`pump`, before its handlers.

        The base class does nothing; adapters turn events into their framework's own events.
        """

    def on_status_changed(self, status: ClientStatus, reason: str | None) -> None:
        """Announce a connection or disconnection to the game; runs in :meth:`pump`.

        The base class does nothing; adapters turn it into their framework's own events.
        """

    # -- what the adapter's FrameSessionHooks call, on the client's I/O thread -----------------

    def dispatch_to_frame_thread(self, thunk: Callable[[], object]) -> None:
        """Queue one handler invocation for the next :meth:`pump` (the event dispatcher)."""
        self._inbox.append(thunk)

    def on_client_connected(self) -> None:
        """Queue the announcement of a completed handshake."""
        from pygase_core.edge.client import ClientStatus

        self._inbox.append(partial(self.on_status_changed, ClientStatus.CONNECTED, None))

    def on_client_disconnected(self, reason: str) -> None:
        """Queue the announcement of the connection's end."""
        from pygase_core.edge.client import ClientStatus

        self._inbox.append(partial(self.on_status_changed, ClientStatus.DISCONNECTED, reason))

    def on_state_changed(self, game_state: Any, time_order: int) -> None:
        """Copy the live state into the interpolation buffer, stamped with its arrival time."""
        self.interpolator.push(state_as_dict(game_state), time_order)

    def on_event_received(
        self, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Queue the announcement of a server event for the next :meth:`pump`."""
        self._inbox.append(partial(self.on_server_event, event_type, args, kwargs))


class FrameSessionHooks:
    """The plugin of one frame-loop adapter: routes a client's hooks to the session that owns it.

    Several adapters can be installed at once; each acts only on clients carrying its own
    session attribute (see :func:`session_attribute`) and leaves all others alone.
    """

    def __init__(self, adapter: str) -> None:
        self.adapter = adapter
        self._attribute = session_attribute(adapter)

    def __repr__(self) -> str:
        return f"FrameSessionHooks({self.adapter!r})"

    def _session(self, client: Client) -> FrameSession | None:
        session = getattr(client, self._attribute, None)
        return session if isinstance(session, FrameSession) else None

    @hookimpl
    def pygase_event_dispatcher(self, client: Client) -> EventDispatcher | None:
        """Run the handlers of a session's client on the game's thread, during its next pump."""
        session = self._session(client)
        return None if session is None else session.dispatch_to_frame_thread

    @hookimpl
    def pygase_client_connected(self, client: Client) -> None:
        """Tell the session, so the game sees the status change on its own thread."""
        session = self._session(client)
        if session is not None:
            session.on_client_connected()

    @hookimpl
    def pygase_client_disconnected(self, client: Client, reason: str) -> None:
        """Tell the session, so the game sees the reason on its own thread."""
        session = self._session(client)
        if session is not None:
            session.on_client_disconnected(reason)

    @hookimpl
    def pygase_state_changed(self, client: Client, game_state: Any, time_order: int) -> None:
        """Copy the new state into the session's interpolation buffer."""
        session = self._session(client)
        if session is not None:
            session.on_state_changed(game_state, time_order)

    @hookimpl
    def pygase_event_received(
        self, client: Client, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Queue the event for delivery on the game's thread."""
        session = self._session(client)
        if session is not None:
            session.on_event_received(event_type, args, kwargs)
