"""Processes killed mid-game: the other side notices, within its timeouts, and says so."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent


class Lines:
    """A process's stdout lines, read on a thread so the test can wait for one."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.strip())

    def wait(self, prefix: str, timeout: float = 20.0) -> str:
        def found() -> str | None:
            while True:
                try:
                    self.seen.append(self._lines.get_nowait())
                except queue.Empty:
                    break
            return next((line for line in self.seen if line.startswith(prefix)), None)

        return wait_for(found, timeout=timeout, message=f"no {prefix!r} line in {self.seen}")


def start(*args: str) -> tuple[subprocess.Popen[str], Lines]:
    process = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    return process, Lines(process.stdout)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(10)


def test_a_player_killed_mid_game_leaves_its_room_when_the_window_ends() -> None:
    server, server_out = start("tests.programs.room_server", "1.0")
    try:
        port = server_out.wait("PORT ").split()[1]
        player, player_out = start("tests.programs.room_player", port)
        try:
            _, seat, room_id = player_out.wait("SEAT ").split()
            server_out.wait(f"JOIN {seat}")
            player.send_signal(signal.SIGKILL)
            player.wait(10)
            assert server_out.wait(f"LEAVE {seat}") == f"LEAVE {seat} False"
            server_out.wait(f"DISPOSE {room_id}")
        finally:
            stop(player)
    finally:
        stop(server)


def test_a_server_killed_mid_game_leaves_its_players_reconnecting_then_disconnected() -> None:
    server, server_out = start("tests.programs.room_server", "1.0")
    try:
        port = server_out.wait("PORT ").split()[1]
        player, player_out = start("tests.programs.room_player", port)
        try:
            player_out.wait("SEAT ")
            server.send_signal(signal.SIGKILL)
            server.wait(10)
            player_out.wait("STATUS reconnecting")
            line = player_out.wait("STATUS disconnected", timeout=30)
            assert "server" in line  # the reason says the server stopped answering
        finally:
            stop(player)
    finally:
        stop(server)
