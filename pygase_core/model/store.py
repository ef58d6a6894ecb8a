"""The game state repository: the live state, the recent updates, and deltas for the server.

Whoever progresses the game (usually a :class:`~pygase_core.GameStateMachine`)
pushes updates; the server reads the state and asks for the combined changes a client is missing
(:meth:`GameStateStore.changes_since`). A client whose known state is older than what the update
cache remembers needs a full baseline instead, which :meth:`GameStateStore.snapshot` provides.

All access goes through one reentrant lock, because pushes come from the game loop thread while
the server reads from its I/O thread.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from pygase_core.errors import PayloadTooLargeError
from pygase_core.model import codec
from pygase_core.model.gamestate import GameState, GameStateUpdate
from pygase_core.model.precision import Precision, PrecisionValue

__all__ = ["BASE_VERSIONS", "GameStateStore", "encode_changes", "encode_differences"]

logger = logging.getLogger("pygase.store")

MAX_DELTA_SPAN = 32
"""Combining more updates than this for one client costs more than sending it the full state."""

BASE_VERSIONS = 64
"""How many recent versions the store (and a client) remembers the declared values of, so that a
delta from one of them can carry differences (see :func:`encode_differences`)."""

Listener = Callable[[int], None]
"""Called with the new ``time_order`` after each applied push."""


def encode_changes(changes: Mapping[str, Any], precision: Precision | None) -> bytes:
    """The wire form of an update's changes: float64 as they are, declared floats as small ints.

    The changes come from an update, whose constructor (or the store's combining) checked
    them, so the checking walk is skipped (see :func:`~pygase_core.model.codec.pack_checked`).
    """
    if precision is None:
        return codec.pack_checked(changes)
    return codec.pack(precision.to_wire(changes), wire=True)


def encode_differences(
    changes: Mapping[str, Any], precision: Precision, base: Mapping[str, Any]
) -> bytes:
    """The wire form of a delta whose declared floats travel as differences from ``base``.

    ``base`` is :meth:`~pygase_core.model.precision.Precision.declared_copy` of the state at
    the delta's base version. The key ``"_d"`` tells the client so; it resolves each
    difference against its own copy of that version (see
    :meth:`~pygase_core.model.precision.Precision.to_wire_differences`).
    """
    wire = precision.to_wire_differences(changes, base)
    wire[DIFFERENCES_KEY] = 1
    return codec.pack(wire, wire=True)


DIFFERENCES_KEY = "_d"
"""The key of a delta payload whose declared floats are differences from its base version; no
game attribute can have this name."""


class GameStateStore:
    """Provide access to a game state and manage state updates.

    Args:
        initial_game_state: state of the game before the simulation begins (a fresh, empty
            :class:`GameState` if omitted).
        update_cache_size: how many recent updates to keep for building deltas. A client
            further behind than this gets a full state instead.
        precision: declared precision, field path to a step or ``"float32"`` (for example
            ``{"entities": 0.01}``; see :mod:`pygase_core.model.precision`). Every float at or
            under a declared path is quantized as it enters the store, so the state here and
            the clients' states hold the same values; such floats travel as small ints (or
            single floats). None: floats stay float64, bit for bit.

    Raises:
        TypeError: if ``initial_game_state`` is not a :class:`GameState`, or for a precision
            declaration of the wrong types.
        ValueError: if ``update_cache_size`` is less than 1, or for a malformed precision
            declaration (see :class:`~pygase_core.model.precision.Precision`).
    """

    def __init__(
        self,
        initial_game_state: GameState | None = None,
        update_cache_size: int = 100,
        *,
        precision: Mapping[str, PrecisionValue] | Precision | None = None,
    ) -> None:
        if initial_game_state is None:
            initial_game_state = GameState()
        elif not isinstance(initial_game_state, GameState):
            raise TypeError(
                f"initial_game_state must be a GameState, not {type(initial_game_state).__name__}"
            )
        if isinstance(update_cache_size, bool) or not isinstance(update_cache_size, int):
            raise TypeError("update_cache_size must be an int")
        if update_cache_size < 1:
            raise ValueError("update_cache_size must be at least 1")
        self.precision: Precision | None = (
            precision if isinstance(precision, Precision) or precision is None
            else Precision(precision)
        )
        """The declared precision (None: float64 everywhere)."""
        self._quantize(initial_game_state)
        self._lock = threading.RLock()
        self._state = initial_game_state
        self._cache: deque[GameStateUpdate] = deque(maxlen=update_cache_size)
        # Every update newer than this is still in the cache: deltas can start from here on.
        self._reach = initial_game_state.time_order
        self._deltas: dict[int, GameStateUpdate] = {}
        """Combined deltas by base, owned by the store, as up to date as their time_order."""
        self._requested: set[int] = set()
        self._latest_base = initial_game_state.time_order
        """The time_order the state had before the latest cached update."""
        self._latest_encoded: bytes | None = None
        """The latest update's changes, encoded (None: not yet)."""
        self._listeners: list[Listener] = []
        self._bases: dict[int, dict[str, Any]] = {}
        """The declared values of the latest versions (oldest first), for differences."""
        self._remember_base()
        self.max_update_size: int | None = None
        """Largest encoded update :meth:`push_update` accepts (None: any). A Server sets it to
        its ``max_state_size``, so an update no client could ever receive fails at the push."""

    def _remember_base(self) -> None:
        """Keep the declared values of the current version (lock held, or in the constructor)."""
        precision = self.precision
        if precision is None or not precision.has_steps:
            return
        bases = self._bases
        bases[self._state.time_order] = precision.declared_copy(self._state.to_dict())
        while len(bases) > BASE_VERSIONS:
            del bases[next(iter(bases))]

    def _quantize(self, game_state: GameState) -> None:
        """Quantize the declared floats of a state that enters the store, in place."""
        if self.precision is None:
            return
        for name, value in self.precision.quantize_attributes(game_state.to_dict()).items():
            setattr(game_state, name, value)

    def _settled(self, update: GameStateUpdate) -> GameStateUpdate:
        """The update as the store applies it: declared floats quantized, no-op changes gone."""
        if self.precision is None:
            return update
        changes = self.precision.settle(update.changes, self._state.to_dict())
        return GameStateUpdate.prechecked(update.time_order, changes)

    def replace_state(self, game_state: GameState) -> None:
        """Start afresh from ``game_state`` (newer than the current one): no update history.

        For a world whose initial state is decided after its store exists (a room's
        ``on_create``): clients that had anything get the whole new state, and no copy of it
        sits in the update cache.
        """
        if not isinstance(game_state, GameState):
            raise TypeError(f"expected a GameState, not {type(game_state).__name__}")
        self._quantize(game_state)
        with self._lock:
            if game_state.time_order <= self._state.time_order:
                game_state.time_order = self._state.time_order + 1
            self._state = game_state
            self._cache.clear()
            self._reach = game_state.time_order
            self._deltas.clear()
            self._requested.clear()
            self._latest_encoded = None
            self._bases.clear()
            self._remember_base()
            listeners = list(self._listeners)
            time_order = game_state.time_order
        for listener in listeners:
            try:
                listener(time_order)
            except Exception:
                logger.exception("a store listener failed")

    @property
    def lock(self) -> threading.RLock:
        """The lock that guards the state; hold it to read the live state from another thread."""
        return self._lock

    @property
    def time_order(self) -> int:
        """The ``time_order`` of the current state."""
        return self._state.time_order

    def get_game_state(self) -> GameState:
        """Return the current game state: the live object, not a copy.

        The game loop reads and pushes in its own thread. Any other thread should read it while
        holding :attr:`lock`, or use :meth:`snapshot`. Changes made to it directly, rather than
        by pushing updates, are not sent to clients as deltas.
        """
        return self._state

    def get_update_cache(self) -> list[GameStateUpdate]:
        """Return the latest state updates, oldest first (a new list)."""
        with self._lock:
            return list(self._cache)

    def snapshot(self) -> GameState:
        """An independent deep copy of the current state, taken under the lock."""
        with self._lock:
            return self._state.copy()

    def push_update(self, update: GameStateUpdate) -> None:
        """Push a new state update to the update cache.

        An update that is not newer than the current state is ignored. Otherwise it is applied,
        cached, and the listeners are called with the new ``time_order`` in this thread, after
        the lock is released.

        One pass over the update's values: its constructor checked and copied them, applying
        it copies them into the state, and the encoding that measures it (when
        :attr:`max_update_size` is set) is the one clients one version behind are sent.
        Deltas for clients further behind absorb it when they are next asked for.

        Raises:
            TypeError: if ``update`` is not a :class:`GameStateUpdate`.
            PayloadTooLargeError: if the update encodes to more than :attr:`max_update_size`.
        """
        if not isinstance(update, GameStateUpdate):
            raise TypeError(f"expected a GameStateUpdate, not {type(update).__name__}")
        with self._lock:
            update = self._settled(update)
            limit = self.max_update_size
            encoded: bytes | None = None
            if limit is not None:
                encoded = encode_changes(update.changes, self.precision)
                if len(encoded) > limit:
                    raise PayloadTooLargeError(
                        f"update {update.time_order} encodes to {len(encoded)} bytes, over the"
                        f" servers' maximum state size of {limit} bytes"
                        " (Server(max_state_size=...))"
                    )
            previous = self._state.time_order
            if not self._state.apply(update):
                logger.debug(
                    "ignored update %d: the state is already at %d",
                    update.time_order,
                    self._state.time_order,
                )
                return
            if len(self._cache) == self._cache.maxlen:
                self._reach = self._cache[0].time_order
            self._cache.append(update)
            self._latest_base = previous
            self._latest_encoded = encoded
            self._remember_base()
            # Keep the deltas someone asked for since the last push (they are brought up to date
            # when asked again); forget the others.
            reach, requested = self._reach, self._requested
            self._deltas = {
                base: delta
                for base, delta in self._deltas.items()
                if base in requested and base >= reach
            }
            requested.clear()
            time_order = self._state.time_order
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(time_order)
            except Exception:
                logger.exception("state listener %r failed", listener)

    def changes_since(self, time_order: int) -> GameStateUpdate | None:
        """The combined update that takes a state at ``time_order`` to the current state.

        Returns an update without changes (at the current ``time_order``) if nothing is newer,
        and None if the cache no longer reaches back to ``time_order`` (or it lies in the
        future): the caller must then send the full state. Results are cached, as clients
        often share a base; treat the returned update as read-only and do not keep it past the
        next push (a later call may update it in place). For a base one version behind it is
        the pushed update itself.
        """
        with self._lock:
            current = self._state.time_order
            if time_order > current or time_order < self._reach:
                return None
            if self._cache and self._latest_base <= time_order < current:
                return self._cache[-1]  # one version behind: the update is the delta
            self._requested.add(time_order)
            delta = self._deltas.get(time_order)
            if delta is not None:
                if delta.time_order < current:
                    for update in self._cache:
                        if update.time_order > delta.time_order:
                            delta.fold_in(update)
                return delta
            delta = self._combine_since(time_order, current)
            if delta is not None:
                self._deltas[time_order] = delta
            return delta

    def encoded_changes_since(self, time_order: int) -> tuple[int, bytes] | None:
        """:meth:`changes_since`, encoded: ``(target time_order, msgpack bytes)`` or None.

        A client one version behind gets the bytes the push already made, so each pushed
        update is encoded once however many clients it reaches.
        """
        with self._lock:
            delta = self.changes_since(time_order)
            if delta is None:
                return None
            if self._cache and delta is self._cache[-1]:
                if self._latest_encoded is None:
                    self._latest_encoded = encode_changes(delta.changes, self.precision)
                return delta.time_order, self._latest_encoded
            return delta.time_order, encode_changes(delta.changes, self.precision)

    def encoded_differences_since(self, time_order: int) -> tuple[int, bytes] | None:
        """:meth:`encoded_changes_since`, with declared floats as differences where it can.

        Differences need the declared values of version ``time_order``, which the store keeps
        for its latest :data:`BASE_VERSIONS` versions; further back, or without a declared
        step, the delta carries absolute values, as :meth:`encoded_changes_since` encodes it.
        """
        with self._lock:
            base = self._bases.get(time_order)
            delta = self.changes_since(time_order)
            if delta is None or base is None or not delta.changes:
                return self.encoded_changes_since(time_order)
            assert self.precision is not None  # (bases are kept only for declared steps)
            return delta.time_order, encode_differences(delta.changes, self.precision, base)

    def _combine_since(self, time_order: int, current: int) -> GameStateUpdate | None:
        # Reuse the cached delta of the nearest newer base, if one is close: then only the
        # updates between the two bases are combined, not the whole history.
        above = [b for b in self._deltas if time_order < b]
        start = min(above, default=current)
        if start - time_order > MAX_DELTA_SPAN:
            return None  # cheaper to send the full state, encoded once, than to combine this
        between = [u for u in self._cache if time_order < u.time_order <= start]
        if start < current:
            newer = self.changes_since(start)  # brought up to date first
            assert newer is not None
            between.append(newer)
        return GameStateUpdate.combine(between) or GameStateUpdate.prechecked(current, {})

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(new_time_order)`` after each applied push, in the pushing thread.

        An exception raised by the listener is logged and does not reach the pusher.
        """
        if not callable(listener):
            raise TypeError("the listener must be callable")
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``; raise ValueError if it was not added."""
        with self._lock:
            self._listeners.remove(listener)
