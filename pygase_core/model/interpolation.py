"""Snapshot interpolation: smooth motion from uneven, lossy server updates.

A client receives state updates at the server's tick rate, give or take network jitter and lost
packets, while the game draws at its own frame rate. Drawing the newest state as-is makes moving
things stutter. Instead, :class:`SnapshotInterpolator` keeps the last few states with the local
time they arrived and renders a moment slightly in the past (the *delay*, by default about two
server ticks), where there is almost always a received state on either side. Numeric fields the
game names are blended between those two states; everything else is taken from the older one, so
the rendered frame is one consistent state as of the render time.

When updates stop arriving for longer than the delay, the named fields are extrapolated from the
last two states for a short while, so that a single late packet does not freeze motion, and then
eased back to the newest received state, which is held from then on. The easing back matters
because a pygase server only sends an update when something changed: silence may just mean that
everything stopped, and then the newest state is exactly right and must not be overshot for good.

Field paths are dotted names into the state, where ``*`` matches every key of a dict (or index of
a list) at that level. ``"players.*.x"`` names the ``x`` of every entry in ``state["players"]``,
which is how entities that come and go are handled: an entity that exists in only one of the two
bracketing states is not blended but shown as it is in the older one, so it appears and
disappears at the moment the server said it did, without sliding in from the origin.

This module is independent of any game framework and of the network code; it is driven by plain
mappings and an injectable clock, which makes it easy to test and to reuse.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_TICK_INTERVAL",
    "Snapshot",
    "SnapshotInterpolator",
    "plain_copy",
]

#: The update interval assumed until enough updates have arrived to measure it (seconds).
DEFAULT_TICK_INTERVAL = 1 / 30
#: How many (estimated) update intervals the adaptive delay renders in the past.
DELAY_IN_TICKS = 2.0
#: Bounds of the adaptive delay, so that a stalled or bursting connection cannot push the render
#: time absurdly far back, nor so close to the present that every frame extrapolates.
MIN_AUTO_DELAY = 0.02
MAX_AUTO_DELAY = 0.25
#: Weight of the newest inter-arrival gap in the running estimate of the update interval.
_INTERVAL_SMOOTHING = 0.1
#: Arrivals closer together than this are treated as one burst when estimating velocities.
_MIN_VELOCITY_GAP = 0.005


def plain_copy(value: Any) -> Any:
    """Copy a state value deep enough that later changes to the original cannot show through.

    Synchronized states consist of dicts, lists, tuples and immutable scalars, so a structural
    copy of the containers is enough and much faster than :func:`copy.deepcopy`.
    """
    if isinstance(value, Mapping):
        return {key: plain_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_copy(item) for item in value]
    if isinstance(value, tuple):
        return tuple(plain_copy(item) for item in value)
    return value


class Snapshot:
    """The game state to draw for one frame: read-only, consistent, and private to the frame.

    Top-level fields are available as attributes (``snapshot.players``) like on a ``GameState``,
    and as items (``snapshot["players"]``, ``"players" in snapshot``). Nested values are plain
    dicts and lists that belong to this snapshot alone, so the game may read them at leisure
    without any lock.

    It is deliberately not a :class:`~collections.abc.Mapping`: methods such as ``items`` or
    ``keys`` would hide state fields of the same name from attribute access.
    """

    __slots__ = ("_data", "extrapolated", "received_at", "render_time", "time_order")

    def __init__(
        self,
        data: dict[str, Any],
        *,
        time_order: int,
        render_time: float,
        received_at: float,
        extrapolated: bool = False,
    ) -> None:
        self._data = data
        #: Ordering number of the newest server state this snapshot is based on.
        self.time_order = time_order
        #: The (local, monotonic) moment this snapshot represents.
        self.render_time = render_time
        #: When the newest state this snapshot is based on arrived (local, monotonic).
        self.received_at = received_at
        #: Whether the named fields were projected beyond the newest received state.
        self.extrapolated = extrapolated

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def to_dict(self) -> dict[str, Any]:
        """Return a copy of the snapshot's data that the caller may modify."""
        return plain_copy(self._data)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Snapshot(time_order={self.time_order}, {self._data!r})"


@dataclass(frozen=True)
class _Keyframe:
    received_at: float
    time_order: int
    data: dict[str, Any]


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but blending True and False makes no sense.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _children(container: Any) -> Iterable[Any]:
    if isinstance(container, dict):
        return list(container.keys())
    if isinstance(container, list):
        return range(len(container))
    return ()


