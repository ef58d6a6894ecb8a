"""The ``/monitor`` page's data: the cluster now, and its figures over the last minutes.

The page itself is plain HTML, CSS and JavaScript in ``static/`` (no build step); it polls
``/monitor/data`` once a second. The history behind its plots (players online, joins, bandwidth,
one sample every :data:`SAMPLE_EVERY` seconds) lives in Redis, written by whichever matchmaker
takes the sampling turn first, so every matchmaker shows the same plots and a restart loses none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from pygase_core.cluster.registry import Registry

logger = logging.getLogger("pygase.cluster")

STATIC = Path(__file__).parent / "static"
SAMPLE_EVERY = 2.0
SAMPLES = 300
"""Samples kept: ten minutes at one every two seconds."""
HISTORY_TTL = 3600
"""Seconds the history and the join counter outlive the last matchmaker that wrote them."""


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "monitor.html")


async def count_join(registry: Registry) -> None:
    """One more seat handed out, in the counter every matchmaker shares."""
    key = registry.key("joins")
    async with registry.redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, HISTORY_TTL)
        await pipe.execute()


async def sample(registry: Registry) -> bool:
    """Add one sample to the history if nobody did in the last :data:`SAMPLE_EVERY` s."""
    redis = registry.redis
    turn = await redis.set(
        registry.key("series", "turn"), "1", nx=True, px=int(SAMPLE_EVERY * 1000) - 100
    )
    if not turn:
        return False
    nodes = await registry.nodes()
    players = sum(int(node.get("clients", 0)) for node in nodes)
    kbps = 0.0
    for node in nodes:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            stats = json.loads(node.get("stats", "{}"))
            kbps += float(stats.get("kbps_in", 0.0)) + float(stats.get("kbps_out", 0.0))
    joins = int(await redis.get(registry.key("joins")) or 0)
    point = json.dumps({"t": round(time.time(), 3), "players": players, "joins": joins,
                        "kbps": round(kbps, 2), "nodes": len(nodes)})
    key = registry.key("series")
    async with redis.pipeline(transaction=True) as pipe:
        pipe.rpush(key, point)
        pipe.ltrim(key, -SAMPLES, -1)
        pipe.expire(key, HISTORY_TTL)
        await pipe.execute()
    return True


async def sample_forever(registry: Registry) -> None:
    while True:
        try:
            await sample(registry)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.debug("monitor sample: %s", error)
        await asyncio.sleep(SAMPLE_EVERY / 2)


async def data(registry: Registry) -> dict[str, Any]:
    """What the page shows: nodes, rooms with their clients, and the history."""
    nodes = await registry.nodes()
    rooms = await registry.all_rooms()
    now = time.time()
    shown_nodes = []
    for node in nodes:
        stats = _json(node.get("stats"), {})
        shown_nodes.append({
            "id": node.get("id", ""),
            "address": node.get("address", ""),
            "clients": int(node.get("clients", 0)),
            "capacity": int(node.get("capacity", 0)),
            "rooms": int(node.get("rooms", 0)),
            "load": round(int(node.get("clients", 0)) / max(1, int(node.get("capacity", 1))), 3),
            "heartbeat_age": round(now - int(node.get("heartbeat", 0)) / 1000, 2),
            "draining": node.get("draining") == "1",
            "kbps_in": stats.get("kbps_in", 0.0),
            "kbps_out": stats.get("kbps_out", 0.0),
        })
    shown_rooms = []
    for room in rooms:
        shown_rooms.append({
            "id": room.get("id", ""),
            "type": room.get("type", ""),
            "node": room.get("node", ""),
            "clients": int(room.get("seated", 0)),
            "max_clients": int(room.get("max_clients", 0)),
            "age": round(now - float(room.get("created", now)), 1),
            "metadata": _json(room.get("metadata"), {}),
            "members": _json(room.get("clients"), []),
        })
    shown_rooms.sort(key=lambda room: (room["node"], -room["age"]))
    raw = await registry.redis.lrange(registry.key("series"), 0, -1)
    series = [_json(item.decode() if isinstance(item, bytes) else item, None) for item in raw]
    return {
        "now": now,
        "nodes": shown_nodes,
        "rooms": shown_rooms,
        "series": [point for point in series if isinstance(point, dict)],
    }


def _json(text: Any, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except (ValueError, TypeError):
        return default
