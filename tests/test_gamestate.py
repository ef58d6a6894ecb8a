"""Tests for game states, updates, and the merge and combination rules."""

from __future__ import annotations

import copy
import functools
import operator
import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pygase_core.errors import UnsupportedValueError
from pygase_core.model.codec import Overwrite, pack, unpack
from pygase_core.model.gamestate import TO_DELETE, GameState, GameStateUpdate, GameStatus

# -- GameStatus ----------------------------------------------------------------------------------


def test_game_status_values_and_lookup() -> None:
    assert GameStatus.Paused == 0
    assert GameStatus.Active == 1
    assert GameStatus.get("Active") is GameStatus.Active
    assert GameStatus.get("Paused") is GameStatus.Paused
    with pytest.raises(ValueError, match="Running"):
        GameStatus.get("Running")


# -- GameState -------------------------------------------------------------------------------------


def test_state_defaults_and_attribute_access() -> None:
    state = GameState(foo=0.0, bar=0.5)
    assert state.time_order == 0
    assert state.game_status == GameStatus.Paused
    assert state.is_paused()
    assert state.foo == 0.0
    assert state.bar == 0.5
    state.foo = 3.0
    assert state.foo == 3.0
    state.new = [1, 2]
    assert state.to_dict() == {"foo": 3.0, "bar": 0.5, "new": [1, 2]}
    del state.new
    with pytest.raises(AttributeError, match="new"):
        _ = state.new
    with pytest.raises(AttributeError):
        _ = state.missing
    assert not hasattr(state, "_private")


def test_state_is_active_with_active_status() -> None:
    state = GameState(game_status=GameStatus.Active)
    assert not state.is_paused()
    state.game_status = GameStatus.Paused
    assert state.is_paused()


def test_state_validates_values_at_the_call() -> None:
    with pytest.raises(
        UnsupportedValueError, match=r"players\['bob'\]\['pos'\]: cannot send a set"
    ):
        GameState(players={"bob": {"pos": {1, 2}}})
    state = GameState()
    with pytest.raises(UnsupportedValueError, match="items: cannot send an object"):
        state.items = object()
    with pytest.raises(UnsupportedValueError, match="TO_DELETE"):
        state.gone = TO_DELETE
    with pytest.raises(UnsupportedValueError, match="overwrite"):
        GameState(x={"a": Overwrite()})
    with pytest.raises(UnsupportedValueError, match="time_order"):
        GameState(time_order="1")  # type: ignore[arg-type]
    with pytest.raises(UnsupportedValueError, match="game_status"):
        GameState(game_status="Active")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        state.time_order = 1.5


def test_state_rejects_reserved_attribute_names() -> None:
    for name in ("copy", "apply", "to_dict", "is_paused", "from_dict"):
        with pytest.raises(UnsupportedValueError, match="reserved"):
            GameState(**{name: 1})
    state = GameState()
    with pytest.raises(UnsupportedValueError, match="reserved"):
        state.copy = 1  # type: ignore[method-assign]
    with pytest.raises(UnsupportedValueError, match="reserved"):
        GameState.from_dict(0, 0, {"_hidden": 1})


def test_state_to_dict_excludes_bookkeeping_and_is_a_new_dict() -> None:
    state = GameState(time_order=4, game_status=GameStatus.Active, a={"b": 1})
    attributes = state.to_dict()
    assert attributes == {"a": {"b": 1}}
    attributes["c"] = 2
    assert not hasattr(state, "c")


def test_state_copy_is_deep() -> None:
    state = GameState(
        time_order=3, game_status=GameStatus.Active, a={"b": [1, {"c": 2}]}, t=(1, [2])
    )
    duplicate = state.copy()
    assert duplicate == state
    duplicate.a["b"][1]["c"] = 99
    duplicate.t[1].append(3)
    assert state.a == {"b": [1, {"c": 2}]}
    assert state.t == (1, [2])


