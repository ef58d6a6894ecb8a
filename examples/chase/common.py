"""What the chase clients share: steering input, colours and the event protocol's client side."""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

from examples.chase import rules

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


def client_arguments(
    description: str, default_name: str, argv: list[str] | None
) -> argparse.Namespace:
    """The command line every chase client shares: ``--host``, ``--port`` and ``--name``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="localhost", help="server address")
    parser.add_argument("--port", type=int, default=8080, help="server port")
    parser.add_argument("--name", default=default_name, help="player name")
    return parser.parse_args(argv)


def player_color(game_state: Any, player_id: str) -> tuple[int, int, int]:
    """Return the colour to draw a player in: red for the chaser (pale while protected)."""
    if player_id == game_state.chaser:
        protected = game_state.clock < game_state.protected_until
        return PROTECTED_CHASER_COLOR if protected else CHASER_COLOR
    return RUNNER_COLORS[int(player_id) % len(RUNNER_COLORS)]


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
