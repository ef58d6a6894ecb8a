"""The plugin system that connects a :class:`~pygase_core.client.Client` to a game framework.

The core knows nothing about pygame, arcade or any other frame loop. Instead, the client calls
the hooks specified here at fixed points of its life, and framework adapters (``pygase_pygame``,
``pygase_arcade``, or third-party packages) implement them. Adapters are found through the
entry-point group ``pygase``, so installing an adapter is all it takes to make it available.

Order in which a client calls the hooks:

1. :meth:`PygaseHookSpecs.pygase_client_created` at the end of ``Client.__init__``.
2. :meth:`PygaseHookSpecs.pygase_event_dispatcher` once while connecting, to decide on which
   thread the client's event handlers run.
3. :meth:`PygaseHookSpecs.pygase_client_connected` once the handshake has completed.
4. :meth:`PygaseHookSpecs.pygase_state_changed` and :meth:`PygaseHookSpecs.pygase_event_received`
   as updates and events arrive, interleaved in arrival order.
5. :meth:`PygaseHookSpecs.pygase_client_disconnected` last.

:meth:`PygaseHookSpecs.pygase_frame_started` and :meth:`PygaseHookSpecs.pygase_frame_ended` are
not called by the client but by adapters, around each frame of the host framework, so that other
plugins (profilers, recorders, overlays) can observe frames without knowing the framework.

Set the environment variable ``PYGASE_DISABLE_PLUGINS`` to a comma-separated list of entry-point
names (for example ``arcade`` or ``pygame,arcade``) to keep those plugins from being loaded.

:class:`FrameSession` is what the pygame and arcade adapters have in common, built on these hooks:
a client whose events, status changes and interpolated states reach the game on its own thread,
once per frame. A new adapter for another frame-loop framework subclasses it and adds a plugin
module like ``pygase_pygame.plugin``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import pluggy

from pygase_core.errors import UsageError
from pygase_core.interpolation import Snapshot, SnapshotInterpolator

if TYPE_CHECKING:
    from pygase_core.client import Client, ClientStatus

__all__ = [
    "DISABLE_ENV_VAR",
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "EventDispatcher",
    "FrameSession",
    "PygaseHookSpecs",
    "disabled_plugin_names",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "session_attribute",
]

#: The pluggy project name; hook implementations must be marked with the matching :data:`hookimpl`.
PROJECT_NAME = "pygase"
#: The entry-point group through which adapters announce their plugin module.
ENTRY_POINT_GROUP = "pygase"
#: The environment variable listing entry-point names that must not be loaded.
DISABLE_ENV_VAR = "PYGASE_DISABLE_PLUGINS"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: What :meth:`PygaseHookSpecs.pygase_event_dispatcher` returns: a function that accepts a
#: zero-argument callable (one event handler invocation) and arranges for it to run on the thread
#: that owns the game, typically by queueing it until the next frame.
EventDispatcher = Callable[[Callable[[], object]], None]


class PygaseHookSpecs:
    """The hooks a pygase plugin may implement.

    Implementations may accept any subset of a hook's arguments, by name. Hooks documented as
    called on the client's I/O thread must return quickly: that thread also keeps the connection
    alive, so a slow hook looks like network lag to everyone.
    """

    @hookspec
    def pygase_client_created(self, client: Client) -> None:
        """Notice a new client, at the end of its ``__init__``.

        Called on the thread that created the client, before any connection exists, so plugins
        can attach per-client bookkeeping early.
        """

    @hookspec
    def pygase_client_connected(self, client: Client) -> None:
        """React to a completed handshake.

        Called on the client's I/O thread. From here on, the client sends and receives.
        """

    @hookspec
    def pygase_client_disconnected(self, client: Client, reason: str) -> None:
        """React to the end of a connection, whether asked for, timed out or refused.

        Called on the client's I/O thread; ``reason`` is the human-readable explanation that also
        ends up in ``client.disconnect_reason``.
        """

    @hookspec
    def pygase_state_changed(self, client: Client, game_state: Any, time_order: int) -> None:
        """Observe the synchronized game state right after a server update was applied.

        Called on the client's I/O thread with the client's state lock held. ``game_state`` is
        the live :class:`~pygase_core.gamestate.GameState`, which the next update mutates:
        implementations copy what they need (for example into an interpolation buffer) and
        return at once. ``time_order`` is the server's ordering number of the applied update.
        """

    @hookspec
    def pygase_event_received(
        self, client: Client, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Observe a server event before it is dispatched to the client's handlers.

        Called on the client's I/O thread, for every event, whether or not a handler is
        registered for its type. Implementations must not mutate ``args`` or ``kwargs``.
        """

    @hookspec(firstresult=True)
    def pygase_event_dispatcher(self, client: Client) -> EventDispatcher | None:
        """Choose how the client's event handlers reach the game.

        Asked once when the client connects. An adapter that owns ``client`` returns a function
        that takes a zero-argument callable (running the handler for one event) and makes it run
        on the game's frame thread. Adapters must return ``None`` for clients they did not create,
        so that several adapters can be installed side by side. The first non-``None`` answer
        wins; with no answer the client calls handlers itself on its I/O thread, which is what a
        headless bot wants.
        """

    @hookspec
    def pygase_frame_started(self, client: Client, frame_time: float) -> None:
        """Observe the start of a frame of the host framework.

        Called by adapters on the frame thread, after incoming events and state for this frame
        have been taken over; ``frame_time`` is the adapter's monotonic clock reading in seconds.
        """

    @hookspec
    def pygase_frame_ended(self, client: Client, frame_time: float) -> None:
        """Observe the end of a frame of the host framework.

        Called by adapters on the frame thread once the frame has been drawn (or, where the
        framework does not say, when the next frame begins); ``frame_time`` is the adapter's
        monotonic clock reading in seconds.
        """


