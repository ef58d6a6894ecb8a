"""The package's layers: the sans-IO protocol stays free of asyncio, and old import paths work."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_the_sans_io_protocol_imports_no_asyncio() -> None:
    code = (
        "import sys\n"
        "import pygase_core.protocol.connection, pygase_core.protocol.endpoint\n"
        "import pygase_core.protocol.eventwire, pygase_core.model.gamestate\n"
        "loaded = sorted(m for m in sys.modules if m == 'asyncio' or m.startswith('asyncio.'))\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("pygase_core.crypto", "pygase_core.protocol.crypto"),
        ("pygase_core.linksim", "pygase_core.protocol.linksim"),
        ("pygase_core.interpolation", "pygase_core.model.interpolation"),
        ("pygase_core.frames", "pygase_core.edge.frames"),
        ("pygase_core.bots", "pygase_core.tools.bots"),
        ("pygase_core.gamestate", "pygase_core.model.gamestate"),
    ],
)
def test_module_paths_from_before_the_layers_still_import(old: str, new: str) -> None:
    import importlib

    assert importlib.import_module(old) is importlib.import_module(new)
    assert importlib.import_module(new).__spec__.name == new


def test_every_public_name_imports_from_the_top() -> None:
    import pygase_core

    for name in pygase_core.__all__:
        assert getattr(pygase_core, name) is not None
    from pygase_core import Backend, Client, GameState, Server  # noqa: F401
