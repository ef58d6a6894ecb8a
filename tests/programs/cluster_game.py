"""The game a test cluster's nodes host: ``pygase node tests.programs.cluster_game:server``.

Rooms of type ``chase`` have 4 seats, a slow tick (the tests run hundreds of clients on two
cores) and no reconnection window, so a lost client's seat frees at once; ``mode`` keeps rooms of
different modes apart, and each room shows its mode as metadata.
"""

from __future__ import annotations

from typing import Any

from pygase_core import GameState, Room, Server


class Chase(Room):
    max_clients = 4
    tick_interval = 0.1
    reconnection_window = 0.0

    def on_create(self, options: dict[str, Any]) -> GameState:
        self.metadata = {"mode": options.get("mode", "classic")}
        return GameState(ticks=0)

    def time_step(self, game_state: GameState, dt: float) -> dict[str, Any]:
        return {"ticks": game_state.ticks + 1}


server = Server(max_clients=400, timeout=2.0)
server.define("chase", Chase, filter_by=("mode",), mode="classic")
