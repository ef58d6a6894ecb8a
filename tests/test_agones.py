"""``pygase node --agones`` against a stand-in for the Agones SDK server.

The real SDK server runs beside a game server in a Kubernetes pod and cannot run here, so a small
local HTTP server speaks its documented REST paths (``POST /ready``, ``/health``, ``/allocate``,
``/shutdown`` and ``GET /gameserver``) and records the calls; the node is the real process.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pygase_core import Client
from tests.cluster_support import (
    REPOSITORY,
    Cluster,
    cluster_fixture,
    free_port,
    redis_server_fixture,
)
from tests.waiting import wait_for

pytest.importorskip("redis", reason="needs the cluster extra")

__all__ = ["cluster_fixture", "redis_server_fixture"]  # the fixtures this module uses


class StandIn(ThreadingHTTPServer):
    """Records ``(method, path, seconds since start)``; names ``game_port`` as the address."""

    def __init__(self, game_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.game_port = game_port
        self.calls: list[tuple[str, str, float]] = []
        self.failing: set[str] = set()
        """Paths answered with a 500 (an SDK server in trouble)."""
        self.bodies: list[object] = []
        self.started = time.monotonic()

    def paths(self) -> list[str]:
        return [path for _method, path, _at in self.calls]


class _Handler(BaseHTTPRequestHandler):
    server: StandIn

    def _record(self) -> None:
        self.server.calls.append((self.command, self.path, time.monotonic() - self.server.started))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.server.bodies.append(json.loads(self.rfile.read(length) or b"null"))
        self._record()
        if self.path in self.server.failing:
            self.send_error(500)
            return
        self._send({})

    def do_GET(self) -> None:
        self._record()
        if self.path != "/gameserver":
            self.send_error(404)
            return
        self._send({"object_meta": {"name": "pygase-node-abc"}, "status": {
            "state": "Ready", "address": "127.0.0.1",
            "ports": [{"name": "default", "port": self.server.game_port}]}})

    def _send(self, answer: object) -> None:
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def sdk() -> Iterator[StandIn]:
    stand_in = StandIn(free_port(socket.SOCK_DGRAM))
    thread = threading.Thread(target=stand_in.serve_forever, daemon=True)
    thread.start()
    yield stand_in
    stand_in.shutdown()
    stand_in.server_close()


def test_a_node_follows_the_agones_lifecycle(cluster: Cluster, sdk: StandIn) -> None:
    node = cluster.node(
        sdk.game_port, "--agones", "--agones-health-every", "0.2",
        env={"AGONES_SDK_HTTP_PORT": str(sdk.server_address[1])},
        public_address="agones",
    )
    assert f"public 127.0.0.1:{sdk.game_port}" in node.output  # from GET /gameserver
    assert sdk.paths()[:2] == ["/ready", "/gameserver"]
    wait_for(lambda: sdk.paths().count("/health") >= 3, 10.0, "no health pings")
    assert "/allocate" not in sdk.paths()
    _mm, url = cluster.matchmaker()
    client = Client(timeout=3.0)
    client.connect_in_thread(matchmaker=url, room="chase")
    wait_for(lambda: "/allocate" in sdk.paths(), 5.0, "not allocated at its first seat")
    assert "/shutdown" not in sdk.paths()
    client.disconnect()  # the last client leaves: the room goes, and so does the node
    wait_for(lambda: "/shutdown" in sdk.paths(), 5.0, "no shutdown after the last room")
    assert node.process.wait(10) == 0
    order = [path for path in sdk.paths() if path != "/health"]
    assert order == ["/ready", "/gameserver", "/allocate", "/shutdown"]
    assert all(body == {} for body in sdk.bodies)  # each POST carries an empty JSON object


def test_an_sdk_server_that_fails_holds_up_neither_seats_nor_the_heartbeat(
    cluster: Cluster, sdk: StandIn,
) -> None:
    sdk.failing.add("/allocate")  # retried for half a minute before the node gives up on it
    node_port = sdk.game_port
    cluster.node(node_port, "--agones", env={"AGONES_SDK_HTTP_PORT": str(sdk.server_address[1])})
    _mm, url = cluster.matchmaker()
    clients = [Client(timeout=3.0) for _ in range(2)]
    try:
        clients[0].connect_in_thread(matchmaker=url, room="chase")
        # Retried past a node entry's 3 s expiry: the node must still be listed, and seat.
        wait_for(lambda: sdk.paths().count("/allocate") >= 8, 10.0, "allocate not retried")
        listed = cluster.redis.command("ZRANGE", "pygase:nodes", "0", "-1")
        assert listed == [f"node-{node_port}"]
        clients[1].connect_in_thread(matchmaker=url, room="chase")
        assert clients[1].room_id == clients[0].room_id
    finally:
        for client in clients:
            client.disconnect()


def test_the_deploy_manifests_run_commands_the_pygase_command_line_takes() -> None:
    yaml = pytest.importorskip("yaml", reason="needs PyYAML (the docs extra brings it)")
    from pygase_core.tools.cli import build_parser

    deploy = REPOSITORY / "deploy"
    documents = [
        document
        for path in sorted((deploy / "kubernetes").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
    ]
    kinds = {document["kind"] for document in documents}
    assert {"Fleet", "Deployment", "Service", "Secret", "NetworkPolicy"} <= kinds
    commands = {}
    for document in documents:
        if document["kind"] == "Fleet":
            pod = document["spec"]["template"]["spec"]["template"]["spec"]
        elif document["kind"] == "Deployment":
            pod = document["spec"]["template"]["spec"]
        else:
            continue
        for container in pod["containers"]:
            if container.get("image", "").startswith("pygase"):
                args = build_parser().parse_args(container["args"])
                commands[args.command] = args
    assert set(commands) == {"node", "matchmaker"}
    assert commands["node"].agones and commands["node"].public_address == "agones"
    for line in (deploy / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            source = line.split()[1]
            assert (REPOSITORY / source).exists(), source
