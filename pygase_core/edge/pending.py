"""The bound on unsettled events that ``dispatch_event`` checks in the caller's thread.

An event is *unsettled* from its ``dispatch_event`` until it is acknowledged or given up. A
connection counts what it has queued itself (``Connection.events_in_flight``); what was
dispatched from another thread and is still on its way to the I/O loop is counted here, per
target, so the bound holds however fast a game thread dispatches.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Callable, Sequence

__all__ = ["DEFAULT_MAX_PENDING_EVENTS", "PendingEvents", "pending_for"]

DEFAULT_MAX_PENDING_EVENTS = 10_000


class PendingEvents:
    """Events dispatched and not yet queued on the loop, per target, and the bound on them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_transit: Counter[object] = Counter()

    def unsettled(self, target: object, queued: Callable[[], int]) -> int:
        """``queued()`` (what the target's connection counts) plus what is on its way."""
        with self._lock:
            return queued() + self._in_transit[target]

    def reserve(
        self, targets: Sequence[tuple[object, Callable[[], int]]], limit: int
    ) -> list[object]:
        """Count one more event for every target, or for none if any is at ``limit``.

        ``targets`` pairs each target with what its connection has queued and not settled.
        Returns the targets at the limit: if there are any, nothing was counted. The
        connections' counts are read under the lock that :meth:`hand_over` takes, so an event
        the loop moves from here to its connection is counted exactly once.
        """
        with self._lock:
            full = [t for t, queued in targets if queued() + self._in_transit[t] >= limit]
            if not full:
                for target, _ in targets:
                    self._in_transit[target] += 1
        return full

    def hand_over(self, targets: Sequence[object], queue: Callable[[], None]) -> None:
        """On the loop: ``queue()`` the event to its connections and stop counting it here.

        Both under the lock that :meth:`reserve` reads the counts under, so no reservation sees
        the event counted twice (by its connection and here) or not at all.
        """
        with self._lock:
            try:
                queue()
            finally:
                for target in targets:
                    self._in_transit[target] -= 1
                    if self._in_transit[target] <= 0:
                        del self._in_transit[target]


_by_endpoint: weakref.WeakKeyDictionary[object, PendingEvents] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def pending_for(endpoint: object) -> PendingEvents:
    """The one :class:`PendingEvents` of a protocol endpoint (it lives as long as the endpoint)."""
    with _registry_lock:
        pending = _by_endpoint.get(endpoint)
        if pending is None:
            pending = _by_endpoint[endpoint] = PendingEvents()
        return pending
