"""A cluster node: a :class:`~pygase_core.Server` that registers in Redis and takes seats.

The server runs as it would alone, on its own thread and I/O loop, with connect tokens required
and :class:`~pygase_core.cluster.reservations.SeatReservations` as its join gate. The node's own
asyncio loop (the caller's) talks to Redis:

* every :data:`~pygase_core.cluster.registry.HEARTBEAT` seconds it writes the node's entry and
  every room's (see :meth:`Node.sync`), with an expiry of
  :data:`~pygase_core.cluster.registry.NODE_TTL`; a Redis that lost them (a restart) gets them
  whole at the next heartbeat;
* it takes requests from its inbox (seat reservations and room creations that matchmakers
  queued), carries them out on the server's loop, writes the result to the registry and
  answers. A request older than its deadline is refused: its matchmaker stopped waiting.

A Redis that goes away stops neither the server nor its players: the node keeps retrying.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import inspect
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pygase_core.cluster.messages import SeatReply, SeatRequest, parse_request
from pygase_core.cluster.registry import (
    HEARTBEAT,
    NODE_TTL,
    PREFIX,
    Registry,
    canonical_filter,
    connect,
)
from pygase_core.cluster.reservations import SeatReservations
from pygase_core.edge.server import Server
from pygase_core.errors import ServerFullError
from pygase_core.protocol.crypto import format_address

logger = logging.getLogger("pygase.cluster")
T = TypeVar("T")

INBOX_BATCH = 64
"""Requests a node takes from its inbox at once (one registry write and the answers follow)."""


def new_node_id(port: int) -> str:
    """A node id that says where it runs and cannot collide with a restarted node's."""
    return f"{socket.gethostname()}-{port}-{secrets.token_hex(3)}"


