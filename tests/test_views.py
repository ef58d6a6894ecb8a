"""Per-client views: each client holds the server's state filtered by its view, and no more."""

from __future__ import annotations

import math
import random
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pygase_core.model.codec import TO_DELETE, Overwrite
from pygase_core.model.gamestate import GameState, GameStateUpdate
from pygase_core.model.store import GameStateStore
from pygase_core.model.views import FilterView, GridView, PrivateField, ViewRules
from pygase_core.protocol.budget import BandwidthBudget
from pygase_core.protocol.connection import ConnectionConfig
from pygase_core.protocol.packets import _FRAGMENT_HEADER
from pygase_core.protocol.statesync import PayloadCache, StateDecoder
from pygase_core.protocol.viewsync import ViewedWorld
from tests.memlink import Network

SIZE = 60.0
CELL = 10.0


def cell_of(entry: dict[str, Any]) -> tuple[int, int]:
    return math.floor(entry["x"] / CELL), math.floor(entry["y"] / CELL)


def seen_by(state: GameState, own: Any, radius: float) -> set[Any]:
    """The reference view: the entities in the cells within ``radius`` of the own one's."""
    entities = state.entities
    if own not in entities:
        return set()
    cx, cy = cell_of(entities[own])
    reach = math.ceil(radius / CELL)
    return {
        key for key, entry in entities.items()
        if abs(cell_of(entry)[0] - cx) <= reach and abs(cell_of(entry)[1] - cy) <= reach
    }


def filtered(
    state: GameState, own: Any, player: Any, radius: float, secrets: bool = True
) -> dict[str, Any]:
    """The server's state as one client may see it."""
    attributes = state.to_dict()
    entities = {}
    for key in seen_by(state, own, radius):
        entry = dict(state.entities[key])
        if key != own and secrets:
            entry.pop("secret", None)
        entities[key] = entry
    attributes["entities"] = entities
    attributes["players"] = {
        key: {k: v for k, v in entry.items() if k != "hand" or key == player}
        for key, entry in state.players.items()
    }
    return attributes


class World:
    """Random walkers, spawning and despawning, with bytes that must stay hidden."""

    def __init__(self, rng: random.Random, entities: int, clients: int) -> None:
        self.rng = rng
        self.next_key = 0
        self.state = GameState(entities={}, players={}, tick=0)
        for _ in range(entities):
            self.spawn(self.state.entities)
        self.state.players = {
            f"p{i}": {"name": f"player {i}", "hand": self.token(b"H")} for i in range(clients)
        }

    def token(self, kind: bytes) -> bytes:
        return kind + self.rng.randbytes(12)

    def spawn(self, into: dict[Any, Any]) -> None:
        into[self.next_key] = {
            "x": self.rng.uniform(0, SIZE), "y": self.rng.uniform(0, SIZE),
            "tag": self.token(b"T"), "secret": self.token(b"S"),
        }
        self.next_key += 1

    def tick(self, store: GameStateStore, own: list[Any]) -> None:
        current = store.get_game_state()
        changes: dict[Any, Any] = {}
        for key, entry in current.entities.items():
            roll = self.rng.random()
            if roll < 0.03 and key not in own:
                changes[key] = TO_DELETE
            elif roll < 0.8:
                step = 4.0 if key in own else 2.0
                changes[key] = {
                    "x": min(max(entry["x"] + self.rng.uniform(-step, step), 0.0), SIZE),
                    "y": min(max(entry["y"] + self.rng.uniform(-step, step), 0.0), SIZE),
                }
        if self.rng.random() < 0.2:
            self.spawn(changes)
        hands = {}
        if self.rng.random() < 0.3:
            player = self.rng.choice(sorted(current.players))
            hands[player] = {"hand": self.token(b"H")}
        store.push_update(GameStateUpdate(
            current.time_order + 1, entities=changes, players=hands, tick=current.time_order + 1
        ))


def views_for(
    own: dict[Any, Any], players: dict[Any, Any], radius: float, secrets: bool = True
) -> ViewRules:
    return ViewRules([
        GridView("entities", cell_size=CELL, radius=radius, entity=own.get),
        *([PrivateField("entities.*.secret", owner=own.get)] if secrets else []),
        PrivateField("players.*.hand", owner=players.get),
    ])


def connect_viewers(
    network: Network, world: ViewedWorld, count: int, loss: float, latency: float = 0.005
) -> list[Any]:
    addresses = [(f"10.0.1.{i}", 6000 + i) for i in range(count)]
    for i, address in enumerate(addresses):  # each its own latency: clients on many bases
        lag = latency * (1 + i) / 2
        network.add_client(address, loss=loss, latency=lag, jitter=lag)
    network.run_until(lambda: len(network.joined()) == count)
    for address in addresses:
        network.server.assign_cache(address, world.viewer(lambda a=address: a))
    return addresses


