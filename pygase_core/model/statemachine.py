"""The game loop: progresses the game state through time at a fixed rate.

A :class:`GameStateMachine` owns the simulation logic. Each step it applies the events clients
sent since the last step, in arrival order, then the user's ``time_step``, and pushes each
resulting dict of changes to the :class:`~pygase_core.GameStateStore` at once, so every
later handler sees the state as the earlier ones left it.

Steps are scheduled on fixed deadlines (``start + n * interval`` on the monotonic clock), so
the rate does not drift with the time each step takes. The loop sleeps until each deadline; if it
falls several steps behind (a long step, a suspended process) it starts counting afresh instead
of running a burst of catch-up steps. ``dt`` is always the real time since the previous step, so
a simulation that scales its changes by ``dt`` stays correct either way.

Inputs (``Client.send_input``) reach the game through :meth:`GameStateMachine.on_input`: each
step, after the events and before ``time_step``, the machine takes at most one input per client
from its :attr:`GameStateMachine.input_source` (the server sets it) and calls
``on_input(client, value, game_state, dt)``, whose update dict is pushed like a handler's. ``dt``
is the tick interval, the same on every step and on the client, so a step function shared with
the client's prediction (:meth:`GameStateMachine.predict`) gives the same result on both sides.
While inputs flow the machine keeps a short history of its states for lag compensation
(:meth:`GameStateMachine.world_at`).

Game logic errors must not end the game: an exception in a handler or in ``time_step``, or a
return value that cannot be applied, is logged with its traceback and the loop goes on. A failure
that repeats every tick is logged in full once, then as a count of repeats every few seconds; a
step that takes longer than the tick interval is logged with its duration (rate-limited too).

The machine reads time only through its ``clock`` (``time.monotonic`` unless given), and
:meth:`GameStateMachine.step` runs one step on demand, so tests drive it without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from pygase_core.errors import UsageError
from pygase_core.model.events import Event
from pygase_core.model.failurelog import FailureLog
from pygase_core.model.gamestate import GameState, GameStateUpdate, GameStatus
from pygase_core.model.handlers import EventHandlerRegistry, Handler, dispatch_async
from pygase_core.model.history import (
    DEFAULT_HISTORY_SECONDS,
    HistoricalState,
    StateHistory,
    check_seconds,
)
from pygase_core.model.prediction import Step, apply_input, check_declaration
from pygase_core.model.store import GameStateStore

if TYPE_CHECKING:
    from pygase_core.protocol.inputs import InputReceiver

InputSource = Callable[[], Iterable[tuple[Any, "InputReceiver"]]]
"""What the machine takes inputs from: each client (with an ``id``) and its jitter buffer."""
DEFAULT_TICK_INTERVAL = 0.02

__all__ = ["GameStateMachine"]

logger = logging.getLogger("pygase.statemachine")

_RESYNC_AFTER_STEPS: Final = 3
"""How many intervals behind schedule the loop may fall before it resynchronises."""


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class GameStateMachine:
    """Run a simulation that progresses the game state.

    Use it as a base class and implement :meth:`time_step`, or assign a function with the same
    parameters after instantiation (``machine.time_step = fn``).

    Args:
        game_state_store: the store whose state is progressed.
        clock: the monotonic clock the loop schedules its steps by, in seconds.

    Attributes:
        game_state_store: the store whose state is progressed.
        game_time: seconds the simulation has been active, summed over all runs.
    """

    max_queued_events: int = 100_000
    """Events waiting for the next step beyond this many are dropped (with a warning)."""
    _history_seconds: float = DEFAULT_HISTORY_SECONDS

    def __init__(
        self, game_state_store: GameStateStore, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not isinstance(game_state_store, GameStateStore):
            raise TypeError(
                f"game_state_store must be a GameStateStore, not {type(game_state_store).__name__}"
            )
        if not callable(clock):
            raise TypeError("clock must be a callable returning seconds")
        self.game_state_store = game_state_store
        self._clock = clock
        self.failures = FailureLog(logger, clock=clock)
        """Where failing and overrunning game logic is reported, without flooding the log."""
        self._interval: float | None = None
        self.game_time = 0.0
        self._handlers = EventHandlerRegistry()
        self._events: deque[Event] = deque()
        # Guards the run bookkeeping below, which other threads read to stop the loop.
        self._control = threading.Lock()
        self._run_token: object | None = None
        self._stop_requested = False
        self._stopped = threading.Event()
        self._stopped.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._finished: asyncio.Event | None = None
        # Only touched in the loop's own thread.
        self._sleeper: asyncio.Future[None] | None = None
        self._in_step = False
        self.input_source: InputSource | None = None
        """Where each step takes the clients' inputs from (set by the server or room)."""
        self._prediction: tuple[tuple[str, ...], Step] | None = None
        self._views: dict[str, int] = {}
        self._history: StateHistory | None = None

    # -- game logic ------------------------------------------------------------------------------

    def time_step(self, game_state: GameState, dt: float) -> dict[str, Any]:
        """Calculate a game state update.

        Implement this in a subclass (or assign a function) to return a dict of changed state
        attributes; an empty dict or None changes nothing. It may be a coroutine function.

        Args:
            game_state: the state of the game before the time step.
            dt: seconds since the previous time step; scale changes by it to simulate at a
                consistent speed.
        """
        raise NotImplementedError(
            "implement GameStateMachine.time_step in a subclass or assign a function to it"
        )

    def on_input(
        self, client: Any, value: Any, game_state: GameState, dt: float
    ) -> dict[str, Any] | None:
        """Apply one client's input for this step; returns a dict of changes (None: none).

        Called each step, after the events and before :meth:`time_step`, at most once per
        client, with its inputs in tick order. ``client`` has the ``id`` the client knows as
        ``Client.id``; ``dt`` is the tick interval. By default it applies the step declared
        with :meth:`predict`; override it (or assign a function) for anything else. It may be a
        coroutine function.
        """
        if self._prediction is None:
            return None
        segments, step = self._prediction
        return apply_input(segments, step, str(client.id), value, game_state, dt)

    def predict(self, path: str, step: Step) -> None:
        """Declare how inputs move each client's entity, the same way clients predict it.

        ``path`` names the entity with ``{me}`` for the client's id (``"players.{me}"``);
        ``step(entity, value, dt)`` returns the entity after one input. The default
        :meth:`on_input` applies it; the client declares the same with ``Client.predict``.
        """
        self._prediction = (check_declaration(path, step), step)

    @property
    def tick_interval(self) -> float:
        """Seconds between steps of the running loop (the default interval when stopped)."""
        return self._interval or DEFAULT_TICK_INTERVAL

    @property
    def history_seconds(self) -> float:
        """How far back :meth:`world_at` reaches (the history is kept while inputs flow).

        Set it before the first input arrives (the history is made then); above 0 and at most
        an hour, else ``ValueError`` (``TypeError`` for what is not a number).
        """
        return self._history_seconds

    @history_seconds.setter
    def history_seconds(self, seconds: float) -> None:
        self._history_seconds = check_seconds("history_seconds", seconds)

    @property
    def history(self) -> StateHistory | None:
        """The recent states by time_order, kept while clients send inputs (None: not yet)."""
        return self._history

    def world_at(self, client: Any) -> HistoricalState | None:
        """The world as ``client`` saw it when it made its latest applied input.

        That is the state it was showing (its input's view: the state it had, less its
        interpolation delay), from the history, clamped at the history's bound. None before
        the client's first input, or without a history. ``ValueError`` for a client that is
        not in this world (it never joined, or it left).
        """
        client_id = getattr(client, "id", None)
        if not isinstance(client_id, str):
            raise TypeError("world_at takes a client (with the id the Client knows as Client.id)")
        source = self.input_source
        if client_id not in self._views and (
            source is None or all(str(known.id) != client_id for known, _inputs in source())
        ):
            raise ValueError(f"world_at: no client {client_id!r} is in this world")
        return self.view_of(client_id)

    def view_of(self, client_id: str) -> HistoricalState | None:
        """The world as the client of this id saw it at its latest applied input (None: no
        input or no history yet); :meth:`world_at` without the check that it is here."""
        view = self._views.get(client_id)
        history = self._history
        if view is None or history is None:
            return None
        return history.at(view)

    def register_event_handler(self, event_type: str, event_handler_function: Handler) -> None:
        """Call ``event_handler_function`` for events of ``event_type`` during the game loop.

        Besides the event's data, the handler is passed those of the keyword arguments
        ``game_state`` (the state as of this event), ``dt`` (time since the last step) and
        ``client_address`` (the sender) that its signature accepts. Like :meth:`time_step` it
        returns a dict of changes (or None), and may be a coroutine function.
        """
        self._handlers.register(event_type, event_handler_function)

    def push_event(self, event: Event) -> None:
        """Queue an event to be handled in the next step; safe to call from any thread."""
        if not isinstance(event, Event):
            raise TypeError(f"expected an Event, not {type(event).__name__}")
        if len(self._events) >= self.max_queued_events:
            logger.warning("event queue full; dropped event of type %r", event.event_type)
            return
        self._events.append(event)

    _push_event = push_event
    """The name the original PyGaSe used (a Server's ``event_wire`` calls it)."""

    # -- running -----------------------------------------------------------------------------------

    def run_game_loop(self, interval: float = 0.02) -> None:
        """Simulate the game world in this thread until :meth:`stop` is called.

        Args:
            interval: seconds between the starts of consecutive time steps.

        Raises:
            ValueError: if ``interval`` is not a positive number.
            NotImplementedError: if no ``time_step`` was provided.
            RuntimeError: if the loop is already running, or an event loop runs in this
                thread (then await :meth:`run_game_loop_async` instead).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "an asyncio event loop runs in this thread: await run_game_loop_async() instead"
            )
        interval, token = self._claim(interval)
        try:
            asyncio.run(self._run(interval, token))
        finally:
            self._release(token)

    async def run_game_loop_async(self, interval: float = 0.02) -> None:
        """Simulate the game world as a coroutine until stopped (see :meth:`run_game_loop`)."""
        interval, token = self._claim(interval)
        try:
            await self._run(interval, token)
        finally:
            self._release(token)

    def run_game_loop_in_thread(self, interval: float = 0.02) -> threading.Thread:
        """Simulate the game world in a new daemon thread and return that thread.

        The loop counts as running from the moment this returns, so an immediate :meth:`stop`
        is not lost.
        """
        interval, token = self._claim(interval)

        def main() -> None:
            try:
                asyncio.run(self._run(interval, token))
            finally:
                self._release(token)

        thread = threading.Thread(target=main, name="pygase-game-loop", daemon=True)
        try:
            thread.start()
        except BaseException:
            self._release(token)
            raise
        return thread

    @property
    def running(self) -> bool:
        """Whether the game loop runs (from its start until it has stopped)."""
        return not self._stopped.is_set()

    def stop(self, timeout: float = 1.0) -> bool:
        """Pause the simulation; return whether the loop had stopped within ``timeout`` seconds.

        Safe to call from any thread. Called from the loop's own thread (say, in a handler), it
        cannot wait for the loop, which only finishes once the caller returns: it then requests
        the stop and returns False. A later run resumes the simulation where it stopped.
        """
        if not self._request_stop():
            return True
        if threading.get_ident() == self._loop_thread:
            return False
        return self._stopped.wait(timeout)

    async def stop_async(self, timeout: float = 1.0) -> bool:
        """Pause the simulation from a coroutine (see :meth:`stop`), without blocking the loop."""
        if not self._request_stop():
            return True
        running = asyncio.get_running_loop()
        with self._control:
            same_loop = running is self._loop
            finished = self._finished
        if same_loop and finished is not None:
            if self._in_step:
                return False
            try:
                await asyncio.wait_for(finished.wait(), timeout)
            except asyncio.TimeoutError:
                return self._stopped.is_set()
            return True
        return await running.run_in_executor(None, self._stopped.wait, timeout)

    def _has_time_step(self) -> bool:
        return "time_step" in vars(self) or type(self).time_step is not GameStateMachine.time_step

    def _claim(self, interval: float) -> tuple[float, object]:
        """Validate the arguments and mark the loop as running, atomically."""
        if (
            isinstance(interval, bool)
            or not isinstance(interval, int | float)
            or not math.isfinite(interval)
            or interval <= 0
        ):
            raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
        if not self._has_time_step():
            raise NotImplementedError(
                "implement GameStateMachine.time_step in a subclass or assign a function to it"
            )
        token = object()
        with self._control:
            if self._run_token is not None:
                raise RuntimeError("the game loop is already running")
            self._run_token = token
            self._stop_requested = False
            self._stopped.clear()
            # Known from now on, not once the loop's thread gets going: a client joining in
            # between is told this interval, which its inputs are paced by.
            self._interval = float(interval)
        return float(interval), token

    def _release(self, token: object) -> None:
        """Mark the run identified by ``token`` as over (a no-op if it already is)."""
        with self._control:
            if self._run_token is not token:
                return
            self._run_token = None
            self._loop = None
            self._loop_thread = None
            self._interval = None
            self._stopped.set()

    def _request_stop(self) -> bool:
        """Ask a running loop to stop; return whether one was running."""
        with self._control:
            if self._run_token is None:
                return False
            self._stop_requested = True
            loop = self._loop
        if loop is not None:
            # The loop may have closed in the meantime; then it is stopping anyway.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake)
        return True

    def _wake(self) -> None:
        """Cut the current sleep short (runs in the loop's thread)."""
        if self._sleeper is not None:
            _resolve(self._sleeper)

    async def _sleep_until(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        delay = deadline - self._clock()
        if delay <= 0:
            await asyncio.sleep(0)
            return
        sleeper: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(delay, _resolve, sleeper)
        self._sleeper = sleeper
        try:
            await sleeper
        finally:
            timer.cancel()
            self._sleeper = None

    async def _run(self, interval: float, token: object) -> None:
        finished = asyncio.Event()
        with self._control:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
            self._finished = finished
        try:
            self._push_changes({"game_status": GameStatus.Active}, "starting the game loop")
            self._interval = interval
            start = previous = self._clock()
            steps = 0
            while not self._stop_requested:
                await self._sleep_until(start + (steps + 1) * interval)
                if self._stop_requested:
                    break
                steps += 1
                now = self._clock()
                dt = now - previous
                previous = now
                self.game_time += dt
                await self._step(dt)
                now = self._clock()
                if now - (start + steps * interval) > _RESYNC_AFTER_STEPS * interval:
                    start, steps = now, 0
        finally:
            self._interval = None
            self.failures.flush()
            self._push_changes({"game_status": GameStatus.Paused}, "stopping the game loop")
            self._release(token)
            finished.set()

    # -- one step ----------------------------------------------------------------------------------

    def step(self, dt: float) -> None:
        """Run one step now, in this thread: the queued events, then ``time_step(state, dt)``.

        For tests and for programs that drive the simulation themselves. Coroutine handlers
        are awaited on a private event loop, so this cannot be called from a running one
        (await the loop's own steps instead).
        """
        if isinstance(dt, bool) or not isinstance(dt, int | float) or not math.isfinite(dt):
            raise ValueError(f"dt must be a finite number of seconds, not {dt!r}")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise UsageError("step() cannot run inside an event loop; the game loop steps itself")
        self.game_time += dt
        asyncio.run(self._step(float(dt)))

    async def step_async(self, dt: float) -> None:
        """Coroutine form of :meth:`step`, for a loop that drives the machine itself."""
        self.game_time += dt
        await self._step(float(dt))

    async def apply_events_async(self, dt: float = 0.0) -> None:
        """Run the handlers of the events queued so far, without a time step.

        Events arriving meanwhile wait for the next call. (A step does this first; a room
        calls it alone to settle the last leave before it pauses.)
        """
        store = self.game_state_store
        for _ in range(len(self._events)):
            event = self._events.popleft()
            extras = {
                "game_state": store.get_game_state(),
                "dt": dt,
                "client_address": event.client_address,
                "client": event.client,
            }
            source = f"the handler for {event.event_type!r}"
            handled = await dispatch_async(
                self._handlers, event, extras, on_error=self._failed(source)
            )
            self._push_changes(handled, source)

    async def _step(self, dt: float) -> None:
        self._in_step = True
        started = self._clock()
        try:
            store = self.game_state_store
            await self.apply_events_async(dt)
            inputs = await self._apply_inputs(dt)
            try:
                changes: object = self.time_step(store.get_game_state(), dt)
                if inspect.isawaitable(changes):
                    changes = await changes
            except Exception as error:
                self.failures.failed("time_step", error)
                changes = None
            self._push_changes(changes, "time_step")
            if inputs or self._history is not None:
                self._record_history()
        finally:
            self._in_step = False
            took = self._clock() - started
            interval = self._interval
            if interval is not None and took > interval:
                self.failures.overran("a game loop step", took, interval)

    async def _apply_inputs(self, dt: float) -> bool:
        """Hand each client's next input to :meth:`on_input`; returns whether any came."""
        source = self.input_source
        if source is None:
            return False
        store = self.game_state_store
        interval = self._interval or dt
        any_input = False
        for client, receiver in source():
            taken = receiver.take()
            if taken is None:
                continue
            any_input = True
            # Before the push: no state that contains this input goes out acked for less.
            receiver.record_applied(store.time_order + 1, taken.tick)
            self._views[str(client.id)] = taken.view
            try:
                changes: object = self.on_input(client, taken.value, store.get_game_state(),
                                                interval)
                if inspect.isawaitable(changes):
                    changes = await changes
            except Exception as error:
                self.failures.failed("on_input", error)
                changes = None
            self._push_changes(changes, "on_input")
            receiver.record_applied(store.time_order, taken.tick)
        return any_input

    def _record_history(self) -> None:
        history = self._history
        if history is None:
            try:
                history = StateHistory(self.history_seconds, self.tick_interval)
            except (TypeError, ValueError) as error:  # a subclass's own history_seconds
                self.failures.failed("history_seconds", error)
                history = StateHistory(DEFAULT_HISTORY_SECONDS, self.tick_interval)
            self._history = history
        store = self.game_state_store
        with store.lock:
            history.record(store.time_order, store.get_game_state().to_dict())

    def forget_client(self, client: Any) -> None:
        """Drop what the machine keeps about a client that left (its last view)."""
        self._views.pop(str(getattr(client, "id", "")), None)

    def _failed(self, source: str) -> Callable[[BaseException], None]:
        return lambda error: self.failures.failed(source, error)

    def _push_changes(self, changes: object, source: str) -> None:
        """Push a dict of changes as the next update; log (not raise) if that is impossible."""
        if changes is None:
            return
        store = self.game_state_store
        try:
            if not isinstance(changes, Mapping):
                raise TypeError(
                    f"{source} returned {type(changes).__name__}, expected a dict of changes"
                )
            if not changes:
                return
            update = GameStateUpdate.from_changes(store.time_order + 1, changes)
            store.push_update(update)
        except Exception as error:
            self.failures.failed(f"applying the changes of {source}", error)
