"""Msgpack wire encoding of the values a game state or an event may carry.

A game value is built from ``None``, ``bool``, ``int`` (anything msgpack carries, -2**63 up to
2**64-1), ``float`` (always sent as float64, so it arrives bit for bit), ``str``, ``bytes``,
``list``, ``tuple`` and ``dict`` with ``str`` or ``int`` keys, nested up to :data:`MAX_DEPTH`
containers deep. Subclasses of these types (an ``IntEnum``, a ``namedtuple``) are sent as their
base type. Two special values belong to game state updates and travel too: :data:`TO_DELETE` and
:class:`Overwrite`. They live here rather than in :mod:`pygase_core.model.gamestate` because the
encoder has to recognise them, and the game state module builds on this one.

Why the validation: msgpack would happily send a ``set`` as nothing at all or fail deep inside
the encoder with a message that does not say which value was wrong. Checking up front lets the
error name the offending path (``players['bob']['pos']: cannot send a set``) and be raised at the
caller's line.

Wire layout of the three values plain msgpack has no type for, each tagged with its own
extension code so that no ordinary value can be mistaken for them:

* ``TO_DELETE`` is the empty extension value of code 1.
* A tuple is an array whose first element is the empty extension value of code 2, followed by
  the items. The marker sits *inside* the array so decoding needs no nested msgpack pass: nested
  passes would cost a fresh decoder per tuple and put a hostile nesting depth on the C stack.
* An :class:`Overwrite` dict is a two-element array: the empty extension value of code 3 and the
  map.

Decoding is the receiving edge of the network, so :func:`unpack` turns every kind of malformed
input into :class:`~pygase_core.errors.ProtocolError` and bounds what a blob can make it allocate.
"""

from __future__ import annotations

import itertools
import struct
import threading
from typing import Any, Final, Literal

import msgpack  # type: ignore[import-untyped]

from pygase_core.errors import ProtocolError, UnsupportedValueError

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "MAX_DEPTH",
    "TO_DELETE",
    "ExactInt",
    "Float32",
    "Overwrite",
    "check_value",
    "exact_int_ext",
    "float32_ext",
    "pack",
    "pack_checked",
    "unpack",
]

MAX_DEPTH: Final = 64
"""How many containers may be nested inside each other in one value."""

INT_MIN: Final = -(2**63)
"""Smallest integer msgpack can carry."""

INT_MAX: Final = 2**64 - 1
"""Largest integer msgpack can carry."""

_EXT_TO_DELETE: Final = 1
_EXT_TUPLE: Final = 2
_EXT_OVERWRITE: Final = 3
EXACT_INT_CODE: Final = 4
"""Extension code of an int where declared precision makes plain ints mean quantized floats."""
FLOAT32_CODE: Final = 5
"""Extension code of a single float (4 bytes, big-endian) under a ``"float32"`` precision."""
_F32: Final = struct.Struct(">f")


class _ToDeleteType:
    """Type of the :data:`TO_DELETE` sentinel; there is exactly one instance."""

    __slots__ = ()
    _instance: _ToDeleteType | None = None

    def __new__(cls) -> _ToDeleteType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "TO_DELETE"

    def __reduce__(self) -> str:
        # Pickle by name, so unpickling yields the very same object and ``is`` checks hold.
        return "TO_DELETE"

    def __copy__(self) -> _ToDeleteType:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> _ToDeleteType:
        return self


TO_DELETE: Final = _ToDeleteType()
"""In a game state update, the value that removes its key from the state."""


