"""The seats a node holds for the holders of connect tokens a matchmaker issued.

A matchmaker reserves a seat through Redis and names it in the token it gives the player (the
token's client id is the seat's number). The node holds that seat, counted like a join being
decided, so neither another join nor the room's disposal can take it, until the token expires
(plus a little grace for the handshake). When the player's join arrives, the seat is the one its
token names, in the room the reservation named, whatever room the request asked for; a session
with no reserved seat is refused. An unused seat goes back at its expiry.

Everything here runs on the server's I/O loop (it is the server's :class:`JoinGate`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from pygase_core.edge.server import Server
from pygase_core.protocol.control import JoinRequest

HANDSHAKE_GRACE = 2.0
"""Seconds a seat is held past its token's expiry: a handshake begun just in time completes."""


@dataclass
class HeldSeat:
    """One reserved seat, not taken yet."""

    seat: int
    room_id: str
    expires_at: float
    timer: asyncio.TimerHandle | None = None


class SeatReservations:
    """The node's held seats, keyed by the seat number its tokens carry as client id."""

    def __init__(self, server: Server, grace: float = HANDSHAKE_GRACE) -> None:
        self._server = server
        self._grace = grace
        self._held: dict[int, HeldSeat] = {}
        self.used = 0
        """Reservations a client took up."""
        self.expired = 0
        """Reservations that went unused until their expiry."""
        self.refused = 0
        """Joins refused for want of a reserved seat."""

    def __len__(self) -> int:
        return len(self._held)

    def held_in(self, room_id: str) -> int:
        """Seats held (not taken yet) in one room."""
        return sum(1 for held in self._held.values() if held.room_id == room_id)

    def hold(self, seat: int, room_id: str, expires_at: float, *, new_room: bool = False) -> str:
        """Hold a seat in a room until ``expires_at`` (Unix time); ``"ok"`` or why not.

        Why not: ``"gone"`` (no such room, or it is being disposed of), ``"full"``, or
        ``"duplicate"`` (the seat number is held already). ``new_room`` marks a room made for
        this reservation, so that it goes away again if nobody comes.
        """
        record = self._server._matchmaker.rooms.get(room_id)
        if record is None or record.disposing:
            return "gone"
        if seat in self._held:
            return "duplicate"
        if record.free <= 0:
            return "full"
        record.pending += 1
        if new_room:
            record.disposable = True
        held = HeldSeat(seat, room_id, expires_at)
        delay = max(0.0, expires_at + self._grace - time.time())
        held.timer = asyncio.get_running_loop().call_later(delay, self._expire, seat)
        self._held[seat] = held
        return "ok"

    def admit(self, token_client_id: int | None, request: JoinRequest) -> JoinRequest | str:
        """The server's join gate: the held seat's room for its token's holder, or a refusal."""
        held = self._held.pop(token_client_id, None) if token_client_id is not None else None
        if held is None:
            self.refused += 1
            return (
                "no seat is reserved for this connect token (it expired, was used, or came"
                " from no matchmaker): ask the matchmaker again"
            )
        if held.timer is not None:
            held.timer.cancel()
        self.used += 1
        record = self._server._matchmaker.rooms.get(held.room_id)
        if record is not None:
            record.pending -= 1  # the join that follows counts the seat from here on
        return JoinRequest(None, held.room_id, False, dict(request.options))

    def release_all(self) -> None:
        """The node stops: every held seat goes (the rooms are disposed of anyway)."""
        for held in self._held.values():
            if held.timer is not None:
                held.timer.cancel()
        self._held.clear()

    def _expire(self, seat: int) -> None:
        held = self._held.pop(seat, None)
        if held is None:
            return
        self.expired += 1
        record = self._server._matchmaker.rooms.get(held.room_id)
        if record is not None:
            record.pending -= 1
            self._server._dispose_if_empty(record)
