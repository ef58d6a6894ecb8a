"""What the chase clients share: the command line, joining a room, steering input, colours."""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from examples.chase import rules

if TYPE_CHECKING:
    from pygase_core.edge.frames import FrameSession

#: The server's room type for chase: what clients pass as ``room=``.
ROOM_TYPE = "chase"

#: How often a client repeats its input even when it did not change. Input travels as
#: unacknowledged events; repeating it means a lost one costs at most this long.
INPUT_REPEAT_SECONDS = 0.25

CHASER_COLOR = (220, 40, 40)
PROTECTED_CHASER_COLOR = (240, 150, 150)
RUNNER_COLORS = [
    (60, 120, 230),
    (40, 170, 90),
    (230, 170, 30),
    (150, 80, 200),
    (30, 170, 190),
    (200, 100, 40),
]
BACKGROUND_COLOR = (20, 20, 28)
#: The bands above and below the arena, which hold the header line and the connection figures.
BAND_COLOR = (45, 45, 60)
OWN_OUTLINE_COLOR = (255, 255, 255)
HEADER_COLOR = (255, 255, 255)
LABEL_COLOR = (230, 230, 230)

#: The window has a band for the header line above the arena and one for the connection figures
#: below it; players never enter either, so nothing covers the text.
HEADER_HEIGHT = 30
FOOTER_HEIGHT = 24
WINDOW_SIZE = (rules.ARENA_WIDTH, HEADER_HEIGHT + rules.ARENA_HEIGHT + FOOTER_HEIGHT)
#: Pixels between a dot's edge and its label, and at least between a label and the arena's edge.
LABEL_GAP = 3
LABEL_MARGIN = 2


def client_parser(
    description: str, default_name: str, *, lobby: bool = False
) -> argparse.ArgumentParser:
    """The command line every chase client shares.

    ``--host``, ``--port`` and ``--name``, and where to play: by default the best open room,
    ``--private`` for a new private room, ``--room ID`` for a friend's room (and, with
    ``lobby``, ``--lobby`` to pick one from a list).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="localhost", help="server address")
    parser.add_argument("--port", type=int, default=8080, help="server port")
    parser.add_argument("--name", default=default_name, help="player name")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--private",
        action="store_true",
        help="open a new private room: nobody is matched into it, friends join with its id",
    )
    where.add_argument("--room", metavar="ID", default=None, help="join the room with this id")
    if lobby:
        where.add_argument(
            "--lobby", action="store_true", help="pick a room from a list of the open ones first"
        )
    return parser


def join_options(
    name: str, room_id: str | None = None, *, private: bool = False, new: bool = False
) -> dict[str, Any]:
    """The room arguments of ``Client.connect`` for a player called ``name``.

    By default the best open chase room (``room="chase"``), which the server opens if there is
    none; ``room_id`` joins that room; ``new`` opens a new room, ``private`` a private one.
    """
    options: dict[str, Any] = {"name": name}
    if room_id is not None:
        return {"room_id": room_id, "options": options}
    if private:
        return {"room": ROOM_TYPE, "create": True, "options": {**options, "private": True}}
    if new:
        return {"room": ROOM_TYPE, "create": True, "options": options}
    return {"room": ROOM_TYPE, "options": options}


def connect_session(session: FrameSession, port: int, hostname: str, join: dict[str, Any]) -> None:
    """Connect a pygame or arcade session and join a room (``join``: see :func:`join_options`).

    Returns once the client has its seat; raises ``ConnectionFailed`` (``JoinRefusedError`` for
    a room that does not exist, ``ServerFullError`` for a full one) otherwise.
    """
    session.connect(port, hostname, **join)


def room_caption(room_id: str | None, private: bool = False) -> str:
    """How a client names its room in its header, so that a player can share the id."""
    if room_id is None:
        return ""
    return f"{'private ' if private else ''}room {room_id}"


def player_color(game_state: Any, player_id: str) -> tuple[int, int, int]:
    """Return the colour to draw a player in: red for the chaser (pale while protected)."""
    if player_id == game_state.chaser:
        protected = game_state.clock < game_state.protected_until
        return PROTECTED_CHASER_COLOR if protected else CHASER_COLOR
    player = game_state.players.get(player_id) or {}
    return RUNNER_COLORS[int(player.get("number", 0)) % len(RUNNER_COLORS)]


def direction_from_keys(left: bool, right: bool, up: bool, down: bool) -> tuple[float, float]:
    """Turn pressed arrow keys into a direction of length 0 or 1 (y grows downwards)."""
    dx = float(right) - float(left)
    dy = float(down) - float(up)
    length = math.hypot(dx, dy)
    return (dx / length, dy / length) if length else (0.0, 0.0)


class InputSender:
    """Send ``MOVE`` events when the direction changes, and repeat it now and then.

    Args:
        send: called as ``send("MOVE", dx, dy)``, typically a client's ``dispatch_event``.
        clock: monotonic time source in seconds.
    """

    def __init__(
        self, send: Callable[..., None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._send = send
        self._clock = clock
        self._last: tuple[float, float] | None = None
        self._last_sent = -math.inf

    def update(self, direction: tuple[float, float]) -> bool:
        """Send the direction if it changed or is due for repeating; return whether it was sent."""
        now = self._clock()
        if direction == self._last and now - self._last_sent < INPUT_REPEAT_SECONDS:
            return False
        self._send("MOVE", direction[0], direction[1])
        self._last = direction
        self._last_sent = now
        return True


def prediction_caption(predicting: bool) -> str:
    """What the header says about the own player's prediction, and the key that toggles it."""
    return f"[P] prediction {'on' if predicting else 'off'}"


def status_line(own_id: str | None, game_state: Any) -> str:
    """Describe the player's situation in one line for a client's header."""
    if own_id is None or own_id not in game_state.players:
        return "joining..."
    if own_id == game_state.chaser:
        if game_state.clock < game_state.protected_until:
            return "You are IT - wait a moment..."
        return "You are IT - tag someone!"
    chaser = game_state.players.get(game_state.chaser) if game_state.chaser else None
    return f"Run from {chaser['name']}!" if chaser else "Waiting for players"


ARENA_SIZE = (rules.ARENA_WIDTH, rules.ARENA_HEIGHT)


def arena_to_window(x: float, y: float) -> tuple[float, float]:
    """Turn arena coordinates into window coordinates; both have y growing downwards."""
    return x, y + HEADER_HEIGHT


def label_position(x: float, y: float, width: float, height: float) -> tuple[float, float]:
    """Place the ``width`` x ``height`` label of the dot at ``(x, y)``; return its top left.

    The label is centred above the dot, or below it when the dot is too close to the arena's
    top for the label to fit above, and it is shifted sideways as far as needed to stay inside
    the arena, ``LABEL_MARGIN`` away from its edges. All in arena coordinates (y grows
    downwards).
    """
    left = _clamp(x - width / 2, LABEL_MARGIN, rules.ARENA_WIDTH - LABEL_MARGIN - width)
    top = y - rules.PLAYER_RADIUS - LABEL_GAP - height
    if top < LABEL_MARGIN:
        top = y + rules.PLAYER_RADIUS + LABEL_GAP
    return left, _clamp(top, LABEL_MARGIN, rules.ARENA_HEIGHT - LABEL_MARGIN - height)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(value, high)) if low <= high else low
