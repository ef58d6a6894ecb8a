"""In-memory wiring of a sans-IO server endpoint and client endpoints, with a fake clock.

Datagrams travel through :class:`Link` objects that can drop, duplicate, delay (with jitter) and
reorder them, driven by a seeded random generator so every run is the same. A client can move to
another address mid-session (:meth:`Network.move_client`), as behind a NAT that rebinds; with a
``secret_key`` the server is an encrypted one and clients connect with tokens.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any

from pygase_core.model.gamestate import GameState
from pygase_core.model.store import GameStateStore
from pygase_core.protocol.connection import (
    ConnectionConfig,
    EventAcknowledged,
    EventGivenUp,
    EventReceived,
    StateReceived,
)
from pygase_core.protocol.crypto import ConnectToken, make_connect_token
from pygase_core.protocol.endpoint import (
    ClientEndpoint,
    ClientJoined,
    ClientLeft,
    ClientNotice,
    PeerNotice,
    ServerEndpoint,
    ServerNotice,
)
from pygase_core.protocol.statesync import PayloadCache

SERVER_ADDRESS = ("10.0.0.1", 4000)
SERVER_TEXT = "10.0.0.1:4000"
UNIX_OFFSET = 1_000_000.0
"""What the fake clock adds up to Unix time, for connect tokens."""


@dataclass
class Link:
    """One direction of a lossy network path."""

    rng: random.Random
    loss: float = 0.0
    duplicate: float = 0.0
    latency: float = 0.005
    jitter: float = 0.0
    queue: list[tuple[float, int, bytes, Any]] = field(default_factory=list)
    _counter: int = 0
    sent: int = 0
    delivered: int = 0
    log: list[tuple[float, bytes, Any]] | None = None
    """If a list, every datagram sent is recorded in it (time, data, address)."""

    def send(self, data: bytes, address: Any, now: float) -> None:
        self.sent += 1
        if self.log is not None:
            self.log.append((now, data, address))
        if self.rng.random() < self.loss:
            return
        copies = 2 if self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            delay = self.latency + self.rng.uniform(0, self.jitter)
            self._counter += 1
            heapq.heappush(self.queue, (now + delay, self._counter, data, address))

    def due(self, now: float) -> list[tuple[bytes, Any]]:
        out = []
        while self.queue and self.queue[0][0] <= now:
            _, _, data, address = heapq.heappop(self.queue)
            out.append((data, address))
            self.delivered += 1
        return out


class ClientSide:
    """A client endpoint plus the game state it keeps, as a real client would."""

    def __init__(
        self,
        address: Any,
        now: float,
        config: ConnectionConfig,
        rng: random.Random,
        token: ConnectToken | None = None,
    ):
        self.address = address
        self.endpoint = ClientEndpoint(now, config=config, nonce=rng.getrandbits(64), token=token)
        self.state = GameState()
        self.events: list[ClientNotice] = []
        self.received_payloads: list[bytes] = []
        self.acked_tokens: list[object] = []
        self.given_up_tokens: list[object] = []

    def handle(self, events: list[ClientNotice]) -> None:
        for event in events:
            self.events.append(event)
            if isinstance(event, StateReceived):
                # The same decode, apply and record of the applied time_order a Client does.
                applied = self.endpoint.apply_state(event, self.state)
                if applied is not None:
                    self.state = applied
            elif isinstance(event, EventReceived):
                self.received_payloads.append(event.payload)
            elif isinstance(event, EventAcknowledged):
                self.acked_tokens.append(event.token)
            elif isinstance(event, EventGivenUp):
                self.given_up_tokens.append(event.token)


class Network:
    """A server endpoint and any number of clients on simulated links."""

    def __init__(
        self,
        store: GameStateStore | None = None,
        *,
        seed: int = 1,
        config: ConnectionConfig | None = None,
        max_clients: int = 64,
        secret_key: bytes | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 100.0
        self.config = config or ConnectionConfig()
        self.store = store or GameStateStore(GameState())
        self.cache = PayloadCache(self.store, self.config.max_state_size)
        self.secret_key = secret_key
        self.server = ServerEndpoint(
            self.now,
            max_clients=max_clients,
            config=self.config,
            random_bits=self.rng.getrandbits,
            secret_key=secret_key,
            address_text=SERVER_TEXT,
            unix_offset=UNIX_OFFSET,
        )
        self.clients: dict[Any, ClientSide] = {}
        self.up: dict[Any, Link] = {}
        self.down: dict[Any, Link] = {}
        self.server_events: list[ServerNotice] = []
        self.server_payloads: list[tuple[Any, bytes]] = []
        self.server_acks: list[object] = []
        self.server_given_up: list[object] = []
        self.server_out: list[tuple[bytes, Any]] = []
        """Every datagram the server sent, with its address (reachable or not)."""
        # As a Server does: a push makes the endpoint look at once which sessions lack the new
        # state, also those sent from caches of their own (views), which the endpoint's
        # deadlines alone would leave to the next keep-alive.
        self.store.add_listener(lambda _time_order: self.server.state_changed())

    def add_client(self, address: Any, **link: Any) -> ClientSide:
        token = None
        if self.secret_key is not None:
            token = make_connect_token(
                self.secret_key, SERVER_TEXT, len(self.clients) + 1, now=self.now + UNIX_OFFSET
            )
        client = ClientSide(address, self.now, self.config, self.rng, token)
        self.clients[address] = client
        self.up[address] = Link(self.rng, **link)
        self.down[address] = Link(self.rng, **link)
        for datagram in client.endpoint.start(self.now):
            self.up[address].send(datagram, address, self.now)
        return client

    def move_client(self, old: Any, new: Any) -> None:
        """From now on the client's datagrams come from ``new``, and only what the server sends
        to ``new`` reaches it (datagrams already on their way still arrive)."""
        client = self.clients.pop(old)
        client.address = new
        self.clients[new] = client
        self.up[new] = self.up.pop(old)
        self.down[new] = self.down.pop(old)

    def inject(self, data: bytes, address: Any) -> None:
        """A datagram from anywhere straight to the server (a stranger or an attacker)."""
        out, events = self.server.datagram_received(data, address, self.now, self.cache)
        self._server_out(out)
        self._server_handle(events)

    def _server_out(self, out: list[tuple[bytes, Any]]) -> None:
        for datagram, address in out:
            self.server_out.append((datagram, address))
            if address in self.down:
                self.down[address].send(datagram, address, self.now)

    def _server_handle(self, events: list[ServerNotice]) -> None:
        for event in events:
            self.server_events.append(event)
            if isinstance(event, PeerNotice):
                if isinstance(event.notice, EventReceived):
                    self.server_payloads.append((event.address, event.notice.payload))
                elif isinstance(event.notice, EventAcknowledged):
                    self.server_acks.append(event.notice.token)
                elif isinstance(event.notice, EventGivenUp):
                    self.server_given_up.append(event.notice.token)

    def step(self, dt: float = 0.001) -> None:
        """Advance the clock by ``dt`` and run everything that is due."""
        self.now += dt
        for link in self.up.values():
            for data, source in link.due(self.now):
                self.inject(data, source)
        for address, link in self.down.items():
            client = self.clients[address]
            for data, _ in link.due(self.now):
                out, events = client.endpoint.datagram_received(data, self.now)
                for datagram in out:
                    self.up[address].send(datagram, address, self.now)
                client.handle(events)
        deadline = self.server.next_deadline(self.cache)
        timer = self.server.get_timer()
        if timer is not None and (deadline is None or timer < deadline):
            deadline = timer
        if deadline is not None and deadline <= self.now:
            out, events = self.server.poll(self.now, self.cache)
            self._server_out(out)
            self._server_handle(events)
        for address, client in self.clients.items():
            if client.endpoint.next_deadline() <= self.now:
                out, events = client.endpoint.poll(self.now)
                for datagram in out:
                    self.up[address].send(datagram, address, self.now)
                client.handle(events)

    def run(self, seconds: float, dt: float = 0.001) -> None:
        for _ in range(round(seconds / dt)):
            self.step(dt)

    def run_until(self, condition: Any, timeout: float = 10.0, dt: float = 0.001) -> float:
        """Step until ``condition()`` holds; returns the simulated time it took."""
        start = self.now
        while not condition():
            if self.now - start > timeout:
                raise AssertionError(f"condition not met within {timeout} simulated seconds")
            self.step(dt)
        return self.now - start

    def joined(self) -> list[ClientJoined]:
        return [e for e in self.server_events if isinstance(e, ClientJoined)]

    def left(self) -> list[ClientLeft]:
        return [e for e in self.server_events if isinstance(e, ClientLeft)]
