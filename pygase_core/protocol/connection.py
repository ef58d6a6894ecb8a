"""One pygase session as a sans-IO state machine: data packets in, data packets out.

A :class:`Connection` exists once the handshake is done (see
:mod:`pygase_core.protocol.endpoint`). It numbers and acknowledges packets, measures the link, runs
the event channel in both directions and, depending on its role, sends the game state (server) or
reassembles it (client). It never touches a socket or a clock: the owner passes ``now`` and moves
the bytes, asks :meth:`Connection.next_deadline` when to call :meth:`Connection.poll` again, and
receives small frozen notices describing what happened.

Event acknowledgements are timely: a connection that received a packet carrying event fragments
sends its next packet (which carries the acks) within :data:`MAX_ACK_DELAY`, or at once after
:data:`ACK_EVERY` such packets, so the peer's window keeps moving and no packet falls out of the
32-packet ack field unacknowledged. Any other packets go the same way: once
:data:`ACK_FIELD_MARGIN` have arrived since this end last sent, it sends its acks at once, so a
peer that sends many datagrams a tick (a large state, a fragment each) never sees them counted as
lost (nor resent, nor its link taken for congested) only because they outran the ack field
between two of this end's packets at its normal rate. What events a connection sent is
remembered per packet for the last :data:`LATE_ACK_PACKETS` packets, so even a late ack
completes its event.

An outage is not the end of a session. When nothing has arrived for ``silent_after`` seconds the
connection says :class:`PeerSilent` (once) and treats the peer as silent: it keeps probing, at
most every :data:`SILENT_PROBE_INTERVAL` seconds and without state, and its event channel spends
no retries and gives nothing up (see :mod:`pygase_core.protocol.reliable`). The next packet from
the peer says :class:`PeerBack` and makes every unacknowledged event fragment due at once. Only
``timeout`` seconds of silence end the session.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pygase_core.errors import PayloadTooLargeError, ProtocolError
from pygase_core.protocol.acks import (
    ACK_BITS,
    SEQUENCE_MODULO,
    CongestionControl,
    ConnectionStats,
    ReceiveWindow,
    SentBuffer,
    SentPacket,
)
from pygase_core.protocol.budget import BandwidthBudget
from pygase_core.protocol.eventwire import encode_event
from pygase_core.protocol.inputs import DEFAULT_MAX_INPUT_SIZE, InputReceiver, InputSender
from pygase_core.protocol.packets import (
    DATA_PACKET_OVERHEAD,
    EVENT_FLOOR_SIZE,
    EVENT_FRAGMENT_OVERHEAD,
    INPUT_ACK_SIZE,
    MAX_PLAIN_DATAGRAM,
    NO_STATE,
    STATE_REPORT_SIZE,
    Data,
    DisconnectReason,
    EventFloor,
    EventFragment,
    HostRole,
    InputAck,
    Inputs,
    StateFragment,
    StateReport,
    encode_data_header,
    encode_disconnect,
    encode_event_floor,
    encode_event_fragment,
    encode_host_role,
    encode_input_ack,
    encode_state_report,
    split_payload,
)
from pygase_core.protocol.reliable import EventReceiver, EventSender, FragmentRef
from pygase_core.protocol.statesync import (
    DEFAULT_MAX_STATE_SIZE,
    PayloadCache,
    StateOverMaximum,
    StateReceiver,
    StateSender,
    TransferRef,
)

MAX_EVENT_FRAGMENT_DATA = (
    MAX_PLAIN_DATAGRAM - DATA_PACKET_OVERHEAD - STATE_REPORT_SIZE - EVENT_FLOOR_SIZE
    - INPUT_ACK_SIZE - EVENT_FRAGMENT_OVERHEAD
)
DISCONNECT_REPEATS = 5
"""How many copies of a disconnect packet are sent, since nobody acknowledges it."""
ACK_EVERY = 4
"""After this many received packets with event fragments, the acks go out at once."""
MAX_ACK_DELAY = 0.01
"""Received event fragments are acknowledged at most this many seconds later."""
ACK_FIELD_MARGIN = ACK_BITS // 2
"""After this many received packets of any kind, the acks go out at once: half the ack field, so
the packets that follow before the acks arrive still fit in it."""
LATE_ACK_PACKETS = 4096
"""How many sent packets' event fragments are remembered for their acks, late ones included."""
SILENT_PROBE_INTERVAL = 0.25
"""While the peer is silent, a connection sends this often (or at its keep-alive interval, if
that is longer): a probe with acks and whatever events are due, but no state."""


