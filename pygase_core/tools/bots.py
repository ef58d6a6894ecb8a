"""A bot swarm: many real clients in one process, measuring what their players would see.

A load test is only worth as much as its clients are real, so every bot here is a plain
:class:`~pygase_core.Client` doing what a scripted player does: it reads the synchronized
state at a frame rate and sends input events at a rate. All bots share one asyncio event loop
(``Client.connect_async`` tasks), so a hundred bots cost a hundred sockets, not a hundred threads,
and the process can be pointed at any pygase server: ``pygase bots HOST:PORT --count N``.

Two figures come out of it, both taken at the bots' frame reads, where a game would look:

* **state age**: how old the state a bot sees is. The server's game must stamp its state with
  the time of each step, in seconds since ``epoch`` (``time.time()`` when the epoch is 0), in an
  attribute named by ``time_attribute``. Bots read the clock on the same machine, or one synced
  to it.
* **event round trip**: from a bot's input event to the frame at which that bot sees the state
  change it caused. The server echoes each bot's ``(bot_id, sequence)`` into a dict attribute
  (``echo_attribute``); :func:`echo_handler` is such a handler for a ``GameStateMachine`` or
  ``Backend``. Without an echo the swarm still runs and reports no round trips.

The measuring part (:class:`BotProbe`, :class:`SwarmReport`) knows nothing about the client it
watches, so the same arithmetic can be applied to other client implementations.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pygase_core.edge import loops
from pygase_core.edge.client import Client, ClientStatus
from pygase_core.errors import NotConnectedError, PygaseError
from pygase_core.plugins import hookimpl

__all__ = [
    "BotProbe",
    "BotSwarm",
    "SwarmReport",
    "echo_handler",
    "parse_address",
    "percentile",
]

DEFAULT_TIME_ATTRIBUTE = "server_time"
DEFAULT_ECHO_ATTRIBUTE = "bot_echo"
DEFAULT_EVENT_TYPE = "BOT_INPUT"
BEHIND_AGE = 0.1
"""A bot whose median state age exceeds this (seconds, five 50 Hz ticks) counts as behind."""


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (None when empty).

    Nearest rank returns a value that was actually observed, which keeps a p99 of few samples
    honest instead of interpolating between the two worst.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def echo_handler(echo_attribute: str = DEFAULT_ECHO_ATTRIBUTE) -> Callable[..., dict[str, Any]]:
    """An event handler that lets bots measure round trips against your own game.

    Register it for the bots' event type on your ``GameStateMachine`` (or in a ``Backend``'s
    ``event_handlers``): it records each bot's newest sequence number in the state, where the
    bot that sent it will see it arrive.
    """

    def echo(bot_id: int, sequence: int) -> dict[str, Any]:
        return {echo_attribute: {bot_id: sequence}}

    return echo


def parse_address(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (or ``[IPv6]:PORT``) into a hostname and a port number."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {text!r}")
    return host, port


@dataclass
class BotProbe:
    """What one bot has seen; fed by frame reads, independent of the client implementation.

    ``observe`` runs while the caller holds the client's state lock, so it only reads a few
    attributes and does arithmetic: a frame read must stay cheap or the bots would measure their
    own overhead.
    """

    bot_id: int
    time_attribute: str = DEFAULT_TIME_ATTRIBUTE
    echo_attribute: str = DEFAULT_ECHO_ATTRIBUTE
    epoch: float = 0.0
    recording: bool = False
    ages: list[float] = field(default_factory=list)
    """State ages in seconds, one per recorded frame that found a timestamp."""
    round_trips: list[float] = field(default_factory=list)
    """Seconds from an event's dispatch to the first recorded frame showing its echo."""
    frames: int = 0
    frames_without_time: int = 0
    versions: int = 0
    """Distinct state versions (time orders) seen at frames during recording."""
    states: int = 0
    """State updates the client applied during recording (where the client can tell)."""
    events_sent: int = 0
    events_echoed: int = 0
    _sequence: int = 0
    _pending: dict[int, float] = field(default_factory=dict)
    _last_time_order: int | None = None

    def state_received(self) -> None:
        """The client applied a state update (called by the client's I/O, not at frames)."""
        if self.recording:
            self.states += 1

    def next_event(self, now: float) -> int:
        """Number the next input event and remember when it left (``now``: a monotonic clock)."""
        self._sequence += 1
        if self.recording:
            self._pending[self._sequence] = now
            self.events_sent += 1
        return self._sequence

    def observe(self, state: Any, wall_now: float, now: float) -> None:
        """Record one frame's look at ``state``.

        ``wall_now`` is ``time.time()`` (compared with the server's stamp); ``now`` is the
        monotonic clock the events were timed with.
        """
        if not self.recording:
            return
        self.frames += 1
        time_order = getattr(state, "time_order", None)
        if time_order != self._last_time_order:
            self._last_time_order = time_order
            self.versions += 1
        stamp = getattr(state, self.time_attribute, None)
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            self.ages.append(wall_now - self.epoch - stamp)
        else:
            self.frames_without_time += 1
        if self._pending:
            echoes = getattr(state, self.echo_attribute, None)
            echoed = echoes.get(self.bot_id) if isinstance(echoes, dict) else None
            if isinstance(echoed, int):
                for sequence in [s for s in self._pending if s <= echoed]:
                    self.round_trips.append(now - self._pending.pop(sequence))
                    self.events_echoed += 1

    def stop_recording(self) -> None:
        """End the window; events still in flight are neither echoed nor lost yet: dropped."""
        self.recording = False
        self._pending.clear()


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 3)


