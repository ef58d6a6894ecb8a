"""Matchmaking: which room a join request lands in, kept as plain bookkeeping.

The matchmaker knows the room types a server defined and every room it runs, in the order they
were created. A request for a type joins the oldest room of that type that is open (not locked,
not private, not disposing), whose ``filter_by`` options equal the request's, and that has a
seat free counting the joins still being decided; otherwise it creates a room. So concurrent
joins fill each room before the next opens, and no room ever seats more than ``max_clients``.

It runs on the server's I/O loop only, and does no I/O itself.
"""

from __future__ import annotations

import inspect
import math
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pygase_core.model import codec
from pygase_core.model.history import check_seconds
from pygase_core.model.precision import Precision
from pygase_core.model.views import ViewRules

if TYPE_CHECKING:
    from pygase_core.rooms.room import Room

__all__ = ["Matchmaker", "RoomListing", "RoomRecord", "RoomType"]


@dataclass(frozen=True)
class RoomType:
    """A room type a server defined: ``Server.define(name, room_class, filter_by=...)``."""

    name: str
    room_class: type[Room]
    filter_by: tuple[str, ...] = ()
    default_options: Mapping[str, Any] = field(default_factory=dict)

    def options_for(self, requested: Mapping[str, Any]) -> dict[str, Any]:
        """The type's default options, overridden by what the client asked for."""
        return {**self.default_options, **requested}


@dataclass(frozen=True)
class RoomListing:
    """One open, public room as :meth:`Client.list_rooms` reports it."""

    room_id: str
    room: str
    clients: int
    max_clients: int
    metadata: dict[str, Any]


@dataclass(eq=False)
class RoomRecord:
    """The matchmaker's view of one room."""

    room_id: str
    room_type: RoomType
    options: dict[str, Any]
    room: Room
    seated: int = 0
    pending: int = 0
    """Joins reserved but not decided yet (creation, ``on_auth``)."""
    disposing: bool = False
    disposable: bool = False
    """Whether emptiness disposes of it: made for a join, or a client has sat in it (a room
    made with ``Server.create_room`` waits for its first client)."""

    @property
    def max_clients(self) -> int:
        return int(self.room.max_clients)

    @property
    def free(self) -> int:
        """Seats neither taken nor reserved."""
        return self.max_clients - self.seated - self.pending

    @property
    def empty(self) -> bool:
        return self.seated == 0 and self.pending == 0

    def matches(self, options: Mapping[str, Any]) -> bool:
        return all(self.options.get(key) == options.get(key) for key in self.room_type.filter_by)

    @property
    def offered(self) -> bool:
        """Whether matchmaking may place a client here (a room_id join may still)."""
        room = self.room
        return not (self.disposing or room.locked or room.private) and self.free > 0

    def listing(self) -> RoomListing:
        try:
            metadata = dict(self.room.metadata)
        except RuntimeError:  # changed by the room's thread while copied: try once more
            metadata = dict(self.room.metadata)
        return RoomListing(
            self.room_id, self.room_type.name, self.seated, self.max_clients, metadata
        )


class Matchmaker:
    """Room types and rooms, and the choice of a room for each join."""

    def __init__(self, max_rooms: int = 1000) -> None:
        if isinstance(max_rooms, bool) or not isinstance(max_rooms, int) or max_rooms < 1:
            raise ValueError("max_rooms must be an int of at least 1")
        self.max_rooms = max_rooms
        self.types: dict[str, RoomType] = {}
        self.rooms: dict[str, RoomRecord] = {}

    def define(
        self,
        name: str,
        room_class: type[Room],
        filter_by: tuple[str, ...] | list[str] = (),
        default_options: Mapping[str, Any] | None = None,
    ) -> RoomType:
        """Register a room type; raises at the call for anything that could not work."""
        from pygase_core.rooms.room import Room

        if not isinstance(name, str) or not name:
            raise TypeError("a room type's name must be a non-empty str")
        if not (isinstance(room_class, type) and issubclass(room_class, Room)):
            raise TypeError(
                f"room_class must be a subclass of pygase_core.Room, not {room_class!r}"
            )
        if isinstance(filter_by, str) or not all(isinstance(key, str) for key in filter_by):
            raise TypeError("filter_by must be a sequence of option names (str)")
        if name in self.types:
            raise ValueError(f"a room type named {name!r} is defined already")
        check_room_class(room_class)
        options = dict(default_options or {})
        codec.check_value(options, f"the default options of room type {name!r}")
        room_type = RoomType(name, room_class, tuple(filter_by), options)
        self.types[name] = room_type
        return room_type

    def find(self, room_type: RoomType, options: Mapping[str, Any]) -> RoomRecord | None:
        """The oldest open room of the type whose filter options match, if any."""
        for record in self.rooms.values():
            if record.room_type is room_type and record.offered and record.matches(options):
                return record
        return None

    def add(self, room_type: RoomType, options: dict[str, Any], room: Room) -> RoomRecord:
        """Record a room just created (the caller checked :attr:`at_capacity`)."""
        record = RoomRecord(new_room_id(self.rooms), room_type, options, room)
        self.rooms[record.room_id] = record
        return record

    @property
    def at_capacity(self) -> bool:
        """Whether no more rooms may be created."""
        return len(self.rooms) >= self.max_rooms

    def remove(self, room_id: str) -> None:
        self.rooms.pop(room_id, None)

    def listings(self, room: str | None = None) -> Iterator[RoomListing]:
        """The open, public rooms (of one type, or all) with a seat free."""
        for record in self.rooms.values():
            if (room is None or record.room_type.name == room) and record.offered:
                yield record.listing()


def check_room_class(room_class: type[Room]) -> None:
    """Raise at ``define`` for room class attributes that could not work."""
    seats = room_class.max_clients
    if isinstance(seats, bool) or not isinstance(seats, int) or seats < 1:
        raise ValueError(f"{room_class.__name__}.max_clients must be an int of at least 1")
    for name in ("tick_interval", "reconnection_window"):
        value = getattr(room_class, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and (value > 0 if name == "tick_interval" else value >= 0)
        ):
            raise ValueError(f"{room_class.__name__}.{name} must be a finite number of seconds"
                             f"{' above 0' if name == 'tick_interval' else ', 0 or more'}")
    try:
        check_seconds(f"{room_class.__name__}.history_seconds", room_class.history_seconds)
    except TypeError as error:
        raise ValueError(str(error)) from None
    if not isinstance(room_class.auto_dispose, bool):
        raise ValueError(f"{room_class.__name__}.auto_dispose must be True or False")
    if room_class.precision is not None:
        Precision(room_class.precision)  # raises what is wrong with it
    ViewRules(room_class.views)
    try:
        inspect.signature(room_class).bind()
    except TypeError as error:
        raise TypeError(
            f"{room_class.__name__}() must be callable without arguments: {error}"
        ) from error
    except ValueError:
        pass  # no signature to read


def new_room_id(taken: Mapping[str, Any]) -> str:
    """A random, unguessable room id (72 bits, URL-safe) not in ``taken``."""
    while True:
        room_id = secrets.token_urlsafe(9)
        if room_id not in taken:
            return room_id
