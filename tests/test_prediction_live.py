"""Inputs and prediction over real UDP: the one-world Server, and the chase pygame client."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import pytest

from pygase_core import Client, GameState, GameStateMachine, GameStateStore, Room, Server
from pygase_core.errors import NotConnectedError, PayloadTooLargeError
from pygase_core.rooms.room import RoomClient
from tests.waiting import wait_for

TIMEOUT = 15.0


def nudge(entity: dict[str, Any], value: Any, dt: float) -> dict[str, Any]:
    return {**entity, "x": entity["x"] + value * 50.0 * dt}


def test_the_one_world_applies_inputs_once_and_the_prediction_settles_on_it() -> None:
    store = GameStateStore(GameState(players={}))
    machine = GameStateMachine(store)
    machine.time_step = lambda state, dt: None  # type: ignore[method-assign, assignment]

    def on_input(client: Any, value: Any, game_state: Any, dt: float) -> dict[str, Any]:
        entity = game_state.players.get(client.id, {"x": 0.0})
        return {"players": {client.id: nudge(entity, value, dt)}}

    machine.on_input = on_input  # type: ignore[method-assign]
    server = Server(store)
    thread = server.run_in_thread(0, "localhost", machine)
    loop = machine.run_game_loop_in_thread(0.02)
    client = Client(link="latency=30ms,jitter=5ms,seed=2")
    with pytest.raises(NotConnectedError):
        client.send_input(1)
    client.predict("players.{me}", nudge)
    try:
        assert server.port is not None
        client.connect_in_thread(server.port)
        assert client.tick_interval == 0.02
        with pytest.raises(TypeError):
            client.send_input(object())
        with pytest.raises(PayloadTooLargeError):
            client.send_input("x" * 200)
        sent = 0
        deadline = time.monotonic() + TIMEOUT
        while sent < 40:
            assert time.monotonic() < deadline
            if client.send_input(1 if sent % 3 else 2) is not None:
                sent += 1
            time.sleep(0.005)
        expected = sum((1 if i % 3 else 2) * 50.0 * 0.02 for i in range(40))

        def settled() -> bool:
            with client.access_game_state() as state:
                entity = state.to_dict().get("players", {}).get(client.id)
            prediction = client.prediction
            return (
                entity is not None and prediction is not None
                and entity["x"] == pytest.approx(expected)
                and prediction.pending == 0 and prediction.current() == entity
            )

        wait_for(settled, TIMEOUT, "the prediction did not settle on the applied inputs")
        receiver = next(iter(server.connections.values())).inputs_in
        assert receiver is not None and receiver.stats.applied == 40
        assert receiver.stats.dropped == 0
        prediction = client.prediction
        assert prediction is not None and prediction.stats.inputs == 40
    finally:
        client.disconnect()
        machine.stop()
        server.shutdown()
        thread.join(5)
        loop.join(5)


def own_dot(screen: Any) -> tuple[float, float] | None:
    """Where the own player's dot is drawn: the middle of its white outline, in the arena."""
    import pygame

    from examples.chase import common, rules

    arena = screen.subsurface(
        pygame.Rect(0, common.HEADER_HEIGHT, rules.ARENA_WIDTH, rules.ARENA_HEIGHT)
    )
    mask = pygame.mask.from_threshold(arena, common.OWN_OUTLINE_COLOR, (1, 1, 1, 255))
    if mask.count() == 0:
        return None
    x, y = mask.centroid()  # of the ring, whose middle is the dot's centre
    return float(x), float(y)


def test_a_key_press_moves_the_own_player_on_the_next_rendered_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """60 ms each way, yet the frame drawn after the key press shows the player moved."""
    pygame = pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    monkeypatch.setenv("PYGASE_LINK", "latency=60ms,seed=4")
    from examples.chase import rules
    from examples.chase.pygame_client import ChasePygameClient
    from examples.chase.server import make_server

    server = make_server(seed=1)
    thread = server.run_in_thread(0, "localhost")
    game = ChasePygameClient("Ann")
    try:
        assert server.port is not None
        game.start(server.port)
        deadline = time.monotonic() + TIMEOUT
        while own_dot(game.screen) is None or game.pygase.client.prediction is None or (
            game.pygase.client.prediction.current() is None
        ):
            assert time.monotonic() < deadline, "the own player never showed up"
            game.frame()
        for _ in range(5):
            game.frame()
        before = own_dot(game.screen)
        assert before is not None
        key = pygame.K_RIGHT if before[0] < rules.ARENA_WIDTH / 2 else pygame.K_LEFT
        sign = 1 if key == pygame.K_RIGHT else -1
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))
        game.frame()
        after = own_dot(game.screen)
        assert after is not None
        assert sign * (after[0] - before[0]) >= 3 and abs(after[1] - before[1]) < 1
        stats = game.pygase.prediction.stats  # the adapter's own handle on the prediction
        assert stats is game.pygase.client.prediction.stats and stats.inputs >= 1
        pygame.event.post(pygame.event.Event(pygame.KEYUP, key=key))
        # Without prediction the same press shows only after the round trip.
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_p))
        game.frame()
        assert not game.pygase.predicting
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            game.frame()
        before = own_dot(game.screen)
        assert before is not None
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key))
        game.frame()
        after = own_dot(game.screen)
        assert after is not None and abs(after[0] - before[0]) < 1

        def moved() -> bool:
            game.frame()
            now = own_dot(game.screen)
            return now is not None and sign * (now[0] - before[0]) >= 3

        wait_for(moved, TIMEOUT, "the server never moved the player")
    finally:
        game.stop()
        server.shutdown()
        thread.join(5)


