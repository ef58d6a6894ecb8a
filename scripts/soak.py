"""A soak test: many bot clients on one server for a long time; does anything leak or drop?

Not part of CI. The server (the demo game: moving entities and a ``BOOST`` event) runs in its
own process, so its memory is measured alone; the bots run as :class:`~pygase_core.Client`
objects in this process. Every bot sends an event with retries about once a second and reads
the state. At the end the script prints:

* the server's resident memory after the warm-up and at the end, and the growth between them;
* connections lost: bots that were disconnected at any point, and the server's count of clients;
* events dispatched and acknowledged, and the bots' mean RTT and loss.

It reads memory from ``/proc``, so it runs on Linux.

    python scripts/soak.py                          # 100 bots for 10 minutes
    python scripts/soak.py --clients 30 --seconds 60
    python scripts/soak.py --link average           # every bot on a simulated average link

It exits with status 1 if a connection was lost or the server's memory grew by more than
``--max-growth`` percent (10 by default).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def serve(entities: int, clients: int) -> None:
    """The server process: serve the demo game and report once a second on stdout."""
    from pygase_core.tools.demo import make_backend

    backend = make_backend(entities, max_clients=max(64, clients))
    backend.run_in_thread()
    server = backend.server
    print(json.dumps({"port": server.port}), flush=True)
    try:
        while True:
            time.sleep(1.0)
            print(
                json.dumps(
                    {
                        "connections": len(server.connections),
                        "rss": rss_bytes(os.getpid()),
                        "drops": sum(server.drops.values()),
                        "time_order": backend.game_state_store.time_order,
                    }
                ),
                flush=True,
            )
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        backend.shutdown()


class Bot:
    """One client that boosts about once a second and counts what happens to it."""

    def __init__(self, number: int, port: int, link: str | None) -> None:
        from pygase_core import Client

        self.number = number
        self.client = Client(link=link)
        self.client.connect_in_thread(port)
        self.dispatched = 0
        self.acked = 0
        self.lost_connection = False
        self.last_seen = 0
        self._lock = threading.Lock()

    def _ack(self) -> None:
        with self._lock:
            self.acked += 1

    def tick(self) -> None:
        from pygase_core import ClientStatus, NotConnectedError

        if self.client.status is not ClientStatus.CONNECTED:
            self.lost_connection = True
            return
        try:
            self.client.dispatch_event("BOOST", 0.0, retries=3, ack_callback=self._ack)
            self.dispatched += 1
        except NotConnectedError:  # it went between the check and the call
            self.lost_connection = True
        with self.client.access_game_state() as state:  # read, as a game would
            self.last_seen = state.time_order


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds before the first memory figure (default: 10%% of the run)")
    parser.add_argument("--entities", type=int, default=20)
    parser.add_argument("--link", default=None, help="link conditions for every bot")
    parser.add_argument("--max-growth", type=float, default=10.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.entities, args.clients)
        return 0

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--entities", str(args.entities),
         "--clients", str(args.clients)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    port = json.loads(server.stdout.readline())["port"]
    reports: list[dict[str, Any]] = []

    def read_reports() -> None:
        assert server.stdout is not None
        for line in server.stdout:
            reports.append(json.loads(line))

    threading.Thread(target=read_reports, daemon=True).start()
    started = time.monotonic()
    bots = [Bot(number, port, args.link) for number in range(args.clients)]
    joined = time.monotonic() - started
    print(f"{args.clients} bots joined in {joined:.1f} s; running for {args.seconds:.0f} s",
          flush=True)
    warmup = args.warmup if args.warmup is not None else args.seconds / 10
    rss_after_warmup: int | None = None
    own_rss_after_warmup = 0
    second = 0
    run_started = time.monotonic()
    try:
        while time.monotonic() - run_started < args.seconds:
            time.sleep(1.0)
            second += 1
            for bot in bots:
                bot.tick()
            if rss_after_warmup is None and time.monotonic() - run_started >= warmup:
                rss_after_warmup = rss_bytes(server.pid)
                own_rss_after_warmup = rss_bytes(os.getpid())
            if second % 30 == 0 and reports:
                latest = reports[-1]
                print(f"  {second:5d} s: server {latest['connections']} clients, "
                      f"RSS {latest['rss'] / 2**20:.1f} MiB", flush=True)
        rss_end = rss_bytes(server.pid)
        own_rss_end = rss_bytes(os.getpid())
        server_clients = reports[-1]["connections"] if reports else -1
        lost = sum(bot.lost_connection for bot in bots)
        stats = [bot.client.stats for bot in bots if bot.client.stats is not None]
        rtts = [s.rtt for s in stats if s.rtt is not None]
        dispatched = sum(bot.dispatched for bot in bots)
        time.sleep(2.0)  # the last events' acks
        acked = sum(bot.acked for bot in bots)
    finally:
        for bot in bots:
            bot.client.disconnect()
        server.terminate()
        server.wait(10)
    assert rss_after_warmup is not None
    growth = 100.0 * (rss_end - rss_after_warmup) / rss_after_warmup
    own_growth = 100.0 * (own_rss_end - own_rss_after_warmup) / own_rss_after_warmup
    peak = max(r["rss"] for r in reports) if reports else rss_end
    print(f"soak: {args.clients} bots, {args.seconds:.0f} s"
          + (f", link {args.link!r}" if args.link else ""))
    print(f"  server RSS after {warmup:.0f} s warm-up {rss_after_warmup / 2**20:.1f} MiB, at the "
          f"end {rss_end / 2**20:.1f} MiB: growth {growth:+.1f} % (peak {peak / 2**20:.1f} MiB)")
    print(f"  bots' process RSS growth {own_growth:+.1f} %")
    print(f"  connections lost: {lost} of {args.clients} bots; the server has {server_clients} "
          "clients at the end")
    print(f"  events: {dispatched} dispatched, {acked} acknowledged")
    if rtts:
        print(f"  mean RTT {1000 * statistics.fmean(rtts):.1f} ms, mean loss "
              f"{100 * statistics.fmean(s.packet_loss for s in stats):.2f} %")
    ok = lost == 0 and server_clients == args.clients and growth <= args.max_growth
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