def test_state_equality_and_repr() -> None:
    a = GameState(time_order=1, foo=1.0)
    assert a == GameState(time_order=1, foo=1.0)
    assert a != GameState(time_order=2, foo=1.0)
    assert a != GameState(time_order=1, game_status=GameStatus.Active, foo=1.0)
    assert a != GameState(time_order=1, foo=2.0)
    assert repr(a) == "GameState(time_order=1, game_status=GameStatus.Paused, foo=1.0)"


def test_state_from_dict_and_pickle() -> None:
    state = GameState.from_dict(7, 1, {"a": {"b": (1, 2)}})
    assert state.time_order == 7
    assert state.game_status is GameStatus.Active
    assert state.a == {"b": (1, 2)}
    assert pickle.loads(pickle.dumps(state)) == state
    assert copy.deepcopy(state) == state


def test_apply_only_newer_updates() -> None:
    state = GameState(time_order=5, foo=1)
    assert not state.apply(GameStateUpdate(5, foo=2))
    assert not state.apply(GameStateUpdate(3, foo=2))
    assert state.foo == 1 and state.time_order == 5
    assert state.apply(GameStateUpdate(6, foo=2))
    assert state.foo == 2 and state.time_order == 6
    same = state
    state += GameStateUpdate(9, foo=3)
    assert state is same
    assert state.foo == 3 and state.time_order == 9
    state += GameStateUpdate(8, foo=4)
    assert state.foo == 3 and state.time_order == 9


def test_add_returns_new_state() -> None:
    state = GameState(foo=1)
    result = state + GameStateUpdate(1, foo=2)
    assert result.foo == 2 and result.time_order == 1
    assert state.foo == 1 and state.time_order == 0


def test_apply_rejects_non_updates() -> None:
    with pytest.raises(TypeError):
        GameState().apply({"foo": 1})  # type: ignore[arg-type]


def test_update_can_set_game_status() -> None:
    state = GameState()
    state += GameStateUpdate(1, game_status=GameStatus.Active)
    assert state.game_status is GameStatus.Active
    assert "game_status" not in state.to_dict()
    state += GameStateUpdate(2, game_status=0)
    assert state.is_paused()
    with pytest.raises(UnsupportedValueError):
        GameStateUpdate(3, game_status=TO_DELETE)
    with pytest.raises(UnsupportedValueError):
        GameStateUpdate(3, game_status={"a": 1})


# -- merge semantics -------------------------------------------------------------------------------


def test_dicts_merge_recursively() -> None:
    state = GameState(players={"bob": {"x": 1, "y": 2, "inv": {"gold": 5}}, "amy": {"x": 0}})
    state += GameStateUpdate(1, players={"bob": {"x": 10, "inv": {"gems": 1}}})
    assert state.players == {
        "bob": {"x": 10, "y": 2, "inv": {"gold": 5, "gems": 1}},
        "amy": {"x": 0},
    }


def test_non_dict_values_replace() -> None:
    state = GameState(a={"x": 1}, b=[1, 2], c=(1, 2), d=5)
    state += GameStateUpdate(1, a=3, b=[3], c={"k": 1}, d=None)
    assert state.to_dict() == {"a": 3, "b": [3], "c": {"k": 1}, "d": None}


def test_to_delete_removes_keys_at_any_depth() -> None:
    state = GameState(a=1, players={"bob": {"x": 1, "y": 2}, "amy": {}})
    state += GameStateUpdate(1, a=TO_DELETE, players={"bob": {"y": TO_DELETE}, "amy": TO_DELETE})
    assert state.to_dict() == {"players": {"bob": {"x": 1}}}


def test_deleting_a_missing_key_is_a_no_op() -> None:
    state = GameState(a={"b": 1})
    state += GameStateUpdate(1, missing=TO_DELETE, a={"nothing": TO_DELETE})
    assert state.to_dict() == {"a": {"b": 1}}


