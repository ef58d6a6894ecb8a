"""Sessions that survive outages, sans-IO, over simulated links with a fake clock.

A blackout is not the end of a session: both ends notice the silence, keep probing at a
backed-off rate, spend no event retries and give nothing up, and catch up within about a round
trip when the link returns. Only ``timeout`` seconds of silence end a session.
"""

from __future__ import annotations

from typing import Any

import pytest

from pygase_core.model import codec
from pygase_core.model.gamestate import GameState, GameStateUpdate
from pygase_core.model.store import GameStateStore
from pygase_core.protocol.connection import (
    ConnectionClosed,
    ConnectionConfig,
    EventGivenUp,
    PeerBack,
    PeerSilent,
)
from pygase_core.protocol.endpoint import PeerNotice
from pygase_core.protocol.packets import DisconnectReason
from tests.memlink import ClientSide, Network

ALICE = ("10.0.0.2", 5000)


def connected(network: Network, *addresses: object) -> None:
    network.run_until(
        lambda: all(network.clients[a].endpoint.connection is not None for a in addresses)
    )


def push(store: GameStateStore, **changes: object) -> None:
    store.push_update(GameStateUpdate(store.time_order + 1, **changes))


def server_notices(network: Network, address: Any) -> list[object]:
    return [e.notice for e in network.server_events
            if isinstance(e, PeerNotice) and e.address == address]


def blackout(network: Network, address: Any, loss: float = 1.0) -> None:
    network.up[address].loss = loss
    network.down[address].loss = loss


def event(name: str, n: int) -> bytes:
    return codec.pack([name, [n], {}])


def queue_both_ways(
    network: Network, alice: ClientSide, address: Any, count: int, retries: int, start: int = 0
) -> None:
    client_side = alice.endpoint.connection
    assert client_side is not None
    server_side = network.server.sessions[address].connection
    for n in range(start, start + count):
        client_side.queue_event(event("UP", n), retries=retries, token=("up", n))
        server_side.queue_event(event("DOWN", n), retries=retries, token=("down", n))
        network.run(0.05)


@pytest.mark.parametrize("retries", [0, 3])
def test_a_blackout_both_ways_is_survived_and_events_queued_during_it_arrive_once(
    retries: int,
) -> None:
    store = GameStateStore(GameState(counter=0))
    network = Network(store, seed=31 + retries)
    alice = network.add_client(ALICE, latency=0.02)
    connected(network, ALICE)
    queue_both_ways(network, alice, ALICE, 5, retries)  # before: a session in use
    network.run(0.5)
    start = network.now
    blackout(network, ALICE)
    network.run_until(
        lambda: PeerSilent() in alice.events and PeerSilent() in server_notices(network, ALICE),
        timeout=2,
    )
    silent_at = network.now - start
    assert 1.0 <= silent_at < 1.2
    # Events both ways during the outage, and the game goes on.
    sent_before = network.up[ALICE].sent + network.down[ALICE].sent
    queue_both_ways(network, alice, ALICE, 10, retries, start=5)
    for n in range(10):
        push(store, counter=n + 1)
        network.run(0.05)
    network.run(3.0 - (network.now - start))
    probes = network.up[ALICE].sent + network.down[ALICE].sent - sent_before
    outage = network.now - start - silent_at
    # Backed-off probing, not full rate (about 4 per second each way), and nothing given up.
    assert probes <= 2 * 5 * outage
    assert not alice.given_up_tokens and not network.server_given_up
    assert alice.endpoint.connection is not None and alice.endpoint.connection.closed is None
    assert ALICE in network.server.sessions

    blackout(network, ALICE, loss=0.0)
    lifted = network.now
    network.run_until(
        lambda: PeerBack() in alice.events and PeerBack() in server_notices(network, ALICE),
        timeout=1,
    )
    back_after = network.now - lifted
    took = network.run_until(
        lambda: len(alice.acked_tokens) == 15 and len(network.server_acks) == 15, timeout=2
    )
    caught_up = network.now - lifted
    network.run_until(lambda: alice.state == store.get_game_state(), timeout=1)
    converged = network.now - lifted
    print(
        f"\nblackout (retries={retries}): silent after {silent_at:.3f} s, {probes} probes in"
        f" {outage:.2f} s; after the link returned: both back in {back_after:.3f} s, every"
        f" event acked in {caught_up:.3f} s, state equal in {converged:.3f} s"
    )
    assert took >= 0 and caught_up < 0.5 and converged < 0.5
    expected_up = [event("UP", n) for n in range(15)]
    expected_down = [event("DOWN", n) for n in range(15)]
    network.run(1.0)  # room for any duplicate
    assert [p for _, p in network.server_payloads] == expected_up  # once each, in order
    assert alice.received_payloads == expected_down
    assert sorted(alice.acked_tokens) == [("up", n) for n in range(15)]
    assert sorted(network.server_acks) == [("down", n) for n in range(15)]  # type: ignore[type-var]
    assert not alice.given_up_tokens and not network.server_given_up
    assert alice.events.count(PeerSilent()) == alice.events.count(PeerBack()) == 1
    server_side = server_notices(network, ALICE)
    assert server_side.count(PeerSilent()) == server_side.count(PeerBack()) == 1
    connection = alice.endpoint.connection
    assert connection is not None and connection.last_outage is not None
    assert 3.0 <= connection.last_outage < 3.5


