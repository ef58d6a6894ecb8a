"""The game event: what a client or the server sends, as game logic sees it.

An :class:`Event` carries its type, its positional and keyword data, and the address of the client
it came from. How events travel is :mod:`pygase_core.protocol.eventwire`; how handlers are called
is :mod:`pygase_core.model.handlers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event"]


@dataclass(frozen=True)
class Event:
    """One event: its type, its data, and the client it came from (None when local).

    In a room, ``client`` is the seated :class:`~pygase_core.rooms.room.RoomClient` that sent
    it (handlers that accept a ``client`` argument get it).
    """

    event_type: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    client_address: tuple[Any, ...] | None = None
    client: Any = field(default=None, compare=False)
