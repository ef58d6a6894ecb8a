"""Helpers for tests that connect real clients over loopback."""

from __future__ import annotations

from typing import Any

from pygase_core import Client


def connect(clients: list[Client], port: int, **options: Any) -> Client:
    """Connect a new Client (disconnected by the ``clients`` fixture after the test)."""
    client = Client(**options)
    client.connect_in_thread(port)
    clients.append(client)
    return client


def read(client: Client, name: str, default: Any = None) -> Any:
    """One attribute of the client's synchronized state, read under its lock."""
    with client.access_game_state() as state:
        return getattr(state, name, default)
