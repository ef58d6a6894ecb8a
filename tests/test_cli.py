"""The ``pygase`` command: a Backend served from a module in a real process, and the demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from pygase_core import Client, ClientStatus
from tests.waiting import wait_for


def pygase(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pygase_core.tools.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_runs_a_backend_from_a_module_in_its_own_process(tmp_path: Path) -> None:
    (tmp_path / "mygame.py").write_text(textwrap.dedent("""
        from pygase_core import Backend, GameState

        backend = Backend(
            initial_game_state=GameState(foo=0.0, bar=0.5),
            time_step_function=lambda game_state, dt: {"foo": game_state.foo + game_state.bar * dt},
            event_handlers={"SET_BAR": lambda new_bar, game_state, dt: {"bar": new_bar}},
        )
    """))
    port = free_udp_port()
    process = pygase("serve", "mygame:backend", "--port", str(port), cwd=tmp_path)
    try:
        assert process.stdout is not None
        assert "serving mygame:backend" in process.stdout.readline()
        client = Client()
        wait_for(lambda: _try_connect(client, port), timeout=15)
        client.dispatch_event("SET_BAR", 2.0, retries=5)

        def bar() -> float:
            with client.access_game_state() as state:
                return float(getattr(state, "bar", 0.0))

        wait_for(lambda: bar() == 2.0)
        client.disconnect(shutdown_server=True)  # the first client is the host
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)


def _try_connect(client: Client, port: int) -> bool:
    try:
        client.connect_in_thread(port)
    except Exception:
        return False
    return client.status is ClientStatus.CONNECTED


def test_demo_prints_live_state_and_stats() -> None:
    process = pygase("demo", "--clients", "2", "--seconds", "2", "--entities", "5")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "bot 0: time_order" in output and "bot 1: time_order" in output
    assert "rtt" in output and "server: 2 clients" in output
    assert output.rstrip().endswith("pygase demo: done")
