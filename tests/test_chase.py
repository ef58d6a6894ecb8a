"""The chase example: its rules as plain functions, its drawing, and whole games in rooms.

The game tests run the server as a real subprocess (``python -m examples.chase.server``, rooms
of six) and the bots as subprocesses too, and follow the game through what the bots print:
which room they joined, and every half second their role, tags and whom they see. The pygame
client and the arcade client (with its lobby) play in the test's own process.
"""

from __future__ import annotations

import math
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from examples.chase import bot, common, rules
from examples.chase import server as chase_server_module
from pygase_core import TO_DELETE, Client, GameState, GameStateUpdate
from pygase_core.model.interpolation import Snapshot

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent


def apply(state: GameState, update: dict[str, Any]) -> GameState:
    """Merge an update into a state the way the server does."""
    return state + GameStateUpdate.from_changes(state.time_order + 1, update)


def joined(*names: str, ids: tuple[str, ...] = ()) -> GameState:
    """Players who joined in this order, with the ids ``ids`` (by default "1", "2", ...)."""
    state = rules.initial_state()
    rng = random.Random(1)
    for index, name in enumerate(names):
        player_id = ids[index] if ids else str(index + 1)
        state = apply(state, rules.join(name, game_state=state, player_id=player_id, rng=rng))
    return state


def place(state: GameState, player_id: str, x: float, y: float) -> GameState:
    player = {**state.players[player_id], "x": x, "y": y}
    return apply(state, {"players": {player_id: player}})


# -- rules --------------------------------------------------------------------------------------


def test_the_first_player_becomes_the_chaser() -> None:
    state = joined("ann", "bob")
    assert state.chaser == "1"
    assert {p["name"] for p in state.players.values()} == {"ann", "bob"}
    assert [state.players[pid]["number"] for pid in ("1", "2")] == [1, 2]
    assert state.next_number == 3


def test_joining_again_renames_instead_of_adding() -> None:
    state = joined("ann")
    update = rules.join("anna", game_state=state, player_id="1", rng=random.Random())
    state = apply(state, update)
    assert len(state.players) == 1 and state.players["1"]["name"] == "anna"
    assert state.players["1"]["number"] == 1 and state.next_number == 2


def test_names_are_trimmed_and_never_empty() -> None:
    state = rules.initial_state()
    update = rules.join("x" * 100, game_state=state, player_id="1", rng=random.Random())
    assert len(update["players"]["1"]["name"]) == rules.MAX_NAME_LENGTH
    update = rules.join("", game_state=state, player_id="1", rng=random.Random())
    assert update["players"]["1"]["name"] == "anonymous"


def test_a_move_only_steers_the_senders_own_player() -> None:
    state = joined("ann", "bob")
    state = apply(state, rules.move(1.0, 0.0, game_state=state, player_id="2"))
    assert state.players["2"]["dx"] == 1.0 and state.players["1"]["dx"] == 0.0
    assert rules.move(1.0, 0.0, game_state=state, player_id="not-a-player") == {}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "fast", None, True, [1]])
def test_invalid_moves_are_ignored(bad: Any) -> None:
    state = joined("ann")
    assert rules.move(bad, 0.0, game_state=state, player_id="1") == {}


def test_the_server_caps_speed_whatever_the_client_asks() -> None:
    """A client asking for a huge step moves no further than its speed allows: no teleports."""
    state = place(joined("ann", "bob"), "2", 400.0, 300.0)
    state = apply(state, rules.move(1e9, 1e9, game_state=state, player_id="2"))
    before = state.players["2"]
    update, _ = rules.step(state, 0.1)
    after = update["players"]["2"]
    travelled = math.hypot(after["x"] - before["x"], after["y"] - before["y"])
    assert travelled == pytest.approx(rules.RUNNER_SPEED * 0.1)