def test_dict_onto_missing_or_non_dict_sets_a_plain_copy() -> None:
    state = GameState(scalar=5)
    state += GameStateUpdate(
        1,
        scalar={"a": 1, "gone": TO_DELETE},
        fresh={"b": {"c": TO_DELETE, "d": 2}},
    )
    assert state.to_dict() == {"scalar": {"a": 1}, "fresh": {"b": {"d": 2}}}


def test_state_does_not_share_containers_with_updates() -> None:
    source = {"items": [1, 2], "nested": {"k": [3]}}
    update = GameStateUpdate(1, inventory=source)
    source["items"].append(99)
    assert update.inventory == {"items": [1, 2], "nested": {"k": [3]}}
    state = GameState()
    state += update
    state.inventory["items"].append(100)
    state.inventory["nested"]["k"].append(4)
    assert update.inventory == {"items": [1, 2], "nested": {"k": [3]}}


# -- GameStateUpdate -------------------------------------------------------------------------------


def test_update_access_and_validation() -> None:
    update = GameStateUpdate(4, foo=1.5, bar={"a": TO_DELETE})
    assert update.time_order == 4
    assert update.foo == 1.5
    assert update.changes == {"foo": 1.5, "bar": {"a": TO_DELETE}}
    with pytest.raises(AttributeError):
        _ = update.baz
    with pytest.raises(UnsupportedValueError, match=r"bar\['x'\]: cannot send a set"):
        GameStateUpdate(1, bar={"x": {1}})
    with pytest.raises(UnsupportedValueError, match=r"path\[1\]: TO_DELETE"):
        GameStateUpdate(1, path=[1, TO_DELETE])
    with pytest.raises(UnsupportedValueError, match="reserved"):
        GameStateUpdate(1, copy=1)
    with pytest.raises(UnsupportedValueError, match="reserved"):
        GameStateUpdate.from_changes(1, {"time_order": 3})
    with pytest.raises(UnsupportedValueError):
        GameStateUpdate.from_changes(1, {5: 3})  # type: ignore[dict-item]
    with pytest.raises(UnsupportedValueError):
        GameStateUpdate("1")  # type: ignore[arg-type]


def test_update_equality_and_repr() -> None:
    assert GameStateUpdate(1, a=1) == GameStateUpdate(1, a=1)
    assert GameStateUpdate(1, a=1) != GameStateUpdate(2, a=1)
    assert GameStateUpdate(1, a={"b": 1}) != GameStateUpdate(1, a=Overwrite({"b": 1}))
    assert (
        repr(GameStateUpdate(3, a=1, b=TO_DELETE))
        == "GameStateUpdate(time_order=3, a=1, b=TO_DELETE)"
    )


def test_update_pickles() -> None:
    update = GameStateUpdate(3, a=Overwrite({"x": 1}), b=TO_DELETE)
    assert pickle.loads(pickle.dumps(update)) == update


def test_adding_updates_does_not_mutate_operands() -> None:
    u1 = GameStateUpdate(1, a={"x": 1}, b=2)
    u2 = GameStateUpdate(2, a={"y": 2}, c=TO_DELETE)
    combined = u1 + u2
    assert combined == GameStateUpdate(2, a={"x": 1, "y": 2}, b=2, c=TO_DELETE)
    assert u1 == GameStateUpdate(1, a={"x": 1}, b=2)
    assert u2 == GameStateUpdate(2, a={"y": 2}, c=TO_DELETE)
    accumulated = u1
    accumulated += u2
    assert accumulated == combined
    assert u1 == GameStateUpdate(1, a={"x": 1}, b=2)


def test_combination_applies_the_older_update_first() -> None:
    old = GameStateUpdate(1, a=1)
    new = GameStateUpdate(2, a=2)
    assert (new + old) == (old + new) == GameStateUpdate(2, a=2)


def test_combine_many() -> None:
    updates = [GameStateUpdate(i, **{f"k{i}": i}) for i in range(1, 5)]
    assert GameStateUpdate.combine(updates) == functools.reduce(operator.add, updates)
    assert GameStateUpdate.combine([]) is None


