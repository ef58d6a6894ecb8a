"""Logging for game logic that fails or overruns again and again, without flooding the log.

A ``time_step`` that raises runs 50 times a second; logging each traceback buries everything
else. :class:`FailureLog` logs the first failure of each kind with its traceback, then counts
the repeats and says how many there were once every ``every`` seconds. Its clock is passed in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FailureLog"]


@dataclass
class _Streak:
    since: float
    repeats: int = 0
    last: str = ""
    last_at: float = 0.0


class FailureLog:
    """Rate-limited reports of failures and overruns, by what failed."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        clock: Callable[[], float] = time.monotonic,
        every: float = 5.0,
    ) -> None:
        self._logger = logger
        self._clock = clock
        self.every = every
        self._streaks: dict[str, _Streak] = {}

    def failed(self, what: str, error: BaseException) -> None:
        """``what`` raised ``error`` (call from the ``except`` block or with the exception)."""
        if self._first(f"failed:{what}", repr(error)):
            self._logger.error(
                "%s failed", what, exc_info=(type(error), error, error.__traceback__)
            )
        else:
            self._summarize(f"failed:{what}", "%s failed %d more times in the last %.1f s"
                            " (last: %s)", what)

    def overran(self, what: str, seconds: float, budget: float) -> None:
        """``what`` took ``seconds``, more than its ``budget``."""
        detail = f"{seconds:.3f} s"
        if self._first(f"overran:{what}", detail):
            self._logger.warning("%s took %.3f s, over its %.3f s budget", what, seconds, budget)
        else:
            self._summarize(f"overran:{what}", "%s overran %d more times in the last %.1f s"
                            " (last took %s)", what)

    def flush(self) -> None:
        """Say how many repeats are still untold (when the loop stops, for example)."""
        for key, streak in self._streaks.items():
            if streak.repeats:
                kind, _, what = key.partition(":")
                self._logger.error(
                    "%s %s %d more times in %.1f s (last: %s)",
                    what, kind, streak.repeats, streak.last_at - streak.since, streak.last,
                )
        self._streaks.clear()

    def _first(self, key: str, detail: str) -> bool:
        """Record one occurrence; True if it starts a new streak (then it is logged in full)."""
        now = self._clock()
        streak = self._streaks.get(key)
        if streak is None or (streak.repeats == 0 and now - streak.since >= self.every):
            self._streaks[key] = _Streak(now, 0, detail)
            return True
        streak.repeats += 1
        streak.last = detail
        streak.last_at = now
        return False

    def _summarize(self, key: str, message: str, what: str) -> None:
        streak = self._streaks[key]
        now = self._clock()
        if now - streak.since >= self.every:
            log = self._logger.error if key.startswith("failed:") else self._logger.warning
            log(message, what, streak.repeats, now - streak.since, streak.last)
            streak.since = now
            streak.repeats = 0