class Overwrite(dict[Any, Any]):
    """A dict in an update that replaces the value in the state wholesale instead of merging.

    Game code never needs it: combining updates produces it, when a plain dict must land on a
    key that an earlier update deleted or set to a non-dict. Merging the combined dict key by
    key into whatever the receiver still holds would resurrect keys the earlier update removed.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Overwrite({dict.__repr__(self)})"


class ExactInt(int):
    """A decoded tagged int (:data:`EXACT_INT_CODE`): an int the game set, not a quantized float.

    Only :mod:`pygase_core.model.precision` gives it meaning; it turns it back into a plain int.
    """

    __slots__ = ()


class Float32(float):
    """A decoded single float (:data:`FLOAT32_CODE`), turned into a plain float by precision."""

    __slots__ = ()


def exact_int_ext(value: int) -> msgpack.ExtType:
    """The tagged form of an int set by the game, under a declared step."""
    return msgpack.ExtType(EXACT_INT_CODE, msgpack.packb(value))


def float32_ext(packed: bytes) -> msgpack.ExtType:
    """The tagged form of a single float (``packed``: its 4 big-endian bytes)."""
    return msgpack.ExtType(FLOAT32_CODE, packed)


class _Marker:
    """Decoded extension tags that only mean something as the first item of an array."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name} marker>"


_TUPLE_MARK: Final = _Marker("tuple")
_OVERWRITE_MARK: Final = _Marker("overwrite")
_TO_DELETE_EXT: Final = msgpack.ExtType(_EXT_TO_DELETE, b"")
_TUPLE_EXT: Final = msgpack.ExtType(_EXT_TUPLE, b"")
_OVERWRITE_EXT: Final = msgpack.ExtType(_EXT_OVERWRITE, b"")

# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

SentinelPolicy = Literal["anywhere", "dict_values", "never"]
"""Where :data:`TO_DELETE` and :class:`Overwrite` may appear in a value."""

_ANYWHERE: Final = 2
_DICT_VALUES: Final = 1
_NEVER: Final = 0
_WIRE: Final = 3
"""Like anywhere, and the extension values of declared precision may appear (see pack)."""
_POLICIES: Final[dict[str, int]] = {
    "anywhere": _ANYWHERE,
    "dict_values": _DICT_VALUES,
    "never": _NEVER,
}

_SCALARS: Final = frozenset({type(None), bool, float, str, bytes})


class _Problem:
    """What is wrong and where; the path is collected innermost first on the way out."""

    __slots__ = ("message", "segments")

    def __init__(self, message: str) -> None:
        self.message = message
        self.segments: list[str] = []

    def describe(self, root: str) -> str:
        return f"{root}{''.join(reversed(self.segments))}: {self.message}"


def _type_phrase(value: object) -> str:
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"


def _int_problem(value: int) -> _Problem | None:
    if INT_MIN <= value <= INT_MAX:
        return None
    return _Problem(f"cannot send the integer {value}: it does not fit in 64 bits")


def _key_problem(key: object) -> _Problem | None:
    if isinstance(key, str):
        return None
    if isinstance(key, int) and not isinstance(key, bool):
        if INT_MIN <= key <= INT_MAX:
            return None
        return _Problem(f"cannot use the integer {key} as a key: it does not fit in 64 bits")
    return _Problem(f"cannot use {_type_phrase(key)} ({key!r}) as a key: only str and int can be")


def _problem(value: object, depth: int, policy: int) -> _Problem | None:
    """Find the first thing in ``value`` that cannot be sent, or return None (the common case).

    Paths are only built when something is wrong, so a valid value costs one walk and no string
    formatting. The container walkers dispatch the common exact types inline, because a Python
    call per leaf would dominate the cost; this function handles everything else.
    """
    kind = type(value)
    if kind is dict:
        return _dict_problem(value, depth, policy)  # type: ignore[arg-type]
    if kind is list or kind is tuple:
        return _sequence_problem(value, depth, policy)  # type: ignore[arg-type]
    if kind is int:
        return _int_problem(value)  # type: ignore[arg-type]
    if kind in _SCALARS:
        return None
    if kind is Overwrite:
        if policy == _NEVER:
            return _Problem("an overwrite marker only belongs in a game state update")
        return _dict_problem(value, depth, policy)  # type: ignore[arg-type]
    if value is TO_DELETE:
        if policy == _NEVER:
            return _Problem("TO_DELETE can only be the value of a key in a game state update")
        return None
    if kind is msgpack.ExtType and policy == _WIRE:
        return None
    # Subclasses of the supported types travel as their base type.
    if isinstance(value, str | bytes | float):
        return None
    if isinstance(value, int):
        return _int_problem(value)
    if isinstance(value, dict):
        return _dict_problem(value, depth, policy)
    if isinstance(value, list | tuple) and not isinstance(value, msgpack.ExtType):
        return _sequence_problem(value, depth, policy)
    return _Problem(f"cannot send {_type_phrase(value)}")


