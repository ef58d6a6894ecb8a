"""The handshake and the session table of both ends, sans-IO.

Server side, :class:`ServerEndpoint` takes every datagram that reaches the server's socket with
its source address. A ``REQUEST`` is answered with a ``CHALLENGE`` whose cookie is a keyed MAC of
the address, the client's nonce and a timestamp; the server remembers nothing about it. Only a
``RESPONSE`` that brings a valid, fresh, unused cookie back from the same address creates a
:class:`~pygase_core.protocol.connection.Connection`. Requests are padded and answers are
small, so no stranger can make the server send more bytes to an unverified address than it
received. After the handshake a datagram is accepted only with its session's id from its session's
address; everything else is dropped and counted in :attr:`ServerEndpoint.drops`.

A session can move to a new address (NAT rebinding, a phone changing networks), but only with
proof, and it sends nothing but small prompts to an address until the client proved it receives
there:

* A session's packet from an address the server does not know gets a ``RESUME_PROMPT`` (smaller
  than what arrived, at most one per session every :data:`PROMPT_INTERVAL`) carrying a challenge,
  a keyed MAC of the session id and that address. An unencrypted packet moves nothing.
* A ``RESUME`` whose MAC is valid (under the session's resume secret: the accept's, or for an
  encrypted session one derived from its keys) and whose counter is newer than the last accepted
  one moves the session to its source address (:class:`ClientMoved`). If it echoes that address's
  challenge (or the address is the one last proven), the address is proven and the server answers
  at once with a data packet; otherwise the session is *held* (it sends nothing) and gets a
  prompt, which the client answers with another ``RESUME``.
* A sealed packet of an encrypted session from a new address moves the session the same way if it
  opens under the session's keys and is the newest the session has seen (the replay window
  applies): the resume is sealed under the session's keys. The session is held until a ``RESUME``
  echoes the challenge the server then sends.

Forged, replayed or misdirected resumes change nothing and are counted: ``"forged resume"``,
``"replayed resume"``, ``"resume of an unknown session"``, ``"resume to an occupied address"``,
``"failed authentication"`` and ``"stale packet from a new address"`` (sealed ones).

Client side, :class:`ClientEndpoint` repeats its request and response until answered or until
the connect timeout passes. Once connected, it sends a ``RESUME`` with every probe while the
server is silent to it, and in answer to every prompt (at most one every
:data:`RESUME_INTERVAL`).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import secrets
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pygase_core.errors import ProtocolError
from pygase_core.model.events import Event
from pygase_core.model.gamestate import GameState
from pygase_core.model.store import GameStateStore
from pygase_core.protocol.connection import (
    Connection,
    ConnectionClosed,
    ConnectionConfig,
    ConnectionNotice,
    EventAcknowledged,
    EventGivenUp,
    EventReceived,
    HostRoleChanged,
    PacketRefused,
    PeerBack,
    PeerSilent,
    Role,
    StateReceived,
)
from pygase_core.protocol.crypto import (
    ConnectToken,
    CookieSealer,
    SessionCipher,
    TokenContents,
    accept_genuine,
    accept_tag,
    open_private_token,
    session_cipher,
)
from pygase_core.protocol.eventwire import decode_event
from pygase_core.protocol.packets import (
    CHALLENGE_SIZE,
    COOKIE_SIZE,
    HANDSHAKE_SIZE,
    MAX_DATAGRAM_SIZE,
    PROTOCOL_VERSION,
    RESUME_SECRET_SIZE,
    SECURE_COOKIE_SIZE,
    Accept,
    Challenge,
    Data,
    Disconnect,
    DisconnectReason,
    PacketType,
    Reject,
    RejectReason,
    Request,
    Response,
    Resume,
    ResumePrompt,
    TokenRequest,
    decode,
    encode_accept,
    encode_challenge,
    encode_reject,
    encode_request,
    encode_response,
    encode_resume,
    encode_resume_prompt,
    encode_token_request,
    peek_version,
    resume_mac,
)
from pygase_core.protocol.statesync import PayloadCache, StateDecoder, UnknownBase

Address = Any
"""A socket address as asyncio reports it: ``(host, port)`` or the 4-tuple of IPv6."""
COOKIE_LIFETIME = 10.0
HANDSHAKE_RESEND_INTERVAL = 0.1
UNREACHABLE_GRACE = 0.5
"""Seconds a handshake still waits for an answer after the OS reported the port unreachable."""
PROMPT_INTERVAL = 0.1
"""A session's packets from unproven addresses get at most one ``RESUME_PROMPT`` this often."""
RESUME_INTERVAL = 0.05
"""A client answers prompts with at most one ``RESUME`` this often."""
_TIMESTAMP = struct.Struct("!Q")
_MAX_USED_COOKIES = 65536
_SESSION_TYPES = (PacketType.DATA, PacketType.DISCONNECT)
_U64 = struct.Struct("!Q")


def _is_session_packet(data: bytes) -> bool:
    return len(data) > 3 and data[3] in _SESSION_TYPES


def _session_id_of(data: bytes) -> int | None:
    """The session id of a (plain or sealed) session packet, if it is long enough to hold one."""
    if len(data) < 12:
        return None
    session_id: int = _U64.unpack_from(data, 4)[0]
    return session_id


def _count_refusals(
    notices: list[ConnectionNotice], drops: Counter[str]
) -> list[
    EventReceived | EventAcknowledged | EventGivenUp | StateReceived | ConnectionClosed
    | HostRoleChanged | PeerSilent | PeerBack
]:
    """Count a refused packet as a protocol violation; pass the others on."""
    kept = [notice for notice in notices if not isinstance(notice, PacketRefused)]
    if len(kept) != len(notices):
        drops["protocol violation"] += 1
    return kept


def _decode_event(payload: bytes, drops: Counter[str]) -> Event | None:
    """The game event a payload encodes, or None (counted) if it does not decode."""
    try:
        return decode_event(payload)
    except ProtocolError:
        drops["undecodable event"] += 1
        return None


