"""The ``pygase`` command: a Backend served from a module in a real process, and the demo."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pygase_core import Client, ClientStatus
from tests.waiting import wait_for


def pygase(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pygase_core.tools.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_runs_a_backend_from_a_module_in_its_own_process(tmp_path: Path) -> None:
    (tmp_path / "mygame.py").write_text(textwrap.dedent("""
        from pygase_core import Backend, GameState

        backend = Backend(
            initial_game_state=GameState(foo=0.0, bar=0.5),
            time_step_function=lambda game_state, dt: {"foo": game_state.foo + game_state.bar * dt},
            event_handlers={"SET_BAR": lambda new_bar, game_state, dt: {"bar": new_bar}},
        )
    """))
    port = free_udp_port()
    process = pygase("serve", "mygame:backend", "--port", str(port), cwd=tmp_path)
    try:
        assert process.stdout is not None
        assert "serving mygame:backend" in process.stdout.readline()
        client = Client()
        wait_for(lambda: _try_connect(client, port), timeout=15)
        client.dispatch_event("SET_BAR", 2.0, retries=5)

        def bar() -> float:
            with client.access_game_state() as state:
                return float(getattr(state, "bar", 0.0))

        wait_for(lambda: bar() == 2.0)
        client.disconnect(shutdown_server=True)  # the first client is the host
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)


def _try_connect(client: Client, port: int) -> bool:
    try:
        client.connect_in_thread(port)
    except Exception:
        return False
    return client.status is ClientStatus.CONNECTED


def test_demo_prints_live_state_and_stats() -> None:
    process = pygase("demo", "--clients", "2", "--seconds", "2", "--entities", "5")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "bot 0: time_order" in output and "bot 1: time_order" in output
    assert "rtt" in output and "server: 2 clients" in output
    # the columns that ``pygase demo --help`` explains
    for column in ["speed", "boosts", "state age", "loss", " in ", " out ", "game time"]:
        assert column in output, column
    assert output.rstrip().endswith("pygase demo: done")


# -- help ---------------------------------------------------------------------------------------

HELP_COMMANDS = [[], ["serve"], ["demo"], ["bots"]]


def help_text(command: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """``pygase [command] --help`` as a terminal 100 columns wide shows it."""
    from pygase_core.tools import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def flat(text: str) -> str:
    """The text with its line breaks and indentation folded into single spaces."""
    return " ".join(text.split())


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(["pygase", *c]))
def test_help_is_plain_text_with_a_description(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    text = help_text(command, capsys)
    assert "``" not in text and "**" not in text, text
    assert not re.search(r":[a-z]+:`", text), text  # no :class:`...` and friends
    assert not re.search(r"::$", text, re.MULTILINE), text  # no literal blocks
    _usage, _, rest = text.partition("\n\n")
    description = rest.split("\n\n")[0]
    assert len(description.split()) >= 8, f"no description of {command}: {text}"


@pytest.mark.parametrize("command", HELP_COMMANDS[1:], ids=lambda c: c[0])
def test_every_option_has_help_and_shows_its_default(command: list[str]) -> None:
    from pygase_core.tools import cli

    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    subparser = subparsers.choices[command[0]]
    for action in subparser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{command[0]} {action.dest} has no help"
        has_default = action.default not in (None, False, argparse.SUPPRESS)
        if has_default and action.option_strings:
            formatted = subparser.formatter_class(prog="pygase")._expand_help(action)
            assert f"default: {action.default}" in formatted, formatted


def test_serve_help_explains_module_attribute(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    text = flat(help_text(["serve"], capsys))
    assert "pygase serve mygame:backend --port 8081" in text
    assert "current directory" in text and "callable" in text
    assert 'if __name__ == "__main__":' in text


def test_demo_help_explains_every_column_it_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    text = flat(help_text(["demo"], capsys))
    for column in ["time_order", "speed", "boosts", "state age", "rtt", "loss", "in", "out"]:
        assert re.search(rf"\b{column}\b: ", text), f"{column!r} is not explained: {text}"
    assert "server:" in text and "game time" in text


def test_the_top_level_help_lists_the_commands_with_examples(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    text = flat(help_text([], capsys))
    for command in ["serve", "demo", "bots"]:
        assert f"pygase {command} " in text  # an example of each
    assert "--verbose" in text


# -- serve: a module that starts its own server on import ---------------------------------------


@pytest.mark.parametrize("call", ["backend.run(port={port})", "backend.run_in_thread(port={port})"])
def test_serve_refuses_a_module_that_starts_a_server_when_imported(
    tmp_path: Path, call: str
) -> None:
    """Without a main guard, importing the module would serve on its own port, not on --port."""
    module_port, port = free_udp_port(), free_udp_port()
    (tmp_path / "mygame.py").write_text(textwrap.dedent(f"""
        from pygase_core import Backend, GameState

        backend = Backend(GameState(foo=0), lambda game_state, dt: {{}})
        {call.format(port=module_port)}
    """))
    process = pygase("serve", "mygame:backend", "--port", str(port), cwd=tmp_path)
    try:
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode != 0, output
    assert 'if __name__ == "__main__":' in output, output
    assert "mygame.py" in output and "line 5" in output, output
    assert "Traceback" not in output, output


def test_serve_explains_a_module_it_cannot_import(tmp_path: Path) -> None:
    process = pygase("serve", "nosuchgame:backend", cwd=tmp_path)
    output, _ = process.communicate(timeout=30)
    assert process.returncode != 0
    assert "nosuchgame" in output and "current directory" in output, output
    assert "Traceback" not in output, output
