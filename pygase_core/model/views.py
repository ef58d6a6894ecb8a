"""Per-client views: which entries of the state each client sees, and fields only owners see.

A game hands the server a list of rules (``Server(store, views=[...])``, or a room's ``views``):

* :class:`GridView` — the entries of a dict attribute (``state.entities``) by their position:
  a client sees the entries in the grid cells within ``radius`` of the cell of its own entity.
* :class:`FilterView` — the entries of a dict attribute that a plain callable names, for
  anything else: teams, fog of war, line of sight.
* :class:`PrivateField` — a field of each entry of a dict attribute (``"players.*.hand"``) that
  only the client owning that entry sees.

The rules run on the server's I/O loop, under the store's lock, once per client and state
version at most (a grid's cells once per state version for all clients), so they should be
quick and must not block. Each callable is given the *viewer*: the client's address on a
one-world :class:`~pygase_core.Server`, its :class:`~pygase_core.rooms.room.RoomClient` in a
room.

This module only decides what a viewer sees (:meth:`ViewRules.view_of`) and strips what it may
not see from values (:meth:`ViewRules.strip`); :mod:`pygase_core.protocol.viewsync` turns that
into per-client deltas.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

from pygase_core.model.codec import TO_DELETE, Overwrite

__all__ = ["FilterView", "GridView", "PrivateField", "View", "ViewRules", "ViewState"]

logger = logging.getLogger("pygase.views")

Viewer = Any
"""Who a view is computed for: a client's address (one world) or its RoomClient (a room)."""
Key = Hashable
_MISSING: Final = object()
_BOOKKEEPING: Final = frozenset({"time_order", "game_status"})
_NOTHING: Final[frozenset[Any]] = frozenset()



def _check_name(path: object, what: str) -> str:
    if not isinstance(path, str):
        raise TypeError(f"the path of a {what} must be a str, not {type(path).__name__}")
    if not path or "." in path or "*" in path or path.startswith("_") or path in _BOOKKEEPING:
        raise ValueError(
            f"a {what} applies to one top-level attribute of the state, such as 'entities',"
            f" not {path!r}"
        )
    return path


def _check_callable(value: object, name: str) -> None:
    if not callable(value):
        raise TypeError(f"{name} must be callable, not {type(value).__name__}")


def entry_position(entry: Any) -> tuple[float, float]:
    """The default position of an entry: its ``x`` and ``y``, or its first two items."""
    if isinstance(entry, Mapping):
        return entry["x"], entry["y"]
    return entry[0], entry[1]


