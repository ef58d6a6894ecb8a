"""The cluster's shared state in Redis, and the scripts that change it atomically.

Keys (``PREFIX`` is ``pygase:`` by default), every one with a short expiry so that a node that
dies leaves nothing behind once it has passed:

* ``node:ID``: a hash per node (address, capacity, clients, ``rooms``, room types, stats),
  refreshed by the node's heartbeat every second and expiring after :data:`NODE_TTL`;
* ``nodes``: a sorted set of node ids scored by when their entry expires;
* ``room:ID``: a hash per room (node, type, ``taken`` seats, max_clients, whether matchmaking
  may offer it, its ``filter_by`` values, metadata, clients), expiring with its node;
* ``type:NAME``: a sorted set of the room ids of one type, scored by expiry;
* ``inbox:NODE``: a list of requests for a node (seat reservations, room creations);
* ``replies:MATCHMAKER``: a list of a matchmaker's answers from nodes.

The counts matchmaking decides on (a room's ``taken`` seats and a node's ``rooms``) change only
by increments: a matchmaker's script adds one as it queues a request to the node in the same
atomic step, and a node's heartbeat adds what it saw change beyond that (seats freed, requests
it refused). So two matchmakers never both take the last seat, and the node, which checks every
reservation against its own rooms, is the final word. After a Redis restart a node's heartbeat
finds its keys gone and writes its counts whole again, as a node's first heartbeat always does
(a node restarted under its old id inherits no stale count).

Not for Redis Cluster: the scripts compute key names, so every key must live on one Redis (a
single server, or one behind Sentinel).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PREFIX = "pygase:"
NODE_TTL = 3.0
"""Seconds a node's entry (and its rooms') lives after its last heartbeat."""
HEARTBEAT = 1.0
"""Seconds between a node's heartbeats."""
INBOX_TTL = 10.0
"""Seconds a node's inbox outlives its last request (so a dead node's is gone soon)."""

_HEARTBEAT = """
local p = ARGV[1]
local d = cjson.decode(ARGV[2])
local now = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local nk = p .. 'node:' .. d.id
local fresh = redis.call('EXISTS', nk) == 0
if fresh or d.absolute == 1 then
  redis.call('HSET', nk, 'rooms', d.rooms)
else
  redis.call('HINCRBY', nk, 'rooms', d.rooms_delta)
end
redis.call('HSET', nk, 'id', d.id, 'address', d.address, 'capacity', d.capacity,
  'clients', d.clients, 'max_rooms', d.max_rooms, 'types', d.types, 'typeinfo', d.typeinfo,
  'stats', d.stats, 'heartbeat', now, 'started', d.started, 'draining', d.draining)
redis.call('PEXPIRE', nk, ttl)
redis.call('ZADD', p .. 'nodes', now + ttl, d.id)
redis.call('ZREMRANGEBYSCORE', p .. 'nodes', '-inf', now)
redis.call('PEXPIRE', p .. 'nodes', ttl)
for _, r in ipairs(d.rooms_list) do
  local rk = p .. 'room:' .. r.id
  if d.absolute == 1 or redis.call('EXISTS', rk) == 0 then
    redis.call('HSET', rk, 'taken', r.taken)
  else
    redis.call('HINCRBY', rk, 'taken', r.taken_delta)
  end
  redis.call('HSET', rk, 'id', r.id, 'node', d.id, 'type', r.type, 'max_clients', r.max_clients,
    'seated', r.seated, 'offered', r.offered, 'filter', r.filter, 'metadata', r.metadata,
    'created', r.created, 'clients', r.clients, 'private', r.private, 'locked', r.locked)
  redis.call('PEXPIRE', rk, ttl)
  local tk = p .. 'type:' .. r.type
  redis.call('ZADD', tk, now + ttl, r.id)
  redis.call('PEXPIRE', tk, ttl)
end
for _, r in ipairs(d.removed) do
  redis.call('DEL', p .. 'room:' .. r.id)
  redis.call('ZREM', p .. 'type:' .. r.type, r.id)
end
if fresh then return 1 end
return 0
"""