def one_viewer_of_me(store: GameStateStore, seed: int) -> tuple[Network, Any]:
    """One client whose own entity is ``"me"`` in a grid of ``entities``, holding its view."""
    network = Network(store, seed=seed)
    network.cache = None  # type: ignore[assignment]
    viewed = ViewedWorld(PayloadCache(store), ViewRules([
        GridView("entities", cell_size=CELL, radius=CELL, entity=lambda viewer: "me"),
    ]))
    (address,) = connect_viewers(network, viewed, 1, 0.0)
    client = network.clients[address]
    network.run_until(lambda: client.state.time_order == 0 and "entities" in client.state.to_dict())
    return network, client


def hidden_tokens(
    state: GameState, own: Any, player: Any, radius: float, secrets: bool = True
) -> set[bytes]:
    """The bytes this client must not receive at this version: what it does not see."""
    seen = seen_by(state, own, radius)
    hidden = {e["tag"] for k, e in state.entities.items() if k not in seen}
    hidden |= {e["secret"] for k, e in state.entities.items() if k != own and secrets}
    hidden |= {p["hand"] for k, p in state.players.items() if k != player}
    return hidden


@settings(
    derandomize=True, max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32),
    entities=st.integers(3, 40),
    radius=st.sampled_from([5.0, 10.0, 20.0]),
    loss=st.sampled_from([0.0, 0.2]),
    latency=st.sampled_from([0.002, 0.04]),
    precise=st.booleans(),
    secrets=st.booleans(),
)
def test_each_client_holds_the_state_filtered_by_its_view_and_never_receives_hidden_bytes(
    seed: int, entities: int, radius: float, loss: float, latency: float, precise: bool,
    secrets: bool,
) -> None:
    rng = random.Random(seed)
    clients = 3
    world = World(rng, entities, clients)
    store = GameStateStore(
        world.state, precision={"entities.*.x": 0.01, "entities.*.y": 0.01} if precise else None
    )
    network = Network(store, seed=seed)
    network.cache = None  # type: ignore[assignment]  # (sessions get state through views only)
    addresses = [(f"10.0.1.{i}", 6000 + i) for i in range(clients)]
    keys = sorted(store.get_game_state().entities)[:clients]
    own = dict(zip(addresses, keys, strict=True))
    players = {address: f"p{i}" for i, address in enumerate(addresses)}
    viewed = ViewedWorld(PayloadCache(store), views_for(own, players, radius, secrets))
    connect_viewers(network, viewed, clients, loss, latency)
    snapshots = {store.time_order: store.snapshot()}
    ever_seen: dict[Any, set[bytes]] = {address: set() for address in addresses}
    checked = 0
    for _ in range(40):
        world.tick(store, list(own.values()))
        snapshots[store.time_order] = store.snapshot()
        network.run(0.02)
        for address in addresses:
            client = network.clients[address]
            connection = client.endpoint.connection
            if connection is None or connection.applied_time_order is None:
                continue
            checked += 1
            at = snapshots[client.state.time_order]
            assert client.state.to_dict() == filtered(
                at, own[address], players[address], radius, secrets
            )
    assert checked > 40
    # Nothing hidden ever reached a client's socket: no tag of an entity that was outside its
    # view at every version, no secret but its own entity's, no hand but its own.
    for address in addresses:
        hidden: set[bytes] = set()
        for state in snapshots.values():
            hidden |= hidden_tokens(state, own[address], players[address], radius, secrets)
            ever_seen[address] |= {
                state.entities[key]["tag"] for key in seen_by(state, own[address], radius)
            }
        hidden -= ever_seen[address]
        sent = [data for data, to in network.server_out if to == address]
        assert sent
        for token in hidden:
            assert not any(token in data for data in sent), (address, token)
    # And once the world stops, every client ends with exactly its view of it.
    final = store.get_game_state()

    def converged() -> bool:
        return all(
            network.clients[a].state.to_dict()
            == filtered(final, own[a], players[a], radius, secrets)
            for a in addresses
        )

    network.run_until(converged, timeout=10.0)


