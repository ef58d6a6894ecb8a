"""Inputs, prediction, reconciliation and lag compensation, sans-IO on seeded lossy links."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from pygase_core import GameState, GameStateMachine, GameStateStore
from pygase_core.model.history import StateHistory
from pygase_core.model.prediction import Prediction
from pygase_core.protocol.inputs import InputClock, InputReceiver
from pygase_core.protocol.packets import InputEntry
from pygase_core.rooms.room import RoomClient
from tests.predictlink import FRAME, SPEED, TICK, Game, Player, distance, walk

SERVER_PUSHES = {40: 20.0, 90: -15.0}
"""Steps at which the server shoves the player on its own: mispredictions to correct."""


def scripted(seconds_right: float, seconds_down: float, start: float) -> Any:
    def inputs(player: Player, now: float) -> Any:
        elapsed = now - start
        if elapsed < seconds_right:
            return [1.0, 0.0]
        if elapsed < seconds_right + seconds_down:
            return [0.0, 1.0]
        return None  # the inputs stop

    return inputs


def test_prediction_leads_corrects_smoothly_and_settles_exactly() -> None:
    """150 ms round trip, 30 ms jitter, 5 % loss each way, the server shoving twice."""
    game = Game(seed=3, latency=0.075, jitter=0.03, loss=0.05)
    me = game.join("me", ("10.0.0.2", 5000))
    prediction = me.prediction
    assert prediction is not None

    def shove(step: int) -> dict[str, Any] | None:
        push = SERVER_PUSHES.get(step - first_step)
        if push is None:
            return None
        player = game.store.get_game_state().players["me"]
        return {"players": {"me": {**player, "x": player["x"] + push}}}

    first_step = game.steps
    game.extra = shove
    start = game.net.now
    frames_before = len(me.shown)
    game.run(3.0, scripted(2.0, 1.0, start))
    flowing = range(frames_before + round(0.5 / FRAME), frames_before + round(2.9 / FRAME))
    # While inputs flow, the prediction runs ahead of what the server has confirmed.
    for index in flowing:
        predicted, authoritative = me.predicted[index], me.authoritative[index]
        assert predicted["x"] + predicted["y"] > authoritative["x"] + authoritative["y"], index
    # The shoves were mispredictions, and the shown entity glided: per frame it moved no more
    # than one input's step plus the configured correction, never the shove's 15 or 20 units.
    assert prediction.stats.mispredictions >= len(SERVER_PUSHES)
    assert 0 < prediction.stats.max_correction_per_frame <= prediction.max_correction
    one_input = SPEED * TICK
    shown = me.shown[frames_before:]
    for before, after in itertools.pairwise(shown):
        assert distance(before, after) <= one_input + prediction.max_correction + 1e-9
    # The inputs stopped: once the server applied them all, prediction == authority, exactly.
    game.run(1.5)
    server_entity = game.store.get_game_state().players["me"]
    assert prediction.pending == 0
    assert me.shown[-1] == me.authoritative[-1] == server_entity
    assert server_entity["x"] > 0 and server_entity["y"] > 0


def _inputs_counted(game: Game, player: Player, total: int) -> Any:
    def inputs(player_: Player, now: float) -> Any:
        if player_.clock.tick >= total:
            return None
        # The direction changes every few frames, so ticks also start early (on a change).
        return [1.0, 0.0] if int(now / (5 * FRAME)) % 2 else [0.0, 1.0]

    return inputs


def test_no_input_is_lost_at_5_percent_loss_each_way() -> None:
    game = Game(seed=5, latency=0.02, jitter=0.01, loss=0.05)
    me = game.join("me", ("10.0.0.2", 5000), predict=False)
    receiver = game.net.server.sessions[me.side.address].connection.inputs_in
    assert receiver is not None
    game.run_until(lambda: receiver.last_applied == 3000, 90, _inputs_counted(game, me, 3000))
    ticks = [taken.tick for taken in game.taken["me"]]
    assert ticks == list(range(1, 3001))
    assert receiver.stats.applied == 3000 and receiver.stats.lost == 0
    assert receiver.stats.dropped == 0
    assert receiver.stats.duplicates > 0  # redundancy at work


def test_at_20_percent_loss_losses_are_counted_and_applied_inputs_are_in_order_once() -> None:
    total = 1500
    game = Game(seed=7, latency=0.005, loss=0.2)
    me = game.join("me", ("10.0.0.2", 5000), predict=False)
    receiver = game.net.server.sessions[me.side.address].connection.inputs_in
    assert receiver is not None
    game.run_until(lambda: receiver.last_applied == total, 60, _inputs_counted(game, me, total))
    ticks = [taken.tick for taken in game.taken["me"]]
    assert ticks == sorted(set(ticks))  # once each, in tick order
    assert receiver.stats.applied == len(ticks)
    assert receiver.stats.lost == total - len(ticks)
    print(f"\n20 % loss: {receiver.stats}")


def test_a_cheating_client_moves_no_faster_than_an_honest_one() -> None:
    """Ten inputs per tick, oversized inputs, far-future ticks: one step per tick at most."""
    game = Game(seed=11, latency=0.03, jitter=0.01, loss=0.02)
    honest = game.join("honest", ("10.0.0.2", 5000), predict=False)
    cheat = game.join("cheat", ("10.0.0.3", 5000), predict=False)
    connection = cheat.side.endpoint.connection
    assert connection is not None
    ticks = iter(range(1, 10**9))
    right = b"\x92\x01\x00"  # [1, 0]

    def inputs(player: Player, now: float) -> Any:
        if player is honest:
            return [1.0, 0.0]
        for _ in range(10):
            connection.queue_input(next(ticks), 0, right)
        connection.queue_input(next(ticks), 0, bytes(200))  # oversized
        return None

    game.run(2.0, inputs)
    receiver = game.net.server.sessions[cheat.side.address].connection.inputs_in
    assert receiver is not None
    # Far-future ticks, straight into the server's buffer as if they had come in a packet.
    far = (receiver.last_applied or 0) + 10**6
    receiver.receive(tuple(InputEntry(far + i, 0, right) for i in range(20)))
    game.run(1.0, inputs)
    players = game.store.get_game_state().players
    assert players["cheat"]["x"] <= players["honest"]["x"] + 2 * SPEED * TICK
    assert players["honest"]["x"] > 0
    stats = receiver.stats
    assert stats.oversized > 0 and stats.overflow > 0 and stats.too_far_ahead >= 20
    assert stats.applied <= game.steps


def test_lag_compensation_hits_where_the_shooter_saw_the_target() -> None:
    store = GameStateStore(GameState(target=0.0))
    machine = GameStateMachine(store)
    machine.time_step = lambda state, dt: {"target": state.target + 10.0}  # type: ignore
    receiver = InputReceiver()
    shooter = RoomClient("shooter", None)
    machine.input_source = lambda: [(shooter, receiver)]
    shots: list[tuple[Any, float]] = []

    def on_input(client: Any, value: Any, game_state: Any, dt: float) -> None:
        if value == "fire":
            shots.append((machine.world_at(client), game_state.target))

    machine.on_input = on_input  # type: ignore[method-assign]
    seen: dict[int, float] = {}
    for tick in range(1, 31):
        seen[store.time_order] = store.get_game_state().target
        receiver.receive((InputEntry(tick, store.time_order, b"\xa4idle"),))
        machine.step(TICK)
    # The shooter's screen showed the state of 10 steps ago; it aimed at the target there.
    view = store.time_order - 10
    aim = seen[view]
    receiver.receive((InputEntry(31, view, b"\xa4fire"),))
    machine.step(TICK)
    world, target_now = shots[-1]
    assert world is not None and not world.clamped
    assert world.time_order == view and world.state.target == aim  # a hit, where it was seen
    assert abs(target_now - aim) >= 100  # though the target has moved on since
    # A view older than the history's second is clamped to the oldest state kept.
    last = 32 + round(1.5 / TICK)
    for tick in range(32, last):
        receiver.receive((InputEntry(tick, store.time_order, b"\xa4idle"),))
        machine.step(TICK)
    receiver.receive((InputEntry(last, 1, b"\xa4fire"),))
    machine.step(TICK)
    assert len(shots) == 2
    world, _ = shots[-1]
    history = machine.history
    assert world is not None and world.clamped and history is not None
    assert world.time_order > 1
    assert len(history) <= math.ceil(machine.history_seconds / TICK) + 1


def test_input_clock_paces_ticks_and_never_holds_a_change_back() -> None:
    clock = InputClock(0.02)
    assert clock.stamp("a", 0.0) == 1
    assert clock.stamp("a", 0.005) is None  # same tick, same value
    assert clock.stamp("b", 0.010) == 2  # a change starts the next tick at once
    assert clock.stamp("c", 0.015) is None  # but never two ticks ahead
    assert clock.stamp("c", 0.041) == 3
    assert clock.stamp("c", 5.0) == 4  # after a pause: the next tick, no rush to catch up
    assert clock.stamp("c", 5.001) is None


def test_bad_arguments_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="path"):
        Prediction("", walk, TICK, "me")
    with pytest.raises(ValueError, match="path"):
        Prediction("players..x", walk, TICK, "me")
    with pytest.raises(TypeError, match="step"):
        Prediction("players.{me}", "walk", TICK, "me")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_correction"):
        Prediction("players.{me}", walk, TICK, "me", max_correction=0)
    with pytest.raises(ValueError, match="interval"):
        InputClock(0)
    with pytest.raises(ValueError, match="seconds"):
        StateHistory(seconds=-1)
    with pytest.raises(TypeError, match="time_order"):
        StateHistory().at("now")  # type: ignore[arg-type]
    machine = GameStateMachine(GameStateStore())
    with pytest.raises(ValueError, match="path"):
        machine.predict("", walk)
    with pytest.raises(TypeError, match="client"):
        machine.world_at("somebody")


def test_the_jitter_buffer_gives_up_gaps_and_bounds_what_it_holds() -> None:
    receiver = InputReceiver(max_size=8, max_buffered=3, max_ahead=10)
    entry = lambda tick, data=b"\x01": InputEntry(tick, 0, data)  # noqa: E731
    receiver.receive((entry(1), entry(2), entry(4)))
    assert [receiver.take().tick for _ in range(2)] == [1, 2]  # type: ignore[union-attr]
    taken = receiver.take()
    assert taken is not None and taken.tick == 4 and receiver.stats.lost == 1  # 3 never came
    receiver.receive((entry(3), entry(4), entry(5, bytes(9)), entry(15), entry(6)))
    stats = receiver.stats
    assert (stats.late + stats.duplicates, stats.oversized, stats.too_far_ahead) == (2, 1, 1)
    receiver.receive((entry(7), entry(8), entry(9)))  # four held: the oldest (6) goes
    assert stats.overflow == 1
    assert [receiver.take().tick for _ in range(3)] == [7, 8, 9]  # type: ignore[union-attr]
    assert receiver.take() is None and stats.underruns == 1
    # An overflow that skips over ticks that never came counts them lost: every tick settled
    # is applied, lost or overflowed, exactly once.
    receiver.receive((entry(11), entry(12), entry(13), entry(14)))  # 10 never came
    assert stats.overflow == 2 and receiver.last_applied == 11
    assert [receiver.take().tick for _ in range(3)] == [12, 13, 14]  # type: ignore[union-attr]
    assert stats.applied + stats.lost + stats.overflow == receiver.last_applied == 14


def test_the_clients_and_rooms_new_calls_refuse_bad_arguments() -> None:
    from pygase_core import Client, Room

    client = Client()
    with pytest.raises(ValueError, match="path"):
        client.predict("", walk)
    with pytest.raises(TypeError, match="step"):
        client.predict("players.{me}", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_correction"):
        client.predict("players.{me}", walk, max_correction=-1)
    with pytest.raises(TypeError, match="smooth"):
        client.predict("players.{me}", walk, smooth="x")
    with pytest.raises(ValueError, match="max_input_size"):
        Client(max_input_size=300)
    with pytest.raises(TypeError, match="max_input_size"):
        Client(max_input_size="big")  # type: ignore[arg-type]
    # The view goes into every input on the wire: a bad one used to break each packet's
    # encoding on the client's network loop, losing all inputs from then on.
    bad_views = (("x", TypeError), (1.5, TypeError), (-1, ValueError), (2**64, ValueError))
    for bad_view, error in bad_views:
        with pytest.raises(error, match="view"):
            client.view = bad_view  # type: ignore[assignment]
    client.view = 7
    client.view = None
    room = Room()
    with pytest.raises(ValueError, match="path"):
        room.predict("players.", walk)
    with pytest.raises(TypeError, match="RoomClient"):
        room.world_at("somebody")  # type: ignore[arg-type]


def test_after_a_delay_spike_the_client_paces_its_inputs_back_to_arriving_just_in_time() -> None:
    """A 100 ms spike piles inputs up in the server's buffer; slower ticks drain it, losslessly."""
    game = Game(seed=9, latency=0.02, jitter=0.005)
    me = game.join("me", ("10.0.0.2", 5000), predict=False)
    receiver = game.net.server.sessions[me.side.address].connection.inputs_in
    assert receiver is not None
    right = lambda player, now: [1.0, 0.0]  # noqa: E731
    game.run(2.0, right)
    up = game.net.up[me.side.address]
    up.latency = 0.12  # the spike: inputs arrive 100 ms later for a moment...
    game.run(0.5, right)
    up.latency = 0.02  # ...then all at once
    game.run_until(lambda: (receiver.slack or 0) >= 3, 2.0, right)
    piled = receiver.slack
    game.run_until(lambda: receiver.slack is not None and receiver.slack <= 1, 5.0, right)
    assert piled is not None and piled >= 3
    assert receiver.stats.dropped == 0 and receiver.stats.lost == 0