def _acked_sequences(ack: int, ack_bits: int) -> Iterator[int]:
    """The sequences an ``ack``/``ack_bits`` pair acknowledges."""
    yield ack
    offset = 1
    while ack_bits:
        if ack_bits & 1:
            yield (ack - offset) % SEQUENCE_MODULO
        ack_bits >>= 1
        offset += 1


class Role(Enum):
    """Which end of a session a connection is."""

    CLIENT = "client"
    SERVER = "server"


@dataclass(frozen=True)
class ConnectionConfig:
    """Tunables of a session; the defaults suit a 50 Hz game on the internet."""

    timeout: float = 5.0
    """A connection that receives nothing for this long is closed (see ``Connection.timeout``)."""
    silent_after: float = 1.0
    """After this long without a packet the peer counts as silent (an outage, see the module
    docstring); the session lives on until ``timeout``."""
    keepalive_interval: float = 0.1
    """At least one packet goes out this often, so acks flow and the peer knows we are here."""
    client_send_interval: float = 1 / 30
    """How often a client sends (acks and its state report) when the link is good."""
    max_state_size: int = DEFAULT_MAX_STATE_SIZE
    max_event_size: int = DEFAULT_MAX_STATE_SIZE
    max_input_size: int = DEFAULT_MAX_INPUT_SIZE
    """Largest encoded input (see :mod:`pygase_core.protocol.inputs`), at most 255 bytes."""
    max_bandwidth: int | None = None
    """Server role: bytes of state per second each connection may be sent (None: no limit);
    see :mod:`pygase_core.protocol.budget`."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_input_size <= 255:
            raise ValueError("max_input_size must be from 1 to 255 bytes")
        for name in ("timeout", "silent_after", "keepalive_interval", "client_send_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        for name in ("max_state_size", "max_event_size"):
            if getattr(self, name) < 1024:
                raise ValueError(f"{name} must be at least 1024 bytes")
        if self.max_bandwidth is not None:
            BandwidthBudget(self.max_bandwidth)  # raises what is wrong with it

    def encode_event(
        self, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any], retries: int
    ) -> bytes:
        """Encode an event to send, checking everything the caller could have got wrong.

        Called by ``dispatch_event`` in the caller's thread, so the error names the caller's
        line rather than surfacing later in the I/O loop.
        """
        if isinstance(event_type, str) and event_type.startswith("\x00"):
            raise ValueError("event types starting with a NUL character are reserved for pygase")
        payload = encode_event(event_type, args, kwargs)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError("retries must be a non-negative int")
        if len(payload) > self.max_event_size:
            raise PayloadTooLargeError(
                f"event {event_type!r} encodes to {len(payload)} bytes, over the maximum of"
                f" {self.max_event_size}"
            )
        return payload


@dataclass(frozen=True)
class EventReceived:
    """A complete event arrived (in order, exactly once); ``payload`` is its encoding."""

    payload: bytes


@dataclass(frozen=True)
class EventAcknowledged:
    """Every fragment of an event we sent was acknowledged; ``token`` is what we queued with it."""

    token: object


class ControlToken:
    """The token of a control message: what it settles to concerns pygase, not the game."""

    __slots__ = ()


@dataclass(frozen=True)
class EventGivenUp:
    """The sender stopped trying to deliver an event we queued with ``token``.

    Emitted by :meth:`Connection.poll` at most once per event, no sooner than
    ``MIN_GIVE_UP_DELAY`` (1 s) after its first send and only once all its sends are spent
    (the exact rule is in :mod:`pygase_core.protocol.reliable`), never for an event acknowledged
    before and never while the peer is silent (an outage spends nothing: a give-up falling due
    then waits for :class:`PeerBack`); and by :meth:`Connection.abandon_events` for every event
    still pending when the session ends. A late ack may still follow it with
    :class:`EventAcknowledged` (the peer did get the event after all), so the edge can tell
    "gave up" from "was lost". Events queued with the token None report neither notice.
    """

    token: object


@dataclass(frozen=True)
class StateReceived:
    """A complete state payload arrived (client role): a baseline or a delta from ``base``."""

    base: int
    target: int
    payload: bytes


@dataclass(frozen=True)
class HostRoleChanged:
    """Client role: the server says this client now holds (or no longer holds) the host role."""

    is_host: bool


@dataclass(frozen=True)
class PacketRefused:
    """A packet broke the protocol part-way; it was not acknowledged, so the peer resends it.

    Events it completed before the fault are still reported, in order, before this.
    """

    reason: str
    state_over_maximum: bool = False
    """Whether the fault was a state larger than this end's ``max_state_size``."""