def _dict_problem(value: dict[Any, Any], depth: int, policy: int) -> _Problem | None:
    if depth >= MAX_DEPTH:
        return _Problem(f"nested deeper than {MAX_DEPTH} containers")
    depth += 1
    for key, item in value.items():
        key_kind = type(key)
        if key_kind is not str and (key_kind is not int or not INT_MIN <= key <= INT_MAX):
            problem = _key_problem(key)
            if problem is not None:
                return problem
        kind = type(item)
        if kind is float or kind is str:
            continue
        if kind is dict:
            problem = _dict_problem(item, depth, policy)
        elif kind is int:
            if INT_MIN <= item <= INT_MAX:
                continue
            problem = _int_problem(item)
        elif kind in _SCALARS:
            continue
        elif kind is list or kind is tuple:
            problem = _sequence_problem(item, depth, policy)
        else:
            problem = _problem(item, depth, policy)
        if problem is not None:
            problem.segments.append(f"[{key!r}]")
            return problem
    return None


def _sequence_problem(
    value: list[Any] | tuple[Any, ...], depth: int, policy: int
) -> _Problem | None:
    if depth >= MAX_DEPTH:
        return _Problem(f"nested deeper than {MAX_DEPTH} containers")
    depth += 1
    # In an update, sentinels inside a list would be stored as data instead of acted upon.
    if policy == _DICT_VALUES:
        policy = _NEVER
    for index, item in enumerate(value):
        kind = type(item)
        if kind is float or kind is str:
            continue
        if kind is dict:
            problem = _dict_problem(item, depth, policy)
        elif kind is int:
            if INT_MIN <= item <= INT_MAX:
                continue
            problem = _int_problem(item)
        elif kind in _SCALARS:
            continue
        elif kind is list or kind is tuple:
            problem = _sequence_problem(item, depth, policy)
        else:
            problem = _problem(item, depth, policy)
        if problem is not None:
            problem.segments.append(f"[{index}]")
            return problem
    return None


def check_value(
    value: object, path: str = "value", *, sentinels: SentinelPolicy = "anywhere"
) -> None:
    """Raise :class:`UnsupportedValueError` unless ``value`` can be sent.

    Args:
        value: the value to check, recursively.
        path: how to name ``value`` in the error message; nested positions are appended
            (``players['bob'][0]``).
        sentinels: where :data:`TO_DELETE` and :class:`Overwrite` may appear: ``"anywhere"``
            (the codec itself does not mind), ``"dict_values"`` (as values of dicts reached
            through dicts only, which is where an update acts on them) or ``"never"`` (in a
            game state).
    """
    problem = _problem(value, 0, _POLICIES[sentinels])
    if problem is not None:
        raise UnsupportedValueError(problem.describe(path))


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def _default(obj: object) -> object:
    """Turn what msgpack has no native type for (in strict mode) into something it has."""
    if isinstance(obj, tuple):
        return [_TUPLE_EXT, *obj]
    if isinstance(obj, Overwrite):
        return [_OVERWRITE_EXT, dict(obj)]
    if obj is TO_DELETE:
        return _TO_DELETE_EXT
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, bytes):
        return bytes(obj)
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, list):
        return list(obj)
    raise UnsupportedValueError(f"cannot send {_type_phrase(obj)}")