def test_a_bad_history_length_is_refused_where_it_is_set() -> None:
    from pygase_core import Room, Server

    machine = GameStateMachine(GameStateStore())
    for bad in (float("inf"), 0, -1.0, 1e300, float("nan")):
        with pytest.raises(ValueError, match="history_seconds"):
            machine.history_seconds = bad
    with pytest.raises(TypeError, match="history_seconds"):
        machine.history_seconds = "1"  # type: ignore[assignment]
    assert machine.history_seconds == 1.0  # unchanged by the refusals
    with pytest.raises(ValueError, match="seconds"):
        StateHistory(seconds=1e300)  # (was an OverflowError from the deque)

    class Forever(GameStateMachine):
        history_seconds = float("inf")  # a class attribute hides the checked property

    forever = Forever(GameStateStore())
    forever.time_step = lambda state, dt: None  # type: ignore[method-assign, assignment]
    receiver = InputReceiver()
    forever.input_source = lambda: [(RoomClient("me", None), receiver)]
    receiver.receive((InputEntry(1, 0, b"\x01"),))
    forever.step(TICK)  # logged, and the default history kept: the loop goes on
    assert forever.history is not None and forever.history.seconds == 1.0

    class Endless(Room):
        history_seconds = float("inf")

    with pytest.raises(ValueError, match="history_seconds"):
        Server().define("endless", Endless)


