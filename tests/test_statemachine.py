"""Tests for the game loop: rate, sleeping, event handling, error isolation, stop and resume."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pygase_core.errors import UsageError
from pygase_core.model.events import Event
from pygase_core.model.gamestate import GameState, GameStatus
from pygase_core.model.statemachine import GameStateMachine
from pygase_core.model.store import GameStateStore

TIMEOUT = 10.0


class Watcher:
    """Wait for a condition on the store's state, woken by each push instead of polling."""

    def __init__(self, store: GameStateStore) -> None:
        self.store = store
        self._condition = threading.Condition()
        store.add_listener(self._pushed)

    def _pushed(self, time_order: int) -> None:
        with self._condition:
            self._condition.notify_all()

    def wait_for(
        self, predicate: Callable[[GameState], bool], timeout: float = TIMEOUT
    ) -> GameState:
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                state = self.store.snapshot()
                if predicate(state):
                    return state
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"condition not met within {timeout} s; state: {state}")
                self._condition.wait(remaining)


def make_machine(**attributes: Any) -> tuple[GameStateMachine, GameStateStore, Watcher]:
    store = GameStateStore(GameState(**attributes))
    machine = GameStateMachine(store)
    return machine, store, Watcher(store)


@pytest.fixture
def cleanup() -> Iterator[list[GameStateMachine]]:
    """Machines registered here are stopped after the test, whatever happens."""
    machines: list[GameStateMachine] = []
    yield machines
    for machine in machines:
        machine.stop(timeout=TIMEOUT)


# -- construction and arguments ------------------------------------------------------------------


def test_requires_a_store() -> None:
    with pytest.raises(TypeError):
        GameStateMachine(GameState())  # type: ignore[arg-type]


def test_time_step_must_be_provided() -> None:
    machine = GameStateMachine(GameStateStore())
    with pytest.raises(NotImplementedError):
        machine.time_step(GameState(), 0.1)
    with pytest.raises(NotImplementedError):
        machine.run_game_loop_in_thread()
    assert machine.stop() is True  # nothing is running


@pytest.mark.parametrize("interval", [0, -0.02, math.nan, math.inf, "0.02", True])
def test_interval_must_be_positive(interval: Any) -> None:
    machine = GameStateMachine(GameStateStore())
    machine.time_step = lambda game_state, dt: None  # type: ignore[method-assign]
    with pytest.raises(ValueError):
        machine.run_game_loop_in_thread(interval)
    with pytest.raises(ValueError):
        machine.run_game_loop(interval)


def test_push_event_checks_type_and_bounds_queue(caplog: pytest.LogCaptureFixture) -> None:
    machine = GameStateMachine(GameStateStore())
    with pytest.raises(TypeError):
        machine._push_event(("MOVE", ()))  # type: ignore[arg-type]
    machine.max_queued_events = 2
    with caplog.at_level(logging.WARNING, logger="pygase"):
        for n in range(3):
            machine._push_event(Event("MOVE", (n,)))
    assert [e.args for e in machine._events] == [(0,), (1,)]
    assert "event queue full" in caplog.text


# -- the seed example ------------------------------------------------------------------------------


def test_seed_example(cleanup: list[GameStateMachine]) -> None:
    machine, store, watcher = make_machine(foo=0.0, bar=0.5)
    machine.time_step = lambda game_state, dt: {  # type: ignore[method-assign]
        "foo": game_state.foo + game_state.bar * dt
    }
    machine.register_event_handler("RESET_FOO", lambda game_state, dt: {"foo": 0.0})
    machine.register_event_handler("SET_BAR", lambda new_bar, game_state, dt: {"bar": new_bar})
    cleanup.append(machine)

    thread = machine.run_game_loop_in_thread(0.01)
    assert thread.daemon
    watcher.wait_for(lambda s: s.game_status == GameStatus.Active and s.foo > 0.02)

    machine._push_event(Event("SET_BAR", (100.0,), {}, ("127.0.0.1", 5000)))
    watcher.wait_for(lambda s: s.bar == 100.0 and s.foo > 5.0)
    machine._push_event(Event("RESET_FOO", (), {}))
    # Right after the reset, foo is one step's worth of growth again.
    watcher.wait_for(lambda s: s.foo < 5.0)

    assert machine.stop() is True
    thread.join(TIMEOUT)
    state = store.get_game_state()
    assert state.is_paused()
    assert state.bar == 100.0
    assert 0.0 < state.foo < 100.0 * machine.game_time


