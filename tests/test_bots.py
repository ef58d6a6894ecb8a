"""The bot swarm against a real Backend on loopback, and its measuring arithmetic.

No timing thresholds here: the swarm measures, and the bench reports the figures. These tests
check that the bots really connect, read, send and see their echoes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pygase_core import Backend, GameState
from pygase_core.tools.bots import (
    BotProbe,
    BotSwarm,
    SwarmReport,
    echo_handler,
    parse_address,
    percentile,
)


def moving(game_state: GameState, dt: float) -> dict[str, Any]:
    return {
        "entities": {key: [x + dt, y] for key, (x, y) in game_state.entities.items()},
        "server_time": time.time(),
    }


@pytest.fixture
def backend() -> Iterator[Backend]:
    backend = Backend(
        GameState(entities={i: [0.0, 0.0] for i in range(20)}, server_time=time.time()),
        moving,
        {"BOT_INPUT": echo_handler()},
        host_client=None,
    )
    backend.run_in_thread(hostname="127.0.0.1")
    yield backend
    backend.shutdown()


def test_a_swarm_connects_reads_and_measures_round_trips(backend: Backend) -> None:
    assert backend.server.port is not None
    windows: list[str] = []
    swarm = BotSwarm("127.0.0.1", backend.server.port, 4, rate=10.0, frame_rate=60.0)
    report = swarm.run(2.0, warmup=0.3, on_window=windows.append)

    assert windows == ["start", "end"]
    assert report.connected == 4 and report.errors == []
    assert report.seconds > 0
    assert report.frames > 0 and report.frames_without_time == 0
    assert report.states > 0
    assert report.age_p50_ms is not None and report.age_p99_ms is not None
    assert report.events_sent > 0 and report.events_echoed > 0
    assert report.round_trip_p50_ms is not None and report.round_trip_p50_ms > 0
    assert all(probe.ages and probe.round_trips for probe in report.probes)
    summary = report.summary()
    assert "4/4 connected" in summary and "event round trip" in summary
    assert "probes" not in report.to_dict()
    json.dumps(report.to_dict())
    # Every bot disconnected afterwards.
    deadline = time.monotonic() + 5
    while backend.server.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not backend.server.connections


def test_a_server_without_echo_or_timestamp_still_gets_a_report() -> None:
    plain = Backend(
        GameState(counter=0), lambda game_state, dt: {"counter": game_state.counter + 1}
    )
    plain.run_in_thread(hostname="127.0.0.1")
    try:
        assert plain.server.port is not None
        report = BotSwarm("127.0.0.1", plain.server.port, 2, rate=0.0).run(0.5, warmup=0.1)
    finally:
        plain.shutdown()
    assert report.connected == 2
    assert report.frames > 0 and report.frames_without_time == report.frames
    assert report.age_p50_ms is None and report.round_trip_p50_ms is None
    assert "no timestamp" in report.summary()


def test_bots_that_find_no_server_report_the_failure() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        swarm = BotSwarm("127.0.0.1", port, 2, connect_timeout=0.5)
        report = swarm.run(0.2, warmup=0.0)
    assert report.connected == 0
    assert report.errors and "2 bot(s)" in report.errors[0]


def test_the_cli_prints_a_summary(backend: Backend) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pygase_core.tools.cli",
            "bots",
            f"127.0.0.1:{backend.server.port}",
            "--count",
            "3",
            "--seconds",
            "1",
            "--rate",
            "5",
            "--warmup",
            "0.2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["connected"] == 3 and report["frames"] > 0


def test_the_cli_rejects_a_bad_address() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "pygase_core.tools.cli", "bots", "nowhere", "--count", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode != 0
    assert "HOST:PORT" in completed.stderr


def test_probe_arithmetic() -> None:
    probe = BotProbe(7, time_attribute="t", echo_attribute="echo", epoch=100.0)
    state = GameState(time_order=3, t=5.0, echo={})
    probe.observe(state, 105.5, 1.0)  # not recording yet: ignored
    assert probe.frames == 0
    probe.recording = True
    first = probe.next_event(10.0)
    second = probe.next_event(10.5)
    probe.observe(state, 105.5, 10.6)
    assert probe.ages == [pytest.approx(0.5)]
    assert probe.round_trips == []
    probe.observe(GameState(time_order=4, t=5.1, echo={7: first}), 105.6, 11.0)
    assert probe.round_trips == [pytest.approx(1.0)]
    probe.observe(GameState(time_order=4, t=5.1, echo={7: second, 8: 99}), 105.7, 11.5)
    assert probe.round_trips == [pytest.approx(1.0), pytest.approx(1.0)]
    assert (probe.frames, probe.versions, probe.events_echoed) == (3, 2, 2)
    report = SwarmReport.from_probes([probe], 1.0, 1)
    assert report.age_p50_ms == pytest.approx(500.0)
    assert report.bots_behind == 1  # a median age of 500 ms is far behind


def test_helpers() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 0.99) == 99.0
    assert parse_address("localhost:8080") == ("localhost", 8080)
    assert parse_address("[::1]:9") == ("::1", 9)
    for bad in ("localhost", ":80", "host:0", "host:x"):
        with pytest.raises(ValueError):
            parse_address(bad)
    assert echo_handler("e")(3, 4) == {"e": {3: 4}}
