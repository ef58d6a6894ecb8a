"""The foundations a user relies on: errors at the call, the host role, game logic off the I/O loop.

Each test here is a regression test for a defect found by black-box trials: ports that wrapped
silently, connect failures outside the error hierarchy or waiting out the whole timeout, a host
role that died with its first holder, game logic that froze the network, logs flooded by a
failing ``time_step``.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pygase_core import (
    AddressResolutionError,
    Backend,
    Client,
    ConnectionFailed,
    GameState,
    GameStateMachine,
    GameStateStore,
    GameStateUpdate,
    Server,
    ServerUnreachableError,
    ShutdownRefusedError,
)
from pygase_core.model.failurelog import FailureLog
from pygase_core.protocol.linksim import Direction, LinkConditions
from tests.clients import connect, read
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def free_udp_port() -> int:
    """A loopback UDP port nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- errors at the call --------------------------------------------------------------------------


@pytest.mark.parametrize("port", [70000, -1, 65536])
def test_out_of_range_ports_raise_value_error_at_every_call(port: int) -> None:
    server = Server(GameStateStore())
    with pytest.raises(ValueError, match="0 to 65535"):
        server.run(port=port)
    with pytest.raises(ValueError, match="0 to 65535"):
        server.run_in_thread(port=port)
    client = Client()
    with pytest.raises(ValueError, match="0 to 65535"):
        client.connect(port=port)
    with pytest.raises(ValueError, match="0 to 65535"):
        client.connect_in_thread(port=port)
    backend = Backend(GameState(), lambda game_state, dt: {})
    with pytest.raises(ValueError, match="0 to 65535"):
        backend.run("localhost", port)
    with pytest.raises(ValueError, match="0 to 65535"):
        backend.run_in_thread("localhost", port)
    assert not server.running


def test_ports_that_are_not_ints_raise_type_error() -> None:
    with pytest.raises(TypeError, match="port must be an int"):
        Client().connect_in_thread(port="8080")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="port must be an int"):
        Server(GameStateStore()).run_in_thread(port=8080.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="hostname must be a str"):
        Server(GameStateStore()).run_in_thread(0, 127001)  # type: ignore[arg-type]


def test_a_backend_run_with_swapped_arguments_says_which_is_which() -> None:
    backend = Backend(GameState(), lambda game_state, dt: {})
    with pytest.raises(TypeError, match=r"takes \(hostname, port\), in that order"):
        backend.run(8080, "localhost")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"takes \(hostname, port\)"):
        backend.run_in_thread(8080, "localhost")  # type: ignore[arg-type]


def test_an_unknown_hostname_is_a_connection_failure_naming_host_and_port() -> None:
    client = Client(connect_timeout=30)
    with pytest.raises(AddressResolutionError) as caught:
        client.connect_in_thread(8123, "no-such-host.invalid")
    assert isinstance(caught.value, ConnectionFailed)
    assert "no-such-host.invalid" in str(caught.value) and "8123" in str(caught.value)
    with pytest.raises(AddressResolutionError):
        Server(GameStateStore()).run_in_thread(0, "no-such-host.invalid")


def test_a_port_with_nothing_behind_it_fails_as_unreachable_not_as_a_timeout() -> None:
    port = free_udp_port()
    client = Client(connect_timeout=60)  # far longer than any test would wait
    started = time.monotonic()
    with pytest.raises(ServerUnreachableError) as caught:
        client.connect_in_thread(port, "127.0.0.1")
    print(f"unreachable reported after {time.monotonic() - started:.2f} s")
    assert f"127.0.0.1 port {port}" in str(caught.value)
    assert isinstance(caught.value, ConnectionFailed)


def test_callbacks_that_are_not_callable_are_refused_at_dispatch(clients: list[Client]) -> None:
    backend = Backend(GameState(), lambda game_state, dt: {})
    backend.run_in_thread()
    try:
        assert backend.server.port
        client = connect(clients, backend.server.port)
        with pytest.raises(TypeError, match="ack_callback"):
            client.dispatch_event("X", ack_callback=5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="failure_callback"):
            client.dispatch_event("X", failure_callback="no")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="ack_callback"):
            backend.server.dispatch_event("X", ack_callback=object())
    finally:
        backend.shutdown()


# -- the host role -------------------------------------------------------------------------------


def test_the_host_role_passes_to_the_longest_connected_client(clients: list[Client]) -> None:
    backend = Backend(GameState(), lambda game_state, dt: {})
    thread = backend.run_in_thread()
    try:
        assert backend.server.port
        host = connect(clients, backend.server.port)
        second = connect(clients, backend.server.port)
        third = connect(clients, backend.server.port)
        assert host.is_host and not second.is_host and not third.is_host
        host.disconnect()
        wait_for(lambda: second.is_host, message="the role never reached the next client")
        assert not third.is_host
        with pytest.raises(ShutdownRefusedError):
            third.disconnect(shutdown_server=True)
        assert backend.server.running
        second.disconnect(shutdown_server=True)
        thread.join(10)
        assert not thread.is_alive()
    finally:
        backend.shutdown()


