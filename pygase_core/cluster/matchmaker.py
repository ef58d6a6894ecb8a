"""``pygase matchmaker``: the HTTP service that seats players and hands them connect tokens.

Routes (every answer is JSON, every refusal a 4xx with ``{"error": reason}``):

* ``POST /matchmake/{join_or_create|create|join}/{room_type}`` and
  ``POST /matchmake/join_by_id/{room_id}``, with the join options as the JSON body: runs the
  :data:`Authenticate` hook, reserves a seat (in the oldest open room whose ``filter_by`` options
  match, or in a new room on the least loaded node) and answers with a connect token naming the
  node, the room and the seat;
* ``GET /rooms/{room_type}``: the open rooms of a type; ``GET /healthz``; ``GET /metrics``
  (Prometheus text); ``GET /monitor`` (the live page) and ``GET /monitor/data``.

A matchmaker keeps nothing of its own but figures for ``/metrics``: several may run behind a
load balancer, and one that restarts loses nothing. Needs the ``cluster`` extra.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from pygase_core.cluster import monitor
from pygase_core.cluster.messages import SeatReply, SeatRequest, parse_reply
from pygase_core.cluster.registry import (
    PREFIX,
    Registry,
    Reserved,
    canonical_filter,
    connect,
    now_ms,
)
from pygase_core.errors import UnsupportedValueError
from pygase_core.model.codec import check_value
from pygase_core.protocol.crypto import make_connect_token

logger = logging.getLogger("pygase.cluster")

MODES = ("join_or_create", "create", "join", "join_by_id")
MAX_OPTIONS_BYTES = 4096
"""The largest JSON body of join options a matchmaker takes (413 beyond it)."""
MAX_NAME = 100
ATTEMPTS = 4
"""Rooms a matchmaker tries, one after another, when a node finds the seat taken meanwhile."""


class MatchmakeRefused(Exception):
    """Raise in an :data:`Authenticate` hook to refuse: 401 (who are you?) or 403 (not you)."""

    def __init__(self, reason: str, status: int = 403) -> None:
        if status not in (401, 403):
            raise ValueError("a refusal's status is 401 or 403")
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class MatchmakeRequest:
    """What an :data:`Authenticate` hook sees of one request."""

    mode: str
    room: str
    """The room type's name (or, for ``join_by_id``, the room id)."""
    options: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    """The request's headers, looked up case-insensitively (``headers.get("authorization")``
    finds an ``Authorization`` header)."""
    remote: str | None = None


Authenticate = Callable[[MatchmakeRequest], "Awaitable[None] | None"]
"""``authenticate(request)``: return to let it through, raise :class:`MatchmakeRefused` not to.
May be a coroutine function (to ask your web session store, for example)."""


