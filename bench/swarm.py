"""The bench's client process: a swarm of bots for pygase, PyGaSe 0.3.1 or mpgameserver.

pygase's swarm is :class:`pygase_core.tools.bots.BotSwarm` itself. PyGaSe 0.3.1 has no such
thing, so this file runs its ``Client``s the closest way it offers: each ``connect`` coroutine
as a task on one shared curio kernel, read by one frame task, like the pygase swarm on its
asyncio loop. mpgameserver's clients are polled by one loop (see :func:`run_mpgameserver`).
All feed the same :class:`~pygase_core.tools.bots.BotProbe`, so the arithmetic is identical.

The window is given as wall-clock times, so that every swarm process of a run and the
orchestrator's readings of the server cover the same span. The process prints one line,
``RESULT {json}``, with its raw observations and its own CPU time over the window.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # pygase_core for the peer's venv

from pygase_core.tools.bots import BotProbe, BotSwarm


def cpu_seconds() -> float:
    """User plus system CPU time of this process, as the OS accounts it."""
    times = os.times()
    return times.user + times.system


def probe_data(probe: BotProbe) -> dict[str, Any]:
    """A probe's observations as JSON-ready data (times rounded to microseconds)."""
    return {
        "bot_id": probe.bot_id,
        "ages": [round(a, 6) for a in probe.ages],
        "round_trips": [round(r, 6) for r in probe.round_trips],
        "frames": probe.frames,
        "frames_without_time": probe.frames_without_time,
        "versions": probe.versions,
        "states": probe.states,
        "events_sent": probe.events_sent,
        "events_echoed": probe.events_echoed,
    }


def run_pygase(args: argparse.Namespace) -> dict[str, Any]:
    cpu: dict[str, float] = {}

    def on_window(edge: str) -> None:
        cpu[edge] = cpu_seconds()

    swarm = BotSwarm(
        args.host,
        args.port,
        args.count,
        rate=args.rate,
        frame_rate=args.frame_rate,
        time_attribute="t",
        epoch=args.epoch,
        echo_attribute="echo",
        first_id=args.first_id,
        connect_timeout=10.0,
        seed=args.first_id + 1,
    )
    report = swarm.run(args.end_at - args.start_at, on_window=on_window, start_at=args.start_at)
    return {
        "connected": report.connected,
        "errors": report.errors,
        "window": report.seconds,
        "cpu": cpu.get("end", 0.0) - cpu.get("start", 0.0),
        "probes": [probe_data(p) for p in report.probes],
    }


def run_peer(args: argparse.Namespace) -> dict[str, Any]:
    """PyGaSe 0.3.1's clients on one curio kernel in a thread, read from the main thread.

    That is how its API is meant to be used (the game reads the state from its own thread), and
    it is the only way that works: its client takes the state lock through ``curio.abide``,
    which releases it only after an await, so a reader on the kernel's own thread could block
    the kernel while it holds the lock.
    """
    import curio
    from pygase import Client
    from pygase.connection import ConnectionStatus

    connected_status = ConnectionStatus.get("Connected")
    clients = [Client() for _ in range(args.count)]
    probes = [BotProbe(args.first_id + i, "t", "echo", args.epoch) for i in range(args.count)]
    count_states(clients, probes)
    stop = threading.Event()
    result: dict[str, Any] = {"errors": []}

    async def serve(client: Any) -> None:
        await client.connect(args.port, args.host)

    async def kernel_main() -> None:
        tasks = [await curio.spawn(serve, client) for client in clients]
        while not stop.is_set():
            await curio.sleep(0.05)
        for client in clients:
            if client.connection is not None:
                await client.disconnect()
        for task in tasks:
            await task.cancel()

    kernel = threading.Thread(target=curio.run, args=(kernel_main,), daemon=True)
    kernel.start()

    def is_connected(client: Any) -> bool:
        return client.connection is not None and client.connection.status == connected_status

    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and not all(is_connected(c) for c in clients):
        time.sleep(0.01)
    live = [(c, p) for c, p in zip(clients, probes, strict=True) if is_connected(c)]
    result["connected"] = len(live)
    if len(live) < len(clients):
        result["errors"].append(f"{len(clients) - len(live)} bot(s): no state within 10 s")
    rng = random.Random(args.first_id + 1)
    gap = 1.0 / args.rate if args.rate > 0 else math.inf
    frame = 1.0 / args.frame_rate
    start = time.perf_counter()
    next_event = [start + rng.uniform(0.0, min(gap, 1.0)) for _ in live]
    recording = False
    cpu_start = window_start = 0.0
    next_frame = time.perf_counter()
    while True:
        wall = time.time()
        if not recording and wall >= args.start_at:
            recording = True
            cpu_start, window_start = cpu_seconds(), time.perf_counter()
            for _, probe in live:
                probe.recording = True
        if wall >= args.end_at:
            break
        now = time.perf_counter()
        for index, (client, probe) in enumerate(live):
            with client.access_game_state() as state:
                probe.observe(state, time.time(), time.perf_counter())
            if now >= next_event[index]:
                next_event[index] += gap
                if next_event[index] < now:
                    next_event[index] = now + gap
                sequence = probe.next_event(time.perf_counter())
                client.dispatch_event("BOT_INPUT", probe.bot_id, sequence)
        next_frame += frame
        delay = next_frame - time.perf_counter()
        if delay < -frame:
            next_frame = time.perf_counter()
            delay = 0.0
        time.sleep(max(delay, 0.0))
    result["cpu"] = cpu_seconds() - cpu_start
    result["window"] = time.perf_counter() - window_start
    for _, probe in live:
        probe.stop_recording()
    result["probes"] = [probe_data(probe) for _, probe in live]
    stop.set()
    kernel.join(5.0)
    return result


