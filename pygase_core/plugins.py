"""The plugin system that connects a :class:`~pygase_core.Client` to a game framework.

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

The adapters' shared machinery, built on these hooks, is in :mod:`pygase_core.edge.frames`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pygase_core.edge.client import Client

__all__ = [
    "DISABLE_ENV_VAR",
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "EventDispatcher",
    "PygaseHookSpecs",
    "disabled_plugin_names",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
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
        the live :class:`~pygase_core.model.gamestate.GameState`, which the next update mutates:
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
