"""Declared precision: floats the game says need no more than a step (or single precision).

A declaration maps field paths to a precision, for example ``{"entities": 0.01,
"players.*.angle": "float32"}``. Paths are dotted names as in
:class:`~pygase_core.model.interpolation.SnapshotInterpolator`, where ``*`` matches every key of a
dict (or index of a list) at that level, and a path covers everything under it: ``"entities"``
names every float anywhere inside ``state.entities``. Where several paths cover a float, the
longest one decides (``"entities.*.angle"`` over ``"entities"``).

Why it is exact on both sides: the store quantizes every float it is given at a declared path
*before* applying it, so the server's own state holds the rounded value ``q = n * step`` (``n =
round(x / step)``, an int). The wire carries the small int ``n``, and the client computes the
very same expression ``n * step`` with the very same step (sent with the baseline), so both hold
bit-identical floats: prediction and interpolation see what the server sees. Quantizing ``q``
again gives ``q`` (for ``|x / step| < 2**50``; beyond that the step is below the resolution of a
float there and the value is kept, and sent, as the float64 it is).

On the wire, under a declared step, a float is a plain msgpack int: its step count ``n`` in a
full state, and in a delta (:meth:`Precision.to_wire_differences`) the difference of ``n`` from
the step count at the same position in the delta's base version, which both sides remember for
their latest versions, so the receiver adds the same int back (one byte for a move of a few
steps instead of up to three); an int the game put there
(an ``hp``, an ``id``) travels tagged (:data:`~pygase_core.model.codec.EXACT_INT_CODE`) so the
client does not mistake it for a quantized float. Under ``"float32"`` floats travel as 4-byte
single floats (tagged) and ints as they are. Bools, strings and everything else are untouched.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Mapping
from typing import Any, Final

from pygase_core.errors import ProtocolError
from pygase_core.model import codec
from pygase_core.model.codec import TO_DELETE, ExactInt, Float32, Overwrite

__all__ = ["FLOAT32", "Precision", "PrecisionValue"]

FLOAT32: Final = "float32"
"""The precision that sends floats as single floats (4 bytes) instead of doubles."""

PrecisionValue = float | str
"""A step (a positive number) or :data:`FLOAT32`."""

QUANTUM_LIMIT: Final = 2.0**50
"""Beyond ``|x / step|`` of this, a float is kept as it is: the step is finer than a float there."""

DIFFERENCE_BIAS: Final = 48
"""Added to a difference on the wire: msgpack's 1-byte ints run from -32 to 127, so a biased
difference is one byte for moves of -80 to 79 steps either way."""

_F32: Final = struct.Struct(">f")
_MISSING: Final = object()


class _Node:
    """One level of the declared paths: what the next key may be, and a precision ending here."""

    __slots__ = ("children", "precision")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.precision: PrecisionValue | None = None


def _check_precision(path: str, value: object) -> PrecisionValue:
    if isinstance(value, str):
        if value != FLOAT32:
            raise ValueError(
                f"precision of {path!r}: {value!r} is not a precision (use a positive step such"
                f" as 0.01, or {FLOAT32!r})"
            )
        return FLOAT32
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"precision of {path!r} must be a positive number or {FLOAT32!r}, not"
            f" {type(value).__name__}"
        )
    step = float(value)
    if not math.isfinite(step) or step <= 0.0:
        raise ValueError(f"precision of {path!r} must be a positive, finite step, not {value!r}")
    return step


def _parse_path(path: object) -> tuple[str, ...]:
    if not isinstance(path, str):
        raise TypeError(f"precision paths must be str, not {type(path).__name__}")
    parts = tuple(path.split("."))
    if not path or any(not part for part in parts):
        raise ValueError(f"invalid precision path {path!r}: use dotted names such as 'entities'")
    if parts[0] == "game_status":
        raise ValueError("game_status is not a game attribute and has no precision")
    return parts


def _overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return len(a) == len(b) and all(x == y or "*" in (x, y) for x, y in zip(a, b, strict=True))


class Precision:
    """A parsed precision declaration: quantizes floats for the store and converts for the wire.

    Args:
        declaration: field path to a step (a positive number: floats become multiples of it) or
            ``"float32"`` (single floats).

    Raises:
        TypeError: if the declaration is not a mapping, a path is not a str, or a precision is
            neither a number nor a str.
        ValueError: for an empty or malformed path, a step that is not positive and finite, an
            unknown precision name, or two paths of the same length that would both cover one
            float with different precisions.
    """

    __slots__ = ("_declaration", "_root")

    def __init__(self, declaration: Mapping[str, PrecisionValue]) -> None:
        if not isinstance(declaration, Mapping):
            raise TypeError(
                f"precision must be a mapping of paths to steps, not {type(declaration).__name__}"
            )
        if not declaration:
            raise ValueError("precision declares no path (leave it out for float64 everywhere)")
        parsed: list[tuple[tuple[str, ...], PrecisionValue, str]] = []
        for path, value in declaration.items():
            parts = _parse_path(path)
            parsed.append((parts, _check_precision(path, value), path))
        for i, (parts, value, path) in enumerate(parsed):
            for other_parts, other_value, other_path in parsed[i + 1 :]:
                if value != other_value and _overlap(parts, other_parts):
                    raise ValueError(
                        f"precision paths {path!r} and {other_path!r} both cover the same floats"
                        f" with different precisions ({value!r} and {other_value!r})"
                    )
        self._declaration = {path: value for _, value, path in parsed}
        self._root = _Node()
        for parts, value, _ in parsed:
            node = self._root
            for part in parts:
                node = node.children.setdefault(part, _Node())
            node.precision = value

    @property
    def declaration(self) -> dict[str, PrecisionValue]:
        """The declaration, path to step or ``"float32"`` (a new dict)."""
        return dict(self._declaration)

    def __repr__(self) -> str:
        return f"Precision({self._declaration!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Precision):
            return NotImplemented
        return self._declaration == other._declaration

    __hash__ = None  # type: ignore[assignment]

    # -- the wire description, sent with every baseline ------------------------------------------

    def describe(self) -> list[list[Any]]:
        """The declaration as plain values, for the baseline payload."""
        return [[path, value] for path, value in self._declaration.items()]

    @classmethod
    def from_description(cls, description: object) -> Precision:
        """The declaration a baseline carries; :class:`ProtocolError` if it is malformed."""
        if not isinstance(description, list) or not all(
            isinstance(item, list) and len(item) == 2 for item in description
        ):
            raise ProtocolError("malformed precision declaration in a baseline")
        try:
            return cls({str(path): value for path, value in description})
        except (TypeError, ValueError) as error:
            raise ProtocolError(f"bad precision declaration in a baseline: {error}") from None

    # -- walking the declared paths ---------------------------------------------------------------

    def _walk(
        self,
        value: Any,
        nodes: tuple[_Node, ...],
        precision: Any,
        leaf: Any,
        base: Any = _MISSING,
    ) -> Any:
        """``value`` rebuilt with ``leaf(x, precision, b)`` for every scalar a path covers.

        ``b`` is what ``base`` (a value of the same shape, or :data:`_MISSING`) holds at the
        scalar's position, or :data:`_MISSING`. Containers on a declared path are rebuilt (the
        input is never changed); everything off the paths is shared as it is.
        """
        if not nodes and precision is not None:
            return _under(value, precision, leaf, base)
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                child_nodes, child_precision = _descend(nodes, precision, key)
                if child_nodes or child_precision is not None:
                    item = self._walk(
                        item, child_nodes, child_precision, leaf, _item(base, key)
                    )
                out[key] = item
            return Overwrite(out) if type(value) is Overwrite else out
        if isinstance(value, list | tuple):
            if nodes:
                items = []
                for index, item in enumerate(value):
                    child_nodes, child_precision = _descend(nodes, precision, index)
                    if child_nodes or child_precision is not None:
                        item = self._walk(
                            item, child_nodes, child_precision, leaf, _item(base, index)
                        )
                    items.append(item)
            else:
                items = [
                    self._walk(item, nodes, precision, leaf, _item(base, index))
                    for index, item in enumerate(value)
                ]
            return tuple(items) if isinstance(value, tuple) else items
        if precision is None or value is TO_DELETE:
            return value
        return leaf(value, precision, base)

    def _top(
        self, attributes: Mapping[str, Any], leaf: Any, base: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        nodes = (self._root,)
        out = {}
        for name, value in attributes.items():
            if name != "game_status":
                child_nodes, child_precision = _descend(nodes, None, name)
                if child_nodes or child_precision is not None:
                    value = self._walk(
                        value, child_nodes, child_precision, leaf,
                        _MISSING if base is None else base.get(name, _MISSING),
                    )
            out[name] = value
        return out

    # -- the server's side ------------------------------------------------------------------------

    def quantize_attributes(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """A state's attributes with every declared float quantized (a new dict)."""
        return self._top(attributes, _quantize_leaf)

    def settle(self, changes: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        """An update's changes quantized, less what they would not change in ``current``.

        Under a declared path, a value that equals the state's after quantization (same type,
        same value) is dropped, and so is a merge dict left empty: an entity that moved less
        than a step costs nothing on the wire. Changes off the declared paths are kept as given.
        """
        return self._settle(changes, current, (self._root,), None, top=True)

    def _settle(
        self,
        changes: Mapping[Any, Any],
        current: Any,
        nodes: tuple[_Node, ...],
        precision: Any,
        top: bool = False,
    ) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, value in changes.items():
            if top and key == "game_status":
                out[key] = value
                continue
            child_nodes, child_precision = (
                _descend(nodes, precision, key) if nodes else (nodes, precision)
            )
            if not child_nodes and child_precision is None:
                out[key] = value
                continue
            old = current.get(key, _MISSING) if isinstance(current, dict) else _MISSING
            if value is TO_DELETE:
                if child_precision is None or old is not _MISSING:
                    out[key] = value
                continue
            if type(value) is dict and isinstance(old, dict):
                settled = self._settle(value, old, child_nodes, child_precision)
                if settled:
                    out[key] = settled
                continue
            new = self._walk(value, child_nodes, child_precision, _quantize_leaf)
            if child_precision is not None and old is not _MISSING and _identical(new, old):
                continue
            out[key] = new
        return out

    # -- the wire ---------------------------------------------------------------------------------

    def to_wire(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """Attributes or changes (quantized already) as they travel: steps as small ints."""
        return self._top(attributes, _to_wire)

    def to_wire_at(self, path: tuple[Any, ...], value: Any) -> Any:
        """:meth:`to_wire` for one value at ``path`` (a top-level name, then keys)."""
        nodes: tuple[_Node, ...] = (self._root,)
        precision: Any = None
        for key in path:
            nodes, precision = _descend(nodes, precision, key)
        if not nodes and precision is None:
            return value
        return self._walk(value, nodes, precision, _to_wire)

    def from_wire(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """What :meth:`to_wire` made, back as the server holds it (bit for bit)."""
        return self._top(attributes, _from_wire)

    # -- differences from a base version ----------------------------------------------------------

    @property
    def has_steps(self) -> bool:
        """Whether some path declares a step (only those floats can travel as differences)."""
        return any(value != FLOAT32 for value in self._declaration.values())

    def declared_copy(self, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """An independent copy of the attributes a declared path reaches into.

        What a base version must be remembered by, on both sides, to turn differences back
        into values (see :meth:`to_wire_differences`).
        """
        children = self._root.children
        if "*" in children:
            return {
                name: _copy_tree(value) for name, value in attributes.items()
                if name != "game_status"
            }
        return {
            name: _copy_tree(attributes[name]) for name in children if name in attributes
        }

    def to_wire_differences(
        self, changes: Mapping[str, Any], base: Mapping[str, Any]
    ) -> dict[str, Any]:
        """:meth:`to_wire`, but a float on its step as the difference of its step count.

        ``base`` is :meth:`declared_copy` of the state the receiver is known to hold (the
        delta's base). A float on a declared step travels as ``n - b``: ``n`` its own step
        count and ``b`` the step count of the float at the same position in ``base`` (0 where
        there is none there, or no float on the step), plus :data:`DIFFERENCE_BIAS`. Moving
        entities then cost a 1-byte int per coordinate. Everything else travels as
        :meth:`to_wire` sends it.
        """
        return self._top(changes, _to_wire_difference, base)

    def from_wire_differences(
        self, data: Mapping[str, Any], base: Mapping[str, Any]
    ) -> dict[str, Any]:
        """What :meth:`to_wire_differences` made with the same ``base``, back bit for bit."""
        return self._top(data, _from_wire_difference, base)


def _descend(
    nodes: tuple[_Node, ...], precision: Any, key: Any
) -> tuple[tuple[_Node, ...], Any]:
    """The path nodes under ``key`` and the precision that applies there (the deepest wins)."""
    if not nodes:
        return nodes, precision
    name = key if type(key) is str else str(key)
    found: list[_Node] = []
    for node in nodes:
        children = node.children
        for candidate in (children.get(name), children.get("*")):
            if candidate is not None:
                if candidate.children:  # (a node without children only brings its precision)
                    found.append(candidate)
                if candidate.precision is not None:
                    precision = candidate.precision
    return tuple(found), precision


def _item(base: Any, key: Any) -> Any:
    """What ``base`` holds at ``key`` (a dict key or a list index), or :data:`_MISSING`."""
    if base is _MISSING:
        return base
    if isinstance(base, dict):
        return base.get(key, _MISSING)
    if isinstance(base, list | tuple) and type(key) is int and 0 <= key < len(base):
        return base[key]
    return _MISSING


def _copy_tree(value: Any) -> Any:
    """A copy of ``value`` sharing no container with it (its scalars are immutable)."""
    kind = type(value)
    if kind is list:
        return [item if type(item) is float else _copy_tree(item) for item in value]
    if kind is dict:
        return {
            key: item if type(item) is float else _copy_tree(item) for key, item in value.items()
        }
    if isinstance(value, dict):
        return {key: _copy_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [_copy_tree(item) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def _under(value: Any, precision: Any, leaf: Any, base: Any = _MISSING) -> Any:
    """:meth:`Precision._walk` below the last path part: everything in ``value`` is covered."""
    kind = type(value)
    if kind is float:
        return leaf(value, precision, base)
    if base is not _MISSING and (kind is list or kind is tuple or isinstance(value, dict)):
        return _under_base(value, precision, leaf, base)
    if kind is list:
        return [
            leaf(item, precision, _MISSING) if type(item) is float
            else _under(item, precision, leaf)
            for item in value
        ]
    if kind is dict or kind is Overwrite:
        out = {
            key: leaf(item, precision, _MISSING) if type(item) is float
            else _under(item, precision, leaf)
            for key, item in value.items()
        }
        return out if kind is dict else Overwrite(out)
    if kind is tuple:
        return tuple(_under(item, precision, leaf) for item in value)
    if kind is str or kind is bool or value is None or value is TO_DELETE:
        return value
    if isinstance(value, dict):
        return {key: _under(item, precision, leaf) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [_under(item, precision, leaf) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    return leaf(value, precision, base)


def _under_base(value: Any, precision: Any, leaf: Any, base: Any) -> Any:
    """:func:`_under` of a container, with what ``base`` holds at each item's position."""
    if isinstance(value, dict):
        out = {
            key: _under(item, precision, leaf, _item(base, key)) for key, item in value.items()
        }
        return Overwrite(out) if type(value) is Overwrite else out
    items = [_under(item, precision, leaf, _item(base, i)) for i, item in enumerate(value)]
    return tuple(items) if isinstance(value, tuple) else items


def _identical(a: Any, b: Any) -> bool:
    """Equal with equal types all the way down (1 is not 1.0 nor True; a list is not a tuple)."""
    if a != b:
        return False  # the common case in a moving world, decided in C
    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            return False
        return all(_identical(value, b[key]) for key, value in a.items())
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def quantize(value: Any, precision: PrecisionValue) -> Any:
    """The value the server holds for ``value`` under ``precision`` (only floats change)."""
    if not isinstance(value, float):
        return value
    if precision == FLOAT32:
        try:
            single: float = _F32.unpack(_F32.pack(value))[0]
        except OverflowError:
            return float(value)  # beyond single range: kept (and sent) as the double it is
        return single
    step: float = precision  # type: ignore[assignment]
    scaled = value / step
    if -QUANTUM_LIMIT < scaled < QUANTUM_LIMIT:
        quantized = round(scaled) * step
        if -sys.float_info.max <= quantized <= sys.float_info.max:
            return quantized
    return float(value)  # (also where the nearest step would be beyond the largest float)


def _quantize_leaf(value: Any, precision: PrecisionValue, base: Any) -> Any:
    return quantize(value, precision)


def _step_count(value: float, step: float) -> int | None:
    """The int ``n`` with ``n * step == value`` exactly, or None (off the step, or too large)."""
    scaled = value / step
    if -QUANTUM_LIMIT < scaled < QUANTUM_LIMIT:
        count = round(scaled)
        if count * step == value:
            return count
    return None


def _base_count(base: Any, step: float) -> int:
    """The step count a difference is taken from: the base's float's, or 0 if there is none."""
    if type(base) is float:
        count = _step_count(base, step)
        if count is not None:
            return count
    return 0


def _to_wire(value: Any, precision: PrecisionValue, base: Any = _MISSING) -> Any:
    if isinstance(value, float):
        if precision == FLOAT32:
            try:
                packed = _F32.pack(value)
            except OverflowError:
                return float(value)
            if _F32.unpack(packed)[0] == value:
                return codec.float32_ext(packed)
            return float(value)
        count = _step_count(value, precision)  # type: ignore[arg-type]
        if count is not None:
            return count
        return float(value)  # not on the step (set without a push) or too large: as it is
    if precision != FLOAT32 and isinstance(value, int) and not isinstance(value, bool):
        return codec.exact_int_ext(int(value))
    return value


def _to_wire_difference(value: Any, precision: PrecisionValue, base: Any) -> Any:
    if precision != FLOAT32 and isinstance(value, float):
        count = _step_count(value, precision)  # type: ignore[arg-type]
        if count is not None:
            return count - _base_count(base, precision) + DIFFERENCE_BIAS  # type: ignore[arg-type]
        return float(value)
    return _to_wire(value, precision)


def _from_wire_difference(value: Any, precision: PrecisionValue, base: Any) -> Any:
    if type(value) is int and precision != FLOAT32:
        count = value - DIFFERENCE_BIAS + _base_count(base, precision)  # type: ignore[arg-type]
        return count * precision
    return _from_wire(value, precision)


def _from_wire(value: Any, precision: PrecisionValue, base: Any = _MISSING) -> Any:
    kind = type(value)
    if kind is int:
        if precision == FLOAT32:
            return value
        return value * precision
    if kind is ExactInt:
        return int(value)
    if kind is Float32:
        return float(value)
    return value
