"""The cluster for real: redis-server, ``pygase node`` and ``pygase matchmaker`` processes.

Every part is the process a user would run, on loopback: Redis from Debian's package, nodes and
matchmakers through the ``pygase`` command, and real clients over UDP with connect tokens.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest

from pygase_core import (
    Client,
    ClientStatus,
    JoinRefusedError,
    MatchmakerError,
    TokenRejectedError,
)
from pygase_core.cluster.seats import Seat, request_seat, request_seat_async
from tests.cluster_support import (
    GAME,
    REPOSITORY,
    Cluster,
    cluster_fixture,
    free_port,
    http,
    redis_server_fixture,
)
from tests.waiting import wait_for

pytest.importorskip("redis", reason="needs the cluster extra")
pytest.importorskip("aiohttp", reason="needs the cluster extra")

__all__ = ["cluster_fixture", "redis_server_fixture"]  # the fixtures this module uses

NODE_GONE_WITHIN = 3.0
"""A dead node's entry expires this long after its last heartbeat at the latest."""


def monitor_data(url: str) -> dict[str, Any]:
    status, data = http("GET", f"{url}/monitor/data")
    assert status == 200, data
    return data  # type: ignore[no-any-return]


def listed_nodes(url: str) -> set[str]:
    """The ids of the nodes the monitor lists (none while the registry is unreachable)."""
    status, data = http("GET", f"{url}/monitor/data")
    return {node["id"] for node in data["nodes"]} if status == 200 else set()


def open_rooms(url: str) -> list[dict[str, Any]]:
    status, rooms = http("GET", f"{url}/rooms/chase")
    assert status == 200, rooms
    return rooms  # type: ignore[no-any-return]


async def connect_all(
    count: int, urls: list[str], in_flight: int = 24
) -> list[tuple[Client, Seat | None, asyncio.Task[None]]]:
    """``count`` clients on this loop, alternating matchmakers; half ask for their seat over
    HTTP themselves, half through ``Client.connect_async(matchmaker=...)``."""
    gate = asyncio.Semaphore(in_flight)
    made: list[tuple[Client, Seat | None, asyncio.Task[None]]] = []

    async def one(index: int) -> None:
        async with gate:
            url = urls[index % len(urls)]
            client = Client(timeout=3.0, connect_timeout=15.0)
            ready = threading.Event()
            seat: Seat | None = None
            if index % 2:
                seat = await request_seat_async(url, "chase", options={"mode": "classic"})
                # The request names a room type; the node seats it where its token says.
                task = asyncio.create_task(client.connect_async(
                    seat.port, seat.host, connect_token=seat.token, room="chase", ready=ready))
            else:
                task = asyncio.create_task(client.connect_async(
                    matchmaker=url, room="chase", options={"mode": "classic"}, ready=ready))
            made.append((client, seat, task))
            while not ready.is_set():
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)

    await asyncio.gather(*(one(index) for index in range(count)))
    return made


def test_300_clients_through_two_matchmakers_fill_rooms_of_4_spread_over_three_nodes(
    cluster: Cluster,
) -> None:
    nodes = [cluster.node() for _ in range(3)]
    urls = [cluster.matchmaker()[1] for _ in range(2)]
    wait_for(lambda: len(monitor_data(urls[0])["nodes"]) == 3, 10.0, "three nodes listed")

    async def scenario() -> None:
        made = await connect_all(300, urls)
        try:
            assert all(client.status is ClientStatus.CONNECTED for client, _, _ in made)
            for client, seat, _ in made:
                if seat is not None:
                    assert client.room_id == seat.room_id  # the room its token named
            per_room = collections.Counter(client.room_id for client, _, _ in made)
            assert max(per_room.values()) <= 4, "a room seated more than its 4 seats"

            def listed() -> dict[str, Any] | None:
                data = monitor_data(urls[1])
                seated = sum(room["clients"] for room in data["rooms"])
                return data if seated == 300 else None

            data = await asyncio.to_thread(wait_for, listed, 15.0, "300 seated in the registry")
            rooms = {room["id"]: room for room in data["rooms"]}
            assert set(rooms) == set(per_room)
            for room_id, seated in per_room.items():
                assert rooms[room_id]["clients"] == seated
                assert rooms[room_id]["max_clients"] == 4
            per_node = collections.Counter(room["node"] for room in data["rooms"])
            assert set(per_node) == {node.name.replace("node ", "node-") for node in nodes}
            assert max(per_node.values()) - min(per_node.values()) <= 1, per_node
        finally:
            for client, _, _ in made:
                await client.disconnect_async()
            await asyncio.gather(*(task for _, _, task in made), return_exceptions=True)

    asyncio.run(scenario())


