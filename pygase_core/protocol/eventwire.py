"""The wire encoding of game events: a msgpack list of type, arguments and keyword arguments.

Encoding checks every value where the caller can still be told (``dispatch_event`` runs it in the
caller's thread); decoding never trusts the peer and raises :class:`ProtocolError` for anything
malformed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pygase_core.errors import ProtocolError
from pygase_core.model import codec
from pygase_core.model.events import Event

__all__ = ["decode_event", "encode_event"]


def encode_event(event_type: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bytes:
    """Encode an event's type and data for the wire.

    Raises:
        TypeError: if ``event_type`` or a keyword name is not a str.
        UnsupportedValueError: if an argument cannot be sent; the message names it.
    """
    if not isinstance(event_type, str):
        raise TypeError(f"event_type must be a str, not {type(event_type).__name__}")
    for name in kwargs:
        if not isinstance(name, str):
            raise TypeError(f"keyword argument names must be str, not {type(name).__name__}")
    for index, value in enumerate(args):
        codec.check_value(value, f"{event_type} event argument {index}")
    for name, value in kwargs.items():
        codec.check_value(value, f"{event_type} event argument {name!r}")
    return codec.pack([event_type, list(args), dict(kwargs)])


def decode_event(data: bytes) -> Event:
    """Decode an event from the wire; raise :class:`ProtocolError` if it is malformed."""
    decoded = codec.unpack(data)
    if type(decoded) is not list or len(decoded) != 3:
        raise ProtocolError("an event must be a list of type, arguments and keyword arguments")
    event_type, args, kwargs = decoded
    if type(event_type) is not str:
        raise ProtocolError("the event type is not a str")
    if type(args) is not list:
        raise ProtocolError("the event arguments are not a list")
    if type(kwargs) is not dict or not all(type(name) is str for name in kwargs):
        raise ProtocolError("the event keyword arguments are not a dict of names")
    return Event(event_type, tuple(args), kwargs)
