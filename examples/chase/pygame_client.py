"""The pygame chase client: ``python -m examples.chase.pygame_client [--name Ann] [--port 8080]``.

It joins the best open room by default; ``--private`` opens a private room instead, and
``--room ID`` joins the room with that id (a friend's private one, say). The header shows the
room's id, to share.

Move with the arrow keys or WASD; close the window or press Escape to leave. The game keeps its
own pygame loop; :class:`~pygase_pygame.PygaseClientMixin` adds ``self.pygase``, which is pumped
once per frame by ``self.pygase.tick(clock, 60)`` and provides an interpolated snapshot to draw.

The held keys' direction goes to the server as an input every frame (``send_input``), and the
own player is predicted with the same step the room applies (``predict``), so it moves on the
next frame whatever the round trip; everyone else is interpolated. Press P to toggle the
prediction and feel the difference, for example under ``PYGASE_LINK=average``.
Server events reach this game on its own thread in two ways, both shown here: registered
handlers (``TAG``) and pygame events of type ``PYGASE_STATUS``.
"""

from __future__ import annotations

import time
from typing import Any

import pygame

from examples.chase import common, rules
from examples.chase.room import PREDICTED
from pygase_core import ClientStatus, ConnectionFailed
from pygase_core.model.interpolation import Snapshot
from pygase_pygame import PYGASE_STATUS, PygaseClientMixin

TAG_MESSAGE_SECONDS = 2.0


