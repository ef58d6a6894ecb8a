"""State synchronisation: which bytes of the game state each client needs, and their reassembly.

The server knows, from the client's ``STATE_REPORT`` messages, the newest state the client has
applied (its *base*). Each flush sends the client the delta from its base to the current state;
deltas are idempotent, so a lost packet costs nothing but the wait for the next one. A client that
has no state yet, or whose base is older than the store's update cache reaches, gets the full
state as a baseline.

:class:`PayloadCache` encodes each distinct payload once per state version and hands the same
bytes to every client on the same base. A payload of more than a few datagrams becomes a
*transfer*: its fragments are tracked, acknowledged one by one through packet acks and resent until
the client has them all, so even a large state gets through heavy loss instead of being superseded
forever. Delta transfers are pipelined: while one is on its way, the next tick's starts (up to
:data:`TRANSFERS_IN_FLIGHT`), so a client on a long round trip still gets every tick's state
rather than one per round trip; a baseline goes alone.

Sans-IO: no sockets, no clock reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pygase_core.errors import PayloadTooLargeError, ProtocolError
from pygase_core.model import codec
from pygase_core.model.codec import TO_DELETE
from pygase_core.model.gamestate import GameState, GameStateUpdate
from pygase_core.model.precision import Precision
from pygase_core.model.store import (
    BASE_VERSIONS,
    DIFFERENCES_KEY,
    GameStateStore,
    encode_changes,
)
from pygase_core.protocol.budget import BandwidthBudget
from pygase_core.protocol.packets import (
    FULL_STATE,
    MAX_FRAGMENT_DATA,
    MAX_FRAGMENTS,
    NO_STATE,
    StateFragment,
    encode_state_fragment,
    split_payload,
)
from pygase_core.protocol.reliable import resend_timeout

DEFAULT_MAX_STATE_SIZE = 1 << 20
"""Largest encoded state or delta, in bytes (1 MiB)."""
FRAGMENTS_PER_FLUSH = 32
"""How many fragments of a large transfer go out in one flush (about 37 kB)."""
UNPINNED_FRAGMENTS = 4
"""Deltas of up to this many fragments are sent whole each flush, untracked: the next one
supersedes a lost one. Larger deltas and baselines are transfers, tracked until acked, so they
get through heavy loss fragment by fragment."""
MAX_PARTIAL_PAYLOADS = 8
"""How many payloads a client reassembles at once (the newest kept)."""
TRANSFERS_IN_FLIGHT = MAX_PARTIAL_PAYLOADS
"""How many delta transfers may be on their way to one client at once: as many as it
reassembles. Each flush with a new state starts the next one while the newest has all its
fragments out and none overdue, so a client whose round trip (plus its ack delay) spans several
ticks still gets a state a tick (eight cover 160 ms at 50 Hz). Any of them completing
supersedes the older ones."""


@dataclass(frozen=True)
class StatePayload:
    """One encoded payload, cut into ready-to-send ``STATE_FRAGMENT`` messages."""

    base: int
    target: int
    messages: tuple[bytes, ...]


def encode_full_state(state: GameState, precision: Precision | None = None) -> bytes:
    """The baseline payload: status and every attribute (and the precision declaration, if any).

    The declaration travels with every baseline, so a client decodes the deltas that follow
    with the very steps the server quantized with.
    """
    if precision is None:
        return codec.pack([int(state.game_status), state.to_dict()])
    attributes = precision.to_wire(state.to_dict())
    return codec.pack([int(state.game_status), attributes, precision.describe()], wire=True)


def encode_delta(update: GameStateUpdate, precision: Precision | None = None) -> bytes:
    """The delta payload: the combined changes (declared floats as small ints).

    Declared floats are their absolute step counts here; a server sends most deltas as
    differences instead (:func:`~pygase_core.model.store.encode_differences`).
    """
    return encode_changes(update.changes, precision)


LEFT_KEY = "_left"
"""The wire key of a delta listing entries that left the client's view (see
:mod:`pygase_core.protocol.viewsync`); no game attribute can have this name."""


class StateOverMaximum(ProtocolError):
    """A state payload larger than the receiving client's ``max_state_size`` allows.

    Not necessarily a hostile server: the two ends may simply be configured apart. The client
    refuses the fragments (they are never acknowledged) and says so once.
    """


class UnknownBase(Exception):
    """A delta of differences from a version whose declared values the client no longer has.

    Not a fault of the server: the client dropped the delta; the next one, from the newer base
    the client reports, applies.
    """


class StateDecoder:
    """Client side: turns payloads back into states and updates, with the server's precision.

    The precision declaration arrives with each baseline and applies to the deltas after it.
    Under a declared step, the decoder also keeps the declared values of the latest
    :data:`~pygase_core.model.store.BASE_VERSIONS` versions applied (:meth:`remember`): a delta
    carries such floats as differences from its base version, resolved against them.
    """

    def __init__(self) -> None:
        self.precision: Precision | None = None
        """The declaration of the latest baseline (None: float64 everywhere)."""
        self._bases: dict[int, dict[str, Any]] = {}
        self.left: list[tuple[str, Any]] = []
        """The entries the latest delta removes because they left the view (attribute, key)."""

    def decode(self, base: int, target: int, payload: bytes) -> GameState | GameStateUpdate:
        """Turn a received payload back into a state (baseline) or an update (delta).

        Raises:
            ProtocolError: for a payload that does not decode to a state or a delta.
        """
        data = codec.unpack(payload)
        self.left = []
        try:
            if base == FULL_STATE:
                if not isinstance(data, list) or not 2 <= len(data) <= 4:
                    raise ProtocolError(
                        "a baseline is not [status, attributes(, precision(, left))]"
                    )
                status, attributes = data[0], data[1]
                if not isinstance(attributes, dict) or not all(
                    isinstance(k, str) for k in attributes
                ):
                    raise ProtocolError("baseline attributes are not a dict of names")
                described = data[2] if len(data) >= 3 else None
                precision = None if described is None else Precision.from_description(described)
                if precision is not None:
                    attributes = precision.from_wire(attributes)
                state = GameState(time_order=target, game_status=status, **attributes)
                if len(data) == 4:
                    self._removals({}, data[3])  # (only noted: the baseline replaces the state)
                if precision != self.precision:
                    self._bases.clear()
                self.precision = precision
                return state
            if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
                raise ProtocolError("delta is not a dict of names")
            if type(data.get("game_status", 0)) is not int:
                raise ProtocolError("delta with a game status that is not an int")
            left = data.pop(LEFT_KEY, None)
            if left is not None:
                self._removals(data, left)
            differences = data.pop(DIFFERENCES_KEY, None)
            if differences is not None:
                if differences != 1 or type(differences) is not int or self.precision is None:
                    raise ProtocolError("a delta of differences without a declared precision")
                values = self._bases.get(base)
                if values is None:
                    raise UnknownBase(base)
                data = self.precision.from_wire_differences(data, values)
            elif self.precision is not None:
                data = self.precision.from_wire(data)
            # codec.unpack already refused anything a game value cannot be, and the decoded
            # dict belongs to nobody else: no need to validate or copy it again (the hot path
            # of a client).
            return GameStateUpdate.prechecked(target, data)
        except ProtocolError:
            raise
        except (TypeError, ValueError) as error:
            raise ProtocolError(f"undecodable state payload: {error}") from None


    def remember(self, state: GameState) -> None:
        """Keep the declared values of ``state``, just applied, for deltas from its version."""
        precision = self.precision
        if precision is None or not precision.has_steps:
            return
        bases = self._bases
        bases[state.time_order] = precision.declared_copy(state.to_dict())
        while len(bases) > BASE_VERSIONS:
            del bases[min(bases)]

    def _removals(self, data: dict[str, Any], left: object) -> None:
        """Turn the listed entries that left the view into removals, and remember them."""
        if not isinstance(left, list):
            raise ProtocolError("malformed list of entries that left the view")
        for item in left:
            if not (
                isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                and not item[0].startswith("_") and isinstance(item[1], list)
            ):
                raise ProtocolError("malformed list of entries that left the view")
            name, keys = item
            changes = data.setdefault(name, {})
            if type(changes) is not dict:
                raise ProtocolError("entries left the view of an attribute that was replaced")
            for key in keys:
                if not isinstance(key, str | int) or isinstance(key, bool):
                    raise ProtocolError("an entry that left the view has a key of no dict")
                changes[key] = TO_DELETE
                self.left.append((name, key))


def decode_state_payload(base: int, target: int, payload: bytes) -> GameState | GameStateUpdate:
    """Turn a received payload of a server without declared precision into a state or update."""
    return StateDecoder().decode(base, target, payload)


def _fragment(base: int, target: int, payload: bytes, max_size: int) -> StatePayload:
    if len(payload) > max_size:
        raise PayloadTooLargeError(
            f"the game state encodes to {len(payload)} bytes, over the maximum of {max_size}"
            " (raise max_state_size on the Server and Client)"
        )
    if len(payload) <= MAX_FRAGMENT_DATA:  # most per-client deltas: no splitting to do
        return StatePayload(base, target, (encode_state_fragment(base, target, 0, 1, payload),))
    pieces = split_payload(payload, MAX_FRAGMENT_DATA)
    if len(pieces) > MAX_FRAGMENTS:
        raise PayloadTooLargeError(f"the game state needs {len(pieces)} fragments")
    count = len(pieces)
    messages = tuple(
        encode_state_fragment(base, target, i, count, piece) for i, piece in enumerate(pieces)
    )
    return StatePayload(base, target, messages)


class PayloadCache:
    """Encodes each payload once per state version, shared by all connections of a server."""

    def __init__(self, store: GameStateStore, max_state_size: int = DEFAULT_MAX_STATE_SIZE):
        self._store = store
        self.max_state_size = max_state_size
        self._time_order: int | None = None
        self._payloads: dict[int, StatePayload] = {}
        self._oversize: set[int] = set()
        self.oversize: PayloadTooLargeError | None = None
        """The latest payload that could not be sent because it was too large (until taken)."""
        self.encodings = 0

    @property
    def time_order(self) -> int:
        """The store's current time_order."""
        return self._store.time_order

    @property
    def store(self) -> GameStateStore:
        """The store whose state this cache encodes."""
        return self._store

    def payload_for(self, base: int) -> StatePayload | None:
        """The payload that takes a client at ``base`` (or :data:`NO_STATE`) to now.

        None if that payload is over the maximum size: then the client keeps what it has, and
        :attr:`oversize` holds the error (logged once per state version by the server).
        """
        current = self._store.time_order
        if current != self._time_order:
            self._payloads.clear()
            self._oversize.clear()
            self._time_order = current
        cached = self._payloads.get(base)
        if cached is not None:
            return cached
        if base in self._oversize:
            return None
        try:
            return self._encode(base)
        except PayloadTooLargeError as error:
            self._oversize.add(base)
            self.oversize = error
            return None

    def _encode(self, base: int) -> StatePayload:
        # Encoded by the store under its lock; a push's own encoding for a client one behind.
        encoded = None if base == NO_STATE else self._store.encoded_differences_since(base)
        if encoded is None:
            payload = self._payloads.get(FULL_STATE)
            if payload is None:
                if FULL_STATE in self._oversize and self.oversize is not None:
                    raise self.oversize
                self._oversize.add(FULL_STATE)  # until it proves to fit
                snapshot = self._store.snapshot()
                raw = encode_full_state(snapshot, self._store.precision)
                payload = _fragment(FULL_STATE, snapshot.time_order, raw, self.max_state_size)
                self._oversize.discard(FULL_STATE)
                self.encodings += 1
                self._payloads[FULL_STATE] = payload
        else:
            target, raw = encoded
            payload = _fragment(base, target, raw, self.max_state_size)
            self.encodings += 1
        self._payloads[base] = payload
        return payload


