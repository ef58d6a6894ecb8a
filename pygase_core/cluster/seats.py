"""The client's HTTP step: ask a matchmaker for a seat, get a connect token for a node.

:meth:`Client.connect(matchmaker=...) <pygase_core.Client.connect>` uses it; a program with a
client of its own (another language's, a web front end that hands the token on) calls
:func:`request_seat` and passes ``seat.token`` and ``seat.room_id`` on. Standard library only
(no ``cluster`` extra needed on players' machines).
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pygase_core.errors import JoinRefusedError, MatchmakerError, ServerFullError
from pygase_core.model.codec import check_value
from pygase_core.protocol.crypto import ConnectToken

MODES = ("join_or_create", "create", "join", "join_by_id")
MAX_ANSWER_BYTES = 65536
"""The most of a matchmaker's answer read: a seat's JSON is a few hundred bytes, and whatever
answers with more (a misconfigured proxy, a page) is not a matchmaker."""


@dataclass(frozen=True)
class Seat:
    """A seat a matchmaker reserved: where to connect, with which token, into which room."""

    host: str
    port: int
    room_id: str
    room: str
    token: bytes
    """The connect token's bytes, for ``Client.connect(..., connect_token=seat.token)``."""
    seat: str
    node: str
    expires_at: int


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` to ``(host, port)``; raises ValueError."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a host:port address: {address!r}")
    return host.strip("[]"), int(port)


def request_seat(
    matchmaker: str,
    room: str | None = None,
    *,
    room_id: str | None = None,
    mode: str | None = None,
    options: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Seat:
    """Ask the matchmaker at ``matchmaker`` (``http://host:port``) for a seat.

    ``mode`` is ``"join_or_create"`` (the default with ``room``), ``"create"``, ``"join"`` or,
    with ``room_id``, ``"join_by_id"``. ``headers`` go with the request (an ``Authorization``
    header for your authentication hook, say).

    Raises:
        JoinRefusedError: the authentication hook refused (401/403, with its reason), or there
            is no such room or room type (404), or the room is full (409).
        ServerFullError: no node has room (503 from a cluster at capacity).
        MatchmakerError: the matchmaker cannot be reached, or answered another error.
        ValueError / TypeError: bad arguments, at the call.
    """
    url, body, sent_headers = _prepare(matchmaker, room, room_id, mode, options, headers)
    request = urllib.request.Request(url, data=body, headers=sent_headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = response.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as error:
        try:
            body = error.read(MAX_ANSWER_BYTES)
        except (OSError, http.client.HTTPException):
            body = b""
        raise _refusal(error.code, body) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise MatchmakerError(f"cannot reach the matchmaker at {matchmaker}: {reason}") from None
    except http.client.HTTPException as error:  # not HTTP, or cut short
        raise MatchmakerError(
            f"the server at {matchmaker} did not answer as a matchmaker does"
            f" ({type(error).__name__}: {str(error)[:100]!r})"
        ) from None
    if len(answer) > MAX_ANSWER_BYTES:
        raise MatchmakerError(
            f"the answer from {matchmaker} is over {MAX_ANSWER_BYTES} bytes: not a matchmaker's"
        )
    return _seat(answer)


async def request_seat_async(
    matchmaker: str,
    room: str | None = None,
    *,
    room_id: str | None = None,
    mode: str | None = None,
    options: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Seat:
    """Coroutine form of :func:`request_seat` (the HTTP request runs on a worker thread)."""
    _prepare(matchmaker, room, room_id, mode, options, headers)  # bad arguments raise here
    return await asyncio.to_thread(
        request_seat, matchmaker, room, room_id=room_id, mode=mode, options=options,
        headers=headers, timeout=timeout,
    )


def _prepare(
    matchmaker: str,
    room: str | None,
    room_id: str | None,
    mode: str | None,
    options: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
) -> tuple[str, bytes, dict[str, str]]:
    if not isinstance(matchmaker, str):
        raise TypeError("matchmaker must be a URL such as 'http://localhost:8000'")
    try:
        parts = urllib.parse.urlsplit(matchmaker)
        parts.port  # noqa: B018 (raises ValueError for a port that is not one)
    except ValueError as error:
        raise ValueError(
            f"matchmaker must be an http(s) URL, not {matchmaker!r}: {error}"
        ) from None
    if (
        parts.scheme not in ("http", "https") or not parts.hostname
        or parts.query or parts.fragment
    ):
        raise ValueError(f"matchmaker must be an http(s) URL such as 'http://localhost:8000',"
                         f" not {matchmaker!r}")
    if (room is None) == (room_id is None):
        raise ValueError("give room (a room type) or room_id (one room), exactly one")
    if mode is None:
        mode = "join_by_id" if room_id is not None else "join_or_create"
    if mode not in MODES or (mode == "join_by_id") != (room_id is not None):
        raise ValueError(f"mode must be one of {MODES}; join_by_id goes with room_id only")
    target = room_id if room_id is not None else room
    if not isinstance(target, str) or not target:
        raise TypeError("room and room_id are non-empty str")
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict of join options, not {type(options).__name__}")
    options = dict(options or {})
    if not all(isinstance(key, str) for key in options):
        raise TypeError("options must be a dict with str keys")
    check_value(options, "the join options")
    sent = {"Content-Type": "application/json", **dict(headers or {})}
    url = (
        matchmaker.rstrip("/") + "/matchmake/" + mode + "/" + urllib.parse.quote(target, safe="")
    )
    return url, json.dumps(options).encode(), sent


def _refusal(status: int, body: bytes) -> Exception:
    try:
        reason = str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        reason = body[:200].decode(errors="replace") or f"HTTP {status}"
    if status in (401, 403, 404, 409):
        return JoinRefusedError(reason)
    if status == 503 and "capacity" in reason:
        return ServerFullError(reason)
    return MatchmakerError(f"the matchmaker answered {status}: {reason}", status)


def _seat(answer: bytes) -> Seat:
    try:
        data = json.loads(answer)
        host, port = split_address(str(data["address"]))
        token = base64.b64decode(data["token"], validate=True)
        ConnectToken.from_bytes(token)  # a token that cannot be one fails here, not at connect
        return Seat(
            host, port, str(data["room_id"]), str(data["room"]), token, str(data["seat"]),
            str(data.get("node", "")), int(data["expires_at"]),
        )
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        raise MatchmakerError(f"the matchmaker's answer is malformed: {error}") from None
