"""State synchronisation through per-client views: each client's deltas carry what it sees.

A client's state is always the server's state *filtered by the client's view* as of the version
it last applied: the viewed dicts restricted to the entries it saw then, every private field of
others left out. The server remembers, per client, the :class:`~pygase_core.model.views.ViewState`
of every version it sent (a few dozen), so when the client reports version ``B`` the delta to
the current version ``T`` is exact:

* an entry it saw at ``B`` and sees now: the store's combined changes since ``B`` for that entry;
* an entry it sees now and did not at ``B``: the whole entry ("entering");
* an entry it saw at ``B`` and does not see now: removed, by ``TO_DELETE`` if the server deleted
  it, otherwise listed under the wire key ``"_left"`` (a name no game attribute can have), which
  the client turns into a removal and reports in ``Client.left_view``;
* everything outside the views: the combined changes, without other owners' private fields.

Applying it to the client's state at ``B`` gives the server's state at ``T`` filtered by the view
at ``T``; like every pygase delta it may be lost or repeated and a later one still converges.
A client whose ``B`` is unknown (too old, or its private-field owner changed) gets a filtered
baseline instead. Nothing outside a client's view is ever encoded into its payloads.

Encodings are shared: each entry's change (per base) and each entering entry (per version) is
packed once and joined into the payloads of every client that needs it; clients on the same base
with the same view (a grid cell, no private fields) share the very same payload. Sans-IO.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pygase_core.errors import PayloadTooLargeError
from pygase_core.model import codec
from pygase_core.model.codec import TO_DELETE, Overwrite
from pygase_core.model.gamestate import GameStateUpdate
from pygase_core.model.precision import Precision
from pygase_core.model.views import GridView, Key, ViewRules, ViewState
from pygase_core.protocol.budget import BandwidthBudget
from pygase_core.protocol.packets import FULL_STATE, NO_STATE
from pygase_core.protocol.statesync import LEFT_KEY, PayloadCache, StatePayload, _fragment

__all__ = ["LEFT_KEY", "ViewedWorld", "ViewerPayloads"]

HISTORY: Final = 64
"""How many sent versions' views a client's record keeps (an older base gets a baseline)."""
_MISSING: Final[Any] = object()


def _pairs_of(packed_map: bytes) -> bytes:
    """The packed pairs of a packed msgpack map, without its header."""
    first = packed_map[0]
    if first & 0xF0 == 0x80:
        return packed_map[1:]
    return packed_map[3:] if first == 0xDE else packed_map[5:]


def map_header(count: int) -> bytes:
    """The msgpack header of a map of ``count`` pairs (the pairs follow, packed one by one)."""
    if count < 16:
        return bytes((0x80 | count,))
    if count < 0x10000:
        return b"\xde" + count.to_bytes(2, "big")
    return b"\xdf" + count.to_bytes(4, "big")


class ViewedWorld:
    """The shared side of views for one store: per-version caches, one per server or room.

    Args:
        cache: the world's :class:`PayloadCache` (its store, maximum size and oversize report).
        rules: the view rules.
    """

    def __init__(self, cache: PayloadCache, rules: ViewRules) -> None:
        self.cache = cache
        self.store = cache.store
        self.rules = rules
        self._version: int | None = None
        self._cells: dict[int, dict[tuple[int, int], list[Key]]] = {}
        self._seen_cells: dict[tuple[int, tuple[int, int]], frozenset[Key]] = {}
        self._previous_cells: dict[tuple[int, tuple[int, int]], frozenset[Key]] = {}
        self._pairs: dict[tuple[Any, ...], bytes] = {}
        self._chunks: dict[tuple[Any, ...], tuple[int, bytes]] = {}
        self._payloads: dict[tuple[Any, ...], StatePayload] = {}
        self.encodings = 0
        """Payloads encoded (clients that share one count once)."""

    def viewer(
        self, who: Callable[[], Any], budget: BandwidthBudget | None = None
    ) -> ViewerPayloads:
        """The payloads of one client; ``who()`` is the viewer the rules are given.

        With the connection's ``budget``, entries entering the client's view are let in a
        burst's worth per version, in the order of their view's priority.
        """
        return ViewerPayloads(self, who, budget)

    # -- per version ------------------------------------------------------------------------------

    def at(self, version: int) -> None:
        """Start the caches of ``version`` afresh if it is a new one (under the store's lock)."""
        if version != self._version:
            self._version = version
            self._cells.clear()
            self._previous_cells = self._seen_cells
            self._seen_cells = {}
            self._pairs.clear()
            self._chunks.clear()
            self._payloads.clear()

    def _grid_visible(self, index: int, view: GridView, cell: tuple[int, int]) -> frozenset[Key]:
        seen = self._seen_cells.get((index, cell))
        if seen is not None:
            return seen
        cells = self._cells.get(index)
        if cells is None:
            entries = self.store.get_game_state().to_dict().get(view.path)
            cells = self._cells[index] = view.index(entries) if isinstance(entries, dict) else {}
        reach = view.reach
        x, y = cell
        keys: list[Key] = []
        for cx in range(x - reach, x + reach + 1):
            for cy in range(y - reach, y + reach + 1):
                keys.extend(cells.get((cx, cy), ()))
        seen = frozenset(keys)
        before = self._previous_cells.get((index, cell))
        if before is not None and before == seen:
            seen = before  # the same object as last version: views compare by identity first
        self._seen_cells[(index, cell)] = seen
        return seen

    def view_of(self, viewer: Any) -> ViewState:
        """What ``viewer`` sees of the current state (call under the store's lock)."""
        state = self.store.get_game_state()
        return self.rules.view_of(viewer, state.to_dict(), state, self._grid_visible)

    def admit(
        self,
        viewer: Any,
        view: ViewState,
        previous: ViewState | None,
        allowance: float,
        waiting: dict[tuple[int, Key], int],
        version: int,
    ) -> ViewState:
        """``view`` with only as many entering entries as ``allowance`` bytes carry, by priority.

        The entries that have waited longest go first (``waiting``: since which version each
        held-back entry waits, kept up to date here), then by their view's priority, so none
        waits for ever. What is left out enters in later versions; the client holds the state of
        the view this returns, so it stays exact meanwhile (its view only grows more slowly).
        """
        attributes = self.store.get_game_state().to_dict()
        visible = list(view.visible)
        owners = view.owners
        still: dict[tuple[int, Key], int] = {}
        for name, index in self.rules.paths.items():
            seen = visible[index]
            had = frozenset() if previous is None else previous.visible[index]
            entering = seen - had
            if not entering:
                continue
            entries = attributes.get(name)
            if not isinstance(entries, dict):
                continue
            ordered = self.rules.order(index, viewer, entries, entering)
            ordered.sort(key=lambda key: waiting.get((index, key), version))  # (stable)
            admitted: list[Key] = []
            private = self.rules.has_private(name)
            for key in ordered:
                owned = private and _owns(self.rules, name, key, owners)
                size = len(self._whole_pair(name, key, entries[key], owned, owners))
                if admitted and size > allowance:
                    break
                allowance -= size
                admitted.append(key)
            if len(admitted) < len(entering):
                visible[index] = (seen & had) | frozenset(admitted)
                for key in ordered[len(admitted):]:
                    still[(index, key)] = waiting.get((index, key), version)
        waiting.clear()
        waiting.update(still)
        return ViewState(tuple(visible), owners, view.centers)

    # -- encoding ---------------------------------------------------------------------------------

    def payload(
        self, base: int, span: Span | None, now: ViewState, version: int
    ) -> StatePayload:
        """The payload from ``base`` to ``version`` (seen as ``now``).

        ``span`` sums up what the client may have seen at any version it was sent from ``base``
        on (None: a baseline is needed).

        Raises:
            PayloadTooLargeError: if it encodes to more than the cache's maximum.
        """
        self.at(version)
        delta = None
        if span is not None and span.owners_agree and base != NO_STATE:
            delta = self.store.changes_since(base)
        if delta is not None and span is not None:
            key: tuple[Any, ...] = (base, span, now)
            cached = self._payloads.get(key)
            if cached is not None:
                return cached
            raw = self._delta(delta, base, span, now)
            if raw is not None:
                payload = _fragment(base, version, raw, self.cache.max_state_size)
                self.encodings += 1
                self._payloads[key] = payload
                return payload
        maybe = None if span is None else span.maybe
        key = (FULL_STATE, now, maybe)
        cached = self._payloads.get(key)
        if cached is None:
            raw = self._baseline(now, maybe)
            cached = _fragment(FULL_STATE, version, raw, self.cache.max_state_size)
            self.encodings += 1
            self._payloads[key] = cached
        return cached

    def _pack_at(self, path: tuple[Any, ...], value: Any) -> bytes:
        precision: Precision | None = self.store.precision
        if precision is None or path[0] == "game_status":
            return codec.pack(value)
        return codec.pack(precision.to_wire_at(path, value), wire=True)

    def _entry_pair(
        self, cache_key: tuple[Any, ...], name: str, key: Key, value: Any, owners: tuple[Any, ...]
    ) -> bytes:
        pair = self._pairs.get(cache_key)
        if pair is None:
            value = self.rules.strip_entry(name, key, value, owners)
            pair = self._pairs[cache_key] = codec.pack(key) + self._pack_at((name, key), value)
        return pair

    def _delta(
        self, delta: GameStateUpdate, base: int, span: Span, now: ViewState
    ) -> bytes | None:
        """The client's delta, or None when only a baseline can say it."""
        rules = self.rules
        changes = delta.changes
        attributes = self.store.get_game_state().to_dict()
        pairs: list[bytes] = []
        for name, value in changes.items():
            if name in rules.paths:
                continue
            mine = rules.owners_for(name, now.owners)
            cache_key = (base, name, mine)
            pair = self._pairs.get(cache_key)
            if pair is None:
                stripped = rules.strip(name, value, now.owners)
                pair = self._pairs[cache_key] = codec.pack(name) + self._pack_at((name,), stripped)
            pairs.append(pair)
        left: list[list[Any]] = []
        for name, index in rules.paths.items():
            change: Any = changes.get(name, _MISSING)
            if change is not _MISSING and type(change) is not dict:
                return None  # the whole dict was replaced or deleted: a baseline says it
            entries = attributes.get(name)
            if not isinstance(entries, dict):
                entries = {}
            seen, kept, maybe = now.visible[index], span.kept[index], span.maybe[index]
            private = rules.has_private(name)
            inner: list[bytes] = []
            extra = 0  # pairs in the shared cell chunks beyond one each
            # Seen throughout: the client has the entry, whatever version it is at: the changes.
            if change is not _MISSING:
                changed: dict[Any, Any] = change
                steady = kept & seen
                center = now.centers[index] if now.centers else None
                if center is not None and not private:
                    # A grid: whole cells the client saw throughout share one encoding.
                    count, chunks, steady = self._cell_chunks(
                        index, name, center, changed, base, kept, seen, steady)
                    if count:
                        inner.append(chunks)
                        extra += count - 1
                for key in (changed.keys() & steady if len(changed) < len(steady) else steady):
                    entry = changed.get(key, _MISSING)
                    if entry is not _MISSING:
                        owned = private and _owns(rules, name, key, now.owners)
                        inner.append(self._entry_pair(
                            (base, name, key, owned), name, key, entry, now.owners))
            # Seen now, not throughout: the client may lack it, or hold it from an older view.
            for key in seen - kept:
                owned = private and _owns(rules, name, key, now.owners)
                inner.append(self._whole_pair(name, key, entries[key], owned, now.owners))
            # Perhaps seen before, not now: removed (deleted, or listed as left).
            gone: list[Key] = []
            for key in maybe - seen:
                if key in entries:
                    gone.append(key)
                else:
                    inner.append(codec.pack(key) + codec.pack(TO_DELETE))
            if inner:
                pairs.append(
                    codec.pack(name) + map_header(len(inner) + extra) + b"".join(inner)
                )
            if gone:
                left.append([name, gone])
        if left:
            pairs.append(codec.pack(LEFT_KEY) + codec.pack(left))
        return map_header(len(pairs)) + b"".join(pairs)

    def _cell_chunks(
        self,
        index: int,
        name: str,
        center: tuple[int, int],
        changed: dict[Any, Any],
        base: int,
        kept: frozenset[Key],
        seen: frozenset[Key],
        steady: frozenset[Key],
    ) -> tuple[int, bytes, frozenset[Key]]:
        """The changes of the cells around ``center`` that the client saw throughout, packed
        once per base and cell for every client; and the steady keys left to do one by one."""
        view = self.rules.views[index]
        assert isinstance(view, GridView)
        cells = self._cells.get(index, {})
        reach = view.reach
        x, y = center
        count = 0
        parts: list[bytes] = []
        done: list[Key] = []
        for cx in range(x - reach, x + reach + 1):
            for cy in range(y - reach, y + reach + 1):
                keys = cells.get((cx, cy))
                if not keys or not (kept.issuperset(keys) and seen.issuperset(keys)):
                    continue
                chunk = self._chunks.get((base, index, cx, cy))
                if chunk is None:
                    pairs = {key: changed[key] for key in keys if key in changed}
                    packed = self._pack_at((name,), pairs) if pairs else b"\x80"
                    chunk = self._chunks[(base, index, cx, cy)] = (len(pairs), _pairs_of(packed))
                count += chunk[0]
                parts.append(chunk[1])
                done.extend(keys)
        return count, b"".join(parts), steady.difference(done) if done else steady

    def _whole_pair(
        self, name: str, key: Key, entry: Any, owned: Any, owners: tuple[Any, ...]
    ) -> bytes:
        """An entering entry: replaces whatever the client holds (an overwrite, for a dict)."""
        cache_key = (FULL_STATE, name, key, owned)
        pair = self._pairs.get(cache_key)
        if pair is None:
            if isinstance(entry, dict):
                entry = Overwrite(entry)
            entry = self.rules.strip_entry(name, key, entry, owners)
            pair = self._pairs[cache_key] = codec.pack(key) + self._pack_at((name, key), entry)
        return pair

    def _baseline(self, now: ViewState, maybe: tuple[frozenset[Key], ...] | None) -> bytes:
        """The client's whole view; ``maybe``: what it may hold, to list what left its view."""
        rules = self.rules
        state = self.store.get_game_state()
        attributes: dict[str, Any] = {}
        left: list[list[Any]] = []
        for name, value in state.to_dict().items():
            index = rules.paths.get(name)
            if index is not None and not isinstance(value, dict):
                continue  # a view shows entries of a dict: of anything else, nothing
            if index is not None:
                seen = now.visible[index]
                if maybe is not None:
                    gone = [key for key in maybe[index] - seen if key in value]
                    if gone:
                        left.append([name, gone])
                value = {
                    key: rules.strip_entry(name, key, entry, now.owners)
                    for key, entry in value.items()
                    if key in seen
                }
            else:
                value = rules.strip(name, value, now.owners)
            attributes[name] = value
        precision = self.store.precision
        status = int(state.game_status)
        if precision is None:
            if left:
                return codec.pack([status, attributes, None, left])
            return codec.pack([status, attributes])
        wire = precision.to_wire(attributes)
        parts = [status, wire, precision.describe(), *([left] if left else [])]
        return codec.pack(parts, wire=True)


@dataclass(frozen=True)
class Span:
    """What a client may hold of each view, at whichever version from its base on it is at."""

    kept: tuple[frozenset[Key], ...]
    """Per view, the entries it saw at every such version: it holds them for sure."""
    maybe: tuple[frozenset[Key], ...]
    """Per view, the entries it saw at some such version: it may hold them."""
    owners_agree: bool = True
    """Whether the owners of private fields were the same at all those versions and now
    (otherwise only a baseline can say which private fields it holds)."""


def span_of(views: list[ViewState], now: ViewState) -> Span:
    """Sum up the views a client was sent from its base on, and the view it gets now."""
    first = views[0]
    agree = all(view.owners == now.owners for view in views)
    if len(views) == 1:
        return Span(first.visible, first.visible, agree)
    kept, maybe = [], []
    for index, seen in enumerate(first.visible):
        lowest = highest = seen
        for view in views[1:]:
            other = view.visible[index]
            if other is not seen and other != seen:
                lowest = lowest & other
                highest = highest | other
        kept.append(lowest)
        maybe.append(highest)
    return Span(tuple(kept), tuple(maybe), agree)


def _owns(rules: ViewRules, name: str, key: Key, owners: tuple[Any, ...]) -> tuple[bool, ...]:
    """Which of the private fields of ``name`` the viewer owns in entry ``key`` (a cache key)."""
    return tuple(owner == key for owner in rules.owners_for(name, owners))


class ViewerPayloads(PayloadCache):
    """One client's payloads: a :class:`PayloadCache` whose payloads follow the client's view.

    The server's endpoint sends a session from this (``Session.cache``) as from a shared cache;
    :attr:`oversize` stays None, since the world's cache reports a payload too large to send.
    """

    def __init__(
        self, world: ViewedWorld, who: Callable[[], Any], budget: BandwidthBudget | None = None
    ) -> None:
        super().__init__(world.store, world.cache.max_state_size)
        self.world = world
        self.who = who
        self.budget = budget
        self.oversize: PayloadTooLargeError | None = None
        self._history: OrderedDict[int, ViewState] = OrderedDict()
        self._waiting: dict[tuple[int, Key], int] = {}
        """Entries a budget holds back from entering this client's view, since which version."""
        self._version: int | None = None
        self._sent: dict[int, StatePayload | None] = {}

    @property
    def time_order(self) -> int:
        """The store's current time_order."""
        return self.world.store.time_order

    def payload_for(self, base: int) -> StatePayload | None:
        """The payload that takes this client from ``base`` (or :data:`NO_STATE`) to now.

        None if it is over the maximum size (the world's cache then holds the error).
        """
        world = self.world
        with world.store.lock:
            version = world.store.time_order
            if version != self._version:
                self._version = version
                self._sent.clear()
            asked = base
            if base in self._sent:
                return self._sent[base]
            world.at(version)
            now = self._history.get(version)
            if now is None:
                viewer = self.who()
                now = world.view_of(viewer)
                if self.budget is not None and self._history:
                    previous = self._history[next(reversed(self._history))]
                    now = world.admit(
                        viewer, now, previous, self.budget.capacity, self._waiting, version
                    )
                self._history[version] = now
                while len(self._history) > HISTORY:
                    self._history.popitem(last=False)
            known = base != NO_STATE and base in self._history and base < version
            if not known:
                base = NO_STATE  # a baseline; it lists what the client may hold and lost
            floor = base if known else -1
            sent = []
            for order in reversed(self._history):  # newest first: the base is near the end
                if order < floor:
                    break
                if order < version:
                    sent.append(self._history[order])
            span = span_of(sent, now) if sent else None
            try:
                payload: StatePayload | None = world.payload(base, span, now, version)
            except PayloadTooLargeError as error:
                world.cache.oversize = error
                payload = None
            self._sent[asked] = payload
            return payload