def test_a_blackout_longer_than_the_timeout_ends_the_session_and_gives_the_events_up() -> None:
    network = Network(seed=3, config=ConnectionConfig(timeout=2.5))
    alice = network.add_client(ALICE)
    connected(network, ALICE)
    network.run(0.3)
    blackout(network, ALICE)
    network.run_until(lambda: PeerSilent() in alice.events, timeout=2)
    queue_both_ways(network, alice, ALICE, 4, retries=3)
    network.run_until(lambda: not network.server.sessions, timeout=3)
    network.run_until(lambda: any(isinstance(e, ConnectionClosed) for e in alice.events), 1)
    assert ConnectionClosed(DisconnectReason.TIMED_OUT) in alice.events
    assert network.left()[0].reason is DisconnectReason.TIMED_OUT
    assert sorted(network.server_given_up) == [("down", n) for n in range(4)]  # type: ignore[type-var]
    assert alice.given_up_tokens == []  # the client's edge abandons its events itself
    connection = alice.endpoint.connection
    assert connection is not None
    assert sorted(g.token for g in connection.abandon_events()) == [("up", n) for n in range(4)]  # type: ignore[type-var]
    assert network.server_payloads == [] and alice.received_payloads == []


def test_while_the_peer_is_heard_retries_and_give_ups_are_as_before() -> None:
    """A one-way outage: the client still hears the server, so its events are given up."""
    network = Network(seed=4, config=ConnectionConfig(timeout=20))
    alice = network.add_client(ALICE)
    connected(network, ALICE)
    network.run(0.3)
    network.up[ALICE].loss = 1.0
    connection = alice.endpoint.connection
    assert connection is not None
    connection.queue_event(event("UP", 0), retries=2, token="lost")
    network.run_until(lambda: alice.given_up_tokens == ["lost"], timeout=3)
    assert PeerSilent() not in alice.events  # the server's probes still arrive
    assert PeerSilent() in server_notices(network, ALICE)
    assert EventGivenUp("lost") not in server_notices(network, ALICE)


def test_a_spent_event_is_given_up_only_once_the_peer_is_back() -> None:
    """Spent while the peer was heard, its give-up falls in the outage: it waits for the end."""
    network = Network(seed=9)
    alice = network.add_client(ALICE)
    connected(network, ALICE)
    network.run(0.3)
    blackout(network, ALICE)
    network.run(0.5)  # lost, but not yet an outage
    connection = alice.endpoint.connection
    assert connection is not None
    connection.queue_event(event("UP", 0), retries=0, token="early")
    network.run_until(lambda: connection.event_fragments_in_flight == 0, timeout=0.4)
    assert not connection.silent  # its one send was spent while the peer counted as heard
    network.run_until(lambda: connection.silent, timeout=1)
    network.run(1.5)
    assert alice.given_up_tokens == []
    blackout(network, ALICE, loss=0.0)
    network.run_until(lambda: alice.given_up_tokens == ["early"], timeout=1)
    assert PeerBack() in alice.events
    assert network.server_payloads == []
