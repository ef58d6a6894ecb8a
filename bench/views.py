"""bench: bytes per client-second with declared precision and per-client views.

One command, from a checkout with the development environment (``bash tools/setup.sh dev``)::

    .venv/bin/python bench/views.py            # 5-second windows, about a minute
    .venv/bin/python bench/views.py --seconds 2
    .venv/bin/python bench/views.py --cpu     # also the server's protocol CPU, sans-IO
    .venv/bin/python bench/views.py --cpu --cpu-repeats 5 --only "500 views"  # min and median
    .venv/bin/python bench/views.py --no-colyseus   # without Node's Colyseus rows

Each scenario runs a real ``Server`` in a child process (this file with ``--serve``), whose
thread pushes one update per tick at 50 Hz, and real ``Client`` s spread over two more child
processes (``--clients``; ``--client-processes N`` to choose), each on one event loop of the
kind pygase picks (uvloop with the fast extra). The server's child counts the bytes and
datagrams its server sends (at pygase's datagram endpoint) and its CPU time (``os.times``)
over a window all sides share.

* ``default``, ``float32``, ``precision 0.01``: the usual scenario of bench/run.py, 100 entities
  (``[x, y]`` lists) all moving every tick in a 100 x 100 box, 10 clients.
* ``500 no views`` and ``500 views``: 500 entities on random walks in a 100 x 100 box, 40
  clients; with views, a ``GridView`` of cells of 10.5 and a radius of one cell, around the
  client's own entity: 3 x 3 cells, a tenth of the box (less near its edges).

At the end of each scenario the ticking stops and every client's state must equal the server's
(filtered by its view), value for value: the figures are for exact synchronisation.

Then, when ``node`` is on PATH (``--colyseus`` / ``--no-colyseus`` to choose), the same
positions go to bench/colyseus/schema_bytes.js, which measures Colyseus's schema patches of
them (``colyseus_rows``), so one run prints both side by side; naia's row is computed from its
published claim.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TICK_RATE = 50.0
SIZE = 100.0
CELL = 10.5

SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {"entities": 100, "clients": 10, "precision": None, "views": False},
    "float32": {"entities": 100, "clients": 10, "precision": "float32", "views": False},
    "precision 0.01": {"entities": 100, "clients": 10, "precision": 0.01, "views": False},
    "500 no views": {"entities": 500, "clients": 40, "precision": None, "views": False},
    "500 views": {"entities": 500, "clients": 40, "precision": None, "views": True},
}


# -- the server process ---------------------------------------------------------------------------


class Motion:
    """The scenario's positions tick by tick, from a seeded generator.

    Up to 100 entities bounce in the box at constant speeds (the usual scenario); more take
    random walks. The pygase server and the Colyseus encoder (``colyseus_rows``) are fed the
    very same positions.
    """

    def __init__(self, count: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.walk = count > 100
        self._positions = [[self.rng.uniform(0, SIZE), self.rng.uniform(0, SIZE)]
                           for _ in range(count)]
        self.velocities = [[self.rng.uniform(-20, 20), self.rng.uniform(-20, 20)]
                           for _ in range(count)]

    def positions(self) -> list[list[float]]:
        """A copy of every entity's ``[x, y]``."""
        return [[x, y] for x, y in self._positions]

    def step(self) -> list[list[float]]:
        """Moves every entity by one tick (1/50 s) and returns the new positions."""
        interval = 1 / TICK_RATE
        for position, velocity in zip(self._positions, self.velocities, strict=True):
            for axis in (0, 1):
                if self.walk:
                    velocity[axis] = self.rng.uniform(-10, 10)
                value = position[axis] + velocity[axis] * interval
                if not 0.0 <= value <= SIZE:
                    velocity[axis] = -velocity[axis]
                    value = min(max(value, 0.0), SIZE)
                position[axis] = value
        return self.positions()


