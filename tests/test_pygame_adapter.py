"""The pygame adapter in a real pygame loop (dummy video driver) against a real server.

Each test runs the game loop on the test's own thread, exactly as a game would, and checks that
what the network delivers (state snapshots, server events, status changes) shows up on that
thread, and that a drawn frame has the player where the state says.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ["SDL_AUDIODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
pygame = pytest.importorskip("pygame")

from pygase_core import Backend, ClientStatus, GameState  # noqa: E402
from pygase_core.model.interpolation import Snapshot  # noqa: E402
from pygase_pygame import (  # noqa: E402
    PYGASE_EVENT,
    PYGASE_STATUS,
    PygameSession,
    PygaseClientMixin,
)

WAIT = 20.0
SIZE = (160, 120)
BACKGROUND = (0, 0, 0, 255)
DOT = (255, 0, 0, 255)
DOT_RADIUS = 6


def placing_backend(speed: float = 0.0) -> Backend:
    """A backend with one player ``p1``; ``PLACE(x, y)`` moves it, ``speed`` drifts it right."""
    holder: dict[str, Backend] = {}

    def time_step(game_state: Any, dt: float) -> dict[str, Any]:
        if not speed:
            return {"ticks": game_state.ticks + 1}
        player = game_state.players["p1"]
        return {"players": {"p1": {"x": player["x"] + speed * dt, "y": player["y"]}}}

    def on_place(x: float, y: float, **_: Any) -> dict[str, Any]:
        holder["backend"].server.dispatch_event("PLACED", x, y, retries=5)
        return {"players": {"p1": {"x": x, "y": y}}}

    backend = Backend(
        initial_game_state=GameState(players={"p1": {"x": 40.0, "y": 30.0}}, ticks=0),
        time_step_function=time_step,
        event_handlers={"PLACE": on_place},
    )
    holder["backend"] = backend
    return backend


@pytest.fixture
def backend() -> Iterator[Backend]:
    server = placing_backend()
    server.run_in_thread("localhost", 0)
    yield server
    server.shutdown()


@pytest.fixture
def pygame_display() -> Iterator[pygame.Surface]:
    pygame.init()
    yield pygame.display.set_mode(SIZE)
    pygame.quit()


class DotGame(PygaseClientMixin):
    """A minimal game: draws every player as a red dot, remembers what reached it and where."""

    pygase_interpolate = ("players.*.x", "players.*.y")

    def __init__(self, screen: pygame.Surface) -> None:
        self.screen = screen
        self.clock = pygame.time.Clock()
        self.thread = threading.get_ident()
        self.placed: list[tuple[float, float, int]] = []
        self.pygame_events: list[pygame.event.Event] = []
        self.pygase.register_event_handler("PLACED", self._on_placed)

    def _on_placed(self, x: float, y: float) -> None:
        self.placed.append((x, y, threading.get_ident()))

    def frame(self) -> Snapshot | None:
        """One turn of a typical pygame loop."""
        snapshot = self.pygase.tick(self.clock, 120)
        for event in pygame.event.get():
            if event.type in (PYGASE_EVENT, PYGASE_STATUS):
                self.pygame_events.append(event)
        self.screen.fill(BACKGROUND)
        if snapshot is not None:
            for player in snapshot.players.values():
                center = (round(player["x"]), round(player["y"]))
                pygame.draw.circle(self.screen, DOT, center, DOT_RADIUS)
        self.pygase.draw_stats(self.screen, (2, SIZE[1] - 16), font_size=14)
        pygame.display.flip()
        return snapshot

    def run_until(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail("the game loop did not see the expected state in time")
            self.frame()

    def events_of(self, event_type: int) -> list[pygame.event.Event]:
        return [event for event in self.pygame_events if event.type == event_type]


def at(snapshot: Snapshot | None, x: float, y: float) -> bool:
    return snapshot is not None and (snapshot.players["p1"]["x"], snapshot.players["p1"]["y"]) == (
        x,
        y,
    )


def test_state_events_and_status_reach_the_game_thread_and_the_screen(
    backend: Backend, pygame_display: pygame.Surface
) -> None:
    game = DotGame(pygame_display)
    game.pygase.connect(backend.server.port)  # type: ignore[arg-type]
    game.run_until(lambda: bool(game.events_of(PYGASE_STATUS)))
    assert game.events_of(PYGASE_STATUS)[0].status is ClientStatus.CONNECTED
    game.run_until(lambda: at(game.pygase.snapshot, 40.0, 30.0))

    game.pygase.dispatch_event("PLACE", 100.0, 70.0, retries=5)
    game.run_until(lambda: bool(game.placed) and at(game.pygase.snapshot, 100.0, 70.0))
    game.frame()

    # The handler ran on the game's own thread, and the event was also a pygame event.
    assert game.placed == [(100.0, 70.0, game.thread)]
    posted = game.events_of(PYGASE_EVENT)
    assert [(e.event_type, e.args, e.kwargs) for e in posted] == [("PLACED", (100.0, 70.0), {})]
    # The frame shows the dot where the state puts it, and no longer where it was.
    assert tuple(pygame_display.get_at((100, 70))) == DOT
    assert tuple(pygame_display.get_at((100 + DOT_RADIUS + 2, 70))) == BACKGROUND
    assert tuple(pygame_display.get_at((40, 30))) == BACKGROUND
    # The stats overlay was drawn at the bottom.
    bottom = [tuple(pygame_display.get_at((x, SIZE[1] - 10))) for x in range(2, 80)]
    assert any(pixel != BACKGROUND for pixel in bottom)

    game.pygase.disconnect()
    game.run_until(lambda: len(game.events_of(PYGASE_STATUS)) >= 2)
    last = game.events_of(PYGASE_STATUS)[-1]
    assert last.status is ClientStatus.DISCONNECTED and last.reason
    assert game.pygase.status is ClientStatus.DISCONNECTED


def test_moving_players_are_interpolated_smoothly_between_updates(
    pygame_display: pygame.Surface,
) -> None:
    backend = placing_backend(speed=100.0)
    backend.run_in_thread("localhost", 0)
    try:
        game = DotGame(pygame_display)
        game.pygase.connect(backend.server.port)  # type: ignore[arg-type]
        game.run_until(lambda: game.pygase.snapshot is not None)
        xs: list[float] = []
        orders: set[int] = set()
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            snapshot = game.frame()
            assert snapshot is not None
            xs.append(snapshot.players["p1"]["x"])
            orders.add(snapshot.time_order)
        game.pygase.disconnect()
    finally:
        backend.shutdown()
    steps = [b - a for a, b in itertools.pairwise(xs)]
    assert xs[-1] - xs[0] > 30  # it moved, at about 100 px/s
    assert min(steps) > -1.0  # never visibly backwards
    # Frames outnumber server updates, and still nearly every frame shows a new position:
    # positions between updates were interpolated rather than repeated.
    assert len(set(xs)) > len(orders)


def test_the_mixin_takes_its_settings_from_the_class() -> None:
    class Configured(PygaseClientMixin):
        pygase_interpolate = ("a.*.x",)
        pygase_interpolation_delay = 0.07
        pygase_post_events = False

    game = Configured()
    assert isinstance(game.pygase, PygameSession)
    assert game.pygase is game.pygase
    assert game.pygase.interpolator.fields == ["a.*.x"]
    assert game.pygase.interpolator.delay == pytest.approx(0.07)
    assert game.pygase.post_events is False
    assert Configured.PYGASE_EVENT == PYGASE_EVENT != PYGASE_STATUS


def test_events_are_posted_only_when_wanted_and_possible(pygame_display: pygame.Surface) -> None:
    session = PygameSession()
    session.on_server_event("HELLO", (1,), {"a": 2})
    session.post_events = False
    session.on_server_event("IGNORED", (), {})
    events = pygame.event.get(PYGASE_EVENT)
    assert [(e.event_type, e.args, e.kwargs) for e in events] == [("HELLO", (1,), {"a": 2})]
    pygame.display.quit()
    session.post_events = True
    session.on_status_changed(ClientStatus.CONNECTED, None)  # no display: silently not posted
