"""The ``pygase`` command line: serve a Backend from a module, run the demo, or a bot swarm."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
from collections.abc import Sequence

from pygase_core.edge.backend import Backend


def load_backend(spec: str) -> Backend:
    """Import ``MODULE:ATTRIBUTE``; the attribute is a Backend or a callable that returns one."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"pygase serve: expected MODULE:ATTRIBUTE, got {spec!r}")
    module = importlib.import_module(module_name)
    try:
        target = getattr(module, attribute)
    except AttributeError:
        raise SystemExit(f"pygase serve: {module_name} has no attribute {attribute!r}") from None
    backend = target if isinstance(target, Backend) else target() if callable(target) else None
    if not isinstance(backend, Backend):
        raise SystemExit(f"pygase serve: {spec} is neither a Backend nor returns one")
    return backend


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pygase`` command."""
    parser = argparse.ArgumentParser(prog="pygase", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log connections")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a Backend defined in a module")
    serve.add_argument("backend", metavar="MODULE:ATTRIBUTE")
    serve.add_argument("--host", default="localhost")
    serve.add_argument("--port", type=int, default=8080)
    demo = commands.add_parser("demo", help="a backend and headless bots on localhost")
    demo.add_argument("--clients", type=int, default=3)
    demo.add_argument("--seconds", type=float, default=10.0, help="0 runs until Ctrl-C")
    demo.add_argument("--entities", type=int, default=20)
    demo.add_argument("--port", type=int, default=0)
    _add_bots_parser(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if args.command == "serve":
        sys.path.insert(0, "")
        backend = load_backend(args.backend)
        print(f"pygase: serving {args.backend} on {args.host} port {args.port}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            backend.run(hostname=args.host, port=args.port)
        return 0
    if args.command == "bots":
        return _run_bots(args)
    from pygase_core.tools.demo import run_demo

    run_demo(
        args.clients,
        args.seconds,
        args.entities,
        args.port,
        out=lambda line: print(line, flush=True),
    )
    return 0


def _add_bots_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bots = commands.add_parser(
        "bots",
        help="load-test a server with a swarm of headless clients",
        description="Run COUNT real clients on one event loop against a pygase server and"
        " report the state age and event round trips they see. Round trips need the server to"
        " echo the bots' events: register pygase_core.tools.bots.echo_handler() for EVENT_TYPE.",
    )
    bots.add_argument("address", metavar="HOST:PORT")
    bots.add_argument("--count", type=int, default=10, help="number of bots (default 10)")
    bots.add_argument("--seconds", type=float, default=10.0, help="measuring time (default 10)")
    bots.add_argument("--rate", type=float, default=5.0, help="events per second per bot")
    bots.add_argument("--frame-rate", type=float, default=60.0, help="state reads per second")
    bots.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    bots.add_argument(
        "--time-attribute", default="server_time", help="state attribute with the step's time"
    )
    bots.add_argument(
        "--epoch", type=float, default=0.0, help="what the timestamp counts from (time.time())"
    )
    bots.add_argument("--event-type", default="BOT_INPUT")
    bots.add_argument("--echo-attribute", default="bot_echo")
    bots.add_argument("--first-id", type=int, default=0, help="id of the first bot")
    bots.add_argument("--json", action="store_true", help="print the report as JSON")


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
