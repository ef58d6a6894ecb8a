"""The ``pygase`` command line: serve a Backend from a module, or run the demo."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
from collections.abc import Sequence

from .backend import Backend


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
    from .demo import run_demo

    run_demo(
        args.clients,
        args.seconds,
        args.entities,
        args.port,
        out=lambda line: print(line, flush=True),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