def _key_in(container: Any, key: Any) -> Any:
    """Return ``key`` as ``container`` indexes it: list indices in paths arrive as strings."""
    if isinstance(container, list) and isinstance(key, str):
        return int(key) if key.isdigit() else None
    return key


def _child(container: Any, key: Any) -> Any:
    """Return ``container[key]``, or a sentinel when there is no such entry."""
    if isinstance(container, dict):
        return container.get(key, _MISSING)
    if isinstance(container, list) and isinstance(key, int) and 0 <= key < len(container):
        return container[key]
    return _MISSING


_MISSING = object()


def _blend_path(target: Any, start: Any, end: Any, path: tuple[str, ...], alpha: float) -> None:
    """Set the numeric leaves of ``target`` named by ``path`` to ``start + (end - start) * alpha``.

    ``target`` is a private copy that provides the structure; a leaf is only changed where all
    three states have a number there, which is what makes appearing and vanishing entities safe.
    """
    head, rest = path[0], path[1:]
    keys = _children(target) if head == "*" else [head]
    for raw_key in keys:
        key = _key_in(target, raw_key)
        target_value = _child(target, key)
        start_value = _child(start, key)
        end_value = _child(end, key)
        if target_value is _MISSING or start_value is _MISSING or end_value is _MISSING:
            continue
        if rest:
            _blend_path(target_value, start_value, end_value, rest, alpha)
        elif _is_number(target_value) and _is_number(start_value) and _is_number(end_value):
            target[key] = start_value + (end_value - start_value) * alpha


def _extrapolation(late: float, limit: float) -> float:
    """How far (in seconds of motion) to extrapolate when the newest state is ``late`` seconds old.

    Rises with lateness up to ``limit``, then falls back to zero over another ``limit``: a rise
    and a fall rather than a jump, so that the picture never leaps.
    """
    if late <= limit:
        return late
    return max(0.0, 2 * limit - late)


def parse_field_path(path: str) -> tuple[str, ...]:
    """Split a dotted field path and reject ones that cannot name anything."""
    parts = tuple(path.split("."))
    if not path or any(not part for part in parts):
        raise ValueError(f"invalid field path {path!r}: use dotted names such as 'players.*.x'")
    return parts