class _Packers(threading.local):
    """One reusable packer per thread: a packer keeps a buffer and is not thread-safe."""

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        """A fresh packer: a failed pack can leave partial data in the old one's buffer."""
        # strict_types keeps tuples and dict subclasses away from msgpack's own handling, so
        # they reach _default and get their tags.
        self.packer = msgpack.Packer(
            default=_default, use_bin_type=True, strict_types=True, autoreset=True
        )


_packers: Final = _Packers()


def pack(obj: object, *, wire: bool = False) -> bytes:
    """Encode a game value; raise :class:`UnsupportedValueError` naming what cannot be sent.

    With ``wire``, the value may hold the extension values of declared precision
    (:func:`exact_int_ext`, :func:`float32_ext`), as
    :meth:`~pygase_core.model.precision.Precision.to_wire` makes them.
    """
    problem = _problem(obj, 0, _WIRE if wire else _ANYWHERE)
    if problem is not None:
        raise UnsupportedValueError(problem.describe("value"))
    try:
        data: bytes = _packers.packer.pack(obj)
    except BaseException:
        _packers.renew()
        raise
    return data


def pack_checked(obj: object, *, wire: bool = False) -> bytes:
    """:func:`pack` for a value that passed :func:`check_value` (the changes of an update).

    Skips the checking walk, which costs several times the encoding itself. Should the value
    have changed since it was checked, the encoder's own failure is answered with the full
    check, so the error still names what cannot be sent. ``wire`` as for :func:`pack`.
    """
    try:
        data: bytes = _packers.packer.pack(obj)
    except Exception:
        _packers.renew()
        return pack(obj, wire=wire)
    return data


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


def _ext_hook(code: int, data: bytes) -> object:
    if code == EXACT_INT_CODE and 0 < len(data) <= 9:
        try:
            value = msgpack.unpackb(data)
        except Exception:
            value = None
        if type(value) is int:
            return ExactInt(value)
    if code == FLOAT32_CODE and len(data) == 4:
        return Float32(_F32.unpack(data)[0])
    if data == b"":
        if code == _EXT_TO_DELETE:
            return TO_DELETE
        if code == _EXT_TUPLE:
            return _TUPLE_MARK
        if code == _EXT_OVERWRITE:
            return _OVERWRITE_MARK
    raise ProtocolError(f"unknown msgpack extension value (code {code}, {len(data)} bytes)")


def _list_hook(items: list[Any]) -> object:
    if items:
        first = items[0]
        if first is _TUPLE_MARK:
            del items[0]
            return tuple(items)
        if first is _OVERWRITE_MARK:
            if len(items) == 2 and type(items[1]) is dict:
                return Overwrite(items[1])
            raise ProtocolError("malformed overwrite marker")
    return items


def _check_complete(data: bytes | bytearray | memoryview, size: int) -> None:
    """Walk the structure without building it, to refuse truncated or overlong array claims.

    msgpack allocates an array's item slots as soon as it reads the header. Each header may claim
    up to ``len(data)`` items, and a chain of nested headers would multiply that by the nesting
    depth before the decoder notices the data ends early. A structure that is complete cannot
    claim more items than it has bytes, so only complete input is handed to the real decoder.
    """
    unpacker = msgpack.Unpacker(
        max_buffer_size=size,
        max_str_len=size,
        max_bin_len=size,
        max_array_len=size,
        max_map_len=size // 2,
        max_ext_len=size,
    )
    unpacker.feed(data)
    unpacker.skip()
    if unpacker.tell() != size:
        raise ProtocolError(f"{size - unpacker.tell()} bytes of trailing data")