_RESERVE_SEAT = """
local p = ARGV[1]
local room_type = ARGV[2]
local filter = ARGV[3]
local now = tonumber(ARGV[4])
local body = ARGV[5]
local wanted = ARGV[6]
local inbox_ttl = tonumber(ARGV[7])
local candidates
if wanted ~= '' then
  candidates = {wanted}
else
  local tk = p .. 'type:' .. room_type
  redis.call('ZREMRANGEBYSCORE', tk, '-inf', now)
  candidates = redis.call('ZRANGE', tk, 0, -1)
end
local best, best_created, best_node = nil, nil, nil
local seen_full = false
for _, rid in ipairs(candidates) do
  local f = redis.call('HMGET', p .. 'room:' .. rid,
    'node', 'taken', 'max_clients', 'offered', 'filter', 'created')
  if f[1] and redis.call('EXISTS', p .. 'node:' .. f[1]) == 1 then
    local free = tonumber(f[2]) < tonumber(f[3])
    if not free then seen_full = true end
    local fits = free
    if wanted == '' then fits = free and f[4] == '1' and f[5] == filter end
    if fits and (best == nil or tonumber(f[6]) < best_created) then
      best, best_created, best_node = rid, tonumber(f[6]), f[1]
    end
  end
end
if best == nil then
  if seen_full then return {'full'} end
  return {'missing'}
end
redis.call('HINCRBY', p .. 'room:' .. best, 'taken', 1)
local inbox = p .. 'inbox:' .. best_node
redis.call('RPUSH', inbox, 'reserve ' .. best .. '\\n' .. body)
redis.call('PEXPIRE', inbox, inbox_ttl)
return {'ok', best, best_node, redis.call('HGET', p .. 'node:' .. best_node, 'address')}
"""

_CHOOSE_NODE = """
local p = ARGV[1]
local room_type = ARGV[2]
local now = tonumber(ARGV[3])
local body = ARGV[4]
local inbox_ttl = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', p .. 'nodes', '-inf', now)
local ids = redis.call('ZRANGE', p .. 'nodes', 0, -1)
local best, best_rooms, best_clients = nil, nil, nil
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', p .. 'node:' .. id,
    'rooms', 'max_rooms', 'types', 'clients', 'capacity', 'draining')
  if f[1] and f[6] ~= '1' and string.find(f[3], ',' .. room_type .. ',', 1, true) then
    local rooms, clients = tonumber(f[1]), tonumber(f[4])
    if rooms < tonumber(f[2]) and clients < tonumber(f[5]) then
      if best == nil or rooms < best_rooms or (rooms == best_rooms and clients < best_clients)
         or (rooms == best_rooms and clients == best_clients and id < best) then
        best, best_rooms, best_clients = id, rooms, clients
      end
    end
  end
end
if best == nil then return false end
redis.call('HINCRBY', p .. 'node:' .. best, 'rooms', 1)
local inbox = p .. 'inbox:' .. best
redis.call('RPUSH', inbox, 'create\\n' .. body)
redis.call('PEXPIRE', inbox, inbox_ttl)
return {best, redis.call('HGET', p .. 'node:' .. best, 'address')}
"""

_LIST_ROOMS = """
local p = ARGV[1]
local now = tonumber(ARGV[3])
local tk = p .. 'type:' .. ARGV[2]
redis.call('ZREMRANGEBYSCORE', tk, '-inf', now)
local out = {}
for _, rid in ipairs(redis.call('ZRANGE', tk, 0, -1)) do
  local f = redis.call('HGETALL', p .. 'room:' .. rid)
  if #f > 0 then table.insert(out, f) end
end
return out
"""

_LIST_NODES = """
local p = ARGV[1]
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', p .. 'nodes', '-inf', now)
local out = {}
for _, id in ipairs(redis.call('ZRANGE', p .. 'nodes', 0, -1)) do
  local f = redis.call('HGETALL', p .. 'node:' .. id)
  if #f > 0 then table.insert(out, f) end
end
return out
"""

_ALL_ROOMS = """
local p = ARGV[1]
local now = tonumber(ARGV[2])
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'nodes', '(' .. now, '+inf')) do
  local types = redis.call('HGET', p .. 'node:' .. id, 'types')
  if types then
    for name in string.gmatch(types, '[^,]+') do
      for _, rid in ipairs(redis.call('ZRANGEBYSCORE', p .. 'type:' .. name, '(' .. now,
                                             '+inf')) do
        local f = redis.call('HGETALL', p .. 'room:' .. rid)
        if #f > 0 then
          local node = nil
          for i = 1, #f, 2 do if f[i] == 'node' then node = f[i + 1] end end
          if node == id then table.insert(out, f) end
        end
      end
    end
  end
end
return out
"""