def test_the_chaser_is_faster_and_everyone_stays_in_the_arena() -> None:
    state = place(joined("ann", "bob"), "1", 400.0, 300.0)
    state = apply(state, rules.move(1.0, 0.0, game_state=state, player_id="1"))
    update, _ = rules.step(state, 0.1)
    assert update["players"]["1"]["x"] == pytest.approx(400.0 + rules.CHASER_SPEED * 0.1)
    state = place(state, "1", rules.ARENA_WIDTH - 1.0, 300.0)
    update, _ = rules.step(state, 1.0)
    assert update["players"]["1"]["x"] == rules.ARENA_WIDTH - rules.PLAYER_RADIUS


def test_touching_tags_and_the_tagged_player_becomes_the_chaser() -> None:
    state = place(place(joined("ann", "bob"), "1", 100.0, 100.0), "2", 120.0, 100.0)
    update, tag = rules.step(state, 0.02)
    assert tag == rules.Tag(tagger="1", tagged="2")
    state = apply(state, update)
    assert state.chaser == "2"
    assert state.players["1"]["tags"] == 1
    assert state.protected_until == pytest.approx(state.clock + rules.PROTECTION_SECONDS)


def test_no_tag_backs_while_protected() -> None:
    state = place(place(joined("ann", "bob"), "1", 100.0, 100.0), "2", 120.0, 100.0)
    update, _ = rules.step(state, 0.02)
    state = apply(state, update)
    for _ in range(int(rules.PROTECTION_SECONDS / 0.1) - 1):
        update, tag = rules.step(state, 0.1)
        assert tag is None
        state = apply(state, update)
    update, tag = rules.step(state, 0.2)
    assert tag == rules.Tag(tagger="2", tagged="1")


def test_leaving_removes_the_player_and_the_longest_playing_becomes_the_chaser() -> None:
    # Seat ids are random strings: the role goes by joining order, not by the ids' order.
    state = joined("ann", "bob", "cyd", "dan", ids=("m", "z", "a", "k"))
    assert state.chaser == "m"
    state = apply(state, rules.leave(game_state=state, player_id="m"))
    assert set(state.players) == {"z", "a", "k"} and state.chaser == "z"
    state = apply(state, rules.leave(game_state=state, player_id="a"))
    assert set(state.players) == {"z", "k"} and state.chaser == "z"  # a runner left
    state = apply(state, rules.leave(game_state=state, player_id="z"))
    assert set(state.players) == {"k"} and state.chaser == "k"
    update = rules.leave(game_state=state, player_id="k")
    assert update["players"]["k"] is TO_DELETE
    state = apply(state, update)
    assert state.players == {} and state.chaser is None
    assert rules.leave(game_state=state, player_id="m") == {}


def test_players_keep_their_colour_by_joining_number() -> None:
    state = joined("ann", "bob", "cyd", ids=("q", "b", "x"))
    colors = [common.player_color(state, pid) for pid in ("b", "x")]
    assert colors == [common.RUNNER_COLORS[2], common.RUNNER_COLORS[3]]
    assert common.player_color(state, "q") == common.CHASER_COLOR


def test_new_players_spawn_away_from_the_chaser() -> None:
    state = place(joined("ann"), "1", 30.0, 30.0)
    for seed in range(20):
        update = rules.join("bob", game_state=state, player_id="2", rng=random.Random(seed))
        newcomer = update["players"]["2"]
        assert math.hypot(newcomer["x"] - 30.0, newcomer["y"] - 30.0) > 4 * rules.TAG_DISTANCE


def test_bot_chases_the_nearest_and_flees_the_chaser() -> None:
    state = place(
        place(place(joined("a", "b", "c"), "1", 100.0, 100.0), "2", 200.0, 100.0), "3", 100.0, 500.0
    )
    rng = random.Random(0)
    assert bot.choose_direction(state, "1", rng, (0.0, 0.0)) == pytest.approx((1.0, 0.0))
    away = bot.choose_direction(state, "2", rng, (0.0, 0.0))
    assert away[0] > 0.9  # away from the chaser on its left
    assert bot.choose_direction(state, "3", rng, (0.0, 1.0)) == (0.0, 1.0)  # far: wanders


