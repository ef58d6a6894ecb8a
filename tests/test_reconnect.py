"""Sessions that survive outages and address changes, end to end over real UDP on loopback.

A NAT that rebinds mid-game (a relay that switches to a new outbound socket), a blackout of
about three seconds on a real client, and the bound on events waiting for the link to return.
Timings are printed (``pytest -s``); the asserts use generous bounds.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from pygase_core import (
    Client,
    ClientStatus,
    EventQueueFullError,
    GameState,
    GameStateStore,
    Server,
)
from pygase_core.protocol.linksim import Direction, LinkConditions
from tests.clients import connect, read
from tests.test_adversarial import Recorder, Relay, counting_backend
from tests.waiting import wait_for

BLACKOUT = LinkConditions(Direction(loss=1.0), Direction(loss=1.0))


def address_of(server: Any, client: Client) -> Any:
    """The client's address as the server sees it (found by session id)."""
    connection = client.connection
    assert connection is not None
    return next(
        address for address, server_side in server.connections.items()
        if server_side.session_id == connection.session_id
    )


class StatusLog:
    """Every status a client goes through, sampled on a thread of its own."""

    def __init__(self, client: Client) -> None:
        self.seen: list[ClientStatus] = [client.status]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(client,), daemon=True)
        self._thread.start()

    def _run(self, client: Client) -> None:
        while not self._stop.is_set():
            if client.status is not self.seen[-1]:
                self.seen.append(client.status)
            time.sleep(0.002)

    def stop(self) -> list[ClientStatus]:
        self._stop.set()
        self._thread.join(1)
        return self.seen


def test_a_client_behind_a_nat_that_rebinds_keeps_its_session(clients: list[Client]) -> None:
    backend = counting_backend()
    at_server = Recorder()
    backend.server.register_event_handler("ADD", at_server.handle)
    backend.run_in_thread()
    server = backend.server
    assert server.port
    relay = Relay(server.port)
    try:
        client = connect(clients, relay.port)
        news = Recorder()
        client.register_event_handler("NEWS", news.handle)
        old = relay.address
        wait_for(lambda: old in server.connections)
        session_id = server.connections[old].session_id
        for n in range(1, 11):
            client.dispatch_event("ADD", n, retries=5)
            server.dispatch_event("NEWS", n, target_client=old, retries=5)
        wait_for(lambda: len(at_server.handled) == 10 and len(news.handled) == 10)
        for n in range(11, 16):  # in flight when the NAT rebinds
            client.dispatch_event("ADD", n, retries=5)
            server.dispatch_event("NEWS", n, target_client=old, retries=5)
        start = time.monotonic()
        new = relay.rebind()
        assert new != old
        wait_for(lambda: new in server.connections, timeout=5, message="the session never moved")
        moved_after = time.monotonic() - start
        assert server.connections[new].session_id == session_id  # the same session
        assert old not in server.connections and server.host_client == new
        for n in range(16, 21):
            client.dispatch_event("ADD", n, retries=5)
            server.dispatch_event("NEWS", n, target_client=new, retries=5)
        expected = list(range(1, 21))
        wait_for(lambda: len(at_server.handled) == 20 and len(news.handled) == 20, timeout=10)
        wait_for(lambda: read(client, "total") == sum(expected))
        time.sleep(0.3)  # room for a duplicate to show
        print(f"\nNAT rebinding: the session moved {moved_after * 1000:.0f} ms after it")
        assert at_server.handled == expected  # exactly once, in order, both ways
        assert news.handled == expected
        assert client.status is ClientStatus.CONNECTED
        assert moved_after < 2.0  # about a round trip (a prompt and a resume), here
    finally:
        relay.close()
        backend.shutdown()


def test_a_game_keyed_by_address_re_keys_its_player_when_the_session_moves(
    clients: list[Client],
) -> None:
    store = GameStateStore(GameState(scores={}))
    server = Server(store, host_client=None)
    players: dict[Any, str] = {}
    log: list[tuple[Any, ...]] = []
    lock = threading.Lock()

    @server.on_client_joined
    def joined(client_address: Any) -> None:
        with lock:
            players[client_address] = f"player {len(players) + 1}"

    @server.on_client_moved
    def moved(old_address: Any, new_address: Any) -> None:
        with lock:
            players[new_address] = players.pop(old_address)
            log.append(("moved", old_address, new_address))

    def score(n: int, client_address: Any) -> None:
        with lock:
            log.append(("score", n, client_address, players.get(client_address)))

    server.register_event_handler("SCORE", score)
    server.run_in_thread(port=0, hostname="127.0.0.1")
    relay = Relay(server.port)
    try:
        client = connect(clients, relay.port)
        old = relay.address
        wait_for(lambda: old in players)
        client.dispatch_event("SCORE", 1, retries=5)
        wait_for(lambda: len(log) == 1)
        new = relay.rebind()
        wait_for(lambda: new in server.connections, timeout=5, message="the session never moved")
        for n in range(2, 12):
            client.dispatch_event("SCORE", n, retries=5)
        wait_for(lambda: len(log) == 12, timeout=10)
        assert log[0] == ("score", 1, old, "player 1")
        assert log[1] == ("moved", old, new)  # once, before any event from the new address
        assert log[2:] == [("score", n, new, "player 1") for n in range(2, 12)]
        assert players == {new: "player 1"}
    finally:
        relay.close()
        server.shutdown()


