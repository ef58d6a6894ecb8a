"""The ``arcade`` entry point of the ``pygase`` plugin group: ``pygase_arcade.plugin:hooks``.

Every pygase client loads it through its plugin manager, including headless bots on machines
without arcade, so it imports nothing from arcade. Its hooks act only on clients that a
:class:`pygase_arcade.PygaseWindow` created; others are left to other plugins.
"""

from __future__ import annotations

from pygase_core.edge.frames import FrameSessionHooks

hooks = FrameSessionHooks("arcade")
"""The plugin object the entry point names."""
