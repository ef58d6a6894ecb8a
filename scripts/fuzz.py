"""A long fuzz run against pygase's receiving code: a million datagrams by default.

The test suite fuzzes for a few seconds; this script runs for minutes and is not part of CI. It
starts from real traffic: a server endpoint and a client endpoint hold a session in memory while
the game state changes and events flow both ways, and every datagram they exchange joins a
corpus. The fuzzer then mutates corpus datagrams (bytes set, bits flipped, cuts, insertions,
splices of two datagrams, boundary values) and adds plain random bytes, and feeds them to:

* the server endpoint, from the session's own address (so a mutated packet with the right
  session id reaches the connection, the event channel and the state sender) and from strangers;
* the client endpoint, as if from the server, decoding and applying what it delivers as
  :class:`~pygase_core.edge.client.Client` does.

Anything but a clean return (or :class:`~pygase_core.errors.ProtocolError` where the real code
catches it) is a finding: the script prints it, saves the datagram under ``--crash-dir`` and
carries on. Sessions a mutated disconnect ended are opened again. ``--live`` sends the same
kind of traffic over UDP to a real in-process Server with two connected clients instead, and
checks at the end that the server lives, logged no unexpected error and still syncs its clients.

    python scripts/fuzz.py                       # 1,000,000 datagrams in memory, seed 1
    python scripts/fuzz.py --datagrams 200000 --seed 7
    python scripts/fuzz.py --live --datagrams 100000

It exits with status 1 if it found anything.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import resource
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from pygase_core.protocol.connection import EventReceived, StateReceived
from pygase_core.protocol.endpoint import ClientEndpoint, PeerNotice, ServerEndpoint
from pygase_core.errors import ProtocolError
from pygase_core.protocol.eventwire import decode_event, encode_event
from pygase_core.model.gamestate import GameState, GameStateUpdate
from pygase_core.protocol.packets import (
    FULL_STATE,
    DisconnectReason,
    PacketType,
    encode_disconnect,
    encode_request,
    encode_response,
)
from pygase_core.protocol.statesync import PayloadCache, decode_state_payload
from pygase_core.model.store import GameStateStore

CLIENT = ("10.0.0.2", 5000)
STRANGER = ("10.0.0.3", 6000)
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)


# -- mutation ------------------------------------------------------------------------------------


def _position(rng: random.Random, low: int, end: int) -> int:
    """A random position from ``low`` up to (not including) ``end``."""
    return rng.randrange(low, end) if end > low else end


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    """One random edit of ``data`` most of the time, up to four sometimes.

    Edits mostly spare the 4-byte prefix: a datagram whose magic or type is broken stops at
    the first check, and the interesting code is behind it.
    """
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        low = 4 if rng.random() < 0.8 and len(out) > 4 else 0
        position = partial(_position, rng, low)
        kind = rng.randrange(8)
        if kind == 0 and out:  # set a byte
            out[position(len(out))] = rng.randrange(256)
        elif kind == 1 and out:  # flip a bit
            out[position(len(out))] ^= 1 << rng.randrange(8)
        elif kind == 2 and out:  # a boundary value, maybe over a 2-, 4- or 8-byte field
            width = rng.choice((1, 2, 4, 8))
            start = position(len(out))
            out[start : start + width] = bytes([rng.choice(INTERESTING)] * width)
        elif kind == 3:  # cut
            del out[position(len(out) + 1) :]
        elif kind == 4:  # insert
            at = position(len(out) + 1)
            out[at:at] = rng.randbytes(rng.randint(1, 32))
        elif kind == 5 and out:  # delete a slice
            at = position(len(out))
            del out[at : at + rng.randint(1, 16)]
        elif kind == 6:  # splice with another datagram
            other = rng.choice(corpus)
            out = out[: position(len(out) + 1)] + other[rng.randrange(len(other) + 1) :]
        else:  # repeat a tail (a message twice)
            at = position(len(out) + 1)
            out += out[at:]
    return bytes(out[: 1200 if rng.random() < 0.95 else 1500])


def fresh_sequence(data: bytes, latest: int | None) -> bytes:
    """A data packet renumbered to follow ``latest``, so the receive window does not drop it."""
    if len(data) < 14 or data[3] != PacketType.DATA or latest is None:
        return data
    return data[:12] + ((latest + 1) & 0xFFFF).to_bytes(2, "big") + data[14:]


def next_datagram(
    rng: random.Random, corpus: list[bytes], prepare: Callable[[bytes], bytes] | None = None
) -> bytes:
    """A mutated corpus datagram most of the time; sometimes an intact one or random bytes.

    ``prepare`` may adapt the chosen datagram before it is mutated (to a live session's id).
    """
    roll = rng.random()
    if roll < 0.1:
        return rng.randbytes(rng.randint(0, 1300))
    base = rng.choice(corpus)
    if prepare is not None:
        base = prepare(base)
    if roll < 0.15:
        return base
    return mutate(rng, base, corpus)


# -- an in-memory session ------------------------------------------------------------------------


class Session:
    """A server endpoint and one client endpoint, connected in memory, with a changing state.

    ``reached`` counts, over all sessions, how deep fuzzed datagrams got.
    """

    reached: ClassVar[Counter[str]] = Counter()

    def __init__(self, rng: random.Random) -> None:
        self.now = 1000.0
        self.store = GameStateStore(GameState(n=0, players={"a": {"x": 0.0}}, tags=["t"]))
        self.cache = PayloadCache(self.store)
        self.server = ServerEndpoint(self.now, random_bits=rng.getrandbits)
        self.client = ClientEndpoint(self.now, nonce=rng.getrandbits(64))
        self.state = GameState()
        self.corpus: list[bytes] = []
        self.up: list[bytes] = self.client.start(self.now)
        self.down: list[bytes] = []
        self.pump(0.3)
        connection = self.client.connection
        if connection is None:
            raise RuntimeError("the in-memory handshake did not complete")
        for reason in DisconnectReason:
            self.corpus.append(encode_disconnect(connection.session_id, reason))

    def pump(self, seconds: float, step: float = 0.01) -> None:
        """Run both ends for ``seconds`` of fake time, changing the state and sending events."""
        for _ in range(round(seconds / step)):
            self.now += step
            time_order = self.store.time_order + 1
            changes: dict[str, Any] = {"n": time_order, "players": {"a": {"x": time_order / 10}}}
            if time_order % 40 == 0:  # now and then a change that needs several fragments
                changes["map"] = {i: [time_order, f"tile{i}"] for i in range(400)}
            self.store.push_update(GameStateUpdate(time_order, **changes))
            connection = self.client.connection
            if connection is not None and time_order % 7 == 0:
                connection.queue_event(encode_event("MOVE", (time_order, "left"), {}), retries=2)
            for address, server_connection in self.server.connections.items():
                if time_order % 11 == 0 and address == CLIENT:
                    server_connection.queue_event(encode_event("NEWS", ("hi",), {"n": 1}), 2)
            up, self.up = self.up, []
            for data in up:
                self.corpus.append(data)
                self.to_server(data, CLIENT)
            down, self.down = self.down, []
            for data in down:
                self.corpus.append(data)
                self.to_client(data)
            out, events = self.server.poll(self.now, self.cache)
            self.down.extend(d for d, a in out if a == CLIENT)
            self.server_events(events)
            datagrams, client_events = self.client.poll(self.now)
            self.up.extend(datagrams)
            self.client_events(client_events)

    def to_server(self, data: bytes, address: Any) -> None:
        connection = self.server.connections.get(address)
        before = connection.stats.packets_in if connection is not None else 0
        out, events = self.server.datagram_received(data, address, self.now, self.cache)
        if connection is not None and connection.stats.packets_in > before:
            self.reached["accepted by the server's session"] += 1
        self.down.extend(d for d, a in out if a == CLIENT)
        self.server_events(events)

    def to_client(self, data: bytes) -> None:
        out, events = self.client.datagram_received(data, self.now)
        self.up.extend(out)
        self.client_events(events)

    def server_events(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, PeerNotice) and isinstance(event.notice, EventReceived):
                self.reached["events delivered to the server"] += 1
                with contextlib.suppress(ProtocolError):  # as Server._client_event
                    decode_event(event.notice.payload)

    def client_events(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, EventReceived):
                self.reached["events delivered to the client"] += 1
                with contextlib.suppress(ProtocolError):
                    decode_event(event.payload)
            elif isinstance(event, StateReceived):
                self.reached["states delivered to the client"] += 1
                self.apply_state(event)

    def apply_state(self, received: StateReceived) -> None:
        """What Client._apply_state does with a delivered state payload."""
        try:
            decoded = decode_state_payload(received.base, received.target, received.payload)
        except ProtocolError:
            return
        connection = self.client.connection
        if received.base == FULL_STATE:
            assert isinstance(decoded, GameState)
            if connection is not None and connection.applied_time_order is not None and (
                decoded.time_order <= connection.applied_time_order
            ):
                return
            self.state = decoded
        elif not self.state.apply(decoded):  # type: ignore[arg-type]
            return
        if connection is not None:
            connection.applied_time_order = self.state.time_order

    @property
    def alive(self) -> bool:
        connection = self.client.connection
        return CLIENT in self.server.connections and connection is not None and (
            connection.closed is None
        )


# -- runs ----------------------------------------------------------------------------------------


class Findings:
    """Exceptions that escaped, by kind, with the first datagrams that caused each saved."""

    def __init__(self, crash_dir: Path) -> None:
        self.crash_dir = crash_dir
        self.kinds: Counter[str] = Counter()

    def record(self, where: str, data: bytes, error: BaseException) -> None:
        kind = f"{where}: {type(error).__name__}: {error}"[:200]
        self.kinds[kind] += 1
        if self.kinds[kind] == 1:
            self.crash_dir.mkdir(parents=True, exist_ok=True)
            path = self.crash_dir / f"crash-{len(self.kinds)}-{where}.bin"
            # (for the live server: the hex of the last 50 datagrams sent, one a line)
            path.write_bytes(data)
            print(f"FINDING {kind} (datagram saved to {path})", flush=True)


def run_in_memory(count: int, seed: int, findings: Findings, report: Callable[[int], None]) -> None:
    rng = random.Random(seed)
    session = Session(rng)
    sessions = 1
    for number in range(count):
        if not session.alive:
            session = Session(rng)
            sessions += 1
        corpus = session.corpus
        data = next_datagram(rng, corpus)
        target = rng.random()
        if rng.random() < 0.8:  # mostly renumbered, to get past the receive windows
            receiver = (
                session.server.connections.get(CLIENT) if target < 0.7
                else session.client.connection
            )
            if receiver is not None:
                data = fresh_sequence(data, receiver._window.latest)
        try:
            if target < 0.6:
                session.to_server(data, CLIENT)
            elif target < 0.7:
                session.to_server(data, STRANGER)
            else:
                session.to_client(data)
        except Exception as error:  # a finding, not a reason to stop
            findings.record("server" if target < 0.7 else "client", data, error)
        if number % 200 == 199:
            try:
                session.pump(0.05)  # honest traffic goes on between the attacks
            except Exception as error:
                findings.record("honest-traffic", b"", error)
        if len(corpus) > 5000:
            del corpus[: len(corpus) - 5000]
        report(number + 1)
    print(f"in-memory sessions opened: {sessions}; reached (with honest traffic): "
          f"{dict(Session.reached)}")


def live_handshake(sock: socket.socket, target: Any, nonce: int) -> int:
    """Open a session from ``sock`` (after draining what the last one left); its session id."""
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.recv(4096)
    sock.settimeout(1.0)
    response = encode_request(nonce)
    expected = PacketType.CHALLENGE
    for _ in range(50):
        sock.sendto(response, target)
        with contextlib.suppress(TimeoutError):
            while True:
                answer = sock.recv(4096)
                if answer[3] != expected or answer[4:12] != nonce.to_bytes(8, "big"):
                    continue
                if expected is PacketType.ACCEPT:
                    return int.from_bytes(answer[12:20], "big")
                response, expected = encode_response(nonce, answer[12:36]), PacketType.ACCEPT
                break
    raise RuntimeError("the server does not complete a handshake any more")


def run_live(count: int, seed: int, findings: Findings, report: Callable[[int], None]) -> None:
    from pygase_core import Backend, Client

    errors: list[str] = []

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "unexpected error" in record.getMessage():
                errors.append(record.getMessage())

    pygase_logger = logging.getLogger("pygase")
    pygase_logger.setLevel(logging.ERROR)  # unhandled fuzzed events are warnings: not findings
    pygase_logger.addHandler(Watch())
    backend = Backend(
        GameState(ticks=0), lambda game_state, dt: {"ticks": game_state.ticks + 1}
    )
    thread = backend.run_in_thread()
    server = backend.server
    assert server.port
    port = server.port
    clients = [Client(), Client()]
    for client in clients:
        client.connect_in_thread(port)
    rng = random.Random(seed)
    teacher = Session(random.Random(seed))
    teacher.pump(3.0)  # a corpus of a few seconds of real traffic
    corpus = teacher.corpus
    target = ("127.0.0.1", port)
    recent: deque[bytes] = deque(maxlen=50)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker, socket.socket(
        socket.AF_INET, socket.SOCK_DGRAM
    ) as probe:
        attacker.bind(("127.0.0.1", 0))
        probe.settimeout(0.5)
        nonce, sessions = seed << 32, 0
        session, sequence = 0, 0

        def ours(data: bytes) -> bytes:
            """Most session datagrams get our session id (and a fresh sequence), to go deep."""
            nonlocal sequence
            if len(data) < 12 or data[3] not in (PacketType.DATA, PacketType.DISCONNECT):
                return data
            if rng.random() < 0.2:
                return data
            data = data[:4] + session.to_bytes(8, "big") + data[12:]
            if data[3] == PacketType.DATA and len(data) >= 14:
                sequence = (sequence + 1) & 0xFFFF
                data = data[:12] + sequence.to_bytes(2, "big") + data[14:]
            return data

        errors_seen = 0
        for number in range(count):
            if number % 50 == 0 and attacker.getsockname() not in server.connections:
                nonce += 1
                sessions += 1
                session, sequence = live_handshake(attacker, target, nonce), 0
            data = next_datagram(rng, corpus, ours)
            recent.append(data)
            attacker.sendto(data, target)
            if number % 50 == 49:  # let the server read them all before sending more
                probe.sendto(encode_request(number), target)
                with contextlib.suppress(TimeoutError):
                    probe.recv(2048)
                if len(errors) > errors_seen:
                    errors_seen = len(errors)
                    findings.record("live-server", b"\n".join(d.hex().encode() for d in recent),
                                    RuntimeError(errors[-1]))
            report(number + 1)
    print(f"live sessions opened by the fuzzer: {sessions}")
    print(f"server drops: {dict(server.drops)}")
    ticks = backend.game_state_store.time_order

    def time_order(client: Client) -> int:
        with client.access_game_state() as state:
            return state.time_order

    deadline = time.monotonic() + 5
    synced = False
    while time.monotonic() < deadline and not synced:
        time.sleep(0.05)
        synced = all(time_order(client) > ticks for client in clients)
    if not thread.is_alive() or not server.running:
        findings.record("live-server", b"", RuntimeError("the server stopped"))
    if not synced:
        findings.record("live-server", b"", RuntimeError("the clients stopped syncing"))
    for client in clients:
        client.disconnect()
    backend.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datagrams", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--live", action="store_true", help="fuzz a real server over UDP")
    parser.add_argument("--crash-dir", type=Path, default=Path("fuzz-crashes"))
    args = parser.parse_args(argv)
    findings = Findings(args.crash_dir)
    started = time.monotonic()
    last = [started]

    def report(done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 10 or done == args.datagrams:
            last[0] = now
            rate = done / max(now - started, 1e-9)
            print(f"{done} datagrams, {rate:,.0f}/s, {sum(findings.kinds.values())} findings",
                  flush=True)

    run = run_live if args.live else run_in_memory
    run(args.datagrams, args.seed, findings, report)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    elapsed = time.monotonic() - started
    print(f"done: {args.datagrams} datagrams in {elapsed:.0f} s, peak RSS {rss_mb:.0f} MB")
    for kind, times in findings.kinds.most_common():
        print(f"  {times:8d} x {kind}")
    print("no findings" if not findings.kinds else f"{len(findings.kinds)} kinds of findings")
    return 1 if findings.kinds else 0


if __name__ == "__main__":
    sys.exit(main())
