"""pygase's own network loops: uvloop when installed (the fast extra), asyncio on request.

The suite as a whole runs on whichever ``PYGASE_EVENT_LOOP`` chooses (CI installs uvloop, so
``auto`` picks it; ``PYGASE_EVENT_LOOP=asyncio bash tools/test.sh`` runs it all on the plain
loop). These tests check the choice itself and one real session on each kind of loop.
"""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from pygase_core import Client, GameState, GameStateStore, GameStateUpdate, Server
from pygase_core.edge import loops
from pygase_core.errors import UsageError
from tests.clients import connect, read
from tests.waiting import wait_for

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


def test_the_choice_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(loops.ENVIRONMENT_VARIABLE, "asyncio")
    assert loops.event_loop_kind() == "asyncio"
    monkeypatch.setenv(loops.ENVIRONMENT_VARIABLE, "auto")
    assert loops.event_loop_kind() == ("uvloop" if HAS_UVLOOP else "asyncio")
    monkeypatch.delenv(loops.ENVIRONMENT_VARIABLE)
    assert loops.event_loop_kind() == ("uvloop" if HAS_UVLOOP else "asyncio")
    monkeypatch.setenv(loops.ENVIRONMENT_VARIABLE, "libuv")
    with pytest.raises(UsageError, match="PYGASE_EVENT_LOOP='libuv'"):
        loops.event_loop_kind()


def test_asking_for_uvloop_without_it_fails_at_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loops, "_uvloop", lambda: None)
    monkeypatch.setenv(loops.ENVIRONMENT_VARIABLE, "uvloop")
    with pytest.raises(UsageError, match="pygase\\[fast\\]"):
        Server(GameStateStore()).run(port=0)
    monkeypatch.setenv(loops.ENVIRONMENT_VARIABLE, "auto")
    assert loops.event_loop_kind() == "asyncio"


NEEDS_UVLOOP = pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed")


@pytest.mark.parametrize("kind", ["asyncio", pytest.param("uvloop", marks=NEEDS_UVLOOP)])
def test_a_session_on_each_kind_of_loop(
    kind: str, monkeypatch: pytest.MonkeyPatch, clients: list[Client]
) -> None:
    monkeypatch.setenv(loops.ENVIRONMENT_VARIABLE, kind)
    store = GameStateStore(GameState(count=0, heard=""))
    server = Server(store)
    server.register_event_handler(
        "HELLO",
        lambda text, client_address: store.push_update(
            GameStateUpdate(store.time_order + 1, heard=text)
        ),
    )
    server.run_in_thread(port=0)
    try:
        driver = server._driver
        assert driver is not None and driver.loop is not None
        assert ("uvloop" in type(driver.loop).__module__) == (kind == "uvloop")
        assert isinstance(driver.loop, asyncio.AbstractEventLoop)
        client = connect(clients, server.port or 0)
        for count in range(1, 21):
            store.push_update(GameStateUpdate(store.time_order + 1, count=count))
        wait_for(lambda: read(client, "count") == 20)
        client.dispatch_event("HELLO", "from the client")
        wait_for(lambda: read(client, "heard") == "from the client")
        client.disconnect()
        wait_for(lambda: not server.connections)
    finally:
        server.shutdown()