@dataclass(frozen=True)
class PeerSilent:
    """Nothing arrived from the peer for ``silent_after`` seconds: an outage, perhaps a new address.

    Said once per silence, by :meth:`Connection.poll`. The session goes on (probing at a
    backed-off rate, spending no event retries) until :class:`PeerBack` or, after ``timeout``,
    :class:`ConnectionClosed`.
    """


@dataclass(frozen=True)
class PeerBack:
    """A packet arrived from a silent peer: the session continues where it was.

    ``Connection.last_outage`` says how long the peer was silent.
    """


@dataclass(frozen=True)
class ConnectionClosed:
    """The session ended: the peer said so, or it went silent for too long."""

    reason: DisconnectReason


ConnectionNotice = (
    EventReceived | EventAcknowledged | EventGivenUp | StateReceived | ConnectionClosed
    | PacketRefused | HostRoleChanged | PeerSilent | PeerBack
)


@dataclass(frozen=True)
class HostRoleRef:
    """Recorded in a sent packet that told the client its host role; its ack settles the news."""

    is_host: bool


@dataclass
class _Outgoing:
    """Messages gathered for one flush, packed into as few datagrams as they fit."""

    header_room: int
    datagrams: list[tuple[list[bytes], list[object]]] = field(default_factory=list)
    _room: int = 0

    def add(self, message: bytes, ref: object | None) -> None:
        if not self.datagrams or len(message) > self._room:
            self.datagrams.append(([], []))
            self._room = MAX_PLAIN_DATAGRAM - self.header_room
        parts, refs = self.datagrams[-1]
        parts.append(message)
        self._room -= len(message)
        if ref is not None:
            refs.append(ref)