@dataclass
class SwarmReport:
    """The swarm's figures over its measuring window (times in milliseconds)."""

    count: int
    connected: int
    seconds: float
    frames: int
    versions: int
    states: int
    events_sent: int
    events_echoed: int
    age_p50_ms: float | None
    age_p90_ms: float | None
    age_p99_ms: float | None
    age_max_ms: float | None
    round_trip_p50_ms: float | None
    round_trip_p99_ms: float | None
    worst_bot_age_p99_ms: float | None
    bots_behind: int
    frames_without_time: int
    errors: list[str] = field(default_factory=list)
    probes: list[BotProbe] = field(default_factory=list, repr=False)
    """The raw observations, for merging the reports of several processes (not in to_dict)."""

    @classmethod
    def from_probes(
        cls,
        probes: Sequence[BotProbe],
        seconds: float,
        connected: int,
        errors: Sequence[str] = (),
        behind_age: float = BEHIND_AGE,
    ) -> SwarmReport:
        """Aggregate the probes of one window."""
        ages = [age for probe in probes for age in probe.ages]
        trips = [trip for probe in probes for trip in probe.round_trips]
        bot_p99 = [percentile(p.ages, 0.99) for p in probes if p.ages]
        bot_p50 = [percentile(p.ages, 0.5) for p in probes if p.ages]
        return cls(
            count=len(probes),
            connected=connected,
            seconds=round(seconds, 3),
            frames=sum(p.frames for p in probes),
            versions=sum(p.versions for p in probes),
            states=sum(p.states for p in probes),
            events_sent=sum(p.events_sent for p in probes),
            events_echoed=sum(p.events_echoed for p in probes),
            age_p50_ms=_ms(percentile(ages, 0.5)),
            age_p90_ms=_ms(percentile(ages, 0.9)),
            age_p99_ms=_ms(percentile(ages, 0.99)),
            age_max_ms=_ms(max(ages) if ages else None),
            round_trip_p50_ms=_ms(percentile(trips, 0.5)),
            round_trip_p99_ms=_ms(percentile(trips, 0.99)),
            worst_bot_age_p99_ms=_ms(max((v for v in bot_p99 if v is not None), default=None)),
            bots_behind=sum(1 for v in bot_p50 if v is not None and v > behind_age),
            frames_without_time=sum(p.frames_without_time for p in probes),
            errors=list(errors),
            probes=list(probes),
        )

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "probes"}

    def summary(self) -> str:
        """A few human-readable lines."""

        def fmt(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.1f} ms"

        lines = [
            f"bots: {self.connected}/{self.count} connected, {self.seconds:.1f} s measured,"
            f" {self.frames} frames read, {self.states} state updates applied"
            + (
                f" ({self.states / (self.count * self.seconds):.1f} per bot-second)"
                if self.count and self.seconds
                else ""
            ),
            f"state age: p50 {fmt(self.age_p50_ms)}, p90 {fmt(self.age_p90_ms)},"
            f" p99 {fmt(self.age_p99_ms)}, max {fmt(self.age_max_ms)};"
            f" worst bot's p99 {fmt(self.worst_bot_age_p99_ms)};"
            f" {self.bots_behind} bot(s) behind",
        ]
        if self.events_echoed:
            lines.append(
                f"event round trip: p50 {fmt(self.round_trip_p50_ms)},"
                f" p99 {fmt(self.round_trip_p99_ms)}"
                f" ({self.events_echoed} of {self.events_sent} events echoed)"
            )
        elif self.events_sent:
            lines.append(
                f"event round trip: none measured ({self.events_sent} events sent, none echoed;"
                " register pygase_core.tools.bots.echo_handler() for the bots' event type)"
            )
        if self.frames and self.frames_without_time == self.frames:
            lines.append("state age: the state has no timestamp attribute (see --time-attribute)")
        lines.extend(f"error: {error}" for error in self.errors)
        return "\n".join(lines)


