"""A node's Agones game-server lifecycle, through the SDK server's local REST interface.

Agones runs an SDK server beside each game server in its pod, at
``http://localhost:$AGONES_SDK_HTTP_PORT`` (9358 by default). A node tells it:

* ``POST /ready`` once it listens (then, if its public address is ``agones``, it reads it
  from ``GET /gameserver``: the status's address and first port), before it registers;
* ``POST /health`` every :attr:`AgonesLifecycle.health_every` seconds;
* ``POST /allocate`` when its first seat is taken (held or seated);
* ``POST /shutdown`` when its last room is disposed of, after it had one (unless
  ``shutdown_when_empty`` is off); the node then stops, and Agones replaces the pod.

The SDK server may start after the game server, so every call is retried for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("pygase.cluster")

DEFAULT_PORT = 9358


def sdk_url() -> str:
    """The SDK server's REST address, from ``AGONES_SDK_HTTP_PORT`` as Agones sets it."""
    port = os.environ.get("AGONES_SDK_HTTP_PORT", "") or str(DEFAULT_PORT)
    return f"http://localhost:{port}"


class AgonesLifecycle:
    """Drives the calls above from a node's figures (see ``Node.on_change``)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        health_every: float = 2.0,
        shutdown_when_empty: bool = True,
        on_shutdown: Callable[[], None] | None = None,
        retry_for: float = 30.0,
    ) -> None:
        self.base_url = (base_url or sdk_url()).rstrip("/")
        self.health_every = health_every
        self.shutdown_when_empty = shutdown_when_empty
        self.on_shutdown = on_shutdown
        self.retry_for = retry_for
        self.state = "starting"
        """``starting``, ``ready``, ``allocated`` or ``shutdown``."""
        self._had_rooms = False
        self._session: Any = None
        self._health: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """The node listens: Ready, then health pings."""
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0))
        await self._call("/ready")
        self.state = "ready"
        self._health = asyncio.create_task(self._pings())

    async def public_address(self) -> str:
        """``host:port`` players reach this game server at, as Agones assigned it.

        From ``GET /gameserver``: its status's address and first port, once Agones has filled
        them in (retried until then).
        """
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.retry_for
        problem = "no address yet"
        while loop.time() < give_up:
            try:
                async with self._session.get(self.base_url + "/gameserver") as response:
                    status = (await response.json()).get("status") or {}
                address, ports = status.get("address"), status.get("ports") or []
                if address and ports and ports[0].get("port"):
                    return f"{address}:{int(ports[0]['port'])}"
            except Exception as error:
                problem = str(error)
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the Agones SDK server named no address for this game server:"
                           f" {problem}")

    async def close(self) -> None:
        if self._health is not None:
            self._health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health
        if self._session is not None:
            await self._session.close()

    async def changed(self, figures: dict[str, Any]) -> None:
        """A node's sync: allocate at the first seat, shut down after the last room."""
        if self.state == "ready" and (figures["seated"] > 0 or figures["held"] > 0):
            await self._call("/allocate")
            self.state = "allocated"
        if figures["rooms"] > 0:
            self._had_rooms = True
        elif (
            self._had_rooms and self.shutdown_when_empty and figures["held"] == 0
            and self.state != "shutdown"
        ):
            await self._call("/shutdown")
            self.state = "shutdown"
            if self.on_shutdown is not None:
                self.on_shutdown()

    async def _pings(self) -> None:
        while True:
            await asyncio.sleep(self.health_every)
            with contextlib.suppress(Exception):
                await self._call("/health", retry=False)

    async def _call(self, path: str, retry: bool = True) -> None:
        """POST ``{}`` to one SDK path, retrying while the SDK server is not up yet."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + (self.retry_for if retry else 0.0)
        while True:
            try:
                async with self._session.post(self.base_url + path, json={}) as response:
                    if response.status < 300:
                        return
                    error: Exception = RuntimeError(f"HTTP {response.status}")
            except Exception as failure:
                error = failure
            if loop.time() >= give_up:
                logger.warning("agones: %s failed: %s", path, error)
                raise RuntimeError(f"the Agones SDK server did not take {path}: {error}")
            await asyncio.sleep(0.5)