class ChasePygameClient(PygaseClientMixin):
    """Play chase in a pygame window.

    Args:
        name: the player's name.
        room_id: join this room; None joins the best open one (or opens one).
        private: open a new private room instead.
    """

    pygase_interpolate = ("players.*.x", "players.*.y")

    def __init__(self, name: str, room_id: str | None = None, private: bool = False) -> None:
        self.name = name
        self.room_id = room_id
        """The room's id: the one asked for, then the one joined."""
        self.private = private
        self.player_id: str | None = None
        """The own player's id in the state: this client's seat id, known once joined."""
        self.message = ""
        self._message_until = 0.0
        self.running = False
        self.held: set[int] = set()
        """The keys held down, from the key events (so that posted events steer too)."""
        self.pygase.register_event_handler("TAG", self._on_tag)
        self.pygase.predict(PREDICTED, rules.steer)

    def _on_tag(self, tagger: str, tagged: str) -> None:
        snapshot = self.pygase.snapshot
        names = snapshot.players if snapshot is not None else {}
        tagger_name = names.get(tagger, {}).get("name", "?")
        tagged_name = names.get(tagged, {}).get("name", "?")
        self._show(f"{tagger_name} tagged {tagged_name}!")

    def _show(self, message: str) -> None:
        self.message = message
        self._message_until = time.monotonic() + TAG_MESSAGE_SECONDS

    def run(self, port: int, hostname: str = "localhost") -> None:
        """Open the window, join, and play until the window is closed."""
        try:
            self.start(port, hostname)
            while self.running:
                self.frame()
        finally:
            self.stop()

    def start(self, port: int, hostname: str = "localhost") -> None:
        """Open the window and join a room (raises ``ConnectionFailed`` if that fails)."""
        pygame.init()
        self.screen = pygame.display.set_mode(common.WINDOW_SIZE)
        pygame.display.set_caption(f"chase - {self.name}")
        self.font = pygame.font.Font(None, 22)
        self.clock = pygame.time.Clock()
        join = common.join_options(self.name, self.room_id, private=self.private)
        common.connect_session(self.pygase, port, hostname, join)
        self.room_id = self.pygase.client.room_id
        self.player_id = self.pygase.client.id
        caption = common.room_caption(self.room_id, self.private)
        pygame.display.set_caption(f"chase - {self.name} - {caption}")
        self.running = True

    def frame(self) -> Snapshot | None:
        """Play one frame: network, input, drawing. Returns the snapshot it drew."""
        snapshot = self.pygase.tick(self.clock, 60)
        for event in pygame.event.get():
            self._handle(event)
        if self.pygase.status is ClientStatus.CONNECTED:
            self._send_input()
        snapshot = self.pygase.snapshot  # with this frame's input, if it moved the own player
        self.draw(self.screen, self.font, snapshot)
        pygame.display.flip()
        return snapshot

    def stop(self) -> None:
        """Leave the room (the server removes the player) and close the window."""
        self.pygase.disconnect()
        pygame.quit()

    def _handle(self, event: pygame.event.Event) -> None:
        escape = event.type == pygame.KEYDOWN and event.key == pygame.K_ESCAPE
        if event.type == pygame.QUIT or escape:
            self.running = False
        elif event.type == pygame.KEYDOWN and event.key == pygame.K_p:
            self.pygase.predicting = not self.pygase.predicting
        elif event.type == pygame.KEYDOWN:
            self.held.add(event.key)
        elif event.type == pygame.KEYUP:
            self.held.discard(event.key)
        elif event.type == PYGASE_STATUS and event.status is ClientStatus.DISCONNECTED:
            self._show(f"Disconnected: {event.reason}")
            self._message_until = float("inf")

    def _send_input(self) -> None:
        held = self.held
        self.pygase.send_input(
            common.direction_from_keys(
                bool(held & {pygame.K_LEFT, pygame.K_a}),
                bool(held & {pygame.K_RIGHT, pygame.K_d}),
                bool(held & {pygame.K_UP, pygame.K_w}),
                bool(held & {pygame.K_DOWN, pygame.K_s}),
            )
        )

    def draw(
        self, screen: pygame.Surface, font: pygame.font.Font, snapshot: Snapshot | None
    ) -> None:
        """Draw the arena as the snapshot has it, between the header and the connection band.

        The player's own dot goes on top of all. The text lives in the bands above and below
        the arena, where no player ever goes, so no dot covers it.
        """
        screen.fill(common.BAND_COLOR)
        arena = pygame.Rect((0, common.HEADER_HEIGHT), common.ARENA_SIZE)
        screen.fill(common.BACKGROUND_COLOR, arena)
        if snapshot is not None:
            screen.set_clip(arena)
            own_last = sorted(snapshot.players.items(), key=lambda item: item[0] == self.player_id)
            for player_id, player in own_last:
                self._draw_player(screen, font, snapshot, player_id, player)
            screen.set_clip(None)
            header = common.status_line(self.player_id, snapshot)
            header = f"{header}   {common.prediction_caption(self.pygase.predicting)}"
        else:
            header = self.pygase.status_text()
        if time.monotonic() < self._message_until:
            header = f"{header}   {self.message}"
        text = font.render(header, True, common.HEADER_COLOR)
        screen.blit(text, text.get_rect(midleft=(8, common.HEADER_HEIGHT // 2)))
        caption = common.room_caption(self.room_id, self.private)
        if caption:
            room = font.render(caption, True, common.HEADER_COLOR)
            width = screen.get_width()
            screen.blit(room, room.get_rect(midright=(width - 8, common.HEADER_HEIGHT // 2)))
        footer_top = common.HEADER_HEIGHT + rules.ARENA_HEIGHT
        self.pygase.draw_stats(screen, (8, footer_top + 6), background=None)

    def _draw_player(
        self,
        screen: pygame.Surface,
        font: pygame.font.Font,
        snapshot: Snapshot,
        player_id: str,
        player: dict[str, Any],
    ) -> None:
        x, y = common.arena_to_window(player["x"], player["y"])
        center = (round(x), round(y))
        pygame.draw.circle(
            screen, common.player_color(snapshot, player_id), center, rules.PLAYER_RADIUS
        )
        if player_id == self.player_id:
            pygame.draw.circle(screen, common.OWN_OUTLINE_COLOR, center, rules.PLAYER_RADIUS, 2)
        label = font.render(f"{player['name']} ({player['tags']})", True, common.LABEL_COLOR)
        left, top = common.label_position(
            player["x"], player["y"], label.get_width(), label.get_height()
        )
        left, top = common.arena_to_window(left, top)
        screen.blit(label, (round(left), round(top)))


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and play."""
    args = common.client_parser(__doc__.splitlines()[0], "pygame player").parse_args(argv)
    game = ChasePygameClient(args.name, args.room, args.private)
    try:
        game.run(args.port, args.host)
    except ConnectionFailed as error:
        raise SystemExit(f"chase: could not join at {args.host}:{args.port}: {error}") from None


if __name__ == "__main__":
    main()
