"""The one-pass update path gives exactly what the separate steps gave.

An update's constructor checks and copies its values in one walk, the store hands a client one
version behind the pushed update itself with the push's own encoding, and older bases are
brought up to date when they are asked for. Each is compared here with a straightforward
reference: the full check followed by a plain recursive copy, and deltas combined from scratch.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pygase_core.errors import ProtocolError, UnsupportedValueError
from pygase_core.model import codec
from pygase_core.model.codec import TO_DELETE, Overwrite, check_value
from pygase_core.model.gamestate import GameState, GameStateUpdate
from pygase_core.model.store import GameStateStore, encode_changes


class Colour(enum.IntEnum):
    RED = 1


# -- the reference: check everything, then copy plainly ------------------------------------------


def plain_copy(value: Any) -> Any:
    """Containers copied, immutable leaves shared, a tuple of leaves shared whole."""
    if isinstance(value, dict):
        copied = {k: plain_copy(v) for k, v in value.items()}
        return Overwrite(copied) if type(value) is Overwrite else copied
    if isinstance(value, list):
        return [plain_copy(v) for v in value]
    if isinstance(value, tuple):
        if any(isinstance(v, dict | list | tuple) for v in value):
            return tuple(plain_copy(v) for v in value)
        return value
    return value


def reference_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """What an update is made of: every value checked, then copied as a change."""
    for name, value in changes.items():
        if name != "game_status":
            check_value(value, name, sentinels="dict_values")

    def change(value: Any) -> Any:
        if value is TO_DELETE:
            return value
        if type(value) is Overwrite:
            state = GameState(time_order=0, x={})
            state.apply(GameStateUpdate.prechecked(1, {"x": Overwrite(plain_copy(value))}))
            return Overwrite(state.x)  # an overwrite's plain form: deletions gone
        if isinstance(value, dict):
            return {k: change(v) for k, v in value.items()}
        return plain_copy(value)

    return {name: change(value) for name, value in changes.items()}


def containers(value: Any) -> list[Any]:
    """Every list and dict inside ``value``, ``value`` included."""
    found = [value] if isinstance(value, dict | list) else []
    if isinstance(value, dict):
        for item in value.values():
            found += containers(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found += containers(item)
    return found


def same(a: Any, b: Any) -> bool:
    """Equal, with the same container types all the way down (an overwrite is not a dict)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) or (a != a and b != b)  # NaN equals NaN here


LEAVES = (
    st.floats()
    | st.integers(-3, 3)
    | st.sampled_from([2**63 - 1, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64])
    | st.text(max_size=3)
    | st.binary(max_size=3)
    | st.none()
    | st.booleans()
    | st.just(Colour.RED)
)
ODD = st.just(TO_DELETE) | st.builds(set) | st.just(object())
KEYS = st.sampled_from(["a", "b", 1, -(2**63), 2**64]) | st.booleans() | st.just(1.5)
VALUES = st.recursive(
    LEAVES | ODD,
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(KEYS, children, max_size=3)
        | st.dictionaries(KEYS, children, max_size=3).map(Overwrite)
    ),
    max_leaves=10,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["pos", "hp", "items"]), VALUES, max_size=3))
def test_update_checks_and_copies_like_the_reference(changes: dict[str, Any]) -> None:
    try:
        expected = reference_changes(changes)
    except UnsupportedValueError as error:
        with pytest.raises(UnsupportedValueError) as raised:
            GameStateUpdate(1, **changes)
        assert str(raised.value) == str(error)
        return
    update = GameStateUpdate(1, **changes)
    assert same(update.changes, expected)
    originals = {id(c) for c in containers(changes)}
    assert not any(id(c) in originals for c in containers(update.changes))


@pytest.mark.parametrize("depth", [codec.MAX_DEPTH, codec.MAX_DEPTH + 1])
def test_depth_limit_is_the_same(depth: int) -> None:
    value: Any = 1.0
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    if depth > codec.MAX_DEPTH:
        with pytest.raises(UnsupportedValueError, match="nested deeper"):
            GameStateUpdate(1, deep=value)
    else:
        assert GameStateUpdate(1, deep=value).deep == value


# -- the store: deltas against deltas combined from scratch ----------------------------------------