class _StateCounter:
    """A plugin that tells each bot's probe when its client applied a state update."""

    def __init__(self, probes: dict[int, BotProbe]) -> None:
        self._probes = probes

    @hookimpl
    def pygase_state_changed(self, client: Client, game_state: Any, time_order: int) -> None:
        probe = self._probes.get(id(client))
        if probe is not None:
            probe.state_received()


@dataclass
class _Bot:
    client: Client
    probe: BotProbe
    ready: threading.Event = field(default_factory=threading.Event)
    task: asyncio.Task[None] | None = None
    error: str | None = None
    next_event_at: float = 0.0


class BotSwarm:
    """Run ``count`` real clients against a server on one event loop and measure them.

    Arguments:
        hostname, port: the server.
        count: how many bots.
        rate: input events per second per bot (0: none); sent from the frame loop, so at most
            ``frame_rate``.
        frame_rate: how often every bot reads the state, like a game's render loop.
        time_attribute / epoch: where the state carries its timestamp and what it counts from.
        event_type / echo_attribute: the bots' input event and where the server echoes it.
        first_id: bot ids are ``first_id .. first_id + count - 1``; give swarms that share a
            server distinct ranges.
        connect_timeout: how long a bot's handshake may take.
        seed: for the random phases of the bots' events, so runs are comparable.
    """

    def __init__(
        self,
        hostname: str,
        port: int,
        count: int,
        *,
        rate: float = 5.0,
        frame_rate: float = 60.0,
        time_attribute: str = DEFAULT_TIME_ATTRIBUTE,
        epoch: float = 0.0,
        event_type: str = DEFAULT_EVENT_TYPE,
        echo_attribute: str = DEFAULT_ECHO_ATTRIBUTE,
        first_id: int = 0,
        connect_timeout: float = 5.0,
        seed: int = 1,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        if rate < 0 or frame_rate <= 0:
            raise ValueError("rate must be >= 0 and frame_rate > 0")
        self.hostname = hostname
        self.port = port
        self.count = count
        self.rate = rate
        self.frame_rate = frame_rate
        self.time_attribute = time_attribute
        self.epoch = epoch
        self.event_type = event_type
        self.echo_attribute = echo_attribute
        self.first_id = first_id
        self.connect_timeout = connect_timeout
        self.seed = seed

    def run(
        self,
        seconds: float,
        warmup: float = 1.0,
        on_window: Callable[[str], None] | None = None,
        *,
        start_at: float | None = None,
    ) -> SwarmReport:
        """Connect, warm up, measure for ``seconds`` and disconnect (see :meth:`run_async`)."""
        return loops.run(self.run_async(seconds, warmup, on_window, start_at=start_at))

    async def run_async(
        self,
        seconds: float,
        warmup: float = 1.0,
        on_window: Callable[[str], None] | None = None,
        *,
        start_at: float | None = None,
    ) -> SwarmReport:
        """Connect every bot, let them settle for ``warmup`` s, then measure for ``seconds``.

        ``on_window("start")`` and ``on_window("end")`` are called at the edges of the measuring
        window, so a caller can take its own readings (say, the server's CPU time) over exactly
        the same span. ``start_at`` (a ``time.time()`` value) replaces ``warmup``: the window
        opens then, which lets several swarm processes measure the same span.
        """
        from pygase_core.plugins import get_plugin_manager

        # One plugin manager for all: building one per client would load every entry point
        # a hundred times, and the hooks take the client as an argument anyway.
        manager = get_plugin_manager()
        bots = [
            _Bot(
                Client(plugin_manager=manager, connect_timeout=self.connect_timeout),
                BotProbe(self.first_id + i, self.time_attribute, self.echo_attribute, self.epoch),
            )
            for i in range(self.count)
        ]
        counter = _StateCounter({id(bot.client): bot.probe for bot in bots})
        manager.register(counter)
        try:
            await self._connect_all(bots)
            live = [bot for bot in bots if bot.ready.is_set() and bot.error is None]
            if live:
                if start_at is not None:
                    warmup = max(0.0, start_at - time.time())
                await self._frames(live, warmup, record=False)
                if on_window is not None:
                    on_window("start")
                started = time.perf_counter()
                for bot in live:
                    bot.probe.recording = True
                await self._frames(live, seconds, record=True)
                measured = time.perf_counter() - started
                for bot in live:
                    bot.probe.stop_recording()
                if on_window is not None:
                    on_window("end")
            else:
                measured = 0.0
            errors = [f"bot {b.probe.bot_id}: {b.error}" for b in bots if b.error is not None]
            connected = sum(1 for b in bots if b.ready.is_set())
            return SwarmReport.from_probes(
                [bot.probe for bot in live], measured, connected, _dedupe(errors)
            )
        finally:
            await self._disconnect_all(bots)
            manager.unregister(counter)

    async def _connect_all(self, bots: list[_Bot]) -> None:
        loop = asyncio.get_running_loop()

        async def connect(bot: _Bot) -> None:
            try:
                await bot.client.connect_async(self.port, self.hostname, ready=bot.ready)
            except (PygaseError, OSError) as error:
                bot.error = f"{type(error).__name__}: {error}"
            finally:
                if bot.ready.is_set() and bot.error is None and bot.client.disconnect_reason:
                    bot.error = f"disconnected: {bot.client.disconnect_reason}"

        for bot in bots:
            bot.task = loop.create_task(connect(bot))
        deadline = loop.time() + self.connect_timeout + 1.0
        while loop.time() < deadline and not all(
            bot.ready.is_set() or (bot.task is not None and bot.task.done()) for bot in bots
        ):
            await asyncio.sleep(0.01)
        for bot in bots:
            if not bot.ready.is_set() and bot.error is None:
                bot.error = "no handshake within the connect timeout"

    async def _frames(self, bots: list[_Bot], seconds: float, *, record: bool) -> None:
        """Read every bot's state once per frame and send the inputs that are due.

        One timer serves all bots: per-bot frame tasks would cost the loop a wake-up per bot
        per frame, which at a hundred bots is load the server never sees.
        """
        loop = asyncio.get_running_loop()
        rng = random.Random(self.seed)
        frame = 1.0 / self.frame_rate
        event_gap = 1.0 / self.rate if self.rate > 0 else math.inf
        start = time.perf_counter()
        for bot in bots:
            bot.next_event_at = start + rng.uniform(0.0, min(event_gap, 1.0))
        end = start + seconds
        next_frame = loop.time()
        while True:
            now = time.perf_counter()
            if now >= end:
                return
            for bot in bots:
                client = bot.client
                if client.status is ClientStatus.RECONNECTING:
                    continue  # an outage: the session lives on, inputs wait for its end
                if client.status is not ClientStatus.CONNECTED:
                    if bot.error is None:
                        bot.error = f"disconnected: {client.disconnect_reason}"
                    continue
                with client.access_game_state() as state:
                    bot.probe.observe(state, time.time(), time.perf_counter())
                if now >= bot.next_event_at:
                    bot.next_event_at += event_gap
                    if bot.next_event_at < now:  # fell behind: no burst of catch-up inputs
                        bot.next_event_at = now + event_gap
                    sequence = bot.probe.next_event(time.perf_counter())
                    with contextlib.suppress(NotConnectedError):
                        client.dispatch_event(self.event_type, bot.probe.bot_id, sequence)
            next_frame += frame
            delay = next_frame - loop.time()
            if delay < -frame:  # an overloaded loop skips frames instead of bunching them
                next_frame = loop.time()
                delay = 0.0
            await asyncio.sleep(max(delay, 0.0))

    async def _disconnect_all(self, bots: list[_Bot]) -> None:
        for bot in bots:
            with contextlib.suppress(Exception):
                await bot.client.disconnect_async()
        tasks = [bot.task for bot in bots if bot.task is not None]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=5.0)
            for task in pending:
                task.cancel()
            for task in done:
                with contextlib.suppress(BaseException):
                    task.result()


