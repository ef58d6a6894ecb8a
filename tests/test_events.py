"""Tests for event encoding, the handler registry and handler invocation."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
from typing import Any
from unittest import mock

import pytest

from pygase_core.errors import ProtocolError, UnsupportedValueError
from pygase_core.model import handlers
from pygase_core.model.codec import pack
from pygase_core.model.events import Event
from pygase_core.model.handlers import (
    EventHandlerRegistry,
    call_with_accepted_kwargs,
    dispatch_async,
    dispatch_sync,
)
from pygase_core.protocol.eventwire import decode_event, encode_event

EXTRAS = {"game_state": "STATE", "dt": 0.02, "client_address": ("127.0.0.1", 4000)}


# -- Event and wire encoding ---------------------------------------------------------------------


def test_event_is_frozen_with_defaults() -> None:
    event = Event("MOVE", (1,), {"fast": True})
    assert event.client_address is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.event_type = "OTHER"  # type: ignore[misc]
    assert Event("PING") == Event("PING", (), {}, None)


def test_encode_decode_roundtrip() -> None:
    data = encode_event("MOVE", (1.5, (2, 3), {"k": [b"x"]}), {"speed": 2, "path": [(0, 1)]})
    event = decode_event(data)
    assert event == Event("MOVE", (1.5, (2, 3), {"k": [b"x"]}), {"speed": 2, "path": [(0, 1)]})
    assert type(event.args) is tuple
    assert type(event.args[1]) is tuple
    assert event.client_address is None


def test_encode_rejects_bad_type_and_names_bad_arguments() -> None:
    with pytest.raises(TypeError):
        encode_event(5, (), {})  # type: ignore[arg-type]
    with pytest.raises(
        UnsupportedValueError, match=r"MOVE event argument 1\['a'\]: cannot send a set"
    ):
        encode_event("MOVE", (1, {"a": {2}}), {})
    with pytest.raises(UnsupportedValueError, match="MOVE event argument 'target': cannot send"):
        encode_event("MOVE", (), {"target": object()})
    with pytest.raises(TypeError):
        encode_event("MOVE", (), {1: "x"})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "payload",
    [
        ["MOVE", []],
        ["MOVE", [], {}, "extra"],
        {"type": "MOVE"},
        [5, [], {}],
        ["MOVE", "args", {}],
        ["MOVE", [], []],
        ["MOVE", [], {1: "x"}],
        "MOVE",
    ],
)
def test_decode_rejects_wrong_shapes(payload: Any) -> None:
    with pytest.raises(ProtocolError):
        decode_event(pack(payload))


def test_decode_rejects_garbage() -> None:
    for blob in (b"", b"\xc1", b"\x93\xa4MOVE\x90", b"\x93\xa4MOVE\x90\x81\x01\x02"):
        with pytest.raises(ProtocolError):
            decode_event(blob)


# -- registry --------------------------------------------------------------------------------------


def test_registry_register_replace_and_lookup() -> None:
    registry = EventHandlerRegistry()

    def first() -> None:
        pass

    def second() -> None:
        pass

    assert "PING" not in registry
    assert registry.get("PING") is None
    registry.register("PING", first)
    assert "PING" in registry
    assert registry.get("PING") is first
    registry.register("PING", second)
    assert registry.get("PING") is second
    with pytest.raises(TypeError):
        registry.register(1, first)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        registry.register("PING", "not callable")  # type: ignore[arg-type]


# -- call_with_accepted_kwargs ---------------------------------------------------------------------


def test_lambda_gets_only_the_extras_it_names() -> None:
    result = call_with_accepted_kwargs(
        lambda new_bar, game_state, dt: (new_bar, game_state, dt), (5,), {}, EXTRAS
    )
    assert result == (5, "STATE", 0.02)


def test_var_keyword_gets_all_extras() -> None:
    def handler(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return args, kwargs

    args, kwargs = call_with_accepted_kwargs(handler, (1, 2), {"x": 3}, EXTRAS)
    assert args == (1, 2)
    assert kwargs == {"x": 3, **EXTRAS}


def test_keyword_only_extras_and_data_kwargs() -> None:
    def handler(a: int, *, speed: int, client_address: Any = None) -> tuple[Any, ...]:
        return a, speed, client_address

    assert call_with_accepted_kwargs(handler, (1,), {"speed": 2}, EXTRAS) == (
        1,
        2,
        ("127.0.0.1", 4000),
    )


def test_positional_data_is_not_doubled_by_extras() -> None:
    # The first positional argument fills ``dt``; the extra of that name must not be passed too.
    def handler(dt: float, game_state: str) -> tuple[float, str]:
        return dt, game_state

    assert call_with_accepted_kwargs(handler, (9.0,), {}, EXTRAS) == (9.0, "STATE")


def test_extras_win_over_data_keywords(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pygase"):
        result = call_with_accepted_kwargs(
            lambda game_state, **kw: (game_state, kw), (), {"game_state": "FORGED", "x": 1}, EXTRAS
        )
    assert result[0] == "STATE"
    assert result[1]["x"] == 1
    assert "game_state" in caplog.text


def test_methods_partials_and_callable_objects() -> None:
    class Game:
        def __init__(self, name: str) -> None:
            self.name = name

        def on_event(self, value: int, dt: float) -> tuple[str, int, float]:
            return self.name, value, dt

        def __call__(self, value: int, game_state: str) -> tuple[str, int, str]:
            return self.name, value, game_state

    def with_prefix(prefix: str, value: int, client_address: Any) -> tuple[str, int, Any]:
        return prefix, value, client_address

    assert call_with_accepted_kwargs(Game("a").on_event, (1,), {}, EXTRAS) == ("a", 1, 0.02)
    assert call_with_accepted_kwargs(Game("b").on_event, (2,), {}, EXTRAS) == ("b", 2, 0.02)
    assert call_with_accepted_kwargs(Game("c"), (3,), {}, EXTRAS) == ("c", 3, "STATE")
    partial = functools.partial(with_prefix, "p")
    assert call_with_accepted_kwargs(partial, (4,), {}, EXTRAS) == ("p", 4, ("127.0.0.1", 4000))


def test_unbound_function_and_its_bound_method_are_told_apart() -> None:
    class Game:
        def handle(self, dt: float) -> Any:
            return self, dt

    game = Game()
    assert call_with_accepted_kwargs(game.handle, (), {}, EXTRAS) == (game, 0.02)
    assert call_with_accepted_kwargs(Game.handle, (game,), {}, EXTRAS) == (game, 0.02)
    assert call_with_accepted_kwargs(game.handle, (), {}, EXTRAS) == (game, 0.02)


def test_coroutine_function_returns_coroutine() -> None:
    async def handler(value: int, dt: float) -> float:
        return value + dt

    result = call_with_accepted_kwargs(handler, (1,), {}, EXTRAS)
    assert inspect.iscoroutine(result)
    assert asyncio.run(result) == 1.02


def test_signature_inspection_is_cached() -> None:
    class Game:
        def on_event(self, dt: float) -> float:
            return dt

    def handler(game_state: str) -> str:
        return game_state

    with mock.patch.object(handlers.inspect, "signature", wraps=inspect.signature) as spy:
        for _ in range(5):
            call_with_accepted_kwargs(handler, (), {}, EXTRAS)
            call_with_accepted_kwargs(Game().on_event, (), {}, EXTRAS)
    assert spy.call_count == 2


# -- dispatch --------------------------------------------------------------------------------------


def make_registry(**handlers: Any) -> EventHandlerRegistry:
    registry = EventHandlerRegistry()
    for event_type, handler in handlers.items():
        registry.register(event_type, handler)
    return registry


def failing(**_: Any) -> None:
    raise RuntimeError("handler broke")


async def failing_async(**_: Any) -> None:
    raise RuntimeError("async handler broke")


async def doubling(value: int) -> int:
    await asyncio.sleep(0)
    return value * 2


def test_dispatch_async_calls_and_awaits() -> None:
    registry = make_registry(SYNC=lambda v, dt: v + dt, ASYNC=doubling)
    assert asyncio.run(dispatch_async(registry, Event("SYNC", (1,)), EXTRAS)) == 1.02
    assert asyncio.run(dispatch_async(registry, Event("ASYNC", (4,)), EXTRAS)) == 8


def test_dispatch_unhandled_type_warns_and_returns_none(caplog: pytest.LogCaptureFixture) -> None:
    registry = make_registry()
    with caplog.at_level(logging.WARNING, logger="pygase"):
        assert asyncio.run(dispatch_async(registry, Event("NOPE"), EXTRAS)) is None
        assert dispatch_sync(registry, Event("NOPE"), EXTRAS) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "NOPE" in r.message]
    assert len(warnings) == 2
    assert all(r.name == "pygase" for r in warnings)


@pytest.mark.parametrize("handler", [failing, failing_async])
def test_dispatch_logs_and_swallows_handler_errors(
    handler: Any, caplog: pytest.LogCaptureFixture
) -> None:
    registry = make_registry(BAD=handler)
    with caplog.at_level(logging.ERROR, logger="pygase"):
        assert asyncio.run(dispatch_async(registry, Event("BAD"), EXTRAS)) is None
        assert dispatch_sync(registry, Event("BAD"), EXTRAS) is None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert all(r.exc_info is not None for r in errors)
    assert "broke" in caplog.text


def test_dispatch_sync_runs_coroutine_without_loop() -> None:
    registry = make_registry(ASYNC=doubling, SYNC=lambda v: v - 1)
    assert dispatch_sync(registry, Event("ASYNC", (5,)), EXTRAS) == 10
    assert dispatch_sync(registry, Event("SYNC", (5,)), EXTRAS) == 4


def test_dispatch_sync_schedules_coroutine_on_running_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[object, object]:
        finished = asyncio.Event()

        async def handler(value: int) -> None:
            results.append(value)
            finished.set()

        registry = make_registry(ASYNC=handler, BAD=failing_async)
        returned = dispatch_sync(registry, Event("ASYNC", (7,)), EXTRAS)
        await asyncio.wait_for(finished.wait(), timeout=5)
        bad = dispatch_sync(registry, Event("BAD"), EXTRAS)
        pending = set(handlers._background)
        assert pending
        await asyncio.wait(pending, timeout=5)
        return returned, bad

    results: list[int] = []
    with caplog.at_level(logging.ERROR, logger="pygase"):
        returned, bad = asyncio.run(scenario())
    assert returned is None and bad is None
    assert results == [7]
    assert "async handler broke" in caplog.text
