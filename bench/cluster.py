"""The cluster: matchmaking latency at a fixed request rate, and capacity with 1 and 2 workers.

Usage: python bench/cluster.py [--rate 100] [--seconds 10] [--steps 100,200,...]
                               [--json bench/cluster_results.json] [--update-readme]

Everything is real and on loopback: a ``redis-server`` (Debian's), ``pygase matchmaker`` and
``pygase node`` processes, and real clients with connect tokens (so encrypted sessions).

* **Latency**: one node, one matchmaker; ``POST /matchmake/join_or_create/bench`` sent open-loop
  at ``--rate`` requests per second for ``--seconds`` (from this process, aiohttp); each answer's
  time from its request's send. Tokens last 2 s here, so the seats they hold go back.
* **Capacity**: ``pygase node --workers 1`` and ``--workers 2``; for each client count of
  ``--steps`` the clients (all on one asyncio loop in this process) matchmake into rooms of 4
  that tick 20 times a second with 20 moving entities, warm up 1 s, then for ``--window``
  seconds every state a client applies is timed: its age is this machine's clock minus the
  tick's stamp in the state (the age on arrival, before any frame waits). The capacity is the
  largest count whose p99 age is within 40 ms; the counting stops at the first count past it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pygase_core import Client, GameState, Room, Server  # noqa: E402
from pygase_core.plugins import hookimpl  # noqa: E402

TICK = 0.05
ENTITIES = 20
PLAYERS = 4
AGE_LIMIT_MS = 40.0


class BenchRoom(Room):
    """4 players and 20 entities that move every tick, stamped with the tick's time."""

    max_clients = PLAYERS
    tick_interval = TICK
    reconnection_window = 0.0

    def on_create(self, options: dict[str, Any]) -> GameState:
        entities = {str(i): [float(i), 0.0] for i in range(ENTITIES)}
        return GameState(entities=entities, server_time=time.time())

    def time_step(self, game_state: GameState, dt: float) -> dict[str, Any]:
        moved = {key: [x + dt, y + 2 * dt] for key, (x, y) in game_state.entities.items()}
        return {"entities": moved, "server_time": time.time()}