@pytest.mark.parametrize("first", [TO_DELETE, 5, [1], None])
def test_dict_after_delete_or_scalar_overwrites(first: Any) -> None:
    state = GameState(k={"old": 1, "a": 0})
    u1 = GameStateUpdate(1, k=first)
    u2 = GameStateUpdate(2, k={"a": 1})
    sequential = state + u1 + u2
    assert sequential.k == {"a": 1}
    combined = u1 + u2
    assert type(combined.k) is Overwrite
    assert state + combined == sequential
    # The marker survives the wire.
    decoded = GameStateUpdate.from_changes(combined.time_order, unpack(pack(combined.changes)))
    assert decoded == combined
    assert state + decoded == sequential


def test_merge_after_overwrite_stays_an_overwrite() -> None:
    state = GameState(k={"old": 1})
    updates = [
        GameStateUpdate(1, k=TO_DELETE),
        GameStateUpdate(2, k={"a": {"b": 1}, "gone": TO_DELETE}),
        GameStateUpdate(3, k={"a": {"c": 2}, "d": TO_DELETE}),
    ]
    combined = functools.reduce(operator.add, updates)
    assert combined.k == Overwrite({"a": {"b": 1, "c": 2}})
    assert functools.reduce(operator.add, updates, state) == state + combined


# -- the exactness property ----------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c"])
SCALARS = (
    st.integers(min_value=0, max_value=3) | st.none() | st.lists(st.integers(0, 2), max_size=2)
)


STATE_VALUES = st.recursive(
    SCALARS, lambda children: st.dictionaries(KEYS, children, max_size=3), max_leaves=8
)
CHANGE_VALUES = st.recursive(
    SCALARS | st.just(TO_DELETE),
    lambda children: (
        st.dictionaries(KEYS, children, max_size=3)
        | st.dictionaries(KEYS, children, max_size=3).map(Overwrite)
    ),
    max_leaves=8,
)
ATTRIBUTES = st.dictionaries(KEYS, STATE_VALUES, max_size=3)
CHANGES = st.dictionaries(KEYS, CHANGE_VALUES, max_size=3)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[GameState, list[GameStateUpdate]]:
    attributes = draw(ATTRIBUTES)
    state = GameState(time_order=0, **attributes)
    count = draw(st.integers(min_value=1, max_value=5))
    updates = []
    for time_order in range(1, count + 1):
        changes = draw(CHANGES)
        if draw(st.booleans()):
            changes["game_status"] = draw(st.sampled_from([GameStatus.Paused, GameStatus.Active]))
        updates.append(GameStateUpdate.from_changes(time_order, changes))
    return state, updates


def apply_all(state: GameState, updates: list[GameStateUpdate]) -> GameState:
    result = state.copy()
    for update in updates:
        result += update
    return result


@settings(derandomize=True, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_combining_updates_is_exact(scenario: tuple[GameState, list[GameStateUpdate]]) -> None:
    state, updates = scenario
    expected = apply_all(state, updates)
    originals = [copy.deepcopy(u) for u in updates]

    left_fold = functools.reduce(operator.add, updates)
    assert state + left_fold == expected

    right_fold = functools.reduce(lambda acc, u: u + acc, reversed(updates))
    assert state + right_fold == expected

    assert state + GameStateUpdate.combine(updates) == expected  # type: ignore[operator]

    # Combining partial results again (as a cache of combined deltas would) stays exact.
    middle = len(updates) // 2
    if middle:
        halves = functools.reduce(operator.add, updates[:middle]) + functools.reduce(
            operator.add, updates[middle:]
        )
        assert state + halves == expected

    # The combination means the same after a trip over the wire.
    wire = GameStateUpdate.from_changes(left_fold.time_order, unpack(pack(left_fold.changes)))
    assert wire == left_fold
    assert state + wire == expected

    # Nothing was mutated along the way.
    assert updates == originals
