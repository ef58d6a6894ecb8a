"""Declared steps travel as differences from the client's base version, and stay exact."""

from __future__ import annotations

import random
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pygase_core.model import codec
from pygase_core.model.gamestate import GameState, GameStateUpdate
from pygase_core.model.precision import QUANTUM_LIMIT, Precision, quantize
from pygase_core.model.store import BASE_VERSIONS, DIFFERENCES_KEY, GameStateStore
from pygase_core.protocol.packets import FULL_STATE
from pygase_core.protocol.statesync import StateDecoder, UnknownBase, encode_full_state
from tests.memlink import Network

STEPS = [0.01, 0.1, 1 / 3, 2.5, 1e-6, 1024.0]


def bits(value: Any) -> Any:
    """A value with every float as its 8 bytes, so equality means bit for bit."""
    if isinstance(value, float):
        return struct.pack(">d", value).hex()
    if isinstance(value, dict):
        return {key: bits(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [bits(item) for item in value]
    return value


def near_boundaries(step: float) -> st.SearchStrategy[float]:
    """Floats at and around half-steps, far out towards the quantum limit, and beyond it."""
    count = st.integers(-(2**20), 2**20) | st.integers(-(2**51), 2**51)
    offset = st.sampled_from([0.0, 0.5, -0.5, 0.4999999, 0.5000001, 1e-9])
    built = st.builds(lambda n, o: (n + o) * step, count, offset)
    return built | st.floats(allow_nan=False, allow_infinity=False)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.data())
def test_differences_round_trip_bit_for_bit(data: st.DataObject) -> None:
    step = data.draw(st.sampled_from(STEPS))
    precision = Precision({"v": step})
    values = near_boundaries(step)
    base = data.draw(st.lists(values | st.integers(-5, 5) | st.none(), max_size=4))
    new = data.draw(st.lists(values | st.integers(-5, 5), min_size=1, max_size=5))
    held = [quantize(x, step) for x in new]  # what the server's state holds
    base_held = {"v": [quantize(x, step) if isinstance(x, float) else x for x in base]}
    wire = precision.to_wire_differences({"v": held}, base_held)
    decoded = precision.from_wire_differences(codec.unpack(codec.pack(wire, wire=True)), base_held)
    assert bits(decoded["v"]) == bits(held)
    assert [type(x) for x in decoded["v"]] == [type(x) for x in held]
    # A move of a few steps from the base costs one byte on the wire.
    for old, now, sent in zip(base_held["v"], held, wire["v"], strict=False):
        if (
            type(old) is float and type(now) is float and abs(now / step) < QUANTUM_LIMIT
            and round(now / step) * step == now and round(old / step) * step == old
            and abs(old / step) < QUANTUM_LIMIT and abs(round(now / step) - round(old / step)) < 80
        ):
            assert len(codec.pack(sent)) == 1


def test_a_delta_whose_base_the_client_forgot_is_dropped_not_misapplied() -> None:
    store = GameStateStore(GameState(p=[1.0, 2.0]), precision={"p": 0.01})
    decoder = StateDecoder()
    baseline = decoder.decode(FULL_STATE, 0, encode_full_state(store.snapshot(), store.precision))
    assert isinstance(baseline, GameState)
    decoder.remember(baseline)
    store.push_update(GameStateUpdate(1, p=[1.25, 2.0]))
    encoded = store.encoded_differences_since(0)
    assert encoded is not None
    assert DIFFERENCES_KEY in codec.unpack(encoded[1])
    update = decoder.decode(0, 1, encoded[1])
    assert isinstance(update, GameStateUpdate) and update.changes["p"] == [1.25, 2.0]
    fresh = StateDecoder()
    fresh.precision = store.precision
    try:
        fresh.decode(0, 1, encoded[1])
    except UnknownBase:
        pass
    else:
        raise AssertionError("a delta of differences from an unknown base was decoded")


def test_random_walks_under_loss_and_reordering_end_exact_also_after_falling_far_behind() -> None:
    rng = random.Random(12)
    entities = {i: [rng.uniform(0, 100), rng.uniform(0, 100)] for i in range(30)}
    store = GameStateStore(
        GameState(entities=entities, hp={i: 10 for i in range(30)}),
        precision={"entities": 0.01},
    )
    network = Network(store, seed=12)
    link = {"loss": 0.2, "latency": 0.01, "jitter": 0.04, "duplicate": 0.05}
    clients = [network.add_client((f"10.0.2.{i}", 7000 + i), **link) for i in range(3)]
    behind = clients[2]
    network.run_until(lambda: all(c.endpoint.connection is not None for c in clients))
    sent_differences = 0
    for tick in range(1, 3 * BASE_VERSIONS + 40):
        if tick == 30:
            network.down[behind.address].loss = 1.0  # cut off for longer than the ring reaches
        if tick == 30 + 2 * BASE_VERSIONS:
            network.down[behind.address].loss = 0.2
        moved = {}
        for key in rng.sample(sorted(entities), 20):
            x, y = store.get_game_state().entities.get(key, [50.0, 50.0])
            moved[key] = [x + rng.uniform(-0.4, 0.4), y + rng.uniform(-0.4, 0.4)]
        if tick % 17 == 0:
            moved[rng.randrange(30)] = codec.TO_DELETE  # type: ignore[assignment]
        store.push_update(
            GameStateUpdate(tick, entities=moved, hp={tick % 30: tick})
        )
        encoded = store.encoded_differences_since(tick - 1)
        sent_differences += encoded is not None and DIFFERENCES_KEY in codec.unpack(encoded[1])
        network.run(0.02)
    assert sent_differences > 100

    def exact() -> bool:
        server = store.get_game_state()
        return all(
            c.state.time_order == server.time_order
            and bits(c.state.to_dict()) == bits(server.to_dict())
            for c in clients
        )

    network.run_until(exact)
    assert all(type(v) is int for v in behind.state.hp.values())
