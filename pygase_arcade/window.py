"""The arcade side of the adapter: a window (and view) that pump a pygase session.

arcade owns the main loop, so :class:`PygaseWindow` hooks into it. Once per frame, before the
frame's updates, the window pumps its :class:`ArcadeSession`. That is where everything the
network delivered reaches the game, on the window's thread:

* handlers registered with :meth:`ArcadeSession.register_event_handler` (or on the client) are
  called;
* each server event is dispatched as the window event ``on_pygase_event(event_type, args,
  kwargs)``, and each connection change as ``on_pygase_status(status, reason)``: define those
  methods on the window or on the shown view;
* :attr:`ArcadeSession.snapshot` is replaced by the state to draw this frame.

At the end of each frame, when ``on_draw`` is done and the window flips its buffers, it draws
the optional stats overlay on top and tells plugins the frame has ended.

Where exactly the pump happens depends on the loop. arcade's normal loop (pyglet's) dispatches
``on_update`` as an event, and the window pumps right before that dispatch, ahead of any view
or pushed handler. arcade's headless mode calls ``on_update`` directly, bypassing dispatch, so
there the window pumps right after each flip instead, for the frame that follows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import arcade
import pluggy
from pyglet.event import EventDispatcher

from pygase_arcade.plugin import hooks
from pygase_core.edge.client import ClientStatus
from pygase_core.edge.frames import FrameSession

__all__ = ["ArcadeSession", "PygaseView", "PygaseWindow"]


class ArcadeSession(FrameSession):
    """A :class:`~pygase_core.edge.frames.FrameSession` that delivers to an arcade window.

    Created by :class:`PygaseWindow`; the arguments are those of the window.
    """

    def __init__(
        self,
        window: PygaseWindow,
        *,
        interpolate: Iterable[str] = (),
        interpolation_delay: float | None = None,
        plugin_manager: pluggy.PluginManager | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            "arcade",
            hooks,
            interpolate=interpolate,
            interpolation_delay=interpolation_delay,
            plugin_manager=plugin_manager,
            **kwargs,
        )
        self._window = window
        self._stats_text: arcade.Text | None = None

    def on_server_event(
        self, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Dispatch the server event as the window event ``on_pygase_event``."""
        self._dispatch("on_pygase_event", event_type, args, kwargs)

    def on_status_changed(self, status: ClientStatus, reason: str | None) -> None:
        """Dispatch the connection change as the window event ``on_pygase_status``."""
        self._dispatch("on_pygase_status", status, reason)

    def _dispatch(self, event_type: str, *args: Any) -> None:
        # Straight to the handlers: pyglet windows queue events dispatched outside their own
        # event processing (always, in arcade's headless loop), but this already runs on the
        # window thread at the right moment of the frame.
        EventDispatcher.dispatch_event(self._window, event_type, *args)

    def draw_stats(
        self,
        x: float = 6,
        y: float = 6,
        *,
        color: tuple[int, int, int, int] = (255, 255, 255, 255),
        font_size: float = 11,
    ) -> None:
        """Draw the one-line connection overlay (RTT, loss, kB/s in and out) in screen space.

        ``(x, y)`` is the text's bottom left corner, by default the window's bottom left. The
        window calls this by itself before each flip when created with ``show_stats=True``.
        """
        if self._stats_text is None:
            self._stats_text = arcade.Text(
                "", x, y, color, font_size, anchor_x="left", anchor_y="bottom"
            )
        text = self._stats_text
        text.text = self.stats_text()
        text.x, text.y = x, y
        text.color = color
        text.font_size = font_size
        self._window.default_camera.use()
        text.draw()


class PygaseWindow(arcade.Window):
    """An ``arcade.Window`` connected to a pygase server through ``self.pygase``.

    Args:
        *args, **kwargs: passed on to ``arcade.Window`` (width, height, title, ...).
        interpolate: dotted paths of numeric state fields to interpolate, such as
            ``("players.*.x", "players.*.y")``.
        interpolation_delay: seconds to render in the past; ``None`` adapts to about two server
            update intervals.
        show_stats: whether to draw the connection overlay after every ``on_draw``.
        plugin_manager: the client's plugin manager; by default one with all installed plugins.
    """

    # A copy, not an append: pyglet's register_event_type would add the new types to the list
    # shared with every other arcade window class.
    event_types: ClassVar[list[str]] = [
        *arcade.Window.event_types,
        "on_pygase_event",
        "on_pygase_status",
    ]

    def __init__(
        self,
        *args: Any,
        interpolate: Iterable[str] = (),
        interpolation_delay: float | None = None,
        show_stats: bool = False,
        plugin_manager: pluggy.PluginManager | None = None,
        **kwargs: Any,
    ) -> None:
        self.pygase = ArcadeSession(
            self,
            interpolate=interpolate,
            interpolation_delay=interpolation_delay,
            plugin_manager=plugin_manager,
        )
        self.show_stats = show_stats
        self._pygase_pumped = False
        super().__init__(*args, **kwargs)

    def dispatch_event(self, *args: Any) -> Any:
        """Pump the session before the frame's ``on_update`` is dispatched.

        Intercepting the dispatch, rather than asking subclasses to call ``super().on_update``,
        keeps the pump first even for views and for handlers pushed onto the window.
        """
        if args[0] == "on_update" and not self._pygase_pumped:
            self._pygase_pump()
        return super().dispatch_event(*args)

    def flip(self) -> None:
        """Draw the overlay and end the frame, then show it (see the module docstring)."""
        if self.show_stats:
            self.pygase.draw_stats()
        self.pygase.end_frame()
        self._pygase_pumped = False
        super().flip()
        if self.headless:
            self._pygase_pump()

    def _pygase_pump(self) -> None:
        self.pygase.pump()
        self._pygase_pumped = True

    def on_pygase_event(
        self, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> bool | None:
        """Receive a server event on the window thread; override to react."""
        return None

    def on_pygase_status(self, status: ClientStatus, reason: str | None) -> bool | None:
        """Receive a connection change on the window thread; override to react."""
        return None

    def close(self) -> None:
        """Leave the server before the window goes away."""
        self.pygase.disconnect()
        super().close()


class PygaseView(arcade.View):
    """An ``arcade.View`` for a :class:`PygaseWindow`, with the window's session as ``pygase``.

    Shown on a :class:`PygaseWindow`, a view receives ``on_pygase_event`` and
    ``on_pygase_status`` like any other window event, before the window itself.
    """

    @property
    def pygase(self) -> ArcadeSession:
        """The session of the window showing this view."""
        window = self.window
        if not isinstance(window, PygaseWindow):
            raise TypeError("a PygaseView must be shown on a PygaseWindow")
        return window.pygase

    def on_pygase_event(
        self, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> bool | None:
        """Receive a server event on the window thread; override to react."""
        return None

    def on_pygase_status(self, status: ClientStatus, reason: str | None) -> bool | None:
        """Receive a connection change on the window thread; override to react."""
        return None
