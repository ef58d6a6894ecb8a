"""The rules of chase, as plain functions of the game state.

Keeping the rules apart from the networking makes them easy to test and shows the shape pygase
expects: each function reads the current state and returns a dict of changes, which the server
merges into the state and sends to every client. Each room of the server has a state of its own;
:class:`examples.chase.room.ChaseRoom` calls these functions from its hooks. Players are keyed by
their client's seat id (``client.id``), so a client can only ever steer its own player.

Clients never send positions, only the direction they want to go in; the server moves everyone
at the speed their role allows. That is how the server keeps a client from teleporting or
running faster than the rules say, whatever it sends.

Players steer in one of two ways. The pygame and arcade clients send an *input* every tick
(``Client.send_input``): :func:`steer` is the step that moves a player by one input, a pure
function of the player and the input that the server applies in the room's ``on_input`` and the
client replays to predict its own player, so both sides agree exactly. Bots send ``MOVE`` events
instead (:func:`move`), which set a direction that :func:`step` follows every tick. Each player
carries its ``speed``, which changes with the chaser role, so that :func:`steer` needs nothing
but the player.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pygase_core import TO_DELETE, GameState

ARENA_WIDTH = 800
ARENA_HEIGHT = 600
PLAYER_RADIUS = 15
#: Pixels per second of runners, and of the chaser, who is faster so that tags do happen.
RUNNER_SPEED = 200.0
CHASER_SPEED = 260.0
#: Centres closer than this count as touching.
TAG_DISTANCE = 2 * PLAYER_RADIUS
#: Seconds after a tag during which nobody can be tagged.
PROTECTION_SECONDS = 3.0
MAX_NAME_LENGTH = 16


@dataclass(frozen=True)
class Tag:
    """A tag that happened during a time step."""

    tagger: str
    tagged: str


def initial_state() -> GameState:
    """Return the state of an empty arena."""
    return GameState(players={}, chaser=None, protected_until=0.0, clock=0.0, next_number=1)


def join(name: Any, *, game_state: Any, player_id: str, rng: random.Random) -> dict[str, Any]:
    """Add the player ``player_id``; the first player in an empty arena becomes the chaser.

    ``player_id`` is the joining client's seat id (``client.id``), which stays the same for as
    long as it keeps its seat. Each player also gets a ``number``, counting up in joining order,
    which picks its colour and who becomes the chaser when the chaser leaves. A player that
    joins again keeps everything but its name.
    """
    name = str(name)[:MAX_NAME_LENGTH] or "anonymous"
    if player_id in game_state.players:
        renamed = {**game_state.players[player_id], "name": name}
        return {"players": {player_id: renamed}}
    x, y = _spawn_point(game_state, rng)
    player = {
        "name": name,
        "number": game_state.next_number,
        "x": x,
        "y": y,
        "dx": 0.0,
        "dy": 0.0,
        "tags": 0,
        "speed": CHASER_SPEED if game_state.chaser is None else RUNNER_SPEED,
    }
    update: dict[str, Any] = {
        "players": {player_id: player},
        "next_number": game_state.next_number + 1,
    }
    if game_state.chaser is None:
        update["chaser"] = player_id
    return update


def _spawn_point(game_state: Any, rng: random.Random) -> tuple[float, float]:
    """Pick a free spot, preferably far from the chaser, so nobody is tagged on arrival."""
    chaser = game_state.players.get(game_state.chaser) if game_state.chaser is not None else None
    best = (ARENA_WIDTH / 2, ARENA_HEIGHT / 2)
    best_distance = -1.0
    for _ in range(10):
        x = rng.uniform(PLAYER_RADIUS, ARENA_WIDTH - PLAYER_RADIUS)
        y = rng.uniform(PLAYER_RADIUS, ARENA_HEIGHT - PLAYER_RADIUS)
        distance = math.inf if chaser is None else math.hypot(x - chaser["x"], y - chaser["y"])
        if distance > best_distance:
            best, best_distance = (x, y), distance
    return best


def move(dx: Any, dy: Any, *, game_state: Any, player_id: str) -> dict[str, Any]:
    """Set the direction the player ``player_id`` wants to go in.

    The direction is validated here: anything that is not a pair of finite numbers is ignored,
    and longer vectors are shortened to length 1, so full speed is the most anyone gets.
    """
    if player_id not in game_state.players:
        return {}
    if not _is_finite_number(dx) or not _is_finite_number(dy):
        return {}
    length = math.hypot(dx, dy)
    if length > 1.0:
        dx, dy = dx / length, dy / length
    player = {**game_state.players[player_id], "dx": float(dx), "dy": float(dy)}
    return {"players": {player_id: player}}


def steer(player: dict[str, Any], direction: Any, dt: float) -> dict[str, Any]:
    """Move ``player`` by one input: ``direction`` (``[dx, dy]``) for ``dt`` seconds.

    The shared step of prediction: the room applies it to each input (``on_input``) and the
    clients replay it. A direction that is not a pair of finite numbers moves nothing, and a
    longer one is shortened to length 1, so full speed is the most anyone gets.
    """
    if not isinstance(direction, list | tuple) or len(direction) != 2:
        return player
    dx, dy = direction
    if not _is_finite_number(dx) or not _is_finite_number(dy) or (dx == 0 and dy == 0):
        return player
    length = math.hypot(dx, dy)
    if length > 1.0:
        dx, dy = dx / length, dy / length
    speed = player.get("speed", RUNNER_SPEED)
    x = _clamp(player["x"] + dx * speed * dt, PLAYER_RADIUS, ARENA_WIDTH - PLAYER_RADIUS)
    y = _clamp(player["y"] + dy * speed * dt, PLAYER_RADIUS, ARENA_HEIGHT - PLAYER_RADIUS)
    return {**player, "x": x, "y": y}


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def leave(*, game_state: Any, player_id: str) -> dict[str, Any]:
    """Remove a player; if it was the chaser, whoever has played longest takes the role on."""
    if player_id not in game_state.players:
        return {}
    update: dict[str, Any] = {"players": {player_id: TO_DELETE}}
    if game_state.chaser == player_id:
        others = [(p["number"], pid) for pid, p in game_state.players.items() if pid != player_id]
        update["chaser"] = min(others)[1] if others else None
        if others:
            heir = update["chaser"]
            update["players"][heir] = {**game_state.players[heir], "speed": CHASER_SPEED}
    return update


def speed_of(game_state: Any, player_id: str) -> float:
    """Return how fast a player may move, which depends on whether it is the chaser."""
    return CHASER_SPEED if game_state.chaser == player_id else RUNNER_SPEED


def step(game_state: Any, dt: float) -> tuple[dict[str, Any], Tag | None]:
    """Advance the game by ``dt`` seconds: move everyone, then tag.

    Returns:
        the update, and the tag that happened in this step, if any.
    """
    clock = game_state.clock + dt
    update: dict[str, Any] = {"clock": clock}
    moved: dict[str, dict[str, Any]] = {}
    for pid, player in game_state.players.items():
        if player["dx"] == 0 and player["dy"] == 0:
            continue
        speed = speed_of(game_state, pid)
        x = _clamp(
            player["x"] + player["dx"] * speed * dt, PLAYER_RADIUS, ARENA_WIDTH - PLAYER_RADIUS
        )
        y = _clamp(
            player["y"] + player["dy"] * speed * dt, PLAYER_RADIUS, ARENA_HEIGHT - PLAYER_RADIUS
        )
        moved[pid] = {**player, "x": x, "y": y}
    if moved:
        update["players"] = moved
    tag = _find_tag(game_state, {**game_state.players, **moved}, clock)
    if tag is not None:
        players = update.setdefault("players", {})
        tagger = players.get(tag.tagger, game_state.players[tag.tagger])
        players[tag.tagger] = {**tagger, "tags": tagger["tags"] + 1, "speed": RUNNER_SPEED}
        tagged = players.get(tag.tagged, game_state.players[tag.tagged])
        players[tag.tagged] = {**tagged, "speed": CHASER_SPEED}
        update["chaser"] = tag.tagged
        update["protected_until"] = clock + PROTECTION_SECONDS
    return update, tag


def _find_tag(game_state: Any, players: Mapping[str, Any], clock: float) -> Tag | None:
    chaser_id = game_state.chaser
    if chaser_id is None or chaser_id not in players or clock < game_state.protected_until:
        return None
    chaser = players[chaser_id]
    closest: tuple[float, str] | None = None
    for pid, player in players.items():
        if pid == chaser_id:
            continue
        distance = math.hypot(player["x"] - chaser["x"], player["y"] - chaser["y"])
        if distance <= TAG_DISTANCE and (closest is None or distance < closest[0]):
            closest = (distance, str(pid))
    return None if closest is None else Tag(tagger=str(chaser_id), tagged=closest[1])


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
