"""The event channel's two halves on their own, with a fake clock and acks by hand: the window,
the pacing, the resend backoff, giving up, late acks, the cost of a flush, and the receiver's
refusal to acknowledge what it skipped."""

from __future__ import annotations

from itertools import pairwise

import pytest

from pygase_core.protocol import reliable
from pygase_core.protocol.reliable import (
    INITIAL_WINDOW,
    MAX_EVENTS_AHEAD,
    MIN_GIVE_UP_DELAY,
    MIN_WINDOW,
    PACING_BURST,
    EventReceiver,
    EventSender,
    FragmentRef,
    backoff_timeout,
)

SMALL = b"e"  # a fragment this small costs next to nothing in pacing tokens
FULL = b"F" * 1024  # a full-size fragment of the default EventSender costs one token


def send(sender: EventSender, now: float, rtt: float | None = 0.02) -> list[FragmentRef]:
    return [ref for ref, _ in sender.due(now, rtt)]


def ack(sender: EventSender, refs: list[FragmentRef]) -> list[object]:
    tokens = [sender.acknowledge(ref) for ref in refs]
    return [token for token in tokens if token is not None]


def queue(sender: EventSender, count: int, fragment: bytes = SMALL, retries: int = 0) -> None:
    for i in range(count):
        sender.queue([fragment], retries, token=i)


def run_dead_link(
    sender: EventSender, until: float, rtt: float | None = 0.02
) -> tuple[list[tuple[float, int]], list[tuple[float, object]]]:
    """Wake at every deadline the sender names, ack nothing; returns (when, event_id) of every
    send and (when, token) of every give-up."""
    sends: list[tuple[float, int]] = []
    given_up: list[tuple[float, object]] = []
    now = 0.0
    while now <= until:
        sends.extend((now, ref.event.event_id) for ref in send(sender, now, rtt))
        given_up.extend((now, token) for token in sender.take_given_up())
        deadline = sender.next_deadline(rtt)
        if deadline is None:
            break
        now = max(deadline, now)
    return sends, given_up


# -- the window ------------------------------------------------------------------------------


def test_fragments_beyond_the_window_wait_and_their_clock_does_not_run() -> None:
    sender = EventSender()
    queue(sender, 100)
    first = send(sender, 0.0)
    assert len(first) == INITIAL_WINDOW == sender.window
    assert sender.fragments_in_flight == INITIAL_WINDOW
    assert send(sender, 0.001) == []  # the window is full: the rest waits
    # Nothing is acknowledged: the first 32 are spent after their timeout, the window
    # shrinks, and the waiting ones go out only now, with their own clock.
    later = send(sender, 0.2)
    assert later and all(ref.event.event_id >= INITIAL_WINDOW for ref in later)
    assert sender.window < INITIAL_WINDOW
    _, given_up = run_dead_link(sender, until=MIN_GIVE_UP_DELAY + 0.1)
    early = [token for when, token in given_up if when < MIN_GIVE_UP_DELAY + 0.1]
    assert sorted(early) == list(range(INITIAL_WINDOW))  # the waiting ones not yet given up


def test_acks_grow_the_window_in_slow_start_and_in_flight_never_exceeds_it() -> None:
    sender = EventSender()
    queue(sender, 5000)
    now = 0.0
    windows = []
    for _ in range(5):
        refs = send(sender, now)
        assert len(refs) == sender.window == sender.fragments_in_flight
        windows.append(sender.window)
        ack(sender, refs)
        now += 0.02
    assert windows == [32, 64, 128, 256, 512]  # doubles per round trip


def test_an_idle_sender_does_not_grow_its_window() -> None:
    sender = EventSender()
    for i in range(100):
        sender.queue([SMALL], 0, i)
        ack(sender, send(sender, i * 0.02))  # one at a time: the window is never half used
    assert sender.window == INITIAL_WINDOW


def test_a_loss_episode_shrinks_the_window_once_down_to_the_minimum() -> None:
    sender = EventSender()
    queue(sender, 64, retries=50)
    send(sender, 0.0)
    assert sender.window == INITIAL_WINDOW
    send(sender, backoff_timeout(0.02, 1))  # 32 fragments time out at once: one episode
    assert sender.window == int(INITIAL_WINDOW * reliable.WINDOW_DECREASE)
    run_dead_link(sender, until=30.0)
    assert sender.window == MIN_WINDOW
    assert sender.fragments_in_flight == INITIAL_WINDOW  # resends need no room: they hold it


# -- pacing ----------------------------------------------------------------------------------


