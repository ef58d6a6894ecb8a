"""Key-to-screen latency with and without prediction, and the cost of a replay.

``python bench/prediction.py`` (``--quick`` for fewer presses, ``--out FILE`` for the JSON).

For each round trip (0, 100 and 200 ms, simulated on both clients' links over real loopback
UDP) and with prediction on and off, one room of a real ``Server`` holds two headless frame
sessions at 60 frames per second: the *mover* and an *observer*. At a random moment the mover's
scripted key goes down (its input turns from standing still to moving); the bench records the
time from that moment to the first frame of the mover that shows its own player moved (*own*)
and to the first frame of the observer that shows it (*remote*). Then the key goes up, both
settle, and the next press goes the other way. Frames are what the game would draw: the
session's snapshot after ``pump()`` and, for the mover, after its ``send_input``.

Every half second the room shoves each player 6 units along y on its own (alternating up and
down), which the mover cannot predict: those mispredictions are corrected over a few frames, at
most ``max_correction`` (4 units, the default) per frame; the bench reports the corrections'
p99 and maximum per frame. (Latency is measured along x, which only the key moves.)

The replay figure is CPU time (``time.process_time``) of ``Prediction.reconcile`` and the replay
at the next read (``Prediction.predicted``), with 10 pending inputs of the chase step
(``examples.chase.rules.steer``), per replayed tick.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.chase import rules  # noqa: E402
from pygase_core import GameState, Prediction, Room, Server  # noqa: E402
from pygase_core.edge.frames import FrameSession, FrameSessionHooks  # noqa: E402

FRAME = 1 / 60
PATH = "players.{me}"
SHOVE = 6.0
SHOVE_EVERY = 25
"""Steps between the room's shoves (half a second at 50 steps per second)."""


class Arena(Room):
    """Players who move by inputs only, with the chase step."""

    def on_create(self, options: dict[str, Any]) -> GameState:
        self.predict(PATH, rules.steer)
        return GameState(players={})

    def on_join(self, client: Any, options: dict[str, Any], game_state: GameState) -> Any:
        return {"players": {client.id: {"x": 400.0, "y": 300.0, "speed": rules.RUNNER_SPEED}}}

    def time_step(self, game_state: GameState, dt: float) -> Any:
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps % SHOVE_EVERY:
            return None
        shove = SHOVE if self.steps % (2 * SHOVE_EVERY) else -SHOVE
        return {"players": {
            pid: {**player, "y": player["y"] + shove} for pid, player in game_state.players.items()
        }}


def session(link: str) -> FrameSession:
    os.environ["PYGASE_LINK"] = link
    try:
        return FrameSession("bench", FrameSessionHooks("bench"), interpolate=("players.*.x",))
    finally:
        del os.environ["PYGASE_LINK"]


