"""Tick-stamped player inputs: the client's redundant sending, the server's jitter buffer.

A game sends what the player does every tick as an *input* (``Client.send_input``), not as an
event: inputs are many, small and only useful for a moment, so they travel unreliably but
redundantly. Every client packet repeats each input the server has not acknowledged yet (up to
:data:`MAX_INPUTS_PER_PACKET`), so a lost datagram costs nothing: the next one carries the same
inputs again.

Input ticks count the client's inputs: consecutive integers, one per tick of the game's input
clock (:class:`InputClock`, paced by the server's tick interval). The server keeps each client's
inputs in an :class:`InputReceiver`, a small jitter buffer by tick, and its game loop takes at
most one input per client per step, in tick order (:meth:`InputReceiver.take`). Whatever a
client sends, it cannot be applied faster: inputs for ticks already passed, too far ahead, too
large or beyond the buffer are dropped and counted (:class:`InputStats`). A tick that never
arrived while a later one did is given up at once (counted as lost): with redundancy, a later
input arriving without an earlier one means the earlier one is not coming.

The server answers with ``INPUT_ACK`` messages: as of state ``time_order`` X, the last input
tick applied for this client is T. The client then knows which of its inputs the state it
applies already contains, which is what reconciliation replays from
(:mod:`pygase_core.model.prediction`).

Sans-IO: no sockets, no clock reads. :class:`InputReceiver` is filled on the network thread and
drained by the game loop's thread, so it holds a lock of its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from pygase_core.errors import ProtocolError
from pygase_core.model import codec
from pygase_core.protocol.packets import (
    INPUT_ENTRY_OVERHEAD,
    INPUT_HEADER_SIZE,
    MAX_INPUT_SPAN,
    InputEntry,
    encode_inputs,
)

DEFAULT_MAX_INPUT_SIZE = 128
"""Largest encoded input, in bytes: a few keys or a direction need far less."""
MAX_INPUTS_PER_PACKET = 32
"""How many unacknowledged inputs one packet repeats at most (the newest ones)."""
MAX_PENDING_INPUTS = 128
"""Inputs a client keeps for resending; older ones are forgotten (the server gave them up)."""
DEFAULT_MAX_BUFFERED = 16
"""Inputs the server buffers per client; beyond this the oldest is dropped, so a client's
inputs are never applied more than this many ticks after they arrived (a safety valve: the
client's pacing keeps an honest client's buffer far shallower, see :class:`InputClock`)."""
DEFAULT_MAX_AHEAD = 64
"""Inputs more than this many ticks after the last applied one are dropped (far-future ticks)."""
SLACK_WINDOW = 25
"""Steps over which the buffer's smallest depth (its *slack*) is measured: half a second."""
TARGET_SLACK = 1
"""Inputs the buffer should still hold at its emptiest moment: one spare absorbs the jitter
seen in the window without a step going without."""
SLOWER = 1.1
FASTER = 0.95
"""How much longer (shorter) a client's input ticks last while the server's buffer holds more
(less) slack than the target: its inputs drift back to arriving just in time, with no input
dropped and never more than one applied per step."""
_ACK_RECORDS = 64


@dataclass
class InputStats:
    """What became of one client's inputs on the server (counts since the session began).

    ``applied`` inputs reached the game; ``lost`` ticks never arrived while a later one did;
    ``duplicates`` are the normal redundant copies. The rest are dropped: ``late`` (for a tick
    already passed), ``too_far_ahead``, ``oversized``, ``undecodable`` and ``overflow`` (the
    buffer was full, so its oldest input went). ``underruns`` counts steps that found the
    buffer empty while inputs were flowing.
    """

    received: int = 0
    applied: int = 0
    lost: int = 0
    duplicates: int = 0
    late: int = 0
    too_far_ahead: int = 0
    oversized: int = 0
    undecodable: int = 0
    overflow: int = 0
    underruns: int = 0

    @property
    def dropped(self) -> int:
        """Inputs that arrived and were refused, for any reason but being a copy."""
        return self.late + self.too_far_ahead + self.oversized + self.undecodable + self.overflow


@dataclass(frozen=True)
class TakenInput:
    """One client's input for this step: its tick, its value, the state it saw."""

    tick: int
    value: Any
    view: int


