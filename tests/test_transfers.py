"""Large deltas (more than a few datagrams) as tracked transfers, pipelined at the tick rate."""

from __future__ import annotations

import random
from typing import Any

from pygase_core.model.gamestate import GameState, GameStateUpdate
from pygase_core.model.store import GameStateStore
from pygase_core.protocol.statesync import UNPINNED_FRAGMENTS, PayloadCache
from pygase_core.protocol.viewsync import ViewedWorld
from tests.memlink import Network
from tests.test_views import World, connect_viewers, filtered, views_for

ALICE = ("10.0.0.2", 5000)
TICK = 0.02


def moving_world(count: int, seed: int) -> tuple[GameStateStore, random.Random]:
    rng = random.Random(seed)
    entities = {i: [rng.uniform(0, 100), rng.uniform(0, 100)] for i in range(count)}
    return GameStateStore(GameState(entities=entities)), rng


def tick(store: GameStateStore, rng: random.Random) -> None:
    """Every entity moves: each delta carries all of them."""
    state = store.get_game_state()
    moved = {k: [x + rng.uniform(-1, 1), y + rng.uniform(-1, 1)] for k, (x, y) in
             state.entities.items()}
    store.push_update(GameStateUpdate(store.time_order + 1, entities=moved))


def run_ticks(network: Network, rng: random.Random, ticks: int) -> set[int]:
    """Push ``ticks`` updates at 50 Hz; the versions the client applied meanwhile."""
    alice = network.clients[ALICE]
    applied: set[int] = set()
    for _ in range(ticks):
        tick(network.store, rng)
        for _ in range(round(TICK / 0.001)):
            network.step(0.001)
            applied.add(alice.state.time_order)
    return applied


def caught_up(network: Network) -> bool:
    alice = network.clients[ALICE]
    server = network.store.get_game_state()
    return alice.state.time_order == server.time_order and (
        getattr(alice.state, "entities", None) == server.entities
    )


def test_a_delta_of_many_fragments_is_a_transfer() -> None:
    store, rng = moving_world(300, seed=1)
    tick(store, rng)
    payload = PayloadCache(store).payload_for(0)
    assert payload is not None and len(payload.messages) > UNPINNED_FRAGMENTS


def test_large_deltas_arrive_every_tick_across_a_round_trip_of_three_ticks() -> None:
    store, rng = moving_world(300, seed=2)
    network = Network(store, seed=2)
    network.add_client(ALICE, latency=0.03)  # 60 ms there and back: three ticks
    network.run_until(lambda: caught_up(network), timeout=5)
    first = store.time_order
    applied = run_ticks(network, rng, 100)
    network.run_until(lambda: caught_up(network), timeout=5)
    # One a round trip (about 30 of the 100) if each transfer waited for its acks.
    assert len({v for v in applied if v > first}) >= 90


def test_pipelined_transfers_converge_exactly_under_loss_without_flooding() -> None:
    store, rng = moving_world(300, seed=3)
    network = Network(store, seed=3)
    network.add_client(ALICE, loss=0.2, duplicate=0.05, latency=0.03, jitter=0.01)
    network.run_until(lambda: caught_up(network), timeout=10)
    sent_before = len(network.server_out)
    fragments = len(PayloadCache(store).payload_for(store.time_order - 1).messages)  # type: ignore[union-attr]
    applied = run_ticks(network, rng, 100)
    sent = len(network.server_out) - sent_before
    network.run_until(lambda: caught_up(network), timeout=10)
    assert len(applied) > 20  # states keep arriving through the loss (15 if each waited)
    # Resends and pipelined transfers stay within two sends of each tick's fragments.
    assert sent < 2 * fragments * 100


def test_a_lossless_link_loses_no_packet_when_each_tick_is_many_datagrams() -> None:
    # 18 fragments a tick at 50 Hz: more datagrams than one 33-sequence ack field covers
    # between two of the client's packets at its 30 Hz.
    store, rng = moving_world(900, seed=4)
    network = Network(store, seed=4)
    network.add_client(ALICE, latency=0.03)
    network.run_until(lambda: caught_up(network), timeout=5)
    run_ticks(network, rng, 100)
    network.run_until(lambda: caught_up(network), timeout=5)
    network.run(1.1)  # (a packet counts as lost once a second passed without its ack)
    connection = network.server.connections[ALICE]
    assert connection.stats.packets_lost == 0
    assert connection.congestion.good


class _BulkyWorld(World):
    """The views test's world with bulkier entities, so that its deltas are transfers."""

    def token(self, kind: bytes) -> bytes:
        return kind + self.rng.randbytes(60)


def test_a_viewer_between_a_pipelined_deltas_base_and_target_holds_exactly_its_view() -> None:
    # Views, private fields and declared precision on a round trip of several ticks, with loss,
    # duplicates and reordering: each delta from the client's reported base lands on whichever
    # later version the client reached meanwhile (entities having left, entered, come back).
    rng = random.Random(6)
    world = _BulkyWorld(rng, 300, 2)
    store = GameStateStore(world.state, precision={"entities.*.x": 0.01, "entities.*.y": 0.01})
    network = Network(store, seed=6)
    network.cache = None  # type: ignore[assignment]  # (sessions get state through views only)
    addresses = [(f"10.0.1.{i}", 6000 + i) for i in range(2)]
    own = dict(zip(addresses, sorted(store.get_game_state().entities)[:2], strict=True))
    players = {address: f"p{i}" for i, address in enumerate(addresses)}
    viewed = ViewedWorld(PayloadCache(store), views_for(own, players, 20.0))
    connect_viewers(network, viewed, 2, loss=0.05, latency=0.04)
    for address in addresses:
        network.down[address].duplicate = 0.05
    network.run_until(lambda: all(
        (connection := network.clients[a].endpoint.connection) is not None
        and connection.applied_time_order is not None
        for a in addresses
    ))
    snapshots = {store.time_order: store.snapshot()}
    checked: dict[Any, set[int]] = {address: set() for address in addresses}
    for _ in range(60):
        world.tick(store, list(own.values()))
        snapshots[store.time_order] = store.snapshot()
        for _ in range(round(TICK / 0.001)):
            network.step(0.001)
            for address in addresses:
                client = network.clients[address]
                connection = client.endpoint.connection
                version = client.state.time_order
                if connection is None or connection.applied_time_order is None:
                    continue
                if version not in checked[address]:
                    checked[address].add(version)
                    assert client.state.to_dict() == filtered(
                        snapshots[version], own[address], players[address], 20.0
                    ), (address, version)
    # More versions than one a round trip (the farther client's spans five ticks) applied.
    assert all(len(versions) > 20 for versions in checked.values())
    final = store.get_game_state()
    network.run_until(lambda: all(
        network.clients[a].state.to_dict() == filtered(final, own[a], players[a], 20.0)
        for a in addresses
    ), timeout=10)


def test_a_link_losing_three_percent_of_its_packets_still_gets_a_state_a_tick() -> None:
    # Loss well under congestion control's 10 % must not drop the connection to 10 packets a
    # second: neither with a datagram a tick nor with a transfer of several.
    for count in (50, 300):
        store, rng = moving_world(count, seed=7)
        network = Network(store, seed=7)
        network.add_client(ALICE, latency=0.03, loss=0.03)
        network.run_until(lambda network=network: caught_up(network), timeout=10)
        connection = network.server.connections[ALICE]
        good = 0
        applied: set[int] = set()
        for _ in range(8):
            applied |= run_ticks(network, rng, 25)
            good += connection.congestion.good
        assert good == 8, count
        assert len(applied) > 150, count  # of 200 ticks