def test_an_entity_leaving_the_view_is_removed_and_listed_and_a_deleted_one_is_not() -> None:
    store = GameStateStore(GameState(entities={
        "me": {"x": 5.0, "y": 5.0}, "near": {"x": 6.0, "y": 6.0}, "doomed": {"x": 7.0, "y": 7.0},
        "far": {"x": 55.0, "y": 55.0},
    }))
    network, client = one_viewer_of_me(store, seed=3)
    assert set(client.state.entities) == {"me", "near", "doomed"}
    store.push_update(GameStateUpdate(
        1, entities={"near": {"x": 40.0}, "doomed": TO_DELETE, "far": {"x": 15.0, "y": 15.0}}
    ))
    network.run_until(lambda: client.state.time_order == 1)
    assert set(client.state.entities) == {"me", "far"}
    assert client.state.entities["far"] == {"x": 15.0, "y": 15.0}
    assert client.endpoint.left_view == {"entities": {"near"}}  # "doomed" was deleted
    store.push_update(GameStateUpdate(2, entities={"near": {"x": 8.0}}))
    network.run_until(lambda: client.state.time_order == 2)
    assert client.state.entities["near"] == {"x": 8.0, "y": 6.0}
    assert client.endpoint.left_view == {"entities": set()}


def test_a_filter_view_shows_a_team_its_own_units() -> None:
    units = {f"u{i}": {"team": "red" if i % 2 else "blue", "hp": i} for i in range(10)}
    store = GameStateStore(GameState(units=units))
    network = Network(store, seed=4)
    network.cache = None  # type: ignore[assignment]
    teams = {}

    def visible(viewer: Any, state: GameState) -> list[str]:
        return [k for k, unit in state.units.items() if unit["team"] == teams[viewer]]

    viewed = ViewedWorld(PayloadCache(store), ViewRules([FilterView("units", visible)]))
    addresses = [("10.0.1.0", 6000), ("10.0.1.1", 6001)]  # (as connect_viewers names them)
    teams.update(zip(addresses, ["red", "blue"], strict=True))
    connect_viewers(network, viewed, 2, 0.0)
    store.push_update(GameStateUpdate(1, units={"u1": {"team": "blue"}}))  # a unit changes sides
    network.run_until(lambda: all(network.clients[a].state.time_order == 1 for a in addresses))
    red, blue = (network.clients[a].state.units for a in addresses)
    assert set(red) == {"u3", "u5", "u7", "u9"}
    assert set(blue) == {"u0", "u1", "u2", "u4", "u6", "u8"}
    assert blue["u1"] == {"team": "blue", "hp": 1}


