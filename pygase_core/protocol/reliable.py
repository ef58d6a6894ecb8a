"""The event channel: numbered, fragmented, optionally resent, delivered exactly once and in order.

Each event gets the next 32-bit id of its connection and is cut into fragments. A burst of events
must neither flood the path (a kernel's receive buffer drops what arrives faster than it is
read) nor give up on events while the path is merely slow, so the sender follows these rules:

**Admission.** Events are sent in id order. The fragments of an event become eligible only when
its id is below ``floor + MAX_EVENTS_AHEAD`` (the receiver refuses ids further ahead) and, with
``max_bytes_in_flight``, when the bytes of every event from the floor on that has been admitted,
acknowledged or not, plus this event's stay within that budget (the receiver buffers events it
cannot deliver yet); the event at the floor is always admitted. A fragment counts its data plus
:data:`FRAGMENT_OVERHEAD` bytes.

**Window.** At most :attr:`EventSender.window` fragments are *in flight*: sent at least once,
not acknowledged and not spent (see below); a fragment waiting for its resend stays in flight.
New fragments beyond the window wait in order; they count as not sent, and their retry clock
does not run. The window starts at :data:`INITIAL_WINDOW` fragments. Each acknowledged fragment
that was in flight grows it by 1 below the slow-start threshold (about doubling it per round
trip) and by 1/window above it, but only if at least half of the window was in use at the last
flush, since a sender that does not fill its window learns nothing about the path. When a
fragment's resend timer expires, the window is multiplied by :data:`WINDOW_DECREASE` (0.7, as
CUBIC does, since much loss on games' paths is not congestion), not below :data:`MIN_WINDOW`,
and the threshold set to the result, unless the fragment was last sent before the previous
decrease: one loss episode shrinks the window once (about once per round trip). It never
exceeds :data:`MAX_WINDOW`. The window counts fragments whatever their size, which is
conservative for small events (many share a datagram).

**Pacing.** Every fragment sent, new or resent, spends tokens of a bucket: a fragment of full
size costs 1 token, a smaller one its share of a full one (header included), so the tokens
count datagrams. The bucket holds at most :data:`PACING_BURST` tokens and refills at
``gain * window / srtt`` tokens per second (gain 2 in slow start, 1.25 after; srtt is
:data:`INITIAL_PACING_RTT` before the first sample). A flush sends while the bucket is
positive; resends go before new fragments. With fragments left over,
:meth:`EventSender.next_deadline` names the moment the bucket holds one token again.

**Resend timeouts.** After the n-th send of a fragment (n = 1, 2, ...) its timer runs for
``min(base * 2**(n - 1), max(MAX_RESEND_TIMEOUT, base))`` with ``base = resend_timeout(srtt)``,
that is ``max(0.05, 1.5 * srtt + 0.02)`` seconds at the time of that send (0.2 s before the
first RTT sample). If the fragment is not acknowledged when the timer expires, it is resent
(when the pacing allows) if it has been sent at most ``retries`` times, so each fragment is sent
at most ``1 + retries`` times (sends to a silent peer not counted, see below); otherwise it is
*spent*: it leaves the window and is not sent again. With retries=5 and a 20 ms round trip the
sends are 0.05, 0.1, 0.2, 0.4 and 0.8 s apart and the last one is spent 1.6 s later, 3.15 s after
the first.

**Floor and giving up.** An event whose unacknowledged fragments are all spent is *settled*. The
sender's *floor*, the lowest id not yet acknowledged or settled, is carried by every data
packet, so the receiver stops waiting for settled events and delivers what follows. A settled
event is *given up* at ``max(settling time, first send + MIN_GIVE_UP_DELAY)`` unless an ack
completes it first; so no event is given up less than one second after its first send, also
with ``retries=0`` (sent once, and given up a second later if never acknowledged). Each given up
event is reported once, by :meth:`EventSender.take_given_up`.

**Late acks.** An ack that completes an event counts whenever it arrives, also after the event
was given up or the floor passed it: its token is reported acknowledged exactly once. That is
safe because the receiver never acknowledges a packet carrying a fragment of an event it skipped
(see :meth:`EventReceiver.add_fragment`): an ack always means the event was or will be delivered.

**A silent peer.** While the connection says the peer is silent (:attr:`EventSender.silent`,
set by :meth:`EventSender.peer_silent`: nothing arrived for a while, an outage rather than
loss), sends do not count against ``retries``, a fragment whose timer runs out is never spent
(it stays in flight and is resent, also with ``retries=0``), the window is not decreased, and
no event is given up: a give-up falling due is held until the peer is heard again. Sending goes
on as the connection flushes (at its backed-off probe rate). When the peer is heard again
(:meth:`EventSender.peer_back`), every fragment in flight is due at once with its backoff reset,
the held give-ups fall due, and the window starts over from :data:`INITIAL_WINDOW` in slow
start, as on a new path. So an event queued during an outage is delivered exactly once after it,
and nothing is given up for the outage itself (what was spent while the peer was heard stays
spent, and is given up once the peer is back).

**Cost.** The sender keeps waiting fragments in deques and resend deadlines in a heap, so a
flush and :meth:`EventSender.next_deadline` cost about as much as what they send, not as much as
what is queued.

The receiver keeps the next id it expects, delivers complete events strictly in id order, and
drops anything below that id: every event runs its handler at most once, and exactly once when
it is delivered at all. It remembers which of the last :data:`SKIP_MEMORY` ids below that it
skipped, and a fragment of one of those (or of an id older than that) makes its packet go
unacknowledged.

Sans-IO: ``now`` is passed in.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from pygase_core.errors import ProtocolError
from pygase_core.protocol.packets import EVENT_FRAGMENT_OVERHEAD

MIN_RESEND_TIMEOUT = 0.05
INITIAL_RESEND_TIMEOUT = 0.2
MAX_RESEND_TIMEOUT = 2.0
"""The backoff stops doubling here (unless the RTT-based base alone is longer)."""
MIN_GIVE_UP_DELAY = 1.0
"""No event is given up sooner than this after its first send."""
MAX_EVENTS_AHEAD = 1024
"""A receiver accepts event ids at most this far past the next one it expects; a sender keeps
its events in flight within the same window."""
FRAGMENT_OVERHEAD = 64
"""What a buffered fragment costs the receiver beyond its data, charged against its limits so
that empty fragments cannot fill its memory."""
INITIAL_WINDOW = 32
MIN_WINDOW = 4
MAX_WINDOW = 1024
"""Bounds of the congestion window, in fragments in flight."""
WINDOW_DECREASE = 0.7
"""The factor a loss episode applies to the window."""
PACING_BURST = 8.0
"""How many full-size fragments (about datagrams) may leave back to back."""
PACING_QUANTUM = 1.0
"""Tokens the bucket gathers before a paced send is due, so a paced flush fills a datagram."""
SLOW_START_PACING_GAIN = 2.0
PACING_GAIN = 1.25
INITIAL_PACING_RTT = 0.1
MIN_PACING_RTT = 0.001
SKIP_MEMORY = 4 * MAX_EVENTS_AHEAD
"""How many ids below its next expected one a receiver remembers which events it skipped."""

_WAITING, _FLYING, _SPENT, _ACKED = range(4)
_TOKEN_EPSILON = 1e-9  # so rounding never lets one more fragment through
_GIVE_UP = -1


def resend_timeout(rtt: float | None) -> float:
    """How long to wait for an ack before a fragment is due again (the first time)."""
    if rtt is None:
        return INITIAL_RESEND_TIMEOUT
    return max(MIN_RESEND_TIMEOUT, 1.5 * rtt + 0.02)


def backoff_timeout(rtt: float | None, sends: int) -> float:
    """The timer after the ``sends``-th send of a fragment: the base, doubled per resend."""
    base = resend_timeout(rtt)
    return min(base * 2.0 ** (sends - 1), max(MAX_RESEND_TIMEOUT, base))


@dataclass(eq=False)
class OutgoingEvent:
    """A queued event and the fate of each of its fragments; ``token`` is reported with it."""

    event_id: int
    fragments: list[bytes]
    retries: int
    token: object
    cost: int = 0
    """Bytes it charges against the receiver's buffer."""
    state: list[int] = field(default_factory=list)
    sends: list[int] = field(default_factory=list)
    """Sends of each fragment since its backoff last started over (the backoff's exponent)."""
    charged: list[int] = field(default_factory=list)
    """Sends of each fragment that count against ``retries`` (not those to a silent peer)."""
    timer: list[int] = field(default_factory=list)
    """Each fragment's timer generation: a timer of an older one is stale."""
    sent_at: list[float] = field(default_factory=list)
    first_sent: float | None = None
    unacked: int = 0
    unsettled: int = 0
    """Fragments neither acknowledged nor spent: while any is, the event holds the floor."""
    admitted: bool = False
    complete: bool = False
    given_up: bool = False

    def __post_init__(self) -> None:
        count = len(self.fragments)
        self.cost = sum(len(f) + FRAGMENT_OVERHEAD for f in self.fragments)
        self.state = [_WAITING] * count
        self.sends = [0] * count
        self.charged = [0] * count
        self.timer = [0] * count
        self.sent_at = [0.0] * count
        self.unacked = self.unsettled = count

    @property
    def settled(self) -> bool:
        """Acknowledged, or every unacknowledged fragment spent: nothing more will be sent."""
        return self.unsettled == 0


