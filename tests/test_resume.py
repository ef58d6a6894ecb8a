"""Sessions that survive outages, sans-IO, over simulated links with a fake clock.

A blackout is not the end of a session: both ends notice the silence, keep probing at a
backed-off rate, spend no event retries and give nothing up, and catch up within about a round
trip when the link returns. Only ``timeout`` seconds of silence end a session.
"""

from __future__ import annotations

from collections import Counter
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
from pygase_core.protocol.endpoint import ClientLeft, ClientMoved, PeerNotice
from pygase_core.protocol.packets import DisconnectReason, PacketType, encode_resume
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
    # Backed-off probing, not full rate (about 4 per second each way; a client's probe is a
    # RESUME and a data packet), and nothing given up.
    assert probes <= (2 + 1) * 5 * outage
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
    assert sorted(alice.acked_tokens) == [("up", n) for n in range(15)]  # type: ignore[type-var]
    assert sorted(network.server_acks) == [("down", n) for n in range(15)]  # type: ignore[type-var]
    assert not alice.given_up_tokens and not network.server_given_up
    assert alice.events.count(PeerSilent()) == alice.events.count(PeerBack()) == 1
    assert not network.server.drops and not alice.endpoint.drops  # resumes from home: harmless
    assert alice.endpoint.resumes_sent > 0
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
    network.run_until(lambda: PeerSilent() in server_notices(network, ALICE), timeout=3)
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


# -- a new address -----------------------------------------------------------------------------

MOVED = ("10.9.9.9", 6100)
STRANGER = ("10.6.6.6", 6666)
BOB = ("10.0.0.3", 5000)
SECRET_KEY = bytes(range(32))


def keep_events_flowing(
    network: Network, alice: ClientSide, address: Any, start: int, count: int
) -> None:
    """Queue events both ways, one every 20 ms, following the client wherever it is."""
    for n in range(start, start + count):
        client_side = alice.endpoint.connection
        assert client_side is not None
        session = network.server.session_by_id(client_side.session_id)
        assert session is not None
        client_side.queue_event(event("UP", n), retries=5, token=("up", n))
        session.connection.queue_event(event("DOWN", n), retries=5, token=("down", n))
        network.run(0.02)


def moved(network: Network) -> list[ClientMoved]:
    return [e for e in network.server_events if isinstance(e, ClientMoved)]


def assert_exactly_once(network: Network, alice: ClientSide, count: int) -> None:
    network.run_until(
        lambda: len(alice.acked_tokens) == count and len(network.server_acks) == count,
        timeout=5,
    )
    network.run(0.5)
    assert [p for _, p in network.server_payloads] == [event("UP", n) for n in range(count)]
    assert alice.received_payloads == [event("DOWN", n) for n in range(count)]
    assert sorted(alice.acked_tokens) == [("up", n) for n in range(count)]  # type: ignore[type-var]
    assert sorted(network.server_acks) == [("down", n) for n in range(count)]  # type: ignore[type-var]
    assert not alice.given_up_tokens and not network.server_given_up


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_a_client_that_moves_to_a_new_address_keeps_its_session(encrypted: bool) -> None:
    network = Network(seed=12, secret_key=SECRET_KEY if encrypted else None)
    alice = network.add_client(ALICE, latency=0.02)
    connected(network, ALICE)
    session = network.server.sessions[ALICE]
    session_id = session.connection.session_id
    assert network.server.host == ALICE
    keep_events_flowing(network, alice, ALICE, 0, 10)
    client_side = alice.endpoint.connection
    assert client_side is not None
    for n in range(10, 15):  # in flight both ways when the address changes
        client_side.queue_event(event("UP", n), retries=5, token=("up", n))
        session.connection.queue_event(event("DOWN", n), retries=5, token=("down", n))
    network.step()
    network.move_client(ALICE, MOVED)  # a NAT rebinds: the same client, a new source port
    took = network.run_until(lambda: moved(network), timeout=1)
    assert moved(network) == [ClientMoved(ALICE, MOVED, session_id)]
    keep_events_flowing(network, alice, MOVED, 15, 5)
    assert_exactly_once(network, alice, 20)
    print(f"\n{'encrypted' if encrypted else 'plain'}: moved {took:.3f} s after the rebinding")
    assert took < 0.2  # a prompt and a resume: about a round trip (40 ms here)
    assert network.server.sessions == {MOVED: session}  # the same record, the same connection
    assert network.server.connections == {MOVED: session.connection}
    assert network.server.host == MOVED
    assert session.address == session.proven == MOVED and not session.connection.held
    assert ClientLeft not in {type(e) for e in network.server_events}
    assert PeerSilent() not in alice.events  # too quick to notice
    network.run(0.5)
    assert alice.state == network.store.get_game_state()


def test_a_client_that_moves_during_an_outage_resumes_when_it_ends() -> None:
    """A phone changing networks: silence, then the client turns up somewhere else."""
    store = GameStateStore(GameState(counter=0))
    network = Network(store, seed=13)
    alice = network.add_client(ALICE, latency=0.02)
    connected(network, ALICE)
    keep_events_flowing(network, alice, ALICE, 0, 5)
    blackout(network, ALICE)
    network.run_until(lambda: alice.endpoint.connection and alice.endpoint.connection.silent)
    keep_events_flowing(network, alice, ALICE, 5, 5)
    push(store, counter=1)
    network.run(1.0)
    network.move_client(ALICE, MOVED)
    blackout(network, MOVED, loss=0.0)
    back_at = network.now
    network.run_until(lambda: PeerBack() in alice.events, timeout=1)
    resumed = network.now - back_at
    assert moved(network) and network.server.sessions[MOVED].address == MOVED
    assert_exactly_once(network, alice, 10)
    network.run_until(lambda: alice.state == store.get_game_state(), timeout=1)
    print(f"\nresumed at the new address {resumed:.3f} s after the link returned")
    assert resumed < 0.5


