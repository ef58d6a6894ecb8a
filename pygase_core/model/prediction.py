"""Client-side prediction with server reconciliation, and the shared step that makes it exact.

The game declares one entity a client predicts, by a path into the state with ``{me}`` standing
for the client's id (``"players.{me}"``), and a pure *step*: ``step(entity, value, dt)`` returns
the entity after one input ``value`` lasting ``dt`` seconds (the server's tick interval). The
same step moves the entity on the server (:func:`apply_input`, which a room's or state
machine's default ``on_input`` calls) and on the client (:class:`Prediction`), so both agree
exactly as long as nothing else touched the entity.

On the client, :class:`Prediction` keeps the inputs the latest authoritative state does not
contain yet (the server says which it applied, ``INPUT_ACK``) and shows the entity as that state
has it plus those inputs replayed in order. Each new input steps the prediction at once, so the
player's own entity moves on the very next frame whatever the round trip. When a new
authoritative state arrives, the prediction rewinds to it and replays the rest. If the result
differs from what was shown (a misprediction: another player pushed us, the server dropped an
input), the difference becomes a *correction offset* that shrinks by at most
``max_correction`` per frame, so the entity glides to where it should be instead of jumping.

The replay runs where the prediction is read (the game's frame: :meth:`Prediction.sample`),
not where states arrive: :meth:`Prediction.reconcile` only keeps the new state's entity, so the
game's step never runs on the client's network loop (which never waits for a replay either),
and states arriving between two frames cost one replay. A step that raises while replaying is
logged (rate-limited) and its input left out of the prediction; one that raises at
:meth:`Prediction.add_input` raises there.

Only numeric fields are smoothed (all the entity's top-level numbers, or those named in
``smooth``); other fields take the authoritative value at once.

Framework-free and clock-free: driven by states, inputs and frames.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pygase_core.model.failurelog import FailureLog
from pygase_core.model.interpolation import plain_copy

__all__ = ["Prediction", "PredictionStats", "Step", "apply_input", "resolve_path"]

Step = Callable[[Any, Any, float], Any]
"""``step(entity, value, dt) -> entity``: one input's effect, pure and the same on both sides."""

logger = logging.getLogger("pygase")

DEFAULT_MAX_CORRECTION = 4.0
"""State units (pixels, say) a misprediction's correction moves the entity per frame at most."""
_TOLERANCE = 1e-9


def check_declaration(path: object, step: object) -> tuple[str, ...]:
    """The segments of a prediction ``path`` (``"players.{me}"``); raises for bad arguments."""
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        raise ValueError(f"the path must be dotted names such as 'players.{{me}}', not {path!r}")
    if not callable(step):
        raise TypeError("step must be a function step(entity, value, dt) -> entity")
    return tuple(path.split("."))


def resolve_path(segments: Iterable[str], me: str) -> tuple[str, ...]:
    """The path with ``{me}`` replaced by the client's id."""
    return tuple(me if part == "{me}" else part for part in segments)