def own_x(frame: FrameSession, player_id: str) -> float | None:
    snapshot = frame.snapshot
    if snapshot is None:
        return None
    player = snapshot.players.get(player_id) if "players" in snapshot else None
    return None if player is None else float(player["x"])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def scenario(port: int, rtt: float, predicting: bool, presses: int, rng: random.Random) -> dict:
    link = f"latency={rtt / 2 * 1000:.0f}ms,seed={rng.randrange(1000)}" if rtt else ""
    mover, observer = session(link), session(link)
    mover.predict(PATH, rules.steer)
    mover.predicting = predicting
    mover.connect(port, room="arena", create=True)
    room_id = mover.client.room_id
    observer.connect(port, room_id=room_id)
    me = str(mover.client.id)
    own: list[float] = []
    remote: list[float] = []
    corrections: list[float] = []
    next_frame = time.monotonic()

    def frame(direction: list[float]) -> tuple[float | None, float | None, float]:
        nonlocal next_frame
        next_frame += FRAME
        delay = next_frame - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_frame = time.monotonic()
        mover.pump()
        observer.pump()
        prediction = mover.client.prediction
        if prediction is not None:
            corrections.append(prediction.last_correction)
        mover.send_input(direction)
        drawn = time.monotonic()
        return own_x(mover, me), own_x(observer, me), drawn

    still = [0.0, 0.0]
    deadline = time.monotonic() + 10
    while None in frame(still)[:2]:
        if time.monotonic() > deadline:
            raise SystemExit("the players never showed up")
    sign = 1.0
    try:
        for _ in range(presses):
            for _settle in range(round(rng.uniform(0.25, 0.4) / FRAME)):
                seen_own, seen_remote, _ = frame(still)
            assert seen_own is not None and seen_remote is not None
            base_own, base_remote = seen_own, seen_remote
            # The key goes down at a random moment before the next frame, which reads it.
            now = time.monotonic()
            pressed_at = rng.uniform(now, max(now, next_frame + FRAME))
            got_own = got_remote = None
            limit = time.monotonic() + 5
            while (got_own is None or got_remote is None) and time.monotonic() < limit:
                shown_own, shown_remote, drawn = frame([sign, 0.0])
                if got_own is None and shown_own is not None and abs(shown_own - base_own) > 0.5:
                    got_own = drawn - pressed_at
                if got_remote is None and shown_remote is not None and (
                    abs(shown_remote - base_remote) > 0.5
                ):
                    got_remote = drawn - pressed_at
            if got_own is not None and got_remote is not None:
                own.append(got_own * 1000)
                remote.append(got_remote * 1000)
            for _release in range(6):
                frame(still)
            sign = -sign
    finally:
        prediction = mover.client.prediction
        stats = prediction.stats if prediction is not None else None
        mover.disconnect()
        observer.disconnect()
    return {
        "rtt_ms": round(rtt * 1000),
        "prediction": predicting,
        "presses": len(own),
        "own_p50_ms": round(percentile(own, 0.5), 1),
        "own_p99_ms": round(percentile(own, 0.99), 1),
        "remote_p50_ms": round(percentile(remote, 0.5), 1),
        "remote_p99_ms": round(percentile(remote, 0.99), 1),
        "mispredictions": stats.mispredictions if stats else None,
        "correction_p99": round(percentile(corrections, 0.99), 3) if corrections else None,
        "max_correction_per_frame": round(stats.max_correction_per_frame, 3) if stats else None,
        "correction_bound": prediction.max_correction if prediction is not None else None,
    }


def replay_cost(ticks: int = 10, rounds: int = 20000) -> dict:
    prediction = Prediction(PATH, rules.steer, 0.02, "me")
    state = {"players": {"me": {"x": 400.0, "y": 300.0, "speed": rules.RUNNER_SPEED}}}
    prediction.reconcile(state, None)
    for tick in range(1, ticks + 1):
        prediction.add_input(tick, [1.0, 0.5])
    start = time.process_time()
    for _ in range(rounds):
        prediction.reconcile(state, 0)
        prediction.predicted  # the replay runs where the prediction is read  # noqa: B018
    spent = time.process_time() - start
    per_tick = spent / (rounds * ticks) * 1e6
    return {
        "ticks": ticks,
        "us_per_tick": round(per_tick, 2),
        "us_per_10_ticks": round(per_tick * 10, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 presses per case, not 30")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    presses = 8 if args.quick else 30
    rng = random.Random(1)
    server = Server()
    server.define("arena", Arena)
    thread = server.run_in_thread(0)
    cpu_start, wall_start = time.process_time(), time.monotonic()
    rows = []
    try:
        assert server.port is not None
        for rtt in (0.0, 0.1, 0.2):
            for predicting in (True, False):
                rows.append(scenario(server.port, rtt, predicting, presses, rng))
                print(json.dumps(rows[-1]), flush=True)
    finally:
        server.shutdown()
        thread.join(5)
    replay = replay_cost()
    print(json.dumps({"replay": replay}))
    print(f"\n{'rtt':>5} {'predict':>8} {'own p50':>8} {'own p99':>8} {'remote p50':>11}"
          f" {'remote p99':>11}")
    for row in rows:
        print(f"{row['rtt_ms']:>5} {'on' if row['prediction'] else 'off':>8}"
              f" {row['own_p50_ms']:>8} {row['own_p99_ms']:>8} {row['remote_p50_ms']:>11}"
              f" {row['remote_p99_ms']:>11}")
    for row in rows:
        if row["prediction"]:
            print(f"rtt {row['rtt_ms']} ms: {row['mispredictions']} mispredictions, correction"
                  f" per frame p99 {row['correction_p99']}, max {row['max_correction_per_frame']}"
                  f" (bound {row['correction_bound']})")
    print(f"replay: {replay['us_per_tick']} us per replayed tick,"
          f" {replay['us_per_10_ticks']} us for 10 ticks")
    process = {"cpu_s": round(time.process_time() - cpu_start, 1),
               "wall_s": round(time.monotonic() - wall_start, 1)}
    if args.out is not None:
        args.out.write_text(json.dumps({"latency": rows, "replay": replay, "process": process},
                                       indent=2) + "\n")


if __name__ == "__main__":
    main()
