"""Backend: a GameStateStore, a GameStateMachine and a Server wired together in one call."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from pygase_core.edge import loops
from pygase_core.edge.driver import check_hostname, check_port, run_in_thread
from pygase_core.edge.server import Server, announce_on_stderr
from pygase_core.model.gamestate import GameState
from pygase_core.model.statemachine import GameStateMachine
from pygase_core.model.store import GameStateStore


class Backend:
    """Easily create a fully integrated pygase backend.

    Arguments:
        initial_game_state: state of the game before the simulation begins.
        time_step_function: ``fn(game_state, dt) -> dict`` of updated attributes, called every
            step of the game loop.
        event_handlers: event types mapped to handler functions; each returns an update dict and
            may accept ``game_state``, ``dt`` and ``client_address`` keyword arguments.
        interval: seconds between game loop steps (default 0.02, i.e. 50 per second).
        server_options: passed on to :class:`~pygase_core.Server` (``max_clients``,
            ``timeout``, ``host_client``, ...).

    Blocking calls have coroutine forms with an ``_async`` suffix.
    """

    def __init__(
        self,
        initial_game_state: GameState,
        time_step_function: Callable[..., Any],
        event_handlers: dict[str, Callable[..., Any]] | None = None,
        *,
        interval: float = 0.02,
        **server_options: Any,
    ) -> None:
        if not callable(time_step_function):
            raise TypeError("time_step_function must be callable")
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.game_state_store = GameStateStore(initial_game_state)
        self.game_state_machine = GameStateMachine(self.game_state_store)
        self.game_state_machine.time_step = time_step_function  # type: ignore[method-assign]
        for event_type, handler in (event_handlers or {}).items():
            self.game_state_machine.register_event_handler(event_type, handler)
        self.server = Server(self.game_state_store, **server_options)

    async def run_async(
        self,
        hostname: str = "localhost",
        port: int = 0,
        *,
        ready: threading.Event | None = None,
    ) -> None:
        """Run the game loop and the server until shut down (coroutine form of :meth:`run`).

        The game loop runs in its own thread, so a slow ``time_step`` or handler never stalls
        the network; the server runs on the calling loop.
        """
        hostname, port = _check_address(hostname, port, "Backend.run_async")
        machine = self.game_state_machine
        thread = machine.run_game_loop_in_thread(self.interval)
        try:
            await self.server.run_async(port, hostname, machine, ready=ready)
        finally:
            await asyncio.to_thread(machine.stop)
            await asyncio.to_thread(thread.join, 5.0)

    def run(self, hostname: str = "localhost", port: int = 0) -> None:
        """Run state machine and server, bound to the given address, until shut down.

        The arguments keep the original PyGaSe's order, ``(hostname, port)``, the opposite of
        ``Server.run(port, hostname)``; a swapped call raises a TypeError that says so. Logs
        where it listens; a program that configured no logging gets that line on stderr.
        """
        hostname, port = _check_address(hostname, port, "Backend.run")
        announce_on_stderr()
        loops.run(self.run_async(hostname, port))

    def run_in_thread(
        self, hostname: str = "localhost", port: int = 0, daemon: bool = True
    ) -> threading.Thread:
        """Run the backend in a background thread; returns once the server is bound."""
        hostname, port = _check_address(hostname, port, "Backend.run_in_thread")

        async def main(ready: threading.Event) -> None:
            await self.run_async(hostname, port, ready=ready)

        thread, failure = run_in_thread("pygase-backend", main, daemon)
        if failure:
            raise failure[0]
        return thread

    def shutdown(self) -> None:
        """Shut down the server and stop the game loop (from any thread)."""
        self.server.shutdown()
        self.game_state_machine.stop()

    async def shutdown_async(self) -> None:
        """Coroutine form of :meth:`shutdown`."""
        await self.server.shutdown_async()
        await self.game_state_machine.stop_async()


def _check_address(hostname: object, port: object, call: str) -> tuple[str, int]:
    """Check ``(hostname, port)`` in the seed's order, naming a swapped call as such."""
    if isinstance(hostname, int) and not isinstance(hostname, bool) and isinstance(port, str):
        raise TypeError(
            f"{call} takes (hostname, port), in that order: got hostname={hostname!r} and"
            f" port={port!r}; call {call}({port!r}, {hostname!r}) or use keywords"
        )
    return check_hostname(hostname, call), check_port(port, call)
