"""Find the fenced code blocks of the README and the docs, and run them as a reader would.

Every fenced block must be one of these, or the test of its file fails:

* a ``python`` block: run with the test's Python as a script, in a fresh temporary directory
  with the repository on ``PYTHONPATH``; it must exit with status 0;
* a ``sh`` block: each line is a command, run the same way (``.venv/bin/X``, ``pygase`` and
  ``python`` mean the programs of the environment running the tests); each must exit with 0;
* a ``text`` block marked ``<!-- test: output -->``: what the block before it prints; each of
  its lines must match one the block printed, in order, where ``...`` stands for any text;
* any block marked ``<!-- not run: REASON -->``, with the reason, for the few that cannot run in
  a test (the command that runs this very suite, installing packages).

A marker is an HTML comment on the last non-blank line before the fence, so it does not show on
GitHub or on the docs site. ``<!-- test: ... -->`` takes these words:

``group=NAME``
    Blocks of one file with the same group run in order, in one directory, on one port: the
    server a reader starts in one block is there for the client in the next one. A block without
    a group runs alone.
``file=NAME``
    Save the ``python`` block under this name instead of running it: a later block of the group
    must use it, as ``pygase serve mygame:backend`` or ``python mygame.py`` uses ``mygame.py``.
    With ``background`` it is saved and started as ``python NAME``.
``background``
    Start the block (each line of a ``sh`` block) and go on once it is ready, as with a server
    left running in another terminal. It is ready when its output contains ``ready=TEXT``.
    Without ``ready``, it is ready once it has bound the group's UDP port (a server), or at once
    when a server of the group already has (a client). When the group is done, each background
    process, in the order they started, gets ``stop=SIGINT`` (the default, as Ctrl-C would),
    ``stop=SIGTERM``, or with ``stop=none`` nothing, as it must end by itself (a server that a
    client shut down, a game that closes when its server is gone). Then it must exit within
    the timeout, with status 0 (or, after SIGINT, by that signal).
``expect=TEXT``
    The block's output must contain TEXT (checked when the block has ended).
``check=NAME``
    Once the block is running, call the function of that name in :data:`CHECKS`.

Ports: each group gets a free UDP port, and every ``8080`` in its blocks is replaced by that
port before they run (and in the ``ready``, ``expect`` and output texts), so the blocks say 8080
as a reader would type it. Likewise ``6379`` (Redis) and ``8000`` (a matchmaker) stand for free
TCP ports of the group. ``redis-server`` runs from the PATH, like the system's own.

Everything runs without a screen and without a simulated network: ``SDL_VIDEODRIVER=dummy`` for
pygame, ``ARCADE_HEADLESS=1`` for arcade (EGL and Mesa, as in ``.ci/display.sh``), and no
``PYGASE_LINK`` unless a ``sh`` line sets it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC_PORT = "8080"
DOC_TCP_PORTS = ("6379", "8000")
SYSTEM_PROGRAMS = {"redis-server"}
"""Programs a ``sh`` line may run from the PATH (installed by tools/test.sh when missing)."""
TIMEOUT = 60.0
"""Seconds any one command, readiness or stop may take (generous: the machine may be busy)."""

LANGUAGES = {
    "python": "python",
    "py": "python",
    "sh": "sh",
    "bash": "sh",
    "shell": "sh",
    "console": "sh",
    "text": "text",
    "": "text",
}
FLAGS = {"background", "output"}
KEYS = {"group", "file", "ready", "stop", "expect", "check"}
STOPS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "none": None}

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>test|not run)\s*:(?P<body>.*?)-->\s*$")


class DocsError(Exception):
    """A block is malformed or failed; the message says where."""


@dataclass
class Block:
    """One fenced code block and its marker."""

    path: Path
    line: int
    language: str
    code: str
    options: dict[str, list[str]] = field(default_factory=dict)
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"{relative(self.path)}:{self.line}"

    def option(self, key: str, default: str | None = None) -> str | None:
        values = self.options.get(key)
        return values[-1] if values else default

    def has(self, flag: str) -> bool:
        return flag in self.options


def relative(path: Path) -> str:
    """``path`` as the messages name it: relative to the repository when it is inside."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def markdown_files() -> list[Path]:
    """The README and every page of the docs."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def parse_marker(body: str, where: str) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for word in shlex.split(body):
        key, eq, value = word.partition("=")
        if not eq:
            if key not in FLAGS:
                raise DocsError(f"{where}: unknown flag {key!r} in the test marker")
            options[key] = []
        elif key in KEYS:
            options.setdefault(key, []).append(value)
        else:
            raise DocsError(f"{where}: unknown key {key!r} in the test marker")
    stop = options.get("stop", ["SIGINT"])[-1]
    if stop not in STOPS:
        raise DocsError(f"{where}: stop must be one of {sorted(STOPS)}, not {stop!r}")
    return options


def parse(path: Path) -> list[Block]:
    """Every fenced block of a markdown file, with its marker."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        start, indent, fence = index, match["indent"], match["fence"]
        info = match["info"].strip().lower()
        body: list[str] = []
        index += 1
        while index < len(lines):
            line = lines[index]
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                break
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            index += 1
        else:
            raise DocsError(f"{relative(path)}:{start + 1}: unclosed code fence")
        index += 1
        where = f"{relative(path)}:{start + 1}"
        if info not in LANGUAGES:
            raise DocsError(f"{where}: no test knows how to run a {info!r} block")
        block = Block(path, start + 1, LANGUAGES[info], "\n".join(body) + "\n")
        previous = start - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        marker = MARKER.match(lines[previous]) if previous >= 0 else None
        if marker is not None and marker["kind"] == "not run":
            reason = marker["body"].strip()
            if not reason:
                raise DocsError(f"{where}: a 'not run' marker needs a reason")
            block.not_run = reason
        elif marker is not None:
            block.options = parse_marker(marker["body"], where)
        blocks.append(block)
    return blocks


