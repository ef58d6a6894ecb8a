"""The sans-IO protocol over simulated links with a fake clock: handshake, sessions, loss,
duplication, reordering, fragmentation, exactly-once events and delta/baseline selection."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from pygase_core.model import codec
from pygase_core.model.gamestate import GameState, GameStateUpdate
from pygase_core.model.store import GameStateStore
from pygase_core.protocol.connection import (
    Connection,
    ConnectionClosed,
    ConnectionConfig,
    EventAcknowledged,
    EventGivenUp,
    EventReceived,
    Role,
)
from pygase_core.protocol.endpoint import ClientJoined, Connected, PeerNotice, Refused
from pygase_core.protocol.packets import (
    FULL_STATE,
    MAX_FRAGMENT_DATA,
    Data,
    DisconnectReason,
    RejectReason,
    decode,
    encode_data_header,
    encode_disconnect,
    encode_event_floor,
    encode_event_fragment,
    encode_request,
)
from pygase_core.protocol.reliable import INITIAL_WINDOW, MIN_GIVE_UP_DELAY, PACING_BURST
from tests.memlink import Network

ALICE = ("10.0.0.2", 5000)
BOB = ("10.0.0.3", 5000)


def connected(network: Network, *addresses: object) -> None:
    network.run_until(
        lambda: all(network.clients[a].endpoint.connection is not None for a in addresses)
    )


def push(store: GameStateStore, **changes: object) -> None:
    store.push_update(GameStateUpdate(store.time_order + 1, **changes))


def test_handshake_creates_one_session_and_the_first_client_is_host() -> None:
    network = Network()
    alice = network.add_client(ALICE)
    bob = network.add_client(BOB)
    connected(network, ALICE, BOB)
    assert [j.address for j in network.joined()] == [ALICE, BOB]
    assert network.server.host == ALICE
    assert Connected(True) in alice.events and Connected(False) in bob.events
    sessions = {c.session_id for c in network.server.connections.values()}
    assert len(sessions) == 2


def test_handshake_survives_loss_and_duplication() -> None:
    network = Network(seed=3)
    network.add_client(ALICE, loss=0.5, duplicate=0.5)
    connected(network, ALICE)
    assert len(network.joined()) == 1
    assert len(network.server.connections) == 1


def test_full_server_refuses_with_a_reason() -> None:
    network = Network(max_clients=1)
    network.add_client(ALICE)
    connected(network, ALICE)
    bob = network.add_client(BOB)
    network.run_until(lambda: bob.endpoint.failed)
    assert Refused(RejectReason.SERVER_FULL) in bob.events
    assert list(network.server.connections) == [ALICE]


def test_unanswered_handshake_times_out() -> None:
    network = Network()
    alice = network.add_client(ALICE, loss=1.0)
    network.run_until(lambda: alice.endpoint.failed, timeout=10)
    assert Refused(None) in alice.events


def test_new_client_gets_the_initial_state_as_a_baseline() -> None:
    store = GameStateStore(GameState(foo=1, items={"a": [1, 2]}))
    network = Network(store)
    alice = network.add_client(ALICE)
    network.run_until(lambda: getattr(alice.state, "foo", None) == 1)
    assert alice.state.items == {"a": [1, 2]}
    assert alice.state.time_order == 0


def test_deltas_follow_and_converge_under_loss_duplication_and_reordering() -> None:
    store = GameStateStore(GameState(counter=0, table={}))
    network = Network(store, seed=11)
    alice = network.add_client(ALICE, loss=0.2, duplicate=0.1, latency=0.05, jitter=0.05)
    connected(network, ALICE)
    for step in range(200):
        changes: dict[str, object] = {"counter": step, "table": {step % 7: step}}
        if step % 13 == 0:
            changes["table"] = {(step - 7) % 7: __import__("pygase_core").TO_DELETE}
        push(store, **changes)
        network.run(0.02)
    network.run_until(lambda: alice.state.time_order == store.time_order, timeout=3)
    assert alice.state == store.get_game_state()


def test_deltas_are_encoded_once_per_state_version_for_clients_on_the_same_base() -> None:
    store = GameStateStore(GameState(x=0.0))
    network = Network(store)
    clients = [network.add_client((f"10.0.1.{i}", 5000)) for i in range(10)]
    network.run_until(lambda: all(c.state.time_order == 0 and c.endpoint.connection
                                  and c.endpoint.connection.applied_time_order == 0
                                  for c in clients))
    network.run(0.1)
    before = network.cache.encodings
    push(store, x=1.0)
    network.run_until(lambda: all(c.state.time_order == 1 for c in clients))
    assert network.cache.encodings - before == 1


def test_client_older_than_the_update_cache_gets_a_baseline() -> None:
    store = GameStateStore(GameState(x=0), update_cache_size=5)
    assert store.changes_since(0) is not None
    for i in range(10):
        push(store, x=i + 1)
    assert store.changes_since(0) is None  # evicted: the server must send a full state
    payload = network_payload(store, 0)
    assert payload.base == FULL_STATE
    assert network_payload(store, 8).base == 8


def network_payload(store: GameStateStore, base: int):  # type: ignore[no-untyped-def]
    from pygase_core.protocol.statesync import PayloadCache

    return PayloadCache(store).payload_for(base)


def test_large_state_is_fragmented_and_arrives_despite_loss() -> None:
    entities = {i: {"x": float(i), "y": float(-i), "name": f"entity-{i}"} for i in range(3000)}
    store = GameStateStore(GameState(entities=entities))
    assert len(codec.pack(entities)) > 50 * MAX_FRAGMENT_DATA
    network = Network(store, seed=5)
    alice = network.add_client(ALICE, loss=0.2, latency=0.02, jitter=0.01)
    network.run_until(lambda: getattr(alice.state, "entities", None) is not None, timeout=20)
    assert alice.state.entities == entities


def test_events_run_exactly_once_and_in_order_under_loss() -> None:
    network = Network(seed=21)
    alice = network.add_client(ALICE, loss=0.2, duplicate=0.2, latency=0.05, jitter=0.05)
    connected(network, ALICE)
    connection = alice.endpoint.connection
    assert connection is not None
    payloads = [codec.pack(["MOVE", [i], {}]) for i in range(100)]
    for i, payload in enumerate(payloads):
        connection.queue_event(payload, retries=50, token=i)
        network.run(0.01)
    network.run_until(lambda: len(network.server_payloads) == 100, timeout=20)
    assert [p for _, p in network.server_payloads] == payloads
    network.run_until(lambda: len(alice.acked_tokens) == 100, timeout=20)
    assert sorted(alice.acked_tokens) == list(range(100))  # every ack once


def test_events_without_retries_are_sent_once_and_never_block_later_ones() -> None:
    network = Network(seed=8)
    alice = network.add_client(ALICE, loss=0.3)
    connected(network, ALICE)
    connection = alice.endpoint.connection
    assert connection is not None
    for i in range(50):
        connection.queue_event(codec.pack(["E", [i], {}]), retries=0)
        network.run(0.02)
    network.run_until(lambda: connection.events_in_flight == 0, timeout=5)
    network.run(0.5)
    received = [codec.unpack(p)[1][0] for _, p in network.server_payloads]
    assert received == sorted(set(received))  # in order, no duplicates
    assert 20 < len(received) < 50  # about 30 % lost, none resent


def test_large_event_is_fragmented_both_ways() -> None:
    network = Network(seed=2)
    alice = network.add_client(ALICE, loss=0.1)
    connected(network, ALICE)
    blob = bytes(range(256)) * 200  # 51 kB
    payload = codec.pack(["BLOB", [blob], {}])
    alice.endpoint.connection.queue_event(payload, retries=20)  # type: ignore[union-attr]
    server_side = network.server.connections[ALICE]
    server_side.queue_event(payload, retries=20)
    network.run_until(lambda: network.server_payloads and alice.received_payloads, timeout=10)
    assert network.server_payloads == [(ALICE, payload)]
    assert alice.received_payloads == [payload]


def test_strangers_datagrams_change_nothing_and_are_counted() -> None:
    network = Network()
    alice = network.add_client(ALICE)
    connected(network, ALICE)
    session = network.server.connections[ALICE].session_id
    stranger = ("10.9.9.9", 666)
    network.inject(b"\x00" * 12, stranger)  # the datagram that killed PyGaSe 0.3.1
    network.inject(encode_data_header(session, 1, 0, 0) + encode_event_floor(0), stranger)
    network.inject(encode_disconnect(session, DisconnectReason.SHUTDOWN_REQUEST), stranger)
    network.inject(encode_disconnect(session + 1, DisconnectReason.CLIENT_LEFT), ALICE)
    network.run(0.2)
    assert list(network.server.connections) == [ALICE]
    assert sum(network.server.drops.values()) >= 4
    assert alice.endpoint.connection is not None and alice.endpoint.connection.closed is None


def test_amplification_is_impossible_before_verification() -> None:
    network = Network()
    spoofed = ("10.7.7.7", 1234)
    for nonce in range(100):
        network.inject(encode_request(nonce), spoofed)
    assert network.server.bytes_out_unverified < network.server.bytes_in_unverified
    assert network.server.connections == {}


def test_only_the_hosts_session_can_request_a_shutdown() -> None:
    network = Network()
    alice = network.add_client(ALICE)
    bob = network.add_client(BOB)
    connected(network, ALICE, BOB)
    from pygase_core.protocol.endpoint import ShutdownRequested

    bob_connection = bob.endpoint.connection
    assert bob_connection is not None
    for datagram in bob_connection.close(DisconnectReason.SHUTDOWN_REQUEST):
        network.up[BOB].send(datagram, BOB, network.now)
    network.run(0.1)
    assert not any(isinstance(e, ShutdownRequested) for e in network.server_events)
    assert BOB not in network.server.connections
    alice_connection = alice.endpoint.connection
    assert alice_connection is not None
    for datagram in alice_connection.close(DisconnectReason.SHUTDOWN_REQUEST):
        network.up[ALICE].send(datagram, ALICE, network.now)
    network.run(0.1)
    assert any(isinstance(e, ShutdownRequested) for e in network.server_events)


def test_silent_connections_time_out_on_both_ends() -> None:
    config = ConnectionConfig(timeout=1.0)
    network = Network(config=config)
    alice = network.add_client(ALICE)
    connected(network, ALICE)
    network.up[ALICE].loss = 1.0
    network.down[ALICE].loss = 1.0
    network.run_until(lambda: not network.server.connections, timeout=3)
    network.run_until(lambda: any(isinstance(e, ConnectionClosed) for e in alice.events), 3)
    assert ConnectionClosed(DisconnectReason.TIMED_OUT) in alice.events
    assert network.left()[0].reason is DisconnectReason.TIMED_OUT


def test_acks_work_across_sequence_wrap() -> None:
    network = Network(seed=4)
    alice = network.add_client(ALICE, loss=0.1)
    connected(network, ALICE)
    connection = alice.endpoint.connection
    assert connection is not None
    server_side = network.server.connections[ALICE]
    # Move both ends close to the wrap, in steps the peer still takes for "newer".
    for target in (30000, 60000, 65500):
        connection._sequence = target
        server_side._sequence = target
        network.run(0.2)
    for i in range(20):
        connection.queue_event(codec.pack(["E", [i], {}]), retries=10)
        network.run(0.1)
    network.run_until(lambda: len(network.server_payloads) == 20, timeout=10)
    assert connection._sequence < 1000
    assert connection.stats.rtt is not None and connection.stats.rtt < 0.1


def test_received_event_payloads_are_reported_as_events() -> None:
    network = Network()
    alice = network.add_client(ALICE)
    connected(network, ALICE)
    network.server.connections[ALICE].queue_event(b"\x93\xa1E\x90\x80", retries=0)
    network.run_until(lambda: alice.received_payloads)
    assert EventReceived(b"\x93\xa1E\x90\x80") in alice.events
    assert isinstance(network.joined()[0], ClientJoined)


def test_a_burst_beyond_the_receivers_window_never_acks_what_was_not_delivered() -> None:
    network = Network(seed=13)
    alice = network.add_client(ALICE)
    connected(network, ALICE)
    connection = alice.endpoint.connection
    assert connection is not None
    payloads = [codec.pack(["E", [i], {}]) for i in range(1500)]
    for i, payload in enumerate(payloads):
        connection.queue_event(payload, retries=0, token=i)
    link = network.up[ALICE]
    send = link.send
    dropped: list[bytes] = []

    def drop_first(data: bytes, address: object, now: float) -> None:
        if not dropped:
            dropped.append(data)  # the burst's first datagram: what follows must wait for it
            return
        send(data, address, now)

    link.send = drop_first  # type: ignore[method-assign]
    network.run_until(lambda: connection.events_in_flight == 0, timeout=20)
    network.run(0.5)
    delivered = [codec.unpack(p)[1][0] for _, p in network.server_payloads]
    assert delivered == sorted(set(delivered))  # in order, once each
    assert len(delivered) > 1400  # only the first datagram's events are gone
    assert sorted(alice.acked_tokens) == delivered  # acked exactly what was delivered


def test_hostile_event_fragments_cannot_fill_memory() -> None:
    import pytest

    from pygase_core.errors import ProtocolError
    from pygase_core.protocol.reliable import EventReceiver

    receiver = EventReceiver(max_event_size=4096, fragment_size=1000)
    with pytest.raises(ProtocolError):
        receiver.add_fragment(0, 0, 65535, b"")  # more fragments than the maximum size needs
    accepted = 0
    with pytest.raises(ProtocolError, match="too much"):
        for event_id in range(1024):
            for index in range(5):
                receiver.add_fragment(event_id, index, 5, b"")  # empty, never complete...
                accepted += 1
    assert accepted < 1000  # ...yet each costs enough that the buffer fills early


def test_a_far_floor_is_taken_in_one_pass() -> None:
    from pygase_core.protocol.reliable import EventReceiver

    receiver = EventReceiver(max_event_size=1 << 20, fragment_size=1000)
    for event_id in range(1, 1000):
        receiver.add_fragment(event_id, 0, 2, b"x")  # 999 events missing their second half
    receiver.add_fragment(500, 1, 2, b"y")  # one of them complete
    delivered = list(receiver.deliverable(floor=1_000_000))
    assert delivered == [b"xy"]
    assert receiver.next_id == 1_000_000
    assert receiver.skipped == 1_000_000 - 1


# -- the event channel under bursts ----------------------------------------------------------


def burst(connection: Connection, count: int, retries: int = 5) -> list[bytes]:
    """Queue ``count`` events as 8 threads would, every 10th of 3000 bytes; the token of each
    is (thread, n) and the payloads are returned in queue order."""
    payloads = []
    for i in range(count):
        thread, n = i % 8, i // 8
        blob = b"x" * (3000 if i % 10 == 0 else 0)
        payload = codec.pack(["E", [thread, n, blob], {}])
        connection.queue_event(payload, retries=retries, token=(thread, n))
        payloads.append(payload)
    return payloads


@pytest.mark.parametrize(
    ("link", "seconds"),
    [({}, 2.0), ({"loss": 0.05, "latency": 0.02}, 120.0)],
    ids=["loss-free", "5% loss"],
)
def test_ten_thousand_queued_events_arrive_once_in_order_within_the_window(
    link: dict[str, float], seconds: float
) -> None:
    network = Network(seed=17)
    alice = network.add_client(ALICE, **link)
    connected(network, ALICE)
    connection = alice.endpoint.connection
    assert connection is not None
    sender = connection._events_out
    payloads = burst(connection, 10_000)
    up = network.up[ALICE]
    most_datagrams = 0
    windows = set()
    start = network.now
    while len(alice.acked_tokens) < len(payloads):
        assert network.now - start < seconds
        sent_before, released_before = up.sent, sender.fragments_sent
        network.step()
        most_datagrams = max(most_datagrams, up.sent - sent_before)
        windows.add(connection.event_window)
        if not link or sender.fragments_sent > released_before:
            # New fragments go out only into room in the window; only a loss can shrink the
            # window below what is already in flight.
            assert connection.event_fragments_in_flight <= connection.event_window
    rtt = connection.stats.rtt  # of the burst's packets, acked promptly (not at 10 Hz)
    network.run(0.5)
    assert [p for _, p in network.server_payloads] == payloads  # once each, in order
    assert sorted(alice.acked_tokens) == sorted((i % 8, i // 8) for i in range(10_000))
    assert alice.given_up_tokens == [] and connection.events_in_flight == 0
    assert most_datagrams <= PACING_BURST + 2  # paced, not ~3000 datagrams back to back
    assert network.server.drops == Counter()
    if not link:
        assert max(windows) > 16 * INITIAL_WINDOW  # slow start opened the window
        assert sender.resends == 0  # the acks came in time: none was taken for lost
        assert rtt is not None and rtt < 0.025
    else:
        assert min(windows) < INITIAL_WINDOW  # losses shrank it


def test_a_dead_link_gives_up_after_growing_gaps_and_no_sooner_than_a_second() -> None:
    network = Network(seed=5, config=ConnectionConfig(timeout=20))
    alice = network.add_client(ALICE)
    connected(network, ALICE)
    connection = alice.endpoint.connection
    assert connection is not None
    sender = connection._events_out
    network.run(0.5)  # an RTT sample or two
    network.up[ALICE].loss = 1.0
    connection.queue_event(b"\x93\xa1E\x90\x80", retries=5, token="five")
    connection.queue_event(b"\x93\xa1F\x90\x80", retries=0, token="none")
    sends: list[float] = []
    given_up: dict[object, float] = {}
    start = network.now
    while len(given_up) < 2:
        assert network.now - start < 10
        before = sender.fragments_sent + sender.resends
        network.step()
        sends.extend([network.now] * (sender.fragments_sent + sender.resends - before))
        for token in alice.given_up_tokens:
            given_up.setdefault(token, network.now)
    first = sends[0]
    assert sends[1] == first  # both events in the first flush
    resends = sends[2:]
    assert len(resends) == 5  # "five" resent five times, "none" never
    gaps = [b - a for a, b in pairwise([first, *resends])]
    assert all(later > 1.5 * earlier for earlier, later in pairwise(gaps))
    assert given_up["none"] - first >= MIN_GIVE_UP_DELAY
    assert given_up["five"] - first >= max(MIN_GIVE_UP_DELAY, resends[-1] - first)
    assert alice.given_up_tokens == ["none", "five"]  # once each
    assert alice.acked_tokens == [] and network.server_payloads == []
    assert connection.events_in_flight == 0


def test_an_ack_that_comes_after_the_give_up_still_acknowledges_once() -> None:
    # The server hears nothing for over a second: loss here, not an outage (which gives up
    # nothing while it lasts).
    network = Network(seed=6, config=ConnectionConfig(silent_after=5.0))
    alice = network.add_client(ALICE)
    connected(network, ALICE)
    network.run(0.2)
    network.up[ALICE].loss = 1.0  # alice gets the event, her acks get lost
    server_side = network.server.connections[ALICE]
    server_side.queue_event(b"\x93\xa1E\x90\x80", retries=0, token="late")
    network.run_until(lambda: network.server_given_up == ["late"], timeout=3)
    assert alice.received_payloads == [b"\x93\xa1E\x90\x80"]
    assert network.server_acks == []
    network.up[ALICE].loss = 0.0
    network.run(0.5)
    assert network.server_acks == ["late"]  # the floor passed it long ago; it still counts
    assert network.server_given_up == ["late"]
    notices = [e.notice for e in network.server_events if isinstance(e, PeerNotice)]
    assert notices.index(EventGivenUp("late")) < notices.index(EventAcknowledged("late"))


def test_next_deadline_names_the_moment_of_the_next_paced_send() -> None:
    network = Network()
    alice = network.add_client(ALICE)
    connected(network, ALICE)
    network.run(0.2)
    connection = alice.endpoint.connection
    assert connection is not None
    burst(connection, 2000)
    now = network.now
    datagrams, _ = connection.poll(now)
    assert 1 < len(datagrams) <= PACING_BURST + 2
    deadline = connection.next_deadline()
    assert now < deadline < now + 0.01  # well before the next 30 Hz send
    assert connection.poll(deadline - 1e-6) == ([], [])
    datagrams, _ = connection.poll(deadline)
    assert datagrams and connection.event_fragments_in_flight > 0


def test_state_and_acks_are_not_held_back_by_paced_events() -> None:
    store = GameStateStore(GameState(x=0))
    network = Network(store, seed=9)
    alice = network.add_client(ALICE, latency=0.02)
    connected(network, ALICE)
    network.run_until(lambda: alice.state.time_order == 0 and alice.endpoint.connection
                      and alice.endpoint.connection.applied_time_order == 0)
    server_side = network.server.connections[ALICE]
    payloads = burst(server_side, 10_000)
    network.run(0.1)
    push(store, x=1)
    took = network.run_until(lambda: alice.state.time_order == 1, timeout=1)
    assert took < 0.1  # one trip and a little, while thousands of events wait their turn
    assert server_side.events_in_flight > 1000
    network.run_until(lambda: len(alice.received_payloads) == len(payloads), timeout=30)
    assert alice.received_payloads == payloads


def test_a_packet_with_a_fragment_of_a_skipped_event_is_not_acknowledged() -> None:
    connection = Connection(7, Role.SERVER, now=0.0)
    no_ack = (0xFFFF, 0)

    def deliver(sequence: int, *messages: bytes) -> list[object]:
        datagram = encode_data_header(7, sequence, *no_ack) + b"".join(messages)
        packet = decode(datagram)
        assert isinstance(packet, Data)
        return list(connection.receive(packet, len(datagram), 0.0))

    assert deliver(0, encode_event_floor(0), encode_event_fragment(0, 0, 2, b"a")) == []
    assert deliver(1, encode_event_floor(1)) == []  # event 0 is skipped half-way
    assert deliver(2, encode_event_floor(1), encode_event_fragment(0, 1, 2, b"b")) == []
    (datagram,) = connection.flush(0.01)
    packet = decode(datagram)
    assert isinstance(packet, Data)
    assert (packet.ack, packet.ack_bits) == (1, 0b1)  # 1 and 0, never 2
    assert connection._events_in.refused_late == 1


def test_abandon_events_gives_up_what_is_pending_when_the_session_ends() -> None:
    network = Network(seed=3)
    alice = network.add_client(ALICE)
    connected(network, ALICE)
    connection = alice.endpoint.connection
    assert connection is not None
    connection.queue_event(b"\x93\xa1A\x90\x80", retries=5, token="acked")
    network.run_until(lambda: alice.acked_tokens == ["acked"])
    network.up[ALICE].loss = 1.0
    connection.queue_event(b"\x93\xa1B\x90\x80", retries=5, token="sent")
    connection.queue_event(b"\x93\xa1C\x90\x80", retries=5)  # no token: no notice
    network.run(0.3)
    burst(connection, 3000)  # most of it still waits for the window
    network.run(0.01)
    for datagram in connection.close(DisconnectReason.CLIENT_LEFT):
        network.up[ALICE].send(datagram, ALICE, network.now)
    notices = connection.abandon_events()
    assert notices[:1] == [EventGivenUp("sent")]
    assert [n.token for n in notices[1:]] == [(i % 8, i // 8) for i in range(3000)]
    assert connection.events_in_flight == 0 and connection.abandon_events() == []