@dataclass(eq=False)
class _Transfer:
    payload: StatePayload
    unacked: set[int] = field(default_factory=set)
    sent_at: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.unacked = set(range(len(self.payload.messages)))

    def due(self, index: int, now: float, timeout: float) -> bool:
        """Whether unacknowledged fragment ``index`` waits for its first send, or a resend."""
        sent = self.sent_at.get(index)
        return sent is None or now - sent >= timeout

    def overdue(self, now: float, timeout: float) -> bool:
        """Whether any fragment is due."""
        return any(self.due(index, now, timeout) for index in self.unacked)


@dataclass(frozen=True)
class TransferRef:
    """Recorded in a sent packet, so its ack acknowledges one fragment of a transfer."""

    transfer: _Transfer
    index: int

    def acknowledge(self) -> None:
        """The packet that carried this fragment arrived."""
        self.transfer.unacked.discard(self.index)


class StateSender:
    """Server side, per connection: what the client has, and what to send it next."""

    def __init__(self, budget: BandwidthBudget | None = None) -> None:
        self.client_time_order: int | None = None
        self._transfers: list[_Transfer] = []
        """The transfers on their way, oldest first."""
        self.budget = budget
        """The connection's bandwidth budget for state (None: unlimited)."""
        self.sending_target: int | None = None
        """The state the client has or is being sent by the last flush (None: none yet); what
        the flush's ``INPUT_ACK`` speaks of."""

    def on_report(self, time_order: int) -> None:
        """The client says it has applied ``time_order``.

        A lying client can only claim to be further than it is, which starves nobody but itself.
        """
        if time_order == NO_STATE:
            return
        if self.client_time_order is None or time_order > self.client_time_order:
            self.client_time_order = time_order

    def up_to_date(self, current: int) -> bool:
        """Whether the client already has the current state."""
        return self.client_time_order is not None and self.client_time_order >= current

    def messages(
        self, cache: PayloadCache, now: float, rtt: float | None
    ) -> Iterator[tuple[TransferRef | None, bytes]]:
        """The state messages for this flush, each with the ref to record for its ack."""
        self.sending_target = self.client_time_order
        if self.up_to_date(cache.time_order):
            self._transfers.clear()
            return
        budget = self.budget
        if budget is not None and not budget.open(now):
            budget.deferred += 1  # the client keeps its state; a later delta catches it up
            return
        has = self.client_time_order
        transfers = self._transfers = [
            transfer for transfer in self._transfers
            if transfer.unacked and (has is None or has < transfer.payload.target)
        ]
        timeout = resend_timeout(rtt)
        newest = transfers[-1] if transfers else None
        if newest is None or (
            newest.payload.target < cache.time_order
            and newest.payload.base != FULL_STATE
            and len(transfers) < TRANSFERS_IN_FLIGHT
            and not newest.overdue(now, timeout)
        ):
            payload = cache.payload_for(NO_STATE if has is None else has)
            if payload is not None and (newest is None or payload.target > newest.payload.target):
                self.sending_target = payload.target
                if len(payload.messages) == 1 or (
                    len(payload.messages) <= UNPINNED_FRAGMENTS and payload.base != FULL_STATE
                ):
                    # A small delta goes out whole with every flush; the next one supersedes it.
                    for message in payload.messages:
                        if budget is not None:
                            budget.spend(len(message))
                        yield None, message
                    return
                transfers.append(_Transfer(payload))
        if not transfers:
            return
        self.sending_target = transfers[-1].payload.target
        fragments = FRAGMENTS_PER_FLUSH
        for transfer in transfers:  # the oldest first: it has been out longest, nearest done
            for index in sorted(transfer.unacked):
                if not transfer.due(index, now, timeout):
                    continue
                transfer.sent_at[index] = now
                message = transfer.payload.messages[index]
                left = True if budget is None else budget.spend(len(message))
                yield TransferRef(transfer, index), message
                fragments -= 1
                if fragments == 0 or not left:
                    return