def _open_sealed(cipher: SessionCipher, data: bytes, drops: Counter[str]) -> bytes | None:
    """The plain form of a sealed session datagram, or None (counted) if it is not genuine."""
    try:
        return cipher.open(data)
    except ProtocolError:
        drops["failed authentication"] += 1
        return None


def _spend(used: dict[bytes, float], key: bytes, now: float, expiry: float) -> bool:
    """Record a single-use key until ``expiry``; False if it was used (or the table is full)."""
    if len(used) >= _MAX_USED_COOKIES:
        for old, until in list(used.items()):
            if until < now:
                del used[old]
        if len(used) >= _MAX_USED_COOKIES:
            return False
    if key in used:
        return False
    used[key] = expiry
    return True


@dataclass(frozen=True)
class ClientJoined:
    """A client completed the handshake."""

    address: Address
    connection: Connection
    is_host: bool


@dataclass(frozen=True)
class ClientMoved:
    """A client's session moved to a new address (NAT rebinding, a phone changing networks).

    It is the same session (same connection, same event channel); everything the server keys
    by address follows it (:attr:`ServerEndpoint.sessions`, ``connections``, ``host``), and
    notices about it name ``new_address`` from now on.
    """

    old_address: Address
    new_address: Address
    session_id: int


@dataclass(frozen=True)
class ClientLeft:
    """A client's session ended (it left, timed out, or was replaced by a new session)."""

    address: Address
    reason: DisconnectReason


@dataclass(frozen=True)
class ShutdownRequested:
    """The host client asked the server to shut down."""

    address: Address


@dataclass(frozen=True)
class ShutdownRefused:
    """A client that is not the host asked the server to shut down; the server keeps running."""

    address: Address


@dataclass(frozen=True)
class StateTooLarge:
    """The current state cannot be sent (said once per state version); clients keep theirs."""

    reason: str


@dataclass(frozen=True)
class HostChanged:
    """The host role passed to another client (``address``), or ended (None)."""

    address: Address | None


@dataclass(frozen=True)
class PeerNotice:
    """Something a connection reported, tagged with the peer's address."""

    address: Address
    notice: ConnectionNotice


ServerNotice = (
    ClientJoined | ClientLeft | ShutdownRequested | ShutdownRefused | HostChanged | PeerNotice
    | StateTooLarge | ClientMoved
)
Outgoing = list[tuple[bytes, Address]]
HOST_SUCCESSION = ("longest-connected", None)
"""How the host role passes on when the host leaves: to the client connected longest, or not."""


@dataclass(eq=False)
class Session:
    """Everything the server keeps about one connected client, in one record."""

    connection: Connection
    nonce: int
    """The client's handshake nonce: a repeated response with it gets the accept again."""
    joined_at: float
    cipher: SessionCipher | None = None
    accept_key: bytes | None = None
    token_client_id: int | None = None
    """The client id its connect token named (None: a plain session). A cluster node keys the
    seat it reserved for the token on it."""
    cache: PayloadCache | None = None
    """The state this session is sent (its room's); None: the endpoint's own.

    Set it with :meth:`ServerEndpoint.assign_cache`, which keeps the endpoint's index."""
    due: float = float("inf")
    """When this session's next poll is scheduled (see ``ServerEndpoint._schedule``)."""
    address: Address = None
    """Where the client is now: the key of :attr:`ServerEndpoint.sessions`."""
    proven: Address = None
    """The last address the client proved it receives at (by its handshake or a challenge)."""
    resume_secret: bytes | None = None
    """The key of the client's ``RESUME`` MACs."""
    resume_counter: int = 0
    """The counter of the last ``RESUME`` accepted; one no newer is a replay."""
    prompted_at: float = float("-inf")


