"""The bench runs end to end on a tiny scenario (pygase only; no figures are judged here).

The benchmark's numbers belong in bench/README.md, not in assertions: a timed test on a shared
machine is flaky and proves nothing. This only checks that the bench's processes start, talk to
each other and produce a complete result, so the bench cannot rot unnoticed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_bench_runs_a_tiny_scenario(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--tiny",
            "--no-peer",
            "--no-setup",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "tiny"
    [run] = results["runs"]
    assert run["impl"] == "pygase" and run["connected"] == run["clients"] == 2
    for figure in (
        "age_p50_ms",
        "age_p99_ms",
        "round_trip_p50_ms",
        "server_cpu_ms_per_client_s",
        "bytes_out_per_client_s",
        "wire_over_msgpack",
        "states_per_client_s",
    ):
        assert run[figure] is not None and run[figure] > 0, figure
    [loop] = results["game_loop"]
    assert loop["impl"] == "pygase" and loop["rate"] > 0 and loop["idle_cpu_pct"] >= 0
    assert results["targets"]
    assert "age p50" in completed.stdout  # the terminal table


def test_the_views_bench_runs_and_its_clients_end_exact(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "views.py"), "--seconds", "0.5", "--warmup",
            "0.5", "--only", "precision 0.01", "--only", "500 views", "--out", str(tmp_path),
            "--no-colyseus",  # the suite needs neither Node nor the network
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads((tmp_path / "views.json").read_text())["results"]
    assert [r["scenario"] for r in results] == ["precision 0.01", "500 views"]
    for result in results:
        assert result["exact"] and result["bytes_per_state"] > 0