@dataclass
class _Partial:
    count: int
    pieces: dict[int, bytes] = field(default_factory=dict)


class StateReceiver:
    """Client side: reassembles state payloads, keeping only the few that can still apply."""

    def __init__(self, max_state_size: int = DEFAULT_MAX_STATE_SIZE) -> None:
        self.max_state_size = max_state_size
        self._partials: dict[tuple[int, int], _Partial] = {}

    def add(self, fragment: StateFragment, current: int | None) -> bytes | None:
        """Take a fragment; returns the whole payload once it is complete and still useful."""
        if current is not None and (
            fragment.target <= current or (fragment.base != FULL_STATE and fragment.base > current)
        ):
            return None
        if current is None and fragment.base != FULL_STATE:
            return None
        if fragment.count == 1:
            return fragment.data
        if fragment.count * MAX_FRAGMENT_DATA > self.max_state_size + MAX_FRAGMENT_DATA:
            raise StateOverMaximum(
                f"the server sends a state of {fragment.count} fragments (about"
                f" {fragment.count * MAX_FRAGMENT_DATA:,} bytes), over this client's"
                f" max_state_size of {self.max_state_size:,} bytes"
            )
        if len(fragment.data) > MAX_FRAGMENT_DATA:
            raise ProtocolError("state fragment larger than a fragment can be")
        key = (fragment.base, fragment.target)
        partial = self._partials.get(key)
        if partial is None:
            for stale in [k for k in self._partials if current is not None and k[1] <= current]:
                del self._partials[stale]
            while len(self._partials) >= MAX_PARTIAL_PAYLOADS:
                del self._partials[min(self._partials, key=lambda k: k[1])]
            partial = self._partials[key] = _Partial(fragment.count)
        elif partial.count != fragment.count:
            raise ProtocolError("inconsistent fragment count for one state payload")
        partial.pieces[fragment.index] = fragment.data
        if len(partial.pieces) < partial.count:
            return None
        del self._partials[key]
        return b"".join(partial.pieces[i] for i in range(partial.count))
