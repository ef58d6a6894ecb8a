"""Sequence numbers, acknowledgements, link statistics and congestion avoidance.

Every data packet carries a 16-bit sequence number, the newest sequence the sender has received
(``ack``) and a 32-bit bitfield of the 32 sequences before it. A packet is thus acknowledged many
times over, and acks survive heavy loss without ever being resent themselves. The sender keeps a
bounded record of what it sent so acks can be turned into round-trip samples and delivery notices.

Sans-IO: times are passed in as ``now`` (seconds on any monotonic clock).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

SEQUENCE_MODULO = 1 << 16
_HALF = SEQUENCE_MODULO // 2
ACK_BITS = 32
SENT_BUFFER_SIZE = 1024
"""How many sent packets are remembered; older ones count as lost when evicted."""
LOSS_TIMEOUT = 1.0
"""A packet unacknowledged after this many seconds counts as lost."""
LOSS_WINDOW = 2.0
"""Congestion control judges the loss of the packets settled (acknowledged or lost) in the
last this many seconds..."""
LOSS_WINDOW_PACKETS = 50
"""...and of at least this many packets, however long ago (fewer only at the start)."""
_LOSS_WINDOW_MAX = 1 << 14


class LossWindow:
    """The share of packets lost among those settled recently (see :data:`LOSS_WINDOW`).

    What congestion control goes by, rather than the smoothed :attr:`ConnectionStats.packet_loss`:
    that figure moves by a twentieth with every packet, so two losses close together on a link
    losing 3 % put it over 10 %; the more packets a connection sends, the shorter its memory.
    Fifty packets or two seconds, whichever is more, keep chance out of the verdict while a real
    change in the link still shows within a couple of seconds, at any packet rate.
    """

    def __init__(self) -> None:
        self._fates: deque[tuple[float, bool]] = deque()
        self._lost = 0

    def add(self, now: float, lost: bool) -> None:
        """One packet's fate settled at ``now``."""
        fates = self._fates
        fates.append((now, lost))
        self._lost += lost
        cutoff = now - LOSS_WINDOW
        while len(fates) > LOSS_WINDOW_PACKETS and (
            fates[0][0] < cutoff or len(fates) > _LOSS_WINDOW_MAX
        ):
            self._lost -= fates.popleft()[1]

    @property
    def share(self) -> float:
        """The lost share of the packets in the window (0 before any)."""
        return self._lost / len(self._fates) if self._fates else 0.0


def sequence_newer(a: int, b: int) -> bool:
    """Whether sequence ``a`` comes after ``b``, across wrap-around."""
    return a != b and ((a - b) % SEQUENCE_MODULO) < _HALF


def sequence_distance(newer: int, older: int) -> int:
    """How many steps ``newer`` is ahead of ``older`` (negative if it is behind)."""
    diff = (newer - older) % SEQUENCE_MODULO
    return diff - SEQUENCE_MODULO if diff >= _HALF else diff


class ReceiveWindow:
    """Which recent sequences arrived: feeds the ack fields and drops duplicates."""

    def __init__(self) -> None:
        self.latest: int | None = None
        self._bits = 0  # bit i set: sequence latest-1-i was received

    def is_new(self, sequence: int) -> bool:
        """Whether ``sequence`` would be accepted by :meth:`record` (nothing is changed)."""
        if self.latest is None:
            return True
        distance = sequence_distance(sequence, self.latest)
        if distance > 0:
            return True
        if distance == 0 or -distance > ACK_BITS:
            return False
        return not self._bits & (1 << (-distance - 1))

    def record(self, sequence: int) -> bool:
        """Mark ``sequence`` received; False if it is a duplicate or too old to tell."""
        if self.latest is None:
            self.latest = sequence
            return True
        distance = sequence_distance(sequence, self.latest)
        if distance > 0:
            self._bits = ((self._bits << distance) | (1 << (distance - 1))) & 0xFFFFFFFF
            if distance > ACK_BITS:
                self._bits = 0
            self.latest = sequence
            return True
        if distance == 0 or -distance > ACK_BITS:
            return False
        bit = 1 << (-distance - 1)
        if self._bits & bit:
            return False
        self._bits |= bit
        return True

    def ack_fields(self) -> tuple[int, int]:
        """The ``(ack, ack_bits)`` pair to put in the next outgoing packet."""
        if self.latest is None:
            return (SEQUENCE_MODULO - 1, 0)
        return (self.latest, self._bits)


@dataclass
class SentPacket:
    """What the sender remembers about one packet until it is acked or counted lost."""

    sent_at: float
    size: int
    items: list[object] = field(default_factory=list)