@dataclass
class Group:
    """Blocks that run together: one named group of a file, or one block alone."""

    name: str
    blocks: list[Block]

    @property
    def id(self) -> str:
        return f"{relative(self.blocks[0].path)}::{self.name}"


def groups(path: Path) -> list[Group]:
    """The file's blocks, grouped, in the order of their first block; 'not run' ones left out.

    Raises DocsError for a block no test knows how to run, so that none escapes silently.
    """
    found: dict[str, Group] = {}
    for block in parse(path):
        if block.not_run is not None:
            continue
        if block.language == "text" and not block.has("output"):
            raise DocsError(
                f"{block.where}: a text block must be marked as output"
                " (<!-- test: output -->) or as not run (<!-- not run: REASON -->)"
            )
        name = block.option("group") or f"line-{block.line}"
        group = found.setdefault(name, Group(name, []))
        if block.has("output") and not group.blocks:
            raise DocsError(f"{block.where}: an output block must follow the block it shows")
        group.blocks.append(block)
    return list(found.values())


# -- running ------------------------------------------------------------------------------------


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def udp_port_owners(port: int, pids: set[int]) -> set[int]:
    """Which of the processes ``pids`` have a UDP socket bound to ``port`` (read from /proc)."""
    suffix = f":{port:04X}"
    sockets = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            columns = row.split()
            if len(columns) > 9 and columns[1].endswith(suffix):
                sockets.add(f"socket:[{columns[9]}]")
    owners = set()
    for pid in pids if sockets else ():
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in sockets for fd in Path(f"/proc/{pid}/fd").iterdir()):
                owners.add(pid)
    return owners


def environment() -> dict[str, str]:
    """What the blocks run with: the repository importable, no display, no simulated link."""
    env = {k: v for k, v in os.environ.items() if k != "PYGASE_LINK"}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) if not path else f"{ROOT}{os.pathsep}{path}"
    env.update(
        PYTHONUNBUFFERED="1",
        SDL_VIDEODRIVER="dummy",
        SDL_AUDIODRIVER="dummy",
        PYGAME_HIDE_SUPPORT_PROMPT="1",
        ARCADE_HEADLESS="1",
    )
    return env


