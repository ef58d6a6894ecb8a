"""Tests for the game state store: pushing, caching, deltas, listeners and thread safety."""

from __future__ import annotations

import logging
import threading

import pytest

from pygase_core.model.codec import Overwrite
from pygase_core.model.gamestate import TO_DELETE, GameState, GameStateUpdate, GameStatus
from pygase_core.model.store import GameStateStore


def push(store: GameStateStore, **changes: object) -> GameStateUpdate:
    """Push changes as the next update, the way a single game loop does."""
    with store.lock:
        update = GameStateUpdate.from_changes(store.time_order + 1, changes)
        store.push_update(update)
    return update


def test_default_and_given_initial_state() -> None:
    assert GameStateStore().get_game_state() == GameState()
    state = GameState(time_order=3, foo=1)
    store = GameStateStore(state)
    assert store.get_game_state() is state
    assert store.time_order == 3


def test_rejects_wrong_arguments() -> None:
    with pytest.raises(TypeError):
        GameStateStore({"foo": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        GameStateStore(update_cache_size=0)
    store = GameStateStore()
    with pytest.raises(TypeError):
        store.push_update({"foo": 1})  # type: ignore[arg-type]


def test_push_applies_and_caches() -> None:
    store = GameStateStore(GameState(foo=0))
    update = push(store, foo=1)
    assert store.get_game_state().foo == 1
    assert store.time_order == 1
    assert store.get_update_cache() == [update]
    cache = store.get_update_cache()
    cache.clear()
    assert store.get_update_cache() == [update]


def test_stale_update_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    store = GameStateStore(GameState(time_order=5, foo=0))
    calls: list[int] = []
    store.add_listener(calls.append)
    with caplog.at_level(logging.DEBUG, logger="pygase"):
        store.push_update(GameStateUpdate(5, foo=1))
    assert store.get_game_state().foo == 0
    assert store.get_update_cache() == []
    assert calls == []
    assert "ignored update 5" in caplog.text


def test_cache_is_bounded() -> None:
    store = GameStateStore(update_cache_size=3)
    for i in range(10):
        push(store, n=i)
    assert [u.time_order for u in store.get_update_cache()] == [8, 9, 10]


def test_snapshot_is_independent() -> None:
    store = GameStateStore(GameState(players={"bob": {"x": 1}}))
    snapshot = store.snapshot()
    snapshot.players["bob"]["x"] = 99
    assert store.get_game_state().players == {"bob": {"x": 1}}
    assert snapshot.time_order == store.time_order


# -- changes_since ---------------------------------------------------------------------------------


def test_changes_since_current_is_empty() -> None:
    store = GameStateStore(GameState(time_order=4))
    delta = store.changes_since(4)
    assert delta == GameStateUpdate(4)
    push(store, a=1)
    assert store.changes_since(5) == GameStateUpdate(5)


def test_changes_since_combines_exactly() -> None:
    store = GameStateStore(GameState(k={"old": 1}, other=1))
    snapshots = [store.snapshot()]
    push(store, k=TO_DELETE)
    snapshots.append(store.snapshot())
    push(store, k={"a": 1}, other=TO_DELETE)
    snapshots.append(store.snapshot())
    push(store, k={"b": 2}, game_status=GameStatus.Active)
    snapshots.append(store.snapshot())
    current = store.snapshot()
    for base in snapshots:
        delta = store.changes_since(base.time_order)
        assert delta is not None
        assert delta.time_order == current.time_order
        assert base + delta == current
    # The key deleted and then set again arrives as a wholesale replacement.
    assert store.changes_since(0) == GameStateUpdate(
        3, k=Overwrite({"a": 1, "b": 2}), other=TO_DELETE, game_status=GameStatus.Active
    )


def test_changes_since_evicted_or_future_base_is_none() -> None:
    store = GameStateStore(GameState(time_order=10), update_cache_size=3)
    assert store.changes_since(9) is None  # older than anything the store knows
    assert store.changes_since(11) is None  # from the future
    for i in range(3):
        push(store, n=i)
    assert store.changes_since(10) is not None  # nothing evicted yet
    push(store, n=3)  # evicts update 11
    assert store.changes_since(10) is None
    delta = store.changes_since(11)
    assert delta is not None
    assert [u.time_order for u in store.get_update_cache()] == [12, 13, 14]


def test_changes_since_is_cached_and_follows_pushes() -> None:
    store = GameStateStore()
    push(store, a=1)
    push(store, b=2)
    first = store.changes_since(0)
    assert store.changes_since(0) is first
    assert first == GameStateUpdate(2, a=1, b=2)
    push(store, c=3)
    assert store.changes_since(0) == GameStateUpdate(3, a=1, b=2, c=3)
    push(store, d=4)  # nobody asked for base 0 since the last push: it is forgotten, and rebuilt
    assert store.changes_since(0) == GameStateUpdate(4, a=1, b=2, c=3, d=4)


# -- listeners -------------------------------------------------------------------------------------


def test_listeners_get_new_time_order_outside_the_lock() -> None:
    store = GameStateStore()
    seen: list[tuple[int, bool, bool]] = []

    def listener(time_order: int) -> None:
        # Another thread can take the lock: the pushing thread does not hold it.
        acquired: list[bool] = []

        def probe_lock() -> None:
            got = store.lock.acquire(timeout=5)
            acquired.append(got)
            if got:
                store.lock.release()

        probe = threading.Thread(target=probe_lock)
        probe.start()
        probe.join()
        seen.append((time_order, acquired[0], threading.current_thread() is pusher))

    store.add_listener(listener)
    pusher = threading.current_thread()
    store.push_update(GameStateUpdate(1, a=1))
    assert seen == [(1, True, True)]


def test_failing_listener_is_logged_and_isolated(caplog: pytest.LogCaptureFixture) -> None:
    store = GameStateStore()
    calls: list[int] = []

    def broken(time_order: int) -> None:
        raise RuntimeError("listener broke")

    store.add_listener(broken)
    store.add_listener(calls.append)
    with caplog.at_level(logging.ERROR, logger="pygase"):
        store.push_update(GameStateUpdate(1, a=1))
    assert calls == [1]
    assert store.time_order == 1
    assert "listener broke" in caplog.text


def test_remove_listener() -> None:
    store = GameStateStore()
    calls: list[int] = []
    store.add_listener(calls.append)
    push(store, a=1)
    store.remove_listener(calls.append)
    push(store, a=2)
    assert calls == [1]
    with pytest.raises(ValueError):
        store.remove_listener(calls.append)
    with pytest.raises(TypeError):
        store.add_listener(42)  # type: ignore[arg-type]


# -- threads ---------------------------------------------------------------------------------------


def test_concurrent_pushes_and_reads_stay_consistent() -> None:
    store = GameStateStore(GameState(counters={}), update_cache_size=50)
    writers, pushes_each = 4, 150
    stop_reading = threading.Event()
    errors: list[str] = []

    def write(name: str) -> None:
        for i in range(pushes_each):
            push(store, counters={name: i + 1}, last=name)

    def read() -> None:
        while not stop_reading.is_set():
            base = store.snapshot()
            with store.lock:  # a cached delta is only valid until the next push
                delta = store.changes_since(base.time_order)
                now = store.snapshot()
                wrong = delta is not None and base + delta != now
            if wrong:
                errors.append(f"delta from {base.time_order} to {now.time_order} is wrong")

    readers = [threading.Thread(target=read) for _ in range(2)]
    threads = [threading.Thread(target=write, args=(f"w{n}",)) for n in range(writers)]
    for thread in readers + threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    stop_reading.set()
    for thread in readers:
        thread.join(timeout=30)

    assert not errors
    state = store.get_game_state()
    assert state.time_order == writers * pushes_each
    assert state.counters == {f"w{n}": pushes_each for n in range(writers)}
    assert len(store.get_update_cache()) == 50


def test_cached_deltas_stay_exact_across_pushes_and_requests() -> None:
    """Deltas kept up to date push by push equal the deltas combined from scratch."""
    import random

    from pygase_core.model.gamestate import TO_DELETE

    rng = random.Random(5)
    store = GameStateStore(GameState(entities={}), update_cache_size=50)
    history = [store.snapshot()]
    for step in range(1, 200):
        changes = {
            rng.randrange(8): (TO_DELETE if rng.random() < 0.2 else {"x": rng.random()})
            for _ in range(rng.randrange(1, 4))
        }
        store.push_update(GameStateUpdate(step, entities=changes))
        history.append(store.snapshot())
        lagging = [max(0, step - 2), max(0, step - 5)]  # like clients, asked for again and again
        for base in [*lagging, *(rng.randint(max(0, step - 40), step) for _ in range(3))]:
            delta = store.changes_since(base)
            if delta is None:
                assert step - base > 0  # only ever "send the full state" for an older base
                continue
            rebuilt = history[base].copy()
            rebuilt.apply(delta)
            assert rebuilt.entities == history[step].entities, (step, base)
