"""The ``arcade`` entry point of the ``pygase`` plugin group.

Every pygase client loads this module through its plugin manager, including headless bots on
machines without arcade, so it must stay cheap: it imports nothing from arcade. Its hooks only act
on clients that a :class:`pygase_arcade.PygaseWindow` created, recognised by the session the
window attaches to them; all other clients are left to other plugins or to the core's defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pygase_core.plugins import EventDispatcher, FrameSession, hookimpl, session_attribute

if TYPE_CHECKING:
    from pygase_core.client import Client

#: The name of the attribute through which the window marks the clients it owns.
SESSION_ATTRIBUTE = session_attribute("arcade")


def _session(client: Client) -> FrameSession | None:
    session = getattr(client, SESSION_ATTRIBUTE, None)
    return session if isinstance(session, FrameSession) else None


@hookimpl
def pygase_event_dispatcher(client: Client) -> EventDispatcher | None:
    """Run the handlers of a window's client on the window thread, during its next update."""
    session = _session(client)
    return None if session is None else session.dispatch_to_frame_thread


@hookimpl
def pygase_client_connected(client: Client) -> None:
    """Tell the window's session, so the game sees the status change on its own thread."""
    session = _session(client)
    if session is not None:
        session.on_client_connected()


@hookimpl
def pygase_client_disconnected(client: Client, reason: str) -> None:
    """Tell the window's session, so the game sees the reason on its own thread."""
    session = _session(client)
    if session is not None:
        session.on_client_disconnected(reason)


@hookimpl
def pygase_state_changed(client: Client, game_state: Any, time_order: int) -> None:
    """Copy the new state into the window's interpolation buffer."""
    session = _session(client)
    if session is not None:
        session.on_state_changed(game_state, time_order)


@hookimpl
def pygase_event_received(
    client: Client, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Queue the event for delivery on the window thread."""
    session = _session(client)
    if session is not None:
        session.on_event_received(event_type, args, kwargs)
