"""Game states, the updates that progress them, and the rules for merging and combining updates.

A :class:`GameState` is a bag of named attributes plus two bookkeeping fields: ``time_order``,
which numbers the versions of the state, and ``game_status``. A :class:`GameStateUpdate` carries
the changes that lead to the state with its own ``time_order``.

How an update's value for a key acts on the state:

* a dict merges key by key into a dict already there, recursively;
* a dict landing on a missing or non-dict value is stored as a plain copy;
* :data:`TO_DELETE` removes the key (removing a missing key does nothing);
* any other value replaces what was there.

Updates combine with ``+`` so that a server can send one delta instead of a backlog:
``state + (u1 + u2)`` always equals ``state + u1 + u2``. That needs one thing a plain dict cannot
say: if ``u1`` deletes ``k`` (or sets it to 5) and ``u2`` sets ``k`` to ``{"a": 1}``, the
result is ``k == {"a": 1}`` exactly, while the naive combination ``{"k": {"a": 1}}`` would merge
into whatever dict the receiver still has. The combination marks such a value as
:class:`~pygase_core.model.codec.Overwrite`: replace wholesale, do not merge.

Every value is checked with :func:`pygase_core.model.codec.check_value` where it enters
(construction, attribute assignment), so an unsupported value fails at the caller's line rather
than later on the network thread. Nested containers mutated in place are not re-checked until they
are sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import IntEnum
from typing import Any, Final

from pygase_core.errors import UnsupportedValueError
from pygase_core.model import codec
from pygase_core.model.codec import TO_DELETE, Overwrite

__all__ = ["TO_DELETE", "GameState", "GameStateUpdate", "GameStatus"]


class GameStatus(IntEnum):
    """Whether the simulation that owns a game state is currently running."""

    Paused = 0
    Active = 1

    @classmethod
    def get(cls, name: str) -> GameStatus:
        """Look a status up by name, e.g. ``GameStatus.get('Active')``."""
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"there is no game status named {name!r}") from None


# ---------------------------------------------------------------------------------------------
# Field checks
# ---------------------------------------------------------------------------------------------


def _check_time_order(time_order: object) -> int:
    if not isinstance(time_order, int) or isinstance(time_order, bool):
        raise UnsupportedValueError(f"time_order must be an int, not {type(time_order).__name__}")
    if not codec.INT_MIN <= time_order <= codec.INT_MAX:
        raise UnsupportedValueError(f"time_order {time_order} does not fit in 64 bits")
    return int(time_order)


def _check_status(status: object) -> int:
    """Return the status as a :class:`GameStatus` when it is one, else as the plain int."""
    if not isinstance(status, int) or isinstance(status, bool):
        raise UnsupportedValueError(f"game_status must be an int, not {type(status).__name__}")
    try:
        return GameStatus(status)
    except ValueError:
        codec.check_value(status, "game_status")
        return int(status)


def _check_name(name: object, reserved: frozenset[str]) -> str:
    if not isinstance(name, str):
        raise UnsupportedValueError(f"attribute names must be str, not {type(name).__name__}")
    if name.startswith("_") or name in reserved:
        raise UnsupportedValueError(
            f"{name!r} cannot be a game state attribute: it is reserved by GameState"
        )
    return name


# ---------------------------------------------------------------------------------------------
# Copying, merging and combining
# ---------------------------------------------------------------------------------------------


_SHARED_LEAVES: Final = frozenset({float, int, str, bool, bytes, type(None)})
"""Exact types whose values are immutable: a copy of a tree shares them."""
_TAKEN_WHOLE: Final = _SHARED_LEAVES | {list}
"""Exact types of owned changes that simply replace what the target holds (no merge, no copy)."""
_SENDABLE_LEAVES: Final = frozenset({float, str, bool, bytes, type(None)})
"""Exact leaf types that can always be sent (an int also needs its range checked)."""


def _copy_tree(value: Any) -> Any:
    """Copy containers, so a state and the updates applied to it never share mutable parts.

    Copies are plain dicts, lists and tuples. A tuple without containers inside is immutable
    all the way down and is shared instead of copied. The exact built-in types take a fast
    path (a Python call per leaf would dominate the cost of a state of many small lists);
    subclasses and markers take the general one.
    """
    kind = type(value)
    if kind is dict:
        return _copy_dict(value)
    if kind is list:
        return _copy_list(value)
    if kind in _SHARED_LEAVES:
        return value
    if isinstance(value, dict):
        if type(value) is Overwrite:
            return Overwrite({k: _copy_tree(v) for k, v in value.items()})
        return {k: _copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_tree(v) for v in value]
    if isinstance(value, tuple):
        for item in value:
            if isinstance(item, dict | list | tuple):
                return tuple(_copy_tree(v) for v in value)
        return value
    return value


def _copy_dict(value: dict[Any, Any]) -> dict[Any, Any]:
    """:func:`_copy_tree` of an exact dict."""
    copied: dict[Any, Any] = {}
    for key, item in value.items():
        kind = type(item)
        if kind in _SHARED_LEAVES:
            copied[key] = item
        elif kind is list:
            copied[key] = _copy_list(item)
        else:
            copied[key] = _copy_tree(item)
    return copied


def _copy_list(value: list[Any]) -> list[Any]:
    """:func:`_copy_tree` of an exact list."""
    if _SHARED_LEAVES.issuperset(map(type, value)):
        return value.copy()
    return [item if type(item) in _SHARED_LEAVES else _copy_tree(item) for item in value]


def _is_merge_dict(value: object) -> bool:
    return isinstance(value, dict) and type(value) is not Overwrite


def _merge(target: dict[Any, Any], changes: Mapping[Any, Any], owned: bool = False) -> None:
    """Apply ``changes`` to ``target`` in place, by the rules in the module docstring.

    With ``owned``, the changes belong to nobody else (freshly decoded), so plain values are
    taken over instead of copied.
    """
    if owned and _TAKEN_WHOLE.issuperset(map(type, changes.values())):
        # The common delta of many moved entities as lists (or plain values): one C-level pass.
        target.update(changes)
        return
    for key, value in changes.items():
        kind = type(value)
        if kind in _SHARED_LEAVES:
            target[key] = value
        elif kind is list:
            target[key] = value if owned else _copy_list(value)
        elif value is TO_DELETE:
            target.pop(key, None)
        elif kind is dict or _is_merge_dict(value):
            current = target.get(key)
            if isinstance(current, dict):
                _merge(current, value, owned)
            else:
                target[key] = _plain(value)
        elif kind is Overwrite:
            target[key] = _plain(value)
        else:
            target[key] = value if owned else _copy_tree(value)


def _plain(changes: Mapping[Any, Any]) -> dict[Any, Any]:
    """What a dict from an update becomes where there is nothing to merge into.

    Defined as merging into an empty dict: deletions vanish and markers turn into plain dicts.
    Using the very same function keeps combining exact by construction.
    """
    result: dict[Any, Any] = {}
    _merge(result, changes)
    return result


def _copy_change(value: Any) -> Any:
    """Copy a value from an update, keeping what it means as a change.

    An :class:`Overwrite` is normalised to plain content, so later merges into it are plain merges.
    """
    kind = type(value)
    if kind is dict:
        copied: dict[Any, Any] = {}
        for key, item in value.items():
            item_kind = type(item)
            if item_kind in _SHARED_LEAVES or item is TO_DELETE:
                copied[key] = item
            elif item_kind is list:
                copied[key] = _copy_list(item)
            else:
                copied[key] = _copy_change(item)
        return copied
    if value is TO_DELETE or kind in _SHARED_LEAVES:
        return value
    if kind is Overwrite:
        return Overwrite(_plain(value))
    if isinstance(value, dict):
        return {k: _copy_change(v) for k, v in value.items()}
    return _copy_tree(value)


class _Unusual(Exception):
    """The fast checking copy met something it leaves to the full check (never escapes)."""


def _checked_change(value: Any, depth: int) -> Any:
    """:func:`_copy_change` of a value that passes ``check_value(sentinels="dict_values")``.

    One walk that checks and copies together, for the exact built-in types that make up nearly
    every update; anything else (a tuple with containers, a subclass, a marker, a problem)
    raises :class:`_Unusual`, and the caller falls back to the separate check and copy, which
    also word the error. It accepts nothing the full check would refuse.
    """
    kind = type(value)
    if kind in _SENDABLE_LEAVES:
        return value
    if kind is dict:
        return _checked_dict(value, depth, _checked_change)
    if kind is list:
        return _checked_list(value, depth)
    if value is TO_DELETE:
        return value
    return _checked_data(value, depth)


def _checked_data(value: Any, depth: int) -> Any:
    """A checked copy of a value inside a sequence: plain data, no sentinel anywhere."""
    kind = type(value)
    if kind in _SENDABLE_LEAVES:
        return value
    if kind is int:
        if codec.INT_MIN <= value <= codec.INT_MAX:
            return value
        raise _Unusual
    if kind is list:
        return _checked_list(value, depth)
    if kind is dict:
        return _checked_dict(value, depth, _checked_data)
    if kind is tuple:
        if depth >= codec.MAX_DEPTH or not _SENDABLE_LEAVES.issuperset(map(type, value)):
            raise _Unusual
        return value  # a tuple of plain leaves is shared, as _copy_tree does
    raise _Unusual


def _checked_dict(
    value: dict[Any, Any], depth: int, inner: Callable[[Any, int], Any]
) -> dict[Any, Any]:
    """A checked copy of an exact dict; ``inner`` checks and copies its non-leaf values."""
    if depth >= codec.MAX_DEPTH:
        raise _Unusual
    depth += 1
    copied: dict[Any, Any] = {}
    for key, item in value.items():
        key_kind = type(key)
        if key_kind is not str and (
            key_kind is not int or not codec.INT_MIN <= key <= codec.INT_MAX
        ):
            raise _Unusual
        item_kind = type(item)
        if item_kind in _SENDABLE_LEAVES:
            copied[key] = item
        elif item_kind is list:
            copied[key] = _checked_list(item, depth)
        else:
            copied[key] = inner(item, depth)
    return copied


def _checked_list(value: list[Any], depth: int) -> list[Any]:
    """A checked copy of an exact list; inside sequences no sentinel may appear."""
    if depth >= codec.MAX_DEPTH:
        raise _Unusual
    if _SENDABLE_LEAVES.issuperset(map(type, value)):
        return value.copy()
    return [_checked_data(item, depth + 1) for item in value]


def _combine_into(combined: dict[Any, Any], newer: Mapping[Any, Any]) -> None:
    """Fold the changes of a newer update into ``combined``, which this module owns.

    For each key, applying the result must equal applying the old change, then the new one:

    * a new deletion, plain value or overwrite decides the outcome alone;
    * a new merge dict after a deletion or plain value: the slot holds no dict, so the result
      is exactly the new dict's plain form (an overwrite);
    * a new merge dict after an overwrite: the overwrite with the new dict merged in;
    * a new merge dict after a merge dict: the two merge dicts combined, key by key.
    """
    for key, new in newer.items():
        kind = type(new)
        if kind in _SHARED_LEAVES:
            combined[key] = new
        elif kind is list:
            combined[key] = _copy_list(new)
        elif _is_merge_dict(new) and key in combined:
            old = combined[key]
            if type(old) is Overwrite:
                _merge(old, new)
            elif isinstance(old, dict):
                _combine_into(old, new)
            else:
                combined[key] = Overwrite(_plain(new))
        else:
            combined[key] = _copy_change(new)


def _same(a: Any, b: Any) -> bool:
    """Equality that tells an overwrite from a merge dict, which ``==`` on dicts does not."""
    if isinstance(a, dict):
        if not isinstance(b, dict) or (type(a) is Overwrite) != (type(b) is Overwrite):
            return False
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, list | tuple):
        if type(a) is not type(b) or len(a) != len(b):
            return False
        return all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# ---------------------------------------------------------------------------------------------
# GameState
# ---------------------------------------------------------------------------------------------


class GameState:
    """The state of the game at one point in its timeline.

    Attributes are read and written like ordinary attributes (``state.foo``); assigning checks
    that the value can be sent to clients. ``time_order`` numbers the versions of the state and
    only grows as updates are applied.

    Args:
        time_order: version number of this state.
        game_status: a :class:`GameStatus` (any int is accepted and kept as is).
        **attributes: the game's own data.

    Raises:
        UnsupportedValueError: for a value that cannot be sent, a non-int ``time_order`` or
            ``game_status``, or an attribute name that is reserved (names of ``GameState``
            members, and names starting with an underscore).
    """

    __slots__ = ("_attributes", "game_status", "time_order")

    time_order: int
    game_status: int
    _attributes: dict[str, Any]

    def __init__(
        self, time_order: int = 0, game_status: int = GameStatus.Paused, **attributes: Any
    ) -> None:
        object.__setattr__(self, "time_order", _check_time_order(time_order))
        object.__setattr__(self, "game_status", _check_status(game_status))
        for name, value in attributes.items():
            _check_name(name, _STATE_RESERVED)
            codec.check_value(value, name, sentinels="never")
        object.__setattr__(self, "_attributes", attributes)

    @classmethod
    def from_dict(
        cls, time_order: int, game_status: int, attributes: Mapping[str, Any]
    ) -> GameState:
        """Build a state from its parts, e.g. as decoded from the wire (the values are checked)."""
        for name in attributes:
            _check_name(name, _STATE_RESERVED)
        return cls(time_order, game_status, **attributes)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails. Underscore names never come from the attribute
        # dict, which also keeps copy and pickle from recursing into a half-built instance.
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._attributes[name]
        except KeyError:
            raise AttributeError(f"the game state has no attribute {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "time_order":
            object.__setattr__(self, name, _check_time_order(value))
        elif name == "game_status":
            object.__setattr__(self, name, _check_status(value))
        else:
            _check_name(name, _STATE_RESERVED)
            codec.check_value(value, name, sentinels="never")
            self._attributes[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._attributes[name]
        except KeyError:
            raise AttributeError(f"the game state has no attribute {name!r}") from None

    def is_paused(self) -> bool:
        """Whether the game status is :attr:`GameStatus.Paused`."""
        return self.game_status == GameStatus.Paused

    def to_dict(self) -> dict[str, Any]:
        """The attributes (without ``time_order`` and ``game_status``) as a new dict.

        The dict is new but its values are the state's own objects: mutating a nested value
        mutates the state. Use :meth:`copy` first for an independent snapshot.
        """
        return dict(self._attributes)

    def copy(self) -> GameState:
        """An independent deep copy of this state."""
        duplicate = object.__new__(GameState)
        object.__setattr__(duplicate, "time_order", self.time_order)
        object.__setattr__(duplicate, "game_status", self.game_status)
        object.__setattr__(duplicate, "_attributes", _copy_tree(self._attributes))
        return duplicate

    def apply(self, update: GameStateUpdate) -> bool:
        """Apply ``update`` in place if it is newer than this state; return whether it was.

        The state's ``time_order`` becomes the update's.
        """
        return self._apply(update, owned=False)

    def apply_owned(self, update: GameStateUpdate) -> bool:
        """:meth:`apply` for an update nobody else holds: its values are taken, not copied."""
        return self._apply(update, owned=True)

    def _apply(self, update: GameStateUpdate, owned: bool) -> bool:
        if not isinstance(update, GameStateUpdate):
            raise TypeError(f"expected a GameStateUpdate, got {type(update).__name__}")
        if update.time_order <= self.time_order:
            return False
        changes = update.changes
        if "game_status" in changes:
            object.__setattr__(self, "game_status", _check_status(changes["game_status"]))
            changes = {k: v for k, v in changes.items() if k != "game_status"}
        _merge(self._attributes, changes, owned)
        object.__setattr__(self, "time_order", update.time_order)
        return True

    def __iadd__(self, update: GameStateUpdate) -> GameState:
        """``state += update`` applies the update in place if it is newer (see :meth:`apply`)."""
        self.apply(update)
        return self

    def __add__(self, update: GameStateUpdate) -> GameState:
        """``state + update`` is a new state with the update applied if it is newer."""
        if not isinstance(update, GameStateUpdate):
            return NotImplemented
        result = self.copy()
        result.apply(update)
        return result

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GameState):
            return NotImplemented
        return (
            self.time_order == other.time_order
            and self.game_status == other.game_status
            and self._attributes == other._attributes
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        status = self.game_status
        status_text = f"GameStatus.{status.name}" if isinstance(status, GameStatus) else status
        fields = "".join(f", {name}={value!r}" for name, value in self._attributes.items())
        return f"GameState(time_order={self.time_order}, game_status={status_text}{fields})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (GameState.from_dict, (self.time_order, self.game_status, self._attributes))


_STATE_RESERVED: Final = frozenset(name for name in dir(GameState) if not name.startswith("_"))
_UPDATE_RESERVED: Final = _STATE_RESERVED - {"game_status"}


# ---------------------------------------------------------------------------------------------
# GameStateUpdate
# ---------------------------------------------------------------------------------------------


class GameStateUpdate:
    """The changes that take a game state to the version numbered ``time_order``.

    Changes are readable as attributes (``update.foo``) and as the dict ``update.changes``.
    ``game_status`` may be among them. Updates are meant to be immutable once made, as stores
    and servers share them; ``update += other`` rebinds the name to a new combined update.

    Args:
        time_order: version number of the state this update leads to.
        **changes: new values by attribute name, following the merge rules of this module.

    Raises:
        UnsupportedValueError: for a value that cannot be sent, :data:`TO_DELETE` inside a list
            or tuple, a non-int ``game_status`` or a reserved attribute name.
    """

    __slots__ = ("changes", "time_order")

    time_order: int
    changes: dict[str, Any]

    def __init__(self, time_order: int, **changes: Any) -> None:
        self.time_order = _check_time_order(time_order)
        copied: dict[str, Any] = {}
        try:
            # The common case in one walk: check and copy each value together.
            for name, value in changes.items():
                if name == "game_status":
                    _check_status(value)
                    copied[name] = value
                else:
                    _check_name(name, _UPDATE_RESERVED)
                    copied[name] = _checked_change(value, 0)
        except _Unusual:
            # Something the fast walk leaves alone: check it in full (which words any error),
            # then copy it the general way.
            for name, value in changes.items():
                if name != "game_status":
                    codec.check_value(value, name, sentinels="dict_values")
            copied = _copy_change(changes)
        self.changes = copied

    @classmethod
    def from_changes(cls, time_order: int, changes: Mapping[str, Any]) -> GameStateUpdate:
        """Build an update from a mapping of changes (the names and values are checked)."""
        for name in changes:
            if name != "game_status":
                _check_name(name, _UPDATE_RESERVED)
        return cls(time_order, **changes)

    @classmethod
    def prechecked(cls, time_order: int, changes: dict[str, Any]) -> GameStateUpdate:
        """Wrap changes that are known to be valid and unshared, skipping the checks and the copy.

        For pygase's own decoders and combiners, which built the changes themselves; a program
        should use the constructor, which checks every value.
        """
        update = object.__new__(cls)
        update.time_order = time_order
        update.changes = changes
        return update

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.changes[name]
        except KeyError:
            raise AttributeError(f"the update has no change named {name!r}") from None

    def __add__(self, other: GameStateUpdate) -> GameStateUpdate:
        """Combine two updates into one; neither operand changes.

        The older update (by ``time_order``; the left one on a tie) is taken to happen first,
        and the result carries the newer ``time_order``.
        """
        if not isinstance(other, GameStateUpdate):
            return NotImplemented
        older, newer = (self, other) if self.time_order <= other.time_order else (other, self)
        combined = _copy_change(older.changes)
        _combine_into(combined, newer.changes)
        return GameStateUpdate.prechecked(newer.time_order, combined)

    def __iadd__(self, other: GameStateUpdate) -> GameStateUpdate:
        return self.__add__(other)

    def fold_in(self, newer: GameStateUpdate) -> None:
        """Fold a newer update into this one in place.

        Only for updates whose changes nobody else holds (those :meth:`combine` made): it saves
        copying the older changes, which is most of the cost of combining on the server.
        """
        _combine_into(self.changes, newer.changes)
        self.time_order = max(self.time_order, newer.time_order)

    @classmethod
    def combine(cls, updates: list[GameStateUpdate]) -> GameStateUpdate | None:
        """Combine updates given oldest first into one, copying each change only once.

        Returns None for an empty list.
        """
        if not updates:
            return None
        combined = _copy_change(updates[0].changes)
        for update in updates[1:]:
            _combine_into(combined, update.changes)
        return cls.prechecked(max(u.time_order for u in updates), combined)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GameStateUpdate):
            return NotImplemented
        return self.time_order == other.time_order and _same(self.changes, other.changes)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = "".join(f", {name}={value!r}" for name, value in self.changes.items())
        return f"GameStateUpdate(time_order={self.time_order}{fields})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (GameStateUpdate.from_changes, (self.time_order, self.changes))