class Node:
    """Host a server's room types as one node of a cluster.

    Arguments:
        server: a :class:`~pygase_core.Server` with its room types defined, not running.
        redis_url: the shared Redis (``redis://host:6379/0``).
        secret_key: the 32 bytes the matchmakers seal connect tokens with.
        public_address: ``host:port`` players reach this node's UDP port at (tokens name it).
        port / host: where the server listens.
        on_change: called on the node's loop after syncs with the node's figures (the
            Agones lifecycle uses it), in order, apart from the syncs.
    """

    def __init__(
        self,
        server: Server,
        redis_url: str,
        secret_key: bytes,
        public_address: str,
        *,
        port: int,
        host: str = "0.0.0.0",
        node_id: str | None = None,
        prefix: str = PREFIX,
        heartbeat: float = HEARTBEAT,
        ttl: float = NODE_TTL,
    ) -> None:
        if not isinstance(server, Server):
            raise TypeError("a node hosts a pygase_core.Server")
        for name in server._matchmaker.types:
            if "," in name or " " in name or not name.isprintable():
                raise ValueError(f"a cluster's room type names have no commas or spaces: {name!r}")
        server.require_connect_tokens(secret_key, public_address)
        self.server = server
        self.redis_url = redis_url
        self.public_address = public_address
        self.port = port
        self.host = host
        self.node_id = node_id or new_node_id(port)
        self.prefix = prefix
        self.heartbeat = heartbeat
        self.ttl = ttl
        self.reservations = SeatReservations(server)
        server.join_gate = self.reservations
        self.started = time.time()
        self.draining = False
        """A draining node takes no new rooms (it still fills its own)."""
        self.registry: Registry | None = None
        self.synced = asyncio.Event()
        """Set after the first successful sync (the node is listed)."""
        self.on_change: list[Callable[[dict[str, Any]], Any]] = []
        self.figures: dict[str, Any] = {}
        """The last snapshot's totals: rooms, clients, seated, held."""
        self._reported_rooms = 0
        self._reported_taken: dict[str, int] = {}
        self._room_types: dict[str, str] = {}
        self._created: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._figures_changed = asyncio.Event()
        self._changes: collections.deque[dict[str, Any]] = collections.deque(maxlen=256)

    # -- running -------------------------------------------------------------------------------

    async def run(
        self,
        ready: Callable[[], Awaitable[None] | None] | None = None,
        *,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Serve and stay registered until :meth:`stop`; then deregister and shut down.

        ``prepare()`` runs once the server listens, before the node registers (the Agones
        lifecycle marks it Ready there and may learn its public address); ``ready()`` (it may
        be a coroutine function) runs once the node is listed.
        """
        await asyncio.to_thread(self.server.run_in_thread, self.port, self.host)
        if prepare is not None:
            try:
                await prepare()
            except BaseException:
                await asyncio.to_thread(self.server.shutdown)
                raise
        client = connect(self.redis_url)
        self.registry = Registry(client, self.prefix)
        logger.info("pygase node %s serving on %s (public %s)", self.node_id,
                    self.server.port, self.public_address)
        tasks = [
            asyncio.create_task(self._heartbeats()),
            asyncio.create_task(self._inbox()),
            asyncio.create_task(self._notify()),
        ]
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.synced.wait(), 10.0)
            if ready is not None:
                started = ready()
                if inspect.isawaitable(started):
                    await started
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._deregister(), 2.0)
            await self._on_server_loop(self.reservations.release_all)
            await asyncio.to_thread(self.server.shutdown)
            with contextlib.suppress(Exception):
                await client.aclose()

    async def set_public_address(self, address: str) -> None:
        """Where players reach this node, learnt after it started (tokens must name it)."""
        self.public_address = address

        def apply() -> None:
            self.server._public_address = address
            if self.server._endpoint is not None:
                self.server._endpoint.address_text = address

        await self._on_server_loop(apply)

    def stop(self) -> None:
        """End :meth:`run` (on the node's loop)."""
        self._stop.set()

    async def _heartbeats(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception as error:  # Redis away: retry at the next beat
                logger.warning("node %s cannot reach Redis: %s", self.node_id, error)
            await asyncio.sleep(self.heartbeat)

    async def _notify(self) -> None:
        """Hand each sync's figures, in order, to the ``on_change`` callbacks.

        Apart from the syncs, so that a slow or failing callback (an Agones SDK server that
        does not answer, retried for half a minute) holds up neither the heartbeats, which
        keep the node listed, nor the answers to the matchmakers' requests.
        """
        while True:
            await self._figures_changed.wait()
            self._figures_changed.clear()
            while self._changes:
                await self._tell(self._changes.popleft())

    async def _tell(self, figures: dict[str, Any]) -> None:
        for callback in self.on_change:
            try:
                result = callback(figures)
                if inspect.isawaitable(result):
                    await result
            except Exception as error:
                logger.warning("node %s: on_change %r failed: %s", self.node_id, callback, error)

    async def _inbox(self) -> None:
        assert self.registry is not None
        redis = self.registry.redis
        key = self.registry.key("inbox", self.node_id)
        while True:
            try:
                first = await redis.blpop([key], timeout=1)
                if first is None:
                    continue
                batch = [first[1]]
                more = await redis.lpop(key, INBOX_BATCH - 1)
                batch.extend(more or [])
                await self._handle(
                    [item.decode() if isinstance(item, bytes) else str(item) for item in batch]
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("node %s inbox: %s", self.node_id, error)
                await asyncio.sleep(0.2)

    # -- requests ------------------------------------------------------------------------------

    async def _handle(self, entries: list[str]) -> None:
        replies: list[tuple[str, SeatReply]] = []
        touched: set[str] = set()
        for entry in entries:
            try:
                request = parse_request(entry)
            except ValueError as error:
                logger.warning("node %s dropped a malformed request: %s", self.node_id, error)
                if entry.startswith("create"):
                    async with self._lock:
                        self._reported_rooms += 1  # its matchmaker counted the room
                continue
            if request.kind == "create":
                async with self._lock:
                    self._reported_rooms += 1
                # Not under the lock: on_create may take long (a level loaded), and the
                # heartbeats that keep this node listed must go on meanwhile. One that comes
                # between counts the room once it exists; the node's own rooms stay the final
                # word on seats whatever the registry's counts say for that moment.
                reply = await self._create(request)
            else:
                async with self._lock:
                    if request.room_id in self._reported_taken:
                        self._reported_taken[request.room_id] += 1
                    reply = await self._reserve(request)
            touched.add(reply.room_id or request.room_id)
            replies.append((request.reply_to, reply))
        async with self._lock:
            # Only the rooms these requests touched: the heartbeat writes the rest.
            await self._sync_locked(only=touched)
        assert self.registry is not None
        for reply_to, reply in replies:
            await self.registry.push_reply(reply_to, reply.to_text())

    async def _reserve(self, request: SeatRequest) -> SeatReply:
        if request.deadline_ms < time.time() * 1000:
            return SeatReply(request.request_id, False, kind="late", reason="too late")
        outcome = await self._on_server_loop(
            lambda: self.reservations.hold(request.seat, request.room_id, request.expires_at)
        )
        if outcome != "ok":
            return SeatReply(request.request_id, False, kind=outcome,
                             reason=f"room {request.room_id!r}: {outcome}")
        return SeatReply(request.request_id, True, room_id=request.room_id)

    async def _create(self, request: SeatRequest) -> SeatReply:
        if request.deadline_ms < time.time() * 1000:
            return SeatReply(request.request_id, False, kind="late", reason="too late")
        if self.draining:
            return SeatReply(request.request_id, False, kind="full", reason="node draining")
        try:
            room_id = await asyncio.to_thread(
                self.server.create_room, request.room, **request.options
            )
        except ServerFullError as error:
            return SeatReply(request.request_id, False, kind="full", reason=str(error))
        except Exception as error:  # unknown type, bad options, a failing room class
            return SeatReply(request.request_id, False, kind="refused", reason=str(error))
        outcome = await self._on_server_loop(
            lambda: self.reservations.hold(
                request.seat, room_id, request.expires_at, new_room=True
            )
        )
        if outcome != "ok":
            return SeatReply(request.request_id, False, kind=outcome, reason=outcome)
        return SeatReply(request.request_id, True, room_id=room_id)

    # -- the registry --------------------------------------------------------------------------

    async def sync(self) -> None:
        """Write this node's entry and rooms to Redis now."""
        async with self._lock:
            await self._sync_locked()

    async def _sync_locked(self, only: set[str] | None = None) -> None:
        """Write the node's entry and its rooms' (or only those in ``only``)."""
        registry = self.registry
        if registry is None:
            return
        snapshot = await self._on_server_loop(self._snapshot)
        every_room = snapshot["rooms"]
        live = {room["id"] for room in every_room}
        if only is None:
            rooms = every_room
            removed = [
                {"id": room_id, "type": self._room_types.get(room_id, "")}
                for room_id in self._reported_taken if room_id not in live
            ]
        else:
            rooms = [room for room in every_room if room["id"] in only]
            # A touched room that is gone (disposed of as its last client left, before a
            # heartbeat said so) goes from the registry now: the matchmaker retrying after
            # this node's refusal must not pick it again, each try counting a seat in it.
            removed = [
                {"id": room_id, "type": self._room_types.get(room_id, "")}
                for room_id in only if room_id not in live and room_id in self._reported_taken
            ]
        for room in rooms:
            room["taken_delta"] = room["taken"] - self._reported_taken.get(room["id"], 0)
        payload = {
            "id": self.node_id,
            "address": self.public_address,
            "capacity": self.server.max_clients,
            "clients": snapshot["clients"],
            "max_rooms": self.server._matchmaker.max_rooms,
            "types": "," + ",".join(self.server._matchmaker.types) + ",",
            "typeinfo": json.dumps({
                name: {"filter_by": list(room_type.filter_by),
                       "defaults": dict(room_type.default_options)}
                for name, room_type in self.server._matchmaker.types.items()
            }),
            "stats": json.dumps(snapshot["stats"]),
            "started": self.started,
            "draining": "1" if self.draining else "0",
            "rooms": len(every_room),
            "rooms_delta": len(every_room) - self._reported_rooms,
            "absolute": 0 if self.synced.is_set() else 1,
            "rooms_list": rooms,
            "removed": removed,
        }
        fresh = await registry.heartbeat(payload, self.ttl)
        if fresh and self.synced.is_set():
            logger.info("node %s registered again (the registry had lost it)", self.node_id)
        self._reported_rooms = len(every_room)
        if only is None:
            self._reported_taken = {room["id"]: room["taken"] for room in rooms}
            self._room_types = {room["id"]: room["type"] for room in rooms}
            self._created = {room_id: self._created[room_id] for room_id in live}
        else:
            for room in rooms:
                self._reported_taken[room["id"]] = room["taken"]
                self._room_types[room["id"]] = room["type"]
            for gone in removed:
                self._reported_taken.pop(gone["id"], None)
                self._room_types.pop(gone["id"], None)
        self.figures = {
            "rooms": len(every_room),
            "clients": snapshot["clients"],
            "seated": sum(room["seated"] for room in every_room),
            "held": snapshot["held"],
        }
        self.synced.set()
        self._changes.append(dict(self.figures))
        self._figures_changed.set()

    def _snapshot(self) -> dict[str, Any]:
        """The node's rooms and clients as the registry lists them (on the server's loop)."""
        server = self.server
        endpoint = server._endpoint
        sessions = endpoint.sessions if endpoint is not None else {}
        by_room: dict[str, list[dict[str, Any]]] = {}
        for address, seat in list(server._seats.items()):
            session = sessions.get(address)
            stats = session.connection.stats if session is not None else None
            by_room.setdefault(seat.record.room_id, []).append({
                "id": seat.client.id,
                "address": format_address(str(address[0]), int(address[1])),
                "rtt_ms": None if stats is None or stats.rtt is None
                else round(stats.rtt * 1000, 2),
                "loss": 0.0 if stats is None else round(stats.packet_loss, 4),
                "kbps_in": 0.0 if stats is None else round(stats.kbps_in, 2),
                "kbps_out": 0.0 if stats is None else round(stats.kbps_out, 2),
            })
        rooms = []
        for room_id, record in list(server._matchmaker.rooms.items()):
            if record.disposing:
                continue
            listing = record.listing()
            rooms.append({
                "id": room_id,
                "type": record.room_type.name,
                "max_clients": record.max_clients,
                "seated": record.seated,
                "taken": record.seated + record.pending,
                # Whether matchmaking may offer it; free seats are the registry's count.
                "offered": "0" if record.room.locked or record.room.private else "1",
                "private": "1" if record.room.private else "0",
                "locked": "1" if record.room.locked else "0",
                "filter": canonical_filter(record.room_type.filter_by, record.options),
                "metadata": json.dumps(listing.metadata),
                "created": round(self._created.setdefault(room_id, time.time()), 3),
                "clients": json.dumps(by_room.get(room_id, [])),
            })
        kbps_in = kbps_out = 0.0
        for session in list(sessions.values()):
            stats = session.connection.stats
            kbps_in += stats.kbps_in
            kbps_out += stats.kbps_out
        return {
            "rooms": rooms,
            "clients": len(sessions),
            "held": len(self.reservations),
            "stats": {"kbps_in": round(kbps_in, 2), "kbps_out": round(kbps_out, 2),
                      "pid": os.getpid()},
        }

    async def _deregister(self) -> None:
        registry = self.registry
        if registry is None:
            return
        redis = registry.redis
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(registry.key("node", self.node_id))
            pipe.zrem(registry.key("nodes"), self.node_id)
            pipe.delete(registry.key("inbox", self.node_id))
            for room_id, room_type in self._room_types.items():
                pipe.delete(registry.key("room", room_id))
                pipe.zrem(registry.key("type", room_type), room_id)
            await pipe.execute()

    async def _on_server_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's I/O loop, where its rooms and seats live."""
        driver = self.server._driver
        loop = driver.loop if driver is not None else None
        if loop is None:
            raise RuntimeError("the node's server is not running")
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            try:
                done.set_result(fn())
            except BaseException as error:
                done.set_exception(error)

        loop.call_soon_threadsafe(call)
        return await asyncio.wrap_future(done)