class _MpgView:
    """What a bot has seen of the mpgameserver state, shaped as the probe reads a state."""

    def __init__(self) -> None:
        self.time_order = 0
        self.t: float | None = None
        self.echo: dict[int, int] = {}


def run_mpgameserver(args: argparse.Namespace) -> dict[str, Any]:
    """mpgameserver's ``UdpClient``s, all driven by one loop in this thread, as its API intends.

    Its client is polled: ``update()`` sends what is due and reads at most one datagram, so
    each frame calls it until the socket has nothing more to read (a state of two datagrams a
    tick would otherwise queue up behind one read per frame). Each message from the server is
    one tick's changes, msgpack-encoded by the bench's server: the entities, ``t`` and the
    echoes of that tick.
    """
    import select

    import msgpack  # type: ignore[import-untyped]
    from mpgameserver import RetryMode, UdpClient  # type: ignore[import-not-found]

    bots = [UdpClient() for _ in range(args.count)]
    views = [_MpgView() for _ in bots]
    probes = [BotProbe(args.first_id + i, "t", "echo", args.epoch) for i in range(args.count)]
    result: dict[str, Any] = {"errors": []}
    for bot in bots:
        bot.connect((args.host, args.port))

    def pump(index: int) -> None:
        bot, view, probe = bots[index], views[index], probes[index]
        while True:
            bot.update()
            for _seq, message in bot.getMessages():
                changes = msgpack.unpackb(message, strict_map_key=False)
                view.time_order += 1
                view.t = changes["t"]
                view.echo.update(changes.get("echo", {}))
                probe.state_received()
            if bot.conn is None or not select.select([bot.sock], [], [], 0)[0]:
                return

    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and not all(v.t is not None for v in views):
        for index in range(len(bots)):
            pump(index)
        time.sleep(0.002)
    live = [i for i, view in enumerate(views) if view.t is not None]
    result["connected"] = len(live)
    if len(live) < len(bots):
        result["errors"].append(f"{len(bots) - len(live)} bot(s): no state within 10 s")
    rng = random.Random(args.first_id + 1)
    gap = 1.0 / args.rate if args.rate > 0 else math.inf
    frame = 1.0 / args.frame_rate
    start = time.perf_counter()
    next_event = {i: start + rng.uniform(0.0, min(gap, 1.0)) for i in live}
    recording = False
    cpu_start = window_start = 0.0
    next_frame = time.perf_counter()
    while True:
        wall = time.time()
        if not recording and wall >= args.start_at:
            recording = True
            cpu_start, window_start = cpu_seconds(), time.perf_counter()
            for index in live:
                probes[index].recording = True
        if wall >= args.end_at:
            break
        now = time.perf_counter()
        for index in live:
            pump(index)
            probe = probes[index]
            probe.observe(views[index], time.time(), time.perf_counter())
            if now >= next_event[index]:
                next_event[index] += gap
                if next_event[index] < now:
                    next_event[index] = now + gap
                sequence = probe.next_event(time.perf_counter())
                bots[index].send(
                    msgpack.packb([probe.bot_id, sequence]), retry=RetryMode.RETRY_ON_TIMEOUT
                )
        next_frame += frame
        delay = next_frame - time.perf_counter()
        if delay < -frame:
            next_frame = time.perf_counter()
            delay = 0.0
        time.sleep(max(delay, 0.0))
    result["cpu"] = cpu_seconds() - cpu_start
    result["window"] = time.perf_counter() - window_start
    for index in live:
        probes[index].stop_recording()
    result["probes"] = [probe_data(probes[index]) for index in live]
    for index in live:
        bots[index].disconnect()
    return result


def count_states(clients: list[Any], probes: list[BotProbe]) -> None:
    """Tell each probe when its PyGaSe 0.3.1 client applied a state update.

    Every package from its server carries one update, which ``ClientConnection._recv`` applies;
    wrapping that method is the only way to see it from outside.
    """
    from pygase.connection import ClientConnection

    by_connection: dict[int, BotProbe] = {}
    original = ClientConnection._recv

    async def counting_recv(connection: Any, package: Any) -> None:
        await original(connection, package)
        probe = by_connection.get(id(connection))
        if probe is None:
            for client, candidate in zip(clients, probes, strict=True):
                if client.connection is connection:
                    by_connection[id(connection)] = probe = candidate
        if probe is not None:
            probe.state_received()

    ClientConnection._recv = counting_recv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("pygase", "peer", "mpgameserver"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first-id", type=int, default=0)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--frame-rate", type=float, default=60.0)
    parser.add_argument("--epoch", type=float, required=True)
    parser.add_argument("--start-at", type=float, required=True, help="window start, time.time()")
    parser.add_argument("--end-at", type=float, required=True, help="window end, time.time()")
    args = parser.parse_args(argv)
    runners = {"pygase": run_pygase, "peer": run_peer, "mpgameserver": run_mpgameserver}
    result = runners[args.impl](args)
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)  # PyGaSe 0.3.1's client threads would keep the process alive


if __name__ == "__main__":
    raise SystemExit(main())
