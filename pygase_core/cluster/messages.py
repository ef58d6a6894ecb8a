"""What matchmakers and nodes say to each other through Redis: requests and their answers.

A request is queued to a node's inbox by a registry script (see
:mod:`pygase_core.cluster.registry`) as one line saying what it is (``create``, or ``reserve``
and the room id) and a JSON body; the node answers into the matchmaker's reply list. Both come
from the network, so :func:`parse_request` and :func:`parse_reply` check every field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SeatRequest:
    """Reserve a seat (in ``room_id``, or in a new room of type ``room``) for one token."""

    kind: str
    """``"reserve"`` (a seat in an existing room) or ``"create"`` (a new room and a seat)."""
    request_id: str
    reply_to: str
    room: str
    seat: int
    expires_at: int
    deadline_ms: int
    """When the matchmaker stops waiting: a node that gets the request later refuses it."""
    options: dict[str, Any] = field(default_factory=dict)
    room_id: str = ""

    def body(self) -> str:
        return json.dumps({
            "id": self.request_id, "reply_to": self.reply_to, "room": self.room,
            "seat": self.seat, "expires_at": self.expires_at, "deadline": self.deadline_ms,
            "options": self.options,
        }, separators=(",", ":"))


@dataclass(frozen=True)
class SeatReply:
    """A node's answer: ``ok`` with the room id, or the kind of refusal and its reason."""

    request_id: str
    ok: bool
    room_id: str = ""
    kind: str = ""
    """``"full"``, ``"gone"``, ``"late"``, ``"refused"`` (the room type or class failed)."""
    reason: str = ""

    def to_text(self) -> str:
        return json.dumps({
            "id": self.request_id, "ok": self.ok, "room_id": self.room_id,
            "kind": self.kind, "reason": self.reason,
        }, separators=(",", ":"))


def parse_request(text: str) -> SeatRequest:
    """A request from an inbox entry; raises ValueError if it is malformed."""
    head, newline, body = text.partition("\n")
    if not newline:
        raise ValueError("an inbox entry needs a header line and a body")
    kind, _, room_id = head.partition(" ")
    if kind not in ("reserve", "create") or (kind == "reserve") != bool(room_id):
        raise ValueError(f"unknown inbox entry {head[:40]!r}")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("a request body must be a JSON object")
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise ValueError("a request's options must be an object")
    seat, expires_at, deadline = data.get("seat"), data.get("expires_at"), data.get("deadline")
    for name, value in (("seat", seat), ("expires_at", expires_at), ("deadline", deadline)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"a request's {name} must be an integer")
    assert isinstance(seat, int) and isinstance(expires_at, int) and isinstance(deadline, int)
    if not 0 <= seat < 2**64:
        raise ValueError("a request's seat must fit in 64 bits")
    strings = [data.get(name) for name in ("id", "reply_to", "room")]
    if not all(isinstance(value, str) and value for value in strings):
        raise ValueError("a request needs its id, reply_to and room as strings")
    request_id, reply_to, room = (str(value) for value in strings)
    return SeatRequest(kind, request_id, reply_to, room, seat, expires_at, deadline, options,
                       room_id)


def parse_reply(text: str) -> SeatReply:
    """An answer from a reply list; raises ValueError if it is malformed."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise ValueError("a reply must be a JSON object with an id")
    return SeatReply(
        str(data["id"]), data.get("ok") is True, str(data.get("room_id", "")),
        str(data.get("kind", "")), str(data.get("reason", "")),
    )
