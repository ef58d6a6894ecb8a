"""A headless chase player: ``python -m examples.chase.bot [--name Robo] [--port 8080]``.

It joins a room like any player: the best open one by default, a new private one with
``--private``, or the one with a given id with ``--room ID``.

It uses the plain pygase ``Client`` without any game framework: its event handlers run on the
client's handler thread, and it reads the state under the client's lock a few times per second.
As the chaser it heads for the nearest player; as a runner it keeps away from the chaser and
from walls, and wanders while the chaser is far away.

It prints a line when it connects, one with the room and player it joined as, one for each tag
in its room, a status line every few seconds (``--status-every``) and one when its connection
ends, with the reason.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import time
from collections.abc import Callable
from typing import Any

from examples.chase import common, rules
from examples.chase.common import InputSender
from pygase_core import Client, ClientStatus, PygaseError

#: A runner starts fleeing once the chaser is this close, in pixels.
FLEE_DISTANCE = 250.0
#: Walls closer than this push a fleeing runner away, in pixels.
WALL_MARGIN = 80.0
THINK_SECONDS = 0.05
#: Seconds between the bot's status lines.
STATUS_SECONDS = 5.0
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


def status_report(game_state: Any, own_id: str) -> str:
    """Describe in one line where the bot's player is and whom it sees, for its periodic print."""
    players = game_state.players
    me = players[own_id]
    role = "the chaser" if own_id == game_state.chaser else "running"
    others = sorted(str(p["name"]) for pid, p in players.items() if pid != own_id)
    seen = f"{len(others)} other player{'' if len(others) == 1 else 's'}"
    if others:
        seen += f" ({', '.join(others)})"
    return f"at ({me['x']:.0f}, {me['y']:.0f}), {role}, {me['tags']} tags, sees {seen}"


class ChaseBot:
    """A chase player driven by :func:`choose_direction` on a plain :class:`Client`.

    It joins the best open room, or the room ``room_id``, or (``private``) a new private room.
    It reports what it does through ``out`` (``print`` by default): when it connected and
    which room it joined, each tag in its room, every ``status_seconds`` where it is and whom it
    sees, and when and why its connection ended.
    """

    def __init__(
        self,
        name: str,
        seed: int | None = None,
        *,
        room_id: str | None = None,
        private: bool = False,
        status_seconds: float = STATUS_SECONDS,
        out: Callable[[str], None] = print,
    ) -> None:
        self.name = name
        self.client = Client()
        self.room_id = room_id
        """The room's id: the one asked for, then the one joined."""
        self.private = private
        self.player_id: str | None = None
        """The own player's id: this client's seat id, known once joined."""
        self.tags_seen = 0
        self.status_seconds = status_seconds
        self._out = out
        self._rng = random.Random(seed)
        self.client.register_event_handler("TAG", self._on_tag)

    def _say(self, text: str) -> None:
        self._out(f"{self.name}: {text}")

    def _on_tag(self, tagger: str, tagged: str) -> None:
        """Say who tagged whom (``TAG`` handler, on the client's handler thread)."""
        self.tags_seen += 1
        with self.client.access_game_state() as game_state:
            players = getattr(game_state, "players", {})
            tagger_name, tagged_name = (
                players.get(pid, {}).get("name", pid) for pid in (tagger, tagged)
            )
        self._say(f"{tagger_name} tagged {tagged_name}")

    def run(self, port: int, hostname: str = "localhost", duration: float | None = None) -> bool:
        """Connect, join and play until ``duration`` seconds passed or the server went away.

        Returns whether it joined a room at all.
        """
        address = f"{hostname}:{port}"
        join = common.join_options(self.name, self.room_id, private=self.private)
        try:
            self.client.connect_in_thread(port, hostname, **join)
        except (OSError, PygaseError) as error:
            self._say(f"could not join at {address}: {error}")
            return False
        self.room_id, self.player_id = self.client.room_id, self.client.id
        self._say(f"connected to {address}")
        private = "private " if self.private else ""
        self._say(f"joined {private}room {self.room_id} as player {self.player_id}")
        sender = InputSender(self.client.dispatch_event)
        deadline = math.inf if duration is None else time.monotonic() + duration
        wander = _unit(self._rng.uniform(-1, 1), self._rng.uniform(-1, 1))
        next_wander = time.monotonic() + 2.0
        next_status = time.monotonic()
        try:
            while self.client.status in ALIVE and time.monotonic() < deadline:
                now = time.monotonic()
                if now > next_wander:
                    wander = _unit(self._rng.uniform(-1, 1), self._rng.uniform(-1, 1))
                    next_wander = now + 2.0
                report = None
                with self.client.access_game_state() as game_state:
                    own_id = self.player_id
                    if own_id is not None and own_id in game_state.players:
                        direction = choose_direction(game_state, own_id, self._rng, wander)
                        if self.status_seconds > 0 and now >= next_status:
                            report = status_report(game_state, own_id)
                    else:
                        direction = (0.0, 0.0)
                if report is not None:
                    self._say(report)
                    next_status = now + self.status_seconds
                sender.update(direction)
                time.sleep(THINK_SECONDS)
        finally:
            self.client.disconnect()  # the room removes our player
            self._say(f"disconnected from {address} ({self.client.disconnect_reason or 'left'})")
        return True


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and play; SIGTERM leaves the game as cleanly as Ctrl-C."""
    parser = common.client_parser(__doc__.splitlines()[0], "Robo")
    parser.add_argument("--duration", type=float, default=None, help="seconds to play")
    parser.add_argument("--seed", type=int, default=None, help="seed for wandering")
    parser.add_argument(
        "--status-every",
        type=float,
        default=STATUS_SECONDS,
        help=f"seconds between status lines; 0 prints none (default: {STATUS_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    bot = ChaseBot(
        args.name,
        seed=args.seed,
        room_id=args.room,
        private=args.private,
        status_seconds=args.status_every,
        out=lambda line: print(line, flush=True),
    )
    signal.signal(signal.SIGTERM, _interrupt)
    connected = False
    with contextlib.suppress(KeyboardInterrupt):
        connected = bot.run(args.port, args.host, args.duration)
    if not connected:
        raise SystemExit(1)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
