"""Declared precision: the store quantizes, the wire carries small ints, both sides agree."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pygase_core.model import codec
from pygase_core.model.gamestate import GameState, GameStateUpdate
from pygase_core.model.precision import FLOAT32, Precision
from pygase_core.model.store import GameStateStore
from pygase_core.protocol.packets import FULL_STATE
from pygase_core.protocol.statesync import StateDecoder, encode_delta, encode_full_state
from tests.memlink import Network

STEPS = [0.01, 0.1, 1 / 3, 0.05, 2.5, 1e-6, 1024.0]


def bits(value: float) -> str:
    return struct.pack(">d", value).hex()


def received(store: GameStateStore) -> GameState:
    """The state a client decodes from the store's baseline."""
    state = store.get_game_state()
    payload = encode_full_state(state, store.precision)
    decoded = StateDecoder().decode(FULL_STATE, state.time_order, payload)
    assert isinstance(decoded, GameState)
    return decoded


@pytest.mark.parametrize(
    ("declaration", "error", "words"),
    [
        ([("entities", 0.01)], TypeError, "mapping"),
        ({}, ValueError, "no path"),
        ({"entities": 0}, ValueError, "positive"),
        ({"entities": -0.5}, ValueError, "positive"),
        ({"entities": math.inf}, ValueError, "finite"),
        ({"entities": math.nan}, ValueError, "finite"),
        ({"entities": True}, TypeError, "number"),
        ({"entities": "float16"}, ValueError, "not a precision"),
        ({"entities": None}, TypeError, "number"),
        ({"": 0.1}, ValueError, "invalid precision path"),
        ({"a..b": 0.1}, ValueError, "invalid precision path"),
        ({3: 0.1}, TypeError, "str"),
        ({"game_status": 0.1}, ValueError, "game_status"),
        ({"a.*": 0.1, "*.b": 0.2}, ValueError, "both cover"),
    ],
)
def test_bad_declarations_fail_at_construction(
    declaration: object, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        GameStateStore(GameState(), precision=declaration)  # type: ignore[arg-type]


def test_the_longest_path_decides_and_ints_bools_and_strings_stay() -> None:
    store = GameStateStore(
        GameState(entities={1: {"x": 1.23456, "angle": 0.123456, "hp": 3, "on": True, "n": "a"}}),
        precision={"entities": 0.1, "entities.*.angle": 0.001},
    )
    entity = store.get_game_state().entities[1]
    assert entity == {"x": 1.2000000000000002, "angle": 0.123, "hp": 3, "on": True, "n": "a"}
    assert type(entity["hp"]) is int
    client = received(store)
    assert client == store.get_game_state()
    assert type(client.entities[1]["hp"]) is int and client.entities[1]["on"] is True


def test_floats_off_the_declared_paths_stay_float64_bit_for_bit() -> None:
    store = GameStateStore(
        GameState(entities=[0.123456789], t=0.123456789), precision={"entities": 0.5}
    )
    client = received(store)
    assert bits(client.t) == bits(0.123456789)
    assert client.entities == [0.0]


@settings(derandomize=True, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    step=st.sampled_from(STEPS),
    base=st.one_of(st.integers(-10**6, 10**6), st.integers(-(2**60), 2**60)),
    nudge=st.sampled_from([-2, -1, 0, 1, 2]),
    far=st.floats(allow_nan=False, allow_infinity=True),
)
def test_rounding_is_identical_on_both_sides_near_boundaries_and_far_out(
    step: float, base: int, nudge: int, far: float
) -> None:
    # The value half a step past a multiple, moved a few ulps either way: the rounding boundary.
    boundary = (base + 0.5) * step
    near = boundary
    for _ in range(abs(nudge)):
        near = math.nextafter(near, math.inf if nudge > 0 else -math.inf)
    store = GameStateStore(
        GameState(v={"a": near, "b": far, "c": [boundary, -near]}), precision={"v": step}
    )
    server = store.get_game_state()
    client = received(store)
    for key in ("a", "b"):
        assert bits(client.v[key]) == bits(server.v[key])
    assert [bits(x) for x in client.v["c"]] == [bits(x) for x in server.v["c"]]
    # Quantizing a quantized value changes nothing: a push of the same values is no change.
    store.push_update(GameStateUpdate(1, v={"a": server.v["a"], "b": server.v["b"]}))
    assert store.get_update_cache()[-1].changes == {}
    # Deltas agree too.
    store.push_update(GameStateUpdate(2, v={"a": near + step, "c": [far, boundary]}))
    delta = store.get_update_cache()[-1]
    decoder = StateDecoder()
    decoder.precision = store.precision
    update = decoder.decode(1, 2, encode_delta(delta, store.precision))
    assert isinstance(update, GameStateUpdate)
    client.apply(update)
    assert [bits(x) for x in client.v["c"]] == [bits(x) for x in server.v["c"]]
    assert bits(client.v["a"]) == bits(server.v["a"])


@settings(derandomize=True, max_examples=200)
@given(st.floats(allow_nan=False, width=64))
def test_float32_sends_single_floats_that_both_sides_hold(value: float) -> None:
    store = GameStateStore(GameState(p=[value]), precision={"p": FLOAT32})
    server = store.get_game_state().p[0]
    try:
        expected = struct.unpack(">f", struct.pack(">f", value))[0]
    except OverflowError:
        expected = value
    assert bits(server) == bits(expected)
    assert bits(received(store).p[0]) == bits(server)


def test_values_travel_as_small_ints_and_a_move_under_the_step_costs_nothing() -> None:
    positions = {i: [i * 0.731, 50.0 - i * 0.417] for i in range(100)}
    store = GameStateStore(GameState(entities=positions), precision={"entities": 0.01})
    plain = GameStateStore(GameState(entities=positions))
    move = {i: [x + 0.2, y - 0.1] for i, (x, y) in positions.items()}
    store.push_update(GameStateUpdate(1, entities=move))
    plain.push_update(GameStateUpdate(1, entities=move))
    small = encode_delta(store.get_update_cache()[-1], store.precision)
    large = encode_delta(plain.get_update_cache()[-1], None)
    assert len(small) < len(large) / 2  # float64s are 9 bytes; steps of 0.01 up to 100 are 3
    assert len(small) <= 100 * 8 + 20
    # Moving by less than half a step does not change the quantized value: no change at all.
    settled = store.get_game_state().entities
    tiny = {i: [x + 0.001, y] for i, (x, y) in settled.items()}
    store.push_update(GameStateUpdate(2, entities=tiny))
    assert store.get_update_cache()[-1].changes == {}
    # One entity that moved a whole step is the only one in the delta.
    tiny[7] = [tiny[7][0] + 0.01, tiny[7][1]]
    store.push_update(GameStateUpdate(3, entities=tiny))
    assert list(store.get_update_cache()[-1].changes["entities"]) == [7]


def test_a_client_over_a_lossy_link_ends_with_the_servers_exact_values() -> None:
    store = GameStateStore(
        GameState(entities={i: {"x": 0.0, "y": 0.0, "hp": 10} for i in range(20)}),
        precision={"entities.*.x": 0.01, "entities.*.y": "float32"},
    )
    network = Network(store, seed=5)
    client = network.add_client(("10.0.0.2", 5000), loss=0.2)
    for tick in range(1, 120):
        moved = {i: {"x": tick * 0.0137 * i, "y": tick * 0.1 + i} for i in range(20)}
        if tick % 10 == 0:
            moved[tick % 20] = codec.TO_DELETE  # type: ignore[assignment]
        store.push_update(GameStateUpdate(tick, entities=moved))
        network.run(0.02)
    network.run_until(lambda: client.state == store.get_game_state())
    for i, entity in store.get_game_state().entities.items():
        assert bits(client.state.entities[i]["x"]) == bits(entity["x"])
        if "hp" in entity:  # (a deleted entity comes back without one)
            assert type(client.state.entities[i]["hp"]) is int


def test_a_precision_object_is_accepted_and_compares_by_declaration() -> None:
    precision = Precision({"a": 0.5})
    assert GameStateStore(precision=precision).precision == Precision({"a": 0.5})
    assert Precision.from_description(precision.describe()) == precision


def test_a_value_whose_nearest_step_is_beyond_the_largest_float_is_kept_as_it_is() -> None:
    largest = 1.7e308
    store = GameStateStore(GameState(v=[largest, -largest, 0.9e308]), precision={"v": 1e308})
    assert store.get_game_state().v == [largest, -largest, 1e308]
    client = received(store)
    assert [bits(x) for x in client.v] == [bits(x) for x in store.get_game_state().v]