def test_clients_in_one_cell_share_their_payloads() -> None:
    entities = {i: {"x": float(i % 10) * 6.0, "y": float(i // 10) * 6.0} for i in range(100)}
    store = GameStateStore(GameState(entities=entities))
    cache = PayloadCache(store)
    viewed = ViewedWorld(cache, ViewRules([
        GridView("entities", cell_size=CELL, radius=CELL, entity=lambda viewer: viewer),
    ]))
    viewers = [viewed.viewer(lambda key=key: key) for key in (0, 1, 11, 99)]  # 0, 1, 11 share
    first = [payloads.payload_for(2**64 - 1) for payloads in viewers]
    assert first[0] is first[1] is first[2] and first[3] is not first[0]
    moved = {i: {"x": entry["x"] + 0.5} for i, entry in entities.items()}
    store.push_update(GameStateUpdate(1, entities=moved))
    deltas = [payloads.payload_for(0) for payloads in viewers]
    assert deltas[0] is deltas[1] is deltas[2]
    assert viewed.encodings == 4


def test_entries_that_change_cells_arrive_leave_and_move_within_the_view_exactly() -> None:
    # The client's own cell stays the same, so its deltas look only at the entries that changed
    # cells: within its 3 x 3 cells, into them, out of them, deleted or new in them.
    store = GameStateStore(GameState(entities={
        "me": {"x": 15.0, "y": 15.0}, "inner": {"x": 5.0, "y": 5.0}, "stay": {"x": 12.0, "y": 12.0},
        "comer": {"x": 45.0, "y": 5.0}, "goer": {"x": 5.0, "y": 25.0},
        "doomed": {"x": 15.0, "y": 5.0}, "far": {"x": 55.0, "y": 55.0},
    }))
    network, client = one_viewer_of_me(store, seed=8)
    assert set(client.state.entities) == {"me", "inner", "stay", "goer", "doomed"}
    store.push_update(GameStateUpdate(1, entities={
        "me": {"x": 16.0}, "inner": {"x": 25.0}, "stay": {"x": 13.0, "y": 13.0},
        "comer": {"x": 25.0, "y": 25.0}, "goer": {"x": 35.0}, "doomed": TO_DELETE,
        "born": {"x": 5.0, "y": 15.0}, "far": {"x": 56.0},
    }))
    network.run_until(lambda: client.state.time_order == 1)
    assert client.state.entities == {
        "me": {"x": 16.0, "y": 15.0}, "inner": {"x": 25.0, "y": 5.0},
        "stay": {"x": 13.0, "y": 13.0}, "comer": {"x": 25.0, "y": 25.0},
        "born": {"x": 5.0, "y": 15.0},
    }
    assert client.endpoint.left_view == {"entities": {"goer"}}
    store.push_update(GameStateUpdate(2, entities={"inner": {"y": 6.0}, "goer": {"x": 5.0}}))
    network.run_until(lambda: client.state.time_order == 2)
    assert client.state.entities["inner"] == {"x": 25.0, "y": 6.0}
    assert client.state.entities["goer"] == {"x": 5.0, "y": 25.0}  # back in, whole


def test_clients_in_one_cell_with_other_private_fields_get_payloads_of_their_own() -> None:
    entities = {i: {"x": float(i), "y": 1.0, "secret": f"S{i}"} for i in range(5)}
    store = GameStateStore(GameState(entities=entities, players={
        i: {"hand": f"H{i}"} for i in range(5)
    }))
    viewed = ViewedWorld(PayloadCache(store), ViewRules([
        GridView("entities", cell_size=CELL, radius=CELL, entity=lambda viewer: viewer),
        PrivateField("entities.*.secret", owner=lambda viewer: viewer),
        PrivateField("players.*.hand", owner=lambda viewer: viewer),
    ]))
    viewers = [viewed.viewer(lambda key=key: key) for key in (0, 1)]  # one cell, two owners
    for version in (1, 2):
        store.push_update(GameStateUpdate(version, entities={
            i: {"x": float(i) + version * 0.1, "secret": f"S{i}v{version}"} for i in range(5)
        }, players={i: {"hand": f"H{i}v{version}"} for i in range(5)}))
        base = 2**64 - 1 if version == 1 else version - 1
        mine, theirs = (_bytes_of(payloads.payload_for(base)) for payloads in viewers)
        assert mine != theirs
        assert f"S0v{version}".encode() in mine and f"H0v{version}".encode() in mine
        assert f"S1v{version}".encode() in theirs and f"H1v{version}".encode() in theirs
        assert b"S1" not in mine and b"H1" not in mine
        assert b"S0" not in theirs and b"H0" not in theirs


@pytest.mark.parametrize(
    ("rules", "error"),
    [
        ([GridView], TypeError),
        ("entities", TypeError),
        ([FilterView("a", lambda v, s: ()), FilterView("a", lambda v, s: ())], ValueError),
    ],
)
def test_bad_view_lists_fail_at_once(rules: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        ViewRules(rules)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: GridView("a.b", cell_size=1, radius=1, entity=str), ValueError),
        (lambda: GridView("a", cell_size=0, radius=1, entity=str), ValueError),
        (lambda: GridView("a", cell_size=1, radius=math.inf, entity=str), ValueError),
        (lambda: GridView("a", cell_size="1", radius=1, entity=str), TypeError),
        (lambda: GridView("a", cell_size=1, radius=1, entity=3), TypeError),
        (lambda: FilterView("a", None), TypeError),
        (lambda: PrivateField("players.hand", owner=str), ValueError),
        (lambda: PrivateField("players.*", owner=str), ValueError),
        (lambda: PrivateField("*.*.hand", owner=str), ValueError),
        (lambda: FilterView("game_status", lambda viewer, state: ()), ValueError),
        (lambda: GridView("time_order", cell_size=1, radius=1, entity=str), ValueError),
        (lambda: PrivateField("game_status.*.x", owner=str), ValueError),
    ],
)
def test_bad_view_rules_fail_at_construction(make: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        make()


def test_a_bandwidth_budget_holds_the_rate_and_the_client_still_converges_exactly() -> None:
    limit = 20_000
    entities = {i: [float(i), 0.0] for i in range(300)}
    store = GameStateStore(GameState(entities=entities))
    network = Network(store, seed=6, config=ConnectionConfig(max_bandwidth=limit))
    client = network.add_client(("10.0.3.1", 8000))
    network.run_until(lambda: client.state.time_order == 0 and client.state.to_dict())
    connection = next(iter(network.server.sessions.values())).connection
    assert connection.state_out is not None and connection.state_out.budget is not None
    budget = connection.state_out.budget
    start, sent = network.now, budget.bytes_sent
    for tick in range(1, 101):  # 300 entities, all moving: about 5 kB a tick, 250 kB/s
        store.push_update(GameStateUpdate(tick, entities={
            i: [x + tick * 0.5, float(tick)] for i, (x, _) in entities.items()
        }))
        network.run(0.02)
    rate = (budget.bytes_sent - sent) / (network.now - start)
    assert rate <= limit * 1.1
    assert budget.use().deferred > 0 and 0 < budget.use().share <= 1.2
    network.run_until(lambda: client.state == store.get_game_state())


def test_under_a_budget_the_nearest_entries_enter_a_view_first() -> None:
    store = GameStateStore(GameState(entities={
        "me": {"x": 50.0, "y": 50.0, "pad": "x" * 200},
        **{f"e{i}": {"x": 50.0 + i, "y": 50.0, "pad": "x" * 200} for i in range(1, 10)},
    }))
    budget = BandwidthBudget(3000)  # a burst of 1,200 bytes: a few entries of 220 per version
    viewed = ViewedWorld(PayloadCache(store), ViewRules([
        GridView("entities", cell_size=100.0, radius=100.0, entity=lambda viewer: "me"),
    ]))
    payloads = viewed.viewer(lambda: "me", budget)
    store.push_update(GameStateUpdate(1, entities={"me": {"x": 50.0}}))
    payloads.payload_for(2**64 - 1)  # the first view: everything, as a baseline
    first = payloads._history[1].visible[0]
    assert len(first) == 10
    store.replace_state(GameState(entities={  # now ten more arrive at once, farther out
        **store.get_game_state().entities,
        **{f"f{i}": {"x": 50.0 - i, "y": 50.0, "pad": "x" * 200} for i in range(10, 20)},
    }))
    payloads.payload_for(1)
    admitted = payloads._history[store.time_order].visible[0] - first
    assert 0 < len(admitted) < 10
    assert admitted == {f"f{i}" for i in range(10, 10 + len(admitted))}  # the nearest ones
    # A nearer newcomer does not overtake those that waited: they go first, and all get in.
    held = store.get_game_state().entities
    store.push_update(GameStateUpdate(
        store.time_order + 1, entities={"g": {"x": 50.5, "y": 50.0, "pad": "x" * 200}}
    ))
    version = store.time_order
    payloads.payload_for(version - 1)
    newly = payloads._history[version].visible[0] - first - admitted
    assert "g" not in newly and newly
    for _ in range(10):
        store.push_update(GameStateUpdate(store.time_order + 1, entities={"me": {"y": 50.0}}))
        payloads.payload_for(store.time_order - 1)
    assert payloads._history[store.time_order].visible[0] == {*held, "g"}


def test_a_failing_rule_shows_nothing_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    store = GameStateStore(GameState(units={"u": 1}, players={"p": {"hand": "h"}}))

    def broken(viewer: Any, state: GameState) -> list[str]:
        raise RuntimeError("broken rule")

    rules = ViewRules([
        FilterView("units", broken), PrivateField("players.*.hand", owner=lambda v: 1 / 0),
    ])
    viewed = ViewedWorld(PayloadCache(store), rules)
    for version in range(1, 4):
        store.push_update(GameStateUpdate(version, units={"u": version}))
        view = viewed.view_of("someone")
        assert view.visible == (frozenset(),)
        assert rules.strip("players", store.get_game_state().players, view.owners) == {"p": {}}
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2 and "broken rule" in (errors[0].exc_text or "")


def _viewer_of(rules: ViewRules, state: GameState, budget: BandwidthBudget | None = None) -> Any:
    store = GameStateStore(state)
    return store, ViewedWorld(PayloadCache(store), rules).viewer(lambda: "me", budget)


def _bytes_of(payload: Any) -> bytes:
    assert payload is not None
    return b"".join(payload.messages)


@pytest.mark.parametrize(
    "rules",
    [
        # an owner that is no key at all (unhashable)
        [PrivateField("players.*.hand", owner=lambda viewer: ["p"])],
        # priorities that raise, or give what cannot be compared, under a budget
        [GridView("units", cell_size=10.0, radius=10.0, entity=lambda viewer: "me",
                  priority=lambda viewer, key, entry: 1 / 0)],
        [GridView("units", cell_size=10.0, radius=10.0, entity=lambda viewer: "me",
                  priority=lambda viewer, key, entry: None if key == "a" else 1.0)],
        [FilterView("units", lambda viewer, state: list(state.units),
                    priority=lambda viewer, key, entry: {}[key])],
    ],
)
def test_a_rule_that_fails_or_gives_garbage_never_breaks_the_send(
    rules: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    if not any(isinstance(rule, PrivateField) for rule in rules):
        rules = [*rules, PrivateField("players.*.hand", owner=lambda viewer: None)]
    store, payloads = _viewer_of(ViewRules(rules), GameState(
        units={"me": {"x": 1.0, "y": 1.0}}, players={"p": {"hand": "SECRET"}},
    ), BandwidthBudget(3000))
    store.push_update(GameStateUpdate(1, units={"me": {"x": 2.0}}))
    assert b"SECRET" not in _bytes_of(payloads.payload_for(2**64 - 1))
    for version in range(2, 5):  # entries enter the view: the budget orders them
        store.push_update(GameStateUpdate(version, units={
            f"u{version}": {"x": 3.0, "y": 3.0}, "a": {"x": 4.0, "y": float(version)},
        }))
        assert b"SECRET" not in _bytes_of(payloads.payload_for(version - 1))
    errors = [record for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1  # logged once, not per client and version


def test_private_fields_of_entries_in_a_list_are_stripped_too() -> None:
    rules = ViewRules([PrivateField("players.*.hand", owner=lambda viewer: 0)])
    store, payloads = _viewer_of(rules, GameState(players=[{"hand": "MINE"}, {"hand": "HIDDEN"}]))
    store.push_update(GameStateUpdate(1, players=[{"hand": "MINE"}, {"hand": "HIDDEN1"}]))
    baseline = _bytes_of(payloads.payload_for(2**64 - 1))
    assert b"MINE" in baseline and b"HIDDEN" not in baseline
    store.push_update(GameStateUpdate(2, players=({"hand": "MINE2"}, {"hand": "HIDDEN2"})))
    delta = _bytes_of(payloads.payload_for(1))
    assert b"MINE2" in delta and b"HIDDEN" not in delta


def test_a_viewed_attribute_that_is_no_dict_is_not_sent_whole() -> None:
    rules = ViewRules([FilterView("units", lambda viewer, state: [])])
    store, payloads = _viewer_of(rules, GameState(units=[{"tag": "HIDDEN"}], tick=0))
    store.push_update(GameStateUpdate(1, tick=1))
    assert b"HIDDEN" not in _bytes_of(payloads.payload_for(2**64 - 1))
    store.push_update(GameStateUpdate(2, units=[{"tag": "HIDDEN2"}]))
    assert b"HIDDEN" not in _bytes_of(payloads.payload_for(1))


def test_an_entry_whose_custom_position_fails_is_seen_by_nobody_and_the_others_still_are() -> None:
    def position(entry: Any) -> tuple[float, float]:
        return entry.at if "at" in entry else (entry["x"], entry["y"])  # AttributeError

    rules = ViewRules([GridView("units", cell_size=10.0, radius=10.0, entity=lambda v: "me",
                                position=position)])
    store, payloads = _viewer_of(rules, GameState(units={
        "me": {"x": 1.0, "y": 1.0}, "near": {"x": 2.0, "y": 2.0}, "bad": {"at": 1},
    }))
    with store.lock:
        assert payloads.world.view_of("me").visible == (frozenset({"me", "near"}),)


def test_a_filter_that_returns_a_str_shows_nothing(caplog: pytest.LogCaptureFixture) -> None:
    rules = ViewRules([FilterView("units", lambda viewer, state: "ab")])
    store, payloads = _viewer_of(rules, GameState(units={"a": 1, "b": 2}))
    with store.lock:
        assert payloads.world.view_of("me").visible == (frozenset(),)
    assert any("visible returned str" in (r.exc_text or "") for r in caplog.records)


def _apply(held: GameState | None, decoder: StateDecoder, payload: Any) -> GameState:
    """What a client holds after applying ``payload`` (its fragments joined) to ``held``."""
    assert payload is not None
    data = b"".join(message[1 + _FRAGMENT_HEADER.size:] for message in payload.messages)
    out = decoder.decode(payload.base, payload.target, data)
    if isinstance(out, GameState):
        return out
    assert held is not None and held.time_order == payload.base
    held.apply(out)
    return held


def test_a_viewed_attribute_made_while_the_client_sees_none_of_it_reaches_it_empty() -> None:
    rules = ViewRules([GridView("units", cell_size=CELL, radius=CELL, entity=lambda v: "me")])
    store, payloads = _viewer_of(rules, GameState(tick=0))
    decoder = StateDecoder()
    held = _apply(None, decoder, payloads.payload_for(2**64 - 1))
    store.push_update(GameStateUpdate(1, units={"far": {"x": 55.0, "y": 55.0}}))
    held = _apply(held, decoder, payloads.payload_for(0))
    assert held.to_dict() == {"tick": 0, "units": {}}
    assert b"far" not in _bytes_of(payloads.payload_for(0))


def test_a_filter_that_names_keys_by_equal_values_of_other_types_still_converges() -> None:
    shown: list[Any] = [1.0, True]  # equal to the keys 1 (and 1), but a float and a bool
    rules = ViewRules([FilterView("units", lambda viewer, state: shown)])
    store, payloads = _viewer_of(rules, GameState(units={1: {"a": 1}, 2: {"a": 2}}))
    decoder = StateDecoder()
    held = _apply(None, decoder, payloads.payload_for(2**64 - 1))
    store.push_update(GameStateUpdate(1, units={1: {"a": 5}, 2: {"a": 6}}))
    shown[:] = [2.0]
    held = _apply(held, decoder, payloads.payload_for(0))
    assert held.to_dict() == {"units": {2: {"a": 6}}}
    assert [type(key) for key in held.units] == [int] and decoder.left == [("units", 1)]


class _Edges:
    """A world of the edge cases of views: positions on cell borders, missing, NaN, infinite or
    of no number; entries as lists; entries deleted and made again under their key, replaced
    whole, or moved out of a cell and back between two sends; the viewed dict replaced, deleted
    and made again; the whole state replaced; viewers whose own entity changes key."""

    def __init__(self, rng: random.Random, precise: bool) -> None:
        self.rng, self.precise = rng, precise
        self.keys: list[Any] = [*range(30), "a", "b"]

    def position(self) -> Any:
        rng = self.rng
        roll = rng.random()
        if roll < 0.4:  # on a border, or a hair below one
            return rng.randint(-1, 6) * CELL - rng.choice([0.0, 0.0, 1e-9])
        if roll < 0.45:
            return rng.choice([math.nan, math.inf, -math.inf, 1e300, *(() if self.precise
                                                                     else ("x", None))])
        return rng.uniform(-5.0, 65.0)

    def entry(self) -> Any:
        rng = self.rng
        if rng.random() < 0.15:
            return [self.position(), self.position(), self.token(b"T")]
        entry = {"x": self.position(), "y": self.position(), "tag": self.token(b"T"),
                 "secret": self.token(b"S")}
        if rng.random() < 0.05:
            del entry["x"]
        return entry

    def token(self, kind: bytes) -> bytes:
        return kind + self.rng.randbytes(40)  # (big: a budget lets only a few in at once)

    def changes(self, current: GameState) -> dict[str, Any]:
        rng, entries = self.rng, current.to_dict().get("entities")
        roll = rng.random()
        if roll < 0.02:
            return {"entities": Overwrite({k: self.entry() for k in rng.sample(self.keys, 4)})}
        if roll < 0.03:
            return {"entities": TO_DELETE}
        if not isinstance(entries, dict):
            return {"entities": {k: self.entry() for k in rng.sample(self.keys, 4)}}
        changes: dict[Any, Any] = {}
        for key in self.keys:
            roll = rng.random()
            if key not in entries:
                if roll < 0.1:
                    changes[key] = self.entry()
            elif roll < 0.05:
                changes[key] = TO_DELETE
            elif roll < 0.1:
                entry = self.entry()
                changes[key] = Overwrite(entry) if type(entry) is dict and roll < 0.07 else entry
            elif roll < 0.6 and type(entries[key]) is dict:
                changes[key] = {"x": self.position(), **({"y": self.position()} if roll < 0.3
                                                         else {})}
        others = current.to_dict().get("others", {})
        return {"entities": changes, "others": {k: {"x": rng.uniform(0, 60)} for k in others
                                                if rng.random() < 0.4}}


def _grid_seen(entries: Any, own: Any, reach: int) -> set[Any]:
    """The reference grid view of :class:`_Edges` (positions read as GridView reads them)."""
    def cell(entry: Any) -> tuple[int, int] | None:
        try:
            x, y = (entry["x"], entry["y"]) if isinstance(entry, dict) else entry[:2]
            return math.floor(x / CELL), math.floor(y / CELL)
        except (KeyError, TypeError, ValueError, OverflowError):
            return None

    center = cell(entries[own]) if isinstance(entries, dict) and own in entries else None
    if center is None:
        return set()
    return {key for key, entry in entries.items() if (at := cell(entry)) is not None
            and abs(at[0] - center[0]) <= reach and abs(at[1] - center[1]) <= reach}


@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32), radius=st.sampled_from([5.0, 20.0]),
    second=st.sampled_from(["grid", "filter", None]), secrets=st.booleans(),
    budget=st.sampled_from([None, 2000]), precise=st.booleans(),
)
def test_viewers_through_the_edge_cases_hold_exactly_their_view_and_no_hidden_byte(
    seed: int, radius: float, second: str | None, secrets: bool, budget: int | None,
    precise: bool,
) -> None:
    rng = random.Random(seed)
    edges = _Edges(rng, precise)
    store = GameStateStore(
        GameState(entities={k: edges.entry() for k in edges.keys[:20]}, tick=0,
                  others={k: {"x": rng.uniform(0, 60), "y": 5.0} for k in range(5)}),
        precision={"entities.*.x": 0.01, "others.*.x": 0.5} if precise else None,
    )
    own = {viewer: rng.choice(edges.keys) for viewer in range(3)}
    other = {viewer: viewer for viewer in own}
    rules = ViewRules([
        GridView("entities", cell_size=CELL, radius=radius, entity=own.get),
        *([GridView("others", cell_size=CELL, radius=CELL, entity=other.get)]
          if second == "grid" else []),
        *([FilterView("others", lambda viewer, state: [k for k in state.others if k != viewer])]
          if second == "filter" else []),
        *([PrivateField("entities.*.secret", owner=own.get)] if secrets else []),
    ])
    world = ViewedWorld(PayloadCache(store), rules)
    payloads = {v: world.viewer(lambda v=v: v, budget and BandwidthBudget(budget)) for v in own}
    held: dict[Any, tuple[GameState | None, StateDecoder]] = {
        v: (None, StateDecoder()) for v in own
    }
    snapshots = {store.time_order: store.snapshot()}
    owned_at: dict[tuple[Any, int], Any] = {}
    for tick in range(40):
        for _ in range(rng.choice([1, 1, 2, 3])):  # (a client may miss some versions)
            if rng.random() < 0.03:
                store.replace_state(GameState(entities={k: edges.entry() for k in edges.keys[:6]}))
            else:
                store.push_update(GameStateUpdate(store.time_order + 1, tick=tick,
                                                  **edges.changes(store.get_game_state())))
            snapshots[store.time_order] = store.snapshot()
        if rng.random() < 0.15:
            own[rng.choice(list(own))] = rng.choice(edges.keys)
        for viewer, (state, decoder) in held.items():
            owned_at.setdefault((viewer, store.time_order), own[viewer])
            payload = payloads[viewer].payload_for(2**64 - 1 if state is None else state.time_order)
            assert payload is not None
            if rng.random() < 0.15:
                continue  # lost
            view = payloads[viewer]._history[payload.target]
            data = _bytes_of(payload)
            entries = snapshots[payload.target].to_dict().get("entities")
            for key, entry in (entries.items() if isinstance(entries, dict) else ()):
                if key not in view.visible[0]:
                    assert (entry["tag"] if type(entry) is dict else entry[2]) not in data
                if secrets and type(entry) is dict and key != view.owners[0]:
                    assert entry["secret"] not in data
            if budget is None:
                reach = math.ceil(radius / CELL)
                assert view.visible[0] == _grid_seen(entries, owned_at[viewer, payload.target],
                                                     reach)
            state = _apply(state, decoder, payload)
            held[viewer] = (state, decoder)
            expected = snapshots[state.time_order].to_dict()
            for name, index in rules.paths.items():
                if not isinstance(expected.get(name), dict):
                    expected.pop(name, None)
                    continue
                expected[name] = {
                    key: {f: v for f, v in entry.items() if not secrets or f != "secret"
                          or key == view.owners[0]} if type(entry) is dict else entry
                    for key, entry in expected[name].items() if key in view.visible[index]
                }
            assert state.to_dict() == expected


def test_a_view_a_budget_let_in_part_by_part_is_never_taken_for_whole_cells() -> None:
    # The cells stay the same, but at the base the budget had let in only some of their
    # entries: the delta must bring the rest whole, not changes to entries the client lacks.
    rules = ViewRules([GridView("units", cell_size=CELL, radius=CELL, entity=lambda v: "me")])
    store, payloads = _viewer_of(rules, GameState(units={"me": {"x": 5.0, "y": 5.0}}),
                                 BandwidthBudget(1000))
    decoder = StateDecoder()
    held = _apply(None, decoder, payloads.payload_for(2**64 - 1))
    store.push_update(GameStateUpdate(1, units={
        i: {"x": 1.0 + i / 10, "y": 2.0, "tag": bytes(100)} for i in range(30)
    }))
    for version in range(2, 12):
        held = _apply(held, decoder, payloads.payload_for(held.time_order))
        seen = payloads._history[held.time_order].visible[0]
        units = store.get_game_state().units
        assert held.units == {key: units[key] for key in seen}
        store.push_update(GameStateUpdate(version, units={
            i: {"y": 2.0 + version / 100} for i in range(30)
        }))
    assert len(held.units) == 31


def test_a_wide_grid_view_keeps_a_bounded_memory_of_its_cells() -> None:
    # 600 viewers, each in a cell of its own, each seeing 41 x 41 cells: the squares of cells
    # a world keeps around each center must not add up to a million cells.
    rules = ViewRules([GridView("units", cell_size=1.0, radius=20.0, entity=lambda v: v)])
    store = GameStateStore(GameState(units={i: [i + 0.5, 0.5] for i in range(600)}))
    world = ViewedWorld(PayloadCache(store), rules)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key in range(600):
            assert world.viewer(lambda key=key: key).payload_for(2**64 - 1) is not None
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 20_000_000