def make_server() -> Server:
    """What ``pygase node`` hosts here: ``--server cluster:make_server`` from ``bench/``."""
    server = Server(max_clients=2000, max_rooms=2000, timeout=5.0)
    server.define("bench", BenchRoom)
    return server


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def cpu_of(pid: int) -> float:
    """User plus system CPU seconds of a process, from /proc (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_cores_seconds() -> float:
    """CPU seconds every core of the machine spent busy so far, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class Stack:
    """redis-server, a matchmaker and the nodes, each a process, stopped by :meth:`close`."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="pygase-bench-cluster-"))
        self.key = self.directory / "secret.key"
        self.key.write_text(os.urandom(32).hex())
        self.redis_port = free_port()
        self.processes: list[subprocess.Popen[str]] = []
        self.redis = self._spawn(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"], "Ready to accept connections")
        self.url = f"redis://127.0.0.1:{self.redis_port}/0"

    def _spawn(self, argv: list[str], ready: str, cwd: Path = ROOT) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, cwd=cwd, env=env)
        self.processes.append(process)
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if ready in line:
                return process
        raise RuntimeError(f"{argv[0]} did not start:\n{''.join(seen)}")

    def pygase(self, *args: str, ready: str) -> subprocess.Popen[str]:
        return self._spawn([sys.executable, "-m", "pygase_core.tools.cli", *args], ready,
                           cwd=ROOT / "bench")

    def matchmaker(self, *extra: str) -> str:
        port = free_port()
        self.pygase("matchmaker", "--redis", self.url, "--secret-key-file", str(self.key),
                    "--host", "127.0.0.1", "--port", str(port), *extra,
                    ready="matchmaker listening")
        return f"http://127.0.0.1:{port}"

    def nodes(self, workers: int) -> subprocess.Popen[str]:
        while True:
            port = free_port(socket.SOCK_DGRAM)
            if workers == 1 or all(_udp_free(port + i) for i in range(1, workers)):
                break
        parent = self.pygase(
            "node", "cluster:make_server", "--redis", self.url, "--secret-key-file",
            str(self.key), "--host", "127.0.0.1", "--port", str(port), "--public-address",
            f"127.0.0.1:{port}", "--workers", str(workers), ready="serving on UDP port")
        if workers > 1:  # the first worker said so; wait for the others too
            assert parent.stdout is not None
            for _ in range(workers - 1):
                while "serving on UDP port" not in parent.stdout.readline():
                    pass
        return parent

    def stop(self, process: subprocess.Popen[str]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def close(self) -> None:
        for process in reversed(self.processes):
            self.stop(process)
        shutil.rmtree(self.directory, ignore_errors=True)


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def matchmaking_latency(url: str, rate: float, seconds: float) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    failures: dict[int, int] = {}
    count = int(rate * seconds)
    async with aiohttp.ClientSession() as session:
        async def one() -> None:
            started = time.perf_counter()
            async with session.post(f"{url}/matchmake/join_or_create/bench", json={}) as answer:
                await answer.read()
                if answer.status != 200:
                    failures[answer.status] = failures.get(answer.status, 0) + 1
                    return
            latencies.append(time.perf_counter() - started)

        loop = asyncio.get_running_loop()
        start = loop.time() + 0.1
        tasks = []
        for index in range(count):
            delay = start + index / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one()))
        sent_for = loop.time() - start
        await asyncio.gather(*tasks)
    return {
        "requests": count,
        "rate_sent": round(count / sent_for, 1) if sent_for > 0 else None,
        "ok": len(latencies),
        "failures": failures,
        "p50_ms": round(1000 * percentile(latencies, 50), 2),
        "p99_ms": round(1000 * percentile(latencies, 99), 2),
        "max_ms": round(1000 * max(latencies), 2) if latencies else None,
    }


class AgeRecorder:
    """A plugin: the age of every state a client applies, while recording."""

    def __init__(self) -> None:
        self.recording = False
        self.ages: list[float] = []

    @hookimpl
    def pygase_state_changed(self, client: Client, game_state: Any, time_order: int) -> None:
        if self.recording:
            stamp = getattr(game_state, "server_time", None)
            if isinstance(stamp, float):
                self.ages.append(time.time() - stamp)


async def capacity_step(url: str, clients: int, window: float, pids: list[int],
                        others: list[int]) -> dict[str, Any]:
    """One client count: join them all, then time the states they apply.

    ``pids`` are the nodes' processes; ``others`` the rest of the cluster (Redis, the
    matchmaker), left out of the machine's "other load".
    """
    import pluggy

    from pygase_core.plugins import PROJECT_NAME, PygaseHookSpecs

    recorder = AgeRecorder()
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(PygaseHookSpecs)
    manager.register(recorder)
    gate = asyncio.Semaphore(32)
    made: list[tuple[Client, asyncio.Task[None]]] = []

    async def join() -> None:
        async with gate:
            client = Client(plugin_manager=manager, connect_timeout=30.0, timeout=5.0)
            task = asyncio.ensure_future(client.connect_async(matchmaker=url, room="bench"))
            made.append((client, task))
            while client.room_id is None:
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)

    started = time.monotonic()
    await asyncio.gather(*(join() for _ in range(clients)))
    joined_in = time.monotonic() - started
    await asyncio.sleep(1.0)
    cpu_before = sum(cpu_of(pid) for pid in pids)
    ours_before = sum(cpu_of(pid) for pid in others)
    own_before = time.process_time()
    busy_before = busy_cores_seconds()
    wall_before = time.monotonic()
    recorder.recording = True
    await asyncio.sleep(window)
    recorder.recording = False
    wall = time.monotonic() - wall_before
    node_cpu = (sum(cpu_of(pid) for pid in pids) - cpu_before) / wall
    bots_cpu = (time.process_time() - own_before) / wall
    ours = (sum(cpu_of(pid) for pid in others) - ours_before) / wall
    other_load = (busy_cores_seconds() - busy_before) / wall - node_cpu - bots_cpu - ours
    for client, _task in made:
        await client.disconnect_async()
    await asyncio.gather(*(task for _, task in made), return_exceptions=True)
    ages = recorder.ages
    return {
        "clients": clients,
        "rooms": len({client.room_id for client, _ in made}),
        "joined_in_s": round(joined_in, 2),
        "age_p50_ms": round(1000 * percentile(ages, 50), 1),
        "age_p99_ms": round(1000 * percentile(ages, 99), 1),
        "states": len(ages),
        "nodes_cpu_cores": round(node_cpu, 2),
        "bots_cpu_cores": round(bots_cpu, 2),
        "other_load_cores": round(max(0.0, other_load), 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": {"cores": os.cpu_count()}}
    stack = Stack()
    try:
        node = stack.nodes(1)
        url = stack.matchmaker("--token-expiry", "2")
        results["latency"] = asyncio.run(matchmaking_latency(url, args.rate, args.seconds))
        results["latency"]["rate"] = args.rate
        print("latency:", results["latency"], flush=True)
        stack.stop(node)
        url = stack.matchmaker()
        for workers in (1, 2):
            parent = stack.nodes(workers)
            pids = children_of(parent.pid) if workers > 1 else [parent.pid]
            time.sleep(1.5)  # every worker registered
            steps = []
            for clients in args.steps:
                others = [p.pid for p in stack.processes if p.pid not in pids and p is not parent]
                step = asyncio.run(capacity_step(url, clients, args.window, pids, others))
                print(f"workers {workers}:", step, flush=True)
                steps.append(step)
                if not step["age_p99_ms"] <= AGE_LIMIT_MS:
                    break
                if clients != args.steps[-1]:
                    time.sleep(2.0)  # the rooms go, the seats free
            within = [s["clients"] for s in steps if s["age_p99_ms"] <= AGE_LIMIT_MS]
            results[f"workers_{workers}"] = {
                "steps": steps, "capacity": max(within) if within else 0,
            }
            stack.stop(parent)
    finally:
        stack.close()
    return results


def table(results: dict[str, Any]) -> str:
    latency = results["latency"]
    lines = [
        "| figure | value |",
        "| --- | --- |",
        f"| matchmaking at {latency['rate']:g} req/s ({latency['requests']} requests, "
        f"{latency['ok']} answered 200) | p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms |",
    ]
    for workers in (1, 2):
        entry = results[f"workers_{workers}"]
        lines.append(
            f"| capacity, {workers} node worker{'s' if workers > 1 else ''} (p99 state age"
            f" <= {AGE_LIMIT_MS:g} ms) | {entry['capacity']} clients |")
    lines += [
        "",
        "| workers | clients | rooms | age p50 / p99 | nodes CPU | bots CPU | other load |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for workers in (1, 2):
        for step in results[f"workers_{workers}"]["steps"]:
            lines.append(
                f"| {workers} | {step['clients']} | {step['rooms']} | {step['age_p50_ms']} /"
                f" {step['age_p99_ms']} ms | {step['nodes_cpu_cores']} cores |"
                f" {step['bots_cpu_cores']} cores | {step['other_load_cores']} cores |")
    return "\n".join(lines)


def update_readme(results: dict[str, Any]) -> None:
    readme = ROOT / "bench" / "README.md"
    text = readme.read_text()
    block = f"<!-- cluster:start -->\n{table(results)}\n<!-- cluster:end -->"
    if "<!-- cluster:start -->" in text:
        text = re.sub(r"<!-- cluster:start -->.*<!-- cluster:end -->", block, text,
                      flags=re.DOTALL)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--steps", default="50,100,150,200,250,300,400,500,600")
    parser.add_argument("--json", default=str(ROOT / "bench" / "cluster_results.json"))
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    args.steps = [int(step) for step in args.steps.split(",")]
    results = run(args)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    if args.update_readme:
        update_readme(results)


if __name__ == "__main__":
    main()
