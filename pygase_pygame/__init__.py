"""pygame adapter for pygase: play a synchronized game from your own pygame loop.

Add :class:`PygaseClientMixin` to your game class and use ``self.pygase`` (a
:class:`PygameSession`) to connect, pump the network once per frame, draw from the frame's
snapshot and react to server events on the game's thread.

The names here are loaded lazily: the ``pygame`` entry point (:mod:`pygase_pygame.plugin`) lives
in this package, and every pygase client loads it, so importing the package itself must not
import pygame, which headless machines may not have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pygase_pygame.mixin import (
        PYGASE_EVENT,
        PYGASE_STATUS,
        PygameSession,
        PygaseClientMixin,
    )

__all__ = ["PYGASE_EVENT", "PYGASE_STATUS", "PygameSession", "PygaseClientMixin"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pygase_pygame import mixin

        return getattr(mixin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
