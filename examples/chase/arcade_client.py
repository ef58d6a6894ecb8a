"""The arcade chase client: ``python -m examples.chase.arcade_client [--name Bob] [--port 8080]``.

Move with the arrow keys or WASD; close the window or press Escape to leave. The window is a
:class:`~pygase_arcade.PygaseWindow`: it pumps the network before every ``on_update``, so
``self.pygase.snapshot`` is the interpolated state to draw this frame, and server events arrive
on the window's thread: to the handlers registered on ``self.pygase``, and as the window events
``on_pygase_event`` and ``on_pygase_status`` (used here for the connection's end). The
connection overlay is drawn for us after ``on_draw`` (``show_stats=True``).
"""

from __future__ import annotations

import time
from typing import Any

import arcade

from examples.chase import common, rules
from examples.chase.common import InputSender
from pygase_arcade import PygaseWindow
from pygase_core import ClientStatus

JOIN_RETRY_SECONDS = 0.5
TAG_MESSAGE_SECONDS = 2.0

_LEFT = {arcade.key.LEFT, arcade.key.A}
_RIGHT = {arcade.key.RIGHT, arcade.key.D}
_UP = {arcade.key.UP, arcade.key.W}
_DOWN = {arcade.key.DOWN, arcade.key.S}


def _rgb(color: tuple[int, int, int]) -> tuple[int, int, int, int]:
    return (*color, 255)


class ChaseArcadeWindow(PygaseWindow):
    """Play chase in an arcade window.

    The arena's y axis points down (as in pygame); drawing flips it, since arcade's points up.
    """

    def __init__(self, name: str, port: int, hostname: str = "localhost") -> None:
        width, height = common.WINDOW_SIZE
        super().__init__(
            width,
            height,
            f"chase - {name}",
            interpolate=("players.*.x", "players.*.y"),
            show_stats=True,
        )
        self.background_color = _rgb(common.BAND_COLOR)
        self.name = name
        self.player_id: str | None = None
        self.pressed: set[int] = set()
        self.message = ""
        self._message_until = 0.0
        self._last_join = -JOIN_RETRY_SECONDS
        self._labels: dict[str, arcade.Text] = {}
        self._header = arcade.Text(
            "",
            8,
            height - common.HEADER_HEIGHT / 2,
            _rgb(common.HEADER_COLOR),
            12,
            anchor_y="center",
        )
        self.pygase.register_event_handler("WELCOME", self._on_welcome)
        self.pygase.register_event_handler("TAG", self._on_tag)
        self.pygase.connect(port, hostname)
        self._sender = InputSender(self.pygase.dispatch_event)

    def _on_welcome(self, player_id: str) -> None:
        self.player_id = player_id

    def _on_tag(self, tagger: str, tagged: str) -> None:
        players = self.pygase.snapshot.players if self.pygase.snapshot is not None else {}
        tagger_name, tagged_name = (
            players.get(pid, {}).get("name", "?") for pid in (tagger, tagged)
        )
        self._show(f"{tagger_name} tagged {tagged_name}!")

    def on_pygase_status(self, status: ClientStatus, reason: str | None) -> None:
        """Show why the connection ended."""
        if status is ClientStatus.DISCONNECTED:
            self._show(f"Disconnected: {reason}")
            self._message_until = float("inf")

    def _show(self, message: str) -> None:
        self.message = message
        self._message_until = time.monotonic() + TAG_MESSAGE_SECONDS

    def on_key_press(self, symbol: int, modifiers: int) -> None:
        """Remember held keys; Escape closes the window."""
        if symbol == arcade.key.ESCAPE:
            self.close()
        self.pressed.add(symbol)

    def on_key_release(self, symbol: int, modifiers: int) -> None:
        """Forget released keys."""
        self.pressed.discard(symbol)

    def on_update(self, delta_time: float) -> None:
        """Join until welcomed, then send the direction the held keys point to."""
        if self.pygase.status is not ClientStatus.CONNECTED:
            return
        if self.player_id is None:
            now = time.monotonic()
            if now - self._last_join >= JOIN_RETRY_SECONDS:
                self.pygase.dispatch_event("JOIN", self.name)
                self._last_join = now
            return
        held = self.pressed
        self._sender.update(
            common.direction_from_keys(
                bool(held & _LEFT), bool(held & _RIGHT), bool(held & _UP), bool(held & _DOWN)
            )
        )

    def on_draw(self) -> None:
        """Draw the arena as this frame's snapshot has it, between the header and stats bands.

        The own dot goes on top of all. The text lives in the bands above and below the arena,
        where no player ever goes, so no dot covers it; the window draws the connection figures
        into the lower band (``show_stats``).
        """
        self.clear()
        bottom = common.FOOTER_HEIGHT
        arcade.draw_lrbt_rectangle_filled(
            0, self.width, bottom, bottom + rules.ARENA_HEIGHT, _rgb(common.BACKGROUND_COLOR)
        )
        snapshot = self.pygase.snapshot
        if snapshot is not None:
            own_last = sorted(snapshot.players.items(), key=lambda item: item[0] == self.player_id)
            for player_id, player in own_last:
                self._draw_player(snapshot, player_id, player)
            for gone in self._labels.keys() - snapshot.players.keys():
                del self._labels[gone]
            header = common.status_line(self.player_id, snapshot)
        else:
            header = self.pygase.status_text()
        if time.monotonic() < self._message_until:
            header = f"{header}   {self.message}"
        self._header.text = header
        self._header.draw()

    def _up(self, x: float, y: float) -> tuple[float, float]:
        """Arena coordinates (y down) to arcade's window coordinates (y up)."""
        window_x, window_y = common.arena_to_window(x, y)
        return window_x, self.height - window_y

    def _draw_player(self, snapshot: Any, player_id: str, player: dict[str, Any]) -> None:
        x, y = self._up(player["x"], player["y"])
        color = _rgb(common.player_color(snapshot, player_id))
        arcade.draw_circle_filled(x, y, rules.PLAYER_RADIUS, color)
        if player_id == self.player_id:
            arcade.draw_circle_outline(x, y, rules.PLAYER_RADIUS, _rgb(common.OWN_OUTLINE_COLOR), 2)
        label = self._labels.get(player_id)
        if label is None:
            label = arcade.Text(
                "", 0, 0, _rgb(common.LABEL_COLOR), 11, anchor_x="left", anchor_y="top"
            )
            self._labels[player_id] = label
        label.text = f"{player['name']} ({player['tags']})"
        left, top = common.label_position(
            player["x"], player["y"], label.content_width, label.content_height
        )
        label.x, label.y = self._up(left, top)
        label.draw()

    def close(self) -> None:
        """Say goodbye to the server before leaving."""
        if self.pygase.status is ClientStatus.CONNECTED:
            self.pygase.dispatch_event("LEAVE")
        super().close()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and play."""
    args = common.client_arguments(__doc__.splitlines()[0], "arcade player", argv)
    ChaseArcadeWindow(args.name, args.port, args.host)
    arcade.run()


if __name__ == "__main__":
    main()