def lookup(state: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in a state (a GameState, Snapshot or mapping); None if missing."""
    current: Any = state
    for index, part in enumerate(path):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif index == 0:
            current = getattr(current, part, None)
        else:
            return None
        if current is None:
            return None
    return current


def nested_update(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """The update dict that sets ``path`` to ``value`` (dicts merge key by key)."""
    update: Any = value
    for part in reversed(path):
        update = {part: update}
    return update  # type: ignore[no-any-return]


def apply_input(
    segments: tuple[str, ...], step: Step, me: str, value: Any, game_state: Any, dt: float
) -> dict[str, Any] | None:
    """Server side: the update that applies one input to the client's entity (None: none)."""
    path = resolve_path(segments, me)
    entity = lookup(game_state, path)
    if entity is None:
        return None
    return nested_update(path, step(plain_copy(entity), value, dt))


def _numbers(entity: Any, fields: tuple[str, ...] | None) -> dict[str, float]:
    if isinstance(entity, int | float) and not isinstance(entity, bool):
        return {"": float(entity)}
    if not isinstance(entity, Mapping):
        return {}
    names = entity.keys() if fields is None else fields
    return {
        name: float(entity[name]) for name in names
        if isinstance(entity.get(name), int | float) and not isinstance(entity.get(name), bool)
    }


@dataclass
class PredictionStats:
    """How the prediction fared: mispredictions and how far their corrections moved things."""

    inputs: int = 0
    reconciliations: int = 0
    replayed_ticks: int = 0
    mispredictions: int = 0
    """Authoritative states that disagreed with what had been predicted for them."""
    misprediction_distance: float = 0.0
    """Sum of the mispredictions' sizes (Euclidean, over the smoothed fields)."""
    corrected_distance: float = 0.0
    """How far corrections moved the shown entity, in all."""
    max_correction_per_frame: float = 0.0
    """The largest correction one frame made (never above ``max_correction``)."""
    step_failures: int = 0
    """Replays of an input whose step raised (the input is left out of the prediction)."""


class Prediction:
    """The client's predicted entity (see the module docstring). Thread-safe.

    Args:
        path: where the entity is in the state, ``{me}`` standing for the client's id.
        step: ``step(entity, value, dt) -> entity``, the same function the server applies.
        dt: seconds one input lasts (the server's tick interval).
        me: the client's id.
        max_correction: at most this much correction per frame (in the state's units).
        smooth: the numeric fields to smooth (None: every top-level number of the entity).
    """

    def __init__(
        self,
        path: str,
        step: Step,
        dt: float,
        me: str,
        *,
        max_correction: float = DEFAULT_MAX_CORRECTION,
        smooth: Iterable[str] | None = None,
    ) -> None:
        self.segments = check_declaration(path, step)
        if isinstance(max_correction, bool) or not isinstance(max_correction, int | float) or not (
            math.isfinite(max_correction) and max_correction > 0
        ):
            raise ValueError(f"max_correction must be a positive number, not {max_correction!r}")
        if isinstance(dt, bool) or not isinstance(dt, int | float) or not (
            math.isfinite(dt) and dt > 0
        ):
            raise ValueError(f"dt must be a positive number of seconds, not {dt!r}")
        self.path = resolve_path(self.segments, me)
        self.step = step
        self.dt = float(dt)
        self.max_correction = float(max_correction)
        self.smooth = None if smooth is None else tuple(smooth)
        self._stats = PredictionStats()
        self._lock = threading.Lock()
        """Held by whoever reads the prediction, through its replay (the game's thread)."""
        self._inbox = threading.Lock()
        """Guards only what :meth:`reconcile` leaves (``_incoming``, ``_acked``), so the
        network loop handing a state over never waits for a replay."""
        self._pending: deque[tuple[int, Any]] = deque()
        self._acked = 0
        self._raw: Any = None
        self._offset: dict[str, float] = {}
        self._incoming: tuple[Any] | None = None
        """The entity of the latest state not replayed yet (held in a tuple: it may be None)."""
        self._failures = FailureLog(logger)
        self.authoritative: Any = None
        """The entity as the latest authoritative state has it (None: not in the state)."""
        self.last_correction = 0.0
        """How far the correction moved the entity in the last :meth:`sample` (a frame)."""

    @property
    def stats(self) -> PredictionStats:
        """How the prediction fared, up to date with the latest state (its replay runs now)."""
        with self._lock:
            self._settle()
            return self._stats

    @property
    def pending(self) -> int:
        """Inputs the latest authoritative state does not contain yet."""
        with self._lock:
            self._settle()
            return len(self._pending)

    def add_input(self, tick: int, value: Any) -> None:
        """A new input was sent: the prediction steps at once.

        If the step raises, the error is raised here and the prediction leaves the input out
        (it shows the entity without it until a state containing it arrives).
        """
        with self._lock:
            self._settle()
            if self._raw is not None:
                self._raw = self.step(self._raw, value, self.dt)
            self._pending.append((tick, value))
            self._stats.inputs += 1

    def reconcile(self, state: Any, acked: int | None) -> None:
        """A new authoritative state arrived, containing our inputs up to tick ``acked``.

        Cheap (a copy of the entity): the replay waits for the next read of the prediction.
        """
        entity = lookup(state, self.path)
        entity = None if entity is None else plain_copy(entity)
        authoritative = plain_copy(entity)
        with self._inbox:
            if acked is not None and acked > self._acked:
                self._acked = acked
            self.authoritative = authoritative
            self._incoming = (entity,)

    def _settle(self) -> None:
        """Rewind to the latest state kept by :meth:`reconcile` and replay (lock held)."""
        with self._inbox:
            incoming, acked = self._incoming, self._acked
            self._incoming = None
        if incoming is None:
            return
        entity = incoming[0]
        pending = self._pending
        while pending and pending[0][0] <= acked:
            pending.popleft()
        if entity is None:
            self._raw = None
            self._offset = {}
            return
        raw = entity
        failed: list[tuple[int, Any]] = []
        for item in pending:
            try:
                raw = self.step(raw, item[1], self.dt)
            except Exception as raised:
                failed.append(item)
                self._failures.failed("the prediction's step, replaying an input", raised)
        for item in failed:
            pending.remove(item)
        stats = self._stats
        stats.step_failures += len(failed)
        stats.reconciliations += 1
        stats.replayed_ticks += len(pending)
        old = self._raw
        self._raw = raw
        if old is None:
            return
        before, after = _numbers(old, self.smooth), _numbers(raw, self.smooth)
        error = {name: before[name] - after[name] for name in after if name in before}
        size = math.sqrt(sum(value * value for value in error.values()))
        if size > _TOLERANCE:
            stats.mispredictions += 1
            stats.misprediction_distance += size
            offset = self._offset
            for name, value in error.items():
                offset[name] = offset.get(name, 0.0) + value

    @property
    def predicted(self) -> Any:
        """The exact prediction (latest state plus pending inputs), without the correction."""
        with self._lock:
            self._settle()
            return plain_copy(self._raw)

    def current(self) -> Any:
        """The entity as shown now (prediction plus the correction left), without a frame."""
        with self._lock:
            self._settle()
            return self._shown()

    def sample(self) -> Any:
        """The entity to show this frame: the correction shrinks first, by ``max_correction``."""
        with self._lock:
            self._settle()
            offset = self._offset
            self.last_correction = 0.0
            if offset:
                size = math.sqrt(sum(value * value for value in offset.values()))
                if size <= self.max_correction:
                    moved = size
                    self._offset = {}
                else:
                    moved = self.max_correction
                    keep = (size - self.max_correction) / size
                    self._offset = {name: value * keep for name, value in offset.items()}
                self.last_correction = moved
                stats = self._stats
                stats.corrected_distance += moved
                stats.max_correction_per_frame = max(stats.max_correction_per_frame, moved)
            return self._shown()

    def _shown(self) -> Any:
        raw, offset = self._raw, self._offset
        if raw is None or not offset:
            return plain_copy(raw)
        if "" in offset and not isinstance(raw, Mapping):
            return raw + offset[""]
        shown = plain_copy(raw)
        for name, value in offset.items():
            if name in shown:
                shown[name] = shown[name] + value
        return shown
