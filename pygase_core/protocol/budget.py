"""A per-connection bandwidth budget for state: a token bucket in bytes, sans-IO.

``Server(max_bandwidth=64_000)`` gives every connection a budget of that many bytes of state per
second (naia's default). When a flush finds the bucket empty, the connection sends no state this
time: the client keeps the state it has, and a later flush sends the delta from it to whatever is
current then, which combines the ticks in between. Because every pygase delta is exact and
idempotent, skipping is all it takes: the client still converges on the server's state, only in
fewer, larger steps. A payload larger than what is left goes out once the bucket holds anything,
and the debt is paid by waiting, so a state larger than a second's budget still arrives.

What the budget did is in :class:`BudgetUse` (``Server.budget_use``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BandwidthBudget", "BudgetUse"]

BURST_SECONDS = 0.1
"""The bucket holds this many seconds of the budget (at least one full datagram)."""
_MIN_BURST = 1200


@dataclass(frozen=True)
class BudgetUse:
    """What one connection's budget did: its limit and how much of it the state used."""

    limit: int
    """Bytes per second of state this connection may be sent."""
    bytes_sent: int
    """State bytes sent in all (fragment messages, without packet headers)."""
    deferred: int
    """Flushes that held the state back because the budget was spent."""
    recent: float
    """State bytes per second over the last second or so."""

    @property
    def share(self) -> float:
        """The recent rate as a share of the limit (0 to about 1)."""
        return self.recent / self.limit


class BandwidthBudget:
    """A token bucket of ``limit`` bytes per second, refilled by the times it is given.

    Raises:
        ValueError: if ``limit`` is not a positive int.
    """

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError("max_bandwidth must be a positive int of bytes per second")
        self.limit = limit
        self.capacity = max(limit * BURST_SECONDS, _MIN_BURST)
        self.tokens = self.capacity
        self._refilled: float | None = None
        self.bytes_sent = 0
        self.deferred = 0
        self._window_start: float | None = None
        self._window_bytes = 0
        self._recent = 0.0

    def open(self, now: float) -> bool:
        """Refill for the time since the last call; whether state may be sent now."""
        if self._refilled is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self._refilled) * self.limit)
        self._refilled = now
        if self._window_start is None:
            self._window_start = now
        elif now - self._window_start >= 1.0:
            self._recent = self._window_bytes / (now - self._window_start)
            self._window_start, self._window_bytes = now, 0
        return self.tokens > 0

    def spend(self, size: int) -> bool:
        """Take ``size`` bytes; whether anything is left for more."""
        self.tokens -= size
        self.bytes_sent += size
        self._window_bytes += size
        return self.tokens > 0

    def use(self) -> BudgetUse:
        """The figures so far."""
        return BudgetUse(self.limit, self.bytes_sent, self.deferred, self._recent)
