"""Event bursts from several threads at a server in another process, over real loopback UDP.

The figure the event channel must reach: 8 threads each bursting 1250 events (every tenth of
3000 bytes, ``retries=5``), every event handled exactly once and in per-thread order, every
``ack_callback`` run exactly once, none given up. The kernel's receive-buffer drops on both
ends are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from pygase_core import Client
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
THREADS = 8
EVENTS_PER_THREAD = 1250
BIG = b"x" * 3000


def test_eight_threads_bursting_ten_thousand_events_lose_nothing(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    with subprocess.Popen(
        [sys.executable, "-m", "tests.programs.burst_server", str(report)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            assert line.startswith("PORT "), line
            port = int(line.split()[1])
            client = Client()
            client.connect_in_thread(port, "127.0.0.1")
            acks: Counter[tuple[int, int]] = Counter()
            failures: Counter[tuple[int, int]] = Counter()
            lock = threading.Lock()

            def settle(counter: Counter[tuple[int, int]], key: tuple[int, int]) -> None:
                with lock:
                    counter[key] += 1

            def burst(thread: int) -> None:
                for seq in range(EVENTS_PER_THREAD):
                    key = (thread, seq)
                    client.dispatch_event(
                        "BURST",
                        thread,
                        seq,
                        BIG if seq % 10 == 0 else b"",
                        retries=5,
                        ack_callback=lambda key=key: settle(acks, key),
                        failure_callback=lambda key=key: settle(failures, key),
                    )

            started = time.monotonic()
            senders = [threading.Thread(target=burst, args=(t,)) for t in range(THREADS)]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
            total = THREADS * EVENTS_PER_THREAD
            wait_for(
                lambda: len(acks) + len(failures) >= total,
                timeout=120,
                message=f"only {len(acks)} acks and {len(failures)} failures of {total}",
            )
            took = time.monotonic() - started
            reported = threading.Event()
            client.dispatch_event("REPORT", retries=5, ack_callback=reported.set)
            assert reported.wait(30)
            wait_for(lambda: report.exists() and report.stat().st_size > 0, timeout=30)
            time.sleep(0.2)  # the file is written in one call; let it close
            result = json.loads(report.read_text())
            client_drops = client.drops
            client_buffer_drops = client.receive_buffer_drops
            client.disconnect()
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(30)
    print(
        f"\n{total} events from {THREADS} threads acknowledged in {took:.2f} s;"
        f" kernel receive-buffer drops: server"
        f" {result['receive_buffer_drops']}, client {client_buffer_drops};"
        f" server drops {result['drops']}, client drops {client_drops}"
    )
    handled = {int(thread): seqs for thread, seqs in result["handled"].items()}
    for thread in range(THREADS):
        assert handled.get(thread) == list(range(EVENTS_PER_THREAD)), f"thread {thread}"
    assert int(result["bytes"][str(0)]) == len(BIG) * (EVENTS_PER_THREAD // 10)
    assert not failures, f"{len(failures)} events given up"
    assert len(acks) == total and set(acks.values()) == {1}
