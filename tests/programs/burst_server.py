"""A server in its own process that records every BURST event it handles, in order.

Usage: python -m tests.programs.burst_server REPORT_PATH
Prints ``PORT <n>`` once it listens; on a REPORT event it writes what it handled, and the
server's drop counters, as JSON to REPORT_PATH.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

from pygase_core import Backend, GameState


def main(report_path: str) -> None:
    handled: defaultdict[int, list[int]] = defaultdict(list)
    sizes: defaultdict[int, int] = defaultdict(int)

    def on_burst(thread: int, seq: int, blob: bytes, **_: Any) -> None:
        handled[thread].append(seq)
        sizes[thread] += len(blob)

    def on_report(**_: Any) -> None:
        with open(report_path, "w", encoding="utf-8") as out:
            json.dump(
                {
                    "handled": handled,
                    "bytes": sizes,
                    "drops": backend.server.drops,
                    "receive_buffer_drops": backend.server.receive_buffer_drops,
                }, out
            )

    backend = Backend(
        GameState(), lambda game_state, dt: {}, {"BURST": on_burst, "REPORT": on_report}
    )
    backend.run_in_thread("127.0.0.1", 0)
    print(f"PORT {backend.server.port}", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    backend.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