class ServerEndpoint:
    """The server's protocol state: stateless handshake plus the table of sessions."""

    def __init__(
        self,
        now: float,
        *,
        max_clients: int = 64,
        config: ConnectionConfig | None = None,
        secret: bytes | None = None,
        random_bits: Callable[[int], int] = secrets.randbits,
        host_is_first_client: bool = True,
        host_succession: str | None = "longest-connected",
        secret_key: bytes | None = None,
        address_text: str = "",
        unix_offset: float = 0.0,
        cache: PayloadCache | None = None,
    ) -> None:
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        if host_succession not in HOST_SUCCESSION:
            raise ValueError(f"host_succession must be one of {HOST_SUCCESSION}")
        self.max_clients = max_clients
        self.config = config or ConnectionConfig()
        self.sessions: dict[Address, Session] = {}
        """Each connected client's address, leading to its session record."""
        self._by_id: dict[int, Session] = {}
        self.cache = cache
        """The shared state payloads the sessions send from (None: this endpoint sends none)."""
        self.room_caches: set[PayloadCache] = set()
        """The payloads of every world whose sessions say so in :attr:`Session.cache`, checked
        after each poll for a state too large to send."""
        self.drops: Counter[str] = Counter()
        self.bytes_in_unverified = 0
        self.bytes_out_unverified = 0
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._random_bits = random_bits
        self._used_cookies: dict[bytes, float] = {}
        self._epoch = now
        self.host: Address | None = None
        """The address of the host client (who may shut the server down), if any."""
        self.host_is_first_client = host_is_first_client
        """Whether the first client to complete the handshake becomes the host."""
        self.host_succession = host_succession
        self._schedule_heap: list[tuple[float, int, Address]] = []
        self._scheduled = itertools.count()
        self._members: dict[int, set[Address]] = {}
        """Sessions by the id of the cache they are sent from (0: the endpoint's own)."""
        self._caches: dict[int, PayloadCache] = {}
        self._worlds: dict[int, tuple[GameStateStore, set[int]]] = {}
        """The caches of :attr:`_caches` by the id of their store (a world with views has one
        cache per client, all of one store: they move on together)."""
        self._seen: dict[int, int] = {}
        """The time_order the endpoint's own cache (0) and each store of :attr:`_worlds` had
        when their sessions were last scheduled for it."""
        self._check_states = False
        self._secret_key = secret_key
        self.address_text = address_text
        """This server's address as connect tokens name it (``host:port``)."""
        self._unix_offset = unix_offset
        self._sealer = CookieSealer() if secret_key is not None else None
        self._used_tokens: dict[bytes, float] = {}

    @property
    def connections(self) -> dict[Address, Connection]:
        """Each connected client's address, leading to its connection (a new dict)."""
        return {address: session.connection for address, session in self.sessions.items()}

    @property
    def nonces(self) -> dict[Address, int]:
        """Each connected client's handshake nonce (a new dict)."""
        return {address: session.nonce for address, session in self.sessions.items()}

    def decode_event(self, payload: bytes) -> Event | None:
        """The game event in a received payload; None, counted as a drop, if it is malformed."""
        return _decode_event(payload, self.drops)

    # -- scheduling ----------------------------------------------------------------------------
    # Each session's next poll sits in a heap, moved only earlier by inputs (a datagram, an
    # event to send, a newer state of its world) and set exactly after each poll, so a timer
    # polls just the sessions that are due, however many others there are.

    @property
    def earliest_deadline(self) -> float | None:
        """When the earliest session is due (None: no session)."""
        heap = self._schedule_heap
        while heap:
            due, _, address = heap[0]
            session = self.sessions.get(address)
            if session is not None and session.due == due:
                return due
            heapq.heappop(heap)  # stale: the session left or was rescheduled earlier
        return None

    def _schedule(self, address: Address, when: float) -> None:
        session = self.sessions.get(address)
        if session is not None and when < session.due:
            session.due = when
            heapq.heappush(self._schedule_heap, (when, next(self._scheduled), address))

    def assign_cache(self, address: Address, cache: PayloadCache | None) -> None:
        """Send this session the state of ``cache`` (its room's) from now on."""
        session = self.sessions.get(address)
        if session is None:
            return
        self._members.get(id(session.cache) if session.cache else 0, set()).discard(address)
        session.cache = cache
        key = id(cache) if cache is not None else 0
        if cache is not None and key not in self._caches:
            self._caches[key] = cache
            store = cache.store
            self._worlds.setdefault(id(store), (store, set()))[1].add(key)
        self._members.setdefault(key, set()).add(address)
        self._schedule(address, float("-inf"))

    def forget_cache(self, cache: PayloadCache) -> None:
        """A world is gone: drop what the endpoint kept about its cache."""
        key = id(cache)
        if self._caches.pop(key, None) is not None:
            world = self._worlds.get(id(cache.store))
            if world is not None:
                world[1].discard(key)
                if not world[1]:
                    del self._worlds[id(cache.store)]
                    self._seen.pop(id(cache.store), None)
        if not self._members.get(key):
            self._members.pop(key, None)

    def _states_changed(self, fallback: PayloadCache | None) -> None:
        """Schedule the sessions of every world whose state moved on since last time."""
        members = self._members.get(0)
        if members and fallback is not None:
            order = fallback.time_order
            if self._seen.get(0) != order:
                self._seen[0] = order
                for address in members:
                    self._schedule(address, float("-inf"))
        for store_key, (store, keys) in self._worlds.items():
            order = store.time_order
            if self._seen.get(store_key) != order:
                self._seen[store_key] = order
                for key in keys:
                    for address in self._members.get(key, ()):
                        self._schedule(address, float("-inf"))

    def session_by_id(self, session_id: int) -> Session | None:
        """The session record with this id, wherever its client is now."""
        return self._by_id.get(session_id)

    # -- cookies -------------------------------------------------------------------------------

    def _mac(self, address: Address, nonce: int, stamp: bytes) -> bytes:
        message = repr((address[0], address[1])).encode() + _TIMESTAMP.pack(nonce) + stamp
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:16]

    def _make_cookie(self, address: Address, nonce: int, now: float) -> bytes:
        stamp = self._stamp(now)
        return stamp + self._mac(address, nonce, stamp)

    def _cookie_valid(self, address: Address, nonce: int, cookie: bytes, now: float) -> bool:
        if len(cookie) != COOKIE_SIZE:
            return False
        stamp, mac = cookie[:8], cookie[8:]
        if not self._stamp_fresh(stamp, now):
            return False
        return hmac.compare_digest(mac, self._mac(address, nonce, stamp))

    def _spend_cookie(self, cookie: bytes, now: float) -> bool:
        """Mark a cookie used; False if it was used before (a replayed response)."""
        return _spend(self._used_cookies, cookie, now, now + COOKIE_LIFETIME)

    def _stamp(self, now: float) -> bytes:
        return _TIMESTAMP.pack(int((now - self._epoch) * 1000) & 0xFFFFFFFFFFFFFFFF)

    def _challenge(self, session_id: int, address: Address) -> bytes:
        """What a client must echo to prove it receives at ``address``: a keyed MAC of both."""
        message = b"pygase challenge" + _U64.pack(session_id) + repr(
            (address[0], address[1])
        ).encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:CHALLENGE_SIZE]

    def _stamp_fresh(self, stamp: bytes, now: float) -> bool:
        millis: int = _TIMESTAMP.unpack(stamp)[0]
        return -0.001 <= (now - self._epoch) - millis / 1000 <= COOKIE_LIFETIME

    @staticmethod
    def _cookie_ad(address: Address, nonce: int, stamp: bytes) -> bytes:
        return repr((address[0], address[1])).encode() + _TIMESTAMP.pack(nonce) + stamp

    def _token_request(
        self, packet: TokenRequest, address: Address, now: float
    ) -> tuple[Outgoing, list[ServerNotice]]:
        if self._secret_key is None or self._sealer is None:
            self.drops["token on a server without encryption"] += 1
            return [], []
        try:
            contents = open_private_token(
                self._secret_key,
                self.address_text,
                packet.expires_at,
                packet.private,
                now + self._unix_offset,
            )
        except ProtocolError:
            self.drops["invalid token"] += 1
            return self._answer(encode_reject(packet.nonce, RejectReason.INVALID_TOKEN), address)
        if contents.token_id in self._used_tokens:
            self.drops["reused token"] += 1
            return self._answer(encode_reject(packet.nonce, RejectReason.INVALID_TOKEN), address)
        if len(self.sessions) >= self.max_clients and address not in self.sessions:
            return self._answer(encode_reject(packet.nonce, RejectReason.SERVER_FULL), address)
        stamp = self._stamp(now)
        cookie = stamp + self._sealer.seal(contents, self._cookie_ad(address, packet.nonce, stamp))
        return self._answer(encode_challenge(packet.nonce, cookie), address)

    def _open_secure_cookie(
        self, packet: Response, address: Address, now: float
    ) -> TokenContents | None:
        """The session keys from a valid, fresh cookie whose token was not used; else None."""
        if self._sealer is None or len(packet.cookie) != SECURE_COOKIE_SIZE:
            self.drops["invalid cookie"] += 1
            return None
        stamp = packet.cookie[:8]
        if not self._stamp_fresh(stamp, now):
            self.drops["invalid cookie"] += 1
            return None
        try:
            contents = self._sealer.open(
                packet.cookie[8:], self._cookie_ad(address, packet.nonce, stamp)
            )
        except ProtocolError:
            self.drops["invalid cookie"] += 1
            return None
        # Remember the token as long as it is valid (on this clock), at least a cookie's life.
        expiry = max(now + COOKIE_LIFETIME, contents.expires_at - self._unix_offset + 1)
        if not _spend(self._used_tokens, contents.token_id, now, expiry):
            self.drops["reused token"] += 1
            return None
        return contents

    # -- datagrams -----------------------------------------------------------------------------

    def receive_datagram(
        self, data: bytes, address: Address, now: float
    ) -> tuple[Outgoing, list[ServerNotice]]:
        """Handle one datagram from ``address``; never raises for anything a peer sends."""
        return self.datagram_received(data, address, now, self.cache)

    def datagram_received(
        self, data: bytes, address: Address, now: float, cache: PayloadCache | None = None
    ) -> tuple[Outgoing, list[ServerNotice]]:
        """Handle one datagram; never raises for anything a peer sends."""
        session = self.sessions.get(address)
        if session is None and _is_session_packet(data):
            return self._from_elsewhere(data, address, now, cache)
        cipher = session.cipher if session is not None else None
        if cipher is not None and _is_session_packet(data):
            opened = _open_sealed(cipher, data, self.drops)
            if opened is None:
                return [], []
            data = opened
        try:
            packet = decode(data)
        except ProtocolError:
            return self._undecodable(data, address), []
        if isinstance(packet, Data | Disconnect):
            return self._session_packet(packet, len(data), address, now, cache)
        if isinstance(packet, Resume):
            return self._resume(packet, len(data), address, now, cache)
        self.bytes_in_unverified += len(data)
        if isinstance(packet, TokenRequest):
            return self._token_request(packet, address, now)
        if isinstance(packet, Request):
            if self._secret_key is not None:
                return self._answer(
                    encode_reject(packet.nonce, RejectReason.TOKEN_REQUIRED), address
                )
            if len(self.sessions) >= self.max_clients and address not in self.sessions:
                return self._answer(encode_reject(packet.nonce, RejectReason.SERVER_FULL), address)
            cookie = self._make_cookie(address, packet.nonce, now)
            return self._answer(encode_challenge(packet.nonce, cookie), address)
        if isinstance(packet, Response):
            return self._response(packet, address, now)
        self.drops["unexpected packet type"] += 1
        return [], []

    def _answer(self, datagram: bytes, address: Address) -> tuple[Outgoing, list[ServerNotice]]:
        self.bytes_out_unverified += len(datagram)
        return [(datagram, address)], []

    def _undecodable(self, data: bytes, address: Address) -> Outgoing:
        version = peek_version(data)
        if (
            version is not None
            and version != PROTOCOL_VERSION
            and len(data) == HANDSHAKE_SIZE
            and data[3] == 1
        ):
            # A client of another protocol version: say so, in a small answer.
            self.drops["version mismatch"] += 1
            self.bytes_in_unverified += len(data)
            (nonce,) = _TIMESTAMP.unpack_from(data, 4)
            reply = encode_reject(nonce, RejectReason.VERSION_MISMATCH)
            self.bytes_out_unverified += len(reply)
            return [(reply, address)]
        self.drops["malformed"] += 1
        return []

    def _response(
        self, packet: Response, address: Address, now: float
    ) -> tuple[Outgoing, list[ServerNotice]]:
        existing = self.sessions.get(address)
        if existing is not None and existing.nonce == packet.nonce:
            # The accept was lost and the client repeats itself: repeat the answer.
            is_host = False if self.host is None else self.host == address
            return self._answer(self._accept(packet.nonce, existing, is_host), address)
        contents = None
        if self._secret_key is not None:
            contents = self._open_secure_cookie(packet, address, now)
            if contents is None:
                return [], []
        elif not self._cookie_valid(address, packet.nonce, packet.cookie, now):
            self.drops["invalid cookie"] += 1
            return [], []
        if not self._spend_cookie(packet.cookie, now):
            self.drops["replayed cookie"] += 1
            return [], []
        notices: list[ServerNotice] = []
        if existing is not None:
            notices.extend(self._remove(address, DisconnectReason.CLIENT_LEFT))
        if len(self.sessions) >= self.max_clients:
            return self._answer(encode_reject(packet.nonce, RejectReason.SERVER_FULL), address)
        session_id = self._random_bits(64)
        while session_id in self._by_id:
            session_id = self._random_bits(64)
        connection = Connection(session_id, Role.SERVER, now, self.config)
        session = self.sessions[address] = Session(
            connection, packet.nonce, now, address=address, proven=address
        )
        self._by_id[session_id] = session
        if contents is not None:
            session.cipher = session_cipher(
                contents, connection.session_id, packet.nonce, server=True
            )
            session.accept_key = contents.server_to_client_key
            session.token_client_id = contents.client_id
            session.resume_secret = session.cipher.resume_secret
        else:
            session.resume_secret = self._random_bits(8 * RESUME_SECRET_SIZE).to_bytes(
                RESUME_SECRET_SIZE, "big"
            )
        if self.host is None and self.host_is_first_client:
            self.host = address
        is_host = self.host == address
        connection.is_host = is_host  # the accept says so
        notices.append(ClientJoined(address, connection, is_host))
        self._members.setdefault(0, set()).add(address)
        self._schedule(address, now)  # its first state goes out at once
        out, _ = self._answer(self._accept(packet.nonce, session, is_host), address)
        return out, notices

    @staticmethod
    def _accept(nonce: int, session: Session, is_host: bool) -> bytes:
        key = session.accept_key
        if key is None:
            return encode_accept(
                nonce, session.connection.session_id, is_host, session.resume_secret
            )
        accept = encode_accept(nonce, session.connection.session_id, is_host, None)
        return accept + accept_tag(key, accept)

    # -- sessions that move ----------------------------------------------------------------------

    def _from_elsewhere(
        self, data: bytes, address: Address, now: float, cache: PayloadCache | None
    ) -> tuple[Outgoing, list[ServerNotice]]:
        """A session packet from an address without a session: a moved client, or a stranger."""
        session_id = _session_id_of(data)
        session = None if session_id is None else self._by_id.get(session_id)
        cipher = session.cipher if session is not None else None
        if cipher is not None:
            assert session is not None
            return self._sealed_from_elsewhere(session, cipher, data, address, now, cache)
        try:
            packet = decode(data)
        except ProtocolError:
            return self._undecodable(data, address), []
        self.drops["unknown address"] += 1
        if session is None or not isinstance(packet, Data):
            return [], []
        return self._prompt(session, address, len(data), now), []

    def _sealed_from_elsewhere(
        self,
        session: Session,
        cipher: SessionCipher,
        data: bytes,
        address: Address,
        now: float,
        cache: PayloadCache | None,
    ) -> tuple[Outgoing, list[ServerNotice]]:
        """A sealed packet of a known session from a new address: genuine and newest, it moves."""
        if len(data) > MAX_DATAGRAM_SIZE:
            self.drops["malformed"] += 1
            return [], []
        before = cipher.highest
        opened = _open_sealed(cipher, data, self.drops)
        if opened is None:
            return [], []
        if before is not None and cipher.highest == before:
            self.drops["stale packet from a new address"] += 1
            return [], []
        try:
            packet = decode(opened)
        except ProtocolError:
            self.drops["malformed"] += 1
            return [], []
        if not isinstance(packet, Data | Disconnect):
            self.drops["unexpected packet type"] += 1
            return [], []
        notices = self._move(session, address)
        out, more = self._session_packet(packet, len(opened), address, now, cache)
        return out, notices + more

    def _move(self, session: Session, address: Address) -> list[ServerNotice]:
        """Move a session to ``address`` (which has none); held unless the address is proven."""
        old = session.address
        del self.sessions[old]
        self.sessions[address] = session
        session.address = address
        session.connection.held = address != session.proven
        if self.host == old:
            self.host = address
        members = self._members.get(id(session.cache) if session.cache else 0)
        if members is not None:
            members.discard(old)
            members.add(address)
        session.due = float("inf")  # its heap entry names the old address: schedule anew
        self._schedule(address, float("-inf"))
        return [ClientMoved(old, address, session.connection.session_id)]

    def _prompt(
        self, session: Session, address: Address, size: int, now: float, limited: bool = True
    ) -> Outgoing:
        """Ask the client at an unproven address for a ``RESUME``, in fewer bytes than came."""
        self.bytes_in_unverified += size
        if limited and now < session.prompted_at + PROMPT_INTERVAL:
            return []
        prompt = encode_resume_prompt(
            session.connection.session_id,
            self._challenge(session.connection.session_id, address),
        )
        if len(prompt) >= size:
            return []
        session.prompted_at = now
        self.bytes_out_unverified += len(prompt)
        return [(prompt, address)]

    def _resume(
        self, packet: Resume, size: int, address: Address, now: float, cache: PayloadCache | None
    ) -> tuple[Outgoing, list[ServerNotice]]:
        session = self._by_id.get(packet.session_id)
        if session is None:
            self.drops["resume of an unknown session"] += 1
            return [], []
        secret = session.resume_secret
        if secret is None or not hmac.compare_digest(
            packet.mac, resume_mac(secret, packet.session_id, packet.counter, packet.challenge)
        ):
            self.drops["forged resume"] += 1
            return [], []
        here = address == session.address
        if packet.counter <= session.resume_counter:
            if not here:
                self.drops["replayed resume"] += 1
            return [], []  # from where the session is: a duplicate, harmless
        if not here and address in self.sessions:
            self.drops["resume to an occupied address"] += 1
            return [], []
        session.resume_counter = packet.counter
        connection = session.connection
        was_held = connection.held
        if hmac.compare_digest(packet.challenge, self._challenge(packet.session_id, address)):
            session.proven = address
        notices = [] if here else self._move(session, address)
        connection.held = session.address != session.proven
        back = connection.heard(now)
        notices.extend(PeerNotice(address, notice) for notice in back)
        if connection.held:
            return self._prompt(session, address, size, now, limited=False), notices
        if here and not was_held and not back:
            return [], notices  # a refresh: nothing changes
        own = session.cache or cache
        out = self._seal(address, connection.flush(now, own))
        self._schedule(address, connection.next_deadline(own))
        return out, notices

    def _session_packet(
        self,
        packet: Data | Disconnect,
        size: int,
        address: Address,
        now: float,
        cache: PayloadCache | None,
    ) -> tuple[Outgoing, list[ServerNotice]]:
        session = self.sessions.get(address)
        if session is None:
            self.drops["unknown address"] += 1
            return [], []
        connection = session.connection
        if packet.session_id != connection.session_id:
            self.drops["wrong session"] += 1
            return [], []
        if isinstance(packet, Disconnect):
            was_host = self.host == address
            notices: list[ServerNotice] = []
            if packet.reason is DisconnectReason.SHUTDOWN_REQUEST:
                if was_host:
                    notices.append(ShutdownRequested(address))
                else:
                    self.drops["shutdown request from a non-host"] += 1
                    notices.append(ShutdownRefused(address))
            return [], self._remove(address, packet.reason) + notices
        happened = _count_refusals(connection.receive(packet, size, now), self.drops)
        self._schedule(address, connection.next_deadline(session.cache or cache))
        out = self._prompt(session, address, size, now) if connection.held else []
        return out, [PeerNotice(address, notice) for notice in happened]

    def _seal(self, address: Address, datagrams: list[bytes]) -> Outgoing:
        session = self.sessions.get(address)
        cipher = session.cipher if session is not None else None
        if cipher is None:
            return [(datagram, address) for datagram in datagrams]
        return [(cipher.seal(datagram), address) for datagram in datagrams]

    def _remove(
        self, address: Address, reason: DisconnectReason, succession: bool = True
    ) -> list[ServerNotice]:
        """Forget a session.

        Returns a notice for each of its events that will now never be acknowledged, its
        ClientLeft and, if it was the host, a HostChanged (unless ``succession`` is off).
        """
        session = self.sessions.pop(address)
        self._members.get(id(session.cache) if session.cache else 0, set()).discard(address)
        self._by_id.pop(session.connection.session_id, None)
        connection = session.connection
        connection.closed = connection.closed or reason
        notices: list[ServerNotice] = [
            PeerNotice(address, given_up) for given_up in connection.abandon_events()
        ]
        notices.append(ClientLeft(address, reason))
        if self.host == address and not succession:
            self.host = None
        elif self.host == address:
            self.host_is_first_client = False
            self.host = self._successor()
            if self.host is not None:
                self.sessions[self.host].connection.set_host_role(True)
                self._schedule(self.host, float("-inf"))  # tell the new host at once
            notices.append(HostChanged(self.host))
        return notices

    def _successor(self) -> Address | None:
        if self.host_succession is None or not self.sessions:
            return None
        return min(self.sessions.items(), key=lambda item: item[1].joined_at)[0]

    # -- sending -------------------------------------------------------------------------------

    def queue_event(
        self, address: Address, payload: bytes, retries: int = 0, token: object = None
    ) -> bool:
        """Queue an encoded event for one session; False if there is no such session."""
        session = self.sessions.get(address)
        if session is None:
            return False
        session.connection.queue_event(payload, retries, token)
        self._schedule(address, float("-inf"))
        return True

    def state_changed(self) -> None:
        """A world's state moved on: the next :meth:`handle_timer` runs at once and finds out
        which sessions lack it (those of the worlds whose time_order changed)."""
        self._check_states = True

    # -- timers --------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` should run next (None: nothing is due, ever)."""
        if self._check_states and self.sessions:
            return float("-inf")
        return self.earliest_deadline

    def next_deadline(self, cache: PayloadCache | None = None) -> float | None:
        """The earliest moment any session needs :meth:`poll`, computed exactly."""
        deadlines = [s.connection.next_deadline(cache) for s in self.sessions.values()]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> tuple[Outgoing, list[ServerNotice]]:
        """Run every session's due work (see :meth:`poll`) with the endpoint's own cache."""
        out, notices = self.poll(now, self.cache)
        caches = list(self.room_caches)
        if self.cache is not None:
            caches.append(self.cache)
        for cache in caches:
            if cache.oversize is not None:
                notices.append(StateTooLarge(str(cache.oversize)))
                cache.oversize = None
        return out, notices

    def poll(
        self, now: float, cache: PayloadCache | None = None
    ) -> tuple[Outgoing, list[ServerNotice]]:
        """Run the due sessions' work: sends, resends, timeouts.

        ``cache`` is what sessions without a world of their own are sent (the endpoint's own
        cache if None). Sessions of a world whose state moved on since the last poll are due.
        """
        fallback = cache if cache is not None else self.cache
        self._check_states = False
        self._states_changed(fallback)
        out: Outgoing = []
        notices: list[ServerNotice] = []
        heap = self._schedule_heap
        while heap and heap[0][0] <= now:
            due, _, address = heapq.heappop(heap)
            session = self.sessions.get(address)
            if session is None or session.due != due:
                continue  # stale entry
            session.due = float("inf")
            connection = session.connection
            own = session.cache or fallback
            datagrams, happened = connection.poll(now, own)
            if connection.closed is None:
                self._schedule(address, connection.next_deadline(own))
            out.extend(self._seal(address, datagrams))
            for notice in happened:
                if isinstance(notice, ConnectionClosed):
                    notices.extend(self._remove(address, notice.reason))
                else:
                    notices.append(PeerNotice(address, notice))
        return out, notices

    def disconnect(self, address: Address, reason: DisconnectReason) -> Outgoing:
        """End one session from the server side."""
        session = self.sessions.get(address)
        if session is None:
            return []
        out = self._seal(address, session.connection.close(reason))
        self._remove(address, reason)
        return out

    def shutdown(self, reason: DisconnectReason) -> tuple[Outgoing, list[ServerNotice]]:
        """End every session (the server stops): the farewells to send and what ended."""
        out: Outgoing = []
        notices: list[ServerNotice] = []
        for address, session in list(self.sessions.items()):
            out.extend(self._seal(address, session.connection.close(reason)))
            notices.extend(self._remove(address, reason, succession=False))
        return out, notices