def disabled_plugin_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """Return the entry-point names listed in ``PYGASE_DISABLE_PLUGINS``.

    Spaces and empty items are ignored, so ``"pygame, ,arcade"`` reads as two names.
    """
    value = (os.environ if environ is None else environ).get(DISABLE_ENV_VAR, "")
    return [name.strip() for name in value.split(",") if name.strip()]


def get_plugin_manager() -> pluggy.PluginManager:
    """Build a plugin manager with the pygase hooks and all installed, enabled plugins.

    A new manager is built on every call rather than once at import time, so that importing
    pygase is cheap and side-effect free, and so that tests and programs with several clients
    can give each its own set of plugins.

    Raises:
        pluggy.PluginValidationError: if a loaded plugin implements a hook that does not exist
            (typically a misspelled name), so the mistake surfaces at start-up rather than as a
            hook that silently never fires.
    """
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(PygaseHookSpecs)
    for name in disabled_plugin_names():
        manager.set_blocked(name)
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    manager.check_pending()
    return manager


# -- the shared part of frame-loop adapters -------------------------------------------------------


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
    """Run one :class:`~pygase_core.client.Client` on behalf of a game with a frame loop.

    This is the framework-neutral core of the pygame and arcade adapters. The client's I/O thread
    only appends to a queue and copies states into a :class:`SnapshotInterpolator`; everything
    the game sees happens in :meth:`pump`, on the game's own thread, once per frame: event
    handlers run, status changes are announced and the frame's :attr:`snapshot` is taken. That
    way game code never needs a lock and never races the network.

    Args:
        adapter: the adapter's entry-point name (``"pygame"``, ``"arcade"``); it names the
            plugin that must be registered and the attribute that marks the client as owned.
        plugin: the adapter's plugin module, registered on ``plugin_manager`` if the entry point
            did not load it (for example with a hand-made manager).
        interpolate: dotted paths of numeric state fields to interpolate, e.g.
            ``("players.*.x", "players.*.y")``; see :mod:`pygase_core.interpolation`.
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
        from pygase_core.client import Client

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

    def connect(self, port: int, hostname: str = "localhost") -> None:
        """Connect to a server; returns once the handshake succeeded, I/O continues in a thread.

        Raises:
            ConnectionFailed: (or a subclass) if the server refused or did not answer.
        """
        self.interpolator.clear()
        self.snapshot = None
        self.client.connect_in_thread(port, hostname)

    def disconnect(self, shutdown_server: bool = False) -> None:
        """Leave the server; with ``shutdown_server`` a host client also stops it."""
        self.client.disconnect(shutdown_server=shutdown_server)

    def dispatch_event(self, event_type: str, *args: Any, **kwargs: Any) -> None:
        """Send an event to the server (see :meth:`Client.dispatch_event`)."""
        self.client.dispatch_event(event_type, *args, **kwargs)

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
        self.snapshot = self.interpolator.sample(now)
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
        """Whether the client is disconnected, connecting or connected, right now."""
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

    # -- what the adapter's plugin module calls, on the client's I/O thread ----------------------

    def dispatch_to_frame_thread(self, thunk: Callable[[], object]) -> None:
        """Queue one handler invocation for the next :meth:`pump` (the event dispatcher)."""
        self._inbox.append(thunk)

    def on_client_connected(self) -> None:
        """Queue the announcement of a completed handshake."""
        from pygase_core.client import ClientStatus

        self._inbox.append(partial(self.on_status_changed, ClientStatus.CONNECTED, None))

    def on_client_disconnected(self, reason: str) -> None:
        """Queue the announcement of the connection's end."""
        from pygase_core.client import ClientStatus

        self._inbox.append(partial(self.on_status_changed, ClientStatus.DISCONNECTED, reason))

    def on_state_changed(self, game_state: Any, time_order: int) -> None:
        """Copy the live state into the interpolation buffer, stamped with its arrival time."""
        self.interpolator.push(state_as_dict(game_state), time_order)

    def on_event_received(
        self, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Queue the announcement of a server event for the next :meth:`pump`."""
        self._inbox.append(partial(self.on_server_event, event_type, args, kwargs))