def test_an_unused_reservation_frees_its_seat_after_its_expiry(cluster: Cluster) -> None:
    cluster.node()
    _mm, url = cluster.matchmaker(None, "--token-expiry", "1")
    clients = [Client(timeout=3.0) for _ in range(3)]
    try:
        clients[0].connect_in_thread(matchmaker=url, room="chase")
        room_id = clients[0].room_id
        for client in clients[1:]:
            client.connect_in_thread(matchmaker=url, room="chase")
            assert client.room_id == room_id
        unused = request_seat(url, "chase", mode="join")  # the 4th seat; nobody comes
        assert unused.room_id == room_id
        status, answer = http("POST", f"{url}/matchmake/join/chase", b"{}")
        assert status == 404, answer  # full: the unused seat is held
        assert open_rooms(url) == []
        # Held until the token's expiry (1 s) and the handshake's grace; then free again.
        wait_for(lambda: [room["room_id"] for room in open_rooms(url)] == [room_id], 10.0,
                 "the room offered again")
        late = Client(timeout=3.0)
        clients.append(late)
        late.connect_in_thread(matchmaker=url, room="chase", create=False)
        assert late.room_id == room_id
        stale = Client(timeout=3.0)
        with pytest.raises(TokenRejectedError):  # its token expired with it
            stale.connect_in_thread(unused.port, unused.host, connect_token=unused.token,
                                    room_id=unused.room_id)
    finally:
        for client in clients:
            client.disconnect()


def test_a_killed_node_is_gone_within_3_s_and_its_clients_are_told(cluster: Cluster) -> None:
    doomed = cluster.node()
    _mm, url = cluster.matchmaker()
    victims = [Client(timeout=2.0) for _ in range(2)]
    for client in victims:
        client.connect_in_thread(matchmaker=url, room="chase")
    survivor_node = cluster.node()
    wait_for(lambda: len(monitor_data(url)["nodes"]) == 2, 10.0)
    doomed_id = doomed.name.replace("node ", "node-")
    assert {room["node"] for room in monitor_data(url)["rooms"]} == {doomed_id}

    doomed_rooms = cluster.redis.command("ZRANGE", "pygase:type:chase", "0", "-1")
    doomed.kill()
    killed_at = time.monotonic()

    def expired() -> bool:  # asked of Redis itself: the cheapest poll, so the time is Redis's
        keys = [f"pygase:node:{doomed_id}", *(f"pygase:room:{room}" for room in doomed_rooms)]
        return cluster.redis.command("EXISTS", *keys) == 0

    wait_for(expired, 10.0, "the killed node's entries did not expire")
    assert time.monotonic() - killed_at <= NODE_GONE_WITHIN + 0.5
    data = monitor_data(url)  # what every reader of the registry sees from then on
    assert all(node["id"] != doomed_id for node in data["nodes"])
    assert all(room["node"] != doomed_id for room in data["rooms"])
    assert all(room["node"] != doomed_id for room in open_rooms(url))
    newcomer = Client(timeout=2.0)
    try:
        newcomer.connect_in_thread(matchmaker=url, room="chase")
        rooms = {room["id"]: room["node"] for room in monitor_data(url)["rooms"]}
        wait_for(lambda: newcomer.room_id in {r["id"] for r in monitor_data(url)["rooms"]}, 5.0)
        rooms = {room["id"]: room["node"] for room in monitor_data(url)["rooms"]}
        assert rooms[newcomer.room_id] == survivor_node.name.replace("node ", "node-")
        for client in victims:
            assert client.wait_until_disconnected(10.0)
            assert client.status is ClientStatus.DISCONNECTED
            assert client.disconnect_reason == "the server stopped answering"
    finally:
        newcomer.disconnect()


