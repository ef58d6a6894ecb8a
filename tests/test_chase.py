"""The chase example: its rules as plain functions, and whole games over real sockets.

The game test runs the server as a real subprocess (``python -m examples.chase.server``) and two
headless bots as subprocesses too, and watches the game from a third, passive client.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.chase import bot, common, rules
from pygase_core import TO_DELETE, Backend, Client, GameState, GameStateUpdate
from pygase_core.model.interpolation import Snapshot

ROOT = Path(__file__).resolve().parent.parent
ADDRESS_A = ("127.0.0.1", 5001)
ADDRESS_B = ("127.0.0.1", 5002)


def apply(state: GameState, update: dict[str, Any]) -> GameState:
    """Merge an update into a state the way the server does."""
    return state + GameStateUpdate.from_changes(state.time_order + 1, update)


def joined(*names: str) -> GameState:
    state = rules.initial_state()
    rng = random.Random(1)
    for index, name in enumerate(names):
        address = ("127.0.0.1", 5001 + index)
        state = apply(state, rules.join(name, game_state=state, client_address=address, rng=rng))
    return state


def place(state: GameState, player_id: str, x: float, y: float) -> GameState:
    player = {**state.players[player_id], "x": x, "y": y}
    return apply(state, {"players": {player_id: player}})


# -- rules --------------------------------------------------------------------------------------


def test_the_first_player_becomes_the_chaser() -> None:
    state = joined("ann", "bob")
    assert state.chaser == "1"
    assert {p["name"] for p in state.players.values()} == {"ann", "bob"}
    assert state.next_id == 3


def test_joining_again_renames_instead_of_adding() -> None:
    state = joined("ann")
    update = rules.join("anna", game_state=state, client_address=ADDRESS_A, rng=random.Random())
    state = apply(state, update)
    assert len(state.players) == 1 and state.players["1"]["name"] == "anna"


def test_names_are_trimmed_and_never_empty() -> None:
    state = rules.initial_state()
    update = rules.join("x" * 100, game_state=state, client_address=ADDRESS_A, rng=random.Random())
    assert len(update["players"]["1"]["name"]) == rules.MAX_NAME_LENGTH
    update = rules.join("", game_state=state, client_address=ADDRESS_A, rng=random.Random())
    assert update["players"]["1"]["name"] == "anonymous"


def test_a_move_only_steers_the_senders_own_player() -> None:
    state = joined("ann", "bob")
    state = apply(state, rules.move(1.0, 0.0, game_state=state, client_address=ADDRESS_B))
    assert state.players["2"]["dx"] == 1.0 and state.players["1"]["dx"] == 0.0
    assert rules.move(1.0, 0.0, game_state=state, client_address=("10.0.0.9", 1)) == {}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "fast", None, True, [1]])
def test_invalid_moves_are_ignored(bad: Any) -> None:
    state = joined("ann")
    assert rules.move(bad, 0.0, game_state=state, client_address=ADDRESS_A) == {}


def test_the_server_caps_speed_whatever_the_client_asks() -> None:
    """A client asking for a huge step moves no further than its speed allows: no teleports."""
    state = place(joined("ann", "bob"), "2", 400.0, 300.0)
    state = apply(state, rules.move(1e9, 1e9, game_state=state, client_address=ADDRESS_B))
    before = state.players["2"]
    update, _ = rules.step(state, 0.1)
    after = update["players"]["2"]
    travelled = math.hypot(after["x"] - before["x"], after["y"] - before["y"])
    assert travelled == pytest.approx(rules.RUNNER_SPEED * 0.1)


def test_the_chaser_is_faster_and_everyone_stays_in_the_arena() -> None:
    state = place(joined("ann", "bob"), "1", 400.0, 300.0)
    state = apply(state, rules.move(1.0, 0.0, game_state=state, client_address=ADDRESS_A))
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


def test_players_of_disconnected_clients_are_removed_and_the_role_passes_on() -> None:
    state = joined("ann", "bob", "cyd")
    update, _ = rules.step(state, 0.02, connected={rules.owner_key(ADDRESS_B), "127.0.0.1:5003"})
    state = apply(state, update)
    assert set(state.players) == {"2", "3"} and state.chaser == "2"
    state = apply(state, rules.leave(game_state=state, client_address=ADDRESS_B))
    assert set(state.players) == {"3"} and state.chaser == "3"
    update, _ = rules.step(state, 0.02, connected=set())
    state = apply(state, update)
    assert state.players == {} and state.chaser is None
    assert update["players"]["3"] is TO_DELETE
    assert rules.leave(game_state=state, client_address=ADDRESS_A) == {}


def test_new_players_spawn_away_from_the_chaser() -> None:
    state = place(joined("ann"), "1", 30.0, 30.0)
    for seed in range(20):
        update = rules.join(
            "bob", game_state=state, client_address=ADDRESS_B, rng=random.Random(seed)
        )
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
    fields = ["players", "chaser", "protected_until", "clock", "next_id"]
    return Snapshot(
        {field: getattr(state, field) for field in fields},
        time_order=state.time_order,
        render_time=0.0,
        received_at=0.0,
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
        screen = pygame.Surface(common.WINDOW_SIZE)
        game.draw(screen, pygame.font.Font(None, 22), corner_game())
        width, _ = common.WINDOW_SIZE
        header = {
            tuple(screen.get_at((x, y)))[:3]
            for x in range(width)
            for y in range(common.HEADER_HEIGHT)
        }
        # Only the band's colour and the white text (with its anti-aliased greys) are there.
        assert (255, 255, 255) in header
        assert all(max(color) - min(color) <= 15 for color in header), header
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


def test_arcade_client_keeps_header_and_labels_clear_of_the_dots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same corner game in the arcade client, drawn into its offscreen window."""
    if "ARCADE_HEADLESS" not in os.environ:
        monkeypatch.setenv("ARCADE_HEADLESS", "1")
    arcade = pytest.importorskip("arcade")
    from examples.chase.arcade_client import ChaseArcadeWindow

    backend = Backend(rules.initial_state(), lambda game_state, dt: {})
    backend.run_in_thread(port=0)
    try:
        window = ChaseArcadeWindow("Ann", backend.server.port or 0)
        try:
            window.player_id = "1"
            window.pygase.snapshot = corner_game()
            window.on_draw()
            image = arcade.get_image(0, 0, *common.WINDOW_SIZE).convert("RGB")
        finally:
            window.close()
    finally:
        backend.shutdown()
    width, _ = common.WINDOW_SIZE
    header = {image.getpixel((x, y)) for x in range(width) for y in range(common.HEADER_HEIGHT)}
    assert any(min(color) > 200 for color in header)  # the white text
    assert all(max(color) - min(color) <= 15 for color in header), header
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