def test_world_at_refuses_a_client_not_in_the_world_and_history_clamps_both_ends() -> None:
    store = GameStateStore(GameState(x=0))
    machine = GameStateMachine(store)
    machine.time_step = lambda state, dt: {"x": state.x + 1}  # type: ignore
    seated, receiver = RoomClient("seated", None), InputReceiver()
    machine.input_source = lambda: [(seated, receiver)]
    assert machine.world_at(seated) is None  # seated, no input yet
    with pytest.raises(ValueError, match="stranger"):
        machine.world_at(RoomClient("stranger", None))
    for tick in range(1, 4):
        receiver.receive((InputEntry(tick, store.time_order, b"\x01"),))
        machine.step(TICK)
    history = machine.history
    assert history is not None
    newest = history.at(store.time_order)
    assert newest is not None and not newest.clamped
    ahead = history.at(store.time_order + 1000)  # a view no state had: the newest, clamped
    assert ahead is not None and ahead.clamped and ahead.time_order == newest.time_order
    behind = history.at(-5)
    assert behind is not None and behind.clamped
    for bad in (1.5, None, True, "1"):
        with pytest.raises(TypeError):
            history.at(bad)  # type: ignore[arg-type]


def test_the_replay_runs_where_the_prediction_is_read_and_survives_a_failing_step() -> None:
    calls: list[Any] = []

    def fragile(entity: dict[str, Any], value: Any, dt: float) -> dict[str, Any]:
        calls.append(value)
        if value == "bad" or (value == "edge" and entity["x"] >= 2):
            raise RuntimeError("the step cannot take this")
        return {**entity, "x": entity["x"] + 1}

    prediction = Prediction("players.{me}", fragile, TICK, "me")
    state = {"players": {"me": {"x": 0}}}
    prediction.reconcile(state, None)
    prediction.add_input(1, "go")
    with pytest.raises(RuntimeError):
        prediction.add_input(2, "bad")  # raised at the call, the input left out
    prediction.add_input(3, "edge")
    assert prediction.predicted == {"x": 2} and prediction.pending == 2
    calls.clear()
    prediction.reconcile({"players": {"me": {"x": 1}}}, None)  # a push: the edge input fails
    prediction.reconcile({"players": {"me": {"x": 1}}}, None)
    assert calls == []  # arriving states run no game code (the client's network loop)
    assert prediction.sample() == {"x": 2}  # replayed once, the failing input left out
    assert calls == ["go", "edge"]
    assert prediction.stats.step_failures == 1 and prediction.pending == 1
    prediction.reconcile({"players": {"me": {"x": 2}}}, 1)
    assert prediction.predicted == {"x": 2} and prediction.pending == 0
    with pytest.raises(ValueError, match="max_correction"):
        Prediction("players.{me}", fragile, TICK, "me", max_correction=True)
    with pytest.raises(ValueError, match="dt"):
        Prediction("players.{me}", fragile, "0.02", "me")  # type: ignore[arg-type]