def test_on_client_moved_takes_a_callable() -> None:
    server = Server(GameStateStore(GameState()))
    with pytest.raises(TypeError, match="callable"):
        server.on_client_moved("not a function")  # type: ignore[arg-type]


def test_a_blackout_of_three_seconds_reconnects_and_runs_every_event_once(
    clients: list[Client],
) -> None:
    backend = counting_backend()
    at_server = Recorder()
    backend.server.register_event_handler("ADD", at_server.handle)
    backend.run_in_thread()
    server = backend.server
    assert server.port
    try:
        client = connect(clients, server.port)
        news = Recorder()
        client.register_event_handler("NEWS", news.handle)
        address = wait_for(lambda: next(iter(server.connections), None))
        client.dispatch_event("ADD", 1, retries=3)
        wait_for(lambda: at_server.handled == [1])
        log = StatusLog(client)
        client.link = BLACKOUT
        start = time.monotonic()
        wait_for(lambda: client.status is ClientStatus.RECONNECTING, timeout=3)
        silent_after = time.monotonic() - start
        wait_for(lambda: server.connections[address].silent)  # both ends see the outage
        # Events both ways during the outage, with and without retries.
        for n in range(2, 8):
            client.dispatch_event("ADD", n, retries=0 if n % 2 else 3)
            server.dispatch_event("NEWS", n, target_client=address, retries=0 if n % 2 else 3)
        time.sleep(max(0.0, 3.0 - (time.monotonic() - start)))
        assert client.status is ClientStatus.RECONNECTING and address in server.connections
        client.link = LinkConditions()
        lifted = time.monotonic()
        wait_for(lambda: client.status is ClientStatus.CONNECTED, timeout=3)
        resumed = time.monotonic() - lifted
        expected = list(range(1, 8))
        wait_for(lambda: at_server.handled == expected and news.handled == expected[1:], 5)
        caught_up = time.monotonic() - lifted
        wait_for(lambda: read(client, "total") == sum(expected))
        time.sleep(0.3)
        statuses = log.stop()
        print(
            f"\nblackout of 3 s: reconnecting after {silent_after:.2f} s; after the link"
            f" returned: connected again in {resumed * 1000:.0f} ms, every event run in"
            f" {caught_up * 1000:.0f} ms"
        )
        assert statuses == [
            ClientStatus.CONNECTED, ClientStatus.RECONNECTING, ClientStatus.CONNECTED
        ]
        assert at_server.handled == expected  # exactly once each, in order
        assert news.handled == expected[1:]
        assert client.disconnect_reason is None
        assert resumed < 1.5
    finally:
        backend.shutdown()


def test_dispatch_event_refuses_more_than_max_pending_events_and_drops_nothing(
    clients: list[Client],
) -> None:
    backend = counting_backend()
    at_server = Recorder()
    backend.server.register_event_handler("ADD", at_server.handle)
    backend.run_in_thread()
    server = backend.server
    assert server.port
    server.max_pending_events = 3
    try:
        away = connect(clients, server.port)
        here = connect(clients, server.port)
        away.max_pending_events = 4
        at_away, at_here = Recorder(), Recorder()
        away.register_event_handler("NEWS", at_away.handle)
        here.register_event_handler("NEWS", at_here.handle)
        wait_for(lambda: len(server.connections) == 2)
        away_address, here_address = address_of(server, away), address_of(server, here)
        away.link = BLACKOUT
        wait_for(lambda: away.status is ClientStatus.RECONNECTING, timeout=3)
        wait_for(lambda: server.connections[away_address].silent)
        for n in range(4):
            away.dispatch_event("ADD", n, retries=1)
        with pytest.raises(EventQueueFullError):
            away.dispatch_event("ADD", 99)
        assert away.pending_events == 4
        for n in range(3):
            server.dispatch_event("NEWS", n)  # to "all"; the healthy client acks at once
        wait_for(lambda: at_here.handled == [0, 1, 2])
        wait_for(lambda: server.connections[here_address].events_in_flight == 0)  # acked
        with pytest.raises(EventQueueFullError):
            server.dispatch_event("NEWS", 99)  # one target is full: queued to nobody
        with pytest.raises(EventQueueFullError):
            server.dispatch_event("NEWS", 98, target_client=away_address)
        server.dispatch_event("NEWS", 50, target_client=here_address)
        wait_for(lambda: at_here.handled == [0, 1, 2, 50])
        away.link = LinkConditions()
        wait_for(lambda: away.status is ClientStatus.CONNECTED, timeout=3)
        wait_for(lambda: at_away.handled == [0, 1, 2] and at_server.handled == [0, 1, 2, 3], 5)
        wait_for(lambda: away.pending_events == 0)
        away.dispatch_event("ADD", 4)  # room again
        server.dispatch_event("NEWS", 3)
        wait_for(lambda: at_server.handled == [0, 1, 2, 3, 4] and at_away.handled == [0, 1, 2, 3])
        time.sleep(0.2)
        assert at_here.handled == [0, 1, 2, 50, 3]  # 99 and 98 went nowhere
    finally:
        backend.shutdown()