class Connection:
    """The protocol state of one session; see the module docstring."""

    def __init__(
        self,
        session_id: int,
        role: Role,
        now: float,
        config: ConnectionConfig | None = None,
    ) -> None:
        self.session_id = session_id
        self.role = role
        self.config = config or ConnectionConfig()
        self.stats = ConnectionStats()
        self.congestion = CongestionControl()
        self.closed: DisconnectReason | None = None
        self.timeout = self.config.timeout
        """Seconds of silence after which this session closes (a room may hold a seat longer)."""
        self.last_received = now
        self.last_sent = float("-inf")
        self.silent = False
        """Whether nothing arrived for ``config.silent_after`` seconds (see :class:`PeerSilent`)."""
        self.last_outage: float | None = None
        """How long the peer was silent before the last :class:`PeerBack` (None: never)."""
        self.held = False
        """While set, :meth:`poll` sends nothing (it still times out and notices silence): the
        server holds a session whose client moved to an address it has not proven yet."""
        self._flush_requested = False
        self.applied_time_order: int | None = None
        """Client role: the newest state time_order applied, reported to the server."""
        self._sequence = 0
        self._window = ReceiveWindow()
        self._sent = SentBuffer()
        self._events_out = EventSender(
            max_bytes_in_flight=2 * self.config.max_event_size,
            fragment_size=MAX_EVENT_FRAGMENT_DATA,
        )
        self._events_in = EventReceiver(self.config.max_event_size, MAX_EVENT_FRAGMENT_DATA)
        self._peer_floor = 0
        self._event_packets: OrderedDict[int, list[FragmentRef]] = OrderedDict()
        self._acks_owed = 0
        self._acks_owed_since: float | None = None
        self._received_since_sent = 0
        """Packets recorded (to be acknowledged) since this end last sent."""
        self.state_out = (
            StateSender(
                None if self.config.max_bandwidth is None
                else BandwidthBudget(self.config.max_bandwidth)
            )
            if role is Role.SERVER else None
        )
        self.state_in = StateReceiver(self.config.max_state_size) if role is Role.CLIENT else None
        self.inputs_out = InputSender() if role is Role.CLIENT else None
        """Client role: the inputs the server has not acknowledged, repeated in every packet."""
        self.inputs_in = (
            InputReceiver(self.config.max_input_size) if role is Role.SERVER else None
        )
        """Server role: this client's jitter buffer of inputs, drained by the game loop."""
        self._state_sent_for: int | None = None
        self.is_host = False
        """Whether the client of this session holds the host role (as the server last said)."""
        self._control_in_flight: set[ControlToken] = set()
        self._host_role_news = False

    # -- sending -------------------------------------------------------------------------------

    def set_host_role(self, is_host: bool) -> None:
        """Server role: tell the client it now holds (or lost) the host role.

        The news rides along every packet until one that carries it is acknowledged.
        """
        if is_host != self.is_host:
            self.is_host = is_host
            self._host_role_news = True

    def queue_event(self, payload: bytes, retries: int = 0, token: object = None) -> int:
        """Queue an encoded event; it goes out with the next flush. Returns its id."""
        if retries < 0:
            raise ValueError("retries must be zero or more")
        if len(payload) > self.config.max_event_size:
            raise PayloadTooLargeError(
                f"the event encodes to {len(payload)} bytes, over the maximum of"
                f" {self.config.max_event_size}"
            )
        fragments = split_payload(payload, MAX_EVENT_FRAGMENT_DATA)
        if isinstance(token, ControlToken):
            self._control_in_flight.add(token)
        return self._events_out.queue(fragments, retries, token)

    def queue_input(self, tick: int, view: int, data: bytes) -> None:
        """Client role: send an encoded input for ``tick`` (seen state ``view``) from now on.

        It rides along every packet until the server acknowledges it, and the next
        :meth:`poll` sends at once, so the input does not wait for the send interval.
        """
        if self.inputs_out is None:
            raise ValueError("only a client sends inputs")
        self.inputs_out.queue(tick, view, data)
        self._flush_requested = True

    @property
    def events_in_flight(self) -> int:
        """Events queued and not yet acknowledged or given up (sent or still waiting)."""
        return self._events_out.pending

    @property
    def game_events_in_flight(self) -> int:
        """:attr:`events_in_flight` without pygase's own control messages (room joins)."""
        return self._events_out.pending - len(self._control_in_flight)

    def _settle(self, token: object) -> None:
        if isinstance(token, ControlToken):
            self._control_in_flight.discard(token)

    @property
    def event_window(self) -> int:
        """The congestion window: how many event fragments may be in flight now."""
        return self._events_out.window

    @property
    def event_fragments_in_flight(self) -> int:
        """Event fragments sent and neither acknowledged nor spent (see reliable.py)."""
        return self._events_out.fragments_in_flight

    def abandon_events(self) -> list[EventGivenUp]:
        """Give up every pending event, for when the session ended (closed, timed out, shut down).

        Returns an :class:`EventGivenUp` for every event neither acknowledged nor given up yet
        (and for those given up whose notice was not reported yet), except events queued with
        the token None.
        """
        tokens = self._events_out.abandon()
        for token in tokens:
            self._settle(token)
        return [EventGivenUp(token) for token in tokens]

    def _given_up(self) -> list[ConnectionNotice]:
        tokens = self._events_out.take_given_up()
        for token in tokens:
            self._settle(token)
        return [EventGivenUp(token) for token in tokens]

    def request_flush(self) -> None:
        """Make the next :meth:`poll` send at once (the owner knows the peer waits for news)."""
        self._flush_requested = True

    def flush(self, now: float, cache: PayloadCache | None = None) -> list[bytes]:
        """Build the datagrams to send now: due events (paced), state (server role), acks."""
        fragments = [
            (encode_event_fragment(ref.event.event_id, ref.index, len(ref.event.fragments), data),
             ref)
            for ref, data in self._events_out.due(now, self.stats.rtt)
        ]
        prelude = encode_event_floor(self._events_out.floor)  # after due(): it may have risen
        state: list[tuple[TransferRef | None, bytes]] = []
        if self.role is Role.CLIENT:
            report = NO_STATE if self.applied_time_order is None else self.applied_time_order
            prelude = encode_state_report(report) + prelude
        elif self.state_out is not None:
            if cache is not None:
                self._state_sent_for = cache.time_order
                state = list(self.state_out.messages(cache, now, self.stats.rtt))
            prelude += self._input_ack()
        outgoing = _Outgoing(DATA_PACKET_OVERHEAD + len(prelude))
        inputs = self.inputs_out
        if inputs is not None:
            message = inputs.message(MAX_PLAIN_DATAGRAM - DATA_PACKET_OVERHEAD - len(prelude))
            if message is not None:
                outgoing.add(message, None)
        if self._host_role_news:
            outgoing.add(encode_host_role(self.is_host), HostRoleRef(self.is_host))
        for message, ref in fragments:
            outgoing.add(message, ref)
        for transfer_ref, message in state:
            outgoing.add(message, transfer_ref)
        if not outgoing.datagrams:
            outgoing.datagrams.append(([], []))
        datagrams = []
        ack, ack_bits = self._window.ack_fields()
        for parts, refs in outgoing.datagrams:
            sequence = self._sequence
            self._sequence = (sequence + 1) & 0xFFFF
            header = encode_data_header(self.session_id, sequence, ack, ack_bits)
            datagram = b"".join((header, prelude, *parts))
            events = [ref for ref in refs if isinstance(ref, FragmentRef)]
            others = [ref for ref in refs if not isinstance(ref, FragmentRef)] if events else refs
            self._remember_events(sequence, events)
            for packet in self._sent.add(sequence, SentPacket(now, len(datagram), others)):
                self.stats.add_delivery(lost=True, now=now)
                del packet
            self.stats.count_out(len(datagram), now)
            datagrams.append(datagram)
        self.last_sent = now
        self._acks_owed = 0
        self._acks_owed_since = None
        self._received_since_sent = 0
        self._flush_requested = False
        return datagrams

    def _input_ack(self) -> bytes:
        """Server role: the ``INPUT_ACK`` for the state this client has or is being sent."""
        receiver, sender = self.inputs_in, self.state_out
        if receiver is None or sender is None or receiver.last_applied is None:
            return b""
        target = sender.sending_target
        if target is None:
            return b""
        tick = receiver.ack_for(target)
        if tick is None:
            return b""
        slack = receiver.slack
        return encode_input_ack(target, tick, 255 if slack is None else min(slack, 254))

    def _remember_events(self, sequence: int, refs: list[FragmentRef]) -> None:
        """Keep a packet's event fragments, apart from the loss statistics' record of it, so
        that its ack counts however late it comes."""
        packets = self._event_packets
        packets.pop(sequence, None)  # a packet of 65536 sequences ago, long forgotten
        if refs:
            packets[sequence] = refs
            while len(packets) > LATE_ACK_PACKETS:
                packets.popitem(last=False)

    def close(self, reason: DisconnectReason) -> list[bytes]:
        """End the session from this side; returns the redundant disconnect datagrams."""
        self.closed = reason
        return [encode_disconnect(self.session_id, reason)] * DISCONNECT_REPEATS

    # -- timing --------------------------------------------------------------------------------

    def _send_interval(self) -> float:
        normal = self.config.client_send_interval if self.role is Role.CLIENT else 0.0
        return self.congestion.send_interval(normal)

    def _probe_interval(self) -> float:
        return max(self.config.keepalive_interval, SILENT_PROBE_INTERVAL)

    def next_deadline(self, cache: PayloadCache | None = None) -> float:
        """When :meth:`poll` should run next (it may be in the past: then at once)."""
        if self.held:
            if self.silent:
                return self.last_received + self.timeout
            return self.last_received + min(self.timeout, self.config.silent_after)
        if self._flush_requested:
            return float("-inf")
        if self.silent:
            # Probes only, at a backed-off rate, until the peer is back or the session times out.
            return min(
                self.last_sent + self._probe_interval(), self.last_received + self.timeout
            )
        deadline = min(
            self.last_sent + self.config.keepalive_interval,
            self.last_received + self.timeout,
            self.last_received + self.config.silent_after,
        )
        interval_end = self.last_sent + self._send_interval()
        if self.role is Role.CLIENT:
            deadline = min(deadline, interval_end)
        event_due = self._events_out.next_deadline(self.stats.rtt)
        if event_due is not None:
            deadline = min(deadline, event_due)
        if self._acks_owed_since is not None:
            if self._acks_owed >= ACK_EVERY:
                deadline = min(deadline, self.last_received)
            else:
                deadline = min(deadline, self._acks_owed_since + MAX_ACK_DELAY)
        if self._received_since_sent >= ACK_FIELD_MARGIN:
            deadline = min(deadline, self.last_received)
        if self.state_out is not None and cache is not None:
            current = cache.time_order
            if not self.state_out.up_to_date(current) and current != self._state_sent_for:
                deadline = min(deadline, interval_end)
        return deadline

    def poll(
        self, now: float, cache: PayloadCache | None = None
    ) -> tuple[list[bytes], list[ConnectionNotice]]:
        """Do what is due at ``now``: time out, count lost packets, send if it is time."""
        if self.closed is not None or now < self.next_deadline(cache):
            return [], []  # the common case on a busy server: not this connection's turn
        if now - self.last_received >= self.timeout:
            self.closed = DisconnectReason.TIMED_OUT
            return [], [ConnectionClosed(DisconnectReason.TIMED_OUT)]
        notices: list[ConnectionNotice] = []
        if not self.silent and now - self.last_received >= self.config.silent_after:
            self.silent = True
            self._events_out.peer_silent()
            notices.append(PeerSilent())
        if self.held:
            return [], notices + self._given_up()
        for _lost in self._sent.expire(now):
            self.stats.add_delivery(lost=True, now=now)
        self.congestion.update(self.stats, now)
        if self.silent:
            if now < self.last_sent + self._probe_interval() and not self._flush_requested:
                return [], notices + self._given_up()
            cache = None  # a probe: no state for a peer that may not be there
        datagrams = self.flush(now, cache)
        return datagrams, notices + self._given_up()

    # -- receiving -----------------------------------------------------------------------------

    def receive(self, packet: Data, size: int, now: float) -> list[ConnectionNotice]:
        """Process a data packet of this session (the caller checked session and address).

        A packet that breaks the protocol part-way ends the list with :class:`PacketRefused`
        (the caller counts it) and is not acknowledged, so the peer resends what it carried
        instead of taking it for delivered; events it completed before are still reported.
        """
        if self.closed is not None:
            return []
        if not self._window.is_new(packet.sequence):
            self.stats.packets_dropped += 1
            return []
        notices = self._given_up()
        heard_at = len(notices)
        try:
            carries_events, acknowledgeable = self._take_messages(packet, notices)
        except ProtocolError as error:
            self.stats.packets_dropped += 1
            notices.append(PacketRefused(str(error), isinstance(error, StateOverMaximum)))
            return notices
        if acknowledgeable:
            self._window.record(packet.sequence)  # only now: this is what acknowledges it
            self._received_since_sent += 1
            if carries_events:
                self._acks_owed += 1
                if self._acks_owed_since is None:
                    self._acks_owed_since = now
        self.stats.count_in(size, now)
        notices[heard_at:heard_at] = self.heard(now)
        for sent in self._sent.acknowledge(packet.ack, packet.ack_bits):
            self.stats.add_rtt_sample(now - sent.sent_at)
            self.stats.add_delivery(lost=False, now=now)
            for ref in sent.items:
                if isinstance(ref, TransferRef):
                    ref.acknowledge()
                elif isinstance(ref, HostRoleRef) and ref.is_host == self.is_host:
                    self._host_role_news = False
        for sequence in _acked_sequences(packet.ack, packet.ack_bits):
            refs = self._event_packets.pop(sequence, None)
            for fragment_ref in refs or ():
                token = self._events_out.acknowledge(fragment_ref)
                if token is not None:
                    self._settle(token)
                    notices.append(EventAcknowledged(token))
        notices.extend(
            EventReceived(payload) for payload in self._events_in.deliverable(self._peer_floor)
        )
        self.congestion.update(self.stats, now)
        return notices

    def heard(self, now: float) -> list[ConnectionNotice]:
        """Something genuine arrived from the peer (a data packet, or a proven resume).

        Returns ``[PeerBack()]`` if that ends a silence: then every unacknowledged event
        fragment is due at once (its backoff reset), so the session catches up within about a
        round trip, as the pacing allows.
        """
        was = self.last_received
        self.last_received = max(was, now)
        if not self.silent:
            return []
        self.silent = False
        self.last_outage = now - was
        self._events_out.peer_back(now)
        self._flush_requested = True  # the peer may be silent to us: tell it we are here
        return [PeerBack()]

    def _take_messages(self, packet: Data, notices: list[ConnectionNotice]) -> tuple[bool, bool]:
        """Take a packet's messages; returns whether it carried event fragments and whether it
        may be acknowledged (not if it carried a fragment of an event this end skipped)."""
        carries_events = False
        acknowledgeable = True
        for message in packet.messages:
            if isinstance(message, EventFragment):
                carries_events = True
                if not self._events_in.add_fragment(
                    message.event_id, message.index, message.count, message.data
                ):
                    acknowledgeable = False
            elif isinstance(message, EventFloor):
                # Settle what lies below the floor before the fragments that follow it: the
                # sender's window of ids in flight starts there.
                if message.event_id > self._peer_floor:
                    self._peer_floor = message.event_id
                    notices.extend(
                        EventReceived(payload)
                        for payload in self._events_in.deliverable(self._peer_floor)
                    )
            elif isinstance(message, StateFragment):
                if self.state_in is not None:
                    payload = self.state_in.add(message, self.applied_time_order)
                    if payload is not None:
                        notices.append(StateReceived(message.base, message.target, payload))
            elif isinstance(message, Inputs):
                if self.inputs_in is not None:
                    self.inputs_in.receive(message.entries)
            elif isinstance(message, InputAck):
                if self.inputs_out is not None:
                    slack = None if message.slack == 255 else message.slack
                    self.inputs_out.on_ack(message.time_order, message.tick, slack)
            elif isinstance(message, StateReport) and self.state_out is not None:
                self.state_out.on_report(message.time_order)
            elif (
                isinstance(message, HostRole)
                and self.role is Role.CLIENT
                and message.is_host != self.is_host
            ):
                self.is_host = message.is_host
                notices.append(HostRoleChanged(message.is_host))
        return carries_events, acknowledgeable

    def receive_disconnect(self, reason: DisconnectReason) -> list[ConnectionNotice]:
        """The peer ended the session (the caller checked session and address)."""
        if self.closed is not None:
            return []
        self.closed = reason
        return [ConnectionClosed(reason)]
