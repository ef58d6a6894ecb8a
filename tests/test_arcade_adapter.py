"""The arcade adapter: a real arcade window and event loop against a real server.

The window runs with arcade's headless mode (an offscreen OpenGL context through EGL, software
rendered by Mesa), unless ``ARCADE_HEADLESS`` is set to an empty value, in which case it opens a
normal window on ``$DISPLAY`` (for example an Xvfb screen). Each test scripts a short game in the
window's own callbacks and checks, after ``arcade.run()`` returns, what reached the window and
on which thread, and what the drawn frame looks like.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("ARCADE_HEADLESS", "1")
arcade = pytest.importorskip("arcade")

from pygase_arcade import ArcadeSession, PygaseView, PygaseWindow  # noqa: E402
from pygase_core import Backend, ClientStatus, GameState, get_plugin_manager, hookimpl  # noqa: E402
from pygase_core.model.interpolation import Snapshot  # noqa: E402

WAIT = 20.0
WIDTH, HEIGHT = 160, 120
BACKGROUND = (0, 0, 0, 255)
DOT = (255, 0, 0, 255)
DOT_RADIUS = 6


@pytest.fixture
def backend() -> Iterator[Backend]:
    """A backend with one player ``p1``; ``PLACE(x, y)`` moves it and answers ``PLACED``."""
    holder: dict[str, Backend] = {}

    def on_place(x: float, y: float, **_: Any) -> dict[str, Any]:
        holder["backend"].server.dispatch_event("PLACED", x, y, retries=5)
        return {"players": {"p1": {"x": x, "y": y}}}

    server = Backend(
        initial_game_state=GameState(players={"p1": {"x": 40.0, "y": 30.0}}, ticks=0),
        time_step_function=lambda game_state, dt: {"ticks": game_state.ticks + 1},
        event_handlers={"PLACE": on_place},
    )
    holder["backend"] = server
    server.run_in_thread("localhost", 0)
    yield server
    server.shutdown()


def at(snapshot: Snapshot | None, x: float, y: float) -> bool:
    if snapshot is None:
        return False
    player = snapshot.players["p1"]
    return (player["x"], player["y"]) == (x, y)


class ScriptedWindow(PygaseWindow):
    """Connects, moves the player with ``PLACE``, then captures one drawn frame and exits.

    The state's y axis points down, as in the chase example; drawing flips it.
    """

    def __init__(self, port: int) -> None:
        grabber = FrameGrabber()
        manager = get_plugin_manager()
        manager.register(grabber)
        super().__init__(
            WIDTH,
            HEIGHT,
            "pygase arcade test",
            interpolate=("players.*.x", "players.*.y"),
            show_stats=True,
            plugin_manager=manager,
            update_rate=1 / 120,
            draw_rate=1 / 120,
        )
        self.background_color = BACKGROUND
        self.thread = threading.get_ident()
        self.statuses: list[tuple[ClientStatus, str | None, int]] = []
        self.window_events: list[tuple[str, tuple[Any, ...], int]] = []
        self.handled: list[tuple[float, float, int]] = []
        self.updates_seen: list[Snapshot | None] = []
        self.image: Any = None
        self.phase = "connecting"
        self.failure: str | None = None
        self.deadline = time.monotonic() + WAIT
        self.pygase.register_event_handler(
            "PLACED", lambda x, y: self.handled.append((x, y, threading.get_ident()))
        )
        grabber.window = self
        self.pygase.connect(port)

    def on_pygase_status(self, status: ClientStatus, reason: str | None) -> None:
        self.statuses.append((status, reason, threading.get_ident()))

    def on_pygase_event(
        self, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.window_events.append((event_type, args, threading.get_ident()))

    def on_update(self, delta_time: float) -> None:
        snapshot = self.pygase.snapshot  # already pumped for this frame
        self.updates_seen.append(snapshot)
        if time.monotonic() > self.deadline:
            self.failure = f"stuck while {self.phase}"
            self.close()
        elif self.phase == "connecting" and self.statuses and at(snapshot, 40.0, 30.0):
            self.pygase.dispatch_event("PLACE", 100.0, 70.0, retries=5)
            self.phase = "placing"
        elif self.phase == "placing" and self.handled and at(snapshot, 100.0, 70.0):
            self.phase = "drawing"
        elif self.phase == "done":
            self.close()  # ends arcade.run(), in the normal and the headless loop alike

    def on_draw(self) -> None:
        self.clear()
        snapshot = self.pygase.snapshot
        if snapshot is not None:
            for player in snapshot.players.values():
                arcade.draw_circle_filled(player["x"], HEIGHT - player["y"], DOT_RADIUS, DOT)


class FrameGrabber:
    """A plugin that captures the frame the window has just finished, stats overlay included.

    ``pygase_frame_ended`` fires after the overlay is drawn and before the buffers are swapped,
    which is the one moment the complete frame can be read back.
    """

    def __init__(self) -> None:
        self.window: ScriptedWindow | None = None

    @hookimpl
    def pygase_frame_ended(self, client: Any, frame_time: float) -> None:
        window = self.window
        if window is not None and window.phase == "drawing":
            window.image = arcade.get_image(0, 0, WIDTH, HEIGHT)
            window.phase = "done"


def test_state_events_and_status_reach_the_window_thread_and_the_screen(
    backend: Backend,
) -> None:
    window = ScriptedWindow(backend.server.port)  # type: ignore[arg-type]
    try:
        arcade.run()
        assert window.failure is None, window.failure
        me = threading.get_ident()
        assert window.thread == me
        assert window.statuses[0] == (ClientStatus.CONNECTED, None, me)
        assert window.handled == [(100.0, 70.0, me)]
        assert ("PLACED", (100.0, 70.0), me) in window.window_events
        assert window.updates_seen[0] is None or isinstance(window.updates_seen[0], Snapshot)

        image = window.image.convert("RGBA")
        assert image.size == (WIDTH, HEIGHT)
        # Image rows go top-down like the state's y axis.
        assert image.getpixel((100, 70)) == DOT
        assert image.getpixel((100 + DOT_RADIUS + 2, 70)) == BACKGROUND
        assert image.getpixel((40, 30)) == BACKGROUND
        # The stats overlay was drawn at the bottom left, over the background.
        overlay = [
            image.getpixel((x, y)) for x in range(4, 120) for y in range(HEIGHT - 20, HEIGHT - 4)
        ]
        assert any(pixel != BACKGROUND for pixel in overlay)
    finally:
        window.close()
    assert window.pygase.status is ClientStatus.DISCONNECTED


class RecordingView(PygaseView):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, tuple[Any, ...]]] = []

    def on_pygase_event(
        self, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.events.append((event_type, args))

    def on_update(self, delta_time: float) -> None:
        window = self.window
        assert isinstance(window, ViewHost)
        if time.monotonic() > window.deadline or self.events:
            window.close()
        elif window.sent is False and self.pygase.snapshot is not None:
            self.pygase.dispatch_event("PLACE", 10.0, 10.0, retries=5)
            window.sent = True


class ViewHost(PygaseWindow):
    def __init__(self, port: int) -> None:
        super().__init__(WIDTH, HEIGHT, "pygase view test")
        self.deadline = time.monotonic() + WAIT
        self.sent = False
        self.window_events: list[str] = []
        self.pygase.connect(port)

    def on_pygase_event(
        self, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.window_events.append(event_type)


def test_views_share_the_session_and_receive_events_before_the_window(backend: Backend) -> None:
    window = ViewHost(backend.server.port)  # type: ignore[arg-type]
    view = RecordingView()
    try:
        window.show_view(view)
        assert view.pygase is window.pygase
        assert isinstance(window.pygase, ArcadeSession)
        arcade.run()
        assert view.events == [("PLACED", (10.0, 10.0))]
        assert window.window_events == ["PLACED"]  # the view did not swallow it
    finally:
        window.close()


def test_a_view_on_a_plain_window_has_no_session() -> None:
    plain = arcade.Window(WIDTH, HEIGHT, "plain")
    try:
        view = PygaseView(plain)
        with pytest.raises(TypeError, match="PygaseWindow"):
            _ = view.pygase
    finally:
        plain.close()


def slide(player: dict[str, Any], direction: Any, dt: float) -> dict[str, Any]:
    return {**player, "x": player["x"] + direction * 200.0 * dt}


class PredictingWindow(PygaseWindow):
    """Joins a room 60 ms away, then presses "right" once and records the frames around it."""

    def __init__(self, port: int) -> None:
        super().__init__(WIDTH, HEIGHT, "pygase prediction test", update_rate=1 / 120,
                         draw_rate=1 / 120)
        self.deadline = time.monotonic() + WAIT
        self.pygase.predict("players.{me}", slide)
        self.pygase.connect(port, room="slide")
        self.me = str(self.pygase.client.id)
        self.before: float | None = None
        self.drawn: list[float] = []

    def own_x(self) -> float | None:
        snapshot = self.pygase.snapshot
        player = snapshot.players.get(self.me) if snapshot is not None else None
        return None if player is None else float(player["x"])

    def on_update(self, delta_time: float) -> None:
        if time.monotonic() > self.deadline or len(self.drawn) >= 2:
            self.close()
            return
        x = self.own_x()
        if x is None:
            return
        if self.before is None:
            self.before = x  # where it stood before any input
        self.pygase.send_input(1)

    def on_draw(self) -> None:
        self.clear()
        x = self.own_x()
        if x is not None and self.before is not None:
            self.drawn.append(x)


def test_the_arcade_snapshot_shows_the_predicted_own_player_in_the_frame_of_the_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pygase_core import Room, Server

    class Slide(Room):
        def on_create(self, options: dict[str, Any]) -> GameState:
            self.predict("players.{me}", slide)
            return GameState(players={})

        def on_join(self, client: Any, options: dict[str, Any], game_state: GameState) -> Any:
            return {"players": {client.id: {"x": 10.0}}}

    server = Server()
    server.define("slide", Slide)
    thread = server.run_in_thread(0)
    monkeypatch.setenv("PYGASE_LINK", "latency=60ms,seed=3")
    window = PredictingWindow(server.port)  # type: ignore[arg-type]
    try:
        arcade.run()
        assert window.before is not None and len(window.drawn) >= 2, "no frames drawn"
        # The first frame drawn after the first input already shows the player moved, 120 ms
        # before the server could have confirmed it.
        assert window.drawn[0] == window.before + 200.0 * 0.02
    finally:
        window.close()
        server.shutdown()
        thread.join(5)