def test_forged_replayed_and_misdirected_resumes_change_nothing_and_are_counted() -> None:
    network = Network(seed=14)
    alice = network.add_client(ALICE)
    bob = network.add_client(BOB)
    connected(network, ALICE, BOB)
    captured: list[tuple[float, bytes, Any]] = []
    network.up[ALICE].log = captured
    network.run(0.3)
    network.move_client(ALICE, MOVED)
    network.run_until(lambda: moved(network), timeout=1)
    network.run(0.3)
    genuine = [data for _, data, _ in captured if data[3] == PacketType.RESUME]
    assert genuine  # the client answered the server's prompt
    sessions = dict(network.server.sessions)
    ids = {a: s.connection.session_id for a, s in sessions.items()}
    drops = Counter(network.server.drops)
    secret = alice.endpoint.resume_secret
    assert secret is not None
    alice_id = ids[MOVED]
    # Right session, wrong secret; an unknown session; a genuine resume replayed from elsewhere.
    for counter in (10**6, 10**6 + 1):
        network.inject(encode_resume(alice_id, counter, bytes(8), bytes(16)), STRANGER)
    network.inject(encode_resume(alice_id ^ 1, 10**6, bytes(8), secret), STRANGER)
    for data in genuine:
        network.inject(data, STRANGER)
        network.inject(data, BOB)
    # A valid resume (it holds the secret) from an address that belongs to another session.
    network.inject(encode_resume(alice_id, 10**6, bytes(8), secret), BOB)
    network.run(0.3)
    counted = Counter(network.server.drops) - drops
    assert counted["forged resume"] == 2
    assert counted["resume of an unknown session"] == 1
    assert counted["replayed resume"] == 2 * len(genuine)
    assert counted["resume to an occupied address"] == 1
    assert network.server.sessions == sessions
    assert {a: s.connection.session_id for a, s in network.server.sessions.items()} == ids
    assert len(moved(network)) == 1
    # A resume from where the session is, replayed: harmless, counted as nothing.
    drops = Counter(network.server.drops)
    for data in genuine:
        network.inject(data, MOVED)
    assert Counter(network.server.drops) == drops
    # Both sessions still work.
    keep_events_flowing(network, alice, MOVED, 0, 3)
    assert_exactly_once(network, alice, 3)
    assert bob.endpoint.connection is not None and bob.endpoint.connection.closed is None


def test_a_resume_that_does_not_prove_its_address_gets_nothing_but_prompts() -> None:
    """A client holding the secret cannot aim the server's traffic at someone else."""
    store = GameStateStore(GameState(big=b"x" * 20_000))
    network = Network(store, seed=15)
    alice = network.add_client(ALICE)
    connected(network, ALICE)
    network.run(0.5)
    secret = alice.endpoint.resume_secret
    assert secret is not None
    alice_id = network.server.sessions[ALICE].connection.session_id
    victim = ("10.7.7.7", 7777)
    # Her next resume, spoofed from the victim's address (or one replayed by someone on path).
    resume = encode_resume(alice_id, alice.endpoint.resumes_sent + 1, bytes(8), secret)
    network.inject(resume, victim)
    assert network.server.sessions[victim].connection.held
    for _ in range(5):
        push(store, big=b"y" * 20_000)
        network.step()
    to_victim = [data for data, address in network.server_out if address == victim]
    assert [data[3] for data in to_victim] == [PacketType.RESUME_PROMPT]
    assert sum(len(data) for data in to_victim) < len(resume)
    # Alice herself, still at her address, takes her session back within a round trip.
    network.run_until(lambda: ALICE in network.server.sessions, timeout=1)
    assert not network.server.sessions[ALICE].connection.held
    keep_events_flowing(network, alice, ALICE, 0, 3)
    assert_exactly_once(network, alice, 3)
    assert [m.new_address for m in moved(network)] == [victim, ALICE]


def test_forged_and_replayed_sealed_packets_from_a_new_address_change_nothing() -> None:
    network = Network(seed=16, secret_key=SECRET_KEY)
    alice = network.add_client(ALICE)
    connected(network, ALICE)
    captured: list[tuple[float, bytes, Any]] = []
    network.up[ALICE].log = captured
    network.run(0.3)
    network.up[ALICE].log = None
    network.run(0.1)  # every captured packet has reached the server
    sessions = dict(network.server.sessions)
    alice_id = sessions[ALICE].connection.session_id
    drops = Counter(network.server.drops)
    sealed = [data for _, data, _ in captured if data[3] == PacketType.DATA]
    for data in sealed:  # replays: genuine once, from the client's address
        network.inject(data, STRANGER)
    forged = bytearray(sealed[-1])
    forged[-1] ^= 1
    network.inject(bytes(forged), STRANGER)
    network.inject(sealed[-1][:12] + bytes(40), STRANGER)  # right session id, no valid seal
    counted = Counter(network.server.drops) - drops
    assert counted["failed authentication"] == len(sealed) + 2
    assert network.server.sessions == sessions and not moved(network)
    assert network.server.sessions[ALICE].connection.session_id == alice_id
    keep_events_flowing(network, alice, ALICE, 0, 3)
    assert_exactly_once(network, alice, 3)
