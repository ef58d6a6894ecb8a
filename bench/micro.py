"""The bench's in-process figures: what one tick costs the server, and one delta the client.

Measured with the process's CPU clock, best of several rounds, so they hold on a shared machine
where the wall-clock figures of the scenario runs do not:

- *server fixed cost per tick*: everything the server does once per tick whatever the number of
  clients, for the scenario's update (100 entities, all moving): moving the entities (the
  game's own work), building the ``GameStateUpdate``, ``GameStateStore.push_update`` (checks,
  copy into the state, the encoding that measures the size) and the payload every client one
  version behind is sent (``PayloadCache.payload_for``, fragments included);
- *client decode and apply*: ``StateDecoder.decode`` plus ``GameState.apply_owned`` of that
  delta (about 2 kB), what a client does with each state it receives.

It prints ``RESULT {json}``. Run it alone with ``python bench/micro.py``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from server import World

from pygase_core import GameState, GameStateStore, GameStateUpdate
from pygase_core.protocol.statesync import PayloadCache, StateDecoder

ROUNDS = 15


def best_cpu_seconds(work: Any, repeat: int) -> float:
    """The least CPU time one call of ``work`` took, over ROUNDS rounds of ``repeat`` calls."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(repeat):
            work()
        best = min(best, (time.process_time() - started) / repeat)
    return best


def server_tick_cost(entities: int) -> tuple[float, int]:
    world = World(entities)
    store = GameStateStore(GameState(entities=world.initial(), t=0.0, echo={}))
    store.max_update_size = 1 << 20  # as a Server sets it
    cache = PayloadCache(store)
    size = [0]

    def tick() -> None:
        base = store.time_order
        changes = {"entities": world.step(0.02), "t": time.time()}
        store.push_update(GameStateUpdate(base + 1, **changes))
        payload = cache.payload_for(base)
        assert payload is not None
        size[0] = sum(len(message) for message in payload.messages)

    return best_cpu_seconds(tick, 200), size[0]


def client_decode_cost(entities: int) -> tuple[float, int]:
    world = World(entities)
    store = GameStateStore(GameState(entities=world.initial(), t=0.0, echo={}))
    store.push_update(GameStateUpdate(1, entities=world.step(0.02), t=time.time()))
    encoded = store.encoded_changes_since(0)
    assert encoded is not None
    _target, payload = encoded
    state = store.snapshot()
    decoder = StateDecoder()

    def apply() -> None:
        delta = decoder.decode(state.time_order, state.time_order + 1, payload)
        assert isinstance(delta, GameStateUpdate)
        state.apply_owned(delta)

    return best_cpu_seconds(apply, 500), len(payload)


def main() -> int:
    entities = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    tick, wire = server_tick_cost(entities)
    decode, delta = client_decode_cost(entities)
    result = {
        "entities": entities,
        "server_tick_cpu_ms": round(1000 * tick, 4),
        "state_bytes_per_client_tick": wire,
        "client_decode_us": round(1e6 * decode, 2),
        "delta_bytes": delta,
    }
    print(
        f"server fixed cost per tick: {1000 * tick:.3f} ms of CPU ({entities} entities);"
        f" client decode and apply: {1e6 * decode:.1f} us per {delta}-byte delta"
    )
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
