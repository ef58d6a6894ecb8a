"""Settings shared by the whole suite."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_ambient_pygase_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's PYGASE_LINK (simulated network) from changing what tests see."""
    monkeypatch.delenv("PYGASE_LINK", raising=False)