class _HTTPError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.joins = Counter("pygase_joins", "Seats handed out", ["mode"], registry=self.registry)
        self.refusals = Counter(
            "pygase_refusals", "Matchmaking requests refused", ["status"], registry=self.registry
        )
        self.latency = Histogram(
            "pygase_matchmaking_seconds", "Time to answer a matchmaking request",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.nodes = Gauge("pygase_nodes", "Live nodes", registry=self.registry)
        self.rooms = Gauge("pygase_rooms", "Rooms on live nodes", registry=self.registry)
        self.clients = Gauge("pygase_clients", "Clients connected to live nodes",
                             registry=self.registry)


class Matchmaker:
    """The matchmaking service on one Redis; :meth:`app` is its aiohttp application.

    Arguments:
        redis_url: the Redis the nodes register in.
        secret_key: the 32 bytes the nodes were given.
        authenticate: the hook every matchmaking request passes first (None: everyone).
        token_expiry: seconds a connect token, and so its reserved seat, lasts.
        reply_timeout: seconds to wait for a node's answer (503 after it).
    """

    def __init__(
        self,
        redis_url: str,
        secret_key: bytes,
        *,
        authenticate: Authenticate | None = None,
        token_expiry: float = 30.0,
        reply_timeout: float = 3.0,
        prefix: str = PREFIX,
    ) -> None:
        if not isinstance(secret_key, bytes) or len(secret_key) != 32:
            raise ValueError("secret_key must be 32 bytes")
        if authenticate is not None and not callable(authenticate):
            raise TypeError("authenticate must be callable or None")
        if not token_expiry > 0 or not reply_timeout > 0:
            raise ValueError("token_expiry and reply_timeout must be above 0 seconds")
        self.redis_url = redis_url
        self.secret_key = secret_key
        self.authenticate = authenticate
        self.token_expiry = float(token_expiry)
        self.reply_timeout = float(reply_timeout)
        self.prefix = prefix
        self.id = secrets.token_hex(6)
        self.metrics = _Metrics()
        self.registry: Registry | None = None
        self._waiting: dict[str, asyncio.Future[SeatReply]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # -- the application -----------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application: routes, error handling, and Redis for its lifetime."""
        app = web.Application(
            client_max_size=MAX_OPTIONS_BYTES, middlewares=[self._errors_as_json]
        )
        app.router.add_post("/matchmake/{mode}/{target}", self._matchmake)
        app.router.add_get("/rooms/{room_type}", self._rooms)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/monitor", monitor.page)
        app.router.add_get("/monitor/data", self._monitor_data)
        app.router.add_static("/monitor/static", monitor.STATIC)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _start(self, app: web.Application) -> None:
        client = connect(self.redis_url)
        self.registry = Registry(client, self.prefix)
        self._tasks = [
            asyncio.create_task(self._replies()),
            asyncio.create_task(monitor.sample_forever(self.registry)),
        ]

    async def _cleanup(self, app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.registry is not None:
            with contextlib.suppress(Exception):
                await self.registry.redis.aclose()

    @web.middleware
    async def _errors_as_json(
        self, request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Every error is JSON with a reason; nothing unexpected leaks a traceback."""
        try:
            return await handler(request)
        except _HTTPError as error:
            self.metrics.refusals.labels(str(error.status)).inc()
            return _error(error.status, error.reason)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            self.metrics.refusals.labels(str(error.status)).inc()
            reason = error.reason
            if error.status == 413:
                reason = f"the request body is over {MAX_OPTIONS_BYTES} bytes"
            return _error(error.status, reason)
        except Exception as error:
            if _is_redis_error(error):
                logger.warning("matchmaker: Redis: %s", error)
                return _error(503, "the registry (Redis) is not reachable; try again")
            logger.exception("matchmaker: unexpected error on %s", request.path)
            return _error(500, "internal error (logged by the matchmaker)")

    # -- matchmaking ---------------------------------------------------------------------------

    async def _matchmake(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        mode, target = request.match_info["mode"], request.match_info["target"]
        if mode not in MODES:
            raise _HTTPError(404, f"unknown matchmaking mode {mode!r}; use one of {MODES}")
        _check_name(target, "room id" if mode == "join_by_id" else "room type")
        options = await _read_options(request)
        if self.authenticate is not None:
            asked = MatchmakeRequest(mode, target, dict(options),
                                     CIMultiDictProxy(CIMultiDict(request.headers)),
                                     request.remote)
            try:
                verdict = self.authenticate(asked)
                if inspect.isawaitable(verdict):
                    await verdict
            except MatchmakeRefused as refusal:
                raise _HTTPError(refusal.status, refusal.reason) from None
        answer = await self.seat(mode, target, options)
        self.metrics.joins.labels(mode).inc()
        self.metrics.latency.observe(time.perf_counter() - started)
        assert self.registry is not None
        with contextlib.suppress(Exception):
            await monitor.count_join(self.registry)
        return web.json_response(answer)

    async def seat(self, mode: str, target: str, options: dict[str, Any]) -> dict[str, Any]:
        """Reserve a seat and make its token (the JSON answer); raises ``_HTTPError``."""
        asked: list[str] = []
        try:
            return await self._seat(mode, target, options, asked)
        finally:
            # Requests never queued (no room to join, Redis failing) get no answer: forget
            # them too, or a long-running matchmaker would keep one per such request.
            for request_id in asked:
                self._waiting.pop(request_id, None)

    async def _seat(
        self, mode: str, target: str, options: dict[str, Any], asked: list[str]
    ) -> dict[str, Any]:
        registry = self.registry
        assert registry is not None
        if mode == "join_by_id":
            room = await registry.redis.hget(registry.key("room", target), "type")
            if room is None:
                raise _HTTPError(404, f"no room {target!r}")
            room_type = room.decode() if isinstance(room, bytes) else str(room)
            filter_text = ""
        else:
            types = await self._types()
            if target not in types:
                raise _HTTPError(404, f"no live node hosts room type {target!r}")
            filter_by, defaults = types[target]
            room_type = target
            filter_text = canonical_filter(filter_by, {**defaults, **options})
        for _attempt in range(ATTEMPTS):
            seat = secrets.randbits(63)
            # Tokens expire on a whole second; counting from the next one, a token lasts at
            # least token_expiry (at most a second more).
            now = float(math.ceil(time.time()))
            expires_at = int(now + self.token_expiry)
            if mode in ("join", "join_or_create", "join_by_id"):
                request = self._request("reserve", room_type, seat, expires_at, options)
                asked.append(request.request_id)
                reserved = await registry.reserve_seat(
                    room_type, filter_text, request.body(),
                    target if mode == "join_by_id" else "",
                )
                if isinstance(reserved, Reserved):
                    reply = await self._wait(request)
                    if reply.ok:
                        return self._answer(reserved.address, reserved.node_id, reply.room_id,
                                            room_type, seat, now)
                    if mode == "join_by_id" and reply.kind == "gone":
                        raise _HTTPError(404, f"no room {target!r}")
                    if mode == "join_by_id" and reply.kind == "full":  # the node's last word
                        raise _HTTPError(409, f"room {target!r} is full")
                    continue
                if mode == "join_by_id":
                    if reserved == "full":
                        raise _HTTPError(409, f"room {target!r} is full")
                    raise _HTTPError(404, f"no room {target!r}")
                if mode == "join":
                    raise _HTTPError(404, f"no open room of type {room_type!r} has a seat free")
            request = self._request("create", room_type, seat, expires_at, options)
            asked.append(request.request_id)
            chosen = await registry.choose_node(room_type, request.body())
            if chosen is None:
                raise _HTTPError(
                    503, f"no live node has capacity for another room of type {room_type!r}"
                )
            reply = await self._wait(request)
            if reply.ok:
                return self._answer(chosen[1], chosen[0], reply.room_id, room_type, seat, now)
            if reply.kind == "refused":
                raise _HTTPError(400, f"the room could not be made: {reply.reason}")
        raise _HTTPError(503, "every room tried filled up meanwhile; try again")

    def _request(
        self, kind: str, room_type: str, seat: int, expires_at: int, options: dict[str, Any]
    ) -> SeatRequest:
        request_id = secrets.token_hex(8)
        self._waiting[request_id] = asyncio.get_running_loop().create_future()
        deadline = now_ms() + int(self.reply_timeout * 1000)
        return SeatRequest(kind, request_id, self.id, room_type, seat, expires_at, deadline,
                           options)

    async def _wait(self, request: SeatRequest) -> SeatReply:
        future = self._waiting[request.request_id]
        try:
            return await asyncio.wait_for(future, self.reply_timeout + 0.5)
        except asyncio.TimeoutError:
            raise _HTTPError(503, "the node did not answer in time; try again") from None
        finally:
            self._waiting.pop(request.request_id, None)

    def _answer(
        self, address: str, node_id: str, room_id: str, room_type: str, seat: int, now: float
    ) -> dict[str, Any]:
        token = make_connect_token(
            self.secret_key, address, seat, now=now, expires_in=self.token_expiry
        )
        return {
            "token": base64.b64encode(token.to_bytes()).decode(),
            "address": address,
            "node": node_id,
            "room_id": room_id,
            "room": room_type,
            "seat": str(seat),
            "expires_at": token.expires_at,
        }

    async def _replies(self) -> None:
        """Hand the nodes' answers to the requests waiting for them."""
        assert self.registry is not None
        redis, key = self.registry.redis, self.registry.key("replies", self.id)
        while True:
            try:
                item = await redis.blpop([key], timeout=1)
                if item is None:
                    continue
                reply = parse_reply(item[1].decode())
            except asyncio.CancelledError:
                raise
            except ValueError as error:
                logger.warning("matchmaker: malformed reply dropped: %s", error)
                continue
            except Exception as error:
                logger.warning("matchmaker: Redis: %s", error)
                await asyncio.sleep(0.2)
                continue
            future = self._waiting.get(reply.request_id)
            if future is not None and not future.done():
                future.set_result(reply)

    async def _types(self) -> dict[str, tuple[list[str], dict[str, Any]]]:
        """The room types live nodes host: each one's filter_by and default options."""
        assert self.registry is not None
        types: dict[str, tuple[list[str], dict[str, Any]]] = {}
        for node in await self.registry.nodes():
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                for name, info in json.loads(node.get("typeinfo", "{}")).items():
                    types[name] = (list(info["filter_by"]), dict(info["defaults"]))
        return types

    # -- reads ---------------------------------------------------------------------------------

    async def _rooms(self, request: web.Request) -> web.Response:
        room_type = request.match_info["room_type"]
        _check_name(room_type, "room type")
        assert self.registry is not None
        if room_type not in await self._types():
            raise _HTTPError(404, f"no live node hosts room type {room_type!r}")
        nodes = {node["id"]: node for node in await self.registry.nodes()}
        listed = []
        for room in await self.registry.rooms(room_type):
            node = nodes.get(room.get("node", ""))
            if node is None or room.get("offered") != "1":
                continue
            taken, seats = int(room.get("taken", 0)), int(room.get("max_clients", 0))
            if taken >= seats:
                continue
            listed.append({
                "room_id": room["id"], "room": room_type, "address": node["address"],
                "node": node["id"], "clients": int(room.get("seated", 0)),
                "max_clients": seats, "metadata": _json(room.get("metadata"), {}),
                # The same by the words the listing is described with: its id and its seats.
                "id": room["id"], "seats": seats,
            })
        return web.json_response(listed)

    async def _healthz(self, request: web.Request) -> web.Response:
        assert self.registry is not None
        await self.registry.redis.ping()
        return web.json_response({"ok": True, "matchmaker": self.id})

    async def _metrics(self, request: web.Request) -> web.Response:
        assert self.registry is not None
        nodes = await self.registry.nodes()
        self.metrics.nodes.set(len(nodes))
        self.metrics.rooms.set(sum(int(node.get("rooms", 0)) for node in nodes))
        self.metrics.clients.set(sum(int(node.get("clients", 0)) for node in nodes))
        body = generate_latest(self.metrics.registry)
        response = web.Response(body=body)
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    async def _monitor_data(self, request: web.Request) -> web.Response:
        assert self.registry is not None
        return web.json_response(await monitor.data(self.registry))


def _check_name(name: str, what: str) -> None:
    if not name or len(name) > MAX_NAME or not name.isprintable() or "," in name or " " in name:
        raise _HTTPError(400, f"{what} {name[:MAX_NAME]!r} is not a valid name")


async def _read_options(request: web.Request) -> dict[str, Any]:
    """The JSON body: the join options (none: {}); every kind of bad body is a 4xx."""
    raw = await request.read()
    if len(raw) > MAX_OPTIONS_BYTES:
        raise _HTTPError(413, f"the request body is over {MAX_OPTIONS_BYTES} bytes")
    if not raw.strip():
        return {}
    # JSON is read whatever the Content-Type when there is none or it is the form type that
    # urllib and curl -d send by default (callers who did not say); a body declared as another
    # type (text, XML, a multipart form) is a caller that meant something else.
    declared = request.headers.get("Content-Type")
    if declared is not None and not _is_json_type(request.content_type):
        raise _HTTPError(415, f"the body must be JSON (Content-Type: application/json),"
                              f" not {request.content_type!r}")
    try:
        options = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise _HTTPError(400, f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise _HTTPError(400, "the body's JSON is nested too deeply") from None
    if not isinstance(options, dict):
        raise _HTTPError(400, "the body must be a JSON object of join options")
    try:
        check_value(options, "the join options")
    except (UnsupportedValueError, TypeError, ValueError) as error:
        raise _HTTPError(400, _shortened(str(error))) from None
    except RecursionError:
        raise _HTTPError(400, "the join options are nested too deeply") from None
    return options


def _shortened(reason: str, most: int = 300) -> str:
    """A reason short enough to answer with (a deep path's middle left out)."""
    return reason if len(reason) <= most else reason[: most // 3] + " ... " + reason[-most // 2 :]


def _is_json_type(content_type: str) -> bool:
    return content_type in ("application/json", "application/x-www-form-urlencoded") or (
        content_type.endswith("+json")
    )


def _json(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def _is_redis_error(error: Exception) -> bool:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(error, RedisError | ConnectionError | OSError)


async def serve(matchmaker: Matchmaker, host: str, port: int, ready: Callable[[], None]) -> None:
    """Run the matchmaker's app on ``host:port`` until cancelled."""
    runner = web.AppRunner(matchmaker.app(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        ready()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
