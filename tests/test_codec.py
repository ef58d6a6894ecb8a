"""Tests for the msgpack wire encoding of game values."""

from __future__ import annotations

import collections
import contextlib
import copy
import enum
import math
import pickle
import struct
import threading
import tracemalloc
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pygase_core.errors import ProtocolError, UnsupportedValueError
from pygase_core.model import codec
from pygase_core.model.codec import TO_DELETE, Overwrite, check_value, pack, unpack


def strictly_equal(a: Any, b: Any) -> bool:
    """Equality that also demands the same container and scalar types (tuple is not list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strictly_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def roundtrip(value: Any) -> Any:
    return unpack(pack(value))


# -- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        -(2**63),
        2**64 - 1,
        0.0,
        -0.0,
        1.5,
        1e308,
        5e-324,
        math.inf,
        -math.inf,
        "",
        "héllo wörld ✓",
        b"",
        b"\x00\xff binary",
        [],
        (),
        {},
        [1, "two", 3.0, None, b"4"],
        (1, (2, (3, ())), [4, (5,)]),
        {"a": {"b": {"c": [1, 2, {"d": (3, 4)}]}}},
        {1: "one", -2: "minus two", 2**64 - 1: "big", "s": "string"},
        {"pos": (1.0, 2.0), "path": [(0, 0), (1, 1)]},
    ],
)
def test_roundtrip_preserves_value_and_types(value: Any) -> None:
    assert strictly_equal(roundtrip(value), value)


def test_float_is_float64_bit_for_bit() -> None:
    for value in (0.1, 0.1 + 0.2, 1 / 3, math.pi, 1.0000000000000002, 123456789.123456789):
        result = roundtrip(value)
        assert struct.pack(">d", result) == struct.pack(">d", value)


def test_nan_roundtrips() -> None:
    assert math.isnan(roundtrip(math.nan))


def test_tuple_comes_back_as_tuple_and_list_as_list() -> None:
    result = roundtrip({"t": (1, 2), "l": [1, 2], "nested": [(1, [2, (3,)])]})
    assert type(result["t"]) is tuple
    assert type(result["l"]) is list
    assert type(result["nested"][0]) is tuple
    assert type(result["nested"][0][1]) is list
    assert type(result["nested"][0][1][1]) is tuple


def test_subclasses_travel_as_their_base_type() -> None:
    class Color(enum.IntEnum):
        RED = 1

    class Name(str, enum.Enum):
        BOB = "bob"

    point = collections.namedtuple("point", "x y")
    ordered = collections.OrderedDict(a=1)
    result = roundtrip([Color.RED, Name.BOB, point(1, 2), ordered, {Color.RED: "key"}])
    assert strictly_equal(result, [1, "bob", (1, 2), {"a": 1}, {1: "key"}])


def test_sentinels_roundtrip() -> None:
    assert roundtrip(TO_DELETE) is TO_DELETE
    result = roundtrip({"k": TO_DELETE, "o": Overwrite({"a": {"b": 1}, "c": TO_DELETE})})
    assert result["k"] is TO_DELETE
    assert type(result["o"]) is Overwrite
    assert result["o"]["c"] is TO_DELETE
    assert type(result["o"]["a"]) is dict


def test_to_delete_keeps_identity_through_copy_and_pickle() -> None:
    assert repr(TO_DELETE) == "TO_DELETE"
    assert copy.copy(TO_DELETE) is TO_DELETE
    assert copy.deepcopy({"k": TO_DELETE})["k"] is TO_DELETE
    assert pickle.loads(pickle.dumps(TO_DELETE)) is TO_DELETE
    assert type(TO_DELETE)() is TO_DELETE


def test_overwrite_pickles_and_copies_as_overwrite() -> None:
    marker = Overwrite({"a": 1})
    assert type(pickle.loads(pickle.dumps(marker))) is Overwrite
    assert type(copy.deepcopy(marker)) is Overwrite


def test_pack_is_safe_from_several_threads() -> None:
    values = [{"thread": n, "data": list(range(n * 10))} for n in range(8)]
    failures: list[int] = []

    def work(value: dict[str, Any]) -> None:
        for _ in range(300):
            if unpack(pack(value)) != value:
                failures.append(value["thread"])

    threads = [threading.Thread(target=work, args=(v,)) for v in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures


# -- rejection -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1, 2}, "value: cannot send a set"),
        (frozenset(), "value: cannot send a frozenset"),
        (object(), "value: cannot send an object"),
        (bytearray(b"x"), "value: cannot send a bytearray"),
        (1 + 2j, "value: cannot send a complex"),
        (2**64, "value: cannot send the integer 18446744073709551616"),
        (-(2**63) - 1, "does not fit in 64 bits"),
        ({1.5: "x"}, "value: cannot use a float (1.5) as a key"),
        ({None: "x"}, "cannot use a NoneType"),
        ({True: "x"}, "cannot use a bool"),
        ({(1, 2): "x"}, "cannot use a tuple"),
        ({b"k": "x"}, "cannot use a bytes"),
        ({2**64: "x"}, "as a key: it does not fit in 64 bits"),
        (msgpack.ExtType(5, b"x"), "cannot send an ExtType"),
    ],
)
def test_unsupported_values_are_rejected(value: Any, message: str) -> None:
    with pytest.raises(UnsupportedValueError, match=None) as info:
        pack(value)
    assert message in str(info.value)
    with pytest.raises(UnsupportedValueError):
        check_value(value)


def test_error_message_names_the_path() -> None:
    state = {"players": {"bob": {"pos": {1, 2}}}}
    with pytest.raises(UnsupportedValueError) as info:
        check_value(state["players"], "players")
    assert str(info.value) == "players['bob']['pos']: cannot send a set"
    with pytest.raises(UnsupportedValueError) as info:
        pack({"a": [0, (1, {"b": object()})]})
    assert str(info.value) == "value['a'][1][1]['b']: cannot send an object"
    with pytest.raises(UnsupportedValueError) as info:
        check_value({"k": {3: {7.5: 0}}}, "state")
    assert str(info.value).startswith("state['k'][3]: cannot use a float (7.5) as a key")


def test_unsupported_value_error_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        pack({1, 2})


def test_depth_limit() -> None:
    def nested(depth: int) -> Any:
        value: Any = 0
        for _ in range(depth):
            value = [value]
        return value

    assert unpack(pack(nested(codec.MAX_DEPTH))) == nested(codec.MAX_DEPTH)
    with pytest.raises(UnsupportedValueError, match="nested deeper than"):
        pack(nested(codec.MAX_DEPTH + 1))
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(UnsupportedValueError, match="nested deeper than"):
        pack(cyclic)


def test_sentinel_placement_policies() -> None:
    check_value({"a": TO_DELETE, "b": Overwrite({})}, sentinels="dict_values")
    check_value([TO_DELETE], sentinels="anywhere")
    with pytest.raises(UnsupportedValueError, match=r"x\['a'\]\[0\]: TO_DELETE"):
        check_value({"a": [TO_DELETE]}, "x", sentinels="dict_values")
    with pytest.raises(UnsupportedValueError, match="overwrite marker"):
        check_value((Overwrite(),), sentinels="dict_values")
    with pytest.raises(UnsupportedValueError, match="TO_DELETE"):
        check_value({"a": {"b": TO_DELETE}}, sentinels="never")
    with pytest.raises(UnsupportedValueError, match="overwrite marker"):
        check_value({"a": Overwrite()}, sentinels="never")


# -- hostile input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\xc1",  # never used
        b"\x92\x01",  # truncated array
        b"\x01\x02",  # trailing data
        b"\xa2\xff\xfe",  # invalid UTF-8
        b"\xc7\x00\x09",  # unknown extension code
        b"\xd4\x01\x00",  # TO_DELETE code with a payload
        b"\xd6\xff\x00\x00\x00\x01",  # msgpack timestamp
        b"\x81\xca\x00\x00\x00\x00\x01",  # float key
        b"\x81\xc0\x01",  # nil key
        b"\x81\x91\x01\x02",  # list key (unhashable)
        b"\x92\x01\xc7\x00\x02",  # tuple marker not in first place
        b"\xc7\x00\x02",  # bare tuple marker
        b"\x91\xc7\x00\x03",  # overwrite marker without a dict
        b"\x93\xc7\x00\x03\x80\x80",  # overwrite marker with too much
        b"\x91" * 2000 + b"\x00",  # too deep
        b"\xdd\xff\xff\xff\xff",  # huge array claim
        b"\xdf\xff\xff\xff\xff",  # huge map claim
        b"\xdb\xff\xff\xff\xff",  # huge string claim
    ],
)
def test_malformed_input_raises_protocol_error(blob: bytes) -> None:
    with pytest.raises(ProtocolError):
        unpack(blob)


def test_non_bytes_input_raises_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        unpack("not bytes")  # type: ignore[arg-type]


def test_nested_array_claims_cannot_amplify_memory() -> None:
    # 1000 nested array32 headers, each claiming as many items as the blob has bytes: decoding
    # them eagerly would preallocate about 1000 * 5000 item slots (40 MB) before failing.
    blob = (b"\xdd" + struct.pack(">I", 5000)) * 1000
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError):
            unpack(blob)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_large_legitimate_arrays_still_decode() -> None:
    value = {"heights": [float(i) for i in range(5000)], "ids": list(range(70_000))}
    assert unpack(pack(value)) == value


@settings(derandomize=True, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_garbage_raises_only_protocol_error(blob: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        unpack(blob)


def game_values(with_sentinels: bool = False) -> st.SearchStrategy[Any]:
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(min_value=codec.INT_MIN, max_value=codec.INT_MAX)
        | st.floats(allow_nan=False)
        | st.text(max_size=10)
        | st.binary(max_size=10)
    )
    if with_sentinels:
        leaves = leaves | st.just(TO_DELETE)
    keys = st.text(max_size=5) | st.integers(min_value=codec.INT_MIN, max_value=codec.INT_MAX)

    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        containers = (
            st.lists(children, max_size=4)
            | st.lists(children, max_size=4).map(tuple)
            | st.dictionaries(keys, children, max_size=4)
        )
        if with_sentinels:
            containers = containers | st.dictionaries(keys, children, max_size=3).map(Overwrite)
        return containers

    return st.recursive(leaves, extend, max_leaves=20)


@settings(derandomize=True, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(game_values(with_sentinels=True))
def test_any_game_value_roundtrips(value: Any) -> None:
    assert strictly_equal(roundtrip(value), value)


@settings(derandomize=True, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(game_values(), st.data())
def test_corrupted_encodings_raise_only_protocol_error(value: Any, data: st.DataObject) -> None:
    blob = bytearray(pack(value))
    cut = data.draw(st.integers(min_value=0, max_value=len(blob)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4))
    for position, byte in flips:
        if blob:
            blob[position % len(blob)] = byte
    with contextlib.suppress(ProtocolError):
        unpack(bytes(blob[:cut]))
