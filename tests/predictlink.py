"""A predicting client and a stepping server on the in-memory link, with a fake clock.

The server side is what a room does each step: take at most one input per client from its jitter
buffer, record which tick the next state contains, apply the shared step, push. The client side
is what ``Client.send_input`` and ``Client.predict`` do: stamp each frame's input with its tick,
queue it on the connection, step the prediction, reconcile on every applied state. All of it
runs on :mod:`tests.memlink`'s seeded links, so every run is the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pygase_core.model import codec
from pygase_core.model.gamestate import GameState, GameStateUpdate
from pygase_core.model.prediction import Prediction, apply_input, check_declaration
from pygase_core.protocol.inputs import InputClock, TakenInput
from tests.memlink import ClientSide, Network

TICK = 0.02
FRAME = 1 / 60
SPEED = 100.0


def walk(entity: dict[str, Any], value: Any, dt: float) -> dict[str, Any]:
    """The shared, deterministic step: move along ``value`` (a [dx, dy] pair) at SPEED."""
    dx, dy = value
    return {**entity, "x": entity["x"] + dx * SPEED * dt, "y": entity["y"] + dy * SPEED * dt}


@dataclass
class Player:
    """One client: its endpoint, its input clock and its prediction."""

    side: ClientSide
    name: str
    clock: InputClock = field(default_factory=lambda: InputClock(TICK))
    prediction: Prediction | None = None
    applied_order: int | None = None
    shown: list[Any] = field(default_factory=list)
    """What each frame showed of the own entity."""
    authoritative: list[Any] = field(default_factory=list)
    """The own entity in the latest authoritative state, at each frame."""
    predicted: list[Any] = field(default_factory=list)
    """The exact prediction (no correction), at each frame."""

    def send(self, value: Any, now: float) -> int | None:
        connection = self.side.endpoint.connection
        assert connection is not None
        inputs = connection.inputs_out
        tick = self.clock.stamp(value, now, inputs.slack if inputs is not None else None)
        if tick is None:
            return None
        data = codec.pack(value)
        connection.queue_input(tick, connection.applied_time_order or 0, data)
        if self.prediction is not None:
            self.prediction.add_input(tick, codec.unpack(data))
        return tick

    def reconcile(self) -> None:
        """Reconcile once per newly applied state, as the Client does."""
        state = self.side.state
        if self.prediction is None or state.time_order == self.applied_order:
            return
        self.applied_order = state.time_order
        connection = self.side.endpoint.connection
        assert connection is not None and connection.inputs_out is not None
        self.prediction.reconcile(state, connection.inputs_out.ack_for(state.time_order))

    def frame(self) -> None:
        if self.prediction is not None:
            self.shown.append(self.prediction.sample())
            self.authoritative.append(self.prediction.authoritative)
            self.predicted.append(self.prediction.predicted)


class Game:
    """A server stepping every TICK and clients framing every FRAME, on lossy links."""

    def __init__(self, seed: int = 1, **link: Any) -> None:
        self.net = Network(seed=seed)
        self.store = self.net.store
        self.store.replace_state(GameState(players={}, clock=0.0))
        self.link = link
        self.players: dict[Any, Player] = {}
        self.taken: dict[str, list[TakenInput]] = {}
        self.segments = check_declaration("players.{me}", walk)
        self.server_step: Callable[[str, Any, Any], dict[str, Any] | None] = (
            lambda name, value, state: apply_input(self.segments, walk, name, value, state, TICK)
        )
        self.extra: Callable[[int], dict[str, Any] | None] = lambda step: None
        """Changes the server makes on its own at a step (a push the client cannot predict)."""
        self.steps = 0
        self._next_tick = self.net.now + TICK
        self._next_frame = self.net.now + FRAME

    def join(self, name: str, address: Any, predict: bool = True) -> Player:
        side = self.net.add_client(address, **self.link)
        self.net.run_until(lambda: side.endpoint.connection is not None, timeout=10)
        self.push({"players": {name: {"x": 0.0, "y": 0.0}}})
        player = Player(side, name)
        if predict:
            player.prediction = Prediction("players.{me}", walk, TICK, name, max_correction=2.0)
        self.players[address] = player
        self.taken[name] = []
        self.run_until(lambda: name in side.state.to_dict().get("players", {}))
        return player

    def push(self, changes: dict[str, Any]) -> None:
        store = self.store
        store.push_update(GameStateUpdate.from_changes(store.time_order + 1, changes))

    def tick(self) -> None:
        """One server step: one input per client, in tick order, then the server's own push."""
        self.steps += 1
        for address, session in self.net.server.sessions.items():
            receiver = session.connection.inputs_in
            player = self.players.get(address)
            if receiver is None or player is None:
                continue
            taken = receiver.take()
            if taken is None:
                continue
            self.taken[player.name].append(taken)
            receiver.record_applied(self.store.time_order + 1, taken.tick)
            changes = self.server_step(player.name, taken.value, self.store.get_game_state())
            if changes:
                self.push(changes)
        extra = self.extra(self.steps)
        self.push({"clock": self.steps * TICK, **(extra or {})})

    def run(
        self, seconds: float, inputs: Callable[[Player, float], Any] | None = None
    ) -> None:
        """Run for ``seconds``: ``inputs(player, now)`` is each frame's input (None: none)."""
        end = self.net.now + seconds
        while self.net.now < end:
            self.step(inputs)

    def run_until(
        self,
        condition: Callable[[], bool],
        timeout: float = 10.0,
        inputs: Callable[[Player, float], Any] | None = None,
    ) -> None:
        end = self.net.now + timeout
        while not condition():
            assert self.net.now < end, "condition not met in time"
            self.step(inputs)

    def step(self, inputs: Callable[[Player, float], Any] | None) -> None:
        net = self.net
        net.step(0.001)
        for player in self.players.values():
            player.reconcile()
        if net.now >= self._next_tick:
            self._next_tick += TICK
            self.tick()
        if net.now >= self._next_frame:
            self._next_frame += FRAME
            for player in self.players.values():
                if inputs is not None:
                    value = inputs(player, net.now)
                    if value is not None:
                        player.send(value, net.now)
                player.frame()


def distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    return math.hypot(a["x"] - b["x"], a["y"] - b["y"])
