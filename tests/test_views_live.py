"""Views and precision over real loopback UDP: Server(views=...), rooms, loss, late joiners."""

from __future__ import annotations

import math
import socket
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from pygase_core import (
    Client,
    GameState,
    GameStateStore,
    GameStateUpdate,
    JoinRefusedError,
    Room,
    RoomClient,
    Server,
)
from pygase_core.model.views import GridView, PrivateField
from pygase_core.protocol.linksim import LinkConditions
from tests.clients import connect
from tests.waiting import wait_for

CELL = 10.0


class SentDatagrams:
    """Every datagram this process sends, with its destination (the one layer all sends use)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []
        self._lock = threading.Lock()

    def to(self, port: int) -> list[bytes]:
        """What was sent to the local port ``port`` (a client's)."""
        with self._lock:
            return [data for data, to in self.sent if to[1] == port]


@pytest.fixture
def datagrams(monkeypatch: pytest.MonkeyPatch) -> Iterator[SentDatagrams]:
    # uvloop (the fast extra) sends without Python's socket class: watch the plain loop's sends.
    monkeypatch.setenv("PYGASE_EVENT_LOOP", "asyncio")
    record = SentDatagrams()
    # uvloop sends without socket.socket.sendto: watch the datagrams on asyncio's own loop.
    monkeypatch.setenv("PYGASE_EVENT_LOOP", "asyncio")
    original = socket.socket.sendto

    def sendto(sock: socket.socket, data: Any, *args: Any) -> int:
        with record._lock:
            record.sent.append((bytes(data), args[-1]))
        return original(sock, data, *args)

    monkeypatch.setattr(socket.socket, "sendto", sendto)
    yield record


def cell(entry: dict[str, Any]) -> tuple[int, int]:
    return math.floor(entry["x"] / CELL), math.floor(entry["y"] / CELL)


def view(state: GameState, own: Any, player: Any) -> dict[str, Any]:
    """The reference: what a client owning entity ``own`` and player ``player`` may hold."""
    if own in state.entities:
        cx, cy = cell(state.entities[own])
        entities = {
            key: entry for key, entry in state.entities.items()
            if abs(cell(entry)[0] - cx) <= 1 and abs(cell(entry)[1] - cy) <= 1
        }
    else:
        entities = {}
    players = {
        key: {k: v for k, v in entry.items() if k != "hand" or key == player}
        for key, entry in state.players.items()
    }
    return {**state.to_dict(), "entities": entities, "players": players}


def held(client: Client) -> dict[str, Any]:
    with client.access_game_state() as state:
        return state.to_dict()


class Game:
    """A one-world server whose clients each own an entity and a player, learnt at join."""

    def __init__(self, link: LinkConditions | None = None) -> None:
        entities = {i: {"x": (i % 10) * 6.0 + 0.123456, "y": (i // 10) * 6.0} for i in range(60)}
        players = {f"p{i}": {"name": f"n{i}", "hand": f"secret-hand-{i}-xxx"} for i in range(4)}
        self.store = GameStateStore(
            GameState(entities=entities, players=players), precision={"entities": 0.01}
        )
        self.own: dict[Any, int] = {}
        self.player: dict[Any, str] = {}
        self.server = Server(self.store, link=link, views=[
            GridView("entities", cell_size=CELL, radius=CELL, entity=self.own.get),
            PrivateField("players.*.hand", owner=self.player.get),
        ])
        self.server.on_client_joined(self.joined)

    def joined(self, address: Any) -> None:
        number = len(self.own)
        self.own[address] = number * 13
        self.player[address] = f"p{number}"

    def push(self, **changes: Any) -> None:
        self.store.push_update(GameStateUpdate(self.store.time_order + 1, **changes))

    def expected(self, client: Client) -> dict[str, Any]:
        address = self.address_of(client)
        with self.store.lock:
            return view(self.store.get_game_state(), self.own[address], self.player[address])

    def address_of(self, client: Client) -> Any:
        port = client_port(client)
        return next(address for address in self.own if address[1] == port)


def client_port(client: Client) -> int:
    """The local port of a client's socket (the server knows the client by it)."""
    driver = client._driver
    assert driver is not None
    return int(driver.sockname[1])


def test_a_late_joiner_with_views_and_precision_converges_and_never_sees_others_hands(
    clients: list[Client], datagrams: SentDatagrams
) -> None:
    game = Game()
    game.server.run_in_thread()
    try:
        assert game.server.port
        first = connect(clients, game.server.port)
        wait_for(lambda: len(game.own) == 1)
        for tick in range(20):
            game.push(entities={i: {"x": (i % 10) * 6.0 + tick * 0.37} for i in range(0, 60, 3)})
        late = connect(clients, game.server.port)
        wait_for(lambda: len(game.own) == 2)
        game.push(players={"p1": {"hand": "secret-hand-1-changed!"}})
        for client in (first, late):
            wait_for(lambda c=client: held(c) == game.expected(c), message="no convergence")
        # The values are the server's, bit for bit, and quantized to the step.
        entities = held(late)["entities"]
        assert entities and all(round(e["x"] / 0.01) * 0.01 == e["x"] for e in entities.values())
        for client in (first, late):
            number = game.own[game.address_of(client)] // 13
            sent = datagrams.to(client_port(client))
            assert sent
            for other in range(4):
                if other != number:
                    assert f"secret-hand-{other}".encode() not in b"".join(sent)
                    assert "hand" not in held(client)["players"][f"p{other}"]
    finally:
        game.server.shutdown()


def test_an_entity_crossing_the_view_edge_under_loss_ends_where_the_server_has_it(
    clients: list[Client],
) -> None:
    game = Game(link=LinkConditions.symmetric(loss=0.2, seed=12))
    game.server.run_in_thread()
    try:
        assert game.server.port
        client = connect(clients, game.server.port)
        wait_for(lambda: game.own)
        # Entity 5 (x = 30) walks across the edge of the view of entity 0's client (cells
        # -1..1, x below 20) and back, many times, ending inside it, then outside, then in.
        for tick in range(40):
            x = 19.0 + 4.0 * math.cos(tick * 1.3)
            game.push(entities={5: {"x": x, "y": 0.0}})
            version = game.store.time_order
            wait_for(lambda v=version: client.connection and (  # type: ignore[misc]
                client.connection.applied_time_order or 0) >= v)
        game.push(entities={5: {"x": 12.0}})
        wait_for(lambda: held(client) == game.expected(client), message="not converged inside")
        game.push(entities={5: {"x": 25.0}})
        wait_for(lambda: held(client) == game.expected(client), message="not converged outside")
        assert 5 not in held(client)["entities"] and client.left_view.get("entities") == {5}
        game.push(entities={5: {"x": 12.5}})
        wait_for(lambda: held(client) == game.expected(client), message="not converged inside")
        assert held(client)["entities"][5] == {"x": 12.5, "y": 0.0}
        assert client.left_view == {}
    finally:
        game.server.shutdown()


class Arena(Room):
    """A room whose seats own an entity each; the others' secrets stay on the server."""

    max_clients = 4
    precision: ClassVar[dict[str, float]] = {"units": 0.5}

    def on_create(self, options: dict[str, Any]) -> GameState:
        self.views = [
            GridView("units", cell_size=CELL, radius=CELL, entity=self.unit_of),
            PrivateField("units.*.secret", owner=self.unit_of),
        ]
        self.seats: dict[str, str] = {}
        units = {f"u{i}": {"x": i * 7.3, "y": 1.0, "secret": f"room-secret-{i}"} for i in range(12)}
        return GameState(units=units, seats={})

    def unit_of(self, client: RoomClient) -> str | None:
        return self.seats.get(client.id)

    def on_join(
        self, client: RoomClient, options: dict[str, Any], game_state: GameState
    ) -> dict[str, Any]:
        self.seats[client.id] = unit = f"u{len(self.seats) * 6}"
        return {"seats": {client.id: unit}}  # a new version: views are evaluated with each


def test_rooms_send_each_seat_its_view_with_the_rooms_precision(
    clients: list[Client], datagrams: SentDatagrams
) -> None:
    server = Server()
    server.define("arena", Arena)
    server.run_in_thread()
    try:
        assert server.port
        client = Client()
        client.connect_in_thread(server.port, room="arena")
        clients.append(client)
        wait_for(lambda: held(client).get("units"))
        # u0 is at x=0: cells -1..1 hold x up to 20, so u0, u1 and u2 (7.3 is 7.5 at a step of
        # 0.5, 14.6 is 14.5); its own secret and nobody else's.
        assert held(client)["units"] == {
            "u0": {"x": 0.0, "y": 1.0, "secret": "room-secret-0"},
            "u1": {"x": 7.5, "y": 1.0},
            "u2": {"x": 14.5, "y": 1.0},
        }
        sent = b"".join(datagrams.to(client_port(client)))
        assert b"room-secret-0" in sent
        for i in range(1, 12):
            assert f"room-secret-{i}".encode() not in sent
    finally:
        server.shutdown()


def test_views_need_the_one_world_and_rooms_check_theirs_at_define() -> None:
    with pytest.raises(ValueError, match="one world"):
        Server(views=[PrivateField("players.*.hand", owner=str)])

    class Bad(Room):
        precision: ClassVar[dict[str, float]] = {"units": -1}

    with pytest.raises(ValueError, match="positive"):
        Server().define("bad", Bad)


class BadViews(Room):
    def on_create(self, options: dict[str, Any]) -> GameState:
        self.views = [PrivateField("units.*.secret", owner=lambda client: None), "garbage"]
        return GameState(units={"u": {"secret": "room-secret"}})


def test_a_room_whose_on_create_sets_bad_views_refuses_joins_and_stays_up(
    clients: list[Client], caplog: pytest.LogCaptureFixture
) -> None:
    server = Server()
    server.define("bad", BadViews)
    server.run_in_thread()
    try:
        assert server.port
        for _ in range(2):
            client = Client()
            clients.append(client)
            with pytest.raises(JoinRefusedError, match="views are not valid"):
                client.connect_in_thread(server.port, room="bad")
        assert server.running
        errors = [record for record in caplog.records if record.levelname == "ERROR"]
        assert 1 <= len(errors) <= 2  # once per room (the refused one's room may be gone)
        for error in errors:
            assert "views" in error.getMessage() and "not str" in (error.exc_text or "")
    finally:
        server.shutdown()


def test_a_servers_budget_use_shows_for_each_client(clients: list[Client]) -> None:
    store = GameStateStore(GameState(entities={i: [float(i), 0.0] for i in range(200)}))
    server = Server(store, max_bandwidth=16_000)
    server.run_in_thread()
    try:
        assert server.port
        client = connect(clients, server.port)
        for tick in range(1, 60):
            store.push_update(GameStateUpdate(tick, entities={
                i: [float(i) + tick, float(tick)] for i in range(200)
            }))
            wait_for(lambda: server.budget_use)
        expected = store.get_game_state().to_dict()
        wait_for(lambda: held(client) == expected, message="no convergence under the budget")
        (use,) = server.budget_use.values()
        assert use.limit == 16_000 and use.bytes_sent > 0
    finally:
        server.shutdown()
    with pytest.raises(ValueError, match="max_bandwidth"):
        Server(store, max_bandwidth=0)
