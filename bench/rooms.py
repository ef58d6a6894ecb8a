"""Rooms per process: 50 active rooms of 4 bots, 1000 idle rooms, and a storm of 200 joins.

Usage: python bench/rooms.py [--seconds 10] [--json bench/rooms_results.json] [--update-readme]

The server runs in a process of its own (``python bench/rooms.py serve``), so its CPU time and
memory are read from ``/proc`` for it alone. The bots are real clients, all on one asyncio loop
in this process. Each room has 4 players and 20 moving entities and ticks 20 times a second;
its state carries the server's wall-clock time of the tick, so a bot's state age is its own
clock minus that time, read at its frames (100 a second), the first frame that shows a new
version. Join latency is from the start of ``connect_async`` to the seat, for 200 joins
started at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pygase_core import Client, GameState, Room, RoomClient, Server

TICK = 0.05
ENTITIES = 20
PLAYERS = 4


class BenchRoom(Room):
    """4 players and 20 entities that move every tick."""

    max_clients = PLAYERS
    tick_interval = TICK
    auto_dispose = False

    def on_create(self, options: dict[str, Any]) -> GameState:
        entities = {str(i): [float(i), 0.0] for i in range(ENTITIES)}
        return GameState(players={}, entities=entities, server_time=time.time())

    def time_step(self, game_state: GameState, dt: float) -> dict[str, Any]:
        moved = {key: [x + dt, y + 2 * dt] for key, (x, y) in game_state.entities.items()}
        return {"entities": moved, "server_time": time.time()}

    def on_join(
        self, client: RoomClient, options: dict[str, Any], game_state: GameState
    ) -> dict[str, Any]:
        return {"players": {client.id: [0.0, 0.0]}}


def serve(idle_rooms: int) -> None:
    server = Server(max_clients=1024, max_rooms=max(1000, idle_rooms + 100))
    server.define("bench", BenchRoom)
    server.run_in_thread(0, "127.0.0.1")
    for _ in range(idle_rooms):
        server.create_room("bench", private=True)
    print(f"PORT {server.port}", flush=True)
    sys.stdin.read()
    server.shutdown()


def cpu_of(pid: int) -> float:
    """User plus system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_of(pid: int) -> float:
    """Resident memory of a process in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def start_server(idle_rooms: int) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, __file__, "serve", "--idle-rooms", str(idle_rooms)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        raise RuntimeError(f"the bench server did not start: {line!r}")
    return process, int(line.split()[1])


def stop_server(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.close()
    process.wait(30)


async def active_rooms(port: int, pid: int, seconds: float) -> dict[str, Any]:
    clients = [Client(connect_timeout=30) for _ in range(50 * PLAYERS)]
    joined: dict[int, float] = {}

    async def join(index: int, client: Client) -> None:
        started = time.monotonic()
        task = asyncio.ensure_future(client.connect_async(port, "127.0.0.1", room="bench"))
        while client.room_id is None:
            if task.done():
                task.result()
            await asyncio.sleep(0.001)
        joined[index] = time.monotonic() - started
        await task

    tasks = [asyncio.ensure_future(join(i, c)) for i, c in enumerate(clients)]
    while len(joined) < len(clients):
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise RuntimeError(f"a join failed: {failed[0].exception()}")
        await asyncio.sleep(0.01)
    rooms = {c.room_id for c in clients}
    await asyncio.sleep(1.0)  # settle
    ages: list[float] = []
    seen: dict[int, int] = {}
    cpu_before, wall_before = cpu_of(pid), time.monotonic()
    while time.monotonic() - wall_before < seconds:
        now = time.time()
        for index, client in enumerate(clients):
            with client.access_game_state() as state:
                version = state.time_order
                stamp = getattr(state, "server_time", None)
            if stamp is not None and seen.get(index) != version:
                seen[index] = version
                ages.append(now - stamp)
        await asyncio.sleep(0.01)
    cpu = (cpu_of(pid) - cpu_before) / (time.monotonic() - wall_before)
    rss = rss_of(pid)
    for client in clients:
        await client.disconnect_async()
    await asyncio.gather(*tasks, return_exceptions=True)
    joins = list(joined.values())
    return {
        "rooms": len(rooms),
        "clients": len(clients),
        "server_cpu_share": cpu,
        "server_rss_mb": rss,
        "age_p50_ms": 1000 * percentile(ages, 50),
        "age_p99_ms": 1000 * percentile(ages, 99),
        "age_samples": len(ages),
        "join_p50_ms": 1000 * percentile(joins, 50),
        "join_p99_ms": 1000 * percentile(joins, 99),
    }


async def joins_one_at_a_time(port: int, count: int = 50) -> dict[str, Any]:
    """Join latency without a storm: each client joins after the previous one is seated."""
    clients, tasks, latencies = [], [], []
    for _ in range(count):
        client = Client(connect_timeout=30)
        started = time.monotonic()
        task = asyncio.ensure_future(client.connect_async(port, "127.0.0.1", room="bench"))
        while client.room_id is None:
            if task.done():
                task.result()
            await asyncio.sleep(0.0005)
        latencies.append(time.monotonic() - started)
        clients.append(client)
        tasks.append(task)
    for client in clients:
        await client.disconnect_async()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "joins": count,
        "join_p50_ms": 1000 * percentile(latencies, 50),
        "join_p99_ms": 1000 * percentile(latencies, 99),
    }


def idle_rooms(count: int, seconds: float) -> dict[str, Any]:
    process, _port = start_server(count)
    try:
        time.sleep(1.0)
        before, wall = cpu_of(process.pid), time.monotonic()
        time.sleep(seconds)
        cpu = (cpu_of(process.pid) - before) / (time.monotonic() - wall)
        rss = rss_of(process.pid)
    finally:
        stop_server(process)
    baseline, _ = start_server(0)
    try:
        time.sleep(1.0)
        empty_rss = rss_of(baseline.pid)
    finally:
        stop_server(baseline)
    return {
        "rooms": count,
        "server_cpu_share": cpu,
        "server_rss_mb": rss,
        "server_rss_mb_without_rooms": empty_rss,
    }


README_START = "<!-- rooms:start -->"
README_END = "<!-- rooms:end -->"
TARGETS = {
    "active_cpu": 0.40,
    "active_age_p99_ms": 2 * TICK * 1000 + 10,
    "idle_cpu": 0.02,
    "idle_rss_mb": 50.0,
    "join_p99_ms": 20.0,
}


def verdict(value: float, target: float) -> str:
    return "holds" if value <= target else "missed"


def markdown(results: dict[str, Any]) -> str:
    """The figures as the table bench/README.md shows."""
    active, idle = results["active"], results["idle"]
    rows = [
        ("50 active rooms, server CPU (share of one core)", f"{active['server_cpu_share']:.2f}",
         f"< {TARGETS['active_cpu']:.2f}",
         verdict(active["server_cpu_share"], TARGETS["active_cpu"])),
        ("50 active rooms, state age p50 / p99", f"{active['age_p50_ms']:.1f} /"
         f" {active['age_p99_ms']:.1f} ms", f"p99 <= {TARGETS['active_age_p99_ms']:.0f} ms",
         verdict(active["age_p99_ms"], TARGETS["active_age_p99_ms"])),
        ("50 active rooms, server memory", f"{active['server_rss_mb']:.1f} MB", "", ""),
        ("1000 idle rooms, server CPU", f"{idle['server_cpu_share']:.3f}",
         f"< {TARGETS['idle_cpu']:.2f}", verdict(idle["server_cpu_share"], TARGETS["idle_cpu"])),
        ("1000 idle rooms, server memory", f"{idle['server_rss_mb']:.1f} MB"
         f" ({idle['server_rss_mb_without_rooms']:.1f} MB without rooms)",
         f"< {TARGETS['idle_rss_mb']:.0f} MB",
         verdict(idle["server_rss_mb"], TARGETS["idle_rss_mb"])),
        ("200 joins at once, join latency p50 / p99", f"{active['join_p50_ms']:.0f} /"
         f" {active['join_p99_ms']:.0f} ms", f"p99 < {TARGETS['join_p99_ms']:.0f} ms",
         verdict(active["join_p99_ms"], TARGETS["join_p99_ms"])),
        ("50 joins one after another, join latency p50 / p99",
         f"{results['single']['join_p50_ms']:.1f} / {results['single']['join_p99_ms']:.1f} ms",
         f"p99 < {TARGETS['join_p99_ms']:.0f} ms",
         verdict(results["single"]["join_p99_ms"], TARGETS["join_p99_ms"])),
    ]
    lines = ["| figure | measured | target | |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def update_readme(results: dict[str, Any]) -> None:
    readme = Path(__file__).with_name("README.md")
    text = readme.read_text()
    start, end = text.index(README_START), text.index(README_END)
    readme.write_text(
        text[: start + len(README_START)] + "\n" + markdown(results) + "\n" + text[end:]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "serve"])
    parser.add_argument("--idle-rooms", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", default=str(Path(__file__).with_name("rooms_results.json")))
    parser.add_argument("--update-readme", action="store_true", help="put the table in README")
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.idle_rooms)
        return
    process, port = start_server(0)
    try:
        active = asyncio.run(active_rooms(port, process.pid, args.seconds))
    finally:
        stop_server(process)
    process, port = start_server(0)
    try:
        single = asyncio.run(joins_one_at_a_time(port))
    finally:
        stop_server(process)
    idle = idle_rooms(1000, args.seconds)
    results = {"active": active, "idle": idle, "single": single, "cpus": os.cpu_count()}
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    if args.update_readme:
        update_readme(results)


if __name__ == "__main__":
    main()