class GridView:
    """A client sees the entries of ``path`` within ``radius`` of its own entity, by grid cell.

    The entries are sorted into square cells of ``cell_size`` by ``position(entry)``; a client
    sees every entry in the cells that lie within ``radius`` of the cell its own entity is in
    (``entity(viewer)`` gives its key in the same dict). Clients whose entities share a cell see
    exactly the same entries, so their payloads are encoded once. A viewer without an entity
    (``entity`` returns None, or a key that is not there) sees none of the entries.

    Args:
        path: a top-level attribute of the state holding a dict of entries.
        cell_size: the side of a cell, in the units of the positions.
        radius: how far a client sees, in the same units (rounded up to whole cells).
        entity: ``entity(viewer)`` is the key of the viewer's own entry, or None.
        position: ``position(entry)`` is its ``(x, y)``; by default the entry's ``"x"`` and
            ``"y"`` (a dict) or its first two items (a list or tuple). An entry whose position
            cannot be read is seen by nobody.
        priority: under a bandwidth budget, ``priority(viewer, key, entry)`` orders the entries
            entering a view, lowest first, after those held back longest; by default the nearest
            to the viewer's entity first.
    """

    def __init__(
        self,
        path: str,
        *,
        cell_size: float,
        radius: float,
        entity: Callable[[Viewer], Key | None],
        position: Callable[[Any], tuple[float, float]] = entry_position,
        priority: Callable[[Viewer, Key, Any], float] | None = None,
    ) -> None:
        self.path = _check_name(path, "grid view")
        for name, value in (("cell_size", cell_size), ("radius", radius)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number, not {type(value).__name__}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be positive and finite, not {value!r}")
        _check_callable(entity, "entity")
        _check_callable(position, "position")
        if priority is not None:
            _check_callable(priority, "priority")
        self.priority = priority
        self.cell_size = float(cell_size)
        self.radius = float(radius)
        self.reach = math.ceil(self.radius / self.cell_size)
        """How many cells a client sees in each direction from its own."""
        self.entity = entity
        self.position = position

    def index(self, entries: dict[Any, Any]) -> dict[tuple[int, int], list[Key]]:
        """The keys of ``entries`` by the cell they are in (entries without a position left out).

        The default position is read inline: this runs over every entry once per state version.
        """
        cells: dict[tuple[int, int], list[Key]] = {}
        if self.position is not entry_position:
            for key, entry in entries.items():
                at = self.cell_of(entry)
                if at is not None:
                    cells.setdefault(at, []).append(key)
            return cells
        size = self.cell_size
        floor = math.floor
        for key, entry in entries.items():
            try:
                if type(entry) is dict:
                    at = (floor(entry["x"] / size), floor(entry["y"] / size))
                elif type(entry) is list:
                    at = (floor(entry[0] / size), floor(entry[1] / size))
                else:
                    x, y = entry_position(entry)
                    at = (floor(x / size), floor(y / size))
            except (KeyError, IndexError, TypeError, ValueError, OverflowError):
                continue
            keys = cells.get(at)
            if keys is None:
                cells[at] = [key]
            else:
                keys.append(key)
        return cells

    def cell_of(self, entry: Any) -> tuple[int, int] | None:
        """The cell an entry is in, or None if its position cannot be read."""
        try:
            if self.position is not entry_position:
                x, y = self.position(entry)
            elif type(entry) is dict:  # (the default position, read as :meth:`index` does)
                x, y = entry["x"], entry["y"]
            elif type(entry) is list:
                x, y = entry[0], entry[1]
            else:
                x, y = entry_position(entry)
            return math.floor(x / self.cell_size), math.floor(y / self.cell_size)
        except Exception:  # (whatever the game's position callable raises for this entry)
            return None

    def order(self, viewer: Viewer, entries: dict[Any, Any], keys: Iterable[Key]) -> list[Key]:
        """``keys`` in the order they enter a view under a budget (see ``priority``)."""
        if self.priority is not None:
            rank = self.priority
            return sorted(keys, key=lambda key: rank(viewer, key, entries[key]))
        own = entries.get(self.entity(viewer))
        try:
            cx, cy = self.position(own)
        except (KeyError, IndexError, TypeError, ValueError):
            return list(keys)

        def distance(key: Key) -> float:
            try:
                x, y = self.position(entries[key])
                return float((x - cx) ** 2 + (y - cy) ** 2)
            except (KeyError, IndexError, TypeError, ValueError):
                return math.inf

        return sorted(keys, key=distance)

    def __repr__(self) -> str:
        return f"GridView({self.path!r}, cell_size={self.cell_size}, radius={self.radius})"


class FilterView:
    """A client sees the entries of ``path`` whose keys ``visible(viewer, state)`` returns.

    Args:
        path: a top-level attribute of the state holding a dict of entries.
        visible: ``visible(viewer, state)`` returns the keys (any iterable) of the entries this
            viewer sees; ``state`` is the live :class:`~pygase_core.GameState` (read it, do not
            change it). Keys that are not in the dict are ignored.
        priority: under a bandwidth budget, ``priority(viewer, key, entry)`` orders the entries
            entering a view, lowest first, after those held back longest (by default in the
            order ``visible`` gave them).
    """

    def __init__(
        self,
        path: str,
        visible: Callable[[Viewer, Any], Iterable[Key]],
        priority: Callable[[Viewer, Key, Any], float] | None = None,
    ) -> None:
        self.path = _check_name(path, "filter view")
        _check_callable(visible, "visible")
        if priority is not None:
            _check_callable(priority, "priority")
        self.visible = visible
        self.priority = priority

    def order(self, viewer: Viewer, entries: dict[Any, Any], keys: Iterable[Key]) -> list[Key]:
        """``keys`` in the order they enter a view under a budget (see ``priority``)."""
        if self.priority is None:
            return list(keys)
        rank = self.priority
        return sorted(keys, key=lambda key: rank(viewer, key, entries[key]))

    def __repr__(self) -> str:
        return f"FilterView({self.path!r}, {self.visible!r})"


class PrivateField:
    """A field of every entry of a dict that only the entry's owner sees.

    ``PrivateField("players.*.hand", owner=lambda viewer: player_of[viewer])``: the ``hand`` of
    each entry of ``state.players`` reaches only the client whose ``owner(viewer)`` is that
    entry's key; no other client's datagrams carry it.

    Args:
        pattern: ``NAME.*.FIELD`` (``FIELD`` may be dotted, for a field deeper in the entry).
        owner: ``owner(viewer)`` is the key of the entry this viewer owns, or None.
    """

    def __init__(self, pattern: str, owner: Callable[[Viewer], Key | None]) -> None:
        if not isinstance(pattern, str):
            raise TypeError(f"a private field pattern must be a str, not {type(pattern).__name__}")
        parts = tuple(pattern.split("."))
        if (
            len(parts) < 3
            or parts[1] != "*"
            or any(not part or part == "*" for part in parts[:1] + parts[2:])
            or parts[0].startswith("_")
            or parts[0] in _BOOKKEEPING
        ):
            raise ValueError(
                f"a private field pattern is NAME.*.FIELD, such as 'players.*.hand', not"
                f" {pattern!r}"
            )
        _check_callable(owner, "owner")
        self.pattern = pattern
        self.path = parts[0]
        self.field = parts[2:]
        self.owner = owner

    def strip_entry(self, entry: Any) -> Any:
        """The entry without this field (a copy along the way), or the entry itself."""
        return _without(entry, self.field)

    def __repr__(self) -> str:
        return f"PrivateField({self.pattern!r})"


View = GridView | FilterView | PrivateField
"""One rule of a view list."""


def _without(value: Any, field: tuple[str, ...]) -> Any:
    """``value`` without the nested key ``field`` (copied along the path if it is there)."""
    if not isinstance(value, dict):
        return value
    head = field[0]
    if head not in value:
        return value
    copy = Overwrite(value) if type(value) is Overwrite else dict(value)
    if len(field) == 1:
        del copy[head]
    else:
        copy[head] = _without(value[head], field[1:])
    return copy


class ViewState(NamedTuple):
    """What one viewer sees at one state version: the keys per view, the owner per private rule.

    (A named tuple: one is made per client and version, and compared and hashed as a cache key.)
    """

    visible: tuple[frozenset[Key], ...]
    owners: tuple[Key | None, ...]
    centers: tuple[tuple[int, int] | None, ...] = ()
    """Per view, the grid cell the viewer's entity is in (None: not a grid, or no entity)."""


class ViewRules:
    """A checked list of view rules, and what they make of a state for one viewer.

    Raises:
        TypeError: for a rule that is not a :class:`GridView`, :class:`FilterView` or
            :class:`PrivateField`.
        ValueError: for two views of the same attribute.
    """

    def __init__(self, rules: Sequence[View]) -> None:
        if isinstance(rules, GridView | FilterView | PrivateField) or not isinstance(
            rules, Sequence | set | frozenset
        ):
            raise TypeError("views must be a list of GridView, FilterView and PrivateField rules")
        self.views: list[GridView | FilterView] = []
        self.private: list[PrivateField] = []
        for rule in rules:
            if isinstance(rule, GridView | FilterView):
                if any(view.path == rule.path for view in self.views):
                    raise ValueError(f"two views of {rule.path!r}: give each attribute one")
                self.views.append(rule)
            elif isinstance(rule, PrivateField):
                self.private.append(rule)
            else:
                raise TypeError(
                    f"a view rule must be a GridView, FilterView or PrivateField, not"
                    f" {type(rule).__name__}"
                )
        self.paths = {view.path: index for index, view in enumerate(self.views)}
        """The viewed attributes, with their view's index in :attr:`ViewState.visible`."""
        self._private_by_path: dict[str, list[int]] = {}
        self._logged: set[int] = set()
        for index, rule in enumerate(self.private):
            self._private_by_path.setdefault(rule.path, []).append(index)

    def __bool__(self) -> bool:
        return bool(self.views or self.private)

    def grids(self) -> list[tuple[int, GridView]]:
        """The grid views with their indexes (their cells are shared by all viewers)."""
        return [(i, view) for i, view in enumerate(self.views) if isinstance(view, GridView)]

    def view_of(
        self,
        viewer: Viewer,
        attributes: Mapping[str, Any],
        state: Any,
        grid_visible: Callable[[int, GridView, Any], frozenset[Key]],
    ) -> ViewState:
        """What ``viewer`` sees of the state whose attributes are given.

        ``grid_visible(index, view, center_cell)`` answers for the grid views, so that the
        caller can index the cells once per state version. A rule that raises is logged and
        shows the viewer nothing (for a private field: nobody's).
        """
        visible: list[frozenset[Key]] = []
        centers: list[tuple[int, int] | None] = []
        for index, view in enumerate(self.views):
            entries = attributes.get(view.path)
            cell = None
            if not isinstance(entries, dict):
                visible.append(_NOTHING)
                centers.append(None)
                continue
            try:
                if isinstance(view, GridView):
                    key = view.entity(viewer)
                    own = _MISSING if key is None else entries.get(key, _MISSING)
                    cell = None if own is _MISSING else view.cell_of(own)
                    seen = _NOTHING if cell is None else grid_visible(index, view, cell)
                else:
                    keys = view.visible(viewer, state)
                    if isinstance(keys, str | bytes):  # (its letters are no keys)
                        raise TypeError(f"visible returned {type(keys).__name__}, not keys")
                    seen = frozenset(key for key in keys if key in entries)
                    for key in seen:
                        if type(key) is not str and type(key) is not int:
                            # An equal value of another type (1.0, True, a numpy int): the
                            # dict's own keys are what a payload may carry.
                            seen = frozenset(own for own in entries if own in seen)
                            break
            except Exception:
                self._failed(view, f"the view {view!r} failed for {viewer!r}: it shows nothing")
                seen, cell = _NOTHING, None
            visible.append(seen)
            centers.append(cell)
        if not self.private:
            return ViewState(tuple(visible), (), tuple(centers))
        owners: list[Key | None] = []
        for rule in self.private:
            try:
                owner = rule.owner(viewer)
                hash(owner)  # a key of the dict, or None: anything else can own nothing
                owners.append(owner)
            except Exception:
                self._failed(rule, f"the owner of {rule!r} failed for {viewer!r}: it hides all")
                owners.append(_NOBODY)
        return ViewState(tuple(visible), tuple(owners), tuple(centers))

    def order(
        self, index: int, viewer: Viewer, entries: dict[Any, Any], keys: frozenset[Key]
    ) -> list[Key]:
        """The entering ``keys`` of view ``index`` in its priority order; if its priority (or
        position) fails or ranks with what cannot be compared, logged, and in no set order."""
        view = self.views[index]
        try:
            return view.order(viewer, entries, keys)
        except Exception:
            self._failed(view, f"the priority of {view!r} failed for {viewer!r}: none is used")
            return list(keys)

    def _failed(self, rule: View, message: str) -> None:
        """Log a rule's failure with its traceback the first time, then only at debug level
        (it runs for every client and version: a broken rule must not flood the log)."""
        if id(rule) in self._logged:
            logger.debug(message, exc_info=True)
        else:
            self._logged.add(id(rule))
            logger.exception("%s (said once; later failures of this rule log at debug)", message)

    def strip(self, name: str, value: Any, owners: tuple[Key | None, ...]) -> Any:
        """A top-level value (or a change to it) without the private fields the viewer may not see.

        ``value`` is left as it is; what changes is copied. An empty merge dict left by the
        stripping is kept as an empty dict (it changes nothing).
        """
        indexes = self._private_by_path.get(name)
        if not indexes:
            return value
        if isinstance(value, list | tuple):  # ``*`` is an index here: the owner's is kept
            items = [self.strip_entry(name, i, item, owners) for i, item in enumerate(value)]
            if all(item is original for item, original in zip(items, value, strict=True)):
                return value
            return tuple(items) if isinstance(value, tuple) else items
        if not isinstance(value, dict):
            return value
        out = None
        for key, entry in value.items():
            stripped = self.strip_entry(name, key, entry, owners)
            if stripped is not entry:
                if out is None:
                    out = Overwrite(value) if type(value) is Overwrite else dict(value)
                out[key] = stripped
        return value if out is None else out

    def strip_entry(
        self, name: str, key: Key, entry: Any, owners: tuple[Key | None, ...]
    ) -> Any:
        """One entry of a top-level dict (or a change to it) as this viewer may see it."""
        indexes = self._private_by_path.get(name)
        if not indexes or entry is TO_DELETE:
            return entry
        for index in indexes:
            if owners[index] is _NOBODY or key != owners[index]:
                entry = self.private[index].strip_entry(entry)
        return entry

    def has_private(self, name: str) -> bool:
        """Whether some private field lives in the attribute ``name``."""
        return name in self._private_by_path

    def owners_for(self, name: str, owners: tuple[Key | None, ...]) -> tuple[Key | None, ...]:
        """The owners that matter for the attribute ``name`` (a cache key for its encoding)."""
        indexes = self._private_by_path.get(name)
        return () if not indexes else tuple(owners[i] for i in indexes)


class _Nobody:
    """The owner of nothing: what a failed owner callable gives (everything private hidden)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<nobody>"


_NOBODY: Final = _Nobody()
