"""Lag compensation: the recent past of a world, by state ``time_order``.

A player aims at what their screen shows, and their screen shows the world as it was: the state
took half a round trip to arrive and is drawn an interpolation delay in the past. When the
player's shot reaches the server, the target has moved on. Checking the hit against the world
*as the shooter saw it* is fair to the shooter (the server does the sum, so nobody can claim a
view they did not have).

:class:`StateHistory` keeps a copy of the state after every game loop step for a bounded time
(about a second by default). Each input names the state the player was looking at when it was
made (the ``time_order`` of the frame shown); :meth:`StateHistory.at` finds the newest recorded
state no newer than that, and a request older than the bound gets the oldest one kept, marked
``clamped``, so nobody can shoot into the distant past.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from pygase_core.model.interpolation import Snapshot, plain_copy

__all__ = ["HistoricalState", "StateHistory"]

DEFAULT_HISTORY_SECONDS = 1.0
"""How far back a world's history reaches by default."""
MAX_HISTORY_SECONDS = 3600.0
"""The longest history: each record is a copy of the whole state, so more is a leak."""


def check_seconds(name: str, value: object, maximum: float = MAX_HISTORY_SECONDS) -> float:
    """``value`` as a number of seconds (above 0, at most ``maximum``: an hour), or raise.

    ``TypeError`` for what is not a number, ``ValueError`` for a number out of that range.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if not (math.isfinite(value) and 0 < value <= maximum):
        raise ValueError(f"{name} must be above 0 and at most {maximum:g} seconds, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class HistoricalState:
    """The world as it was: ``time_order`` of the recorded state, ``state`` (read-only view).

    ``clamped`` is set when the request reached further back than the history keeps (then
    this is the oldest state kept) or ahead of the newest one.
    """

    time_order: int
    state: Snapshot
    clamped: bool


class StateHistory:
    """A bounded record of recent states, by ``time_order``. Thread-safe.

    Args:
        seconds: how far back it reaches.
        interval: seconds between records (the game loop's tick interval).
    """

    def __init__(self, seconds: float = DEFAULT_HISTORY_SECONDS, interval: float = 0.02) -> None:
        self.seconds = check_seconds("seconds", seconds)
        self.interval = check_seconds("interval", interval, math.inf)
        self._records: deque[tuple[int, dict[str, Any]]] = deque(
            maxlen=max(1, math.ceil(self.seconds / self.interval) + 1)
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._records)

    def record(self, time_order: int, state: dict[str, Any]) -> None:
        """Keep a copy of the state as of ``time_order`` (newer than the last one recorded)."""
        copy = plain_copy(state)
        with self._lock:
            records = self._records
            if records and records[-1][0] >= time_order:
                if records[-1][0] == time_order:
                    records[-1] = (time_order, copy)
                return
            records.append((time_order, copy))

    def at(self, time_order: int) -> HistoricalState | None:
        """The world as of ``time_order``: the newest record at or before it (None: empty).

        Older than the oldest record (past the bound), it is the oldest record, ``clamped``;
        newer than the newest (a view no state had yet), the newest record, ``clamped`` too.
        """
        if isinstance(time_order, bool) or not isinstance(time_order, int):
            raise TypeError(f"time_order must be an int, not {time_order!r}")
        with self._lock:
            records = list(self._records)
        if not records:
            return None
        if time_order < records[0][0]:
            return _historical(records[0], clamped=True)
        if time_order > records[-1][0]:
            return _historical(records[-1], clamped=True)
        found = records[0]
        for record in records:
            if record[0] > time_order:
                break
            found = record
        return _historical(found, clamped=False)


def _historical(record: tuple[int, dict[str, Any]], clamped: bool) -> HistoricalState:
    time_order, state = record
    view = Snapshot(plain_copy(state), time_order=time_order, render_time=0.0, received_at=0.0)
    return HistoricalState(time_order, view, clamped)
