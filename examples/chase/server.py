"""The chase server: ``python -m examples.chase.server [--port 8080] [--max-players 6]``.

It hosts games of chase in rooms (:class:`examples.chase.room.ChaseRoom`) of up to
``--max-players`` players each, all on one UDP port. A client joins with
``Client.connect(port, room="chase", options={"name": ...})``: matchmaking seats it in the
oldest open room with a seat free, or opens a new room. ``create=True, options={"private":
True}`` opens a private room, which matchmaking never offers, and ``room_id=...`` joins a
room by its id, a private one included. ``Client.list_rooms(port, room="chase")`` lists the open
rooms, with the names of their players. A room goes away when its last player leaves.

Clients send ``MOVE(dx, dy)`` events; each room applies the rules in
:mod:`examples.chase.rules` 50 times per second, its clients see the result and get a
``TAG(tagger_id, tagged_id)`` event for each tag.

Once it is listening it prints ``chase server listening on HOST:PORT`` (useful with
``--port 0``, which picks a free port); Ctrl-C stops it.
"""

from __future__ import annotations

import argparse

from examples.chase.common import ROOM_TYPE
from examples.chase.room import MAX_PLAYERS, chase_room
from pygase_core import Server


def make_server(max_players: int = MAX_PLAYERS, seed: int | None = None) -> Server:
    """A server that hosts only chase rooms of ``max_players`` seats each."""
    # No host client: in a server of strangers' rooms, no client may shut it down.
    server = Server(host_client=None)
    server.define(ROOM_TYPE, chase_room(max_players, seed))
    return server


def serve(server: Server, hostname: str, port: int) -> None:
    """Serve until interrupted (Ctrl-C), announcing the address once bound."""
    thread = server.run_in_thread(port, hostname)
    try:
        print(f"chase server listening on {server.hostname}:{server.port}", flush=True)
        thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        thread.join(timeout=5)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    parser.add_argument(
        "--max-players",
        type=_positive,
        default=MAX_PLAYERS,
        help=f"players per room (default: {MAX_PLAYERS})",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for spawn points")
    args = parser.parse_args(argv)
    serve(make_server(args.max_players, args.seed), args.host, args.port)


if __name__ == "__main__":
    main()