def test_restarting_a_matchmaker_or_redis_loses_nothing(cluster: Cluster) -> None:
    nodes = [cluster.node(), cluster.node()]
    matchmaker, url = cluster.matchmaker()
    port = int(url.rsplit(":", 1)[1])
    first = Client(timeout=3.0)
    first.connect_in_thread(matchmaker=url, room="chase", options={"mode": "tag"})
    try:
        wait_for(lambda: [r["clients"] for r in open_rooms(url)] == [1], 5.0)
        before = open_rooms(url)

        matchmaker.kill()
        _again, url = cluster.matchmaker(port)
        assert open_rooms(url) == before
        second = Client(timeout=3.0)
        second.connect_in_thread(matchmaker=url, room="chase", options={"mode": "tag"})
        assert second.room_id == first.room_id
        second.disconnect()

        cluster.redis.stop()
        cluster.redis.start()  # empty: no persistence
        restarted = time.monotonic()
        names = {node.name.replace("node ", "node-") for node in nodes}
        keys = ["pygase:room:" + str(first.room_id), *(f"pygase:node:{name}" for name in names)]
        wait_for(lambda: cluster.redis.command("EXISTS", *keys) == len(keys), 10.0)
        took = time.monotonic() - restarted
        assert took <= 2 * 1.0 + 1.0, f"re-registered after {took:.1f} s"
        wait_for(lambda: listed_nodes(url) == names, 10.0)  # the matchmaker reconnects too
        assert first.status is ClientStatus.CONNECTED  # players never noticed
        third = Client(timeout=3.0)
        third.connect_in_thread(matchmaker=url, room="chase", options={"mode": "tag"})
        assert third.room_id == first.room_id
        third.disconnect()
    finally:
        first.disconnect()


BAD_REQUESTS = [
    ("POST", "/matchmake/join_or_create/chase", b"{not json", 400, "not valid JSON"),
    ("POST", "/matchmake/join_or_create/chase", b"[1, 2]", 400, "JSON object"),
    ("POST", "/matchmake/join_or_create/chase", b'{"x": ' + b"1" * 5000 + b"}", 413, "bytes"),
    ("POST", "/matchmake/join_or_create/nosuchtype", b"{}", 404, "no live node hosts"),
    ("POST", "/matchmake/teleport/chase", b"{}", 404, "unknown matchmaking mode"),
    ("POST", "/matchmake/join_by_id/AAAAAAAAAAAA", b"{}", 404, "no room"),
    ("POST", "/matchmake/join/chase", b'{"mode": "nobody-plays-this"}', 404, "no open room"),
    ("POST", "/matchmake/join_or_create/a,b", b"{}", 400, "not a valid name"),
    ("POST", "/matchmake/join_or_create/chase", b"\xff\xfe{", 400, "not valid JSON"),
    ("POST", "/matchmake/join_or_create/chase", b"[" * 4000, 400, "nested too deeply"),
    ("POST", "/matchmake/join_or_create/chase", b'{"a":' * 600 + b"1" + b"}" * 600, 400,
     "nested deeper than"),
    ("GET", "/rooms/nosuchtype", None, 404, "no live node hosts"),
    ("GET", "/matchmake/join_or_create/chase", None, 405, ""),
    ("GET", "/nowhere", None, 404, ""),
]


