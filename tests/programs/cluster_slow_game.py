"""A node's game whose rooms take longer to make than a node's registry entry lives.

``pygase node tests.programs.cluster_slow_game:server``: ``on_create`` of a ``slow`` room takes
:data:`MAKING` seconds (a level loaded from disk, say), longer than the 3 s a node's entry lives
after its last heartbeat.
"""

from __future__ import annotations

import time
from typing import Any

from pygase_core import GameState, Room, Server

MAKING = 4.0


class Slow(Room):
    max_clients = 4

    def on_create(self, options: dict[str, Any]) -> GameState:
        time.sleep(MAKING)
        return GameState()


server = Server()
server.define("slow", Slow)
