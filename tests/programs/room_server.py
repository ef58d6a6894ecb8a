"""A rooms server in its own process that reports its rooms' lifecycle on stdout.

Usage: python -m tests.programs.room_server WINDOW
Prints ``PORT <n>`` once it listens, then ``JOIN <id>``, ``LEAVE <id> <consented>`` and
``DISPOSE <room id>`` as they happen, until its stdin closes (or it is killed).
"""

from __future__ import annotations

import sys
from typing import Any

from pygase_core import GameState, Room, RoomClient, Server


def say(line: str) -> None:
    print(line, flush=True)


class Watched(Room):
    max_clients = 4

    def time_step(self, game_state: GameState, dt: float) -> dict[str, Any]:
        return {"ticks": game_state.ticks + 1}

    def on_create(self, options: dict[str, Any]) -> GameState:
        return GameState(ticks=0)

    def on_join(self, client: RoomClient, options: dict[str, Any], game_state: GameState) -> None:
        say(f"JOIN {client.id}")

    def on_leave(self, client: RoomClient, consented: bool, game_state: GameState) -> None:
        say(f"LEAVE {client.id} {consented}")

    def on_dispose(self) -> None:
        say(f"DISPOSE {self.room_id}")


def main(window: float) -> None:
    room = type("WatchedRoom", (Watched,), {"reconnection_window": window})
    server = Server()
    server.define("watched", room)
    server.run_in_thread(0, "127.0.0.1")
    say(f"PORT {server.port}")
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main(float(sys.argv[1]))
