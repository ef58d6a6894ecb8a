"""State a tick over lossy, long links: what a client gets of a large moving world, sans-IO.

A real ``ServerEndpoint`` and ``ClientEndpoint`` exchange their datagrams over the seeded
in-memory links the tests use (``tests/memlink.py``: loss, latency, a fake clock), so every figure
is exact and the same on every run, whatever else the machine does. Each scenario pushes a state
every 20 ms (50 Hz) in which every entity (an ``[x, y]`` list) moved, for ``--seconds``, after the
client holds a first state, and reports per second of that window: the states the client applied,
the datagrams the server sent per tick, the packets the server counted lost (unacknowledged), and
the share of ticks its congestion control was in its good mode (the bad mode sends at 10 Hz).

    .venv/bin/python bench/links.py            # the table in bench/README.md, a few seconds
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pygase_core.model.gamestate import GameState, GameStateUpdate
from pygase_core.model.store import GameStateStore
from pygase_core.protocol.statesync import PayloadCache
from tests.memlink import Network

CLIENT = ("10.0.0.2", 5000)
TICK = 0.02
SCENARIOS = [
    # entities, one-way latency (s), loss each way
    (300, 0.03, 0.0),
    (900, 0.03, 0.0),
    (1500, 0.03, 0.0),
    (900, 0.1, 0.0),
    (50, 0.03, 0.03),
    (300, 0.03, 0.03),
    (300, 0.03, 0.05),
    (300, 0.05, 0.05),
    (900, 0.05, 0.05),
    (300, 0.03, 0.15),
]


def measure(
    count: int, latency: float, loss: float, seconds: float, seed: int = 1
) -> dict[str, float]:
    """One scenario's figures (see the module docstring)."""
    rng = random.Random(seed)
    world = {i: [rng.uniform(0, 100), rng.uniform(0, 100)] for i in range(count)}
    store = GameStateStore(GameState(entities=world))
    network = Network(store, seed=seed)
    network.add_client(CLIENT, latency=latency, loss=loss)
    client = network.clients[CLIENT]

    def holds_a_state() -> bool:
        connection = client.endpoint.connection
        return connection is not None and connection.applied_time_order is not None

    network.run_until(holds_a_state, timeout=30)
    server = network.server.connections[CLIENT]
    sent, lost = len(network.server_out), server.stats.packets_lost
    applied: set[int] = set()
    good = 0
    ticks = round(seconds / TICK)
    for _ in range(ticks):
        moved = {k: [x + rng.uniform(-1, 1), y + rng.uniform(-1, 1)]
                 for k, (x, y) in store.get_game_state().entities.items()}
        store.push_update(GameStateUpdate(store.time_order + 1, entities=moved))
        for _ in range(round(TICK / 0.001)):
            network.step(0.001)
            applied.add(client.state.time_order)
        good += server.congestion.good
    payload = PayloadCache(store).payload_for(store.time_order - 1)
    return {
        "entities": count,
        "latency_ms": latency * 1000,
        "loss": loss,
        "fragments_per_state": len(payload.messages) if payload is not None else 0,
        "states_per_s": round(len(applied) / seconds, 1),
        "datagrams_per_tick": round((len(network.server_out) - sent) / ticks, 1),
        "lost_per_s": round((server.stats.packets_lost - lost) / seconds, 1),
        "good_share": round(good / ticks, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    head = ["entities", "one-way ms", "loss", "fragments/state", "states/s",
            "datagrams/tick", "lost/s", "good mode"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for count, latency, loss in SCENARIOS:
        row = measure(count, latency, loss, args.seconds)
        print("| " + " | ".join(str(value) for value in row.values()) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