def test_input_sender_sends_changes_and_repeats() -> None:
    sent: list[tuple[Any, ...]] = []
    now = [0.0]
    sender = common.InputSender(lambda *args: sent.append(args), clock=lambda: now[0])
    assert sender.update((1.0, 0.0))
    assert not sender.update((1.0, 0.0))
    assert sender.update((0.0, 1.0))
    now[0] += common.INPUT_REPEAT_SECONDS
    assert sender.update((0.0, 1.0))
    assert sent == [("MOVE", 1.0, 0.0), ("MOVE", 0.0, 1.0), ("MOVE", 0.0, 1.0)]


def test_direction_from_keys() -> None:
    assert common.direction_from_keys(False, False, False, False) == (0.0, 0.0)
    assert common.direction_from_keys(True, False, False, False) == (-1.0, 0.0)
    dx, dy = common.direction_from_keys(False, True, False, True)
    assert dx == pytest.approx(math.sqrt(0.5)) and dy == pytest.approx(math.sqrt(0.5))


def test_bot_status_report_says_where_it_is_and_whom_it_sees() -> None:
    state = place(joined("ann", "bob", "cyd"), "2", 123.4, 56.7)
    assert bot.status_report(state, "2") == (
        "at (123, 57), running, 0 tags, sees 2 other players (ann, cyd)"
    )
    assert "the chaser" in bot.status_report(state, "1")
    assert bot.status_report(joined("ann"), "1").endswith("sees 0 other players")


LABEL = (60.0, 14.0)


def test_labels_go_above_the_dot_centred() -> None:
    left, top = common.label_position(400.0, 300.0, *LABEL)
    assert left == 400.0 - LABEL[0] / 2
    assert top + LABEL[1] == 300.0 - rules.PLAYER_RADIUS - common.LABEL_GAP


def test_labels_near_the_top_go_below_the_dot() -> None:
    left, top = common.label_position(400.0, rules.PLAYER_RADIUS, *LABEL)
    assert top == 2 * rules.PLAYER_RADIUS + common.LABEL_GAP
    assert left == 400.0 - LABEL[0] / 2


@pytest.mark.parametrize("x", [rules.PLAYER_RADIUS, 100.0, rules.ARENA_WIDTH - rules.PLAYER_RADIUS])
@pytest.mark.parametrize("y", [rules.PLAYER_RADIUS, 40.0, 300.0, rules.ARENA_HEIGHT - 15.0])
@pytest.mark.parametrize("size", [LABEL, (200.0, 20.0), (2000.0, 20.0)])
def test_labels_stay_inside_the_arena_and_off_their_dot(
    x: float, y: float, size: tuple[float, float]
) -> None:
    width, height = size
    left, top = common.label_position(x, y, width, height)
    assert top >= 0 and top + height <= rules.ARENA_HEIGHT
    assert left >= 0 and (left + width <= rules.ARENA_WIDTH or width > rules.ARENA_WIDTH)
    dot_top, dot_bottom = y - rules.PLAYER_RADIUS, y + rules.PLAYER_RADIUS
    assert top + height <= dot_top or top >= dot_bottom  # the dot does not hide its label


def corner_game() -> Snapshot:
    """A frame to draw: Ann, the chaser, in the top left corner, and Bob in the top right one."""
    state = place(joined("Ann", "Bob"), "1", rules.PLAYER_RADIUS, rules.PLAYER_RADIUS)
    state = place(state, "2", rules.ARENA_WIDTH - rules.PLAYER_RADIUS, rules.PLAYER_RADIUS)
    fields = ["players", "chaser", "protected_until", "clock", "next_number"]
    return Snapshot(
        {field: getattr(state, field) for field in fields},
        time_order=state.time_order,
        render_time=0.0,
        received_at=0.0,
    )


ROOM_ID = "AbC-12_xyZ89"


