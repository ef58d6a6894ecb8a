"""The link simulator: its decisions under a fake clock, its text form, and a real loopback run."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterator

import pytest

from pygase_core import Backend, Client, ClientStatus, GameState
from pygase_core.protocol.linksim import (
    ENVIRONMENT_VARIABLE,
    PRESETS,
    Direction,
    LinkConditioner,
    LinkConditions,
    resolve_link,
)
from tests.waiting import wait_for


def run(conditioner: LinkConditioner[int], count: int, spacing: float) -> list[tuple[float, int]]:
    """Push ``count`` numbered items ``spacing`` apart on a fake clock; return (time, item) out."""
    now = 0.0
    out: list[tuple[float, int]] = []
    for number in range(count):
        conditioner.push(number, now)
        out.extend((now, item) for item in conditioner.pop_due(now))
        now += spacing
    while (due := conditioner.next_due()) is not None:
        out.extend((due, item) for item in conditioner.pop_due(due))
    return out


def test_a_perfect_direction_passes_everything_at_once() -> None:
    conditioner: LinkConditioner[int] = LinkConditioner(Direction(), random.Random(1))
    assert conditioner.idle
    out = run(conditioner, 50, 0.01)
    assert [item for _, item in out] == list(range(50))
    assert all(when == pytest.approx(item * 0.01) for when, item in out)


def test_latency_delays_every_datagram_exactly() -> None:
    conditioner: LinkConditioner[int] = LinkConditioner(Direction(latency=0.1), random.Random(1))
    conditioner.push(7, 5.0)
    assert not conditioner.idle and conditioner.held == 1
    assert conditioner.pop_due(5.0999) == []
    assert conditioner.next_due() == pytest.approx(5.1)
    assert conditioner.pop_due(5.1) == [7]
    assert conditioner.next_due() is None


def test_jitter_varies_the_delay_within_bounds_but_keeps_the_order() -> None:
    conditioner: LinkConditioner[int] = LinkConditioner(
        Direction(latency=0.1, jitter=0.03), random.Random(2)
    )
    out = run(conditioner, 2000, 0.005)
    assert [item for _, item in out] == list(range(2000))
    delays = [when - item * 0.005 for when, item in out]
    assert min(delays) >= 0.07 - 1e-9
    # A delay above latency + jitter only ever comes from waiting behind an earlier datagram.
    assert all(
        delay <= 0.13 + 1e-9 or when == out[i - 1][0]
        for i, ((when, _), delay) in enumerate(zip(out, delays, strict=True))
    )
    assert max(delays) - min(delays) > 0.04  # it does vary


def test_loss_duplication_and_reordering_happen_at_their_rates() -> None:
    conditioner: LinkConditioner[int] = LinkConditioner(
        Direction(latency=0.02, loss=0.2, duplicate=0.1, reorder=0.1, reorder_delay=0.05),
        random.Random(3),
    )
    count = 20000
    out = run(conditioner, count, 0.001)
    items = [item for _, item in out]
    assert 0.18 < conditioner.lost / count < 0.22
    assert 0.08 < conditioner.duplicated / (count - conditioner.lost) < 0.12
    assert conditioner.sent == count
    assert conditioner.delivered == len(items) == count - conditioner.lost + conditioner.duplicated
    assert len(set(items)) == count - conditioner.lost
    overtaken = sum(1 for a, b in itertools.pairwise(items) if b < a)
    assert overtaken > 0.05 * count  # reordered ones arrive after later ones
    assert conditioner.reordered > 0


def test_reorder_alone_lets_later_datagrams_overtake() -> None:
    conditioner: LinkConditioner[int] = LinkConditioner(
        Direction(reorder=1.0, reorder_delay=0.05), random.Random(4)
    )
    conditioner.push(1, 0.0)
    conditioner.conditions = Direction()  # held datagrams keep their times
    conditioner.push(2, 0.01)
    assert conditioner.pop_due(0.01) == [2]
    assert conditioner.pop_due(0.05) == [1]


def test_the_same_seed_gives_the_same_fates_and_the_directions_are_independent() -> None:
    conditions = LinkConditions.parse("bad,seed=11")

    def fates(direction: str, link: LinkConditions) -> list[tuple[float, int]]:
        out_rng, in_rng = link.generators()
        rng = out_rng if direction == "out" else in_rng
        setting = link.outgoing if direction == "out" else link.incoming
        return run(LinkConditioner(setting, rng), 500, 0.01)

    assert fates("out", conditions) == fates("out", conditions)
    assert fates("out", conditions) != fates("in", conditions)
    other = LinkConditions.parse("bad,seed=12")
    assert fates("out", conditions) != fates("out", other)


def test_presets() -> None:
    average = LinkConditions.preset("average")
    assert average.outgoing == average.incoming == Direction(latency=0.1, jitter=0.025, loss=0.02)
    good, bad = PRESETS["good"].outgoing, PRESETS["bad"].outgoing
    assert good.latency < average.outgoing.latency < bad.latency
    assert good.loss < average.outgoing.loss < bad.loss
    assert LinkConditions.preset("off").perfect
    with pytest.raises(ValueError, match="known: average, bad, good, off"):
        LinkConditions.preset("terrible")


def test_parse_settings_units_and_directions() -> None:
    parsed = LinkConditions.parse("latency=0.1,jitter=0.02,loss=0.05,seed=3")
    assert parsed == LinkConditions.symmetric(seed=3, latency=0.1, jitter=0.02, loss=0.05)
    assert LinkConditions.parse("latency=80ms, loss=1%, in.loss=5%, out.reorder=2%") == (
        LinkConditions(
            outgoing=Direction(latency=0.08, loss=0.01, reorder=0.02),
            incoming=Direction(latency=0.08, loss=0.05),
        )
    )
    assert LinkConditions.parse("outgoing.latency=1s,incoming.duplicate=0.5").incoming == (
        Direction(duplicate=0.5)
    )
    # Items apply left to right; a preset keeps a seed given before it.
    assert LinkConditions.parse("seed=4,bad,loss=0").outgoing.loss == 0
    assert LinkConditions.parse("seed=4,bad").seed == 4
    assert LinkConditions.parse("") == LinkConditions()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latency=fast", "needs a number"),
        ("loss=1.5", "fraction from 0 to 1"),
        ("jitter=-1", "seconds from 0"),
        ("speed=3", "unknown link setting"),
        ("up.loss=0.1", "unknown link direction"),
        ("seed=x", "integer"),
        ("latency=nan", "seconds from 0"),
    ],
)
def test_parse_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LinkConditions.parse(text)


def test_resolve_link_reads_the_environment_only_without_an_explicit_link(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    assert resolve_link(None) is None
    assert resolve_link("off") is None  # a perfect link costs nothing
    assert resolve_link("average") == PRESETS["average"]
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "average,seed=5")
    assert resolve_link(None) == LinkConditions.parse("average,seed=5")
    assert resolve_link("off") is None  # an explicit link wins
    explicit = LinkConditions.symmetric(latency=0.01)
    assert resolve_link(explicit) is explicit
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "avreage")
    with pytest.raises(ValueError, match=ENVIRONMENT_VARIABLE):
        Client()
    with pytest.raises(TypeError):
        resolve_link(0.1)  # type: ignore[arg-type]


# -- over real sockets ---------------------------------------------------------------------------


@pytest.fixture
def backend() -> Iterator[Backend]:
    made = Backend(
        GameState(ticks=0),
        lambda game_state, dt: {"ticks": game_state.ticks + 1},
        {"ADD": lambda n, game_state: {"total": getattr(game_state, "total", 0) + n}},
    )
    made.run_in_thread()
    yield made
    made.shutdown()


def ticks(client: Client) -> int:
    with client.access_game_state() as state:
        return int(getattr(state, "ticks", 0))


def test_a_client_on_an_average_link_still_syncs(backend: Backend) -> None:
    assert backend.server.port
    client = Client(link="average,seed=1")
    client.connect_in_thread(backend.server.port)
    try:
        acked = threading.Event()
        for n in range(1, 11):
            client.dispatch_event("ADD", n, retries=10, ack_callback=acked.set if n == 10 else None)
        assert acked.wait(15)
        wait_for(lambda: ticks(client) > 50, timeout=15)
        with client.access_game_state() as state:
            assert state.total == 55
        stats = client.stats
        assert stats is not None and stats.rtt is not None
        assert stats.rtt > 0.15  # two 100 ms legs, minus jitter
        outgoing, incoming = client.link_conditioners
        assert outgoing is not None and incoming is not None
        assert outgoing.sent > 10 and incoming.sent > 10
    finally:
        client.disconnect()


def test_the_environment_variable_and_the_server_side_link(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "latency=60ms,seed=2")
    backend = Backend(GameState(ticks=0), lambda game_state, dt: {"ticks": game_state.ticks + 1})
    monkeypatch.delenv(ENVIRONMENT_VARIABLE)
    backend.run_in_thread()
    try:
        assert backend.server.port
        client = Client()
        client.connect_in_thread(backend.server.port)
        stats = wait_for(lambda: client.stats if client.stats and client.stats.rtt else None)
        assert stats is not None and stats.rtt is not None
        assert 0.1 < stats.rtt < 1.0  # the server's two 60 ms legs
        client.disconnect()
    finally:
        backend.shutdown()


def test_held_datagrams_go_out_when_the_socket_closes(backend: Backend) -> None:
    """A farewell sent into a slow link still arrives: the server notices the client left."""
    assert backend.server.port
    client = Client(link="latency=0.3")
    client.connect_in_thread(backend.server.port)
    wait_for(lambda: len(backend.server.connections) == 1)
    client.disconnect()
    assert client.status is ClientStatus.DISCONNECTED
    # Well before the 5 s timeout that would apply had the disconnect been lost.
    wait_for(lambda: not backend.server.connections, timeout=2.0)
