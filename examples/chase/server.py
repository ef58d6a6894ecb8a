"""The chase server: ``python -m examples.chase.server [--host localhost] [--port 8080]``.

It owns the game: clients send ``JOIN(name)``, ``MOVE(dx, dy)`` and ``LEAVE()`` events, the
server applies the rules in :mod:`examples.chase.rules` 50 times per second and every client
sees the result. When a tag happens, it also sends a ``TAG(tagger_id, tagged_id)`` event to
everyone, and answers each ``JOIN`` with ``WELCOME(player_id)`` to the joining client alone, so
it knows which player is its own.

Once it is listening it prints ``chase server listening on HOST:PORT`` (useful with
``--port 0``, which picks a free port).
"""

from __future__ import annotations

import argparse
import random
from typing import Any

from examples.chase import rules
from pygase_core import Backend


class ChaseServer:
    """A pygase Backend running the chase rules, plus the events the rules cannot send."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        self.backend = Backend(
            initial_game_state=rules.initial_state(),
            time_step_function=self._time_step,
            event_handlers={
                "JOIN": self._on_join,
                "MOVE": rules.move,
                "LEAVE": rules.leave,
            },
            # Chase has no host: no client may shut the server down.
            host_client=None,
        )

    def _connected_owners(self) -> set[str] | None:
        try:
            addresses = list(self.backend.server.connections)
        except RuntimeError:  # A client connected or left while we looked: check next step.
            return None
        return {rules.owner_key(address) for address in addresses}

    def _time_step(self, game_state: Any, dt: float) -> dict[str, Any]:
        update, tag = rules.step(game_state, dt, self._connected_owners())
        if tag is not None:
            self.backend.server.dispatch_event("TAG", tag.tagger, tag.tagged, retries=3)
        return update

    def _on_join(
        self, name: Any, *, game_state: Any, client_address: Any, **_: Any
    ) -> dict[str, Any]:
        update = rules.join(
            name, game_state=game_state, client_address=client_address, rng=self._rng
        )
        player_id = rules.find_player(game_state, client_address)
        if player_id is None:
            player_id = next(iter(update["players"]))
        self.backend.server.dispatch_event(
            "WELCOME", player_id, target_client=client_address, retries=5
        )
        return update

    def run(self, hostname: str, port: int) -> None:
        """Serve until interrupted, announcing the address once bound."""
        thread = self.backend.run_in_thread(hostname, port)
        try:
            server = self.backend.server
            print(f"chase server listening on {server.hostname}:{server.port}", flush=True)
            thread.join()
        except KeyboardInterrupt:
            pass
        finally:
            self.backend.shutdown()
            thread.join(timeout=5)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    parser.add_argument("--seed", type=int, default=None, help="seed for spawn points")
    args = parser.parse_args(argv)
    ChaseServer(seed=args.seed).run(args.host, args.port)


if __name__ == "__main__":
    main()
