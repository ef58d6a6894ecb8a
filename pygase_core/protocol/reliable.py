"""The event channel: numbered, fragmented, optionally resent, delivered exactly once and in order.

Each event gets the next 32-bit id of its connection and is cut into fragments. A fragment is
resent when it has not been acknowledged within a timeout derived from the RTT, as long as the
event has resends left (``retries``); an event with ``retries=0`` is sent once. When the sender
gives up on an event it raises its *floor* (the lowest id it may still send), which every data
packet carries, so the receiver stops waiting for that id and delivers what follows.

The receiver keeps the next id it expects, delivers complete events strictly in id order, and
drops anything below that id: every event runs its handler at most once, and exactly once when
it is delivered at all.

Sans-IO: ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from pygase_core.errors import ProtocolError

MIN_RESEND_TIMEOUT = 0.05
INITIAL_RESEND_TIMEOUT = 0.2
MAX_EVENTS_AHEAD = 1024
"""A receiver accepts event ids at most this far past the next one it expects; a sender keeps
its events in flight within the same window."""
FRAGMENT_OVERHEAD = 64
"""What a buffered fragment costs the receiver beyond its data, charged against its limits so
that empty fragments cannot fill its memory."""


def resend_timeout(rtt: float | None) -> float:
    """How long to wait for an ack before an event fragment is due again."""
    if rtt is None:
        return INITIAL_RESEND_TIMEOUT
    return max(MIN_RESEND_TIMEOUT, 1.5 * rtt + 0.02)


@dataclass(eq=False)
class OutgoingEvent:
    """An event in flight; ``token`` is returned when it is fully acknowledged."""

    event_id: int
    fragments: list[bytes]
    retries_left: int
    token: object
    unacked: set[int] = field(default_factory=set)
    sent_at: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.unacked = set(range(len(self.fragments)))


@dataclass(frozen=True)
class FragmentRef:
    """Recorded in a sent packet, so an ack of the packet acknowledges the fragment."""

    event: OutgoingEvent
    index: int


class EventSender:
    """The sending half of a connection's event channel."""

    def __init__(self, max_bytes_in_flight: int | None = None) -> None:
        self.next_id = 0
        self._in_flight: dict[int, OutgoingEvent] = {}
        self.abandoned = 0
        self._max_bytes_in_flight = max_bytes_in_flight

    def queue(self, fragments: list[bytes], retries: int, token: object) -> int:
        """Add an encoded, fragmented event; returns its id."""
        event = OutgoingEvent(self.next_id, fragments, retries, token)
        self._in_flight[event.event_id] = event
        self.next_id += 1
        return event.event_id

    @property
    def floor(self) -> int:
        """The lowest id still in flight (the next id when nothing is)."""
        return next(iter(self._in_flight), self.next_id)

    @property
    def pending(self) -> int:
        """How many events are still in flight."""
        return len(self._in_flight)

    def due(self, now: float, rtt: float | None) -> Iterator[tuple[FragmentRef, bytes]]:
        """Yield the fragments to send now: new ones, and unacked ones whose timeout passed.

        Resending any fragment of an event uses up one of its retries per round. An event
        whose retries are spent and whose last send timed out is abandoned here.
        """
        if not self._in_flight:
            return
        timeout = resend_timeout(rtt)
        window_end = self.floor + MAX_EVENTS_AHEAD
        budget = self._max_bytes_in_flight
        for event in list(self._in_flight.values()):
            if event.event_id >= window_end:
                break  # the receiver would refuse it: it waits until earlier ones are done
            if budget is not None:
                budget -= sum(len(f) + FRAGMENT_OVERHEAD for f in event.fragments)
                if budget < 0 and event.event_id != self.floor:
                    break  # more than the receiver buffers: later events wait their turn
            unsent = [i for i in sorted(event.unacked) if i not in event.sent_at]
            expired = [
                i for i in sorted(event.unacked)
                if i in event.sent_at and now - event.sent_at[i] >= timeout
            ]
            if expired:
                if event.retries_left <= 0:
                    if not unsent:
                        self.abandoned += 1
                        del self._in_flight[event.event_id]
                        continue
                    expired = []
                else:
                    event.retries_left -= 1
            for index in unsent + expired:
                event.sent_at[index] = now
                yield FragmentRef(event, index), event.fragments[index]

    def acknowledge(self, ref: FragmentRef) -> object | None:
        """A packet carrying ``ref`` was acked; returns the token if the event is now complete."""
        event = ref.event
        event.unacked.discard(ref.index)
        if event.unacked or self._in_flight.get(event.event_id) is not event:
            return None
        del self._in_flight[event.event_id]
        return event.token

    def next_deadline(self, rtt: float | None) -> float | None:
        """When the earliest in-flight fragment becomes due again (None if nothing is)."""
        timeout = resend_timeout(rtt)
        deadline = None
        window_end = self.floor + MAX_EVENTS_AHEAD
        for event in self._in_flight.values():
            if event.event_id >= window_end:
                break
            for index in event.unacked:
                sent = event.sent_at.get(index)
                due = 0.0 if sent is None else sent + timeout
                if deadline is None or due < deadline:
                    deadline = due
        return deadline