# -- timing ----------------------------------------------------------------------------------------


def test_tick_rate_is_close_to_requested_and_loop_sleeps(cleanup: list[GameStateMachine]) -> None:
    machine, _store, watcher = make_machine(steps=0)
    machine.time_step = lambda game_state, dt: {"steps": game_state.steps + 1}  # type: ignore[method-assign]
    cleanup.append(machine)

    cpu_before = time.process_time()
    wall_before = time.monotonic()
    machine.run_game_loop_in_thread(0.02)
    watcher.wait_for(lambda s: s.steps >= 50)
    wall = time.monotonic() - wall_before
    cpu = time.process_time() - cpu_before
    assert machine.stop() is True

    rate = 50 / wall
    assert 35 <= rate <= 65, f"{rate:.1f} steps per second"
    # A busy-waiting loop would burn about as much CPU time as wall time.
    assert cpu < 0.5 * wall, f"{cpu:.2f} s CPU in {wall:.2f} s"
    assert machine.game_time == pytest.approx(wall, abs=0.25)


def test_resynchronises_instead_of_bursting_after_a_slow_step(
    cleanup: list[GameStateMachine],
) -> None:
    interval = 0.01
    store = GameStateStore(GameState(steps=0))
    watcher = Watcher(store)
    skipped = [0.0]  # the machine's clock runs this far ahead of the real one
    machine = GameStateMachine(store, clock=lambda: time.monotonic() + skipped[0])
    dts: list[float] = []

    def time_step(game_state: GameState, dt: float) -> dict[str, Any]:
        dts.append(dt)
        if game_state.steps == 5:
            skipped[0] += 20 * interval  # as if this step overran by many intervals
        return {"steps": game_state.steps + 1}

    machine.time_step = time_step  # type: ignore[method-assign]
    cleanup.append(machine)
    machine.run_game_loop_in_thread(interval)
    watcher.wait_for(lambda s: s.steps >= 20)
    machine.stop()
    after_slow_step = dts[6:20]
    rushed = [dt for dt in after_slow_step if dt < interval / 3]
    assert len(rushed) <= 2, f"burst of catch-up steps: {after_slow_step}"


# -- events ----------------------------------------------------------------------------------------


def test_events_are_applied_in_order_inside_steps(cleanup: list[GameStateMachine]) -> None:
    machine, _store, watcher = make_machine(log=[], steps=0)
    loop_threads: set[threading.Thread] = set()

    def time_step(game_state: GameState, dt: float) -> dict[str, Any]:
        loop_threads.add(threading.current_thread())
        return {"steps": game_state.steps + 1}

    def append(value: int, game_state: GameState, client_address: Any) -> dict[str, Any]:
        loop_threads.add(threading.current_thread())
        # Each handler sees what the previous one pushed.
        return {"log": [*game_state.log, (value, client_address)]}

    machine.time_step = time_step  # type: ignore[method-assign]
    machine.register_event_handler("APPEND", append)
    cleanup.append(machine)

    for n in range(5):
        machine._push_event(Event("APPEND", (n,), {}, ("10.0.0.1", n)))
    machine.run_game_loop_in_thread(0.005)
    state = watcher.wait_for(lambda s: len(s.log) == 5 and s.steps >= 2)
    assert state.log == [(n, ("10.0.0.1", n)) for n in range(5)]
    machine.stop()
    assert len(loop_threads) == 1
    assert threading.current_thread() not in loop_threads


