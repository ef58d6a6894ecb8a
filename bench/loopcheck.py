"""The bench's game loop check: tick accuracy and the CPU of a server with no clients.

A ``GameStateMachine`` runs at the requested interval next to a ``Server`` that nobody connects
to, the way a freshly started game server idles. The game is as small as a game gets (one
counter that every step increments), so what is measured is the machinery's own cost: how close
the loop keeps to its rate, how evenly it steps, and how much of a core the process burns while
waiting. It runs for pygase or PyGaSe 0.3.1 and prints ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import threading
import time
from typing import Any


def cpu_seconds() -> float:
    """User plus system CPU time of this process, as the OS accounts it."""
    times = os.times()
    return times.user + times.system


class Steps:
    """Records when each step ran; the time step itself stays trivial."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.lock = threading.Lock()

    def step(self, game_state: Any, dt: float) -> dict[str, Any]:
        self.times.append(time.monotonic())
        return {"steps": getattr(game_state, "steps", 0) + 1}


def start_pygase(steps: Steps, interval: float) -> Any:
    from pygase_core import GameState, GameStateMachine, GameStateStore, Server

    store = GameStateStore(GameState(steps=0))
    machine = GameStateMachine(store)
    machine.time_step = steps.step  # type: ignore[method-assign]
    server = Server(store)
    server.run_in_thread(port=0, hostname="127.0.0.1", event_wire=machine)
    machine.run_game_loop_in_thread(interval)
    return machine


def start_peer(steps: Steps, interval: float) -> Any:
    from pygase.backend import GameStateMachine, GameStateStore, Server
    from pygase.gamestate import GameState

    store = GameStateStore(GameState(steps=0))
    machine = GameStateMachine(store)
    machine.time_step = steps.step
    server = Server(store)
    server.run_in_thread(port=0, hostname="127.0.0.1", event_wire=machine)
    thread = threading.Thread(target=machine.run_game_loop, args=(interval,), daemon=True)
    thread.start()
    return machine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("pygase", "peer"), required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--interval", type=float, default=0.02)
    args = parser.parse_args(argv)
    steps = Steps()
    (start_pygase if args.impl == "pygase" else start_peer)(steps, args.interval)
    time.sleep(args.warmup)
    first = len(steps.times)
    cpu_start, wall_start = cpu_seconds(), time.monotonic()
    time.sleep(args.seconds)
    cpu_end, wall_end = cpu_seconds(), time.monotonic()
    window = steps.times[first : len(steps.times)]
    elapsed = wall_end - wall_start
    rate = len(window) / elapsed
    gaps = sorted(abs((b - a) - args.interval) for a, b in itertools.pairwise(window))
    result = {
        "seconds": elapsed,
        "requested_rate": 1.0 / args.interval,
        "rate": rate,
        "rate_error_pct": 100.0 * (rate * args.interval - 1.0),
        "step_jitter_p99_ms": 1000.0 * gaps[int(0.99 * (len(gaps) - 1))] if gaps else None,
        "idle_cpu_pct": 100.0 * (cpu_end - cpu_start) / elapsed,
    }
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)  # neither implementation needs an orderly stop to report


if __name__ == "__main__":
    raise SystemExit(main())
