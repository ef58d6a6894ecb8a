"""The ``pygame`` entry point of the ``pygase`` plugin group: ``pygase_pygame.plugin:hooks``.

Every pygase client loads it through its plugin manager, including headless bots on machines
without pygame, so it imports nothing from pygame. Its hooks act only on clients that a
:class:`pygase_pygame.PygaseClientMixin` created; others are left to other plugins.
"""

from __future__ import annotations

from pygase_core.edge.frames import FrameSessionHooks

hooks = FrameSessionHooks("pygame")
"""The plugin object the entry point names."""
