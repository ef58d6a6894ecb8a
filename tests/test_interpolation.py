"""Snapshot interpolation, driven by a fake clock so every expectation is exact."""

from __future__ import annotations

import threading

import pytest

from pygase_core.model.interpolation import (
    DEFAULT_TICK_INTERVAL,
    MAX_AUTO_DELAY,
    MIN_AUTO_DELAY,
    Snapshot,
    SnapshotInterpolator,
    plain_copy,
)


class FakeClock:
    """A clock that only moves when the test says so."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def state(x: float, y: float = 0.0, *, order_note: str = "") -> dict[str, object]:
    return {"players": {"a": {"x": x, "y": y, "name": "ann"}}, "note": order_note}


def make(
    fields: tuple[str, ...] = ("players.*.x", "players.*.y"), **kwargs: object
) -> tuple[SnapshotInterpolator, FakeClock]:
    clock = FakeClock()
    return SnapshotInterpolator(fields, clock=clock, **kwargs), clock  # type: ignore[arg-type]


def x_of(snapshot: Snapshot | None, player: str = "a") -> float:
    assert snapshot is not None
    return snapshot.players[player]["x"]  # type: ignore[no-any-return]


def test_nothing_to_draw_before_the_first_state() -> None:
    interpolator, _ = make()
    assert interpolator.sample() is None
    assert interpolator.latest() is None


def test_first_state_is_held_until_the_render_time_reaches_it() -> None:
    interpolator, clock = make(delay=0.1)
    interpolator.push(state(5.0), 1)
    clock.now += 0.05
    snapshot = interpolator.sample()
    assert x_of(snapshot) == 5.0
    assert snapshot is not None and snapshot.time_order == 1 and not snapshot.extrapolated


def test_blends_linearly_between_the_bracketing_states() -> None:
    interpolator, clock = make(delay=0.1)
    interpolator.push(state(0.0, 10.0), 1, received_at=100.0)
    interpolator.push(state(10.0, 20.0), 2, received_at=100.1)
    for offset, expected_x in [(0.1, 0.0), (0.125, 2.5), (0.15, 5.0), (0.19, 9.0), (0.2, 10.0)]:
        clock.now = 100.0 + offset
        snapshot = interpolator.sample()
        assert x_of(snapshot) == pytest.approx(expected_x)
        assert snapshot is not None
        assert snapshot.players["a"]["y"] == pytest.approx(10.0 + expected_x)


def test_fields_not_named_switch_at_the_newer_state_instead_of_blending() -> None:
    interpolator, clock = make(("players.*.x",), delay=0.1)
    interpolator.push(state(0.0, 0.0, order_note="old"), 1, received_at=100.0)
    interpolator.push(state(10.0, 10.0, order_note="new"), 2, received_at=100.1)
    clock.now = 100.15
    snapshot = interpolator.sample()
    assert snapshot is not None
    assert snapshot.players["a"]["y"] == 0.0  # not named: taken from the older state
    assert snapshot.note == "old"
    assert snapshot.time_order == 1
    clock.now = 100.2
    snapshot = interpolator.sample()
    assert snapshot is not None and snapshot.note == "new" and snapshot.time_order == 2


def test_motion_is_smooth_at_any_frame_rate_despite_jittery_arrivals() -> None:
    """An object moving at constant speed renders at constant speed though packets jitter."""
    interpolator, clock = make(delay=0.1)
    arrivals = [0.0, 0.05, 0.09, 0.16, 0.2, 0.24, 0.31, 0.35, 0.4, 0.45, 0.5]
    # The object moves 1 unit per 0.05 s of arrival time: received positions are as jittery
    # as their arrival, so a renderer keyed on receive times reproduces the jitter-free path
    # only between samples; the check is that no frame steps backwards or leaps ahead.
    previous = None
    frame = 1 / 144
    t = 0.0
    pushed = 0
    while t <= 0.5:
        while pushed < len(arrivals) and arrivals[pushed] <= t:
            interpolator.push(state(pushed * 1.0), pushed + 1, received_at=100.0 + arrivals[pushed])
            pushed += 1
        clock.now = 100.0 + t
        current = x_of(interpolator.sample())
        if previous is not None:
            assert current >= previous
            assert current - previous <= 1.0 / 0.04 * frame + 1e-9
        previous = current
        t += frame


def test_missing_updates_are_bridged_by_interpolating_across_the_gap() -> None:
    interpolator, clock = make(delay=0.1)
    interpolator.push(state(0.0), 1, received_at=100.0)
    interpolator.push(state(1.0), 2, received_at=100.05)
    # Updates 3 and 4 are lost.
    interpolator.push(state(4.0), 5, received_at=100.2)
    clock.now = 100.25  # render time 100.15, between update 2 and 5
    assert x_of(interpolator.sample()) == pytest.approx(1.0 + 3.0 * (0.1 / 0.15))


def test_late_updates_extrapolate_briefly_then_ease_back_and_hold() -> None:
    # Times are multiples of 1/64 s so that the arithmetic is exact in binary floating point.
    interpolator, clock = make(delay=0.125, max_extrapolation=0.0625)
    interpolator.push(state(0.0), 1, received_at=100.0)
    interpolator.push(state(1.0), 2, received_at=100.125)  # 8 units per second
    clock.now = 100.25  # render time is exactly the newest state
    snapshot = interpolator.sample()
    assert x_of(snapshot) == 1.0
    assert snapshot is not None and not snapshot.extrapolated
    clock.now = 100.28125  # 1/32 s past the newest state: keeps moving
    snapshot = interpolator.sample()
    assert x_of(snapshot) == pytest.approx(1.25)
    assert snapshot is not None and snapshot.extrapolated
    clock.now = 100.3125  # 1/16 s past: the limit
    assert x_of(interpolator.sample()) == pytest.approx(1.5)
    clock.now = 100.34375  # easing back
    assert x_of(interpolator.sample()) == pytest.approx(1.25)
    clock.now = 101.0  # far beyond: the newest received state, exactly
    snapshot = interpolator.sample()
    assert x_of(snapshot) == 1.0
    assert snapshot is not None and not snapshot.extrapolated


def test_a_stop_followed_by_silence_is_shown_where_it_stopped() -> None:
    """A server sends nothing while nothing changes, so silence must end at the true state."""
    interpolator, clock = make(delay=0.1)
    for order in range(1, 6):  # moving right, then the last update is the stop position
        interpolator.push(state(float(order)), order, received_at=100.0 + order * 0.05)
    positions = []
    for step in range(100):
        clock.now = 100.25 + step * 0.01
        positions.append(x_of(interpolator.sample()))
    assert positions[-1] == 5.0
    assert max(positions) < 5.0 + 0.05 * 20  # any overshoot stayed small


def test_extrapolation_can_be_switched_off() -> None:
    interpolator, clock = make(delay=0.1, max_extrapolation=0.0)
    interpolator.push(state(0.0), 1, received_at=100.0)
    interpolator.push(state(1.0), 2, received_at=100.1)
    clock.now = 100.5
    assert x_of(interpolator.sample()) == 1.0


def test_a_burst_of_updates_does_not_produce_a_wild_velocity() -> None:
    interpolator, clock = make(delay=0.1, max_extrapolation=0.1)
    interpolator.push(state(0.0), 1, received_at=100.0)
    interpolator.push(state(1.0), 2, received_at=100.1)
    interpolator.push(state(1.1), 3, received_at=100.1001)  # same burst as update 2
    clock.now = 100.25  # render time 100.15, 0.0499 s past the newest
    # Velocity is measured against update 1 (1.1 units in 0.1001 s), not against update 2.
    assert x_of(interpolator.sample()) == pytest.approx(1.1 + 1.1 / 0.1001 * 0.0499)


def test_stale_and_duplicate_updates_are_ignored() -> None:
    interpolator, clock = make(delay=0.0)
    assert interpolator.push(state(1.0), 5, received_at=100.0)
    assert not interpolator.push(state(9.0), 4, received_at=100.01)
    assert not interpolator.push(state(9.0), 5, received_at=100.02)
    clock.now = 100.03
    assert x_of(interpolator.sample()) == 1.0


def test_entities_appear_and_disappear_when_the_server_says_without_sliding() -> None:
    interpolator, clock = make(delay=0.1)
    first = {"players": {"a": {"x": 0.0, "y": 0.0}, "gone": {"x": 50.0, "y": 50.0}}}
    second = {"players": {"a": {"x": 10.0, "y": 0.0}, "new": {"x": 70.0, "y": 70.0}}}
    interpolator.push(first, 1, received_at=100.0)
    interpolator.push(second, 2, received_at=100.1)
    clock.now = 100.15
    snapshot = interpolator.sample()
    assert snapshot is not None
    assert set(snapshot.players) == {"a", "gone"}
    assert snapshot.players["gone"] == {"x": 50.0, "y": 50.0}
    assert snapshot.players["a"]["x"] == pytest.approx(5.0)
    clock.now = 100.2
    snapshot = interpolator.sample()
    assert snapshot is not None
    assert set(snapshot.players) == {"a", "new"}
    assert snapshot.players["new"] == {"x": 70.0, "y": 70.0}


def test_non_numeric_and_boolean_values_are_not_blended() -> None:
    interpolator, clock = make(("items.*",), delay=0.125)
    interpolator.push({"items": {"n": 0, "flag": False, "label": "a", "z": None}}, 1, 100.0)
    interpolator.push({"items": {"n": 8, "flag": True, "label": "b", "z": 3}}, 2, 100.125)
    clock.now = 100.1875
    snapshot = interpolator.sample()
    assert snapshot is not None
    assert snapshot.items == {"n": 4.0, "flag": False, "label": "a", "z": None}


def test_lists_and_plain_top_level_fields_can_be_named() -> None:
    interpolator, clock = make(("score", "balls.*.1"), delay=0.1)
    interpolator.push({"score": 0, "balls": [[0, 0], [5, 5]]}, 1, received_at=100.0)
    interpolator.push({"score": 4, "balls": [[0, 10]]}, 2, received_at=100.1)
    clock.now = 100.15
    snapshot = interpolator.sample()
    assert snapshot is not None
    assert snapshot.score == pytest.approx(2.0)
    assert snapshot.balls[0][1] == pytest.approx(5.0)
    assert snapshot.balls[1] == [5, 5]  # gone in the newer state: shown as it was


def test_snapshots_are_private_copies() -> None:
    interpolator, clock = make(delay=0.0)
    live = state(1.0)
    interpolator.push(live, 1, received_at=100.0)
    live["players"]["a"]["x"] = 99.0  # type: ignore[index]
    clock.now = 100.0
    snapshot = interpolator.sample()
    assert x_of(snapshot) == 1.0
    assert snapshot is not None
    copy = snapshot.to_dict()
    copy["players"]["a"]["x"] = -1.0
    assert x_of(snapshot) == 1.0
    assert x_of(interpolator.sample()) == 1.0


def test_snapshot_mapping_and_attribute_access() -> None:
    snapshot = Snapshot({"a": 1, "b": 2}, time_order=3, render_time=1.0, received_at=0.5)
    assert snapshot.a == 1 and snapshot["b"] == 2
    assert list(snapshot) == ["a", "b"] and len(snapshot) == 2
    assert "a" in snapshot and "c" not in snapshot
    assert snapshot.to_dict() == {"a": 1, "b": 2}
    with pytest.raises(AttributeError):
        _ = snapshot.missing
    assert "time_order=3" in repr(snapshot)


def test_render_time_never_goes_backwards_when_the_adaptive_delay_grows() -> None:
    interpolator, clock = make(max_extrapolation=0.0)
    for order in range(1, 5):
        interpolator.push(state(float(order)), order, received_at=100.0 + order * 0.02)
    clock.now = 100.2
    first = interpolator.sample()
    # Updates now arrive slowly, so the adaptive delay grows.
    for order in range(5, 9):
        interpolator.push(state(float(order)), order, received_at=100.2 + (order - 4) * 0.2)
    clock.now = 100.21
    second = interpolator.sample()
    assert first is not None and second is not None
    assert second.render_time >= first.render_time
    assert x_of(second) >= x_of(first)


def test_adaptive_delay_tracks_about_two_update_intervals_within_bounds() -> None:
    interpolator, _ = make()
    assert interpolator.delay == pytest.approx(2 * DEFAULT_TICK_INTERVAL)
    for order in range(50):
        interpolator.push(state(0.0), order, received_at=100.0 + order * 0.05)
    assert interpolator.update_interval == pytest.approx(0.05)
    assert interpolator.delay == pytest.approx(0.1)
    fast, _ = make()
    for order in range(50):
        fast.push(state(0.0), order, received_at=100.0 + order * 0.001)
    assert fast.delay == MIN_AUTO_DELAY
    slow, _ = make()
    for order in range(50):
        slow.push(state(0.0), order, received_at=100.0 + order * 1.0)
    assert slow.delay == MAX_AUTO_DELAY


def test_clear_forgets_everything() -> None:
    interpolator, clock = make(delay=0.0)
    interpolator.push(state(1.0), 7, received_at=100.0)
    interpolator.clear()
    assert interpolator.sample() is None
    assert interpolator.push(state(2.0), 1, received_at=100.1)  # a lower order is new again
    clock.now = 100.2
    assert x_of(interpolator.sample()) == 2.0


def test_history_is_pruned_as_render_time_advances() -> None:
    interpolator, clock = make(delay=0.05)
    for order in range(1000):
        interpolator.push(state(float(order)), order, received_at=100.0 + order * 0.01)
        clock.now = 100.0 + order * 0.01
        interpolator.sample()
    assert len(interpolator._keyframes) < 10


def test_latest_returns_the_newest_state_undelayed() -> None:
    interpolator, _ = make(delay=1.0)
    interpolator.push(state(1.0), 1, received_at=100.0)
    interpolator.push(state(2.0), 2, received_at=100.1)
    assert x_of(interpolator.latest()) == 2.0


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        SnapshotInterpolator(["players..x"])
    with pytest.raises(ValueError):
        SnapshotInterpolator([""])
    with pytest.raises(ValueError):
        SnapshotInterpolator(delay=-1.0)
    with pytest.raises(ValueError):
        SnapshotInterpolator(max_extrapolation=-1.0)
    assert SnapshotInterpolator(["a.*.b"]).fields == ["a.*.b"]


def test_push_and_sample_from_different_threads() -> None:
    # Without extrapolation, what is drawn can only move forward as states arrive.
    interpolator = SnapshotInterpolator(["players.*.x"], delay=0.0, max_extrapolation=0.0)
    done = threading.Event()

    def network() -> None:
        for order in range(2000):
            interpolator.push(state(float(order)), order)
        done.set()

    thread = threading.Thread(target=network)
    thread.start()
    previous = -1.0
    while not done.is_set():
        snapshot = interpolator.sample()
        if snapshot is not None:
            assert snapshot.players["a"]["x"] >= previous
            previous = snapshot.players["a"]["x"]
    thread.join()


def test_plain_copy_copies_containers_only() -> None:
    original = {"a": [1, {"b": (2, [3])}], "s": "text"}
    copied = plain_copy(original)
    assert copied == original
    assert copied["a"] is not original["a"]
    assert copied["a"][1]["b"][1] is not original["a"][1]["b"][1]  # type: ignore[index]
