"""The arcade chase client: ``python -m examples.chase.arcade_client [--name Bob] [--port 8080]``.

It joins the best open room by default; ``--private`` opens a private room instead, ``--room
ID`` joins the room with that id, and ``--lobby`` first shows the open rooms to pick one from
(or to open a new one). The header shows the room's id, to share.

Move with the arrow keys or WASD; close the window or press Escape to leave; P toggles the
prediction of the own player (it moves at once, whatever the round trip; see the pygame
client). The window is a :class:`~pygase_arcade.PygaseWindow`: it pumps the network before
every ``on_update``, so ``self.pygase.snapshot`` is the state to draw this frame (the own player
predicted, the others interpolated), and server events arrive
on the window's thread: to the handlers registered on ``self.pygase`` (``TAG`` here), and as
the window events ``on_pygase_event`` and ``on_pygase_status``, which the shown view receives
too (the game view uses the latter for the connection's end). The connection overlay is drawn
for us after ``on_draw`` (``show_stats=True``).

The window shows one of two views: :class:`LobbyView`, a plain ``arcade.View`` that lists the
open rooms before there is a connection, and :class:`ChaseView`, a
:class:`~pygase_arcade.PygaseView` that plays the game.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import arcade

from examples.chase import common, rules
from examples.chase.room import PREDICTED
from pygase_arcade import PygaseView, PygaseWindow
from pygase_core import Client, ClientStatus, ConnectionFailed, PygaseError, RoomListing

TAG_MESSAGE_SECONDS = 2.0
#: Seconds between the lobby's looks at the server's open rooms.
LOBBY_REFRESH_SECONDS = 2.0
#: Seconds the lobby waits for the server's list of rooms.
LOBBY_TIMEOUT = 2.0

_LEFT = {arcade.key.LEFT, arcade.key.A}
_RIGHT = {arcade.key.RIGHT, arcade.key.D}
_UP = {arcade.key.UP, arcade.key.W}
_DOWN = {arcade.key.DOWN, arcade.key.S}
_ENTER = {arcade.key.ENTER, arcade.key.RETURN, arcade.key.NUM_ENTER, arcade.key.SPACE}

LOBBY_TITLE_COLOR = (255, 255, 255)
LOBBY_TEXT_COLOR = (230, 230, 230)
LOBBY_HINT_COLOR = (170, 170, 190)
LOBBY_SELECTED_COLOR = (70, 90, 160)
LOBBY_ROW_HEIGHT = 30
LOBBY_TOP = 90
"""Pixels from the window's top to the first row's top."""
LOBBY_ROWS = 16
"""Rows the lobby shows at once; the list scrolls to keep the selected row among them."""


def _rgb(color: tuple[int, int, int]) -> tuple[int, int, int, int]:
    return (*color, 255)


class ChaseArcadeWindow(PygaseWindow):
    """The chase window: join a room with :meth:`join`, or pick one in :meth:`show_lobby`."""

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
        self.port = port
        self.hostname = hostname
        self.game = ChaseView(self)
        self.pygase.register_event_handler("TAG", self.game.on_tag)
        self.pygase.predict(PREDICTED, rules.steer)

    def join(self, room_id: str | None = None, *, private: bool = False, new: bool = False) -> None:
        """Join a room (see :func:`examples.chase.common.join_options`) and play in it.

        Raises ``ConnectionFailed`` if the server cannot be reached or refuses the join.
        """
        join = common.join_options(self.name, room_id, private=private, new=new)
        common.connect_session(self.pygase, self.port, self.hostname, join)
        self.game.joined(self.pygase.client.room_id, self.pygase.client.id, private)
        self.set_caption(f"chase - {self.name} - {self.game.room_caption}")
        self.show_view(self.game)

    def show_lobby(self) -> LobbyView:
        """Show the list of open rooms to pick from; returns the lobby view."""
        lobby = LobbyView(self)
        self.show_view(lobby)
        return lobby


class ChaseView(PygaseView):
    """Play chase: send the held keys' direction, draw the arena between the two bands.

    The arena's y axis points down (as in pygame); drawing flips it, since arcade's points up.
    """

    def __init__(self, window: ChaseArcadeWindow) -> None:
        super().__init__(window)
        self.name = window.name
        self.room_id: str | None = None
        self.private = False
        self.player_id: str | None = None
        """The own player's id in the state: this client's seat id, known once joined."""
        self.pressed: set[int] = set()
        self.message = ""
        self._message_until = 0.0
        self._labels: dict[str, arcade.Text] = {}
        middle = window.height - common.HEADER_HEIGHT / 2
        self._header = arcade.Text("", 8, middle, _rgb(common.HEADER_COLOR), 12, anchor_y="center")
        self._room = arcade.Text(
            "",
            window.width - 8,
            middle,
            _rgb(common.HEADER_COLOR),
            12,
            anchor_x="right",
            anchor_y="center",
        )

    def joined(self, room_id: str | None, player_id: str | None, private: bool = False) -> None:
        """Remember the room and the own player, once the window has joined."""
        self.room_id, self.player_id, self.private = room_id, player_id, private
        self._room.text = self.room_caption

    @property
    def room_caption(self) -> str:
        """The room's name in the header: its id, for the player to share."""
        return common.room_caption(self.room_id, self.private)

    def on_tag(self, tagger: str, tagged: str) -> None:
        """Announce a tag (``TAG`` handler, on the window's thread)."""
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
            self.window.close()
        elif symbol == arcade.key.P:
            self.pygase.predicting = not self.pygase.predicting
        self.pressed.add(symbol)

    def on_key_release(self, symbol: int, modifiers: int) -> None:
        """Forget released keys."""
        self.pressed.discard(symbol)

    def on_update(self, delta_time: float) -> None:
        """Send the direction the held keys point to, as this frame's input."""
        if self.pygase.status is not ClientStatus.CONNECTED:
            return
        held = self.pressed
        self.pygase.send_input(
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
            header = f"{header}   {common.prediction_caption(self.pygase.predicting)}"
        else:
            header = self.pygase.status_text()
        if time.monotonic() < self._message_until:
            header = f"{header}   {self.message}"
        self._header.text = header
        self._header.draw()
        self._room.draw()

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


@dataclass(frozen=True)
class LobbyEntry:
    """One line of the lobby: an open room, or a new room to open."""

    label: str
    room_id: str | None = None
    """The room to join; None for a new room."""
    private: bool = False

    @property
    def key(self) -> str:
        """What stays the same for this entry across refreshes (the selection follows it)."""
        return self.room_id or ("new private" if self.private else "new")


def room_entry(listing: RoomListing) -> LobbyEntry:
    """The lobby's line for an open room: its id, its seats and who plays in it."""
    players = listing.metadata.get("players", [])
    names = ", ".join(str(name) for name in players) if isinstance(players, list) else ""
    seats = f"{listing.clients}/{listing.max_clients}"
    return LobbyEntry(f"room {listing.room_id}   {seats}   {names}".rstrip(), listing.room_id)


NEW_ENTRIES = (LobbyEntry("New room"), LobbyEntry("New private room", private=True))


class LobbyView(arcade.View):
    """Pick an open room, or a new one: Up/Down (or W/S) choose, Enter joins, R refreshes.

    A click on a line joins too; Escape closes the window. The list of rooms comes from
    :meth:`Client.list_rooms <pygase_core.Client.list_rooms>`, asked for on a thread of its
    own every :data:`LOBBY_REFRESH_SECONDS`, so the window never waits for the network
    (:meth:`refresh` with ``wait=True`` does, for tests). A room that filled up or closed in
    the meantime refuses the join: the lobby says so and looks again.
    """

    def __init__(self, window: ChaseArcadeWindow) -> None:
        super().__init__(window)
        self.chase_window = window
        self.rooms: list[RoomListing] | None = None
        """The open rooms as last listed (None before the first answer)."""
        self.entries: list[LobbyEntry] = list(NEW_ENTRIES)
        self.selected = 0
        self.message = "looking for rooms..."
        self._first = 0
        self._fetched: tuple[list[RoomListing] | None, str | None] | None = None
        self._fetching: threading.Thread | None = None
        self._next_refresh = 0.0
        top = window.height
        self._title = arcade.Text(
            f"chase - {window.name}: pick a room",
            20,
            top - 40,
            _rgb(LOBBY_TITLE_COLOR),
            18,
            anchor_y="center",
        )
        self._status = arcade.Text("", 20, top - 70, _rgb(LOBBY_HINT_COLOR), 12, anchor_y="center")
        self._hint = arcade.Text(
            "Up/Down: choose   Enter: join   R: refresh   Esc: quit",
            20,
            30,
            _rgb(LOBBY_HINT_COLOR),
            12,
            anchor_y="center",
        )
        self._rows = [
            arcade.Text("", 30, 0, _rgb(LOBBY_TEXT_COLOR), 14, anchor_y="center")
            for _ in range(LOBBY_ROWS)
        ]

    # -- the list of rooms -----------------------------------------------------------------------

    def refresh(self, wait: bool = False) -> None:
        """Ask the server for its open rooms (once at a time); ``wait``: until it answered."""
        if self._fetching is None or not self._fetching.is_alive():
            self._fetching = threading.Thread(target=self._fetch, name="chase-lobby", daemon=True)
            self._fetching.start()
        self._next_refresh = time.monotonic() + LOBBY_REFRESH_SECONDS
        if wait:
            self._fetching.join()
            self._take_fetched()

    def _fetch(self) -> None:
        window = self.chase_window
        try:
            rooms = Client.list_rooms(
                window.port, window.hostname, room=common.ROOM_TYPE, timeout=LOBBY_TIMEOUT
            )
        except (OSError, PygaseError) as error:
            self._fetched = (None, f"cannot list the rooms: {error}")
        else:
            self._fetched = (rooms, None)

    def _take_fetched(self) -> None:
        fetched, self._fetched = self._fetched, None
        if fetched is None:
            return
        rooms, error = fetched
        if rooms is None:
            self.message = error or ""
            return
        # The selection stays on its line, except that the first list starts at the top.
        key = self.entries[self.selected].key if self.rooms is not None else None
        self.rooms = rooms
        self.entries = [room_entry(listing) for listing in rooms] + list(NEW_ENTRIES)
        keys = [entry.key for entry in self.entries]
        self.selected = keys.index(key) if key in keys else 0
        count = len(rooms)
        self.message = (
            f"{count} open room{'' if count == 1 else 's'}" if count else "no open rooms yet"
        )

    # -- choosing --------------------------------------------------------------------------------

    def move_selection(self, step: int) -> None:
        """Select the line ``step`` lines further down (negative: up), wrapping around."""
        self.selected = (self.selected + step) % len(self.entries)

    def choose(self) -> bool:
        """Join the selected line's room; returns whether that worked (else: why, on screen)."""
        entry = self.entries[self.selected]
        try:
            self.chase_window.join(entry.room_id, private=entry.private, new=entry.room_id is None)
        except ConnectionFailed as error:
            self.message = f"could not join: {error}"
            self.refresh()
            return False
        return True

    def on_key_press(self, symbol: int, modifiers: int) -> bool:
        """Up/Down (W/S) choose, Enter (or Space) joins, R refreshes, Escape quits."""
        if symbol == arcade.key.ESCAPE:
            self.window.close()
        elif symbol in _UP:
            self.move_selection(-1)
        elif symbol in _DOWN:
            self.move_selection(1)
        elif symbol in _ENTER:
            self.choose()
        elif symbol == arcade.key.R:
            self.refresh()
        return True

    def on_mouse_press(self, x: int, y: int, button: int, modifiers: int) -> bool:
        """A click on a line selects it and joins."""
        index = self.row_at(y)
        if index is not None:
            self.selected = index
            self.choose()
        return True

    # -- drawing ---------------------------------------------------------------------------------

    def visible(self) -> range:
        """The indices of the entries on screen: a window of the list around the selection."""
        if self.selected < self._first:
            self._first = self.selected
        elif self.selected >= self._first + LOBBY_ROWS:
            self._first = self.selected - LOBBY_ROWS + 1
        self._first = max(0, min(self._first, max(0, len(self.entries) - LOBBY_ROWS)))
        return range(self._first, min(len(self.entries), self._first + LOBBY_ROWS))

    def row_middle(self, row: int) -> float:
        """The y (arcade's, upwards) of the middle of the ``row``-th line on screen."""
        return float(self.height - LOBBY_TOP - (row + 0.5) * LOBBY_ROW_HEIGHT)

    def row_at(self, y: float) -> int | None:
        """The index of the entry drawn at height ``y``, if any."""
        row = int((self.height - LOBBY_TOP - y) // LOBBY_ROW_HEIGHT)
        shown = self.visible()
        return shown[row] if 0 <= row < len(shown) and y <= self.height - LOBBY_TOP else None

    def on_update(self, delta_time: float) -> bool:
        """Take a new list of rooms when it came; ask again every few seconds."""
        self._take_fetched()
        if time.monotonic() >= self._next_refresh:
            self.refresh()
        return True

    def on_draw(self) -> bool:
        """Draw the title, the lines (the selected one highlighted) and the keys' hint."""
        self.clear()
        self._title.draw()
        self._status.text = self.message
        self._status.draw()
        for row, index in enumerate(self.visible()):
            middle = self.row_middle(row)
            if index == self.selected:
                arcade.draw_lrbt_rectangle_filled(
                    20,
                    self.width - 20,
                    middle - LOBBY_ROW_HEIGHT / 2 + 2,
                    middle + LOBBY_ROW_HEIGHT / 2 - 2,
                    _rgb(LOBBY_SELECTED_COLOR),
                )
            text = self._rows[row]
            text.text = self.entries[index].label
            text.y = middle
            text.draw()
        self._hint.draw()
        return True


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and play."""
    parser = common.client_parser(__doc__.splitlines()[0], "arcade player", lobby=True)
    args = parser.parse_args(argv)
    window = ChaseArcadeWindow(args.name, args.port, args.host)
    if args.lobby:
        window.show_lobby()
    else:
        try:
            window.join(args.room, private=args.private)
        except ConnectionFailed as error:
            window.close()
            raise SystemExit(f"chase: could not join at {args.host}:{args.port}: {error}") from None
    arcade.run()


if __name__ == "__main__":
    main()
