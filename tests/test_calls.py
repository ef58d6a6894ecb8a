"""Calls that cross into an event loop from other threads: in order, none lost, few wakeups.

The driver and the handler thread queue such calls behind one pending wakeup instead of writing
to the loop's self-pipe per call; these tests burst calls from several threads at a real loop
(the driver's with its real UDP socket) and check what a game relies on: every call runs,
each thread's calls run in the order it made them, and a stop runs after what came before.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from pygase_core.edge.calls import LoopCalls
from pygase_core.edge.driver import EdgeDriver, run_in_thread
from pygase_core.edge.worker import HandlerThread
from tests.waiting import wait_for

THREADS = 4
CALLS = 2000


def burst(submit: Any) -> None:
    """From THREADS threads at once, submit CALLS calls each, tagged (thread, index)."""
    start = threading.Barrier(THREADS)

    def one(thread: int) -> None:
        start.wait()
        for index in range(CALLS):
            submit(thread, index)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


def assert_complete_and_ordered(seen: list[tuple[int, int]]) -> None:
    assert len(seen) == THREADS * CALLS
    for thread in range(THREADS):
        assert [i for t, i in seen if t == thread] == list(range(CALLS))


class _Idle:
    """A driven endpoint with nothing to do: no datagrams, no deadline."""

    def receive_datagram(
        self, data: bytes, address: Any, now: float
    ) -> tuple[list[Any], list[Any]]:
        return [], []

    def handle_timer(self, now: float) -> tuple[list[Any], list[Any]]:
        return [], []

    def get_timer(self) -> float | None:
        return None


def test_driver_calls_from_many_threads_run_in_order_with_few_wakeups() -> None:
    driver = EdgeDriver(_Idle(), on_notices=lambda notices: None)
    seen: list[tuple[int, int]] = []
    on_loop: list[bool] = []
    stop = threading.Event()

    async def main(ready: threading.Event) -> None:
        await driver.open(socket.AF_INET, local_addr=("127.0.0.1", 0))
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.01)
        driver.close()

    thread, failure = run_in_thread("test-driver", main, daemon=True, ready_timeout=10)
    assert not failure

    def record(thread_index: int, index: int) -> list[Any]:
        on_loop.append(threading.current_thread() is thread)
        seen.append((thread_index, index))
        return []

    burst(lambda t, i: driver.call(record, t, i))
    wait_for(lambda: len(seen) == THREADS * CALLS, timeout=20)
    calls = driver._calls
    assert calls is not None
    wakeups = calls.wakeups
    stop.set()
    thread.join(10)
    assert_complete_and_ordered(seen)
    assert all(on_loop)
    assert wakeups < THREADS * CALLS / 2  # most calls shared a wakeup with others


def test_a_failing_call_does_not_stop_the_ones_queued_after_it() -> None:
    ran: list[int] = []
    loop = asyncio.new_event_loop()
    calls = LoopCalls(loop)

    def fail() -> None:
        raise RuntimeError("this call fails")

    calls.submit(ran.append, 1)
    calls.submit(fail)
    calls.submit(ran.append, 2)
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    loop.close()
    assert ran == [1, 2]
    assert calls.wakeups == 1
    assert not calls.submit(ran.append, 3)  # the loop is closed: refused, not lost silently


def test_handler_thread_runs_bursts_in_order_and_stops_after_them() -> None:
    worker = HandlerThread("test-handlers")
    worker.start()
    seen: list[tuple[int, int]] = []
    burst(lambda t, i: worker.submit(lambda: seen.append((t, i))))
    worker.stop(timeout=20)  # runs everything submitted before it, then ends the thread
    assert not worker.running
    assert_complete_and_ordered(seen)
    assert not worker.submit(lambda: None)  # stopped: refused
