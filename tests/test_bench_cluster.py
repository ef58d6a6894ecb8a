"""The cluster bench runs end to end on a tiny scenario (no figures are judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("redis", reason="needs the cluster extra")


def test_the_cluster_bench_runs_a_tiny_scenario(tmp_path: Path) -> None:
    out = tmp_path / "cluster.json"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cluster.py"), "--rate", "20", "--seconds", "1",
         "--steps", "8", "--window", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads(out.read_text())
    assert results["latency"]["ok"] == results["latency"]["requests"] == 20
    for workers in (1, 2):
        [step] = results[f"workers_{workers}"]["steps"]
        assert step["clients"] == 8 and step["states"] > 0