def connect(url: str) -> Any:
    """A ``redis.asyncio.Redis`` for ``url`` that rides out a Redis restart.

    A command that finds its connection broken (the server restarted) retries on a new one a
    few times, with short pauses, before it fails.
    """
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return aioredis.from_url(
        url,
        socket_timeout=5.0,
        socket_connect_timeout=2.0,
        health_check_interval=5,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 4),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionResetError],
    )


def now_ms() -> int:
    """Unix time in milliseconds, the clock of every score and deadline in the registry."""
    return int(time.time() * 1000)


def canonical_filter(filter_by: tuple[str, ...] | list[str], options: Mapping[str, Any]) -> str:
    """The text two rooms' ``filter_by`` values compare equal by, node and matchmaker alike."""
    return json.dumps(
        {key: options.get(key) for key in filter_by}, sort_keys=True, separators=(",", ":")
    )


@dataclass(frozen=True)
class Reserved:
    """A seat reserved in Redis and queued to the room's node."""

    room_id: str
    node_id: str
    address: str


def _pairs(flat: list[Any]) -> dict[str, str]:
    text = [item.decode() if isinstance(item, bytes) else str(item) for item in flat]
    return dict(zip(text[::2], text[1::2], strict=True))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Registry:
    """The scripts and reads of the cluster's Redis state, on one ``redis.asyncio.Redis``."""

    def __init__(self, redis: Any, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._reserve = redis.register_script(_RESERVE_SEAT)
        self._choose = redis.register_script(_CHOOSE_NODE)
        self._list_rooms = redis.register_script(_LIST_ROOMS)
        self._list_nodes = redis.register_script(_LIST_NODES)
        self._all_rooms = redis.register_script(_ALL_ROOMS)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def heartbeat(self, payload: Mapping[str, Any], ttl: float = NODE_TTL) -> bool:
        """Write a node's entry and rooms; True if its entry was gone (first or after loss)."""
        fresh = await self._heartbeat(
            args=[self.prefix, json.dumps(payload), now_ms(), int(ttl * 1000)]
        )
        return bool(fresh)

    async def reserve_seat(
        self, room_type: str, filter_text: str, body: str, room_id: str = ""
    ) -> Reserved | str:
        """Take a seat in the oldest open matching room (or in ``room_id``) and queue ``body``
        to its node, atomically; else ``"full"`` or ``"missing"``."""
        answer = await self._reserve(args=[
            self.prefix, room_type, filter_text, now_ms(), body, room_id,
            int(INBOX_TTL * 1000),
        ])
        status = _text(answer[0])
        if status != "ok":
            return status
        return Reserved(_text(answer[1]), _text(answer[2]), _text(answer[3]))

    async def choose_node(self, room_type: str, body: str) -> tuple[str, str] | None:
        """The least loaded live node hosting the type, one room more on it, ``body`` queued."""
        answer = await self._choose(
            args=[self.prefix, room_type, now_ms(), body, int(INBOX_TTL * 1000)]
        )
        if not answer:
            return None
        return _text(answer[0]), _text(answer[1])

    async def nodes(self) -> list[dict[str, str]]:
        """Every live node's entry."""
        return [_pairs(flat) for flat in await self._list_nodes(args=[self.prefix, now_ms()])]

    async def rooms(self, room_type: str) -> list[dict[str, str]]:
        """Every live room of one type, each as its hash."""
        return [
            _pairs(flat) for flat in await self._list_rooms(
                args=[self.prefix, room_type, now_ms()]
            )
        ]

    async def all_rooms(self) -> list[dict[str, str]]:
        """Every live room of every live node."""
        return [_pairs(flat) for flat in await self._all_rooms(args=[self.prefix, now_ms()])]

    async def push_reply(self, matchmaker: str, text: str) -> None:
        key = self.key("replies", matchmaker)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, text)
            pipe.pexpire(key, int(INBOX_TTL * 1000))
            await pipe.execute()
