"""Seats that survive an outage: a room keeps a dropped client's seat for its window."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, ClassVar

import pytest

from pygase_core import (
    Client,
    ClientStatus,
    EventQueueFullError,
    GameState,
    Room,
    RoomClient,
    Server,
)
from pygase_core.protocol.linksim import Direction, LinkConditions
from tests.clients import read
from tests.waiting import wait_for

BLACKOUT = LinkConditions(Direction(loss=1.0), Direction(loss=1.0))


class Relay(Room):
    """Notes from clients go into the state; a POKE makes the room ping one client."""

    max_clients = 4
    reconnection_window = 10.0
    leaves: ClassVar[list[tuple[str, bool]]] = []
    notes: ClassVar[Counter[tuple[str, int]]] = Counter()

    def on_create(self, options: dict[str, Any]) -> GameState:
        self.register_event_handler("NOTE", self.on_note)
        self.register_event_handler("POKE", self.on_poke)
        return GameState(notes={}, ticks=0)

    def time_step(self, game_state: GameState, dt: float) -> dict[str, Any]:
        return {"ticks": game_state.ticks + 1}

    def on_note(self, n: int, client: RoomClient, game_state: GameState) -> dict[str, Any]:
        Relay.notes[(client.id, n)] += 1
        return {"notes": {f"{client.id}:{n}": True}}

    def on_poke(self, target: str, n: int) -> None:
        self.dispatch_event("PING", n, target_client=target)

    def on_leave(
        self, client: RoomClient, consented: bool, game_state: GameState
    ) -> None:
        Relay.leaves.append((client.id, consented))


class Brief(Relay):
    reconnection_window = 1.0


@pytest.fixture
def server() -> Any:
    Relay.leaves.clear()
    Relay.notes.clear()
    server = Server()
    server.define("relay", Relay)
    server.define("brief", Brief)
    server.run_in_thread()
    yield server
    server.shutdown()


def seated(server: Server, clients: list[Client], room: str, pings: list[int]) -> Client:
    client = Client()
    lock = threading.Lock()

    def ping(n: int) -> None:
        with lock:
            pings.append(n)

    client.register_event_handler("PING", ping)
    assert server.port
    client.connect_in_thread(server.port, room=room)
    clients.append(client)
    return client


def test_a_blackout_keeps_the_seat_and_loses_no_event(
    server: Server, clients: list[Client]
) -> None:
    pings: list[int] = []
    traveller = seated(server, clients, "relay", pings)
    friend = seated(server, clients, "relay", [])
    assert traveller.room_id == friend.room_id and traveller.id
    seat, room_id = traveller.id, traveller.room_id
    wait_for(lambda: read(traveller, "ticks", 0) > 3)

    traveller.link = BLACKOUT
    wait_for(lambda: traveller.status is ClientStatus.RECONNECTING, timeout=10)
    for n in range(3):
        traveller.dispatch_event("NOTE", n)  # retries=0: sent once the link is back
        friend.dispatch_event("POKE", seat, n)
    traveller.link = LinkConditions()

    wait_for(lambda: traveller.status is ClientStatus.CONNECTED, timeout=15)
    wait_for(lambda: sorted(pings) == [0, 1, 2], timeout=10, message=f"pings: {pings}")
    wait_for(lambda: all(Relay.notes[(seat, n)] == 1 for n in range(3)), timeout=10)
    assert traveller.id == seat and traveller.room_id == room_id
    assert Relay.leaves == []
    # Its state catches up with everybody else's.
    wait_for(lambda: read(traveller, "notes", {}) == read(friend, "notes", {}))
    wait_for(lambda: abs(read(traveller, "ticks") - read(friend, "ticks")) <= 2)
    assert sorted(pings) == [0, 1, 2] and set(Relay.notes.values()) == {1}


def test_an_outage_longer_than_the_window_ends_the_seat(
    server: Server, clients: list[Client]
) -> None:
    lost = seated(server, clients, "brief", [])
    seated(server, clients, "brief", [])
    seat = lost.id
    lost.link = BLACKOUT
    wait_for(lambda: (seat, False) in Relay.leaves, timeout=15, message="no on_leave")
    wait_for(lambda: lost.status is ClientStatus.DISCONNECTED, timeout=15)
    assert lost.disconnect_reason
    assert Relay.leaves.count((seat, False)) == 1


def test_leaving_on_purpose_is_a_consented_leave(server: Server, clients: list[Client]) -> None:
    leaver = seated(server, clients, "relay", [])
    seated(server, clients, "relay", [])
    seat = leaver.id
    leaver.disconnect()
    wait_for(lambda: (seat, True) in Relay.leaves)


class Bounded(Relay):
    refused: ClassVar[list[int]] = []

    def on_poke(self, target: str, n: int) -> None:
        try:
            self.dispatch_event("PING", n, target_client=target)
        except EventQueueFullError:
            Bounded.refused.append(n)


def test_a_rooms_events_to_an_absent_client_are_bounded_not_dropped(
    clients: list[Client],
) -> None:
    Bounded.refused.clear()
    server = Server()
    server.define("bounded", Bounded)
    server.max_pending_events = 3
    server.run_in_thread()
    try:
        pings: list[int] = []
        away = seated(server, clients, "bounded", pings)
        friend = seated(server, clients, "bounded", [])
        away.link = BLACKOUT
        wait_for(lambda: away.status is ClientStatus.RECONNECTING, timeout=10)
        for n in range(5):
            friend.dispatch_event("POKE", away.id, n, retries=3)
        wait_for(lambda: Bounded.refused == [3, 4], message=f"refused: {Bounded.refused}")
        away.link = LinkConditions()
        wait_for(lambda: sorted(pings) == [0, 1, 2], timeout=15, message=f"pings: {pings}")
    finally:
        server.shutdown()