def test_bad_http_input_gets_a_clear_4xx_and_auth_refusals_reach_the_client(
    cluster: Cluster,
) -> None:
    cluster.node()
    _open, url = cluster.matchmaker()
    for method, path, body, status, reason in BAD_REQUESTS:
        got, answer = http(method, url + path, body, {"Content-Type": "application/json"})
        assert got == status, (path, body and body[:40], answer)
        assert isinstance(answer, dict) and reason in answer["error"], (path, answer)
    for declared in ("text/plain", "multipart/form-data; boundary=x", "application/xml"):
        got, answer = http("POST", f"{url}/matchmake/join_or_create/chase", b"{}",
                           {"Content-Type": declared})
        assert (got, "application/json" in answer["error"]) == (415, True), answer
    assert http("GET", f"{url}/healthz")[0] == 200

    _guarded, guarded = cluster.matchmaker(None, "--auth", "tests.programs.cluster_auth:check")
    assert http("POST", f"{guarded}/matchmake/join_or_create/chase", b"{}") == (
        401, {"error": "sign in first"})
    with pytest.raises(JoinRefusedError, match="sign in first"):
        Client().connect_in_thread(matchmaker=guarded, room="chase")
    # The hook looks up "X-Ticket"; HTTP/2 front ends and many clients send names in lower case.
    lower = HTTPConnection("127.0.0.1", int(guarded.rsplit(":", 1)[1]), timeout=10)
    lower.putrequest("POST", "/matchmake/join_or_create/chase")
    for name, value in (("x-ticket", "let-me-in"), ("content-length", "2")):
        lower.putheader(name, value)
    lower.endheaders(b"{}")
    assert "token" in json.loads(lower.getresponse().read())
    lower.close()
    with pytest.raises(JoinRefusedError, match="not valid here"):
        Client().connect_in_thread(matchmaker=guarded, room="chase", options={"ticket": "x"})
    admitted = Client(timeout=3.0)
    admitted.connect_in_thread(matchmaker=guarded, room="chase", options={"ticket": "let-me-in"})
    try:
        assert admitted.status is ClientStatus.CONNECTED
        metrics = http("GET", f"{guarded}/metrics")[1]
        assert "pygase_joins_total" in metrics and 'pygase_refusals_total{status="403"}' in metrics
        assert "pygase_matchmaking_seconds_bucket" in metrics
        assert json.dumps(sorted(open_rooms(guarded)[0])) == json.dumps(
            ["address", "clients", "id", "max_clients", "metadata", "node", "room", "room_id",
             "seats"])
    finally:
        admitted.disconnect()


