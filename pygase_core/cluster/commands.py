"""``pygase node`` and ``pygase matchmaker``: their command lines, and running them.

The cluster's modules (Redis, aiohttp) are imported only when one of these commands runs, so the
rest of the ``pygase`` command works without the ``cluster`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NODE_DESCRIPTION = """\
Host the room types of a Server defined in a module as one node of a cluster:
register in Redis (node id, public address, capacity, load and every room,
refreshed every second, gone within 3 s of the node's death), take seat
reservations and room creations from matchmakers, and admit only clients with
a connect token a matchmaker issued for a seat here.

MODULE:ATTRIBUTE names a pygase_core.Server (or a callable returning one) with
its room types defined; the module must not start it."""

NODE_EPILOG = """\
example:
  pygase node mygame:server --redis redis://localhost:6379/0 \\
      --secret-key-file secret.key --port 9000 --public-address 203.0.113.5:9000

With --workers 2 it starts two node processes, on ports 9000 and 9001 (and
public ports counted up the same way), one per core."""

MATCHMAKER_DESCRIPTION = """\
Run the HTTP matchmaker: POST /matchmake/{join_or_create|create|join}/TYPE and
/matchmake/join_by_id/ROOM_ID seat a player and answer with a connect token;
GET /rooms/TYPE, /healthz, /metrics (Prometheus) and /monitor (a live page)."""

MATCHMAKER_EPILOG = """\
example:
  pygase matchmaker --redis redis://localhost:6379/0 --secret-key-file secret.key \\
      --host 0.0.0.0 --port 8000 --auth mygame:authenticate"""


def read_secret_key(path: str, command: str) -> bytes:
    """The 32-byte key from a file: raw bytes, or 64 hex digits (spaces ignored)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SystemExit(f"pygase {command}: cannot read --secret-key-file {path}: "
                         f"{error.strerror}") from None
    if len(data) == 32:
        return data
    text = data.decode(errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise SystemExit(
            f"pygase {command}: {path} must hold a 32-byte key (raw, or 64 hex digits); make"
            " one with: python -c \"import secrets; print(secrets.token_hex(32))\""
        )
    return key


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                formatter: type[argparse.HelpFormatter]) -> None:
    """Add ``node`` and ``matchmaker`` to the ``pygase`` command line."""
    node = commands.add_parser(
        "node", help="host rooms as one node of a cluster on Redis",
        description=NODE_DESCRIPTION, epilog=NODE_EPILOG, formatter_class=formatter,
    )
    node.add_argument("server", metavar="MODULE:ATTRIBUTE",
                      help="the Server whose room types to host, for example mygame:server")
    node.add_argument("--redis", required=True, metavar="URL",
                      help="the shared Redis, for example redis://localhost:6379/0")
    node.add_argument("--secret-key-file", required=True, metavar="PATH",
                      help="the key shared with the matchmakers (32 bytes, or 64 hex digits)")
    node.add_argument("--port", type=int, required=True, help="UDP port to listen on")
    node.add_argument("--host", default="0.0.0.0",
                      help="address to listen on (default: %(default)s)")
    node.add_argument("--public-address", required=True, metavar="HOST:PORT",
                      help="where players reach this node (tokens name it); with --agones,"
                      " 'agones' asks the SDK server for the address Agones assigned")
    node.add_argument("--workers", type=int, default=1,
                      help="node processes to start, ports counted up from --port"
                      " (default: %(default)s)")
    node.add_argument("--node-id", default=None,
                      help="this node's id in the registry (default: host-port-random)")
    node.add_argument("--agones", action="store_true",
                      help="follow the Agones game-server lifecycle (SDK REST on"
                      " localhost:$AGONES_SDK_HTTP_PORT, default 9358)")
    node.add_argument("--agones-keep-when-empty", action="store_true",
                      help="with --agones, do not Shutdown when the last room is disposed of")
    node.add_argument("--agones-health-every", type=float, default=2.0, metavar="SECONDS",
                      help="seconds between health pings (default: %(default)s)")

    matchmaker = commands.add_parser(
        "matchmaker", help="the HTTP matchmaker and monitor page of a cluster",
        description=MATCHMAKER_DESCRIPTION, epilog=MATCHMAKER_EPILOG,
        formatter_class=formatter,
    )
    matchmaker.add_argument("--redis", required=True, metavar="URL",
                            help="the Redis the nodes register in")
    matchmaker.add_argument("--secret-key-file", required=True, metavar="PATH",
                            help="the key the nodes were given")
    matchmaker.add_argument("--host", default="localhost",
                            help="address to listen on (default: %(default)s)")
    matchmaker.add_argument("--port", type=int, default=8000,
                            help="TCP port to listen on (default: %(default)s)")
    matchmaker.add_argument("--auth", default=None, metavar="MODULE:ATTRIBUTE",
                            help="the authentication hook: authenticate(request), raising"
                            " pygase_core.cluster.matchmaker.MatchmakeRefused to refuse")
    matchmaker.add_argument("--token-expiry", type=float, default=30.0, metavar="SECONDS",
                            help="how long a token and its reserved seat last"
                            " (default: %(default)s)")


def check_common(args: argparse.Namespace, command: str) -> None:
    """The arguments both commands share: a Redis URL and a port that can be ones."""
    import urllib.parse

    scheme = urllib.parse.urlsplit(args.redis).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise SystemExit(f"pygase {command}: --redis must be a redis://, rediss:// or unix://"
                         f" URL, not {args.redis!r}")
    if not 0 <= args.port <= 65535:
        raise SystemExit(f"pygase {command}: --port must be from 0 to 65535, not {args.port}")


def _load(spec: str, command: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"pygase {command}: expected MODULE:ATTRIBUTE, got {spec!r}")
    sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise SystemExit(f"pygase {command}: cannot import {module_name}: {error}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise SystemExit(f"pygase {command}: {module_name} has no attribute {attribute!r}")\
            from None


def run_node(args: argparse.Namespace) -> int:
    """``pygase node``: one node, or ``--workers N`` of them as child processes."""
    check_common(args, "node")
    if args.workers < 1:
        raise SystemExit("pygase node: --workers must be at least 1")
    if args.port + args.workers - 1 > 65535:
        raise SystemExit(f"pygase node: --workers {args.workers} from --port {args.port} runs"
                         " past port 65535")
    if args.workers > 1:
        return _run_workers(args)
    from pygase_core.cluster.seats import split_address
    from pygase_core.edge.server import Server

    if args.public_address == "agones" and not args.agones:
        raise SystemExit("pygase node: --public-address agones needs --agones")
    try:
        if args.public_address != "agones":
            split_address(args.public_address)
    except ValueError as error:
        raise SystemExit(f"pygase node: --public-address: {error}") from None
    key = read_secret_key(args.secret_key_file, "node")
    from pygase_core.tools import cli

    starts: list[str] = []
    server: object = None
    try:
        with cli._refuse_to_serve(starts):  # as pygase serve: the module must not serve
            target = _load(args.server, "node")
            server = target() if callable(target) and not isinstance(target, Server) else target
    except cli._ServingOnImport:
        pass
    if starts:
        message = cli._serving_on_import_message(args.server.partition(":")[0], starts[0])
        raise SystemExit(message.replace("pygase serve", "pygase node"))
    if not isinstance(server, Server):
        raise SystemExit(f"pygase node: {args.server} is neither a Server nor returns one")
    try:
        return asyncio.run(_node_main(server, key, args))
    except OSError as error:
        raise SystemExit(f"pygase node: cannot listen on {args.host} port {args.port}:"
                         f" {error.strerror or error}") from None


async def _node_main(server: Any, key: bytes, args: argparse.Namespace) -> int:
    from pygase_core.cluster.node import Node

    node = Node(server, args.redis, key, args.public_address, port=args.port, host=args.host,
                node_id=args.node_id)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, node.stop)
    lifecycle = None
    if args.agones:
        from pygase_core.cluster.agones import AgonesLifecycle

        lifecycle = AgonesLifecycle(
            health_every=args.agones_health_every,
            shutdown_when_empty=not args.agones_keep_when_empty, on_shutdown=node.stop,
        )

    async def prepare() -> None:
        if lifecycle is not None:
            await lifecycle.start()
            if args.public_address == "agones":
                await node.set_public_address(await lifecycle.public_address())
            node.on_change.append(lifecycle.changed)

    def ready() -> None:
        print(f"pygase: node {node.node_id} serving on UDP port {server.port}, public"
              f" {node.public_address}, registered in {args.redis}", flush=True)

    try:
        await node.run(ready=ready, prepare=prepare)
    finally:
        if lifecycle is not None:
            await lifecycle.close()
    return 0


def _run_workers(args: argparse.Namespace) -> int:
    """Start one node process per worker, each on its own port, and wait for them all."""
    from pygase_core.cluster.seats import split_address

    try:
        public_host, public_port = split_address(args.public_address)
    except ValueError as error:
        raise SystemExit(f"pygase node: --public-address: {error}") from None
    children = []
    for index in range(args.workers):
        command = [
            sys.executable, "-m", "pygase_core.tools.cli", "node", args.server,
            "--redis", args.redis, "--secret-key-file", args.secret_key_file,
            "--port", str(args.port + index), "--host", args.host,
            "--public-address", f"{public_host}:{public_port + index}",
        ]
        if args.node_id:
            command += ["--node-id", f"{args.node_id}-{index}"]
        if args.agones:
            command.append("--agones")
        children.append(subprocess.Popen(command, preexec_fn=_die_with_parent))

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    status = 0
    while any(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in children:
        status = status or (child.returncode or 0)
    return status


def _die_with_parent() -> None:
    """In a worker, before it runs: end it (SIGTERM) if its parent dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def run_matchmaker(args: argparse.Namespace) -> int:
    """``pygase matchmaker``: serve until Ctrl-C or SIGTERM."""
    check_common(args, "matchmaker")
    if not args.token_expiry > 0:
        raise SystemExit(f"pygase matchmaker: --token-expiry must be above 0 seconds, not"
                         f" {args.token_expiry}")
    key = read_secret_key(args.secret_key_file, "matchmaker")
    authenticate = _load(args.auth, "matchmaker") if args.auth else None
    if authenticate is not None and not callable(authenticate):
        raise SystemExit(f"pygase matchmaker: {args.auth} is not callable")
    from pygase_core.cluster.matchmaker import Matchmaker, serve

    matchmaker = Matchmaker(args.redis, key, authenticate=authenticate,
                            token_expiry=args.token_expiry)

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)

        def ready() -> None:
            print(f"pygase: matchmaker listening on http://{args.host}:{args.port}", flush=True)

        await serve(matchmaker, args.host, args.port, ready)

    try:
        asyncio.run(main())
    except (asyncio.CancelledError, KeyboardInterrupt):
        pass
    except OSError as error:
        raise SystemExit(f"pygase matchmaker: cannot listen on {args.host} port {args.port}:"
                         f" {error.strerror}") from None
    return 0