@dataclass(frozen=True)
class FragmentRef:
    """Recorded with a sent packet, so an ack of the packet acknowledges the fragment."""

    event: OutgoingEvent
    index: int


class Pacer:
    """A token bucket: spreads sends at a rate while letting a small burst go at once."""

    def __init__(self, burst: float = PACING_BURST) -> None:
        self.burst = burst
        self.tokens = burst
        self._stamp: float | None = None

    def refill(self, now: float, rate: float) -> None:
        """Add what ``rate`` tokens per second gave since the last refill, up to the burst."""
        if self._stamp is not None and now > self._stamp:
            self.tokens = min(self.burst, self.tokens + (now - self._stamp) * rate)
        if self._stamp is None or now > self._stamp:
            self._stamp = now

    def ready_at(self, need: float, rate: float) -> float:
        """When the bucket will hold ``need`` tokens (in the past if it does already)."""
        if self._stamp is None:
            return float("-inf")
        if self.tokens >= need:
            return self._stamp
        return self._stamp + (need - self.tokens) / rate


class EventSender:
    """The sending half of a connection's event channel; see the module docstring."""

    def __init__(
        self, max_bytes_in_flight: int | None = None, fragment_size: int = 1024
    ) -> None:
        self.next_id = 0
        self.abandoned = 0
        """How many events were given up."""
        self.fragments_sent = 0
        """Sends of new fragments (resends not included)."""
        self.resends = 0
        self._max_bytes_in_flight = max_bytes_in_flight
        self._full_cost = fragment_size + EVENT_FRAGMENT_OVERHEAD
        self._events: deque[OutgoingEvent] = deque()  # not yet behind the floor, in id order
        self._waiting: deque[OutgoingEvent] = deque()  # not admitted yet
        self._unsent: deque[tuple[OutgoingEvent, int]] = deque()  # admitted, never sent
        self._resend: deque[tuple[OutgoingEvent, int]] = deque()  # timed out, retries left
        self._timers: list[tuple[float, int, OutgoingEvent, int, int]] = []
        self._timer_count = 0
        self._admitted_bytes = 0
        self._pending = 0
        self._in_flight = 0
        self._flight_high = 0  # the most in flight since the last flush began
        self._cwnd = float(INITIAL_WINDOW)
        self._ssthresh = float(MAX_WINDOW)
        self._recovery_start = float("-inf")
        self._pacer = Pacer()
        self._given_up: list[object] = []
        self.silent = False
        """Whether the peer is silent (see the module docstring); set by the connection."""
        self._held: list[OutgoingEvent] = []  # give-ups that fell due while the peer was silent

    # -- queueing and figures ------------------------------------------------------------------

    def queue(self, fragments: list[bytes], retries: int, token: object) -> int:
        """Add an encoded, fragmented event; returns its id."""
        event = OutgoingEvent(self.next_id, fragments, retries, token)
        self._events.append(event)
        self._waiting.append(event)
        self._pending += 1
        self.next_id += 1
        return event.event_id

    @property
    def floor(self) -> int:
        """The lowest id not yet acknowledged or settled (the next id when there is none)."""
        events = self._events
        while events and events[0].settled:
            event = events.popleft()
            if event.admitted:
                self._admitted_bytes -= event.cost
        return events[0].event_id if events else self.next_id

    @property
    def pending(self) -> int:
        """How many events are neither acknowledged nor given up (sent or not)."""
        return self._pending

    @property
    def window(self) -> int:
        """How many fragments may be in flight now (the congestion window)."""
        return int(self._cwnd)

    @property
    def fragments_in_flight(self) -> int:
        """Fragments sent and neither acknowledged nor spent."""
        return self._in_flight

    def take_given_up(self) -> list[object]:
        """The tokens of events given up since the last call (None tokens are left out)."""
        tokens, self._given_up = self._given_up, []
        return tokens

    # -- sending -------------------------------------------------------------------------------

    def _pacing_rate(self, rtt: float | None) -> float:
        gain = SLOW_START_PACING_GAIN if self._cwnd < self._ssthresh else PACING_GAIN
        srtt = INITIAL_PACING_RTT if rtt is None else max(rtt, MIN_PACING_RTT)
        return gain * self._cwnd / srtt

    def _cost(self, fragment: bytes) -> float:
        return (len(fragment) + EVENT_FRAGMENT_OVERHEAD) / self._full_cost

    def _push_timer(self, deadline: float, event: OutgoingEvent, index: int, tag: int) -> None:
        self._timer_count += 1
        heapq.heappush(self._timers, (deadline, self._timer_count, event, index, tag))

    def _stale(self, event: OutgoingEvent, index: int, tag: int) -> bool:
        if index == _GIVE_UP:
            return event.complete or event.given_up
        return event.state[index] != _FLYING or event.timer[index] != tag

    def _give_up(self, event: OutgoingEvent) -> None:
        event.given_up = True
        self._pending -= 1
        self.abandoned += 1
        if event.token is not None:
            self._given_up.append(event.token)

    def _settle(self, event: OutgoingEvent) -> None:
        """The event's last unsettled fragment was spent: schedule its giving up."""
        assert event.first_sent is not None
        self._push_timer(event.first_sent + MIN_GIVE_UP_DELAY, event, _GIVE_UP, 0)

    def advance(self, now: float) -> None:
        """Run the timers due at ``now``: fragments become due again, spent, or given up."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, event, index, tag = heapq.heappop(timers)
            if self._stale(event, index, tag):
                continue
            if index == _GIVE_UP:
                if self.silent:
                    self._held.append(event)  # not for an outage: once the peer is back
                else:
                    self._give_up(event)
                continue
            if self.silent:
                self._resend.append((event, index))  # an outage, not loss: no decrease
                continue
            if event.sent_at[index] > self._recovery_start:
                self._ssthresh = max(self._cwnd * WINDOW_DECREASE, float(MIN_WINDOW))
                self._cwnd = self._ssthresh
                self._recovery_start = now
            if event.charged[index] <= event.retries:
                self._resend.append((event, index))  # still in flight, due at once
                continue
            event.state[index] = _SPENT
            self._in_flight -= 1
            event.unsettled -= 1
            if event.unsettled == 0:
                self._settle(event)

    def _admissible(self) -> bool:
        """Whether the first waiting event may have its fragments sent."""
        if not self._waiting:
            return False
        event = self._waiting[0]
        if event.event_id >= self.floor + MAX_EVENTS_AHEAD:
            return False  # the receiver would refuse it: it waits until earlier ones are done
        budget = self._max_bytes_in_flight
        return budget is None or not self._admitted_bytes or (
            self._admitted_bytes + event.cost <= budget
        )

    def _next(self, take: bool) -> tuple[OutgoingEvent, int, bool] | None:
        """The fragment to send next (and whether it is a resend), removed if ``take``."""
        resend = self._resend
        while resend:
            event, index = resend[0]
            if event.state[index] != _FLYING:
                resend.popleft()  # acknowledged while it waited
                continue
            if take:
                resend.popleft()
            return event, index, True
        if self._in_flight >= int(self._cwnd):
            return None
        if not self._unsent:
            if not self._admissible():
                return None
            event = self._waiting.popleft()
            event.admitted = True
            self._admitted_bytes += event.cost
            self._unsent.extend((event, i) for i in range(len(event.fragments)))
        event, index = self._unsent[0]
        if take:
            self._unsent.popleft()
        return event, index, False

    def due(self, now: float, rtt: float | None) -> Iterator[tuple[FragmentRef, bytes]]:
        """Yield the fragments to send now, as the window and the pacing allow.

        Runs the timers first (:meth:`advance`), so resends are yielded before new fragments.
        """
        self.advance(now)
        self._flight_high = self._in_flight
        pacer = self._pacer
        pacer.refill(now, self._pacing_rate(rtt))
        while pacer.tokens > _TOKEN_EPSILON:
            chosen = self._next(take=True)
            if chosen is None:
                return
            event, index, resent = chosen
            if resent:
                self.resends += 1
            else:
                event.state[index] = _FLYING
                self._in_flight += 1
                self._flight_high = max(self._flight_high, self._in_flight)
                self.fragments_sent += 1
                if event.first_sent is None:
                    event.first_sent = now
            sends = event.sends[index] = event.sends[index] + 1
            if not self.silent:
                event.charged[index] += 1
            tag = event.timer[index] = event.timer[index] + 1
            event.sent_at[index] = now
            self._push_timer(now + backoff_timeout(rtt, sends), event, index, tag)
            fragment = event.fragments[index]
            pacer.tokens -= self._cost(fragment)
            yield FragmentRef(event, index), fragment

    def next_deadline(self, rtt: float | None) -> float | None:
        """When :meth:`due` has something to do next: a paced send or a timer (None: nothing)."""
        timers = self._timers
        while timers and self._stale(*timers[0][2:]):
            heapq.heappop(timers)
        deadline = timers[0][0] if timers else None
        if self._next(take=False) is not None:
            ready = self._pacer.ready_at(PACING_QUANTUM, self._pacing_rate(rtt))
            deadline = ready if deadline is None else min(deadline, ready)
        return deadline

    # -- a silent peer -------------------------------------------------------------------------

    def peer_silent(self) -> None:
        """The peer went silent: from now on nothing is charged, spent or given up."""
        self.silent = True

    def peer_back(self, now: float) -> None:
        """The peer is heard again: everything in flight is due at once, its backoff reset.

        The give-ups held during the silence fall due now, and the window starts over in slow
        start from :data:`INITIAL_WINDOW` (the path may be a new one).
        """
        self.silent = False
        resend: deque[tuple[OutgoingEvent, int]] = deque()
        for event in self._events:
            if not event.admitted:
                break  # the rest waits in order and was never sent
            for index, state in enumerate(event.state):
                if state == _FLYING:
                    event.sends[index] = 0
                    event.timer[index] += 1  # its running timer is stale now
                    resend.append((event, index))
        self._resend = resend
        for event in self._held:
            self._push_timer(now, event, _GIVE_UP, 0)
        self._held.clear()
        self._cwnd = float(INITIAL_WINDOW)
        self._ssthresh = float(MAX_WINDOW)
        self._recovery_start = now

    # -- acknowledgements ----------------------------------------------------------------------

    def acknowledge(self, ref: FragmentRef) -> object | None:
        """A packet carrying ``ref`` was acked; returns the token if that completes the event.

        The token is returned once per event, also when the ack comes after the event was
        given up or the floor passed it (a late ack); None tokens are never returned.
        """
        event, index = ref.event, ref.index
        state = event.state[index]
        if state == _ACKED:
            return None
        event.state[index] = _ACKED
        event.unacked -= 1
        if state == _FLYING:
            if self._flight_high >= self._cwnd / 2:
                if self._cwnd < self._ssthresh:
                    self._cwnd += 1.0
                else:
                    self._cwnd += 1.0 / self._cwnd
                self._cwnd = min(self._cwnd, float(MAX_WINDOW))
            self._in_flight -= 1
            event.unsettled -= 1
            if event.unsettled == 0 and event.unacked:
                self._settle(event)  # the rest was spent before
        if event.unacked:
            return None
        event.complete = True
        if not event.given_up:
            self._pending -= 1
        return event.token

    def abandon(self) -> list[object]:
        """Give up every event not yet acknowledged or given up (the session ended).

        Returns the tokens given up and not yet taken by :meth:`take_given_up`, these included,
        None tokens left out. The sender is empty afterwards; late acks still count.
        """
        events = list(self._events)
        events.extend(entry[2] for entry in self._timers if entry[3] == _GIVE_UP)
        events.extend(self._held)
        for event in events:
            if not (event.complete or event.given_up):
                self._give_up(event)
        self._events.clear()
        self._waiting.clear()
        self._unsent.clear()
        self._resend.clear()
        self._timers.clear()
        self._held.clear()
        self._admitted_bytes = 0
        self._in_flight = 0
        return self.take_given_up()


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
        self._skipped: list[tuple[int, int]] = []  # ranges [start, end) of skipped ids, in order
        self.duplicates = 0
        self.skipped = 0
        self.refused_late = 0
        """Fragments of skipped (or forgotten) events that arrived: their packets go unacked."""

    def _was_skipped(self, event_id: int) -> bool:
        """Whether an id below ``next_id`` was skipped rather than delivered, as far as known."""
        if event_id < self.next_id - SKIP_MEMORY:
            return True  # too old to tell: assume the worst (no honest sender resends it)
        at = bisect_right(self._skipped, event_id, key=lambda span: span[0]) - 1
        return at >= 0 and event_id < self._skipped[at][1]

    def add_fragment(self, event_id: int, index: int, count: int, data: bytes) -> bool:
        """Take one fragment; raises ProtocolError for fragments no honest peer sends.

        Returns False for a fragment of an event this receiver skipped (the sender's floor
        passed it before it was complete): the packet carrying it must not be acknowledged,
        or the sender would take the event for delivered. True otherwise, duplicates included.
        """
        if event_id < self.next_id:
            if self._was_skipped(event_id):
                self.refused_late += 1
                return False
            self.duplicates += 1
            return True
        if event_id in self._complete:
            self.duplicates += 1
            return True
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
            return True
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
        return True

    def _remember_skipped(self, start: int, end: int) -> None:
        spans = self._skipped
        if spans and spans[-1][1] == start:
            start = spans.pop()[0]
        spans.append((start, end))

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
            start = self.next_id
            for event_id in below:
                if event_id > start:
                    self._remember_skipped(start, event_id)
                start = event_id + 1
            if start < floor:
                self._remember_skipped(start, floor)
            self.next_id = floor
            horizon = floor - SKIP_MEMORY
            forget = bisect_right(self._skipped, horizon, key=lambda span: span[1])
            if forget:
                del self._skipped[:forget]
            for event_id in below:
                payload, cost = self._complete.pop(event_id)
                self._buffered_bytes -= cost
                yield payload
        while self.next_id in self._complete:
            payload, cost = self._complete.pop(self.next_id)
            self._buffered_bytes -= cost
            self.next_id += 1
            yield payload