class InputReceiver:
    """Server side, per connection: the jitter buffer of one client's inputs."""

    def __init__(
        self,
        max_size: int = DEFAULT_MAX_INPUT_SIZE,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        max_ahead: int = DEFAULT_MAX_AHEAD,
    ) -> None:
        self.max_size = max_size
        self.max_buffered = max_buffered
        self.max_ahead = max_ahead
        self.stats = InputStats()
        self._lock = threading.Lock()
        self._buffer: dict[int, tuple[Any, int]] = {}
        self._last_applied: int | None = None
        self._acks: deque[tuple[int, int]] = deque(maxlen=_ACK_RECORDS)
        self._window_steps = 0
        self._window_depth = 0
        self.slack: int | None = None
        """The buffer's smallest depth over the last window of steps (None: not measured
        yet): told to the client, which paces its inputs to keep it at :data:`TARGET_SLACK`."""

    @property
    def last_applied(self) -> int | None:
        """The last tick settled: handed to the game, or dropped from a full buffer (None:
        none yet). Inputs for it or earlier ticks are copies or too late."""
        return self._last_applied

    def receive(self, entries: tuple[InputEntry, ...]) -> None:
        """Take the inputs of one packet (network thread); refused ones are counted."""
        stats = self.stats
        with self._lock:
            for entry in entries:
                tick = entry.tick
                last = self._last_applied
                if last is not None and tick <= last:
                    stats.duplicates += 1  # (or late: both are copies of a settled tick)
                    continue
                if tick in self._buffer:
                    stats.duplicates += 1
                    continue
                stats.received += 1
                if len(entry.data) > self.max_size:
                    stats.oversized += 1
                    continue
                floor = last if last is not None else min(self._buffer, default=tick)
                if tick > floor + self.max_ahead:
                    stats.too_far_ahead += 1
                    continue
                try:
                    value = codec.unpack(entry.data)
                except ProtocolError:
                    stats.undecodable += 1
                    continue
                self._buffer[tick] = (value, entry.view)
                if len(self._buffer) > self.max_buffered:
                    oldest = min(self._buffer)
                    del self._buffer[oldest]
                    stats.overflow += 1
                    if last is not None and oldest > last + 1:
                        stats.lost += oldest - last - 1  # skipped over: they never came
                    self._last_applied = oldest if last is None or oldest > last else last

    def take(self) -> TakenInput | None:
        """The next input in tick order, for this step (game loop thread); None: none is here.

        At most one per call; a gap before the next buffered tick is given up (``lost``).
        """
        with self._lock:
            if self._last_applied is not None:
                self._measure()
            if not self._buffer:
                if self._last_applied is not None:
                    self.stats.underruns += 1
                return None
            tick = min(self._buffer)
            value, view = self._buffer.pop(tick)
            last = self._last_applied
            if last is not None and tick > last + 1:
                self.stats.lost += tick - last - 1
            self._last_applied = tick
            self.stats.applied += 1
            return TakenInput(tick, value, view)

    def _measure(self) -> None:
        """Track the buffer's smallest depth at the steps of the current window."""
        depth = len(self._buffer)
        if self._window_steps == 0 or depth < self._window_depth:
            self._window_depth = depth
        self._window_steps += 1
        if self._window_steps >= SLACK_WINDOW:
            self.slack = self._window_depth
            self._window_steps = 0

    def record_applied(self, time_order: int, tick: int) -> None:
        """States from ``time_order`` on contain this client's inputs up to ``tick``.

        Called by the game loop *before* it pushes the input's changes as ``time_order``, so
        that no state containing the input can be sent with an older acknowledgement, and again
        after, with the time_order the store then has: an input that changed nothing is
        contained in the state that was already there, and the client learns so without
        waiting for the next change.
        """
        with self._lock:
            acks = self._acks
            if acks and acks[-1][1] == tick:
                # Confirmed after the push: an input that changed nothing is in the state
                # that was already there.
                acks[-1] = (min(acks[-1][0], time_order), tick)
                return
            if acks and acks[-1][0] >= time_order:
                if acks[-1][0] == time_order:
                    acks.pop()
                else:
                    return  # a record for a newer state already says more
            acks.append((time_order, tick))

    def ack_for(self, time_order: int) -> int | None:
        """The last input tick applied as of state ``time_order`` (None: none yet)."""
        with self._lock:
            found = None
            for recorded, tick in self._acks:
                if recorded > time_order:
                    break
                found = tick
            return found