# -- a real game --------------------------------------------------------------------------------


def python_module(
    module: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``python -m module args`` from the repository root, with extra ``env`` variables."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> str:
    """Stop a child process (gently first) and return what it printed."""
    if process.poll() is None:
        process.terminate()
    try:
        output, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


@pytest.fixture
def chase_server() -> Iterator[int]:
    """Run ``python -m examples.chase.server --port 0`` and yield the port it announces."""
    process = python_module("examples.chase.server", "--port", "0", "--seed", "3")
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the server is bound (or has died)
    if "listening on" not in line:
        pytest.fail(f"the chase server did not start: {line}{stop(process)}")
    port = int(line.rsplit(":", 1)[1])
    yield port
    stop(process)


def test_two_bots_play_and_the_chaser_changes(chase_server: int) -> None:
    observer = Client()
    tags: list[tuple[str, str]] = []
    observer.register_event_handler("TAG", lambda tagger, tagged: tags.append((tagger, tagged)))
    observer.connect_in_thread(chase_server)
    bots = [
        python_module(
            "examples.chase.bot",
            "--port",
            str(chase_server),
            "--name",
            name,
            "--seed",
            str(seed),
            "--duration",
            "90",
            "--status-every",
            "0.5",
        )
        for seed, name in enumerate(["Robo", "Droid"])
    ]
    try:
        deadline = time.monotonic() + 90
        first_chaser = None
        while time.monotonic() < deadline:
            with observer.access_game_state() as state:
                players = dict(getattr(state, "players", {}))
                chaser = getattr(state, "chaser", None)
            if len(players) == 2 and first_chaser is None:
                first_chaser = chaser
            if first_chaser is not None and chaser not in (None, first_chaser) and tags:
                break
            assert all(b.poll() is None for b in bots), "a bot quit early"
            time.sleep(0.05)
        else:
            pytest.fail(f"no tag within 90 s: players={players}, chaser={chaser}, tags={tags}")
        assert {p["name"] for p in players.values()} == {"Robo", "Droid"}
        assert tags[0][0] == first_chaser and tags[0][1] == chaser
        assert players[first_chaser]["tags"] >= 1
        time.sleep(1.0)  # long enough for a status line that sees the other bot
    finally:
        observer.disconnect()
        outputs = [stop(b) for b in bots]  # SIGTERM: the bots leave as on Ctrl-C
    assert all("Traceback" not in output for output in outputs), outputs
    for name, other, output in [("Robo", "Droid", outputs[0]), ("Droid", "Robo", outputs[1])]:
        lines = output.splitlines()
        assert lines[0] == f"{name}: connected to localhost:{chase_server}", output
        assert lines[1].startswith(f"{name}: joined the game as player "), output
        assert any(line.endswith(f"sees 1 other player ({other})") for line in lines), output
        assert lines[-1].startswith(f"{name}: disconnected from localhost:{chase_server} ("), output


def test_pygame_arcade_and_bot_clients_play_in_one_game(
    chase_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The three kinds of client join the same game, and each sees the others."""
    pytest.importorskip("pygame")
    pytest.importorskip("arcade")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    from examples.chase.pygame_client import ChasePygameClient

    robo = python_module("examples.chase.bot", "--port", str(chase_server), "--name", "Robo")
    arcade_env = {"ARCADE_HEADLESS": os.environ.get("ARCADE_HEADLESS", "1")}
    bob = python_module(
        "examples.chase.arcade_client",
        "--port",
        str(chase_server),
        "--name",
        "Bob",
        env=arcade_env,
    )
    game = ChasePygameClient("Ann")
    game.start(chase_server)
    try:
        robo_positions: set[tuple[float, float]] = set()
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, f"not everyone showed up: {game.pygase.snapshot}"
            assert robo.poll() is None and bob.poll() is None, "a client quit early"
            snapshot = game.frame()
            if snapshot is None or game.player_id is None:
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
    finally:
        game.stop()
        outputs = [stop(robo), stop(bob)]
    assert all("Traceback" not in output for output in outputs), outputs