class SnapshotInterpolator:
    """Turn a stream of received states into one smooth snapshot per frame.

    :meth:`push` is meant for the network thread and :meth:`sample` for the frame thread; both
    may run concurrently.

    Args:
        fields: dotted paths of the numeric fields to blend, e.g. ``["players.*.x",
            "players.*.y"]``. Other fields switch from one state to the next at render time.
        delay: how far in the past to render, in seconds. ``None`` (the default) measures the
            interval between arriving updates and renders about two of them in the past,
            within 0.02 to 0.25 seconds. Larger delays hide more jitter and loss, at the cost
            of latency.
        max_extrapolation: for how long past the newest state the fields keep moving at their
            last velocity when updates are late, in seconds. They then ease back to the newest
            state over the same time and are held there. 0 holds the newest state at once.
        clock: monotonic time source in seconds; tests pass a fake one.
    """

    def __init__(
        self,
        fields: Iterable[str] = (),
        *,
        delay: float | None = None,
        max_extrapolation: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if delay is not None and delay < 0:
            raise ValueError("delay must not be negative")
        if max_extrapolation < 0:
            raise ValueError("max_extrapolation must not be negative")
        self._fields = [parse_field_path(field) for field in fields]
        self._fixed_delay = delay
        self._max_extrapolation = max_extrapolation
        self._clock = clock
        self._lock = threading.Lock()
        self._keyframes: list[_Keyframe] = []
        self._interval: float | None = None
        self._last_arrival: float | None = None
        self._last_render_time = float("-inf")

    @property
    def fields(self) -> list[str]:
        """The field paths this interpolator blends."""
        return [".".join(path) for path in self._fields]

    @property
    def update_interval(self) -> float:
        """The measured (smoothed) interval between arriving updates, in seconds."""
        with self._lock:
            return self._interval if self._interval is not None else DEFAULT_TICK_INTERVAL

    @property
    def delay(self) -> float:
        """How far in the past :meth:`sample` currently renders, in seconds."""
        with self._lock:
            return self._current_delay()

    def _current_delay(self) -> float:
        if self._fixed_delay is not None:
            return self._fixed_delay
        interval = self._interval if self._interval is not None else DEFAULT_TICK_INTERVAL
        return min(MAX_AUTO_DELAY, max(MIN_AUTO_DELAY, DELAY_IN_TICKS * interval))

    def push(
        self, state: Mapping[str, Any], time_order: int, received_at: float | None = None
    ) -> bool:
        """Record a state as received now (or at ``received_at``), copying it.

        States that are not newer (by ``time_order``) than the newest recorded one are ignored,
        so duplicates and reordered deliveries cannot make motion jump back.

        Returns:
            whether the state was recorded.
        """
        now = self._clock() if received_at is None else received_at
        data = plain_copy(state)
        with self._lock:
            if self._keyframes and time_order <= self._keyframes[-1].time_order:
                return False
            if self._last_arrival is not None:
                gap = max(0.0, now - self._last_arrival)
                if self._interval is None:
                    self._interval = gap
                else:
                    self._interval += (gap - self._interval) * _INTERVAL_SMOOTHING
            self._last_arrival = now
            self._keyframes.append(_Keyframe(now, time_order, data))
            return True

    def clear(self) -> None:
        """Forget every recorded state, for example after reconnecting to a new game."""
        with self._lock:
            self._keyframes.clear()
            self._interval = None
            self._last_arrival = None
            self._last_render_time = float("-inf")

    def latest(self) -> Snapshot | None:
        """Return the newest received state, without delay or blending."""
        with self._lock:
            if not self._keyframes:
                return None
            newest = self._keyframes[-1]
            return Snapshot(
                plain_copy(newest.data),
                time_order=newest.time_order,
                render_time=newest.received_at,
                received_at=newest.received_at,
            )

    def sample(self, now: float | None = None) -> Snapshot | None:
        """Return the state to draw at local time ``now`` (default: the clock), or ``None``.

        ``None`` means no state has been received yet. Render times never go backwards between
        calls, even when the adaptive delay grows.
        """
        if now is None:
            now = self._clock()
        with self._lock:
            if not self._keyframes:
                return None
            render_time = max(now - self._current_delay(), self._last_render_time)
            self._last_render_time = render_time
            frames = self._keyframes
            # Index of the newest keyframe at or before the render time.
            floor = len(frames) - 1
            while floor > 0 and frames[floor].received_at > render_time:
                floor -= 1
            # Nothing older than the floor can ever be needed again (render time only grows),
            # except the keyframe the newest velocity is measured against.
            keep_from = min(floor, self._velocity_origin_index())
            if keep_from > 0:
                del frames[:keep_from]
                floor -= keep_from
            return self._render(floor, render_time)

    def _render(self, floor: int, render_time: float) -> Snapshot:
        frames = self._keyframes
        base = frames[floor]
        data: dict[str, Any] = plain_copy(base.data)
        newest = frames[-1]
        extrapolated = False
        if render_time < base.received_at:
            pass  # Before the first state: hold it.
        elif floor + 1 < len(frames):
            after = frames[floor + 1]
            span = after.received_at - base.received_at
            alpha = (render_time - base.received_at) / span if span > 0 else 1.0
            self._blend(data, base.data, after.data, alpha)
        elif self._max_extrapolation > 0 and render_time > newest.received_at:
            before = self._velocity_origin()
            if before is not None:
                overshoot = _extrapolation(
                    render_time - newest.received_at, self._max_extrapolation
                )
                if overshoot > 0:
                    span = newest.received_at - before.received_at
                    self._blend(data, before.data, newest.data, 1.0 + overshoot / span)
                    extrapolated = True
        return Snapshot(
            data,
            time_order=base.time_order,
            render_time=render_time,
            received_at=base.received_at,
            extrapolated=extrapolated,
        )

    def _velocity_origin_index(self) -> int:
        """Return the index of the keyframe to measure the newest velocity against.

        That is the newest one that arrived noticeably before the newest keyframe: two updates
        that arrive in one burst say nothing about speed.
        """
        frames = self._keyframes
        newest = frames[-1].received_at
        for index in range(len(frames) - 2, -1, -1):
            if newest - frames[index].received_at >= _MIN_VELOCITY_GAP:
                return index
        return len(frames) - 1

    def _velocity_origin(self) -> _Keyframe | None:
        index = self._velocity_origin_index()
        return None if index == len(self._keyframes) - 1 else self._keyframes[index]

    def _blend(
        self, target: dict[str, Any], start: dict[str, Any], end: dict[str, Any], alpha: float
    ) -> None:
        for path in self._fields:
            _blend_path(target, start, end, path, alpha)
