"""The public API over real UDP on loopback: Server, Client, Backend and GameStateMachine."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pygase_core import (
    Backend,
    Client,
    ClientStatus,
    GameState,
    GameStateStore,
    GameStateUpdate,
    GameStatus,
    NotConnectedError,
    PayloadTooLargeError,
    Server,
    ServerFullError,
    ShutdownRefusedError,
)
from pygase_core.errors import ConnectTimeoutError
from pygase_core.protocol.packets import encode_data_header, encode_event_floor, encode_request
from tests.clients import connect, read
from tests.waiting import wait_for


@pytest.fixture
def seed_backend() -> Iterator[Backend]:
    """The seed documentation's Backend example, with the dict keys quoted."""
    backend = Backend(
        initial_game_state=GameState(foo=0.0, bar=0.5),
        time_step_function=lambda game_state, dt: {"foo": game_state.foo + game_state.bar * dt},
        event_handlers={
            "RESET_FOO": lambda game_state, dt: {"foo": 0.0},
            "SET_BAR": lambda new_bar, game_state, dt: {"bar": new_bar},
        },
    )
    backend.run_in_thread(hostname="localhost", port=0)
    yield backend
    backend.shutdown()


def test_seed_backend_example(seed_backend: Backend, clients: list[Client]) -> None:
    port = seed_backend.server.port
    assert port
    client = connect(clients, port)
    assert client.status is ClientStatus.CONNECTED
    wait_for(lambda: (read(client, "foo") or 0) > 0.1)
    # foo grows at bar per second of wall time.
    with client.access_game_state() as state:
        foo0, t0 = state.foo, time.monotonic()
        assert state.game_status == GameStatus.get("Active")
    wait_for(lambda: time.monotonic() - t0 > 1.0)
    growth = read(client, "foo") - foo0
    assert 0.35 < growth < 0.65, growth
    client.dispatch_event("SET_BAR", 10.0, retries=3)
    wait_for(lambda: read(client, "bar") == 10.0)
    wait_for(lambda: read(client, "foo") > 5.0)
    client.dispatch_event("RESET_FOO", retries=3)
    wait_for(lambda: read(client, "foo") < 1.0)


def test_new_and_late_clients_get_a_large_state(clients: list[Client]) -> None:
    entities = {i: {"x": i * 0.5, "y": -i * 0.25, "tag": f"e{i}"} for i in range(3000)}
    store = GameStateStore(GameState(entities=entities))
    server = Server(store)
    server.run_in_thread()
    try:
        assert server.port
        first = connect(clients, server.port)
        wait_for(lambda: read(first, "entities") == entities)
        for step in range(1, 30):
            store.push_update(GameStateUpdate(step, entities={step: {"x": -1.0}}))
        late = connect(clients, server.port)
        wait_for(lambda: read(late, "entities") is not None)
        expected = store.get_game_state().entities
        wait_for(lambda: read(late, "entities") == expected)
        wait_for(lambda: read(first, "entities") == expected)
    finally:
        server.shutdown()


def test_events_both_ways_with_acks_and_client_address(clients: list[Client]) -> None:
    store = GameStateStore(GameState())
    server = Server(store)
    seen: list[tuple[Any, ...]] = []
    server.register_event_handler("HELLO", lambda name, client_address: seen.append(
        (name, client_address)))
    server.run_in_thread()
    try:
        assert server.port
        alice = connect(clients, server.port)
        bob = connect(clients, server.port)
        got: dict[str, list[Any]] = {"alice": [], "bob": []}
        alice.register_event_handler("NEWS", lambda text, **kw: got["alice"].append((text, kw)))
        bob.register_event_handler("NEWS", lambda text, **kw: got["bob"].append((text, kw)))
        acked = threading.Event()
        alice.dispatch_event("HELLO", "alice", retries=2, ack_callback=acked.set)
        wait_for(lambda: seen)
        assert acked.wait(5)
        name, address = seen[0]
        assert name == "alice" and address in server.connections
        server_acks: list[Any] = []
        server.dispatch_event("NEWS", "to all", target_client="all", retries=1, urgent=True,
                              ack_callback=server_acks.append)
        wait_for(lambda: got["alice"] and got["bob"])
        assert got["alice"] == [("to all", {"urgent": True})]
        wait_for(lambda: len(server_acks) == 2)
        server.dispatch_event("NEWS", "only alice", target_client=address)
        wait_for(lambda: len(got["alice"]) == 2)
        assert got["alice"][1][0] == "only alice"
        assert len(got["bob"]) == 1
    finally:
        server.shutdown()