def test_the_host_role_passes_on_when_the_host_times_out(clients: list[Client]) -> None:
    backend = Backend(GameState(), lambda game_state, dt: {}, timeout=1.0)
    backend.run_in_thread()
    try:
        assert backend.server.port
        host = connect(clients, backend.server.port, timeout=30.0)
        guest = connect(clients, backend.server.port)
        host_address = backend.server.host_client
        # The host's network dies: nothing it sends arrives, nothing reaches it.
        host.link = LinkConditions(Direction(loss=1.0), Direction(loss=1.0))
        wait_for(lambda: host_address not in backend.server.connections, timeout=10)
        wait_for(lambda: guest.is_host, message="the role never passed on")
        assert backend.server.host_client in backend.server.connections
    finally:
        backend.shutdown()


def test_without_succession_the_host_role_ends_with_the_host(clients: list[Client]) -> None:
    backend = Backend(GameState(), lambda game_state, dt: {}, host_succession=None)
    backend.run_in_thread()
    try:
        assert backend.server.port
        host = connect(clients, backend.server.port)
        guest = connect(clients, backend.server.port)
        host.disconnect()
        wait_for(lambda: len(backend.server.connections) == 1)
        assert backend.server.host_client is None and not guest.is_host
    finally:
        backend.shutdown()


# -- game logic off the I/O loop -----------------------------------------------------------------


def test_a_blocked_time_step_does_not_stall_the_network(clients: list[Client]) -> None:
    release = threading.Event()
    blocking = threading.Event()

    def time_step(game_state: GameState, dt: float) -> dict[str, Any]:
        if game_state.block and not release.is_set():
            blocking.set()
            release.wait(20)
        return {"ticks": game_state.ticks + 1}

    backend = Backend(
        GameState(ticks=0, block=False),
        time_step,
        {"BLOCK": lambda game_state, dt: {"block": True}},
    )
    backend.run_in_thread()
    try:
        assert backend.server.port
        client = connect(clients, backend.server.port)
        wait_for(lambda: read(client, "ticks", 0) > 5)
        client.dispatch_event("BLOCK")
        assert blocking.wait(10)
        # While the game loop is stuck, events are still acknowledged at once.
        acked = threading.Event()
        client.dispatch_event("PING", retries=3, ack_callback=acked.set)
        assert acked.wait(5), "the network stalled with the game loop"
        assert blocking.is_set() and not release.is_set()
        stats = client.stats
        assert stats is not None and stats.rtt is not None and stats.rtt < 1.0
        release.set()
        frozen_at = read(client, "ticks")
        wait_for(lambda: read(client, "ticks") > frozen_at + 5)
    finally:
        release.set()
        backend.shutdown()


def test_a_slow_server_handler_does_not_stall_acks_or_other_clients(
    clients: list[Client],
) -> None:
    store = GameStateStore(GameState(n=0))
    server = Server(store)
    release = threading.Event()
    entered = threading.Event()

    def slow(client_address: Any) -> None:
        entered.set()
        release.wait(20)

    server.register_event_handler("SLOW", slow)
    server.run_in_thread()
    try:
        assert server.port
        slowpoke = connect(clients, server.port)
        other = connect(clients, server.port)
        slowpoke.dispatch_event("SLOW")
        assert entered.wait(10)
        acked = threading.Event()
        other.dispatch_event("ANYTHING", retries=3, ack_callback=acked.set)
        assert acked.wait(5)
        store.push_update(GameStateUpdate(1, n=1))
        wait_for(lambda: read(other, "n") == 1 and read(slowpoke, "n") == 1)
        assert not release.is_set()
    finally:
        release.set()
        server.shutdown()


def test_one_slow_world_does_not_stall_another_worlds_clients(clients: list[Client]) -> None:
    release = threading.Event()

    def stuck(game_state: GameState, dt: float) -> dict[str, Any]:
        release.wait(20)
        return {}

    slow_world = Backend(GameState(), stuck)
    fast_world = Backend(GameState(ticks=0), lambda game_state, dt: {"ticks": game_state.ticks + 1})
    slow_world.run_in_thread()
    fast_world.run_in_thread()
    try:
        assert slow_world.server.port and fast_world.server.port
        connect(clients, slow_world.server.port)
        player = connect(clients, fast_world.server.port)
        wait_for(lambda: read(player, "ticks", 0) > 25)
    finally:
        release.set()
        slow_world.shutdown()
        fast_world.shutdown()


# -- log floods and overruns ---------------------------------------------------------------------


