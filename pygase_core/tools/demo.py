"""A self-contained demo: a Backend with moving entities and a few headless bot clients.

It runs on a machine with no display and prints what every bot sees: the synchronized state's
age and the connection figures. ``pygase demo --help`` lists the options and explains each
figure it prints.
"""

from __future__ import annotations

import math
import random
import threading
import time
from typing import Any

from pygase_core.edge.backend import Backend
from pygase_core.edge.client import Client
from pygase_core.model.gamestate import GameState

ARENA = 100.0


def initial_state(entities: int, seed: int = 7) -> GameState:
    """Entities spread over the arena, each with a heading; ``server_time`` stamps each step."""
    rng = random.Random(seed)
    return GameState(
        entities={
            i: {
                "x": rng.uniform(0, ARENA),
                "y": rng.uniform(0, ARENA),
                "heading": rng.uniform(0, 2 * math.pi),
            }
            for i in range(entities)
        },
        speed=10.0,
        server_time=time.time(),
        boosts=0,
    )


def time_step(game_state: GameState, dt: float) -> dict[str, Any]:
    """Move every entity along its heading, bouncing off the arena's walls."""
    moved = {}
    for key, entity in game_state.entities.items():
        x = entity["x"] + math.cos(entity["heading"]) * game_state.speed * dt
        y = entity["y"] + math.sin(entity["heading"]) * game_state.speed * dt
        heading = entity["heading"]
        if not 0 <= x <= ARENA:
            heading = math.pi - heading
        if not 0 <= y <= ARENA:
            heading = -heading
        moved[key] = {
            "x": min(max(x, 0.0), ARENA),
            "y": min(max(y, 0.0), ARENA),
            "heading": heading,
        }
    return {"entities": moved, "server_time": time.time()}


def on_boost(amount: float, game_state: GameState, dt: float) -> dict[str, Any]:
    """A client event: speed everything up (and count it)."""
    return {"speed": min(game_state.speed + amount, 50.0), "boosts": game_state.boosts + 1}


def make_backend(entities: int = 20, **server_options: Any) -> Backend:
    """The demo's server side.

    ``pygase serve pygase_core.tools.demo:make_backend`` serves it alone.
    """
    return Backend(initial_state(entities), time_step, {"BOOST": on_boost}, **server_options)


def run_demo(
    clients: int = 3,
    seconds: float = 10.0,
    entities: int = 20,
    port: int = 0,
    out: Any = print,
) -> None:
    """Run a backend and ``clients`` bots on localhost, printing a status line every second."""
    backend = make_backend(entities)
    backend.run_in_thread(port=port)
    out(
        f"pygase demo: server on {backend.server.hostname} port {backend.server.port}, "
        f"{entities} entities, {clients} bot clients"
    )
    bots = [Client() for _ in range(clients)]
    for bot in bots:
        bot.connect_in_thread(backend.server.port or 0, backend.server.hostname or "localhost")
    stop = threading.Event()
    started = time.monotonic()
    try:
        second = 0
        while not stop.wait(1.0):
            second += 1
            bots[second % len(bots)].dispatch_event("BOOST", 1.0, retries=3)
            for number, bot in enumerate(bots):
                with bot.access_game_state() as state:
                    age = (time.time() - state.server_time) * 1000
                    line = (
                        f"  bot {number}: time_order {state.time_order:5d} "
                        f"speed {state.speed:5.1f} boosts {state.boosts:3d} "
                        f"state age {age:6.1f} ms"
                    )
                stats = bot.stats
                if stats is not None:
                    line += (
                        f" | rtt {1000 * (stats.rtt or 0):5.2f} ms "
                        f"loss {100 * stats.packet_loss:4.1f}% "
                        f"in {stats.kbps_in:6.1f} kB/s out {stats.kbps_out:5.1f} kB/s"
                    )
                out(line)
            out(
                f"  server: {len(backend.server.connections)} clients, "
                f"game time {backend.game_state_machine.game_time:6.1f} s"
            )
            if seconds and time.monotonic() - started >= seconds:
                break
    except KeyboardInterrupt:
        pass
    finally:
        for bot in bots:
            bot.disconnect()
        backend.shutdown()
    out("pygase demo: done")