def test_handler_errors_are_isolated(
    cleanup: list[GameStateMachine], caplog: pytest.LogCaptureFixture
) -> None:
    machine, store, watcher = make_machine(done=False, steps=0)
    machine.time_step = lambda game_state, dt: {"steps": game_state.steps + 1}  # type: ignore[method-assign]

    def broken(game_state: GameState) -> dict[str, Any]:
        raise RuntimeError("handler exploded")

    machine.register_event_handler("BROKEN", broken)
    machine.register_event_handler("NOT_A_DICT", lambda: 42)
    machine.register_event_handler("UNSENDABLE", lambda: {"bad": {1, 2}})
    machine.register_event_handler("DONE", lambda: {"done": True})
    cleanup.append(machine)

    with caplog.at_level(logging.WARNING, logger="pygase"):
        for event_type in ("BROKEN", "NOT_A_DICT", "UNKNOWN", "UNSENDABLE", "DONE"):
            machine._push_event(Event(event_type))
        machine.run_game_loop_in_thread(0.005)
        watcher.wait_for(lambda s: s.done and s.steps >= 3)
        machine.stop()

    assert "handler exploded" in caplog.text
    assert "expected a dict of changes" in caplog.text
    assert "cannot send a set" in caplog.text
    assert "'UNKNOWN'" in caplog.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3
    assert all(r.exc_info for r in errors)
    assert not hasattr(store.get_game_state(), "bad")


def test_time_step_errors_are_isolated(
    cleanup: list[GameStateMachine], caplog: pytest.LogCaptureFixture
) -> None:
    machine, _store, watcher = make_machine(steps=0)
    calls = 0

    def time_step(game_state: GameState, dt: float) -> Any:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise ValueError("odd step")
        return {"steps": game_state.steps + 1}

    machine.time_step = time_step  # type: ignore[method-assign]
    cleanup.append(machine)
    with caplog.at_level(logging.ERROR, logger="pygase"):
        machine.run_game_loop_in_thread(0.005)
        watcher.wait_for(lambda s: s.steps >= 3)
        machine.stop()
    assert "odd step" in caplog.text


def test_empty_results_push_nothing(cleanup: list[GameStateMachine]) -> None:
    machine, store, _watcher = make_machine()
    steps = threading.Semaphore(0)
    calls = 0

    def time_step(game_state: GameState, dt: float) -> Any:
        nonlocal calls
        calls += 1
        steps.release()
        return {} if calls % 2 else None

    machine.time_step = time_step  # type: ignore[method-assign]
    cleanup.append(machine)
    machine.run_game_loop_in_thread(0.005)
    for _ in range(5):
        assert steps.acquire(timeout=TIMEOUT)
    assert machine.stop() is True
    # Only the status changes at start and stop were pushed.
    assert store.time_order == 2
    assert store.get_game_state().is_paused()


# -- stop and resume -------------------------------------------------------------------------------


def test_stop_and_resume(cleanup: list[GameStateMachine]) -> None:
    machine, store, watcher = make_machine(steps=0)
    machine.time_step = lambda game_state, dt: {"steps": game_state.steps + 1}  # type: ignore[method-assign]
    cleanup.append(machine)

    first = machine.run_game_loop_in_thread(0.005)
    watcher.wait_for(lambda s: s.steps >= 3 and not s.is_paused())
    with pytest.raises(RuntimeError, match="already running"):
        machine.run_game_loop_in_thread(0.005)
    assert machine.stop() is True
    first.join(TIMEOUT)
    assert not first.is_alive()
    paused = store.snapshot()
    assert paused.is_paused()
    game_time = machine.game_time
    assert game_time > 0
    assert machine.stop() is True  # already stopped

    second = machine.run_game_loop_in_thread(0.005)
    watcher.wait_for(lambda s: s.steps >= paused.steps + 3 and not s.is_paused())
    assert machine.stop() is True
    second.join(TIMEOUT)
    assert machine.game_time > game_time
    assert store.get_game_state().is_paused()


def test_stop_right_after_start_is_not_lost() -> None:
    machine = GameStateMachine(GameStateStore())
    machine.time_step = lambda game_state, dt: None  # type: ignore[method-assign]
    thread = machine.run_game_loop_in_thread(0.005)
    assert machine.stop(timeout=TIMEOUT) is True
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_stop_wakes_a_long_sleep() -> None:
    machine = GameStateMachine(GameStateStore())
    machine.time_step = lambda game_state, dt: None  # type: ignore[method-assign]
    watcher = Watcher(machine.game_state_store)
    thread = machine.run_game_loop_in_thread(60.0)
    watcher.wait_for(lambda s: not s.is_paused())
    started = time.monotonic()
    assert machine.stop(timeout=TIMEOUT) is True
    assert time.monotonic() - started < 5.0
    thread.join(TIMEOUT)


