"""Control messages: what client and server say to each other about rooms, on the event channel.

Joining a room, its answer and room listings travel as events whose type starts with a NUL
character, so they get the event channel's guarantees (exactly once, in order, fragmented when
large) without a channel of their own. Such types are reserved: ``dispatch_event`` refuses them,
and the receiving edge handles them before any game handler could see them.

Each message is one dict of plain values; :func:`parse` checks its shape, since it comes from
the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pygase_core.errors import ProtocolError
from pygase_core.model.events import Event
from pygase_core.protocol.eventwire import encode_event
from pygase_core.protocol.inputs import DEFAULT_MAX_INPUT_SIZE

RESERVED_PREFIX = "\x00"
JOIN = "\x00join"
JOINED = "\x00joined"
REFUSED = "\x00refused"
LIST = "\x00list"
ROOMS = "\x00rooms"
CONTROL_RETRIES = 20
"""Control messages are resent this often: losing one would leave a join hanging."""


def is_control(event_type: str) -> bool:
    """Whether an event type is a reserved control message."""
    return event_type.startswith(RESERVED_PREFIX)


@dataclass(frozen=True)
class JoinRequest:
    """Which room a client asks to join (none of them: the server's one world)."""

    room: str | None = None
    room_id: str | None = None
    create: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Joined:
    """The client has a seat: its room, its stable id and how long the seat survives silence."""

    room_id: str
    room: str | None
    client_id: str
    reconnection_window: float
    tick_interval: float = 0.02
    """Seconds between the world's steps: how long one input lasts (``Client.send_input``)."""
    max_input_size: int = DEFAULT_MAX_INPUT_SIZE
    """The largest encoded input the server accepts (larger ones it drops): the client
    refuses those at ``send_input``. A server that does not say accepts the default."""


@dataclass(frozen=True)
class JoinRefused:
    """The join failed; ``kind`` is ``"refused"`` (by the room), ``"full"`` or ``"missing"``."""

    reason: str
    kind: str


@dataclass(frozen=True)
class ListRequest:
    """A client asks for the open, public rooms (of one type, or all)."""

    room: str | None = None


@dataclass(frozen=True)
class RoomList:
    """The answer to a :class:`ListRequest`: one dict per room."""

    rooms: list[dict[str, Any]]


Control = JoinRequest | Joined | JoinRefused | ListRequest | RoomList


def encode(message: Control) -> bytes:
    """The event payload of a control message."""
    if isinstance(message, JoinRequest):
        return encode_event(JOIN, (), {
            "room": message.room, "room_id": message.room_id,
            "create": message.create, "options": message.options,
        })
    if isinstance(message, Joined):
        return encode_event(JOINED, (), {
            "room_id": message.room_id, "room": message.room,
            "client_id": message.client_id, "window": message.reconnection_window,
            "tick": message.tick_interval, "max_input": message.max_input_size,
        })
    if isinstance(message, JoinRefused):
        return encode_event(REFUSED, (), {"reason": message.reason, "kind": message.kind})
    if isinstance(message, ListRequest):
        return encode_event(LIST, (), {"room": message.room})
    return encode_event(ROOMS, (), {"rooms": message.rooms})


def parse(event: Event) -> Control:
    """The control message an event carries; raises ProtocolError if it is malformed."""
    data = event.kwargs
    try:
        if event.event_type == JOIN:
            options = data.get("options") or {}
            if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
                raise ProtocolError("join options must be a dict with str keys")
            return JoinRequest(
                _optional_str(data.get("room")),
                _optional_str(data.get("room_id")),
                bool(data.get("create", False)),
                options,
            )
        if event.event_type == JOINED:
            return Joined(
                _str(data["room_id"]),
                _optional_str(data.get("room")),
                _str(data["client_id"]),
                float(data["window"]),
                _interval(data.get("tick", 0.02)),
                _input_size(data.get("max_input", DEFAULT_MAX_INPUT_SIZE)),
            )
        if event.event_type == REFUSED:
            return JoinRefused(_str(data["reason"]), _str(data["kind"]))
        if event.event_type == LIST:
            return ListRequest(_optional_str(data.get("room")))
        if event.event_type == ROOMS:
            rooms = data["rooms"]
            if not isinstance(rooms, list) or not all(isinstance(r, dict) for r in rooms):
                raise ProtocolError("a room list must be a list of dicts")
            return RoomList(rooms)
    except (KeyError, TypeError, ValueError) as error:
        raise ProtocolError(f"malformed control message {event.event_type!r}: {error}") from error
    raise ProtocolError(f"unknown control message {event.event_type!r}")


def _input_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 255:
        raise ValueError(f"a maximum input size of {value!r} bytes")
    return value


def _interval(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.001 <= value <= 10:
        raise ProtocolError("a tick interval must be 0.001 to 10 seconds")
    return float(value)


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ProtocolError("expected a str")
    return value


def _optional_str(value: object) -> str | None:
    return None if value is None else _str(value)
