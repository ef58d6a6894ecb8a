"""Rooms at their edges: races with leaving and moving, slow or failing joins, bad classes."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, ClassVar

import pytest

from pygase_core import (
    Client,
    ConnectionFailed,
    ConnectTimeoutError,
    EventQueueFullError,
    GameState,
    GameStateStore,
    JoinRefusedError,
    PayloadTooLargeError,
    Room,
    RoomClient,
    Server,
    ServerFullError,
    UsageError,
)
from pygase_core.protocol.linksim import Direction, LinkConditions
from tests.test_adversarial import Relay
from tests.waiting import wait_for


class SlowDoor(Room):
    """on_auth takes a while and checks a password."""

    delay: ClassVar[float] = 1.0
    seen: ClassVar[list[str]] = []

    def on_auth(self, client: RoomClient, options: dict[str, Any]) -> Any:
        time.sleep(self.delay)
        SlowDoor.seen.append(str(options.get("password")))
        if options.get("password") != "secret":
            raise JoinRefusedError("wrong password")
        return None


@pytest.fixture
def server() -> Any:
    SlowDoor.seen.clear()
    server = Server()
    server.define("slow", SlowDoor)
    server.run_in_thread()
    yield server
    server.shutdown()


def attempt(port: int, **options: Any) -> tuple[Client, dict[str, Any], threading.Thread]:
    client = Client(connect_timeout=5.0)
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            client.connect_in_thread(port, **options)
            result["ok"] = True
        except Exception as error:
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return client, result, thread


def test_a_decision_never_reaches_the_next_session_from_the_same_address(server: Server) -> None:
    assert server.port
    relay = Relay(server.port)  # one outbound port: the next session comes from the same address
    try:
        first, _, _ = attempt(relay.port, room="slow", options={"password": "secret"})
        wait_for(lambda: server.connections)
        wait_for(lambda: first.connection is not None)
        first.disconnect()  # gone while its join is decided
        wait_for(lambda: not server.connections)
        second, result, thread = attempt(relay.port, room="slow", options={"password": "no"})
        thread.join(20)
        assert isinstance(result.get("error"), JoinRefusedError), result
        assert "no" in SlowDoor.seen  # the second session went through on_auth itself
        assert second.room_id is None
    finally:
        relay.close()


def test_a_session_that_moves_while_its_join_is_decided_gets_its_seat(server: Server) -> None:
    assert server.port
    relay = Relay(server.port)
    try:
        client, result, thread = attempt(relay.port, room="slow", options={"password": "secret"})
        wait_for(lambda: server.connections)
        relay.rebind()  # a NAT gives the client a new port mid-join
        thread.join(20)
        assert result.get("ok"), result
        assert client.room_id and len(server.rooms) == 1 and server.rooms[0].clients == 1
        client.disconnect()
    finally:
        relay.close()


def test_a_connect_fails_when_the_server_goes_away_during_the_join(server: Server) -> None:
    assert server.port
    _client, result, thread = attempt(server.port, room="slow", options={"password": "secret"})
    wait_for(lambda: server.connections)
    server.shutdown()
    thread.join(20)
    assert not thread.is_alive()
    assert isinstance(result.get("error"), ConnectionFailed), result


def test_an_unanswered_join_times_out() -> None:
    class Stuck(SlowDoor):
        delay = 4.0

    server = Server()
    server.define("stuck", Stuck)
    server.run_in_thread()
    try:
        assert server.port
        with pytest.raises(ConnectTimeoutError, match="did not answer the join"):
            Client(connect_timeout=1.0).connect_in_thread(
                server.port, room="stuck", options={"password": "secret"}
            )
    finally:
        server.shutdown()


class NoSeats(Room):
    def on_create(self, options: dict[str, Any]) -> GameState:
        self.max_clients = 0
        return GameState()


def test_a_room_that_takes_away_its_seats_refuses_once_and_is_gone() -> None:
    created: list[int] = []

    class Counted(NoSeats):
        def on_create(self, options: dict[str, Any]) -> GameState:
            created.append(1)
            return super().on_create(options)

    server = Server()
    server.define("none", Counted)
    server.run_in_thread()
    try:
        assert server.port
        with pytest.raises(ServerFullError):
            Client().connect_in_thread(server.port, room="none")
        wait_for(lambda: not server.rooms)
        assert len(created) <= 2  # one room, and at most one more for the single retry
    finally:
        server.shutdown()


def test_room_classes_that_cannot_work_are_refused_at_define() -> None:
    server = Server()
    for attribute, value in [
        ("max_clients", 0), ("max_clients", 2.5), ("tick_interval", 0),
        ("tick_interval", float("nan")), ("reconnection_window", -1), ("auto_dispose", "yes"),
    ]:
        bad = type("Bad", (Room,), {attribute: value})
        with pytest.raises(ValueError, match=attribute):
            server.define(f"bad-{attribute}-{value}", bad)

    class NeedsArguments(Room):
        def __init__(self, level: int) -> None:
            super().__init__()

    with pytest.raises(TypeError, match="without arguments"):
        server.define("args", NeedsArguments)
    server.define("fine", Room)
    with pytest.raises(ValueError, match="defined already"):
        server.define("fine", Room)
    with pytest.raises(TypeError, match="metadata"):
        Room().metadata = {"when": object()}


class Door(Room):
    def on_auth(self, client: RoomClient, options: dict[str, Any]) -> Any:
        if options.get("password") != "secret":
            raise JoinRefusedError("wrong password")


def test_a_created_room_outlives_a_refused_join() -> None:
    server = Server()
    server.define("door", Door)
    server.run_in_thread()
    try:
        assert server.port
        room_id = server.create_room("door")
        with pytest.raises(JoinRefusedError):
            Client().connect_in_thread(server.port, room_id=room_id, options={"password": "x"})
        assert [r.room_id for r in server.rooms] == [room_id]
        guest = Client()
        guest.connect_in_thread(server.port, room_id=room_id, options={"password": "secret"})
        assert guest.room_id == room_id
        guest.disconnect()
        wait_for(lambda: not server.rooms)  # once a client has sat in it, emptiness ends it
    finally:
        server.shutdown()


def test_a_stopping_server_waits_for_the_last_leave_and_dispose() -> None:
    events: list[str] = []

    class Polite(Room):
        def on_leave(self, client: RoomClient, consented: bool, game_state: GameState) -> None:
            time.sleep(0.2)
            events.append(f"leave {consented}")

        def on_dispose(self) -> None:
            events.append("dispose")

    server = Server()
    server.define("polite", Polite)
    server.run_in_thread()
    assert server.port
    player = Client()
    player.connect_in_thread(server.port, room="polite")
    server.shutdown()
    assert events == ["leave False", "dispose"]
    player.wait_until_disconnected(10)


def test_a_world_broadcast_is_not_held_back_by_room_clients() -> None:
    server = Server(GameStateStore(GameState()))
    server.define("door", Door)
    server.max_pending_events = 1
    server.run_in_thread()
    try:
        assert server.port
        roomer = Client()
        roomer.connect_in_thread(server.port, room="door", options={"password": "secret"})
        world = Client()
        world.connect_in_thread(server.port)
        roomer.link = LinkConditions(Direction(loss=1.0), Direction(loss=1.0))
        (address,) = [a for a, c in server.connections.items()
                      if roomer.connection and c.session_id == roomer.connection.session_id]
        server.dispatch_event("STUCK", target_client=address)  # unsettled while blacked out
        wait_for(lambda: server.connections[address].game_events_in_flight == 1)
        with pytest.raises(EventQueueFullError):
            server.dispatch_event("MORE", target_client=address)
        server.dispatch_event("HELLO")  # "all" is the one world: the room client is not in it
    finally:
        server.shutdown()


def test_oversized_join_options_fail_at_the_call(server: Server) -> None:
    assert server.port
    with pytest.raises(PayloadTooLargeError, match="join options"):
        Client().connect_in_thread(server.port, room="slow", options={"blob": b"x" * 2_000_000})


def test_list_rooms_inside_an_event_loop_points_at_its_coroutine_form(server: Server) -> None:
    assert server.port
    port = server.port

    async def inside() -> None:
        with pytest.raises(UsageError, match="list_rooms_async"):
            Client.list_rooms(port)
        assert await Client.list_rooms_async(port) == []

    asyncio.run(inside())