def test_the_tick_interval_is_known_as_soon_as_the_loop_is_started() -> None:
    """The one-world server tells joining clients machine.tick_interval: their input pace."""
    machine = GameStateMachine(GameStateStore())
    machine.time_step = lambda state, dt: None  # type: ignore[method-assign, assignment]
    thread = machine.run_game_loop_in_thread(0.05)
    try:
        assert machine.tick_interval == 0.05
    finally:
        machine.stop()
        thread.join(5)
    assert machine.tick_interval == 0.02  # stopped: the default again


def test_the_stats_are_up_to_date_with_the_latest_state_when_read() -> None:
    prediction = Prediction("players.{me}", walk, TICK, "me")
    prediction.reconcile({"players": {"me": {"x": 0.0, "y": 0.0}}}, None)
    prediction.add_input(1, [1.0, 0.0])
    prediction.reconcile({"players": {"me": {"x": 50.0, "y": 0.0}}}, 1)  # pushed by the server
    assert prediction.stats.mispredictions == 1 and prediction.stats.reconciliations == 2


def test_an_input_tick_beyond_32_bits_is_malformed_not_a_crash_of_the_servers_acks() -> None:
    """first = 2**32 - 1 plus an offset used to be taken, and its INPUT_ACK could not be encoded."""
    from pygase_core.errors import ProtocolError
    from pygase_core.protocol import packets

    header = packets.encode_data_header(1, 0, 0, 0)
    highest = packets.encode_inputs([InputEntry(2**32 - 1, 0, b"\x01")])
    assert isinstance(packets.decode(header + highest), packets.Data)
    # The same with a second entry one tick further: count 2, then (offset 1, back 0, size 1).
    beyond = highest[:13] + b"\x02" + highest[14:] + b"\x01\x00\x01\x01"
    with pytest.raises(ProtocolError, match="32 bits"):
        packets.decode(header + beyond)


def test_a_slow_step_never_holds_up_a_state_arriving_from_the_network() -> None:
    import threading

    inside, release = threading.Event(), threading.Event()

    def slow(entity: dict[str, Any], value: Any, dt: float) -> dict[str, Any]:
        inside.set()
        assert release.wait(10)
        return {**entity, "x": entity["x"] + 1}

    prediction = Prediction("players.{me}", slow, TICK, "me")
    prediction.reconcile({"players": {"me": {"x": 0}}}, None)
    game = threading.Thread(target=prediction.add_input, args=(1, "right"))
    game.start()  # the game's thread, in the middle of a slow step
    try:
        assert inside.wait(10)
        network = threading.Thread(
            target=prediction.reconcile, args=({"players": {"me": {"x": 5}}}, None)
        )
        network.start()
        network.join(5)
        assert not network.is_alive()  # the network loop's hand-over did not wait for it
    finally:
        release.set()
        game.join(10)
    assert prediction.predicted == {"x": 6} and prediction.pending == 1
