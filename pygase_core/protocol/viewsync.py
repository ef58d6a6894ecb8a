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
with the same view (a grid cell, no private fields) share the very same payload. For a grid, the
changes of a cell's entries are packed once per base into one chunk; a client one version behind
whose cells stay the same (the usual case, tick after tick) gets the chunks of its cells, and only
the few entries that changed cells since (:class:`_GridStep`) are looked at one by one, so its
delta costs a few lookups per cell rather than set operations over every entry it sees. Sans-IO.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Final, NamedTuple

from pygase_core.errors import PayloadTooLargeError
from pygase_core.model.codec import TO_DELETE, Overwrite, pack_checked
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
_PACKED_LEFT_KEY: Final = pack_checked(LEFT_KEY)
MAX_SQUARE_CELLS: Final = 1 << 16
"""How many cells the squares around centers that a world keeps hold in all, at most (a wide
view's squares are big: 41 x 41 cells for a radius of 20 cells)."""


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
        self._previous_version: int | None = None
        self._cells: dict[int, dict[tuple[int, int], list[Key]]] = {}
        self._previous_grid: dict[int, dict[tuple[int, int], list[Key]]] = {}
        self._steps: dict[int, _GridStep] = {}
        self._reach = {index: view.reach for index, view in rules.grids()}
        self._squares: dict[tuple[int, tuple[int, int]], tuple[tuple[int, int], ...]] = {}
        self._square_cells = 0
        """How many cells :attr:`_squares` holds in all."""
        self._names = [pack_checked(view.path) for view in rules.views]
        """The packed name of each view's attribute."""
        self._seen_cells: dict[tuple[int, tuple[int, int]], frozenset[Key]] = {}
        self._previous_cells: dict[tuple[int, tuple[int, int]], frozenset[Key]] = {}
        self._pairs: dict[tuple[Any, ...], bytes] = {}
        self._chunks: dict[tuple[Any, ...], tuple[int, bytes]] = {}
        self._payloads: dict[tuple[Any, ...], StatePayload] = {}
        self._changes: dict[int, GameStateUpdate | None] = {}
        """The store's changes since each base asked for at this version."""
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
            self._previous_version = self._version
            self._version = version
            self._previous_grid = self._cells
            self._cells = {}
            self._steps.clear()
            self._previous_cells = self._seen_cells
            self._seen_cells = {}
            self._pairs.clear()
            self._chunks.clear()
            self._payloads.clear()
            self._changes.clear()

    def _grid_visible(self, index: int, view: GridView, cell: tuple[int, int]) -> frozenset[Key]:
        seen = self._seen_cells.get((index, cell))
        if seen is not None:
            return seen
        cells = self._cells.get(index)
        if cells is None:
            entries = self.store.get_game_state().to_dict().get(view.path)
            cells = self._cells[index] = view.index(entries) if isinstance(entries, dict) else {}
        keys: list[Key] = []
        for square_cell in self._square(view.reach, cell):
            keys.extend(cells.get(square_cell, ()))
        seen = self._seen_cells[(index, cell)] = frozenset(keys)
        return seen

    def _square(self, reach: int, center: tuple[int, int]) -> tuple[tuple[int, int], ...]:
        """The cells within ``reach`` of ``center`` (kept: clients mostly stay in their cell)."""
        square = self._squares.get((reach, center))
        if square is None:
            x, y = center
            square = tuple(
                (cx, cy)
                for cy in range(y - reach, y + reach + 1)
                for cx in range(x - reach, x + reach + 1)
            )
            if self._square_cells + len(square) > MAX_SQUARE_CELLS:
                self._squares.clear()
                self._square_cells = 0
            if len(square) <= MAX_SQUARE_CELLS:
                self._squares[(reach, center)] = square
                self._square_cells += len(square)
        return square

    def _step(self, index: int) -> _GridStep | None:
        """How grid ``index`` changed since the previous version (None: not known then)."""
        step = self._steps.get(index)
        if step is None:
            before = self._previous_grid.get(index)
            if before is None:
                return None
            step = self._steps[index] = _GridStep(before, self._cells[index])
        return step

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
            delta = self._changes.get(base, _MISSING)
            if delta is _MISSING:
                delta = self._changes[base] = self.store.changes_since(base)
        if delta is not None and span is not None:
            # (What the client holds and sees decides the payload; where it saw it from, not.)
            key: tuple[Any, ...] = (base, span.kept, span.maybe, now.visible, now.owners)
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
        # Everything packed here comes from the store's state or updates, which were checked
        # when pushed (or is made of those by stripping and wrapping): no second checking walk.
        precision: Precision | None = self.store.precision
        if precision is None or path[0] == "game_status":
            return pack_checked(value)
        return pack_checked(precision.to_wire_at(path, value), wire=True)

    def _entry_pair(
        self, cache_key: tuple[Any, ...], name: str, key: Key, value: Any, owners: tuple[Any, ...]
    ) -> bytes:
        pair = self._pairs.get(cache_key)
        if pair is None:
            value = self.rules.strip_entry(name, key, value, owners)
            pair = self._pairs[cache_key] = pack_checked(key) + self._pack_at((name, key), value)
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
                pair = pack_checked(name) + self._pack_at((name,), stripped)
                self._pairs[cache_key] = pair
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
            gone: list[Key] = []
            center = now.centers[index] if now.centers else None
            moves_only = (
                change is not _MISSING and center is not None and not private
                and self._same_cells(index, base, span, center, kept, seen)
            )
            if moves_only:
                # The same grid cells as at the base, the version before: only the entries
                # that moved between cells need a look of their own.
                assert center is not None
                extra = self._cell_moves(index, name, center, change, entries, base, inner, gone)
            elif change is not _MISSING:
                # Seen throughout: the client has the entry, whatever version it is at.
                changed: dict[Any, Any] = change
                steady = kept & seen
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
            if not moves_only and (kept is not seen or maybe is not seen):
                # Seen now, not throughout: the client may lack it, or hold it from an older
                # view.
                for key in seen - kept:
                    owned = private and _owns(rules, name, key, now.owners)
                    inner.append(self._whole_pair(name, key, entries[key], owned, now.owners))
                # Perhaps seen before, not now: removed (deleted, or listed as left).
                for key in maybe - seen:
                    if key in entries:
                        gone.append(key)
                    else:
                        inner.append(_deleted(key))
            if inner:
                pairs.append(
                    self._names[index] + map_header(len(inner) + extra) + b"".join(inner)
                )
            elif change is not _MISSING and not maybe:
                # It saw none of the dict: it may lack the dict itself, made since its base.
                pairs.append(self._names[index] + b"\x80")
            if gone:
                left.append([name, gone])
        if left:
            pairs.append(_PACKED_LEFT_KEY + pack_checked(left))
        return map_header(len(pairs)) + b"".join(pairs)

    def _same_cells(
        self,
        index: int,
        base: int,
        span: Span,
        center: tuple[int, int],
        kept: frozenset[Key],
        seen: frozenset[Key],
    ) -> bool:
        """Whether the client saw exactly the grid cells around ``center`` at ``base``, the
        world's previous version, and was sent nothing since, and sees exactly them now."""
        if base != self._previous_version or span.centers is None:
            return False
        cell = (index, center)
        return (
            span.centers[index] == center
            and kept is self._previous_cells.get(cell)
            and seen is self._seen_cells.get(cell)
            and index in self._previous_grid
        )

    def _cell_moves(
        self,
        index: int,
        name: str,
        center: tuple[int, int],
        changed: dict[Any, Any],
        entries: dict[Any, Any],
        base: int,
        inner: list[bytes],
        gone: list[Key],
    ) -> int:
        """The delta of a grid view whose cells stay the same (see :meth:`_same_cells`).

        The changes of the entries that stayed in their cells come as one chunk per cell,
        shared by every client; of the few that moved between cells, those that moved within
        the view bring their changes, those that came in arrive whole, those that went out are
        listed in ``gone`` (or deleted). Appends to ``inner``; returns how many pairs the
        chunks hold beyond one each.
        """
        step = self._steps.get(index) or self._step(index)
        assert step is not None
        chunks = step.chunks
        reach = self._reach[index]
        x, y = center
        extra = 0
        crossings: list[_Crossing] = []
        for cell in self._square(reach, center):
            chunk = chunks.get(cell)
            if chunk is None:
                chunk = self._stay_chunk(name, changed, step, cell)
            if chunk[0]:
                extra += chunk[0] - 1
                inner.append(chunk[1])
            if chunk[2] is not None:
                crossings.append(chunk[2])
        if not crossings:
            return extra
        origin, destination = step.origin, step.destination
        low_x, high_x, low_y, high_y = x - reach, x + reach, y - reach, y + reach
        for arrived, departed in crossings:
            for key in arrived:
                came = origin.get(key)
                if came is not None and low_x <= came[0] <= high_x and low_y <= came[1] <= high_y:
                    entry = changed.get(key, _MISSING)  # moved within the view: its changes
                    if entry is not _MISSING:
                        inner.append(self._entry_pair(
                            (base, name, key, False), name, key, entry, ()))
                else:
                    inner.append(self._whole_pair(name, key, entries[key], False, ()))
            for key in departed:
                went = destination.get(key)
                if went is not None and low_x <= went[0] <= high_x and low_y <= went[1] <= high_y:
                    continue  # (moved within the view: it came with the arrivals)
                if key in entries:
                    gone.append(key)
                else:
                    inner.append(_deleted(key))
        return extra

    def _stay_chunk(
        self, name: str, changed: dict[Any, Any], step: _GridStep, cell: tuple[int, int]
    ) -> _Chunk:
        """How many entries stayed in ``cell`` and changed, their packed changes, and the
        entries that arrived in and departed from it (None: none); kept in the step."""
        crossing = step.moved.get(cell)
        keys: Iterable[Key] = step.after.get(cell, ())
        if crossing is not None and crossing[0]:
            keys = [key for key in keys if key not in crossing[0]]
        pairs = {key: changed[key] for key in keys if key in changed}
        if not pairs:
            chunk: _Chunk = (0, b"", crossing)
        elif self.store.precision is None:
            chunk = (len(pairs), _pairs_of(pack_checked(pairs)), crossing)
        else:
            chunk = (len(pairs), _pairs_of(self._pack_at((name,), pairs)), crossing)
        step.chunks[cell] = chunk
        return chunk

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
        count = 0
        parts: list[bytes] = []
        done: list[Key] = []
        for cell in self._square(view.reach, center):
            keys = cells.get(cell)
            if not keys or not (kept.issuperset(keys) and seen.issuperset(keys)):
                continue
            chunk = self._chunks.get((base, index, cell))
            if chunk is None:
                pairs = {key: changed[key] for key in keys if key in changed}
                packed = self._pack_at((name,), pairs) if pairs else b"\x80"
                chunk = self._chunks[(base, index, cell)] = (len(pairs), _pairs_of(packed))
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
            pair = self._pairs[cache_key] = pack_checked(key) + self._pack_at((name, key), entry)
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
                return pack_checked([status, attributes, None, left])
            return pack_checked([status, attributes])
        wire = precision.to_wire(attributes)
        parts = [status, wire, precision.describe(), *([left] if left else [])]
        return pack_checked(parts, wire=True)


