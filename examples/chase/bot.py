"""A headless chase player: ``python -m examples.chase.bot [--name Robo] [--port 8080]``.

It uses the plain pygase ``Client`` without any game framework: its event handlers run on the
client's network thread, and it reads the state under the client's lock a few times per second.
As the chaser it heads for the nearest player; as a runner it keeps away from the chaser and
from walls, and wanders while the chaser is far away.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import threading
import time
from typing import Any

from examples.chase import rules
from examples.chase.common import InputSender
from pygase_core import Client, ClientStatus

#: A runner starts fleeing once the chaser is this close, in pixels.
FLEE_DISTANCE = 250.0
#: Walls closer than this push a fleeing runner away, in pixels.
WALL_MARGIN = 80.0
THINK_SECONDS = 0.05
#: While the session lives (through an outage, too), the bot plays on.
ALIVE = (ClientStatus.CONNECTED, ClientStatus.RECONNECTING)


def choose_direction(
    game_state: Any, own_id: str, rng: random.Random, wander: tuple[float, float]
) -> tuple[float, float]:
    """Decide where the bot's player should go, as a direction of length at most 1."""
    players = game_state.players
    me = players[own_id]
    chaser_id = game_state.chaser
    if chaser_id == own_id:
        others = [p for pid, p in players.items() if pid != own_id]
        if not others:
            return (0.0, 0.0)
        target = min(others, key=lambda p: math.hypot(p["x"] - me["x"], p["y"] - me["y"]))
        return _unit(target["x"] - me["x"], target["y"] - me["y"])
    chaser = players.get(chaser_id) if chaser_id is not None else None
    if chaser is None:
        return wander
    away_x, away_y = me["x"] - chaser["x"], me["y"] - chaser["y"]
    distance = math.hypot(away_x, away_y)
    if distance > FLEE_DISTANCE:
        return wander
    flee_x, flee_y = _unit(away_x, away_y) if distance else _unit(rng.random(), rng.random())
    # Walls push back harder the closer they are, so the runner slides along them instead of
    # running into a corner at once.
    flee_x += _wall_push(me["x"], rules.ARENA_WIDTH)
    flee_y += _wall_push(me["y"], rules.ARENA_HEIGHT)
    return _unit(flee_x, flee_y)


def _wall_push(position: float, size: float) -> float:
    push = 0.0
    if position < WALL_MARGIN:
        push += (WALL_MARGIN - position) / WALL_MARGIN * 1.5
    if size - position < WALL_MARGIN:
        push -= (WALL_MARGIN - (size - position)) / WALL_MARGIN * 1.5
    return push


def _unit(x: float, y: float) -> tuple[float, float]:
    length = math.hypot(x, y)
    return (x / length, y / length) if length else (0.0, 0.0)


class ChaseBot:
    """A chase player driven by :func:`choose_direction` on a plain :class:`Client`."""

    def __init__(self, name: str, seed: int | None = None) -> None:
        self.name = name
        self.client = Client()
        self.player_id: str | None = None
        self.tags_seen = 0
        self._rng = random.Random(seed)
        self._welcomed = threading.Event()
        self.client.register_event_handler("WELCOME", self._on_welcome)
        self.client.register_event_handler("TAG", self._on_tag)

    def _on_welcome(self, player_id: str) -> None:
        self.player_id = player_id
        self._welcomed.set()

    def _on_tag(self, tagger: str, tagged: str) -> None:
        self.tags_seen += 1

    def run(self, port: int, hostname: str = "localhost", duration: float | None = None) -> None:
        """Connect, join and play until ``duration`` seconds passed or the server went away."""
        self.client.connect_in_thread(port, hostname)
        sender = InputSender(self.client.dispatch_event)
        deadline = math.inf if duration is None else time.monotonic() + duration
        wander = _unit(self._rng.uniform(-1, 1), self._rng.uniform(-1, 1))
        next_wander = time.monotonic() + 2.0
        try:
            while self.client.status in ALIVE and time.monotonic() < deadline:
                if not self._welcomed.is_set():
                    # JOIN is resent until the server welcomes us: events may get lost.
                    self.client.dispatch_event("JOIN", self.name)
                    self._welcomed.wait(0.5)
                    continue
                if time.monotonic() > next_wander:
                    wander = _unit(self._rng.uniform(-1, 1), self._rng.uniform(-1, 1))
                    next_wander = time.monotonic() + 2.0
                with self.client.access_game_state() as game_state:
                    own_id = self.player_id
                    if own_id is not None and own_id in game_state.players:
                        direction = choose_direction(game_state, own_id, self._rng, wander)
                    else:
                        direction = (0.0, 0.0)
                sender.update(direction)
                time.sleep(THINK_SECONDS)
        finally:
            if self.client.status is ClientStatus.CONNECTED:
                self.client.dispatch_event("LEAVE")
            self.client.disconnect()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and play."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost", help="server address")
    parser.add_argument("--port", type=int, default=8080, help="server port")
    parser.add_argument("--name", default="Robo", help="player name")
    parser.add_argument("--duration", type=float, default=None, help="seconds to play")
    parser.add_argument("--seed", type=int, default=None, help="seed for wandering")
    args = parser.parse_args(argv)
    bot = ChaseBot(args.name, seed=args.seed)
    with contextlib.suppress(KeyboardInterrupt):
        bot.run(args.port, args.host, args.duration)
    print(f"{args.name}: {bot.client.disconnect_reason or 'done'}", flush=True)


if __name__ == "__main__":
    main()