def test_pacing_lets_a_small_burst_go_and_names_the_next_send() -> None:
    sender = EventSender(fragment_size=len(FULL))
    queue(sender, 100, FULL)
    first = send(sender, 0.0, rtt=0.1)
    assert len(first) == PACING_BURST  # not the whole window of 32
    deadline = sender.next_deadline(0.1)
    rate = reliable.SLOW_START_PACING_GAIN * INITIAL_WINDOW / 0.1
    assert deadline == pytest.approx(1 / rate)
    assert len(send(sender, deadline, rtt=0.1)) == 1
    # The sends of one window are spread over about a round trip, in bursts of one datagram.
    now = deadline
    times = [now]
    while sender.fragments_in_flight < sender.window:
        now = sender.next_deadline(0.1)  # type: ignore[assignment]
        assert len(send(sender, now, rtt=0.1)) == 1
        times.append(now)
    assert 0.03 < times[-1] < 0.1


def test_resends_are_paced_and_go_before_new_fragments() -> None:
    sender = EventSender(fragment_size=len(FULL))
    sender.queue([FULL], 3, "old")
    send(sender, 0.0)
    queue(sender, 20, FULL)
    refs = send(sender, 0.5)
    assert refs[0].event.token == "old"
    assert len(refs) == PACING_BURST


# -- resend backoff and giving up -------------------------------------------------------------


def test_resends_back_off_exponentially_and_retries_span_seconds() -> None:
    sender = EventSender()
    sender.queue([SMALL], 5, "token")
    sends, given_up = run_dead_link(sender, until=10.0)
    times = [when for when, _ in sends]
    assert len(times) == 6  # sent once, resent five times
    gaps = [b - a for a, b in pairwise(times)]
    assert gaps == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8])
    assert given_up == [(pytest.approx(times[-1] + 1.6), "token")]
    assert sender.pending == 0 and sender.abandoned == 1


def test_the_backoff_is_capped() -> None:
    sender = EventSender()
    sender.queue([SMALL], 6, "token")
    sends, _ = run_dead_link(sender, until=20.0, rtt=None)  # no RTT yet: the base is 0.2 s
    times = [when for when, _ in sends]
    gaps = [b - a for a, b in pairwise(times)]
    assert gaps == pytest.approx([0.2, 0.4, 0.8, 1.6, 2.0, 2.0])


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_no_event_is_given_up_sooner_than_a_second_after_its_first_send(retries: int) -> None:
    sender = EventSender()
    sender.queue([SMALL], retries, "token")
    sends, given_up = run_dead_link(sender, until=5.0, rtt=0.001)
    assert len(sends) == retries + 1
    assert given_up == [(pytest.approx(MIN_GIVE_UP_DELAY), "token")]


def test_the_floor_moves_past_a_spent_event_before_it_is_given_up() -> None:
    sender = EventSender()
    queue(sender, 2)
    lost, delivered = send(sender, 0.0)
    ack(sender, [delivered])
    assert sender.floor == 0
    send(sender, 0.1)  # event 0's only send timed out: nothing more will be sent for it
    assert sender.floor == 2
    assert sender.pending == 1  # ... but it is not given up yet
    assert sender.take_given_up() == []
    send(sender, MIN_GIVE_UP_DELAY)
    assert sender.take_given_up() == [0]
    assert lost.event.event_id == 0


def test_a_late_ack_completes_a_given_up_event_once() -> None:
    sender = EventSender()
    sender.queue([SMALL, SMALL], 0, "token")
    first, second = send(sender, 0.0)
    assert ack(sender, [first]) == []
    send(sender, MIN_GIVE_UP_DELAY)
    assert sender.take_given_up() == ["token"]
    assert ack(sender, [second]) == ["token"]  # the ack came after all
    assert ack(sender, [second, first]) == []  # once
    assert sender.pending == 0
    assert sender.take_given_up() == []


def test_an_event_acknowledged_before_its_give_up_is_never_given_up() -> None:
    sender = EventSender()
    sender.queue([SMALL], 0, "token")
    (ref,) = send(sender, 0.0)
    send(sender, 0.5)  # spent, waiting for its give-up
    assert ack(sender, [ref]) == ["token"]
    run_dead_link(sender, until=3.0)
    assert sender.take_given_up() == [] and sender.abandoned == 0


def test_abandon_gives_up_every_pending_event_with_a_token_once() -> None:
    sender = EventSender()
    sender.queue([SMALL], 0, "acked")
    sender.queue([SMALL], 0, "spent")
    sender.queue([SMALL], 0, None)
    sender.queue([SMALL], 9, "flying")
    acked, _, _, _ = send(sender, 0.0)
    ack(sender, [acked])
    sender.queue([SMALL], 9, "waiting")
    sender.due(0.1, 0.02)  # a generator not run: nothing happens
    send(sender, 0.1)  # "spent" and the None one are spent, "flying" resent, "waiting" sent
    assert sorted(map(str, sender.abandon())) == ["flying", "spent", "waiting"]
    assert sender.pending == 0 and sender.fragments_in_flight == 0
    assert sender.abandon() == [] and sender.next_deadline(0.02) is None