class InputSender:
    """Client side, per connection: the inputs the server has not acknowledged yet."""

    def __init__(self, max_pending: int = MAX_PENDING_INPUTS) -> None:
        self._pending: deque[InputEntry] = deque(maxlen=max_pending)
        self.acked: int | None = None
        """The last input tick the server said it applied (or gave up)."""
        self.slack: int | None = None
        """The server's last word on its buffer's slack (see :class:`InputClock`)."""
        self._acks: OrderedDict[int, int] = OrderedDict()
        self.sent = 0

    @property
    def pending(self) -> int:
        """Inputs not acknowledged yet."""
        return len(self._pending)

    def queue(self, tick: int, view: int, data: bytes) -> None:
        """Add the input of a new tick (ticks rise); it goes out with every packet until acked."""
        if self._pending and tick <= self._pending[-1].tick:
            raise ValueError("input ticks must rise")
        self._pending.append(InputEntry(tick, view, data))

    def on_ack(self, time_order: int, tick: int, slack: int | None = None) -> None:
        """The server applied our inputs up to ``tick`` as of state ``time_order``."""
        if slack is not None:
            self.slack = slack
        if self.acked is None or tick > self.acked:
            self.acked = tick
        pending = self._pending
        while pending and pending[0].tick <= tick:
            pending.popleft()
        acks = self._acks
        acks[time_order] = max(tick, acks.get(time_order, tick))
        while len(acks) > _ACK_RECORDS:
            acks.popitem(last=False)

    def ack_for(self, time_order: int) -> int | None:
        """The last input tick contained in state ``time_order``, as the server said."""
        exact = self._acks.get(time_order)
        if exact is not None:
            return exact
        older = [key for key in self._acks if key <= time_order]
        return self._acks[max(older)] if older else None

    def message(self, budget: int) -> bytes | None:
        """The ``INPUT`` message for the next packet: the newest pending inputs that fit."""
        pending = self._pending
        if not pending:
            return None
        chosen: list[InputEntry] = []
        size = INPUT_HEADER_SIZE
        newest = pending[-1].tick
        for entry in reversed(pending):
            if len(chosen) >= MAX_INPUTS_PER_PACKET or newest - entry.tick > MAX_INPUT_SPAN:
                break
            cost = INPUT_ENTRY_OVERHEAD + len(entry.data)
            if size + cost > budget:
                break
            chosen.append(entry)
            size += cost
        if not chosen:
            return None
        chosen.reverse()
        self.sent += 1
        return encode_inputs(chosen)


class InputClock:
    """Client side: which input tick a ``send_input`` call belongs to.

    The game calls ``send_input`` every frame; ticks last ``interval`` seconds (the server's
    tick). The first call in a tick starts that tick's input; further calls in the same tick
    start the next tick early if the value changed (so a key press is never held back), at most
    one tick ahead of the clock; otherwise they are not inputs of their own. Ticks are
    consecutive: after a pause the clock does not rush to catch up.

    The server says how much slack its buffer of our inputs has (its smallest depth over half a
    second): with more than :data:`TARGET_SLACK`, ticks last :data:`SLOWER` times as long, with
    none, :data:`FASTER` times, until the inputs arrive just in time again. Without that, every
    late packet would add a tick of delay for good. The step's ``dt`` stays ``interval``.
    """

    def __init__(self, interval: float) -> None:
        if not interval > 0:
            raise ValueError("the input interval must be positive")
        self.interval = interval
        self.tick = 0
        """The tick of the newest input (0: none yet)."""
        self._next_at: float | None = None
        self._last: Any = None

    def stamp(self, value: Any, now: float, slack: int | None = None) -> int | None:
        """The tick a value given now starts, or None if it does not start one.

        ``slack`` is the server's last word on its buffer (None: none yet).
        """
        interval = self.interval
        if slack is not None and slack > TARGET_SLACK:
            interval *= SLOWER
        elif slack == 0:
            interval *= FASTER
        next_at = self._next_at
        if next_at is None or now >= next_at:
            late = next_at is None or now >= next_at + interval
            base = now if late or next_at is None else next_at
            self._next_at = base + interval
        elif value != self._last and next_at - now < interval:
            self._next_at = next_at + interval
        else:
            return None
        self._last = value
        self.tick += 1
        return self.tick
