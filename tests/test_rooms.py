"""Rooms over real loopback UDP: matchmaking, listings, lifecycle hooks, isolation, disposal."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any, ClassVar

import pytest

from pygase_core import (
    TO_DELETE,
    Client,
    GameState,
    JoinRefusedError,
    Room,
    RoomClient,
    Server,
    ServerFullError,
    ShutdownRefusedError,
)
from tests.clients import read
from tests.waiting import wait_for


class Chase(Room):
    """Players by seat id; each hook records the thread it ran on."""

    max_clients = 4
    threads: ClassVar[set[str]] = set()
    disposed: ClassVar[Counter[str]] = Counter()
    joins: ClassVar[Counter[str]] = Counter()
    leaves: ClassVar[Counter[str]] = Counter()

    def on_create(self, options: dict[str, Any]) -> GameState:
        self.metadata = {"mode": options.get("mode", "tag")}
        self.register_event_handler("MOVE", self.on_move)
        return GameState(players={}, ticks=0)

    def time_step(self, game_state: GameState, dt: float) -> dict[str, Any]:
        return {"ticks": game_state.ticks + 1}

    def on_join(
        self, client: RoomClient, options: dict[str, Any], game_state: GameState
    ) -> dict[str, Any]:
        Chase.threads.add(threading.current_thread().name)
        Chase.joins[client.id] += 1
        return {"players": {client.id: {"name": options.get("name", "?"), "x": 0}}}

    def on_leave(
        self, client: RoomClient, consented: bool, game_state: GameState
    ) -> dict[str, Any]:
        Chase.threads.add(threading.current_thread().name)
        Chase.leaves[client.id] += 1
        return {"players": {client.id: TO_DELETE}}

    def on_move(self, x: int, client: RoomClient, game_state: GameState) -> dict[str, Any]:
        return {"players": {client.id: {"x": x}}}

    def on_dispose(self) -> None:
        Chase.disposed[self.room_id] += 1


@pytest.fixture
def server() -> Any:
    Chase.threads.clear()
    Chase.disposed.clear()
    Chase.joins.clear()
    Chase.leaves.clear()
    server = Server(max_clients=256)
    server.define("chase", Chase, filter_by=("mode",))
    server.run_in_thread()
    yield server
    server.shutdown()


def join(clients: list[Client], server: Server, **options: Any) -> Client:
    client = Client()
    assert server.port
    client.connect_in_thread(server.port, **options)
    clients.append(client)
    return client


def test_two_hundred_joins_fill_fifty_rooms_of_four_in_order(server: Server) -> None:
    assert server.port
    port = server.port

    async def crowd() -> list[Client]:
        clients = [Client(connect_timeout=30) for _ in range(200)]
        tasks = [asyncio.create_task(c.connect_async(port, room="chase")) for c in clients]
        try:
            deadline = time.monotonic() + 60
            while not all(c.room_id for c in clients):
                assert time.monotonic() < deadline, "not every client got a seat"
                failed = [t for t in tasks if t.done() and t.exception()]
                assert not failed, failed[0].exception()
                await asyncio.sleep(0.05)
            rooms = Counter(c.room_id for c in clients)
            assert len(rooms) == 50 and set(rooms.values()) == {4}
            listed = server.rooms
            assert [r.clients for r in listed] == [4] * 50  # each filled, oldest first
            assert len({c.id for c in clients}) == 200
        finally:
            for client in clients:
                await client.disconnect_async()
            await asyncio.gather(*tasks, return_exceptions=True)
        return clients

    asyncio.run(crowd())
    wait_for(lambda: not server.rooms, timeout=20, message="rooms were not disposed")
    wait_for(lambda: len(Chase.disposed) == 50, timeout=20)
    assert set(Chase.disposed.values()) == {1}


def test_filter_by_keeps_modes_apart_and_listings_match(
    server: Server, clients: list[Client]
) -> None:
    a1 = join(clients, server, room="chase", options={"mode": "a"})
    b1 = join(clients, server, room="chase", options={"mode": "b"})
    a2 = join(clients, server, room="chase", options={"mode": "a"})
    assert a1.room_id == a2.room_id != b1.room_id
    assert server.port
    listed = {r.room_id: r for r in Client.list_rooms(server.port)}
    assert set(listed) == {a1.room_id, b1.room_id}
    assert listed[str(a1.room_id)].clients == 2 and listed[str(b1.room_id)].clients == 1
    assert listed[str(a1.room_id)].metadata == {"mode": "a"}
    assert listed[str(a1.room_id)].room == "chase" and listed[str(a1.room_id)].max_clients == 4
    only = Client.list_rooms(server.port, room="nothing-like-it")
    assert only == []


def test_private_rooms_are_never_offered_but_join_by_id(
    server: Server, clients: list[Client]
) -> None:
    owner = join(clients, server, room="chase", create=True, options={"private": True})
    stranger = join(clients, server, room="chase")
    assert stranger.room_id != owner.room_id
    friend = join(clients, server, room_id=owner.room_id)
    assert friend.room_id == owner.room_id
    assert server.port
    assert owner.room_id not in {r.room_id for r in Client.list_rooms(server.port)}


class Lockable(Chase):
    def on_join(
        self, client: RoomClient, options: dict[str, Any], game_state: GameState
    ) -> dict[str, Any]:
        if len(self.clients) >= 2:
            self.lock()
        return super().on_join(client, options, game_state)


def test_locked_rooms_are_not_offered(clients: list[Client]) -> None:
    server = Server()
    server.define("lockable", Lockable)
    server.run_in_thread()
    try:
        first = join(clients, server, room="lockable")
        second = join(clients, server, room="lockable")
        assert first.room_id == second.room_id
        wait_for(lambda: server.rooms[0].clients == 2)
        # The room locks itself on its second join (inside that step): wait for the lock.
        wait_for(lambda: server.port and not Client.list_rooms(server.port))
        third = join(clients, server, room="lockable")
        assert third.room_id != first.room_id
        late = join(clients, server, room_id=first.room_id)
        assert late.room_id == first.room_id
    finally:
        server.shutdown()


def test_join_and_leave_run_once_in_the_game_loop_and_show_in_the_state(
    server: Server, clients: list[Client]
) -> None:
    ann = join(clients, server, room="chase", options={"name": "Ann"})
    bob = join(clients, server, room="chase", options={"name": "Bob"})
    assert ann.id and bob.id
    wait_for(lambda: set(read(ann, "players", {})) == {ann.id, bob.id})
    wait_for(lambda: read(bob, "players", {}).get(ann.id, {}).get("name") == "Ann")
    bob.dispatch_event("MOVE", 7)
    wait_for(lambda: read(ann, "players", {}).get(bob.id, {}).get("x") == 7)
    bob.disconnect()
    wait_for(lambda: set(read(ann, "players", {})) == {ann.id})
    wait_for(lambda: Chase.leaves[str(bob.id)] == 1)
    assert Chase.joins[ann.id] == 1 and Chase.joins[bob.id] == 1
    assert Chase.leaves[ann.id] == 0
    assert all(name.startswith("pygase-room-chase-") for name in Chase.threads)


def test_a_clients_events_reach_only_its_own_room(server: Server, clients: list[Client]) -> None:
    here = join(clients, server, room="chase", options={"mode": "a"})
    there = join(clients, server, room="chase", options={"mode": "b"})
    wait_for(lambda: set(read(there, "players", {})) == {there.id})
    here.dispatch_event("MOVE", 42)
    wait_for(lambda: read(here, "players", {}).get(here.id, {}).get("x") == 42)
    assert there.id not in read(here, "players")
    assert set(read(there, "players", {})) == {there.id}
    assert read(there, "players")[there.id]["x"] == 0


class Guarded(Room):
    max_clients = 2

    def on_auth(self, client: RoomClient, options: dict[str, Any]) -> Any:
        if options.get("password") != "sesame":
            raise JoinRefusedError("wrong password")
        return {"user": options.get("user")}

    def on_join(
        self, client: RoomClient, options: dict[str, Any], game_state: GameState
    ) -> dict[str, Any]:
        return {"auth": client.auth}


def test_a_refusal_reaches_the_client_with_the_rooms_reason(clients: list[Client]) -> None:
    server = Server()
    server.define("guarded", Guarded)
    server.run_in_thread()
    try:
        assert server.port
        with pytest.raises(JoinRefusedError, match="wrong password"):
            Client().connect_in_thread(server.port, room="guarded", options={"password": "no"})
        ok = join(clients, server, room="guarded", options={"password": "sesame", "user": "ann"})
        wait_for(lambda: read(ok, "auth") == {"user": "ann"})
    finally:
        server.shutdown()


def test_no_capacity_left_raises_server_full(clients: list[Client]) -> None:
    server = Server(max_rooms=1)
    server.define("guarded", Guarded)
    server.run_in_thread()
    try:
        for _ in range(2):
            join(clients, server, room="guarded", options={"password": "sesame"})
        assert server.port
        with pytest.raises(ServerFullError, match="capacity"):
            Client().connect_in_thread(server.port, room="guarded", options={"password": "sesame"})
    finally:
        server.shutdown()


def test_unknown_rooms_and_bad_arguments_fail_at_the_call(server: Server) -> None:
    assert server.port
    with pytest.raises(JoinRefusedError, match="no room type"):
        Client().connect_in_thread(server.port, room="poker")
    with pytest.raises(JoinRefusedError, match="no room"):
        Client().connect_in_thread(server.port, room_id="not-a-room")
    with pytest.raises(JoinRefusedError, match="hosts rooms"):
        Client().connect_in_thread(server.port)  # this server has no one world
    with pytest.raises(ValueError, match="not both"):
        Client().connect_in_thread(server.port, room="chase", room_id="x")
    with pytest.raises(ValueError, match="create=True needs room"):
        Client().connect_in_thread(server.port, create=True)
    with pytest.raises(TypeError, match="options"):
        Client().connect_in_thread(server.port, room="chase", options=[1])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Client().connect_in_thread(server.port, room="chase", options={"bad": {1, 2}})
    with pytest.raises(TypeError, match="subclass"):
        server.define("nope", object)  # type: ignore[arg-type]


class Sleepy(Chase):
    def on_create(self, options: dict[str, Any]) -> GameState:
        self.register_event_handler("SLEEP", lambda: time.sleep(2.0))
        return super().on_create(options)


def test_one_rooms_sleeping_handler_does_not_stall_the_others(clients: list[Client]) -> None:
    server = Server()
    server.define("sleepy", Sleepy, filter_by=("mode",))
    server.run_in_thread()
    try:
        sleeper = join(clients, server, room="sleepy", options={"mode": "slow"})
        player = join(clients, server, room="sleepy", options={"mode": "fast"})
        assert sleeper.room_id != player.room_id
        wait_for(lambda: read(player, "ticks", 0) > 5)
        frozen = read(sleeper, "ticks")
        sleeper.dispatch_event("SLEEP")
        wait_for(lambda: read(sleeper, "ticks") == frozen, timeout=5)
        start = read(player, "ticks")
        ages: list[float] = []
        # While the other room sleeps, this room keeps ticking at its own rate.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            before = read(player, "ticks")
            seen = time.monotonic()
            wait_for(lambda before=before: read(player, "ticks") > before, timeout=5)
            ages.append(time.monotonic() - seen)
        assert read(player, "ticks") - start >= 20
        print(f"longest wait for the next tick while the other room slept: {max(ages):.3f} s")
        assert max(ages) < 0.5
    finally:
        server.shutdown()


def test_an_emptied_room_is_disposed_once_and_leaves_the_listing(
    server: Server, clients: list[Client]
) -> None:
    client = join(clients, server, room="chase")
    room_id = client.room_id
    assert server.port and [r.room_id for r in Client.list_rooms(server.port)] == [room_id]
    client.disconnect()
    wait_for(lambda: Chase.disposed[str(room_id)] == 1)
    assert server.port and Client.list_rooms(server.port) == []
    assert server.rooms == []
    time.sleep(0.2)
    assert Chase.disposed[str(room_id)] == 1


class Announcer(Room):
    max_clients = 3
    acks: ClassVar[list[str]] = []

    def on_join(
        self, client: RoomClient, options: dict[str, Any], game_state: GameState
    ) -> None:
        self.dispatch_event(
            "WELCOME", client.id, target_client=client, retries=3,
            ack_callback=lambda who: Announcer.acks.append(who.id),
        )
        self.dispatch_event("ARRIVED", client.id)


def test_a_room_dispatches_to_one_client_or_all(clients: list[Client]) -> None:
    server = Server()
    server.define("announcer", Announcer)
    server.run_in_thread()
    Announcer.acks.clear()
    try:
        got: dict[str, list[Any]] = {"first": [], "second": []}
        first = Client()
        first.register_event_handler("WELCOME", lambda who: got["first"].append(("W", who)))
        first.register_event_handler("ARRIVED", lambda who: got["first"].append(("A", who)))
        assert server.port
        first.connect_in_thread(server.port, room="announcer")
        clients.append(first)
        second = Client()
        second.register_event_handler("WELCOME", lambda who: got["second"].append(("W", who)))
        second.register_event_handler("ARRIVED", lambda who: got["second"].append(("A", who)))
        second.connect_in_thread(server.port, room="announcer")
        clients.append(second)
        wait_for(lambda: ("A", second.id) in got["first"] and ("A", second.id) in got["second"])
        assert ("W", first.id) in got["first"] and ("W", second.id) not in got["first"]
        assert ("W", second.id) in got["second"]
        wait_for(lambda: sorted(Announcer.acks) == sorted([first.id, second.id]))
    finally:
        server.shutdown()


def test_a_server_can_host_its_one_world_and_rooms_together(clients: list[Client]) -> None:
    from pygase_core import GameStateStore

    server = Server(GameStateStore(GameState(world="one")))
    server.define("chase", Chase)
    server.run_in_thread()
    try:
        assert server.port
        legacy = Client()
        legacy.connect_in_thread(server.port)
        clients.append(legacy)
        roomer = join(clients, server, room="chase")
        wait_for(lambda: read(legacy, "world") == "one")
        wait_for(lambda: read(roomer, "ticks", 0) > 0)
        assert read(roomer, "world") is None and legacy.room_id is None
    finally:
        server.shutdown()


class Lasting(Chase):
    auto_dispose = False


def test_idle_rooms_hold_no_thread_and_wake_on_the_next_join(
    server: Server, clients: list[Client]
) -> None:
    server.shutdown()  # this test runs its own (the fixture only resets the counters)
    server = Server()
    server.define("lasting", Lasting)
    server.run_in_thread()
    try:
        made = [server.create_room("lasting") for _ in range(20)]
        assert len(set(made)) == 20 and len(server.rooms) == 20
        visitor = join(clients, server, room_id=made[3])
        wait_for(lambda: read(visitor, "ticks", 0) > 3)
        visitor.disconnect()

        def room_threads() -> list[str]:
            return [t.name for t in threading.enumerate() if t.name.startswith("pygase-room-")]

        wait_for(lambda: not room_threads(), message=f"still running: {room_threads()}")
        assert len(server.rooms) == 20  # kept: auto_dispose is off
        again = join(clients, server, room_id=made[3])
        wait_for(lambda: read(again, "ticks", 0) > 3)
        assert not set(made) & set(Chase.disposed)
        with pytest.raises(ValueError, match="no room type"):
            server.create_room("nothing")
    finally:
        server.shutdown()
    assert all(Chase.disposed[room_id] == 1 for room_id in made)  # the server's end did


class Pair(Room):
    def on_create(self, options: dict[str, Any]) -> GameState:
        self.max_clients = 2  # fewer seats than the class says, decided at creation
        return GameState()


def test_seats_set_in_on_create_hold_for_joins_that_raced_the_creation() -> None:
    server = Server()
    server.define("pair", Pair)
    server.run_in_thread()
    try:
        assert server.port
        port = server.port

        async def six() -> list[str | None]:
            clients = [Client() for _ in range(6)]
            tasks = [asyncio.create_task(c.connect_async(port, room="pair")) for c in clients]
            try:
                deadline = time.monotonic() + 30
                while not all(c.room_id for c in clients):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
                return [c.room_id for c in clients]
            finally:
                for client in clients:
                    await client.disconnect_async()
                await asyncio.gather(*tasks, return_exceptions=True)

        rooms = Counter(asyncio.run(six()))
        assert sorted(rooms.values()) == [2, 2, 2]
    finally:
        server.shutdown()


def test_no_player_of_a_rooms_server_can_shut_it_down(server: Server) -> None:
    assert server.port
    player = Client()
    player.connect_in_thread(server.port, room="chase")
    assert not player.is_host and server.host_client is None
    with pytest.raises(ShutdownRefusedError):
        player.disconnect(shutdown_server=True)
    assert server.running


class Faulty(Room):
    """Every hook fails in its own way; the room must go on."""

    def on_create(self, options: dict[str, Any]) -> GameState:
        raise RuntimeError("no state today")

    def on_auth(self, client: RoomClient, options: dict[str, Any]) -> Any:
        if options.get("crash"):
            raise KeyError("auth backend down")
        return None

    def on_join(
        self, client: RoomClient, options: dict[str, Any], game_state: GameState
    ) -> dict[str, Any]:
        raise ValueError("join hook broken")

    def time_step(self, game_state: GameState, dt: float) -> dict[str, Any]:
        return {"alive": True}


def test_hooks_that_raise_are_logged_and_the_room_goes_on(
    clients: list[Client], caplog: pytest.LogCaptureFixture
) -> None:
    server = Server()
    server.define("faulty", Faulty)
    server.run_in_thread()
    try:
        assert server.port
        with pytest.raises(JoinRefusedError, match="could not decide"):
            Client().connect_in_thread(server.port, room="faulty", options={"crash": True})
        player = join(clients, server, room="faulty")
        wait_for(lambda: read(player, "alive") is True)
        text = caplog.text
        assert "no state today" in text and "auth backend down" in text
        assert "join hook broken" in text
    finally:
        server.shutdown()


class Tally(Room):
    max_clients = 2

    def on_create(self, options: dict[str, Any]) -> GameState:
        self.seen: dict[int, list[int]] = {}
        self.register_event_handler("N", self.on_n)
        return GameState(count=0)

    def on_n(self, thread: int, seq: int, game_state: GameState) -> dict[str, Any]:
        self.seen.setdefault(thread, []).append(seq)
        in_order = self.seen[thread] == list(range(len(self.seen[thread])))
        ordered = in_order and getattr(game_state, "ordered", True)
        return {"count": game_state.count + 1, "ordered": ordered}


def test_a_burst_from_several_threads_reaches_the_room_once_and_in_order(
    clients: list[Client],
) -> None:
    server = Server()
    server.define("tally", Tally)
    server.run_in_thread()
    try:
        player = join(clients, server, room="tally")

        def burst(thread: int) -> None:
            for seq in range(500):
                player.dispatch_event("N", thread, seq, retries=5)

        senders = [threading.Thread(target=burst, args=(t,)) for t in range(4)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        wait_for(lambda: read(player, "count") == 2000, timeout=60)
        assert read(player, "ordered") is True
    finally:
        server.shutdown()