def test_bad_input_raises_at_the_call(clients: list[Client]) -> None:
    server = Server(GameStateStore(GameState()), max_event_size=4096)
    with pytest.raises(NotConnectedError):
        server.dispatch_event("X")
    server.run_in_thread()
    try:
        assert server.port
        client = connect(clients, server.port, max_event_size=4096)
        with pytest.raises(TypeError):
            client.dispatch_event("X", {1, 2})
        with pytest.raises(TypeError):
            client.dispatch_event(42)  # type: ignore[arg-type]
        with pytest.raises(PayloadTooLargeError):
            client.dispatch_event("X", b"x" * 5000)
        with pytest.raises(TypeError):
            server.dispatch_event("X", object())
        with pytest.raises(NotConnectedError):
            server.dispatch_event("X", target_client=("127.0.0.1", 1))
        with pytest.raises(TypeError):
            GameStateStore(initial_game_state={"foo": 1})  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            GameStateUpdate(1, foo={1, 2})
    finally:
        server.shutdown()


def test_unhandled_and_failing_handlers_stop_nothing(
    seed_backend: Backend, clients: list[Client]
) -> None:
    assert seed_backend.server.port
    client = connect(clients, seed_backend.server.port)
    seed_backend.game_state_machine.register_event_handler("BOOM", lambda: 1 / 0)
    client.dispatch_event("NOBODY_HANDLES_THIS", retries=2)
    client.dispatch_event("BOOM", retries=2)
    client.dispatch_event("SET_BAR", 3.0, retries=2)
    wait_for(lambda: read(client, "bar") == 3.0)
    order = read(client, "time_order")
    wait_for(lambda: read(client, "time_order") > order + 5)  # the loop still runs


def test_full_server_raises_a_clear_error(clients: list[Client]) -> None:
    server = Server(GameStateStore(GameState()), max_clients=1)
    server.run_in_thread()
    try:
        assert server.port
        connect(clients, server.port)
        with pytest.raises(ServerFullError):
            Client().connect_in_thread(server.port)
    finally:
        server.shutdown()


def test_connecting_to_nothing_times_out_clearly() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        client = Client(connect_timeout=0.5)
        with pytest.raises(ConnectTimeoutError):
            client.connect_in_thread(port)
    assert client.status is ClientStatus.DISCONNECTED


def test_client_reports_a_vanished_server(clients: list[Client]) -> None:
    server = Server(GameStateStore(GameState()))
    server.run_in_thread()
    assert server.port
    client = connect(clients, server.port, timeout=1.0)
    server.shutdown()
    wait_for(lambda: client.status is ClientStatus.DISCONNECTED)
    assert client.disconnect_reason == "the server shut down"
    with pytest.raises(NotConnectedError):
        client.dispatch_event("X")


def test_silent_client_is_dropped_from_connections(clients: list[Client]) -> None:
    server = Server(GameStateStore(GameState()), timeout=0.5)
    server.run_in_thread()
    try:
        assert server.port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.sendto(encode_request(7), ("127.0.0.1", server.port))
            challenge, _ = sock.recvfrom(2048)
            from pygase_core.protocol.packets import encode_response

            sock.sendto(encode_response(7, challenge[12:]), ("127.0.0.1", server.port))
            sock.recvfrom(2048)
            wait_for(lambda: len(server.connections) == 1)
            wait_for(lambda: not server.connections, timeout=5)  # it never spoke again
    finally:
        server.shutdown()


def test_only_the_host_can_shut_the_server_down(clients: list[Client]) -> None:
    backend = Backend(GameState(x=0), lambda game_state, dt: {})
    thread = backend.run_in_thread()
    assert backend.server.port
    host = connect(clients, backend.server.port)
    guest = connect(clients, backend.server.port)
    assert host.is_host and not guest.is_host
    assert backend.server.host_client in backend.server.connections
    with pytest.raises(ShutdownRefusedError, match="not the host"):
        guest.disconnect(shutdown_server=True)  # it still leaves
    wait_for(lambda: len(backend.server.connections) == 1)
    assert backend.server.running
    host.disconnect(shutdown_server=True)
    thread.join(5)
    assert not thread.is_alive()
    assert not backend.server.running