def header_shows(screen: Any, font: Any, text: str) -> bool:
    """Whether the pygame header shows ``text`` right-aligned, exactly as ``font`` renders it."""
    import pygame

    rendered = font.render(text, True, common.HEADER_COLOR)
    where = rendered.get_rect(midright=(screen.get_width() - 8, common.HEADER_HEIGHT // 2))
    expected = pygame.Surface(where.size)
    expected.fill(common.BAND_COLOR)
    expected.blit(rendered, (0, 0))
    drawn = screen.subsurface(where)
    return all(
        drawn.get_at((x, y)) == expected.get_at((x, y))
        for x in range(where.width)
        for y in range(where.height)
    )


def test_pygame_client_keeps_header_and_labels_clear_of_the_dots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dots in the top corners: the header keeps its band and the labels stay in the window."""
    pygame = pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    from examples.chase.pygame_client import ChasePygameClient

    pygame.font.init()
    try:
        game = ChasePygameClient("Ann")
        game.player_id = "1"
        game.room_id = ROOM_ID
        screen = pygame.Surface(common.WINDOW_SIZE)
        font = pygame.font.Font(None, 22)
        game.draw(screen, font, corner_game())
        width, _ = common.WINDOW_SIZE
        header = {
            tuple(screen.get_at((x, y)))[:3]
            for x in range(width)
            for y in range(common.HEADER_HEIGHT)
        }
        # Only the band's colour and the white text (with its anti-aliased greys) are there.
        assert (255, 255, 255) in header
        assert all(max(color) - min(color) <= 15 for color in header), header
        # The room's id is on the right, to share.
        assert header_shows(screen, font, f"room {ROOM_ID}")
        arena_top = common.HEADER_HEIGHT
        ann_x, ann_y = common.arena_to_window(rules.PLAYER_RADIUS, rules.PLAYER_RADIUS)
        assert tuple(screen.get_at((int(ann_x), int(ann_y))))[:3] == common.CHASER_COLOR
        # Both labels were drawn below their dots, inside the arena.
        below = [
            (x, y)
            for x in range(width)
            for y in range(arena_top + 2 * rules.PLAYER_RADIUS, arena_top + 60)
            if tuple(screen.get_at((x, y)))[:3] == common.LABEL_COLOR
        ]
        assert any(x < width / 2 for x, _ in below) and any(x > width / 2 for x, _ in below)
    finally:
        pygame.font.quit()


def arcade_header(image: Any) -> tuple[set[Any], set[Any]]:
    """The colours of the arcade header's left and right halves."""
    width, _ = common.WINDOW_SIZE
    halves: tuple[set[Any], set[Any]] = (set(), set())
    for x in range(width):
        for y in range(common.HEADER_HEIGHT):
            halves[x >= width // 2].add(image.getpixel((x, y)))
    return halves


def test_arcade_client_keeps_header_and_labels_clear_of_the_dots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same corner game in the arcade client's game view, drawn into its offscreen window."""
    if "ARCADE_HEADLESS" not in os.environ:
        monkeypatch.setenv("ARCADE_HEADLESS", "1")
    arcade = pytest.importorskip("arcade")
    from examples.chase.arcade_client import ChaseArcadeWindow

    window = ChaseArcadeWindow("Ann", 8080)  # never connects: the snapshot is made up
    try:
        window.game.joined(None, "1")
        window.show_view(window.game)
        window.pygase.snapshot = corner_game()
        window.game.on_draw()
        image = arcade.get_image(0, 0, *common.WINDOW_SIZE).convert("RGB")
        assert not any(min(color) > 200 for color in arcade_header(image)[1])  # no room yet
        window.game.joined(ROOM_ID, "1")
        window.game.on_draw()
        image = arcade.get_image(0, 0, *common.WINDOW_SIZE).convert("RGB")
    finally:
        window.close()
    width, _ = common.WINDOW_SIZE
    left, right = arcade_header(image)
    assert window.game.room_caption == f"room {ROOM_ID}"
    assert any(min(color) > 200 for color in left)  # the white status text
    assert any(min(color) > 200 for color in right)  # the room's id
    assert all(max(color) - min(color) <= 15 for color in left | right), left | right
    ann_x, ann_y = common.arena_to_window(rules.PLAYER_RADIUS, rules.PLAYER_RADIUS)
    assert image.getpixel((int(ann_x), int(ann_y))) == common.CHASER_COLOR
    arena_top = common.HEADER_HEIGHT
    below = [
        (x, y)
        for x in range(width)
        for y in range(arena_top + 2 * rules.PLAYER_RADIUS, arena_top + 60)
        if min(image.getpixel((x, y))) > 180
    ]
    assert any(x < width / 2 for x, _ in below) and any(x > width / 2 for x, _ in below)


def test_join_options_pick_the_room() -> None:
    assert common.join_options("Ann") == {"room": "chase", "options": {"name": "Ann"}}
    assert common.join_options("Ann", "R1") == {"room_id": "R1", "options": {"name": "Ann"}}
    assert common.join_options("Ann", private=True) == {
        "room": "chase",
        "create": True,
        "options": {"name": "Ann", "private": True},
    }
    assert common.join_options("Ann", new=True) == {
        "room": "chase",
        "create": True,
        "options": {"name": "Ann"},
    }
    parser = common.client_parser("chase", "Ann")
    assert parser.parse_args(["--room", "R1"]).room == "R1"
    assert parser.parse_args(["--private"]).private
    with pytest.raises(SystemExit):
        parser.parse_args(["--private", "--room", "R1"])


# -- real games in rooms ------------------------------------------------------------------------

TIMEOUT = 60.0
"""Seconds a real game may take to get where a test wants it (the machine may be busy)."""


def poll(condition: Callable[[], T], message: str, timeout: float = TIMEOUT) -> T:
    """Check ``condition`` every 50 ms until it returns something truthy; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{message} (within {timeout:g} s)")
        time.sleep(0.05)


class Program:
    """``python -m module args`` from the repository root, its output collected as it comes."""

    def __init__(self, module: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.module = module
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def running(self) -> bool:
        return self.process.poll() is None

    def line(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """Wait for a line of output that matches the regular expression ``pattern``."""
        compiled = re.compile(pattern)

        def found() -> re.Match[str] | None:
            for line in list(self.lines):
                match = compiled.fullmatch(line)
                if match:
                    return match
            if not self.running() and not self._reader.is_alive():
                pytest.fail(f"{self.module} ended without printing {pattern!r}:\n{self.output}")
            return None

        return poll(found, f"{self.module} did not print {pattern!r}:\n{self.output}", timeout)

    def stop(self) -> str:
        """Stop it (SIGTERM first, as a system shutting down would) and return its output."""
        if self.running():
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        return self.output


@pytest.fixture
def programs() -> Iterator[Callable[..., Program]]:
    """Start programs with ``start(module, *args)``; they are stopped after the test."""
    started: list[Program] = []

    def start(module: str, *args: str, env: dict[str, str] | None = None) -> Program:
        program = Program(module, *args, env=env)
        started.append(program)
        return program

    yield start
    for program in started:
        program.stop()


@pytest.fixture
def chase_server(programs: Callable[..., Program]) -> int:
    """Run ``python -m examples.chase.server --port 0`` (rooms of 6); return its port."""
    server = programs("examples.chase.server", "--port", "0", "--seed", "3")
    return int(server.line(r"chase server listening on \S+:(\d+)").group(1))


STATUS = re.compile(
    r"(?P<name>\S+): at \(\d+, \d+\), (?P<role>the chaser|running), (?P<tags>\d+) tags, "
    r"sees (?P<seen>.*)"
)


def statuses(program: Program) -> list[re.Match[str]]:
    """The status lines a bot printed so far."""
    return [m for m in map(STATUS.fullmatch, list(program.lines)) if m is not None]


def start_bot(
    programs: Callable[..., Program], port: int, name: str, *args: str, seed: int = 0
) -> Program:
    return programs(
        "examples.chase.bot",
        "--port",
        str(port),
        "--name",
        name,
        "--seed",
        str(seed),
        "--status-every",
        "0.5",
        *args,
    )


def joined_room(program: Program, name: str, private: bool = False) -> str:
    """The room a bot says it joined."""
    kind = "private room" if private else "room"
    return program.line(rf"{name}: joined {kind} (\S+) as player \S+").group(1)


def open_rooms(port: int) -> list[Any]:
    return Client.list_rooms(port, room=common.ROOM_TYPE)


def test_two_bots_play_in_one_room_and_the_chaser_changes(
    chase_server: int, programs: Callable[..., Program]
) -> None:
    robo, droid = (
        start_bot(programs, chase_server, name, seed=seed)
        for seed, name in enumerate(["Robo", "Droid"])
    )
    assert joined_room(robo, "Robo") == joined_room(droid, "Droid")

    def tag_and_new_chaser() -> bool:
        """One bot tagged the other (it has a tag), which then was the chaser."""
        for tagger, tagged in [(robo, droid), (droid, robo)]:
            tagged_was_chaser = any(m["role"] == "the chaser" for m in statuses(tagged))
            if tagged_was_chaser and any(int(m["tags"]) >= 1 for m in statuses(tagger)):
                return True
        assert robo.running() and droid.running(), "a bot quit early"
        return False

    poll(tag_and_new_chaser, f"no tag:\n{robo.output}\n{droid.output}", timeout=90)
    # Both got the room's TAG event for the first tag.
    first = robo.line(r"Robo: (Robo tagged Droid|Droid tagged Robo)").group(1)
    droid.line(rf"Droid: {first}")
    outputs = [robo.stop(), droid.stop()]  # SIGTERM: the bots leave as on Ctrl-C
    assert all("Traceback" not in output for output in outputs), outputs
    for name, other, output in [("Robo", "Droid", outputs[0]), ("Droid", "Robo", outputs[1])]:
        lines = output.splitlines()
        assert lines[0] == f"{name}: connected to localhost:{chase_server}", output
        assert re.fullmatch(rf"{name}: joined room \S+ as player \S+", lines[1]), output
        assert any(line.endswith(f"sees 1 other player ({other})") for line in lines), output
        assert lines[-1].startswith(f"{name}: disconnected from localhost:{chase_server} ("), output


def test_seven_bots_fill_a_room_of_six_and_the_seventh_opens_another(
    chase_server: int, programs: Callable[..., Program]
) -> None:
    names = [f"Bot{index}" for index in range(7)]
    bots = [start_bot(programs, chase_server, name, seed=i) for i, name in enumerate(names)]
    rooms = {name: joined_room(program, name) for name, program in zip(names, bots, strict=True)}
    sizes = Counter(rooms.values())
    assert sorted(sizes.values()) == [1, 6], rooms
    alone = min(sizes, key=sizes.__getitem__)
    # Matchmaking offers only the room with a seat free.
    loner = next(name for name, room in rooms.items() if room == alone)
    poll(
        lambda: (
            [(r.room_id, r.clients, r.max_clients, r.metadata) for r in open_rooms(chase_server)]
            == [(alone, 1, 6, {"players": [loner]})]
        ),
        f"the listing is not just {loner}'s room {alone}",
    )
    # Everyone in the full room plays with the five others; the seventh plays alone.
    for name, program in zip(names, bots, strict=True):
        seen = "sees 0 other players" if name == loner else "sees 5 other players (.*)"
        program.line(rf"{name}: at .*, {seen}")
    assert all(program.running() for program in bots)


def test_a_private_room_is_never_matched_into_and_friends_join_it_by_id(
    chase_server: int, programs: Callable[..., Program]
) -> None:
    ann = start_bot(programs, chase_server, "Ann", "--private")
    private = joined_room(ann, "Ann", private=True)
    bob = start_bot(programs, chase_server, "Bob", seed=1)
    public = joined_room(bob, "Bob")
    assert public != private
    assert [room.room_id for room in open_rooms(chase_server)] == [public]
    cyd = start_bot(programs, chase_server, "Cyd", "--room", private, seed=2)
    assert joined_room(cyd, "Cyd") == private
    ann.line(r"Ann: at .*, sees 1 other player \(Cyd\)")
    cyd.line(r"Cyd: at .*, sees 1 other player \(Ann\)")
    assert [room.room_id for room in open_rooms(chase_server)] == [public]
    bob.line(r"Bob: at .*, sees 0 other players")
    assert all(m["seen"] == "0 other players" for m in statuses(bob))
    # A room id that names no room is refused, and the bot says why.
    lost = start_bot(programs, chase_server, "Lost", "--room", "no-such-room")
    assert lost.process.wait(timeout=TIMEOUT) == 1
    assert lost.stop().splitlines() == [
        f"Lost: could not join at localhost:{chase_server}: no room 'no-such-room'"
    ]


def test_max_players_sets_the_size_of_every_room() -> None:
    server = chase_server_module.make_server(max_players=2)
    server.run_in_thread(0)
    clients = [Client() for _ in range(3)]
    try:
        assert server.port
        for index, client in enumerate(clients):
            client.connect_in_thread(server.port, **common.join_options(f"p{index}"))
        assert clients[0].room_id == clients[1].room_id != clients[2].room_id
        poll(
            lambda: (
                [(r.clients, r.max_clients, r.metadata) for r in server.rooms]
                == [(2, 2, {"players": ["p0", "p1"]}), (1, 2, {"players": ["p2"]})]
            ),
            f"rooms: {server.rooms}",
        )
    finally:
        for client in clients:
            client.disconnect()
        server.shutdown()
    with pytest.raises(SystemExit):
        chase_server_module.main(["--max-players", "0"])


def test_pygame_arcade_and_bot_clients_play_in_one_room(
    chase_server: int, programs: Callable[..., Program], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The three kinds of client join the same room; each sees the others; the id is shown."""
    pytest.importorskip("pygame")
    pytest.importorskip("arcade")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    from examples.chase.pygame_client import ChasePygameClient

    robo = start_bot(programs, chase_server, "Robo")
    room = joined_room(robo, "Robo")
    arcade_env = {"ARCADE_HEADLESS": os.environ.get("ARCADE_HEADLESS", "1")}
    port = str(chase_server)
    bob = programs("examples.chase.arcade_client", "--port", port, "--name", "Bob", env=arcade_env)
    game = ChasePygameClient("Ann")
    game.start(chase_server)
    try:
        assert game.room_id == room == game.pygase.client.room_id
        assert game.player_id == game.pygase.client.id
        robo_positions: set[tuple[float, float]] = set()
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert time.monotonic() < deadline, f"not everyone showed up: {game.pygase.snapshot}"
            assert robo.running() and bob.running(), f"a client quit early: {bob.output}"
            snapshot = game.frame()
            if snapshot is None or game.player_id not in snapshot.players:
                continue
            names = {player["name"]: player for player in snapshot.players.values()}
            if "Robo" in names:
                robo_positions.add((names["Robo"]["x"], names["Robo"]["y"]))
            if {"Ann", "Bob", "Robo"} <= set(names) and len(robo_positions) > 10:
                break
        assert snapshot.players[game.player_id]["name"] == "Ann"
        # The frame shows Ann (her own player, outlined in white) where the state has her.
        ann = snapshot.players[game.player_id]
        x, y = common.arena_to_window(ann["x"], ann["y"])
        edge = (round(x) + rules.PLAYER_RADIUS - 1, round(y))
        assert tuple(game.screen.get_at(edge))[:3] == common.OWN_OUTLINE_COLOR
        # The header shows the room's id, to share.
        assert header_shows(game.screen, game.font, f"room {room}")
        robo.line(r"Robo: at .*, sees 2 other players \((Ann, Bob|Bob, Ann)\)")
    finally:
        game.stop()
    outputs = [robo.stop(), bob.stop()]
    assert all("Traceback" not in output for output in outputs), outputs


def test_arcade_lobby_lists_the_open_rooms_and_joins_the_chosen_one(
    chase_server: int, programs: Callable[..., Program], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Driven headless through its key handlers: list, choose with the arrows, join with Enter."""
    if "ARCADE_HEADLESS" not in os.environ:
        monkeypatch.setenv("ARCADE_HEADLESS", "1")
    arcade = pytest.importorskip("arcade")
    from examples.chase.arcade_client import (
        LOBBY_SELECTED_COLOR,
        ChaseArcadeWindow,
        LobbyEntry,
    )

    robo = start_bot(programs, chase_server, "Robo")
    room = joined_room(robo, "Robo")
    hidden = start_bot(programs, chase_server, "Hidden", "--private", seed=1)
    private = joined_room(hidden, "Hidden", private=True)
    width, height = common.WINDOW_SIZE

    window = ChaseArcadeWindow("Bob", chase_server)
    try:
        lobby = window.show_lobby()
        assert window.current_view is lobby
        assert [entry.label for entry in lobby.entries] == ["New room", "New private room"]

        def listed() -> bool:
            lobby.refresh(wait=True)
            return [entry.label for entry in lobby.entries] == [
                f"room {room}   1/6   Robo",
                "New room",
                "New private room",
            ]

        poll(listed, "Robo's room is not listed")
        assert lobby.rooms is not None and private not in {r.room_id for r in lobby.rooms}
        assert lobby.message == "1 open room" and lobby.selected == 0
        # The selected line is highlighted, the others are not.
        lobby.on_draw()
        image = arcade.get_image(0, 0, width, height).convert("RGB")
        first, second = (round(height - lobby.row_middle(row)) for row in (0, 1))
        assert image.getpixel((24, first)) == LOBBY_SELECTED_COLOR
        assert image.getpixel((24, second)) == common.BAND_COLOR
        assert any(min(image.getpixel((x, first))) > 200 for x in range(30, 300))  # its text
        # Up and down (and W/S) move the selection, wrapping around.
        moves = [arcade.key.DOWN, arcade.key.DOWN, arcade.key.DOWN, arcade.key.UP, arcade.key.W]
        seen = []
        for key in moves:
            lobby.on_key_press(key, 0)
            seen.append(lobby.selected)
        assert seen == [1, 2, 0, 2, 1]
        lobby.on_key_press(arcade.key.S, 0)
        lobby.on_key_press(arcade.key.S, 0)
        assert lobby.selected == 0
        # A room that is gone refuses the join: the lobby stays, says so and looks again.
        lobby.entries.insert(0, LobbyEntry("room gone", "gone-room"))
        lobby.on_key_press(arcade.key.ENTER, 0)
        assert window.current_view is lobby
        assert lobby.message == "could not join: no room 'gone-room'"
        poll(listed, "the lobby did not look again")
        # Enter joins the selected room and shows the game, with the room's id in the header.
        lobby.on_key_press(arcade.key.ENTER, 0)
        assert window.current_view is window.game
        assert window.pygase.client.room_id == room
        assert window.game.room_caption == f"room {room}"

        def both_playing() -> bool:
            snapshot = window.pygase.pump()
            window.pygase.end_frame()
            players = snapshot.players if snapshot is not None else {}
            return {"Bob", "Robo"} <= {player["name"] for player in players.values()}

        poll(both_playing, "Bob and Robo do not play together")
        robo.line(r"Robo: at .*, sees 1 other player \(Bob\)")
        window.game.on_draw()
        image = arcade.get_image(0, 0, width, height).convert("RGB")
        assert any(min(color) > 200 for color in arcade_header(image)[1])
    finally:
        window.close()

    # Opening a new private room from the lobby: Up from the top wraps to its line.
    window = ChaseArcadeWindow("Cyd", chase_server)
    try:
        lobby = window.show_lobby()
        poll(lambda: lobby.refresh(wait=True) or lobby.rooms, "no rooms listed")
        lobby.on_key_press(arcade.key.UP, 0)
        assert lobby.entries[lobby.selected].label == "New private room"
        lobby.on_key_press(arcade.key.ENTER, 0)
        assert window.current_view is window.game
        new = window.pygase.client.room_id
        assert new not in (None, room, private)
        assert window.game.room_caption == f"private room {new}"
        assert new not in {r.room_id for r in open_rooms(chase_server)}
    finally:
        window.close()