def _dedupe(errors: list[str], keep: int = 10) -> list[str]:
    """At most ``keep`` distinct messages: a hundred bots failing alike need one line, not 100."""
    by_text: dict[str, int] = {}
    for error in errors:
        text = error.split(": ", 1)[-1]
        by_text[text] = by_text.get(text, 0) + 1
    return [f"{n} bot(s): {text}" for text, n in list(by_text.items())[:keep]]


def run_cli(
    address: str,
    count: int,
    seconds: float,
    rate: float,
    *,
    frame_rate: float = 60.0,
    warmup: float = 1.0,
    time_attribute: str = DEFAULT_TIME_ATTRIBUTE,
    epoch: float = 0.0,
    event_type: str = DEFAULT_EVENT_TYPE,
    echo_attribute: str = DEFAULT_ECHO_ATTRIBUTE,
    first_id: int = 0,
    as_json: bool = False,
    out: Callable[[str], None] = print,
) -> int:
    """The ``pygase bots`` command: run a swarm and print its summary (or JSON)."""
    import json

    hostname, port = parse_address(address)
    swarm = BotSwarm(
        hostname,
        port,
        count,
        rate=rate,
        frame_rate=frame_rate,
        time_attribute=time_attribute,
        epoch=epoch,
        event_type=event_type,
        echo_attribute=echo_attribute,
        first_id=first_id,
    )
    if not as_json:
        out(f"pygase bots: {count} bot(s) against {hostname} port {port} for {seconds:g} s")
    report = swarm.run(seconds, warmup)
    out(json.dumps(report.to_dict()) if as_json else report.summary())
    return 0 if report.connected == count else 1
