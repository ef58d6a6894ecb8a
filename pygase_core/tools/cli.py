"""The ``pygase`` command line: serve a Backend from a module, run the demo, or a bot swarm.

Its help texts are written for a terminal, not for Sphinx: plain text, examples indented, and
every option's default spelled out. :func:`build_parser` builds the whole command line.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from pygase_core.edge.backend import Backend
from pygase_core.edge.server import Server

DESCRIPTION = """\
pygase: real-time networking for Python games. This command serves a game's
Backend from a Python module, runs a self-contained demo on this machine, or
load-tests a running server with a swarm of headless bot clients."""

EPILOG = """\
examples:
  pygase demo --seconds 5              a server and 3 bots on this machine
  pygase serve mygame:backend          serve the Backend "backend" of mygame.py
  pygase bots localhost:8080 --count 50
                                       50 bot clients against a running server

Run "pygase COMMAND --help" for the options of a command."""

SERVE_DESCRIPTION = """\
Import a module and serve the Backend it defines, on the address given by
--host and --port, until Ctrl-C (or until the host client shuts it down).

MODULE:ATTRIBUTE names the Backend. MODULE is a module path importable from the
current directory (mygame for ./mygame.py, mypackage.server for
./mypackage/server.py). ATTRIBUTE is the name, inside that module, of a Backend
object or of a callable that takes no arguments and returns one."""

SERVE_EPILOG = """\
example: with this mygame.py in the current directory

  from pygase_core import Backend, GameState

  backend = Backend(GameState(score=0), lambda game_state, dt: {})

  if __name__ == "__main__":
      backend.run(port=8080)

run "pygase serve mygame:backend --port 8081" to serve it on port 8081.

The module must not start a server when it is imported: keep calls like
backend.run(...) under if __name__ == "__main__": as above. Otherwise the import
would serve on the port written in the module instead of the one given here, so
pygase serve stops with an error when it sees that happen."""

DEMO_DESCRIPTION = """\
Run a small game server and a few headless bot clients on this machine, all in
this process, and print once a second what every bot sees. Needs no display and
no game framework; a quick way to check that pygase works here."""

DEMO_EPILOG = """\
what it prints, once a second:

  bot 0: time_order 1234 speed 12.0 boosts 2 state age 15.2 ms | rtt 0.31 ms
         loss 0.0% in 6.1 kB/s out 0.4 kB/s   (one such line per bot)
  server: 3 clients, game time 25.0 s

  time_order: the number of the newest state update the bot has. The server
      makes one update per game step (50 a second) and one per event it
      handles, so this rises by about 50 a second.
  speed: the entities' speed in the demo game, in arena units per second. It
      starts at 10 and every BOOST event adds 1, up to 50.
  boosts: how many BOOST events the server has applied. Each second one bot,
      in turn, sends one, so every bot should show the same count: events
      reach the server, and the state they change reaches every client.
  state age: how old the bot's copy of the game state is, in milliseconds:
      now minus the time the server stamped on its newest step. Up to one step
      (20 ms) plus the network's delay is normal.
  rtt: the connection's round-trip time in milliseconds, smoothed.
  loss: the share of packets lost on the way, in percent, smoothed.
  in: kilobytes per second the bot received over the last second.
  out: kilobytes per second the bot sent over the last second.
  server: how many clients are connected, and the game time: the seconds of
      game the server's loop has simulated.

example: pygase demo --clients 5 --seconds 0   (five bots, until Ctrl-C)"""

BOTS_DESCRIPTION = """\
Load-test a running pygase server: run COUNT real clients on one event loop,
each reading the game state at a frame rate and sending input events at a
rate, and report what their players would see:

  state age: how old the state is at the bots' frame reads (percentiles). The
      server's game must stamp each step's time into a state attribute (see
      --time-attribute and --epoch).
  event round trip: from a bot's event to the frame at which that bot sees the
      change it caused. The server must echo the events: register
      pygase_core.tools.bots.echo_handler() as the handler of the bots' event
      type (see --event-type). Without it, no round trips are measured.