class SentBuffer:
    """Bounded record of unacknowledged packets, by sequence."""

    def __init__(self, capacity: int = SENT_BUFFER_SIZE) -> None:
        self._capacity = capacity
        self._packets: dict[int, SentPacket] = {}

    def add(self, sequence: int, packet: SentPacket) -> list[SentPacket]:
        """Remember a packet; returns the packets evicted to make room (they count as lost)."""
        evicted = []
        self._packets[sequence] = packet
        while len(self._packets) > self._capacity:
            oldest = next(iter(self._packets))
            evicted.append(self._packets.pop(oldest))
        return evicted

    def acknowledge(self, ack: int, ack_bits: int) -> Iterator[SentPacket]:
        """Yield (and forget) every remembered packet that ``ack``/``ack_bits`` acknowledges."""
        packet = self._packets.pop(ack, None)
        if packet is not None:
            yield packet
        bits = ack_bits
        offset = 1
        while bits:
            if bits & 1:
                packet = self._packets.pop((ack - offset) % SEQUENCE_MODULO, None)
                if packet is not None:
                    yield packet
            bits >>= 1
            offset += 1

    def expire(self, now: float, timeout: float = LOSS_TIMEOUT) -> list[SentPacket]:
        """Forget and return packets older than ``timeout``: they are lost."""
        lost = []
        for sequence, packet in list(self._packets.items()):
            if now - packet.sent_at < timeout:
                break
            lost.append(packet)
            del self._packets[sequence]
        return lost

    def __len__(self) -> int:
        return len(self._packets)


@dataclass
class ConnectionStats:
    """Live figures of one connection, the same on both ends.

    ``rtt`` is the smoothed round-trip time in seconds (None before the first sample),
    ``packet_loss`` the smoothed fraction of packets lost (0..1), ``kbps_in``/``kbps_out`` the
    kilobytes per second over the last second, the rest plain counters; ``recent_loss`` is the
    loss congestion control judges (see :class:`LossWindow`).
    """

    rtt: float | None = None
    packet_loss: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0
    packets_lost: int = 0
    packets_dropped: int = 0
    kbps_in: float = 0.0
    kbps_out: float = 0.0
    _window_start: float | None = field(default=None, repr=False)
    _window_bytes_in: int = field(default=0, repr=False)
    _window_bytes_out: int = field(default=0, repr=False)
    _loss_window: LossWindow = field(default_factory=LossWindow, repr=False)

    RTT_SMOOTHING = 0.1
    LOSS_SMOOTHING = 0.05

    def add_rtt_sample(self, sample: float) -> None:
        """Fold a round-trip sample into the smoothed RTT."""
        sample = max(sample, 0.0)
        if self.rtt is None:
            self.rtt = sample
        else:
            self.rtt += (sample - self.rtt) * self.RTT_SMOOTHING

    def add_delivery(self, lost: bool, now: float) -> None:
        """Fold one packet's fate, settled at ``now``, into the loss figures."""
        self.packet_loss += ((1.0 if lost else 0.0) - self.packet_loss) * self.LOSS_SMOOTHING
        if lost:
            self.packets_lost += 1
        self._loss_window.add(now, lost)

    @property
    def recent_loss(self) -> float:
        """The share of the recently settled packets that were lost (see :class:`LossWindow`)."""
        return self._loss_window.share

    def count_in(self, size: int, now: float) -> None:
        """Count a received datagram."""
        self.bytes_in += size
        self.packets_in += 1
        self._roll_window(now)

    def count_out(self, size: int, now: float) -> None:
        """Count a sent datagram."""
        self.bytes_out += size
        self.packets_out += 1
        self._roll_window(now)

    def _roll_window(self, now: float) -> None:
        if self._window_start is None:
            self._window_start = now
            self._window_bytes_in, self._window_bytes_out = self.bytes_in, self.bytes_out
            return
        elapsed = now - self._window_start
        if elapsed >= 1.0:
            self.kbps_in = (self.bytes_in - self._window_bytes_in) / elapsed / 1000.0
            self.kbps_out = (self.bytes_out - self._window_bytes_out) / elapsed / 1000.0
            self._window_start = now
            self._window_bytes_in, self._window_bytes_out = self.bytes_in, self.bytes_out


class CongestionControl:
    """Two-mode rate control after Glenn Fiedler's scheme.

    In good mode a connection sends at its normal rate. High RTT or loss switches it to bad mode,
    which stretches the send interval. It returns to good mode only after conditions have stayed
    good for a recovery period that doubles whenever good mode relapses quickly (1 s up to 60 s)
    and halves again after a long stretch of good mode.
    """

    RTT_THRESHOLD = 0.25
    LOSS_THRESHOLD = 0.1
    BAD_INTERVAL = 0.1
    MIN_RECOVERY = 1.0
    MAX_RECOVERY = 60.0

    def __init__(self) -> None:
        self.good = True
        self._recovery = self.MIN_RECOVERY
        self._since: float | None = None  # start of the current good stretch (either mode)
        self._mode_since: float | None = None

    def update(self, stats: ConnectionStats, now: float) -> None:
        """Re-evaluate the mode from the latest figures."""
        if self._mode_since is None:
            self._mode_since = now
        conditions_bad = (stats.rtt or 0.0) > self.RTT_THRESHOLD or (
            stats.recent_loss > self.LOSS_THRESHOLD
        )
        if conditions_bad:
            self._since = None
            if self.good:
                if now - self._mode_since < 10.0:
                    self._recovery = min(self._recovery * 2, self.MAX_RECOVERY)
                self.good = False
                self._mode_since = now
            return
        if self._since is None:
            self._since = now
        if self.good:
            if now - self._since >= 10.0 and self._recovery > self.MIN_RECOVERY:
                self._recovery = max(self._recovery / 2, self.MIN_RECOVERY)
                self._since = now
        elif now - self._since >= self._recovery:
            self.good = True
            self._mode_since = now

    def send_interval(self, normal: float) -> float:
        """The minimum time between packets for a connection whose normal interval is given."""
        return normal if self.good else max(normal, self.BAD_INTERVAL)