def fragile_step(entity: dict[str, Any], value: Any, dt: float) -> dict[str, Any]:
    if value == "bad":
        raise RuntimeError("this step cannot take 'bad'")
    return {**entity, "x": entity["x"] + 1}


class Range(Room):
    """Players step with fragile_step; each input also asks world_at, for itself and a stranger."""

    tick_interval = 0.02
    answers: ClassVar[list[str]] = []

    def on_create(self, options: dict[str, Any]) -> GameState:
        self.predict("players.{me}", fragile_step)
        return GameState(players={})

    def on_join(self, client: RoomClient, options: dict[str, Any], game_state: Any) -> Any:
        return {"players": {client.id: {"x": 0}}}

    def on_input(self, client: RoomClient, value: Any, game_state: Any, dt: float) -> Any:
        try:
            self.world_at(RoomClient("stranger", None))
        except ValueError:
            Range.answers.append("refused")
        if self.world_at(client) is not None:
            Range.answers.append("seen")
        return super().on_input(client, value, game_state, dt)


def test_a_failing_step_raises_at_send_input_yet_the_input_reaches_the_room() -> None:
    server = Server()
    server.define("range", Range)
    thread = server.run_in_thread(0, "localhost")
    client = Client()
    client.predict("players.{me}", fragile_step)
    try:
        assert server.port is not None
        client.connect_in_thread(server.port, room="range")
        wait_for(lambda: client.prediction is not None and client.prediction.current(),
                 TIMEOUT, "the own player never appeared")
        sent = []
        deadline = time.monotonic() + TIMEOUT
        while len(sent) < 10:
            assert time.monotonic() < deadline
            value = "bad" if len(sent) == 4 else "go"
            try:
                tick = client.send_input(value)
            except RuntimeError:
                tick = -1  # the step's error, at the call that made it
            if tick is not None:
                sent.append(tick)
            time.sleep(0.005)
        assert sent[4] == -1
        receiver = next(iter(server.connections.values())).inputs_in
        assert receiver is not None
        wait_for(lambda: receiver.stats.applied == 10, TIMEOUT, "inputs did not all arrive")
        assert receiver.stats.lost == 0  # the failing one was sent all the same
        wait_for(lambda: client.input_stats == (0, 10), TIMEOUT, "inputs were not acknowledged")
        with client.access_game_state() as state:
            assert state.players[client.id]["x"] == 9
        prediction = client.prediction
        assert prediction is not None
        wait_for(lambda: prediction.current() == {"x": 9}, TIMEOUT, "prediction did not settle")
        assert "refused" in Range.answers and "seen" in Range.answers
    finally:
        client.disconnect()
        server.shutdown()
        thread.join(5)


def test_an_input_over_the_servers_maximum_is_refused_at_send_input() -> None:
    """The server says its maximum when the client joins: no input is sent only to be dropped."""
    with pytest.raises(ValueError, match="max_input_size"):
        Server(max_input_size=300)
    with pytest.raises(TypeError, match="max_input_size"):
        Server(max_input_size="big")  # type: ignore[arg-type]
    store = GameStateStore(GameState())
    machine = GameStateMachine(store)
    machine.time_step = lambda state, dt: None  # type: ignore[method-assign, assignment]
    got: list[Any] = []
    machine.on_input = lambda client, value, state, dt: got.append(value)  # type: ignore
    server = Server(store, max_input_size=200)
    thread = server.run_in_thread(0, "localhost", machine)
    loop = machine.run_game_loop_in_thread(0.02)
    client = Client(max_input_size=255)
    try:
        assert server.port is not None
        client.connect_in_thread(server.port)
        with pytest.raises(PayloadTooLargeError, match="server"):
            client.send_input("x" * 220)  # the client's own limit would let it through
        wait_for(lambda: client.send_input("y" * 180) is not None, TIMEOUT, "no input tick")
        wait_for(lambda: got, TIMEOUT, "the input did not arrive")
        assert got == ["y" * 180]
    finally:
        client.disconnect()
        machine.stop()
        server.shutdown()
        thread.join(5)
        loop.join(5)