# -- the receiver's window and budget ----------------------------------------------------------


def test_the_sender_stays_within_the_receivers_id_window() -> None:
    sender = EventSender()
    sender.queue([SMALL, SMALL], 50, "first")
    queue(sender, 3 * MAX_EVENTS_AHEAD)
    refs = send(sender, 0.0)
    first = [ref for ref in refs if ref.event.token == "first"]
    ack(sender, first[:1])  # event 0 stays incomplete
    now = 0.0
    highest = 0
    for _ in range(40):
        now += 0.02
        refs = send(sender, now)
        highest = max([highest, *(ref.event.event_id for ref in refs)])
        ack(sender, [ref for ref in refs if ref.event.token != "first"])
    assert highest == MAX_EVENTS_AHEAD - 1  # as far as the receiver accepts, no further


def test_the_byte_budget_counts_acknowledged_events_the_receiver_may_still_hold() -> None:
    sender = EventSender(max_bytes_in_flight=10_000)
    sender.queue([SMALL, SMALL], 50, "head")
    queue(sender, 100, b"x" * 936)  # 1000 bytes each with the overhead
    now = 0.0
    ids: set[int] = set()
    for _ in range(20):
        refs = send(sender, now)
        ids.update(ref.event.event_id for ref in refs)
        ack(sender, [r for r in refs if r.event.token != "head"])  # the head stays incomplete
        now += 0.02
    assert max(ids) == 9  # 130 + 9 * 1000 bytes fit in 10,000: the receiver buffers no more


# -- cost ------------------------------------------------------------------------------------


def touched_per_flush(monkeypatch: pytest.MonkeyPatch, queued: int) -> list[tuple[int, int]]:
    """How many events each of a few flushes (with next_deadline) touches, and the window."""
    touched: set[int] = set()
    counting = {"on": False}

    class CountedEvent(reliable.OutgoingEvent):
        def __getattribute__(self, name: str) -> object:
            if counting["on"]:
                touched.add(id(self))
            return object.__getattribute__(self, name)

    monkeypatch.setattr(reliable, "OutgoingEvent", CountedEvent)
    sender = EventSender(max_bytes_in_flight=1 << 30)
    queue(sender, queued, retries=5)
    now = 0.0
    counts = []
    for _ in range(8):
        touched.clear()
        counting["on"] = True
        refs = send(sender, now)
        sender.next_deadline(0.02)
        counting["on"] = False
        counts.append((len(touched), sender.window))
        ack(sender, refs[: len(refs) * 3 // 4])  # some stay unacknowledged and time out
        now += 0.04
    return counts


def test_a_flush_costs_about_the_window_not_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = touched_per_flush(monkeypatch, 10_000)
    # Each event is touched when sent, when its timer or ack retires it and when the floor
    # passes it: a few times the window per flush at most, however long the queue.
    assert all(touched <= 3 * window for touched, window in counts)
    assert touched_per_flush(monkeypatch, 100_000) == counts


# -- the receiver ----------------------------------------------------------------------------


def test_fragments_of_skipped_events_are_refused_and_of_delivered_ones_are_duplicates() -> None:
    receiver = EventReceiver(max_event_size=4096, fragment_size=1000)
    assert receiver.add_fragment(0, 0, 1, b"a") is True
    assert receiver.add_fragment(1, 0, 2, b"b") is True  # half of event 1
    assert receiver.add_fragment(2, 0, 1, b"c") is True
    assert list(receiver.deliverable(floor=0)) == [b"a"]
    assert list(receiver.deliverable(floor=3)) == [b"c"]  # event 1 skipped
    assert receiver.add_fragment(1, 1, 2, b"b") is False  # too late: must not be acked
    assert receiver.add_fragment(0, 0, 1, b"a") is True  # delivered: a duplicate, acked
    assert receiver.add_fragment(2, 0, 1, b"c") is True
    assert receiver.refused_late == 1 and receiver.duplicates == 2


def test_the_receiver_remembers_a_bounded_stretch_of_skipped_ids() -> None:
    receiver = EventReceiver(max_event_size=4096, fragment_size=1000)
    floor = 0
    for _ in range(10 * reliable.SKIP_MEMORY // 4):
        receiver.add_fragment(floor + 1, 0, 1, b"x")
        floor += 4
        list(receiver.deliverable(floor))  # ids floor-4, floor-2 and floor-1 skipped
    assert len(receiver._skipped) <= reliable.SKIP_MEMORY
    assert receiver.add_fragment(floor - 1, 0, 1, b"x") is False
    assert receiver.add_fragment(floor - 3, 0, 1, b"x") is True
    assert receiver.add_fragment(1, 0, 1, b"x") is False  # long forgotten: not acked