def command(line: str, where: str) -> tuple[list[str], dict[str, str]] | None:
    """The argv and extra environment of one ``sh`` line (None for a blank or comment line)."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError as error:
        raise DocsError(f"{where}: cannot read {line!r} as one command: {error}") from None
    if not words:
        return None
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    if not words:
        raise DocsError(f"{where}: {line!r} runs nothing")
    bin_dir = Path(sys.executable).parent
    program = words[0]
    if program.startswith(".venv/bin/"):
        program = program.removeprefix(".venv/bin/")
    if program in ("python", "python3"):
        words[0] = sys.executable
    elif program in SYSTEM_PROGRAMS and shutil.which(program):
        words[0] = str(shutil.which(program))
    elif program == "pygase" or words[0].startswith(".venv/bin/"):
        resolved = bin_dir / program
        if not resolved.exists():
            raise DocsError(f"{where}: {words[0]} is not installed in {bin_dir}")
        words[0] = str(resolved)
    else:
        raise DocsError(
            f"{where}: no test knows how to run {program!r}; mark the block"
            " <!-- not run: REASON --> if it cannot run in a test"
        )
    return words, env


class Process:
    """A started command whose output is collected line by line."""

    def __init__(
        self, argv: list[str], cwd: Path, env: dict[str, str], block: Block, label: str
    ) -> None:
        self.block = block
        self.label = label
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait for ``condition``; fail if the process ends first or the timeout passes."""
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            if self.popen.poll() is not None:
                self._reader.join(5)
                if condition():
                    return
                raise DocsError(
                    f"{self.label} exited with {self.popen.returncode} before {what}"
                )
            if time.monotonic() > deadline:
                raise DocsError(f"{self.label}: no {what} within {TIMEOUT:g} s")
            with self._changed:
                self._changed.wait(0.02)

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Wait for the process to end and for its output to be read; return its status."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            self._reader.join(5)
            raise DocsError(f"{self.label} did not end within {timeout:g} s") from None
        self._reader.join(5)
        return code


def output_matches(expected: str, output: str) -> bool:
    """Whether every non-blank expected line matches an output line, in order.

    ``...`` in an expected line stands for any text, as in doctest.
    """
    lines = iter(output.splitlines())
    for wanted in (line.strip() for line in expected.splitlines()):
        if not wanted:
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in wanted.split("...")))
        if not any(pattern.fullmatch(line.strip()) for line in lines):
            return False
    return True


CHECKS: dict[str, Callable[[Block, int], None]] = {}


def check(name: str) -> Callable[[Callable[[Block, int], None]], Callable[[Block, int], None]]:
    """Register a check that a marker can name with ``check=NAME``."""

    def register(function: Callable[[Block, int], None]) -> Callable[[Block, int], None]:
        CHECKS[name] = function
        return function

    return register


@check("chase-players")
def chase_players(block: Block, port: int) -> None:
    """Every ``--name`` of the block plays, in one room: the room listing names them all.

    The chase server lists each open room with its players' names (its metadata), so the
    check takes no seat itself.
    """
    from pygase_core import Client

    names = set(re.findall(r"--name\s+(\S+)", block.code))
    deadline = time.monotonic() + TIMEOUT
    while True:
        rooms = Client.list_rooms(port, room="chase")
        playing = [set(room.metadata.get("players", [])) for room in rooms]
        if any(names <= players for players in playing):
            return
        if time.monotonic() > deadline:
            wanted = sorted(names)
            raise DocsError(f"{block.where}: rooms with players {playing}, not all of {wanted}")
        time.sleep(0.1)


