"""Settings shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pygase_core import Client


@pytest.fixture(autouse=True)
def _no_ambient_pygase_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's PYGASE_LINK (simulated network) from changing what tests see."""
    monkeypatch.delenv("PYGASE_LINK", raising=False)


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """Clients a test connects (see :func:`tests.clients.connect`), disconnected afterwards."""
    made: list[Client] = []
    yield made
    for client in made:
        client.disconnect()