ENTITY_CHANGES = st.dictionaries(
    st.integers(0, 5),
    st.just(TO_DELETE)
    | st.lists(st.floats(allow_nan=False), min_size=2, max_size=2)
    | st.fixed_dictionaries({"x": st.integers(0, 9)}, optional={"tag": st.text(max_size=2)}),
    max_size=4,
)
STEPS = st.lists(
    st.tuples(ENTITY_CHANGES, st.lists(st.integers(0, 8), max_size=3)), min_size=1, max_size=30
)


@settings(max_examples=100, deadline=None)
@given(STEPS, st.integers(1, 12), st.sampled_from([None, {"entities": 0.01}]))
def test_store_deltas_equal_deltas_combined_from_scratch(
    steps: list[tuple[dict[int, Any], list[int]]],
    cache_size: int,
    precision: dict[str, float] | None,
) -> None:
    store = GameStateStore(
        GameState(entities={}, t=0.0), update_cache_size=cache_size, precision=precision
    )
    store.max_update_size = 1 << 20
    history = [store.snapshot()]
    pushed: list[GameStateUpdate] = []  # as the store applied them (quantized, if declared)
    for step, (entities, lags) in enumerate(steps, start=1):
        store.push_update(GameStateUpdate(step, entities=entities, t=float(step)))
        pushed.append(store.get_update_cache()[-1])
        history.append(store.snapshot())
        for lag in lags:  # clients that far behind ask for their delta, some again and again
            base = step - lag
            if base < 0:
                continue
            delta = store.changes_since(base)
            encoded = store.encoded_changes_since(base)
            if delta is None:
                assert encoded is None
                assert lag >= cache_size or lag > 32  # only bases the cache no longer covers
                continue
            reference = GameStateUpdate.combine(pushed[base:]) or GameStateUpdate(step)
            assert delta == reference
            assert encoded is not None and encoded[0] == step
            assert encoded[1] == encode_changes(reference.changes, store.precision)
            rebuilt = history[base].copy()
            rebuilt.apply(delta)
            assert rebuilt == history[step]
    assert store.get_game_state() == history[-1]


# -- the client: decoding without a hook per array ---------------------------------------------

WIRE_VALUES = st.recursive(
    st.floats() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=2) | st.none()
    | st.booleans() | st.just(TO_DELETE),
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=2) | st.integers(-3, 3), children, max_size=3)
        | st.dictionaries(st.text(max_size=2), children, max_size=3).map(Overwrite)
    ),
    max_leaves=12,
)


def reference_unpack(data: bytes) -> Any:
    """The general decoder: a hook for every array, then the full check."""
    return codec._unpack_checked(data, len(data))


def outcome(decode: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "value", decode(data)
    except ProtocolError as error:
        return "error", str(error)


@settings(max_examples=300, deadline=None)
@given(WIRE_VALUES, st.data())
def test_unpack_matches_the_general_decoder(value: Any, data: st.DataObject) -> None:
    packed = codec.pack(value)
    fast = codec.unpack(packed)
    assert same(fast, value)
    # Damaged input: the same value, or a ProtocolError, either way.
    damaged = bytearray(packed)
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(damaged) - 1))
        damaged[index] = data.draw(st.sampled_from([0x01, 0x90, 0x91, 0x81, 0xC0, 0xD4, 0xC3]))
    fast_outcome = outcome(codec.unpack, bytes(damaged))
    slow_outcome = outcome(reference_unpack, bytes(damaged))
    assert fast_outcome[0] == slow_outcome[0]
    if fast_outcome[0] == "value":
        assert same(fast_outcome[1], slow_outcome[1])


@pytest.mark.parametrize("depth", [codec.MAX_DEPTH, codec.MAX_DEPTH + 1])
@pytest.mark.parametrize("parity", [0, 1])
def test_unpack_depth_limit_is_the_same(depth: int, parity: int) -> None:
    value: Any = [1.0, 2.0]
    for level in range(depth - 1):
        value = [value] if level % 2 == parity else {"k": value}
    packed = codec.pack(value) if depth <= codec.MAX_DEPTH else _pack_unchecked(value)
    assert outcome(codec.unpack, packed) == outcome(reference_unpack, packed)
    assert (outcome(codec.unpack, packed)[0] == "value") == (depth <= codec.MAX_DEPTH)


def _pack_unchecked(value: Any) -> bytes:
    import msgpack  # type: ignore[import-untyped]

    return bytes(msgpack.packb(value))