class Counter:
    """Bytes and datagrams the server sends, counted at pygase's datagram endpoint.

    (Not at ``socket.socket.sendto``: uvloop, the fast extra, sends without Python's socket.)
    """

    def __init__(self) -> None:
        from pygase_core.edge.driver import DatagramEndpoint

        self.bytes = 0
        self.datagrams = 0
        original = DatagramEndpoint.send_all
        counter = self

        def send_all(endpoint: Any, out: Any, connected: bool) -> None:
            out = list(out)
            counter.bytes += sum(len(data) for data, _address in out)
            counter.datagrams += len(out)
            original(endpoint, out, connected)

        DatagramEndpoint.send_all = send_all  # type: ignore[method-assign]


def serve(name: str) -> None:
    sys.path.insert(0, str(ROOT))
    from pygase_core import GameState, GameStateStore, GameStateUpdate, Server
    from pygase_core.model.views import GridView

    scenario = SCENARIOS[name]
    counter = Counter()
    motion = Motion(scenario["entities"])
    precision = scenario["precision"]
    store = GameStateStore(
        GameState(entities=dict(enumerate(motion.positions())), t=0.0),
        precision=None if precision is None else {"entities": precision},
    )
    own: dict[Any, int] = {}
    views = None
    if scenario["views"]:
        views = [GridView("entities", cell_size=CELL, radius=CELL, entity=own.get)]
    server = Server(store, max_clients=64, host_client=None, views=views)
    server.on_client_joined(lambda address: own.__setitem__(address, len(own) * 12))
    server.run_in_thread(port=0, hostname="127.0.0.1")
    ticking = threading.Event()
    ticking.set()
    stop = threading.Event()
    ticks = [0]

    def tick() -> None:
        interval = 1 / TICK_RATE
        start = time.monotonic()
        while not stop.is_set():
            ticks[0] += 1
            delay = start + ticks[0] * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if not ticking.is_set():
                continue
            store.push_update(GameStateUpdate(
                store.time_order + 1, entities=dict(enumerate(motion.step())),
                t=round(time.monotonic() - start, 3),
            ))

    threading.Thread(target=tick, daemon=True).start()
    print(f"READY {server.port}", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "mark":
            cpu = os.times()
            print("MARK " + json.dumps({
                "cpu": cpu.user + cpu.system, "bytes": counter.bytes,
                "datagrams": counter.datagrams, "ticks": ticks[0], "wall": time.time(),
                "clients": len(server.connections),
            }), flush=True)
        elif command == "pause":
            ticking.clear()
            print("PAUSED", flush=True)
        elif command == "state":
            with store.lock:
                state = store.get_game_state()
                seen = {}
                for address, key in own.items():
                    seen[f"{address[0]}:{address[1]}"] = key
                print("STATE " + json.dumps({
                    "time_order": state.time_order,
                    "entities": {str(k): v for k, v in state.entities.items()},
                    "own": seen,
                }), flush=True)
        elif command == "quit":
            break
    stop.set()
    server.shutdown()


# -- the orchestrator -----------------------------------------------------------------------------


def visible(entities: dict[str, list[float]], own: str) -> dict[str, list[float]]:
    cx, cy = (math.floor(c / CELL) for c in entities[own])
    return {
        key: p for key, p in entities.items()
        if abs(math.floor(p[0] / CELL) - cx) <= 1 and abs(math.floor(p[1] / CELL) - cy) <= 1
    }


class Child:
    """A child process of this bench, spoken to in lines on its stdin and stdout."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, *arguments], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
        )
        if os.environ.get("VIEWS_BENCH_DEBUG"):
            print(f"{arguments[:2]} pid {self.process.pid}", file=sys.stderr, flush=True)

    def send(self, command: str) -> None:
        assert self.process.stdin
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def answer(self, prefix: str) -> str:
        assert self.process.stdout
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"a bench child ended before answering {prefix.strip()}")
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    def ask(self, command: str, prefix: str) -> str:
        self.send(command)
        return self.answer(prefix)

    def close(self) -> None:
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def measure(name: str, seconds: float, warmup: float = 2.0, processes: int = 2) -> dict[str, Any]:
    """One scenario: its server in one child, its clients spread over ``processes`` others.

    Each client process runs its share of real ``Client`` s on one event loop, as a game's
    process would run one; spreading them lets the clients of the 500-entity run without views,
    which each apply an 11 kB delta 50 times a second, use the second core.
    """
    scenario = SCENARIOS[name]
    server = Child("--serve", name)
    workers: list[Child] = []
    try:
        port = server.answer("READY ")
        count = scenario["clients"]
        shares = [count // processes + (i < count % processes) for i in range(processes)]
        workers = [Child("--clients", name, port, str(n)) for n in shares if n]
        for worker in workers:
            worker.answer("CONNECTED")
        time.sleep(warmup)
        for worker in workers:
            worker.send("count")
        start = json.loads(server.ask("mark", "MARK "))
        applied = sum(int(worker.answer("COUNT ")) for worker in workers)
        time.sleep(seconds)
        for worker in workers:
            worker.send("count")
        end = json.loads(server.ask("mark", "MARK "))
        applied = sum(int(worker.answer("COUNT ")) for worker in workers) - applied
        server.ask("pause", "PAUSED")
        time.sleep(0.5)
        state = server.ask("state", "STATE ")
        for worker in workers:
            worker.send("check " + state)
        exact = all(worker.answer("CHECK ") == "yes" for worker in workers)
        for worker in workers:
            worker.send("quit")
        server.send("quit")
    except BaseException:
        for child in (server, *workers):
            child.process.kill()
        raise
    finally:
        for child in (server, *workers):
            child.close()
    window = end["wall"] - start["wall"]
    count = max(end["clients"], 1)
    ticks = end["ticks"] - start["ticks"]
    sent = end["bytes"] - start["bytes"]
    return {
        "scenario": name,
        "entities": scenario["entities"],
        "clients": count,
        "client_processes": len(workers),
        "bytes_per_client_s": round(sent / count / window),
        "bytes_per_client_tick": round(sent / count / max(ticks, 1)),
        "states_per_client_s": round(applied / count / window, 1),
        "bytes_per_state": round(sent / max(applied, 1)),
        "datagrams_per_client_tick": round((end["datagrams"] - start["datagrams"]) / count
                                           / max(ticks, 1), 2),
        "server_cpu_ms_per_s": round(1000 * (end["cpu"] - start["cpu"]) / window, 1),
        "exact": exact,
    }


async def run_clients(name: str, port: int, count: int) -> None:
    """A client process: ``count`` real Clients on this loop, answering the bench's commands."""
    sys.path.insert(0, str(ROOT))
    from pygase_core import Client
    from pygase_core.plugins import get_plugin_manager, hookimpl

    class Applied:
        """Counts the states the clients apply."""

        count = 0

        @hookimpl
        def pygase_state_changed(self, client: Any, game_state: Any, time_order: int) -> None:
            Applied.count += 1

    manager = get_plugin_manager()
    manager.register(Applied())
    clients = [Client(connect_timeout=20, plugin_manager=manager) for _ in range(count)]
    tasks = [
        asyncio.create_task(client.connect_async(port, hostname="127.0.0.1"))
        for client in clients
    ]
    while not all(client.connection is not None for client in clients):
        await asyncio.sleep(0.05)
    print("CONNECTED", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        command, _, argument = line.strip().partition(" ")
        if command == "count":
            print(f"COUNT {Applied.count}", flush=True)
        elif command == "check":
            if os.environ.get("VIEWS_BENCH_DEBUG"):
                for client in clients:
                    c = client.connection
                    print(c.congestion.good, c.stats.rtt, c.stats.packet_loss,
                          c.applied_time_order, file=sys.stderr)
            exact = await converged(clients, json.loads(argument), SCENARIOS[name]["views"])
            print(f"CHECK {'yes' if exact else 'no'}", flush=True)
        elif command in ("quit", ""):
            break
    for client in clients:
        await client.disconnect_async()
    await asyncio.gather(*tasks, return_exceptions=True)


async def converged(clients: list[Any], server: dict[str, Any], views: bool) -> bool:
    """Whether every client ends with the server's values (by its view), within 5 s."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        ok = True
        for client in clients:
            with client.access_game_state() as state:
                if state.time_order != server["time_order"]:
                    ok = False
                    break
                held = {str(k): list(v) for k, v in state.entities.items()}
            expected = server["entities"]
            if views:
                port = client._driver.sockname[1]
                own = next(k for a, k in server["own"].items() if a.endswith(f":{port}"))
                expected = visible(expected, str(own))
            if held != expected:
                ok = False
                break
        if ok:
            return True
        await asyncio.sleep(0.1)
    return False


# -- server CPU, sans-IO --------------------------------------------------------------------------


def server_cpu(
    views: bool, ticks: int = 150, count: int = 500, viewers: int = 40
) -> dict[str, Any]:
    """The server's protocol work per tick, without sockets: CPU time of its endpoint alone.

    The real ``ServerEndpoint`` and ``ClientEndpoint`` objects exchange their datagrams in
    memory, at a simulated 50 Hz with every client caught up each tick (no loss, 1 ms away), and
    only the server's calls are timed (``time.process_time``), so the figure leaves out the
    clients, the kernel's sockets and the rest of the machine's load.
    """
    sys.path.insert(0, str(ROOT))
    from pygase_core import GameState, GameStateStore, GameStateUpdate
    from pygase_core.model.views import GridView, ViewRules
    from pygase_core.protocol.connection import StateReceived
    from pygase_core.protocol.endpoint import ClientEndpoint, ServerEndpoint
    from pygase_core.protocol.statesync import PayloadCache
    from pygase_core.protocol.viewsync import ViewedWorld

    rng = random.Random(5)
    positions = {i: [rng.uniform(0, SIZE), rng.uniform(0, SIZE)] for i in range(count)}
    store = GameStateStore(GameState(entities={k: list(v) for k, v in positions.items()}))
    cache = PayloadCache(store)
    addresses = [("10.0.0.2", 5000 + i) for i in range(viewers)]
    own = {address: i * 12 for i, address in enumerate(addresses)}
    world = ViewedWorld(cache, ViewRules([
        GridView("entities", cell_size=CELL, radius=CELL, entity=own.get),
    ])) if views else None
    now = 100.0
    server = ServerEndpoint(now, max_clients=64)
    clients = {a: ClientEndpoint(now, server_address=("10.0.0.1", 4000)) for a in addresses}
    states: dict[Any, Any] = {a: GameState() for a in addresses}
    spent = 0.0

    def timed(call: Any, *args: Any) -> Any:
        nonlocal spent
        start = time.process_time()
        result = call(*args)
        spent += time.process_time() - start
        return result

    def deliver(out: list[tuple[bytes, Any]]) -> None:
        for data, address in out:
            client = clients.get(address)
            if client is None:
                continue
            back, notices = client.datagram_received(data, now)
            for notice in notices:
                if isinstance(notice, StateReceived):
                    applied = client.apply_state(notice, states[address])
                    if applied is not None:
                        states[address] = applied
            for datagram in back:
                deliver(timed(server.datagram_received, datagram, address, now)[0])

    for address, client in clients.items():
        for datagram in client.start(now):
            deliver(server.datagram_received(datagram, address, now)[0])
    for address in addresses:
        server.assign_cache(address, world.viewer(lambda a=address: a) if world else cache)
    measured_from = 20
    for tick in range(ticks):
        if tick == measured_from:
            spent = 0.0
        now += 0.02
        for position in positions.values():
            for axis in (0, 1):
                position[axis] = min(max(position[axis] + rng.uniform(-0.2, 0.2), 0.0), SIZE)
        store.push_update(GameStateUpdate(
            store.time_order + 1, entities={k: list(v) for k, v in positions.items()}
        ))
        server.state_changed()
        for _ in range(19):  # flushes, reports, acks and resends, a millisecond apart
            deliver(timed(server.handle_timer, now)[0])
            now += 0.001
            for address, client in clients.items():
                for datagram in client.poll(now)[0]:
                    deliver(timed(server.datagram_received, datagram, address, now)[0])
    behind = sum(states[a].time_order != store.time_order for a in addresses)
    return {
        "views": views,
        "server_cpu_ms_per_tick": round(1000 * spent / (ticks - measured_from), 2),
        "clients_behind_at_end": behind,
    }


def cpu_figures(repeats: int) -> None:
    """Print :func:`server_cpu` without and with views, ``repeats`` times each, alternating.

    With repeats, the minimum and median of each and the ratio of the minima follow: the load
    of a shared machine only ever adds CPU time, so the minimum is the steadiest figure.
    """
    runs: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for views in (False, True):
            result = server_cpu(views)
            print(result, flush=True)
            runs[views].append(result["server_cpu_ms_per_tick"])
    if repeats > 1:
        summary = {
            views: {"min": min(times), "median": round(statistics.median(times), 2)}
            for views, times in runs.items()
        }
        print({
            "server_cpu_ms_per_tick": {"no views": summary[False], "views": summary[True]},
            "views/no views (min)": round(summary[True]["min"] / summary[False]["min"], 3),
        }, flush=True)


# -- Colyseus's schema encoding of the same positions ---------------------------------------------

COLYSEUS = ROOT / "bench" / "colyseus"
COLYSEUS_PUBLISHED = 668
"""Bytes its authors publish for an x/y change of 100 entities; shown beside the measured rows."""
COLYSEUS_ROWS: tuple[tuple[str, int, int, str, bool], ...] = (
    # label, entities, clients, x/y field type, StateView per client
    ("Colyseus schema, `number` x/y", 100, 10, "number", False),
    ("Colyseus schema, `float32` x/y", 100, 10, "float32", False),
    ("Colyseus schema, `float64` x/y", 100, 10, "float64", False),
    ("Colyseus schema, 500 entities, `float64`, no views", 500, 40, "float64", False),
    ("Colyseus schema, 500 entities, `float64`, `StateView`s", 500, 40, "float64", True),
)


def colyseus_unavailable(wanted: bool | None) -> str | None:
    """Why the Colyseus rows cannot be measured, or None once bench/colyseus is installed.

    The install is bench/run.py's (``npm install`` of the pinned package.json, once).
    """
    if wanted is False:
        return "left out (--no-colyseus)"
    from run import ensure_node_modules  # bench/run.py, next to this file

    try:
        if ensure_node_modules(print):
            return None
        return "node and npm are not on PATH"
    except (OSError, subprocess.CalledProcessError) as error:
        return f"npm install in bench/colyseus failed ({error})"


def colyseus_rows(seconds: float, warmup: float) -> list[dict[str, Any]]:
    """Colyseus's patch bytes for this file's scenarios, from bench/colyseus/schema_bytes.js.

    The script gets the very positions the pygase server moves (``Motion``, same seed), one
    JSON line per tick, encodes each tick's patch with @colyseus/schema's ``Encoder`` as a room
    does and decodes it as its clients would; it counts the ticks after ``warmup`` for a window
    of ``seconds`` at 50 Hz. It runs as fast as it can: no clock, no sockets.
    """
    node = shutil.which("node") or "node"
    skip = round(warmup * TICK_RATE)
    ticks = skip + round(seconds * TICK_RATE)
    feeds: dict[int, str] = {}
    results = []
    for label, count, clients, kind, views in COLYSEUS_ROWS:
        if count not in feeds:
            motion = Motion(count)
            lines = [json.dumps(motion.positions())]
            lines += [json.dumps(motion.step()) for _ in range(ticks)]
            feeds[count] = "\n".join(lines) + "\n"
        argv = [node, str(COLYSEUS / "schema_bytes.js"), "--type", kind,
                "--clients", str(clients), "--skip", str(skip)]
        if views:
            argv.append("--views")
        done = subprocess.run(argv, input=feeds[count], capture_output=True, text=True,
                              timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[1:])} failed:\n{done.stderr}")
        results.append({"scenario": label, **json.loads(done.stdout)})
    return results


def colyseus_line(r: dict[str, Any]) -> str:
    """A table row for one of ``colyseus_rows``'s results."""
    label = r["scenario"]
    if r["type"] == "number" and not r["views"]:
        label += f" (its authors publish {COLYSEUS_PUBLISHED} B for 100 entities' x/y)"
    if not r["keys_match"]:
        exact = "NO"
    elif r["max_error"] == 0:
        exact = "yes"
    else:
        exact = f"no: float32, off by up to {r['max_error']:.1e}"
    return (
        f"| {label} | {r['entities']} | {r['clients']} | {r['bytes_per_client_s']:,}"
        f" ({r['ws_bytes_per_client_s']:,} as WebSocket frames) | 50.0"
        f" | {r['bytes_per_client_tick']:,} | {r['messages_per_client_tick']:g} message"
        f" | encode only: {r['encode_cpu_ms_per_tick'] * TICK_RATE:.1f} | {exact} |"
    )


def references(colyseus_measured: bool) -> list[tuple[str, str, str]]:
    """Published figures for the same 100 positions at 50 Hz, computed from their claims."""
    rows = [
        ("naia, 38 to 60 bits per position (its book)",
         f"{100 * 38 / 8 * TICK_RATE:,.0f} to {100 * 60 / 8 * TICK_RATE:,.0f}",
         f"{100 * 38 / 8:,.0f} to {100 * 60 / 8:,.0f}"),
    ]
    if not colyseus_measured:
        rows.insert(0, (
            f"Colyseus schema, {COLYSEUS_PUBLISHED} B per x/y change of 100 entities (published)",
            f"{COLYSEUS_PUBLISHED * TICK_RATE:,.0f}", f"{COLYSEUS_PUBLISHED:,}",
        ))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--clients", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--client-processes", type=int, default=2, metavar="N",
                        help="how many processes the clients are spread over (default 2)")
    parser.add_argument("--seconds", type=float, default=5.0, help="window per scenario")
    parser.add_argument("--only", action="append", help="run only this scenario (repeatable)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each window")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                        help="where views.json goes")
    parser.add_argument("--cpu", action="store_true",
                        help="also time the server's protocol work for 500 entities, sans-IO")
    parser.add_argument("--cpu-repeats", type=int, default=1, metavar="N",
                        help="with --cpu: run each variant N times, alternating, and report the"
                             " minimum and median (the shared machine's load only adds time)")
    parser.add_argument(
        "--colyseus", action=argparse.BooleanOptionalAction, default=None,
        help="measure Colyseus's schema patches of the same positions with Node (default: when"
             " node is on PATH and bench/colyseus installs)",
    )
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if args.clients:
        from pygase_core.edge import loops

        # The clients' loop is the kind a pygase program gets (uvloop with the fast extra).
        name, port, count = args.clients
        loops.run(run_clients(name, int(port), int(count)))
        return 0
    if args.cpu:
        cpu_figures(max(args.cpu_repeats, 1))
    names = args.only or list(SCENARIOS)
    unavailable = colyseus_unavailable(args.colyseus)
    if unavailable is not None and args.colyseus:
        raise SystemExit(f"bench: cannot measure Colyseus: {unavailable}")
    results = [
        measure(name, args.seconds, args.warmup, max(args.client_processes, 1))
        for name in names
    ]
    # After the pygase scenarios, so that Node's work does not share their windows.
    colyseus = [] if unavailable else colyseus_rows(args.seconds, args.warmup)
    head = ["scenario", "entities", "clients", "B/client-s", "states/client-s", "B/state",
            "datagrams/client-tick", "server CPU ms/s", "exact"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        print(f"| {r['scenario']} | {r['entities']} | {r['clients']} | {r['bytes_per_client_s']:,}"
              f" | {r['states_per_client_s']} | {r['bytes_per_state']:,}"
              f" | {r['datagrams_per_client_tick']}"
              f" | {r['server_cpu_ms_per_s']} | {'yes' if r['exact'] else 'NO'} |")
    for r in colyseus:
        print(colyseus_line(r))
    for label, per_second, per_tick in references(bool(colyseus)):
        print(f"| {label} | 100 | | {per_second} | | {per_tick} | | | |")
    if unavailable is not None:
        print(f"Colyseus not measured: {unavailable}")
    out = args.out / "views.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(
        {"results": results, "colyseus": colyseus, "seconds": args.seconds}, indent=1
    ))
    ok = all(r["exact"] for r in results) and all(r["keys_match"] for r in colyseus)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