The exit status is 0 when every bot connected, 1 otherwise."""

BOTS_EPILOG = """\
example: pygase bots localhost:8080 --count 50 --seconds 30 --json"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions and examples as written; wraps the options' help."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    """The ``pygase`` command line with its sub-commands ``serve``, ``demo`` and ``bots``."""
    parser = argparse.ArgumentParser(
        prog="pygase", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log connections and disconnections"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve_parser(commands)
    _add_demo_parser(commands)
    _add_bots_parser(commands)
    from pygase_core.cluster.commands import add_parsers

    add_parsers(commands, _Formatter)
    return parser


def _add_serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve a Backend defined in a Python module",
        description=SERVE_DESCRIPTION,
        epilog=SERVE_EPILOG,
        formatter_class=_Formatter,
    )
    serve.add_argument(
        "backend",
        metavar="MODULE:ATTRIBUTE",
        help="the Backend to serve, for example mygame:backend (see above)",
    )
    serve.add_argument(
        "--host",
        default="localhost",
        help="address to listen on; 0.0.0.0 for every IPv4 interface (default: %(default)s)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=8080,
        help="UDP port to listen on; 0 picks a free one (default: %(default)s)",
    )


def _add_demo_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="a server and headless bots on this machine, printing what they see",
        description=DEMO_DESCRIPTION,
        epilog=DEMO_EPILOG,
        formatter_class=_Formatter,
    )
    demo.add_argument(
        "--clients", type=int, default=3, help="number of bot clients (default: %(default)s)"
    )
    demo.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="how long to run; 0 runs until Ctrl-C (default: %(default)s)",
    )
    demo.add_argument(
        "--entities",
        type=int,
        default=20,
        help="number of moving entities in the game state (default: %(default)s)",
    )
    demo.add_argument(
        "--port",
        type=int,
        default=0,
        help="UDP port of the demo server on localhost; 0 picks a free one"
        " (default: %(default)s)",
    )


def _add_bots_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bots = commands.add_parser(
        "bots",
        help="load-test a running server with a swarm of headless clients",
        description=BOTS_DESCRIPTION,
        epilog=BOTS_EPILOG,
        formatter_class=_Formatter,
    )
    bots.add_argument(
        "address",
        metavar="HOST:PORT",
        help="the server to test, for example localhost:8080 or [::1]:8080",
    )
    bots.add_argument(
        "--count", type=int, default=10, help="number of bots (default: %(default)s)"
    )
    bots.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="how long to measure, after the warm-up (default: %(default)s)",
    )
    bots.add_argument(
        "--rate",
        type=float,
        default=5.0,
        help="input events per second per bot (default: %(default)s)",
    )
    bots.add_argument(
        "--frame-rate",
        type=float,
        default=60.0,
        help="state reads per second per bot, like a game's frames (default: %(default)s)",
    )
    bots.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="seconds to run before measuring, while the bots connect (default: %(default)s)",
    )
    bots.add_argument(
        "--time-attribute",
        default="server_time",
        help="the state attribute in which the server stamps each step's time"
        " (default: %(default)s)",
    )
    bots.add_argument(
        "--epoch",
        type=float,
        default=0.0,
        help="what that timestamp counts from, in seconds since 1970; 0 means it is"
        " time.time() itself (default: %(default)s)",
    )
    bots.add_argument(
        "--event-type",
        default="BOT_INPUT",
        help="event type of the bots' input events (default: %(default)s)",
    )
    bots.add_argument(
        "--echo-attribute",
        default="bot_echo",
        help="the state attribute in which the server echoes the bots' events"
        " (default: %(default)s)",
    )
    bots.add_argument(
        "--first-id",
        type=int,
        default=0,
        help="id of the first bot, so that several swarms can share a server"
        " (default: %(default)s)",
    )
    bots.add_argument(
        "--json", action="store_true", help="print the report as one line of JSON"
    )


# -- serve --------------------------------------------------------------------------------------


class _ServingOnImport(Exception):
    """A server was started while ``pygase serve`` imported the game's module."""


#: The methods through which every Backend and Server starts serving.
_START_METHODS: tuple[tuple[type[Any], tuple[str, ...]], ...] = (
    (Backend, ("run", "run_async", "run_in_thread")),
    (Server, ("run", "run_async", "run_in_thread")),
)