def test_strangers_datagrams_change_nothing(clients: list[Client]) -> None:
    store = GameStateStore(GameState(n=0))
    server = Server(store)
    server.run_in_thread()
    try:
        assert server.port
        client = connect(clients, server.port)
        address = next(iter(server.connections))
        session = server.connections[address].session_id
        rng = random.Random(1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            target = ("127.0.0.1", server.port)
            stranger.sendto(b"\x00" * 12, target)
            stranger.sendto(b"shut_me_down", target)
            stranger.sendto(encode_data_header(session, 9, 0, 0) + encode_event_floor(99), target)
            for batch in range(20):
                for _ in range(25):
                    stranger.sendto(rng.randbytes(rng.randint(0, 1400)), target)
                # Paced, so the kernel's socket buffer never overflows and every one is seen.
                wait_for(lambda n=batch: sum(server.drops.values()) >= 3 + 25 * (n + 1))
        for i in range(1, 20):
            store.push_update(GameStateUpdate(i, n=i))
        wait_for(lambda: read(client, "n") == 19)
        assert list(server.connections) == [address]
        assert sum(server.drops.values()) >= 503
    finally:
        server.shutdown()


def test_server_is_restartable(clients: list[Client]) -> None:
    store = GameStateStore(GameState(n=1))
    server = Server(store)
    server.run_in_thread()
    assert server.port
    connect(clients, server.port)
    server.shutdown()
    assert server.port is None and server.hostname is None
    server.run_in_thread()
    try:
        assert server.port
        again = connect(clients, server.port)
        wait_for(lambda: read(again, "n") == 1)
    finally:
        server.shutdown()


def test_ipv6_loopback(clients: list[Client]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    server = Server(GameStateStore(GameState(v6=True)))
    server.run_in_thread(hostname="::1")
    try:
        assert server.hostname == "::1" and server.port
        client = Client()
        client.connect_in_thread(server.port, hostname="::1")
        clients.append(client)
        wait_for(lambda: read(client, "v6") is True)
    finally:
        server.shutdown()


def test_coroutine_forms_in_one_asyncio_program() -> None:
    async def main() -> list[float]:
        backend = Backend(GameState(x=0.0), lambda game_state, dt: {"x": game_state.x + dt})
        ready = threading.Event()
        serving = asyncio.create_task(backend.run_async(port=0, ready=ready))
        while not ready.is_set():
            await asyncio.sleep(0.01)
        client = Client()
        assert backend.server.port
        connected = threading.Event()
        session = asyncio.create_task(client.connect_async(backend.server.port, ready=connected))
        while client.status is not ClientStatus.CONNECTED:
            await asyncio.sleep(0.01)
        seen = []
        for _ in range(200):
            await asyncio.sleep(0.01)
            with client.access_game_state() as state:
                if getattr(state, "x", 0) > 0.2:
                    seen.append(state.x)
                    break
        await client.disconnect_async()
        await session
        await backend.shutdown_async()
        await serving
        return seen

    assert asyncio.run(asyncio.wait_for(main(), 20))


def test_join_and_leave_handlers_see_every_client(clients: list[Client]) -> None:
    server = Server(GameStateStore(GameState()), timeout=1.0)
    joined: list[Any] = []
    left: list[tuple[Any, str]] = []
    server.on_client_joined(joined.append)

    @server.on_client_left
    def remember(client_address: Any, reason: str) -> None:
        left.append((client_address, reason))

    server.on_client_joined(lambda client_address: 1 / 0)  # a failing handler harms nothing
    server.run_in_thread()
    assert server.port
    alice = connect(clients, server.port)
    bob = connect(clients, server.port)
    wait_for(lambda: len(joined) == 2)
    assert set(joined) == set(server.connections)
    alice.disconnect()
    wait_for(lambda: len(left) == 1)
    assert left[0][1] == "client left"
    server.shutdown()
    wait_for(lambda: len(left) == 2)
    assert left[1][1] == "server shutdown"
    wait_for(lambda: bob.status is ClientStatus.DISCONNECTED)


def test_a_client_whose_max_state_size_is_below_the_state_says_so_once(
    clients: list[Client], caplog: pytest.LogCaptureFixture
) -> None:
    entities = {i: {"name": f"entity-{i}", "x": float(i)} for i in range(2000)}
    store = GameStateStore(GameState(entities=entities))
    server = Server(store)
    server.run_in_thread(port=0, hostname="127.0.0.1")
    try:
        with caplog.at_level("ERROR", logger="pygase"):
            client = connect(clients, server.port, max_state_size=10_000)
            wait_for(lambda: client.drops.get("state over max_state_size", 0) >= 3, timeout=10)
        refusals = [r.getMessage() for r in caplog.records if "max_state_size" in r.getMessage()]
        assert len(refusals) == 1  # once, however many fragments it refuses
        assert "cannot receive the game state" in refusals[0] and "10,000" in refusals[0]
        assert client.status is ClientStatus.CONNECTED  # the session goes on
        assert "protocol violation" not in client.drops
        big = connect(clients, server.port)  # a client configured for it gets the state
        wait_for(lambda: read(big, "entities") == entities, timeout=10)
    finally:
        server.shutdown()
