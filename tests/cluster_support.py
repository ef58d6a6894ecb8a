"""Real cluster parts for tests: a redis-server, node and matchmaker processes, on loopback.

Everything is a real process a user would run (``redis-server``, ``pygase node``, ``pygase
matchmaker``) on free loopback ports, stopped when its test is done.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_chase import Program
from tests.waiting import wait_for

REPOSITORY = Path(__file__).resolve().parent.parent
GAME = "tests.programs.cluster_game:server"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A redis-server on a free loopback port, with no persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self.ping, 10.0, "redis-server did not start")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *words: str) -> Any:
        import redis

        client = redis.Redis.from_url(self.url, decode_responses=True)
        try:
            return client.execute_command(*words)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@pytest.fixture(name="redis_server")
def redis_server_fixture(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test, killed at its end."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing: tools/test.sh installs it (apt-get install"
                    " redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


class Process(Program):
    """A ``pygase`` command running in the background (its output collected), by name."""

    def __init__(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        super().__init__("pygase_core.tools.cli", *args, env=env)
        self.name = name

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Cluster:
    """Starts nodes and matchmakers for one test; :meth:`close` stops them all."""

    def __init__(self, redis: RedisServer, directory: Path) -> None:
        self.redis = redis
        self.key_file = directory / "secret.key"
        self.key_file.write_text(os.urandom(32).hex())
        self.processes: list[Process] = []

    def start(self, name: str, arguments: list[str], ready: str,
               env: dict[str, str] | None = None) -> Process:
        started = Process(name, *arguments, env={"PYTHONPATH": str(REPOSITORY), **(env or {})})
        process = started.process
        self.processes.append(started)
        wait_for(lambda: ready in started.output or process.poll() is not None, 30.0,
                 f"{name} did not start")
        assert ready in started.output, f"{name} failed:\n{started.output}"
        return started

    def node(self, port: int | None = None, *extra: str, env: dict[str, str] | None = None,
             public_address: str | None = None) -> Process:
        port = port or free_port(socket.SOCK_DGRAM)
        return self.start(f"node {port}", [
            "node", GAME, "--redis", self.redis.url, "--secret-key-file", str(self.key_file),
            "--host", "127.0.0.1", "--port", str(port),
            "--public-address", public_address or f"127.0.0.1:{port}",
            "--node-id", f"node-{port}", *extra,
        ], "serving on UDP port", env)

    def matchmaker(self, port: int | None = None, *extra: str) -> tuple[Process, str]:
        port = port or free_port()
        process = self.start(f"matchmaker {port}", [
            "matchmaker", "--redis", self.redis.url, "--secret-key-file", str(self.key_file),
            "--host", "127.0.0.1", "--port", str(port), *extra,
        ], "matchmaker listening")
        return process, f"http://127.0.0.1:{port}"

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture(name="cluster")
def cluster_fixture(redis_server: RedisServer, tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(redis_server, tmp_path)
    yield made
    made.close()


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One HTTP request: its status and its JSON body (or its text, when not JSON)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="pygase-cluster-"))


def wait_seconds(condition: Any, timeout: float, message: str) -> float:
    """Wait for ``condition``; how many seconds it took."""
    started = time.monotonic()
    wait_for(condition, timeout, message)
    return time.monotonic() - started