def answering(reply: bytes) -> str:
    """The URL of a one-thread TCP server that answers every connection with ``reply``."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(65536)
                    with contextlib.suppress(OSError):
                        conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


def http_answer(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}"
            f"\r\nConnection: close\r\n\r\n").encode() + body


def test_whatever_answers_in_place_of_a_matchmaker_is_a_matchmaker_error_at_the_call() -> None:
    not_a_token = json.dumps({"token": "eHh4", "address": "127.0.0.1:9", "room_id": "r",
                              "room": "chase", "seat": "1", "expires_at": 1}).encode()
    answers = {
        "not HTTP": b"SSH-2.0-OpenSSH_9.2\r\n",
        "cut short": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{",
        "a page": http_answer("200 OK", b"<html>hello</html>", "text/html"),
        "a huge body": http_answer("200 OK", b"[" + b"0," * 100_000 + b"0]"),
        "not a token": http_answer("200 OK", not_a_token),
        "a bad address": http_answer("200 OK", not_a_token.replace(b":9", b":99999")),
    }
    for reply in answers.values():
        url = answering(reply)
        with pytest.raises(MatchmakerError):
            request_seat(url, "chase", timeout=5.0)
        with pytest.raises(MatchmakerError):
            Client(timeout=2.0).connect_in_thread(matchmaker=url, room="chase")
    for url in ("http://127.0.0.1:port", "http://127.0.0.1:99999", "http://", "localhost:8000",
                "http://127.0.0.1:8000?x=1"):
        with pytest.raises(ValueError, match="matchmaker must be an http"):
            request_seat(url, "chase")
        with pytest.raises(ValueError, match="matchmaker must be an http"):
            asyncio.run(Client().connect_async(matchmaker=url, room="chase"))
    for options in ([("a", 1)], "abc", 5):
        with pytest.raises(TypeError, match="options must be a dict"):
            request_seat("http://127.0.0.1:9", "chase", options=options)  # type: ignore[arg-type]


def test_workers_are_one_registered_node_each_and_stop_together(cluster: Cluster) -> None:
    port = free_port(socket.SOCK_DGRAM)
    while not udp_port_free(port + 1):
        port = free_port(socket.SOCK_DGRAM)
    parent = cluster.start("workers", [
        "node", GAME, "--redis", cluster.redis.url, "--secret-key-file", str(cluster.key_file),
        "--host", "127.0.0.1", "--port", str(port), "--public-address", f"127.0.0.1:{port}",
        "--node-id", "w", "--workers", "2",
    ], "serving on UDP port")

    def registered() -> list[str]:
        return sorted(cluster.redis.command("ZRANGE", "pygase:nodes", "0", "-1"))

    wait_for(lambda: registered() == ["w-0", "w-1"], 15.0, "two workers registered")
    addresses = {cluster.redis.command("HGET", f"pygase:node:w-{index}", "address")
                 for index in (0, 1)}
    assert addresses == {f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"}
    parent.stop()  # SIGINT, passed on to every worker
    assert parent.process.returncode == 0
    assert registered() == []  # a node that stops deregisters at once
    assert cluster.redis.command("KEYS", "pygase:node:*") == []

    again = cluster.start("workers again", [
        "node", GAME, "--redis", cluster.redis.url, "--secret-key-file", str(cluster.key_file),
        "--host", "127.0.0.1", "--port", str(port), "--public-address", f"127.0.0.1:{port}",
        "--node-id", "w", "--workers", "2",
    ], "serving on UDP port")
    wait_for(lambda: registered() == ["w-0", "w-1"], 15.0, "two workers registered again")
    again.kill()  # SIGKILL: no chance to pass anything on, yet its workers end with it
    wait_for(lambda: registered() == [], 10.0, "workers outlived their parent")


def udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_a_node_restarted_under_its_id_inherits_no_stale_counts(cluster: Cluster) -> None:
    first = cluster.node()
    port = int(first.name.split()[1])
    _mm, url = cluster.matchmaker()
    client = Client(timeout=2.0)
    client.connect_in_thread(matchmaker=url, room="chase")

    def rooms_counted() -> str | None:
        return cluster.redis.command("HGET", f"pygase:node:node-{port}", "rooms")  # type: ignore[no-any-return]

    wait_for(lambda: rooms_counted() == "1", 5.0)
    first.kill()
    cluster.node(port)  # the same id, while the old entry has not expired yet
    assert rooms_counted() == "0"
    again = Client(timeout=2.0)
    try:
        again.connect_in_thread(matchmaker=url, room="chase")  # the dead room is refused
        assert again.room_id != client.room_id
        wait_for(lambda: rooms_counted() == "1", 5.0)
    finally:
        again.disconnect()
        client.disconnect()


def test_create_makes_a_room_of_its_own_and_join_by_id_reaches_a_private_one(
    cluster: Cluster,
) -> None:
    cluster.node()
    _mm, url = cluster.matchmaker()
    clients = [Client(timeout=3.0) for _ in range(4)]
    try:
        clients[0].connect_in_thread(matchmaker=url, room="chase")
        clients[1].connect_in_thread(matchmaker=url, room="chase", create=True)
        assert clients[1].room_id != clients[0].room_id  # create: always a new room
        secret = request_seat(url, "chase", mode="create", options={"private": True})
        clients[2].connect_in_thread(secret.port, secret.host, connect_token=secret.token,
                                     room_id=secret.room_id)
        listed = {room["room_id"] for room in open_rooms(url)}
        assert listed == {clients[0].room_id, clients[1].room_id}  # never the private one
        clients[3].connect_in_thread(matchmaker=url, room_id=secret.room_id)
        assert clients[3].room_id == secret.room_id

        # The oldest room's one client leaves, so the node disposes of it at once; the registry
        # lists it until a heartbeat. The next seat asked for is refused there and lands in the
        # other room, and the refusal takes the gone room out of the registry right away: it
        # is not tried again with a seat counted each time (which made it look full).
        gone = clients[0].room_id
        clients[0].disconnect()
        assert request_seat(url, "chase").room_id == clients[1].room_id
        assert cluster.redis.command("EXISTS", f"pygase:room:{gone}") == 0
        with pytest.raises(JoinRefusedError, match="no room"):
            request_seat(url, room_id=gone)
    finally:
        for client in clients:
            client.disconnect()


def test_the_node_command_says_what_is_wrong_with_its_arguments(tmp_path: Path) -> None:
    (tmp_path / "serving.py").write_text(
        "from pygase_core import Room, Server\n"
        "server = Server()\nserver.define('x', Room)\nserver.run_in_thread(0)\n"
    )
    (tmp_path / "short.key").write_text("abcd")
    (tmp_path / "good.key").write_text("ab" * 32)

    def node(*args: str) -> str:
        completed = subprocess.run(
            [sys.executable, "-m", "pygase_core.tools.cli", "node", *args, "--redis",
             "redis://127.0.0.1:1/0", "--port", "0"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        )
        assert completed.returncode != 0
        return completed.stderr

    assert "must hold a 32-byte key" in node(
        "serving:server", "--secret-key-file", "short.key", "--public-address", "h:1")
    assert "not a host:port address" in node(
        "serving:server", "--secret-key-file", "good.key", "--public-address", "nowhere")
    assert "importing serving started a server (serving.py, line 4" in node(
        "serving:server", "--secret-key-file", "good.key", "--public-address", "h:1")
    assert "needs --agones" in node(
        "serving:server", "--secret-key-file", "good.key", "--public-address", "agones")


def test_the_cluster_commands_refuse_a_bad_redis_url_port_or_expiry(tmp_path: Path) -> None:
    (tmp_path / "good.key").write_text("ab" * 32)

    def refused(*args: str) -> str:
        completed = subprocess.run(
            [sys.executable, "-m", "pygase_core.tools.cli", *args, "--secret-key-file",
             "good.key"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        )
        assert completed.returncode != 0 and "Traceback" not in completed.stderr, completed
        return completed.stderr

    good = ("--redis", "redis://127.0.0.1:1/0")
    node = ("node", GAME, "--public-address", "127.0.0.1:9000")
    assert "--redis must be a redis://" in refused(
        *node, "--redis", "localhost:6379", "--port", "9000")
    assert "--port must be from 0 to 65535" in refused(*node, *good, "--port", "70000")
    assert "--port must be from 0 to 65535" in refused(
        "matchmaker", *good, "--port", "70000")
    assert "--token-expiry must be above 0" in refused(
        "matchmaker", *good, "--token-expiry", "-1")


def test_a_matchmaker_keeps_no_request_it_stopped_waiting_for(cluster: Cluster) -> None:
    """Joins that make a room, joins with no room to join, a Redis that fails meanwhile: a
    long-running matchmaker keeps waiting for nothing it asked (it kept one per such join)."""
    from aiohttp import web

    from pygase_core.cluster.matchmaker import Matchmaker

    cluster.node()
    matchmaker = Matchmaker(cluster.redis.url, bytes.fromhex(cluster.key_file.read_text()))
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    async def main() -> None:
        runner = web.AppRunner(matchmaker.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            for mode in ("join_or_create", "create", "join_or_create", "create"):
                await request_seat_async(url, "chase", mode=mode)
            with pytest.raises(JoinRefusedError, match="no open room"):
                await request_seat_async(url, "chase", mode="join", options={"mode": "x"})
            assert matchmaker._waiting == {}
            cluster.redis.stop()
            with pytest.raises(MatchmakerError, match="503"):
                await request_seat_async(url, "chase")
            assert matchmaker._waiting == {}
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_a_node_stays_listed_while_a_room_takes_long_to_make(cluster: Cluster) -> None:
    port = free_port(socket.SOCK_DGRAM)
    cluster.start("slow node", [
        "node", "tests.programs.cluster_slow_game:server", "--redis", cluster.redis.url,
        "--secret-key-file", str(cluster.key_file), "--host", "127.0.0.1", "--port", str(port),
        "--public-address", f"127.0.0.1:{port}", "--node-id", "slow",
    ], "serving on UDP port")
    _mm, url = cluster.matchmaker()
    asking = threading.Thread(target=http, args=("POST", f"{url}/matchmake/create/slow", b"{}"))
    asking.start()  # answered once the room is made, or with a 503 after the 3 s wait
    listed = []
    while asking.is_alive():  # the whole time on_create runs past the node entry's 3 s life
        listed.append(cluster.redis.command("ZRANGE", "pygase:nodes", "0", "-1") == ["slow"])
        asking.join(0.05)
    assert len(listed) > 20 and all(listed)