def test_a_time_step_that_always_raises_logs_one_traceback_then_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    machine = GameStateMachine(GameStateStore(GameState()), clock=clock)

    def broken(game_state: GameState, dt: float) -> dict[str, Any]:
        raise RuntimeError("boom")

    machine.time_step = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="pygase"):
        for _ in range(250):  # five seconds of ticks
            clock.now += 0.02
            machine.step(0.02)
        tracebacks = [r for r in caplog.records if r.exc_info]
        assert len(tracebacks) == 1 and "time_step failed" in tracebacks[0].getMessage()
        for _ in range(10):  # past the five seconds: the count is told
            clock.now += 0.02
            machine.step(0.02)
    summaries = [r.getMessage() for r in caplog.records if not r.exc_info]
    assert len(summaries) == 1, summaries
    counted = re.search(r"time_step failed (\d+) more times in the last 5\.0 s", summaries[0])
    assert counted and 249 <= int(counted.group(1)) <= 251, summaries[0]
    assert "boom" in summaries[0]
    assert len([r for r in caplog.records if r.exc_info]) == 1


def test_a_failing_handler_logs_once_then_counts(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    log = FailureLog(logging.getLogger("pygase.test"), clock=clock, every=5.0)
    with caplog.at_level(logging.ERROR, logger="pygase.test"):
        for _ in range(100):
            try:
                raise KeyError("missing")
            except KeyError as error:
                log.failed("the handler for 'MOVE'", error)
            clock.now += 0.01
        log.flush()
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "the handler for 'MOVE' failed"
    assert "99 more times" in messages[1] and len(messages) == 2


def test_a_step_that_overruns_its_tick_is_logged_with_its_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks = [0]

    def slow_step(game_state: GameState, dt: float) -> dict[str, Any]:
        ticks[0] += 1
        if ticks[0] == 3:
            time.sleep(0.15)
        return {}

    machine = GameStateMachine(GameStateStore(GameState()))
    machine.time_step = slow_step  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="pygase"):
        machine.run_game_loop_in_thread(0.02)
        wait_for(lambda: ticks[0] > 5)
        machine.stop()
    overruns = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert overruns and "over its 0.020 s budget" in overruns[0]


# -- the first hour ------------------------------------------------------------------------------


def test_a_guarded_server_script_says_where_it_listens(tmp_path: Path) -> None:
    script = tmp_path / "mygame.py"
    script.write_text(
        textwrap.dedent(
            """
            from pygase_core import Backend, GameState

            backend = Backend(GameState(foo=0), lambda game_state, dt: {})

            if __name__ == "__main__":
                backend.run("localhost", 0)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, str(script)], stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            assert line.startswith("pygase server listening on localhost port"), line
        finally:
            process.terminate()
            process.wait(10)


# -- ack and failure callbacks -------------------------------------------------------------------


def test_an_event_given_up_runs_its_failure_callback_once(clients: list[Client]) -> None:
    backend = Backend(GameState(), lambda game_state, dt: {})
    backend.run_in_thread()
    try:
        assert backend.server.port
        client = connect(clients, backend.server.port, timeout=30.0)
        client.link = LinkConditions(Direction(loss=1.0), Direction())  # nothing it sends lands
        acked: list[float] = []
        failed: list[float] = []
        sent_at = time.monotonic()
        client.dispatch_event(
            "LOST",
            retries=2,
            ack_callback=lambda: acked.append(time.monotonic()),
            failure_callback=lambda: failed.append(time.monotonic()),
        )
        wait_for(lambda: failed, timeout=20, message="the event was never given up")
        # Never sooner than a second, on the loop's clock: uvloop's ticks in whole milliseconds.
        assert failed[0] - sent_at >= 1.0 - 0.002
        client.link = LinkConditions()
        time.sleep(0.5)  # time for a wrong second callback to show
        assert len(failed) == 1 and not acked
    finally:
        backend.shutdown()


def test_events_pending_when_the_connection_ends_are_given_up(clients: list[Client]) -> None:
    backend = Backend(GameState(), lambda game_state, dt: {})
    backend.run_in_thread()
    try:
        assert backend.server.port
        client = connect(clients, backend.server.port, timeout=30.0)
        client.link = LinkConditions(Direction(loss=1.0), Direction())
        failed = threading.Event()
        client.dispatch_event("NEVER", retries=50, failure_callback=failed.set)
        client.disconnect()
        assert failed.wait(10)
    finally:
        backend.shutdown()


def test_the_servers_callbacks_get_the_clients_connection(clients: list[Client]) -> None:
    backend = Backend(GameState(), lambda game_state, dt: {})
    backend.run_in_thread()
    try:
        assert backend.server.port
        client = connect(clients, backend.server.port)
        wait_for(lambda: backend.server.connections)
        (address,) = backend.server.connections
        got: list[Any] = []
        done = threading.Event()

        def acked(connection: Any) -> None:
            got.append(connection)
            done.set()

        backend.server.dispatch_event(
            "HELLO", target_client=address, retries=3, ack_callback=acked
        )
        assert done.wait(10)
        assert got == [backend.server.connections[address]]
        assert client.is_host
    finally:
        backend.shutdown()