_Crossing = tuple[frozenset[Key], frozenset[Key]]
"""The entries that arrived in a cell, and those that departed from it."""
_Chunk = tuple[int, bytes, _Crossing | None]


class _GridStep:
    """Which entries of a grid changed cells from one version to the next, and the shared
    chunks of the changes of those that stayed, per cell (for deltas from the earlier one).

    Most cells keep their entries from one version to the next; only those where some entry
    arrived or departed are in :attr:`moved`, with those entries, and where each came from or
    went to (absent: nowhere, as a new, deleted or unplaceable entry).
    """

    __slots__ = ("after", "chunks", "destination", "moved", "origin")

    def __init__(
        self,
        before: dict[tuple[int, int], list[Key]],
        after: dict[tuple[int, int], list[Key]],
    ) -> None:
        self.after = after
        """The later version's cells."""
        self.chunks: dict[tuple[int, int], _Chunk] = {}
        """Per cell, filled as clients need them: see :meth:`ViewedWorld._stay_chunk`."""
        self.moved: dict[tuple[int, int], _Crossing] = {}
        """Per cell whose entries changed: those that arrived, those that departed."""
        self.origin: dict[Key, tuple[int, int]] = {}
        self.destination: dict[Key, tuple[int, int]] = {}
        nothing: frozenset[Key] = frozenset()
        for cell, keys in after.items():
            old = before.get(cell)
            if old == keys:
                continue
            had = nothing if old is None else frozenset(old)
            has = frozenset(keys)
            arrived, departed = has - had, had - has
            self.moved[cell] = (arrived, departed)
            for key in arrived:
                self.destination[key] = cell
            for key in departed:
                self.origin[key] = cell
        for cell, old in before.items():
            if cell not in after:
                self.moved[cell] = (nothing, frozenset(old))
                for key in old:
                    self.origin[key] = cell


def _deleted(key: Key) -> bytes:
    """The pair that deletes entry ``key``."""
    return pack_checked(key) + pack_checked(TO_DELETE)


class Span(NamedTuple):
    """What a client may hold of each view, at whichever version from its base on it is at."""

    kept: tuple[frozenset[Key], ...]
    """Per view, the entries it saw at every such version: it holds them for sure."""
    maybe: tuple[frozenset[Key], ...]
    """Per view, the entries it saw at some such version: it may hold them."""
    owners_agree: bool = True
    """Whether the owners of private fields were the same at all those versions and now
    (otherwise only a baseline can say which private fields it holds)."""
    centers: tuple[tuple[int, int] | None, ...] | None = None
    """The grid cells of the one view it sums up (None: several views)."""


def span_of(views: list[ViewState], now: ViewState) -> Span:
    """Sum up the views a client was sent from its base on, and the view it gets now."""
    first = views[0]
    if len(views) == 1:
        return Span(first.visible, first.visible, first.owners == now.owners, first.centers)
    agree = all(view.owners == now.owners for view in views)
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
            elif base in self._sent:
                return self._sent[base]
            asked = base
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
            known = base != NO_STATE and base < version and base in self._history
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
