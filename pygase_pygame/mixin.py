"""The pygame side of the adapter: a session driven from the game's own loop, and a mixin.

pygame leaves the main loop to the game, so nothing here runs by itself. The game calls
:meth:`PygameSession.pump` (or :meth:`PygameSession.tick`, which wraps ``clock.tick``) once per
frame; that is where everything the network delivered reaches the game, on the game's thread:

* handlers registered with :meth:`PygameSession.register_event_handler` (or on the client) are
  called, and
* each server event is also posted into pygame's event queue as a :data:`PYGASE_EVENT` event
  with the attributes ``event_type`` (str), ``args`` (tuple) and ``kwargs`` (dict), and each
  connection change as a :data:`PYGASE_STATUS` event with ``status`` (a
  :class:`~pygase_core.edge.client.ClientStatus`) and ``reason`` (str or None).

Use whichever of the two suits the game; pump before ``pygame.event.get()`` to see the posted
events in the same frame. Events are only posted while pygame's display module is initialised,
since pygame's event queue does not exist before that.

Typical loop::

    class Game(PygaseClientMixin):
        pygase_interpolate = ("players.*.x", "players.*.y")

        def run(self) -> None:
            self.pygase.connect(8080)
            clock = pygame.time.Clock()
            while True:
                snapshot = self.pygase.tick(clock, 60)
                for event in pygame.event.get():
                    ...
                draw(snapshot)
                self.pygase.draw_stats(screen)
                pygame.display.flip()
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any, ClassVar

import pluggy
import pygame

from pygase_core.edge.client import ClientStatus
from pygase_core.edge.frames import FrameSession
from pygase_core.model.interpolation import Snapshot
from pygase_pygame.plugin import hooks

__all__ = ["PYGASE_EVENT", "PYGASE_STATUS", "PygameSession", "PygaseClientMixin"]

#: pygame event type of server events posted by :meth:`PygameSession.pump`.
PYGASE_EVENT: int = pygame.event.custom_type()
#: pygame event type of connection changes posted by :meth:`PygameSession.pump`.
PYGASE_STATUS: int = pygame.event.custom_type()

Color = tuple[int, int, int] | tuple[int, int, int, int]


class PygameSession(FrameSession):
    """A :class:`~pygase_core.edge.frames.FrameSession` that speaks pygame.

    Args:
        interpolate: dotted paths of numeric state fields to interpolate, such as
            ``("players.*.x", "players.*.y")``.
        interpolation_delay: seconds to render in the past; ``None`` adapts to about two server
            update intervals.
        post_events: whether to post :data:`PYGASE_EVENT` and :data:`PYGASE_STATUS` events.
        plugin_manager: the client's plugin manager; by default one with all installed plugins.
        **kwargs: passed on to :class:`~pygase_core.edge.frames.FrameSession`.
    """

    def __init__(
        self,
        *,
        interpolate: Iterable[str] = (),
        interpolation_delay: float | None = None,
        post_events: bool = True,
        plugin_manager: pluggy.PluginManager | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            "pygame",
            hooks,
            interpolate=interpolate,
            interpolation_delay=interpolation_delay,
            plugin_manager=plugin_manager,
            **kwargs,
        )
        self.post_events = post_events
        self._font: pygame.font.Font | None = None
        self._font_size = 0

    def tick(self, clock: pygame.time.Clock, framerate: int = 0) -> Snapshot | None:
        """End the frame, wait for the next one with ``clock.tick(framerate)``, then pump.

        A drop-in for the ``clock.tick`` call at the end (or start) of a pygame loop.
        """
        self.end_frame()
        clock.tick(framerate)
        return self.pump()

    def on_server_event(
        self, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Post the server event into pygame's event queue as a :data:`PYGASE_EVENT`."""
        self._post(PYGASE_EVENT, event_type=event_type, args=args, kwargs=kwargs)

    def on_status_changed(self, status: ClientStatus, reason: str | None) -> None:
        """Post the connection change into pygame's event queue as a :data:`PYGASE_STATUS`."""
        self._post(PYGASE_STATUS, status=status, reason=reason)

    def _post(self, pygame_type: int, **attributes: Any) -> None:
        if self.post_events and pygame.display.get_init():
            pygame.event.post(pygame.event.Event(pygame_type, attributes))

    def draw_stats(
        self,
        surface: pygame.Surface,
        topleft: tuple[int, int] = (4, 4),
        *,
        color: Color = (255, 255, 255),
        background: Color | None = (0, 0, 0),
        font_size: int = 18,
    ) -> pygame.Rect:
        """Draw the one-line connection overlay (RTT, loss, kB/s in and out) onto ``surface``.

        Uses pygame's default font, so it needs no font file.

        Returns:
            the area drawn over.
        """
        if self._font is None or self._font_size != font_size:
            if not pygame.font.get_init():
                pygame.font.init()
            self._font = pygame.font.Font(None, font_size)
            self._font_size = font_size
        text = self._font.render(self.stats_text(), True, color, background)
        return surface.blit(text, topleft)


class PygaseClientMixin:
    """Give a pygame game class a pygase client as ``self.pygase``.

    The game keeps its own loop; see :mod:`pygase_pygame.mixin` for how events and states reach
    it. Configure the session with class (or instance) attributes, read when ``self.pygase`` is
    first used:

    * ``pygase_interpolate``: dotted paths of numeric fields to interpolate.
    * ``pygase_interpolation_delay``: seconds to render in the past, or ``None`` to adapt.
    * ``pygase_post_events``: whether to post pygame events for server events and status.
    * ``pygase_plugin_manager``: a plugin manager for the client, or ``None`` for the default.

    Everything else lives on the session, under one attribute, so the mixin cannot clash with
    the game's own method names.
    """

    #: pygame event type of posted server events (same as :data:`PYGASE_EVENT`).
    PYGASE_EVENT: ClassVar[int] = PYGASE_EVENT
    #: pygame event type of posted connection changes (same as :data:`PYGASE_STATUS`).
    PYGASE_STATUS: ClassVar[int] = PYGASE_STATUS

    pygase_interpolate: Sequence[str] = ()
    pygase_interpolation_delay: float | None = None
    pygase_post_events: bool = True
    pygase_plugin_manager: pluggy.PluginManager | None = None

    @cached_property
    def pygase(self) -> PygameSession:
        """This game's pygase session, created on first use."""
        return PygameSession(
            interpolate=self.pygase_interpolate,
            interpolation_delay=self.pygase_interpolation_delay,
            post_events=self.pygase_post_events,
            plugin_manager=self.pygase_plugin_manager,
        )