@contextlib.contextmanager
def _refuse_to_serve(starts: list[str]) -> Iterator[None]:
    """While active, starting any Backend or Server raises instead, noting where it was called.

    This is how ``pygase serve`` finds a module that starts its own server when imported: the
    call fails before anything is bound, and ``starts`` tells where it came from, even when the
    module called it on a thread of its own or caught the exception.
    """
    originals: list[tuple[type, str, Any]] = []

    def refusing(name: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            starts.append(_caller(sys._getframe(1), name))
            raise _ServingOnImport(name)

        return refuse

    try:
        for cls, names in _START_METHODS:
            for name in names:
                originals.append((cls, name, cls.__dict__[name]))
                setattr(cls, name, refusing(name))
        yield
    finally:
        for cls, name, original in originals:
            setattr(cls, name, original)


def _caller(frame: FrameType | None, name: str) -> str:
    """Describe the innermost call site outside pygase and the standard library."""
    skipped = (
        str(Path(__file__).resolve().parent.parent),
        sysconfig.get_paths()["stdlib"],
        "<frozen ",
    )
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(skipped):
            with contextlib.suppress(ValueError):
                filename = os.path.relpath(filename)
            return f"{filename}, line {frame.f_lineno}, calls {name}()"
        frame = frame.f_back
    return f"{name}() was called"


def load_backend(spec: str) -> Backend:
    """Import ``MODULE:ATTRIBUTE``; the attribute is a Backend or a callable that returns one.

    Raises:
        SystemExit: with a message for the user when the spec names no Backend, or when the
            module starts a server as it is imported (it needs an ``if __name__ == "__main__":``
            guard), since that server would not listen on the address ``pygase serve`` got.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"pygase serve: expected MODULE:ATTRIBUTE, got {spec!r}")
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        suggestion = module_name.removesuffix(".py").replace("/", ".").replace("\\", ".")
        raise SystemExit(
            f"pygase serve: MODULE is a module path, not a file name: try {suggestion}:{attribute}"
        )
    starts: list[str] = []
    backend: object = None
    try:
        with _refuse_to_serve(starts):
            module = _import(module_name)
            try:
                target = getattr(module, attribute)
            except AttributeError:
                raise SystemExit(
                    f"pygase serve: {module_name} has no attribute {attribute!r}"
                ) from None
            backend = target() if callable(target) and not isinstance(target, Backend) else target
    except _ServingOnImport:
        pass
    if starts:
        raise SystemExit(_serving_on_import_message(module_name, starts[0]))
    if not isinstance(backend, Backend):
        raise SystemExit(f"pygase serve: {spec} is neither a Backend nor returns one")
    if backend.server.running:
        raise SystemExit(_serving_on_import_message(module_name, "its Backend is already running"))
    return backend


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise SystemExit(
                f"pygase serve: cannot import {module_name}: no module {missing} in the current"
                f" directory ({os.getcwd()}) or on the Python path. Run pygase serve from the"
                " directory that holds your module."
            ) from None
        raise


def _serving_on_import_message(module_name: str, where: str) -> str:
    return (
        f"pygase serve: importing {module_name} started a server ({where}).\n"
        "That server listens on the address written in the module, not on the --host and"
        " --port given to pygase serve.\n"
        "Start it only when the file runs as a script, under a main guard:\n\n"
        '    if __name__ == "__main__":\n'
        "        backend.run(...)\n"
    )


def serve(spec: str, host: str, port: int) -> int:
    """``pygase serve``: serve the Backend ``spec`` names until Ctrl-C or its shutdown."""
    sys.path.insert(0, "")
    backend = load_backend(spec)
    try:
        thread = backend.run_in_thread(hostname=host, port=port)
    except OSError as error:
        raise SystemExit(f"pygase serve: cannot listen on {host} port {port}: {error}") from None
    server = backend.server
    print(
        f"pygase: serving {spec} on {server.hostname} port {server.port} (Ctrl-C stops)",
        flush=True,
    )
    _wait(thread, backend)
    return 0


def _wait(thread: threading.Thread, backend: Backend) -> None:
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        backend.shutdown()
        thread.join(timeout=5)


# -- main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pygase`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if args.command == "serve":
        return serve(args.backend, args.host, args.port)
    if args.command == "bots":
        return _run_bots(args)
    if args.command in ("node", "matchmaker"):
        from pygase_core.cluster import commands

        return commands.run_node(args) if args.command == "node" else commands.run_matchmaker(
            args
        )
    from pygase_core.tools.demo import run_demo

    run_demo(
        args.clients,
        args.seconds,
        args.entities,
        args.port,
        out=lambda line: print(line, flush=True),
    )
    return 0


def _run_bots(args: argparse.Namespace) -> int:
    from pygase_core.tools.bots import run_cli

    if args.count < 1:
        raise SystemExit("pygase bots: --count must be at least 1")
    try:
        return run_cli(
            args.address,
            args.count,
            args.seconds,
            args.rate,
            frame_rate=args.frame_rate,
            warmup=args.warmup,
            time_attribute=args.time_attribute,
            epoch=args.epoch,
            event_type=args.event_type,
            echo_attribute=args.echo_attribute,
            first_id=args.first_id,
            as_json=args.json,
            out=lambda line: print(line, flush=True),
        )
    except ValueError as error:
        raise SystemExit(f"pygase bots: {error}") from None


if __name__ == "__main__":
    raise SystemExit(main())