@dataclass(frozen=True)
class Connected:
    """The handshake completed."""

    is_host: bool


@dataclass(frozen=True)
class Refused:
    """The server refused us, or never answered.

    ``unreachable`` is set when the operating system reported that nothing listens at the
    server's address (an ICMP port-unreachable) and no answer came after it.
    """

    reason: RejectReason | None
    unreachable: bool = False


@dataclass(frozen=True)
class StateRefused:
    """The server's state is larger than this client's ``max_state_size``: it cannot arrive.

    Reported once per session (every refused fragment is counted in ``drops``); the session
    goes on, so a state that shrinks arrives.
    """

    reason: str


ClientNotice = (
    Connected | Refused | EventReceived | EventAcknowledged | EventGivenUp | StateReceived
    | ConnectionClosed | PacketRefused | HostRoleChanged | PeerSilent | PeerBack | StateRefused
)


class ClientEndpoint:
    """The client's protocol state: the handshake, then its one session."""

    def __init__(
        self,
        now: float,
        *,
        config: ConnectionConfig | None = None,
        connect_timeout: float = 5.0,
        nonce: int | None = None,
        token: ConnectToken | None = None,
        server_address: Address = None,
    ) -> None:
        self.config = config or ConnectionConfig()
        self.server_address = server_address
        """Where the server is; datagrams from elsewhere are dropped (None: not checked)."""
        self.token = token
        self.cipher: SessionCipher | None = None
        """The session's cipher, once an encrypted session is accepted."""
        self.nonce = secrets.randbits(64) if nonce is None else nonce
        self.connection: Connection | None = None
        self.is_host = False
        self.failed = False
        self.drops: Counter[str] = Counter()
        self.resume_secret: bytes | None = None
        """The key of this session's ``RESUME`` MACs (the accept's, or derived from the keys)."""
        self.resumes_sent = 0
        """The counter of the last ``RESUME`` sent (each one's is higher)."""
        self.state_decoder = StateDecoder()
        """Decodes state payloads with the precision the latest baseline declared."""
        self.stale_deltas = 0
        """Deltas dropped because their base version is older than the declared values the
        client keeps (:data:`~pygase_core.model.store.BASE_VERSIONS`); harmless."""
        self.left_view: dict[str, set[Any]] = {}
        """Per viewed attribute, the keys of the entries that were removed from the state
        because they left this client's view (not deleted), until they come back."""
        self._challenge = bytes(CHALLENGE_SIZE)
        self._resumed_at = float("-inf")
        self._deadline = now + connect_timeout
        self._full_deadline = self._deadline
        self._unreachable = False
        self._state_refused = False
        self._cookie: bytes | None = None
        self._last_sent = float("-inf")

    # -- the driver's interface ----------------------------------------------------------------

    def receive_datagram(
        self, data: bytes, address: Address, now: float
    ) -> tuple[Outgoing, list[ClientNotice]]:
        """Handle a datagram that arrived from ``address``."""
        expected = self.server_address
        if expected is not None and address is not None and address[:2] != expected[:2]:
            self.drops["unknown address"] += 1
            return [], []
        out, notices = self.datagram_received(data, now)
        return self._addressed(out), notices

    def handle_timer(self, now: float) -> tuple[Outgoing, list[ClientNotice]]:
        """Run what is due (see :meth:`poll`)."""
        out, notices = self.poll(now)
        return self._addressed(out), notices

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` should run next."""
        if self.failed or (self.connection is not None and self.connection.closed is not None):
            return None
        return self.next_deadline()

    def unreachable(self, now: float) -> None:
        """The OS says nothing listens at the server's address (ICMP port-unreachable).

        During the handshake this shortens the wait: unless an answer arrives within
        :data:`UNREACHABLE_GRACE` seconds (a server still starting up), the handshake fails
        as unreachable instead of waiting out the whole connect timeout. A connected session
        ignores it: its own timeout decides.
        """
        if self.connection is not None or self.failed:
            return
        self._unreachable = True
        self._deadline = min(self._deadline, now + UNREACHABLE_GRACE)

    def queue_event(self, payload: bytes, retries: int = 0, token: object = None) -> bool:
        """Queue an encoded event for the server; False without a live session."""
        connection = self.connection
        if connection is None or connection.closed is not None:
            return False
        connection.queue_event(payload, retries, token)
        return True

    def apply_state(self, received: StateReceived, state: GameState) -> GameState | None:
        """Apply a received state payload to ``state``; returns the state to keep, or None.

        A baseline replaces the state (the new object is returned) unless it is older than
        what was applied; a delta changes ``state`` in place (``state`` is returned) if it is
        newer. The applied ``time_order`` is recorded, so the next report tells the server.
        An undecodable payload is dropped and counted.
        """
        connection = self.connection
        try:
            decoded = self.state_decoder.decode(received.base, received.target, received.payload)
        except ProtocolError:
            self.drops["undecodable state"] += 1
            return None
        except UnknownBase:
            self.stale_deltas += 1  # the next delta, from the base now reported, applies
            return None
        applied = None if connection is None else connection.applied_time_order
        left_view = self.left_view
        if isinstance(decoded, GameState):
            if applied is not None and decoded.time_order <= applied:
                return None
            left = [
                (name, key) for name, key in self.state_decoder.left
                if isinstance(entries := getattr(state, name, None), dict) and key in entries
            ]
            state = decoded
            for name, keys in left_view.items():
                entries = getattr(state, name, None)
                if isinstance(entries, dict):
                    keys.difference_update(entries.keys())
            for name, key in left:
                left_view.setdefault(name, set()).add(key)
        else:
            left = [
                (name, key) for name, key in self.state_decoder.left
                if isinstance(entries := getattr(state, name, None), dict) and key in entries
            ]
            if not state.apply_owned(decoded):
                return None  # (the decoded delta is this client's own: no need to copy its values)
            for name, keys in left_view.items():
                came = decoded.changes.get(name)
                if isinstance(came, dict) and keys:
                    keys.difference_update(came.keys())
            for name, key in left:
                left_view.setdefault(name, set()).add(key)
        if connection is not None:
            connection.applied_time_order = state.time_order
        self.state_decoder.remember(state)
        return state

    def decode_event(self, payload: bytes) -> Event | None:
        """The game event in a received payload; None, counted as a drop, if it is malformed."""
        return _decode_event(payload, self.drops)

    def _addressed(self, datagrams: list[bytes]) -> Outgoing:
        return [(datagram, self.server_address) for datagram in datagrams]

    # -- handshake and session -----------------------------------------------------------------

    def _handshake_datagram(self) -> bytes:
        if self._cookie is None:
            token = self.token
            if token is not None:
                return encode_token_request(
                    self.nonce, token.expires_at, token.server_address, token.private
                )
            return encode_request(self.nonce)
        return encode_response(self.nonce, self._cookie)

    def start(self, now: float) -> list[bytes]:
        """The first request."""
        self._last_sent = now
        return [self._handshake_datagram()]

    def datagram_received(self, data: bytes, now: float) -> tuple[list[bytes], list[ClientNotice]]:
        """Handle a datagram from the server's address; never raises for what it contains."""
        if len(data) > MAX_DATAGRAM_SIZE:
            self.drops["oversized"] += 1
            return [], []
        cipher = self.cipher
        if cipher is not None and _is_session_packet(data):
            if self.connection is None:
                self.drops["unexpected packet"] += 1
                return [], []
            opened = _open_sealed(cipher, data, self.drops)
            if opened is None:
                return [], []
            data = opened
        try:
            packet = decode(data)
        except ProtocolError:
            self.drops["malformed"] += 1
            return [], []
        connection = self.connection
        if connection is not None:
            if not isinstance(packet, Data | Disconnect | ResumePrompt):
                self.drops["unexpected packet type"] += 1
                return [], []
            if packet.session_id != connection.session_id:
                self.drops["wrong session"] += 1
                return [], []
            if isinstance(packet, ResumePrompt):
                # The server sees our packets come from an address it does not know (a new
                # challenge: a new address) and wants us to prove we are there.
                fresh = packet.challenge != self._challenge
                self._challenge = packet.challenge
                if connection.closed is not None or (
                    not fresh and now < self._resumed_at + RESUME_INTERVAL
                ):
                    return [], []
                return [self._resume_datagram(now)], []
            if isinstance(packet, Disconnect):
                return [], list(connection.receive_disconnect(packet.reason))
            received = connection.receive(packet, len(data), now)
            last = received[-1] if received else None
            too_large = (
                last.reason if isinstance(last, PacketRefused) and last.state_over_maximum
                else None
            )
            if too_large is not None:
                received.pop()  # not a protocol violation: the two ends are configured apart
                self.drops["state over max_state_size"] += 1
            notices: list[ClientNotice] = list(_count_refusals(received, self.drops))
            for notice in notices:
                if isinstance(notice, HostRoleChanged):
                    self.is_host = notice.is_host
            if too_large is not None and not self._state_refused:
                self._state_refused = True
                notices.append(StateRefused(too_large))
            return [], notices
        if self.failed or getattr(packet, "nonce", None) != self.nonce:
            self.drops["unexpected packet"] += 1
            return [], []
        if self._unreachable:  # it answered after all: the full connect timeout applies again
            self._unreachable = False
            self._deadline = self._full_deadline
        if isinstance(packet, Challenge):
            self._cookie = packet.cookie
            self._last_sent = now
            return [self._handshake_datagram()], []
        if isinstance(packet, Accept):
            token = self.token
            if token is not None:
                if not packet.tag or not accept_genuine(
                    token.server_to_client_key, data[:-16], packet.tag
                ):
                    self.drops["forged accept"] += 1
                    return [], []
                self.cipher = session_cipher(token, packet.session_id, self.nonce, server=False)
                self.resume_secret = self.cipher.resume_secret
            elif not packet.resume_secret:
                self.drops["forged accept"] += 1  # an encrypted server's accept, unasked for
                return [], []
            else:
                self.resume_secret = packet.resume_secret
            self.connection = Connection(packet.session_id, Role.CLIENT, now, self.config)
            self.is_host = self.connection.is_host = packet.is_host
            return self._seal(self.connection.flush(now)), [Connected(packet.is_host)]
        if isinstance(packet, Reject):
            self.failed = True
            return [], [Refused(packet.reason)]
        self.drops["unexpected packet type"] += 1
        return [], []

    def _seal(self, datagrams: list[bytes]) -> list[bytes]:
        cipher = self.cipher
        if cipher is None:
            return datagrams
        return [cipher.seal(datagram) for datagram in datagrams]

    def _resume_datagram(self, now: float) -> bytes:
        """A ``RESUME`` proving we hold the session, wherever our packets now come from."""
        connection, secret = self.connection, self.resume_secret
        assert connection is not None and secret is not None
        self.resumes_sent += 1
        self._resumed_at = now
        return encode_resume(connection.session_id, self.resumes_sent, self._challenge, secret)

    def close(self, reason: DisconnectReason) -> list[bytes]:
        """End the session from this side: the disconnect datagrams to send."""
        if self.connection is None or self.connection.closed is not None:
            return []
        return self._seal(self.connection.close(reason))

    def close_session(self, reason: DisconnectReason) -> Outgoing:
        """:meth:`close`, addressed to the server."""
        return self._addressed(self.close(reason))

    def next_deadline(self) -> float:
        """When :meth:`poll` should run next."""
        if self.connection is not None:
            return self.connection.next_deadline()
        return min(self._deadline, self._last_sent + HANDSHAKE_RESEND_INTERVAL)

    def poll(self, now: float) -> tuple[list[bytes], list[ClientNotice]]:
        """Resend the handshake, time out, or run the session's due work."""
        connection = self.connection
        if connection is not None:
            datagrams, notices = connection.poll(now)
            out = self._seal(datagrams)
            if out and connection.silent:
                # Perhaps our address changed: every probe says who we are.
                out.insert(0, self._resume_datagram(now))
            return out, list(notices)
        if self.failed:
            return [], []
        if now >= self._deadline:
            self.failed = True
            return [], [Refused(None, unreachable=self._unreachable)]
        if now >= self._last_sent + HANDSHAKE_RESEND_INTERVAL:
            self._last_sent = now
            return [self._handshake_datagram()], []
        return [], []
