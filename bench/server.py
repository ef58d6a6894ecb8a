"""The bench's server process: one scenario, served by pygase or by PyGaSe 0.3.1.

Both implementations are driven the same way, through the API they share: a ``GameStateStore``
whose updates a thread pushes at a fixed rate, served by ``Server.run_in_thread``, with an event
wire that collects the bots' input events for the next tick to echo. (PyGaSe 0.3.1's own game
loop never sleeps, so it cannot set the pace; its loop is measured separately by loopcheck.py.)

Every tick moves every entity and stamps the state with the tick's time in seconds since the
bench's epoch, which the bots compare with their own clock. PyGaSe 0.3.1 packs floats as
float32, so the stamp is kept small (relative to the epoch) to stay precise.

The process talks to the orchestrator over stdin/stdout: it prints ``READY <port>``, answers
``mark LABEL`` with ``MARK LABEL {json}`` (its CPU time from the OS, bytes and datagrams through
its socket, ticks), and ``quit`` ends it. PyGaSe 0.3.1's datagrams are counted by wrapping the
socket class's send and receive methods; pygase's at its datagram endpoint, because uvloop (the
fast extra) sends without going through Python's socket class.

This file runs under both virtual environments, so it imports pygase only for its ``--impl``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import socket
import sys
import threading
import time
from typing import Any


class SocketCounter:
    """Bytes and datagrams through every socket of this process (the server's is the only one)."""

    def __init__(self) -> None:
        self.bytes_out = 0
        self.datagrams_out = 0
        self.bytes_in = 0
        self.datagrams_in = 0

    def install(self) -> None:
        """Wrap ``socket.socket``'s datagram methods; asyncio and curio both call them."""
        counter = self
        original_sendto = socket.socket.sendto
        original_recvfrom = socket.socket.recvfrom
        original_recvfrom_into = socket.socket.recvfrom_into

        def sendto(sock: socket.socket, data: Any, *args: Any) -> int:
            sent = original_sendto(sock, data, *args)
            counter.bytes_out += len(data)
            counter.datagrams_out += 1
            return sent

        def recvfrom(sock: socket.socket, *args: Any) -> Any:
            result = original_recvfrom(sock, *args)
            counter.bytes_in += len(result[0])
            counter.datagrams_in += 1
            return result

        def recvfrom_into(sock: socket.socket, *args: Any) -> Any:
            result = original_recvfrom_into(sock, *args)
            counter.bytes_in += result[0]
            counter.datagrams_in += 1
            return result

        socket.socket.sendto = sendto  # type: ignore[assignment,method-assign]
        socket.socket.recvfrom = recvfrom  # type: ignore[method-assign]
        socket.socket.recvfrom_into = recvfrom_into  # type: ignore[method-assign]

    def install_pygase(self) -> None:
        """Count at pygase's datagram endpoint instead: uvloop sends without ``socket.socket``."""
        from pygase_core.edge.driver import DatagramEndpoint

        counter = self
        original_send_all = DatagramEndpoint.send_all
        original_received = DatagramEndpoint.datagram_received

        def send_all(endpoint: Any, out: Any, connected: bool) -> None:
            out = list(out)
            counter.bytes_out += sum(len(data) for data, _address in out)
            counter.datagrams_out += len(out)
            original_send_all(endpoint, out, connected)

        def datagram_received(endpoint: Any, data: bytes, addr: Any) -> None:
            counter.bytes_in += len(data)
            counter.datagrams_in += 1
            original_received(endpoint, data, addr)

        DatagramEndpoint.send_all = send_all  # type: ignore[method-assign]
        DatagramEndpoint.datagram_received = datagram_received  # type: ignore[method-assign]


class World:
    """The scenario: entities bouncing in a box, every one moving every tick."""

    SIZE = 100.0

    def __init__(self, entities: int, seed: int = 3) -> None:
        rng = random.Random(seed)
        self.positions = [
            [rng.uniform(0, self.SIZE), rng.uniform(0, self.SIZE)] for _ in range(entities)
        ]
        self.velocities = [[rng.uniform(-20, 20), rng.uniform(-20, 20)] for _ in range(entities)]

    def initial(self) -> dict[int, list[float]]:
        return {i: list(p) for i, p in enumerate(self.positions)}

    def step(self, dt: float) -> dict[int, list[float]]:
        moved = {}
        for i, (position, velocity) in enumerate(zip(self.positions, self.velocities, strict=True)):
            for axis in (0, 1):
                value = position[axis] + velocity[axis] * dt
                if not 0.0 <= value <= self.SIZE:
                    velocity[axis] = -velocity[axis]
                    value = min(max(value, 0.0), self.SIZE)
                position[axis] = value
            moved[i] = [position[0], position[1]]
        return moved


class Ticker:
    """Pushes one update per tick from its own thread, on fixed deadlines."""

    def __init__(
        self,
        impl: Any,
        world: World,
        echoes: collections.deque[tuple[int, int]],
        interval: float,
        epoch: float,
    ) -> None:
        self.impl = impl
        self.world = world
        self.echoes = echoes
        self.interval = interval
        self.epoch = epoch
        self.ticks = 0
        self.late_sum = 0.0
        self.late_max = 0.0
        self.change_bytes = 0
        self.change_samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        previous = start
        scheduled = 0
        while not self.stop.is_set():
            scheduled += 1
            deadline = start + scheduled * self.interval
            delay = deadline - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            late = now - deadline
            if late > 5 * self.interval:  # suspended or starved: count afresh, no burst
                start, scheduled = now, 0
            self.late_sum += max(late, 0.0)
            self.late_max = max(self.late_max, late)
            changes: dict[str, Any] = {
                "entities": self.world.step(now - previous),
                "t": time.time() - self.epoch,
            }
            previous = now
            echo: dict[int, int] = {}
            while self.echoes:
                bot, sequence = self.echoes.popleft()
                echo[bot] = max(sequence, echo.get(bot, 0))
            if echo:
                changes["echo"] = echo
            self.ticks += 1
            self.impl.push(changes)
            if self.ticks % 10 == 0:  # the msgpack size of the changes, sampled: it barely varies
                self.change_bytes += self.impl.packed_size(changes)
                self.change_samples += 1


class PygaseImpl:
    """pygase: the store, the server and an event wire, all from the public API."""

    def __init__(self, world: World, max_clients: int, echoes: collections.deque[Any]) -> None:
        import msgpack

        from pygase_core import GameState, GameStateStore, GameStateUpdate, Server

        self._update = GameStateUpdate
        self._msgpack = msgpack
        self.store = GameStateStore(GameState(entities=world.initial(), t=0.0, echo={}))
        self.server = Server(self.store, max_clients=max_clients, host_client=None)

        class Wire:
            def _push_event(self, event: Any) -> None:
                if event.event_type == "BOT_INPUT":
                    echoes.append((int(event.args[0]), int(event.args[1])))

        self.wire = Wire()

    def start(self, host: str) -> int:
        self.server.run_in_thread(port=0, hostname=host, event_wire=self.wire)
        return int(self.server.port or 0)

    def push(self, changes: dict[str, Any]) -> None:
        self.store.push_update(self._update(self.store.time_order + 1, **changes))

    def packed_size(self, changes: dict[str, Any]) -> int:
        return len(self._msgpack.packb(changes, use_bin_type=True))

    def connections(self) -> int:
        return len(self.server.connections)

    def stop(self) -> None:
        self.server.shutdown()


class PeerImpl:
    """PyGaSe 0.3.1, driven through the same calls."""

    def __init__(self, world: World, max_clients: int, echoes: collections.deque[Any]) -> None:
        import umsgpack
        from pygase.backend import GameStateStore, Server
        from pygase.gamestate import GameState, GameStateUpdate

        self._update = GameStateUpdate
        self._umsgpack = umsgpack
        self.store = GameStateStore(GameState(entities=world.initial(), t=0.0, echo={}))
        self.server = Server(self.store)

        class Wire:
            async def _push_event(self, event: Any) -> None:
                if event.type == "BOT_INPUT":
                    echoes.append((int(event.handler_args[0]), int(event.handler_args[1])))

        self.wire = Wire()

    def start(self, host: str) -> int:
        self.server.run_in_thread(port=0, hostname=host, event_wire=self.wire)
        deadline = time.monotonic() + 10
        while self.server.port is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return int(self.server.port or 0)

    def push(self, changes: dict[str, Any]) -> None:
        state = self.store.get_game_state()
        self.store.push_update(self._update(state.time_order + 1, **changes))

    def packed_size(self, changes: dict[str, Any]) -> int:
        return len(self._umsgpack.packb(changes, force_float_precision="single"))

    def connections(self) -> int:
        return len(self.server.connections)

    def stop(self) -> None:
        pass  # the process exits; PyGaSe 0.3.1's shutdown would start a second curio kernel


class MpgameserverImpl:
    """mpgameserver 0.2.4: its ``EventHandler`` sends each tick's changes to every client.

    mpgameserver passes messages (bytes); it has no game state to synchronise. So the handler
    sends each connected client, once per new tick, the tick's changes as msgpack: every entity
    (all move) with ``t`` and the tick's echoes, the same content as pygase's delta, without
    retries (the next tick supersedes it), and its clients merge them. Its loop sends at most
    one datagram per connection per turn, and a tick's 2 kB are two datagrams (its fragments):
    so its loop turns at 200 Hz (``setInterval``), four times the tick rate, to leave room for
    both fragments, acks and keep-alives in each tick.
    """

    LOOP_RATE = 200.0

    def __init__(self, world: World, max_clients: int, echoes: collections.deque[Any]) -> None:
        import msgpack
        from mpgameserver import EventHandler, RetryMode, ServerContext, TwistedServer

        impl = self
        self._msgpack = msgpack
        self._lock = threading.Lock()
        self._latest: tuple[int, bytes] | None = None
        self.clients: dict[int, Any] = {}

        class Handler(EventHandler):  # type: ignore[misc]
            sent = 0

            def connect(self, client: Any) -> None:
                # Each connection sends at most one datagram per send_interval (1/60 s by
                # default, and no public setting): fewer than a tick's two datagrams at 50 Hz.
                client.send_interval = 1.0 / impl.LOOP_RATE
                impl.clients[client.token] = client

            def disconnect(self, client: Any) -> None:
                impl.clients.pop(client.token, None)

            def handle_message(self, client: Any, seqnum: Any, msg: bytes = b"") -> None:
                bot, sequence = msgpack.unpackb(msg)
                echoes.append((int(bot), int(sequence)))

            def update(self, delta_t: float) -> None:
                with impl._lock:
                    latest = impl._latest
                if latest is None or latest[0] == self.sent:
                    return
                self.sent, payload = latest
                for client in list(impl.clients.values()):
                    client.send(payload, retry=RetryMode.NONE)

        self.context = ServerContext(Handler())
        self.context.setInterval(1.0 / self.LOOP_RATE)
        self._server_class = TwistedServer

    def start(self, host: str) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # a free port
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        server = self._server_class(self.context, (host, port), install_signals=False)
        threading.Thread(target=server.run, name="mpgameserver", daemon=True).start()
        time.sleep(0.5)  # the reactor binds in its thread; it has no ready signal
        return port

    def push(self, changes: dict[str, Any]) -> None:
        payload = self._msgpack.packb(changes, use_bin_type=True)
        with self._lock:
            version = (self._latest[0] + 1) if self._latest else 1
            self._latest = (version, payload)

    def packed_size(self, changes: dict[str, Any]) -> int:
        return len(self._msgpack.packb(changes, use_bin_type=True))

    def connections(self) -> int:
        return len(self.clients)

    def stop(self) -> None:
        pass  # the process exits


def cpu_seconds() -> float:
    """User plus system CPU time of this process, as the OS accounts it."""
    times = os.times()
    return times.user + times.system


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("pygase", "peer", "mpgameserver"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--entities", type=int, default=100)
    parser.add_argument("--tick-rate", type=float, default=50.0)
    parser.add_argument("--epoch", type=float, required=True)
    parser.add_argument("--max-clients", type=int, default=1000)
    args = parser.parse_args(argv)

    counter = SocketCounter()
    if args.impl == "pygase":
        counter.install_pygase()
    else:
        counter.install()
    echoes: collections.deque[tuple[int, int]] = collections.deque()
    world = World(args.entities)
    impl_class = {"pygase": PygaseImpl, "peer": PeerImpl, "mpgameserver": MpgameserverImpl}[
        args.impl
    ]
    impl = impl_class(world, args.max_clients, echoes)
    ticker = Ticker(impl, world, echoes, 1.0 / args.tick_rate, args.epoch)
    port = impl.start(args.host)
    thread = threading.Thread(target=ticker.run, name="bench-ticker", daemon=True)
    thread.start()
    print(f"READY {port}", flush=True)
    for line in sys.stdin:
        command, _, label = line.strip().partition(" ")
        if command == "mark":
            reading = {
                "wall": time.time(),
                "cpu": cpu_seconds(),
                "bytes_out": counter.bytes_out,
                "datagrams_out": counter.datagrams_out,
                "bytes_in": counter.bytes_in,
                "datagrams_in": counter.datagrams_in,
                "ticks": ticker.ticks,
                "late_sum": ticker.late_sum,
                "late_max": ticker.late_max,
                "change_bytes": ticker.change_bytes,
                "change_samples": ticker.change_samples,
                "connections": impl.connections(),
            }
            print(f"MARK {label} {json.dumps(reading)}", flush=True)
        elif command == "quit":
            break
    ticker.stop.set()
    thread.join(1.0)
    impl.stop()
    sys.stdout.flush()
    os._exit(0)  # PyGaSe 0.3.1 leaves non-daemon threads behind; nothing here needs cleaning up


if __name__ == "__main__":
    raise SystemExit(main())