@dataclass
class _Partial:
    count: int
    pieces: dict[int, bytes] = field(default_factory=dict)
    size: int = 0


class EventReceiver:
    """The receiving half: reassembly, duplicate suppression and in-order delivery."""

    def __init__(self, max_event_size: int, fragment_size: int) -> None:
        self.next_id = 0
        self._max_fragments = -(-max_event_size // fragment_size)
        self._max_event_cost = max_event_size + self._max_fragments * FRAGMENT_OVERHEAD
        self._partials: dict[int, _Partial] = {}
        self._complete: dict[int, tuple[bytes, int]] = {}
        self._buffered_bytes = 0
        self.duplicates = 0
        self.skipped = 0

    def add_fragment(self, event_id: int, index: int, count: int, data: bytes) -> None:
        """Take one fragment; raises ProtocolError for fragments no honest peer sends."""
        if event_id < self.next_id or event_id in self._complete:
            self.duplicates += 1
            return
        if event_id - self.next_id >= MAX_EVENTS_AHEAD:
            raise ProtocolError(f"event id {event_id} is too far ahead of {self.next_id}")
        if count > self._max_fragments:
            raise ProtocolError(f"event {event_id} of {count} fragments exceeds the maximum size")
        partial = self._partials.get(event_id)
        if partial is None:
            partial = self._partials[event_id] = _Partial(count)
        elif partial.count != count:
            raise ProtocolError(f"event {event_id}: inconsistent fragment count")
        if index in partial.pieces:
            self.duplicates += 1
            return
        cost = len(data) + FRAGMENT_OVERHEAD
        if partial.size + cost > self._max_event_cost:
            del self._partials[event_id]
            self._buffered_bytes -= partial.size
            raise ProtocolError(f"event {event_id} exceeds the maximum event size")
        if self._buffered_bytes + cost > 4 * self._max_event_cost:
            if not partial.pieces:
                del self._partials[event_id]
            raise ProtocolError("too much event data buffered")
        partial.pieces[index] = data
        partial.size += cost
        self._buffered_bytes += cost
        if len(partial.pieces) == partial.count:
            del self._partials[event_id]
            payload = b"".join(partial.pieces[i] for i in range(partial.count))
            self._complete[event_id] = (payload, partial.size)

    def deliverable(self, floor: int) -> Iterator[bytes]:
        """Yield complete events in id order, skipping ids below the sender's ``floor``."""
        if self.next_id < floor:
            # The sender gave up on whatever below the floor is still missing: drop those
            # partials and deliver the complete ones in order, in one pass (a hostile floor
            # cannot make this loop long).
            for stale in [i for i in self._partials if i < floor]:
                self._buffered_bytes -= self._partials.pop(stale).size
            below = sorted(i for i in self._complete if i < floor)
            self.skipped += (floor - self.next_id) - len(below)
            self.next_id = floor
            for event_id in below:
                payload, cost = self._complete.pop(event_id)
                self._buffered_bytes -= cost
                yield payload
        while self.next_id in self._complete:
            payload, cost = self._complete.pop(self.next_id)
            self._buffered_bytes -= cost
            self.next_id += 1
            yield payload