def unpack(data: bytes) -> Any:
    """Decode a game value; raise :class:`ProtocolError`, and nothing else, on malformed input."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(f"expected bytes to decode, got {_type_phrase(data)}")
    size = len(data)
    try:
        # Only array16/array32 headers can claim many slots; fixarrays claim at most 15.
        if b"\xdc" in data or b"\xdd" in data:
            _check_complete(data, size)
        value = msgpack.unpackb(data, list_hook=None, **_unpack_options(size))
    except ProtocolError:
        raise
    except Exception as error:
        raise ProtocolError(f"malformed msgpack data: {type(error).__name__}: {error}") from None
    try:
        return _finish(value, 0)
    except _Suspect:
        return _unpack_checked(data, size)


def _unpack_options(size: int) -> dict[str, Any]:
    return {
        "raw": False,
        "strict_map_key": False,
        "use_list": True,
        "ext_hook": _ext_hook,
        "max_str_len": size,
        "max_bin_len": size,
        "max_array_len": size,
        "max_map_len": size // 2,
        "max_ext_len": size,
    }


def _unpack_checked(data: bytes | bytearray | memoryview, size: int) -> Any:
    """The general decoder: a hook for every array and the full check, which words errors."""
    try:
        if b"\xdc" in data or b"\xdd" in data:
            _check_complete(data, size)
        value = msgpack.unpackb(data, list_hook=_list_hook, **_unpack_options(size))
    except ProtocolError:
        raise
    except Exception as error:
        raise ProtocolError(f"malformed msgpack data: {type(error).__name__}: {error}") from None
    problem = _problem(value, 0, _ANYWHERE)
    if problem is not None:
        raise ProtocolError(f"received an unsupported value: {problem.describe('value')}")
    return value


class _Suspect(Exception):
    """The fast finish met something it leaves to the general decoder (never escapes)."""


_DECODED_LEAVES: Final = frozenset(
    {str, bytes, int, float, bool, type(None), _ToDeleteType, ExactInt, Float32}
)
"""The leaf types msgpack and the extension hook produce: all of them valid game values."""
_KEY_TYPES: Final = frozenset({str, int})
"""Key types a game value may have (msgpack ints always fit in 64 bits)."""


def _flat_lists(items: Any) -> bool:
    """Whether ``items`` are all lists of leaves only, decided without a Python loop per item."""
    return set(map(type, items)) == {list} and _DECODED_LEAVES.issuperset(
        map(type, itertools.chain.from_iterable(items))
    )


def _finish(value: Any, depth: int) -> Any:
    """Check a freshly decoded value and turn tagged arrays into tuples and overwrites.

    Decoded by msgpack without a hook per array, which costs more than the decoding itself
    for a state of many small lists. Containers whose items are all leaves, or all lists of
    leaves, are cleared in one C-level pass; anything unusual (a tag where it does not belong,
    a key that is not a str or int, nesting near the limit) raises :class:`_Suspect`, and the
    general decoder decides, with the same result or error as before.
    """
    kind = type(value)
    if kind is list:
        if depth >= MAX_DEPTH:
            raise _Suspect
        if _DECODED_LEAVES.issuperset(map(type, value)):
            return value
        if value and type(value[0]) is _Marker:
            return _untag(value, depth)
        if depth + 1 < MAX_DEPTH and _flat_lists(value):
            return value
        for index, item in enumerate(value):
            if type(item) not in _DECODED_LEAVES:
                value[index] = _finish(item, depth + 1)
        return value
    if kind is dict:
        if depth >= MAX_DEPTH or not _KEY_TYPES.issuperset(map(type, value)):
            raise _Suspect
        items = value.values()
        if _DECODED_LEAVES.issuperset(map(type, items)):
            return value
        if depth + 1 < MAX_DEPTH and _flat_lists(items):
            return value
        for key, item in list(value.items()):
            if type(item) not in _DECODED_LEAVES:
                value[key] = _finish(item, depth + 1)
        return value
    if kind in _DECODED_LEAVES:
        return value
    raise _Suspect


def _untag(value: list[Any], depth: int) -> Any:
    """A tagged array: the tuple or overwrite it stands for (see the wire layout above)."""
    mark = value[0]
    if mark is _TUPLE_MARK:
        return tuple(
            item if type(item) in _DECODED_LEAVES else _finish(item, depth + 1)
            for item in value[1:]
        )
    if mark is _OVERWRITE_MARK and len(value) == 2 and type(value[1]) is dict:
        return Overwrite(_finish(value[1], depth))
    raise _Suspect
