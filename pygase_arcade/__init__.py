"""arcade adapter for pygase: a window that keeps a synchronized game state and its events.

Subclass :class:`PygaseWindow` instead of ``arcade.Window``; ``self.pygase`` (an
:class:`ArcadeSession`) connects, and the window pumps it before every ``on_update``, so each
frame has a consistent :attr:`~pygase_core.edge.frames.FrameSession.snapshot` and server events
arrive on the window's thread. :class:`PygaseView` gives views the same session.

The names here are loaded lazily: the ``arcade`` entry point (:mod:`pygase_arcade.plugin`) lives
in this package, and every pygase client loads it, so importing the package itself must not
import arcade, which headless machines may not have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pygase_arcade.window import ArcadeSession, PygaseView, PygaseWindow

__all__ = ["ArcadeSession", "PygaseView", "PygaseWindow"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pygase_arcade import window

        return getattr(window, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