class GroupRun:
    """Runs the blocks of a group in one directory, and stops what they left running."""

    def __init__(self, group: Group, directory: Path) -> None:
        self.group = group
        self.directory = directory
        self.port = free_udp_port()
        self.tcp_ports = {number: free_tcp_port() for number in DOC_TCP_PORTS}
        self.env = environment()
        self.background: list[Process] = []
        self.finished: list[Process] = []
        self.last_output = ""

    def substitute(self, code: str) -> str:
        for number, port in self.tcp_ports.items():
            code = re.sub(rf"\b{number}\b", str(port), code)
        return re.sub(rf"\b{DOC_PORT}\b", str(self.port), code)

    def run(self) -> None:
        """Run every block; on a failure, say what the background processes printed."""
        try:
            for block in self.group.blocks:
                self.run_block(block)
        except BaseException as error:
            outputs = "\n".join(self.outputs())
            self.stop(kill=True)
            if isinstance(error, DocsError) and outputs:
                raise DocsError(f"{error}\n\nrunning in the background:\n{outputs}") from None
            raise
        self.stop(kill=False)

    def run_block(self, block: Block) -> None:
        if block.has("output"):
            if not output_matches(self.substitute(block.code), self.last_output):
                raise DocsError(
                    f"{block.where}: the output shown does not match what the block above"
                    f" printed:\n{self.last_output}"
                )
            return
        code = self.substitute(block.code)
        started: list[Process] = []
        if block.language == "python":
            name = block.option("file") or f"block_{block.line}.py"
            script = self.directory / name
            script.write_text(code, encoding="utf-8")
            if block.option("file") is not None and not block.has("background"):
                self.check_used(block, name)
                return  # saved for the blocks after it
            started.append(self.start(block, [sys.executable, name], {}, f"{block.where} ({name})"))
        else:
            for number, line in enumerate(code.splitlines()):
                parsed = command(line, f"{block.where}+{number}")
                if parsed is not None:
                    argv, extra = parsed
                    label = f"{block.where}: {shlex.join(shlex.split(line, comments=True))}"
                    started.append(self.start(block, argv, extra, label))
                    if not block.has("background"):
                        self.complete(started[-1])
        if block.language == "python" and not block.has("background"):
            self.complete(started[-1])
        check_name = block.option("check")
        if check_name is not None:
            if check_name not in CHECKS:
                raise DocsError(f"{block.where}: there is no check named {check_name!r}")
            CHECKS[check_name](block, self.port)
        self.last_output = "\n".join(process.output for process in started)

    def start(self, block: Block, argv: list[str], extra: dict[str, str], label: str) -> Process:
        process = Process(argv, self.directory, {**self.env, **extra}, block, label)
        if block.has("background"):
            self.background.append(process)
            ready = block.option("ready")
            if ready is not None:
                ready = self.substitute(ready)
                process.wait_until(lambda: ready in process.output, f"{ready!r} in its output")
            else:
                # A server binds the port itself; a client finds it bound by a server of the group.
                servers = {p.popen.pid for p in self.background if p.popen.poll() is None}
                servers.add(process.popen.pid)
                process.wait_until(
                    lambda: bool(udp_port_owners(self.port, servers)),
                    f"server on UDP port {self.port}",
                )
        return process

    def check_used(self, block: Block, name: str) -> None:
        """A file saved for later blocks must be used by one of them."""
        later = self.group.blocks[self.group.blocks.index(block) + 1 :]
        stem = Path(name).stem
        if not any(re.search(rf"\b{re.escape(stem)}\b", other.code) for other in later):
            raise DocsError(f"{block.where}: no later block of its group uses {name}")

    def complete(self, process: Process) -> None:
        code = process.finish()
        if code != 0:
            raise DocsError(f"{process.label} exited with {code}:\n{process.output}")
        self.expect(process)

    def expect(self, process: Process) -> None:
        for text in process.block.options.get("expect", []):
            if self.substitute(text) not in process.output:
                raise DocsError(f"{process.label}: {text!r} not in its output:\n{process.output}")

    def stop(self, kill: bool) -> None:
        """End the background processes in the order they started, and check how they ended."""
        problems: list[str] = []
        for process in self.background:
            stop = STOPS[process.block.option("stop", "SIGINT") or "SIGINT"]
            if kill:
                if process.popen.poll() is None:
                    process.popen.kill()
                with contextlib.suppress(DocsError):
                    process.finish()
                continue
            if stop is not None and process.popen.poll() is None:
                process.popen.send_signal(stop)
            try:
                code = process.finish()
            except DocsError as error:
                problems.append(f"{error}:\n{process.output}")
                continue
            if code != 0 and not (stop == signal.SIGINT and code == -signal.SIGINT):
                problems.append(f"{process.label} exited with {code}:\n{process.output}")
                continue
            try:
                self.expect(process)
            except DocsError as error:
                problems.append(str(error))
        self.background.clear()
        if problems:
            raise DocsError("\n\n".join(problems))

    def outputs(self) -> Iterator[str]:
        for process in self.background:
            yield f"--- {process.label}\n{process.output}"