def test_stop_from_inside_a_handler(cleanup: list[GameStateMachine]) -> None:
    machine, store, watcher = make_machine()
    machine.time_step = lambda game_state, dt: None  # type: ignore[method-assign]
    results: list[bool] = []
    machine.register_event_handler("QUIT", lambda: results.append(machine.stop(timeout=TIMEOUT)))
    cleanup.append(machine)
    thread = machine.run_game_loop_in_thread(0.005)
    watcher.wait_for(lambda s: not s.is_paused())
    started = time.monotonic()
    machine._push_event(Event("QUIT"))
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    # The loop could not wait for itself, so it did not block for the timeout.
    assert results == [False]
    assert time.monotonic() - started < TIMEOUT / 2
    assert store.get_game_state().is_paused()


def test_blocking_run_in_callers_thread() -> None:
    machine, _store, watcher = make_machine(steps=0)
    machine.time_step = lambda game_state, dt: {"steps": game_state.steps + 1}  # type: ignore[method-assign]
    runner = threading.Thread(target=machine.run_game_loop, args=(0.005,))
    runner.start()
    watcher.wait_for(lambda s: s.steps >= 3)
    assert machine.stop(timeout=TIMEOUT) is True
    runner.join(TIMEOUT)
    assert not runner.is_alive()


def test_async_loop_with_coroutine_logic() -> None:
    store = GameStateStore(GameState(steps=0, log=[]))
    machine = GameStateMachine(store)

    async def time_step(game_state: GameState, dt: float) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"steps": game_state.steps + 1}

    async def remember(value: str, game_state: GameState) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"log": [*game_state.log, value]}

    machine.time_step = time_step  # type: ignore[method-assign]
    machine.register_event_handler("REMEMBER", remember)

    async def scenario() -> bool:
        with pytest.raises(RuntimeError, match="run_game_loop_async"):
            machine.run_game_loop(0.005)
        loop_task = asyncio.create_task(machine.run_game_loop_async(0.005))
        machine._push_event(Event("REMEMBER", ("a",)))
        machine._push_event(Event("REMEMBER", ("b",)))
        changed = asyncio.Event()
        store.add_listener(lambda _: changed.set())

        async def progressed() -> None:
            while not (store.get_game_state().steps >= 3 and len(store.get_game_state().log) == 2):
                await changed.wait()
                changed.clear()

        await asyncio.wait_for(progressed(), TIMEOUT)
        stopped = await machine.stop_async(timeout=TIMEOUT)
        await asyncio.wait_for(loop_task, TIMEOUT)
        return stopped

    assert asyncio.run(scenario()) is True
    assert store.get_game_state().log == ["a", "b"]
    assert store.get_game_state().is_paused()


def test_stop_async_from_another_loop(cleanup: list[GameStateMachine]) -> None:
    machine, _store, watcher = make_machine()
    machine.time_step = lambda game_state, dt: None  # type: ignore[method-assign]
    cleanup.append(machine)
    thread = machine.run_game_loop_in_thread(0.005)
    watcher.wait_for(lambda s: not s.is_paused())
    assert asyncio.run(machine.stop_async(timeout=TIMEOUT)) is True
    thread.join(TIMEOUT)
    assert not thread.is_alive()


# -- stepping by hand ------------------------------------------------------------------------------


def test_step_runs_queued_events_then_the_time_step_without_a_loop() -> None:
    store = GameStateStore(GameState(log=[], t=0.0))
    machine = GameStateMachine(store, clock=lambda: 0.0)
    machine.time_step = lambda game_state, dt: {"t": game_state.t + dt}  # type: ignore[method-assign]
    machine.register_event_handler("ADD", lambda n, game_state: {"log": [*game_state.log, n]})
    for n in range(3):
        machine.push_event(Event("ADD", (n,)))
    machine.step(0.5)
    machine.step(0.25)
    state = store.get_game_state()
    assert state.log == [0, 1, 2] and state.t == 0.75 and machine.game_time == 0.75
    with pytest.raises(ValueError, match="dt"):
        machine.step(float("nan"))


def test_step_refuses_to_run_inside_an_event_loop() -> None:
    machine = GameStateMachine(GameStateStore(GameState()))
    machine.time_step = lambda game_state, dt: {}  # type: ignore[method-assign]

    async def inside() -> None:
        machine.step(0.02)

    with pytest.raises(UsageError, match="event loop"):
        asyncio.run(inside())
