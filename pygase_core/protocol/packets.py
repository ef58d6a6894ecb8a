"""The wire format of pygase datagrams: plain encode and decode functions, no state, no I/O.

Every datagram starts with a 4-byte prefix: the magic ``b"PG"``, the protocol version and the
packet type. Handshake packets carry the client's nonce; a connected session's packets carry the
64-bit session id the server chose, so a datagram from a stranger is recognisable at once.

Requests the server answers before the client's address is verified (``REQUEST`` and
``RESPONSE``) are padded to :data:`HANDSHAKE_SIZE` bytes, and every answer to them is smaller, so
pygase can never be used to amplify traffic towards a spoofed address.

The ``ACCEPT`` of an unencrypted server carries a random 16-byte *resume secret* for the session
(an encrypted server's carries its tag instead, flag :data:`ACCEPT_SEALED`). A client whose
address changed (NAT rebinding, a phone changing networks) proves it holds the session with a
``RESUME``: the session id, a strictly increasing 64-bit counter, the last challenge the server
sent it and a MAC of these under the secret (:func:`resume_mac`). The server asks for one with a
``RESUME_PROMPT`` (session id and an 8-byte challenge) when a session's packet comes from an
address it does not know; echoing the challenge proves the client receives at that address.

Data packets carry ack information (the newest sequence seen and a 32-bit bitfield of the 32
before it) and a list of messages, each a one-byte tag and fixed fields:

* ``STATE_REPORT``: the newest state ``time_order`` the client has applied (client to server);
* ``EVENT_FLOOR``: the lowest event id the sender may still send; the receiver gives up on lower
  ids it is missing;
* ``STATE_FRAGMENT``: a piece of a state payload taking the receiver from ``base`` to ``target``;
* ``EVENT_FRAGMENT``: a piece of an encoded event;
* ``HOST_ROLE``: whether the receiving client is now the host (server to client, repeated until
  acknowledged);
* ``INPUT``: the client's inputs the server has not acknowledged yet, each stamped with its
  input tick and the state the player was looking at (client to server, unreliable, every
  packet repeating the unacknowledged ones up to a bound);
* ``INPUT_ACK``: the last input tick the server applied for this client as of a state
  ``time_order``, and the slack of its buffer of the client's inputs (server to client, in
  every packet once an input was applied).

Decoding is defensive: any truncated, oversized or inconsistent input raises
:class:`~pygase_core.errors.ProtocolError`, and nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from enum import IntEnum

from pygase_core.errors import ProtocolError

MAGIC = b"PG"
PROTOCOL_VERSION = 5
"""Version 2: resume secret in ``ACCEPT``; ``RESUME`` and ``RESUME_PROMPT`` packets. Version 3:
state payloads may carry declared precision (tagged ints and single floats, the declaration in
baselines) and entries that left a client's view; ``INPUT`` and ``INPUT_ACK`` messages.
Version 4: a delta may carry declared floats as differences from its base version (the key
``"_d"``). Version 5: the server pipelines up to eight delta transfers, and the client keeps
as many partial payloads (a version 4 client, keeping four, would drop acked fragments)."""
MAX_DATAGRAM_SIZE = 1200
"""Payload budget of one datagram; fits the path MTU of practically every internet route."""
SESSION_SEAL_OVERHEAD = 24
"""Room kept free in every session packet for the packet number and tag of encryption."""
MAX_PLAIN_DATAGRAM = MAX_DATAGRAM_SIZE - SESSION_SEAL_OVERHEAD
"""Budget of a session packet before (optional) sealing."""
HANDSHAKE_SIZE = 1000
"""Padded size of client handshake packets; every server answer to them is smaller."""
NO_STATE = 0xFFFFFFFFFFFFFFFF
"""``STATE_REPORT`` value of a client that has not received any state yet."""
FULL_STATE = 0xFFFFFFFFFFFFFFFF
"""``STATE_FRAGMENT`` base of a full-state baseline, which applies to any older state."""


class PacketType(IntEnum):
    """The kind of a datagram (the fourth byte)."""

    REQUEST = 1
    CHALLENGE = 2
    RESPONSE = 3
    ACCEPT = 4
    REJECT = 5
    DATA = 6
    DISCONNECT = 7
    TOKEN_REQUEST = 8
    RESUME = 9
    RESUME_PROMPT = 10


class RejectReason(IntEnum):
    """Why a server refused a connection."""

    SERVER_FULL = 1
    VERSION_MISMATCH = 2
    INVALID_TOKEN = 3
    TOKEN_REQUIRED = 4


class DisconnectReason(IntEnum):
    """Why a session ends; sent in ``DISCONNECT`` packets."""

    CLIENT_LEFT = 1
    SHUTDOWN_REQUEST = 2
    SERVER_SHUTDOWN = 3
    TIMED_OUT = 4


class MessageTag(IntEnum):
    """The one-byte tag of a message inside a data packet."""

    STATE_REPORT = 1
    EVENT_FLOOR = 2
    STATE_FRAGMENT = 3
    EVENT_FRAGMENT = 4
    HOST_ROLE = 5
    INPUT = 6
    INPUT_ACK = 7


_PREFIX = struct.Struct("!2sBB")
_NONCE = struct.Struct("!Q")
COOKIE_SIZE = 24
"""A plain handshake cookie: an 8-byte timestamp and a 16-byte keyed MAC."""
SECURE_COOKIE_SIZE = 128
"""Cookies of encrypted servers also seal the session keys: timestamp, nonce, keys, tag."""
_COOKIE_SIZES = (COOKIE_SIZE, SECURE_COOKIE_SIZE)
PRIVATE_TOKEN_SIZE = 100
"""The sealed part of a connect token (see :mod:`pygase_core.protocol.crypto`)."""
_ACCEPT = struct.Struct("!QQB")
ACCEPT_HOST = 1
"""``ACCEPT`` flag: the client holds the host role."""
ACCEPT_SEALED = 2
"""``ACCEPT`` flag: an encrypted server's accept, ending with its tag instead of a resume secret."""
RESUME_SECRET_SIZE = 16
CHALLENGE_SIZE = 8
RESUME_MAC_SIZE = 16
_RESUME = struct.Struct(f"!QQ{CHALLENGE_SIZE}s{RESUME_MAC_SIZE}s")
_RESUME_PROMPT = struct.Struct(f"!Q{CHALLENGE_SIZE}s")
_REJECT = struct.Struct("!QB")
DATA_HEADER = struct.Struct("!QHHI")
_DISCONNECT = struct.Struct("!QB")
_U64 = struct.Struct("!Q")
_FRAGMENT_HEADER = struct.Struct("!QQHHH")
_STATE_FRAGMENT_TAG = bytes((MessageTag.STATE_FRAGMENT,))
_EVENT_FRAGMENT_HEADER = struct.Struct("!IHHH")
_U32 = struct.Struct("!I")

_INPUT_HEADER = struct.Struct("!IQB")
_INPUT_ENTRY = struct.Struct("!BBB")
_INPUT_ACK = struct.Struct("!QIB")
MAX_INPUT_WIRE_SIZE = 255
"""Largest encoded input one ``INPUT`` entry can carry (its size is one byte)."""
MAX_INPUT_TICK = 0xFFFFFFFF
"""The largest input tick (32 bits on the wire, a year and a half of ticks at 50 a second)."""
MAX_INPUT_SPAN = 255
"""Ticks one ``INPUT`` message can span (each entry's tick is an offset of one byte)."""
INPUT_ACK_SIZE = 1 + _INPUT_ACK.size
INPUT_HEADER_SIZE = 1 + _INPUT_HEADER.size
INPUT_ENTRY_OVERHEAD = _INPUT_ENTRY.size

DATA_PACKET_OVERHEAD = _PREFIX.size + DATA_HEADER.size
STATE_FRAGMENT_OVERHEAD = 1 + _FRAGMENT_HEADER.size
EVENT_FRAGMENT_OVERHEAD = 1 + _EVENT_FRAGMENT_HEADER.size
STATE_REPORT_SIZE = 1 + _U64.size
EVENT_FLOOR_SIZE = 1 + _U32.size
MAX_FRAGMENT_DATA = (
    MAX_PLAIN_DATAGRAM - DATA_PACKET_OVERHEAD - STATE_REPORT_SIZE - EVENT_FLOOR_SIZE
    - INPUT_ACK_SIZE - STATE_FRAGMENT_OVERHEAD
)
"""Largest fragment body that still fits a datagram beside the per-packet messages."""
MAX_FRAGMENTS = 0xFFFF


@dataclass(frozen=True)
class Request:
    """A client asks to connect (padded to :data:`HANDSHAKE_SIZE`)."""

    nonce: int


@dataclass(frozen=True)
class TokenRequest:
    """A client asks to connect to an encrypted server, presenting its connect token."""

    nonce: int
    expires_at: int
    server_address: str
    private: bytes


@dataclass(frozen=True)
class Challenge:
    """The server's stateless answer to a request: a cookie the client must echo."""

    nonce: int
    cookie: bytes


@dataclass(frozen=True)
class Response:
    """The client echoes the cookie, proving it receives at its source address."""

    nonce: int
    cookie: bytes


@dataclass(frozen=True)
class Accept:
    """The server created a session for the client.

    An unencrypted server's accept carries the session's ``resume_secret``, an encrypted one's
    the ``tag`` that authenticates it (the other is empty).
    """

    nonce: int
    session_id: int
    is_host: bool
    tag: bytes = b""
    resume_secret: bytes = b""


@dataclass(frozen=True)
class Resume:
    """The client proves it holds the session, from wherever it is now.

    ``counter`` rises with every resume the client sends; ``challenge`` echoes the last
    ``RESUME_PROMPT`` (zeros if none came); ``mac`` is :func:`resume_mac` of the three.
    """

    session_id: int
    counter: int
    challenge: bytes
    mac: bytes


@dataclass(frozen=True)
class ResumePrompt:
    """The server saw the session's packets from an address it does not know: resume, please."""

    session_id: int
    challenge: bytes


@dataclass(frozen=True)
class Reject:
    """The server refuses the client, with a reason."""

    nonce: int
    reason: RejectReason


@dataclass(frozen=True)
class StateReport:
    """The newest state time_order a client has applied (:data:`NO_STATE` if none)."""

    time_order: int


@dataclass(frozen=True)
class EventFloor:
    """The lowest event id the sender may still (re)send."""

    event_id: int


@dataclass(frozen=True)
class StateFragment:
    """One piece of a state payload that takes a state from ``base`` to ``target``."""

    base: int
    target: int
    index: int
    count: int
    data: bytes


@dataclass(frozen=True)
class EventFragment:
    """One piece of an encoded event."""

    event_id: int
    index: int
    count: int
    data: bytes


@dataclass(frozen=True)
class HostRole:
    """Whether the receiving client holds the host role (it may shut the server down)."""

    is_host: bool


@dataclass(frozen=True)
class InputEntry:
    """One input: its tick, the state ``time_order`` the player saw, its encoded value."""

    tick: int
    view: int
    data: bytes


@dataclass(frozen=True)
class Inputs:
    """The client's unacknowledged inputs, oldest first (ticks strictly increasing)."""

    entries: tuple[InputEntry, ...]


@dataclass(frozen=True)
class InputAck:
    """As of state ``time_order``, the server has applied this client's inputs up to ``tick``.

    ``slack`` is the smallest number of the client's inputs its buffer held over the last half
    second (255: not measured yet), by which the client paces its inputs.
    """

    time_order: int
    tick: int
    slack: int = 255


Message = StateReport | EventFloor | StateFragment | EventFragment | HostRole | Inputs | InputAck


@dataclass(frozen=True)
class Data:
    """A packet of a connected session: ack information and messages."""

    session_id: int
    sequence: int
    ack: int
    ack_bits: int
    messages: tuple[Message, ...]


@dataclass(frozen=True)
class Disconnect:
    """The session ends (sent several times, since it is not acknowledged)."""

    session_id: int
    reason: DisconnectReason


Packet = (
    Request | TokenRequest | Challenge | Response | Accept | Reject | Data | Disconnect | Resume
    | ResumePrompt
)


def _prefix(packet_type: PacketType) -> bytes:
    return _PREFIX.pack(MAGIC, PROTOCOL_VERSION, packet_type)


def _padded(body: bytes) -> bytes:
    return body + bytes(HANDSHAKE_SIZE - len(body))


def encode_request(nonce: int) -> bytes:
    """Encode a connection request, padded to :data:`HANDSHAKE_SIZE` bytes."""
    return _padded(_prefix(PacketType.REQUEST) + _NONCE.pack(nonce))


def encode_token_request(nonce: int, expires_at: int, server_address: str, private: bytes) -> bytes:
    """Encode a connection request with a connect token, padded like a plain request."""
    address = server_address.encode()
    return _padded(
        _prefix(PacketType.TOKEN_REQUEST) + _NONCE.pack(nonce) + _NONCE.pack(expires_at)
        + bytes((len(address),)) + address + private
    )


def encode_challenge(nonce: int, cookie: bytes) -> bytes:
    """Encode the server's challenge to a request."""
    return _prefix(PacketType.CHALLENGE) + _NONCE.pack(nonce) + cookie


def encode_response(nonce: int, cookie: bytes) -> bytes:
    """Encode the client's answer to a challenge, padded like a request."""
    return _padded(
        _prefix(PacketType.RESPONSE) + _NONCE.pack(nonce) + bytes((len(cookie),)) + cookie
    )


def encode_accept(
    nonce: int, session_id: int, is_host: bool, resume_secret: bytes | None
) -> bytes:
    """Encode the server's acceptance of a verified client.

    An unencrypted server passes the session's 16-byte resume secret; an encrypted one passes
    None and appends its tag (see :func:`pygase_core.protocol.crypto.accept_tag`).
    """
    flags = ACCEPT_HOST if is_host else 0
    if resume_secret is None:
        return _prefix(PacketType.ACCEPT) + _ACCEPT.pack(nonce, session_id, flags | ACCEPT_SEALED)
    if len(resume_secret) != RESUME_SECRET_SIZE:
        raise ValueError(f"the resume secret must be {RESUME_SECRET_SIZE} bytes")
    return _prefix(PacketType.ACCEPT) + _ACCEPT.pack(nonce, session_id, flags) + resume_secret


def resume_mac(secret: bytes, session_id: int, counter: int, challenge: bytes) -> bytes:
    """The keyed MAC of a ``RESUME``: HMAC-SHA256 over session id, counter and challenge."""
    message = b"pygase resume" + _U64.pack(session_id) + _U64.pack(counter) + challenge
    return hmac.new(secret, message, hashlib.sha256).digest()[:RESUME_MAC_SIZE]


def encode_resume(session_id: int, counter: int, challenge: bytes, secret: bytes) -> bytes:
    """Encode a ``RESUME``, with its MAC under the session's resume secret."""
    mac = resume_mac(secret, session_id, counter, challenge)
    return _prefix(PacketType.RESUME) + _RESUME.pack(session_id, counter, challenge, mac)


def encode_resume_prompt(session_id: int, challenge: bytes) -> bytes:
    """Encode the server's request for a ``RESUME`` (smaller than any client data packet)."""
    return _prefix(PacketType.RESUME_PROMPT) + _RESUME_PROMPT.pack(session_id, challenge)


def encode_reject(nonce: int, reason: RejectReason) -> bytes:
    """Encode the server's refusal."""
    return _prefix(PacketType.REJECT) + _REJECT.pack(nonce, reason)


def encode_disconnect(session_id: int, reason: DisconnectReason) -> bytes:
    """Encode the end of a session."""
    return _prefix(PacketType.DISCONNECT) + _DISCONNECT.pack(session_id, reason)


def encode_data_header(session_id: int, sequence: int, ack: int, ack_bits: int) -> bytes:
    """Encode the fixed start of a data packet; messages follow it."""
    return _prefix(PacketType.DATA) + DATA_HEADER.pack(session_id, sequence, ack, ack_bits)


def encode_state_report(time_order: int) -> bytes:
    """Encode a ``STATE_REPORT`` message."""
    return bytes((MessageTag.STATE_REPORT,)) + _U64.pack(time_order)


def encode_host_role(is_host: bool) -> bytes:
    """Encode a ``HOST_ROLE`` message."""
    return bytes((MessageTag.HOST_ROLE, 1 if is_host else 0))


def encode_inputs(entries: list[InputEntry]) -> bytes:
    """Encode an ``INPUT`` message: entries oldest first, within :data:`MAX_INPUT_SPAN` ticks.

    Each entry's view is sent as a step back from the newest entry's (at most 255).
    """
    if not entries or len(entries) > 255:
        raise ValueError("an INPUT message carries 1 to 255 inputs")
    first, newest = entries[0].tick, entries[-1]
    parts = [bytes((MessageTag.INPUT,)), _INPUT_HEADER.pack(first, newest.view, len(entries))]
    for entry in entries:
        offset = entry.tick - first
        if not 0 <= offset <= MAX_INPUT_SPAN or len(entry.data) > MAX_INPUT_WIRE_SIZE:
            raise ValueError("input outside the span of one message, or too large")
        back = min(255, max(0, newest.view - entry.view))
        parts.append(_INPUT_ENTRY.pack(offset, back, len(entry.data)))
        parts.append(entry.data)
    return b"".join(parts)


def encode_input_ack(time_order: int, tick: int, slack: int = 255) -> bytes:
    """Encode an ``INPUT_ACK`` message (``slack`` is capped at 254; 255 means unknown)."""
    return bytes((MessageTag.INPUT_ACK,)) + _INPUT_ACK.pack(time_order, tick, min(slack, 255))


def encode_event_floor(event_id: int) -> bytes:
    """Encode an ``EVENT_FLOOR`` message."""
    return bytes((MessageTag.EVENT_FLOOR,)) + _U32.pack(event_id)


def encode_state_fragment(base: int, target: int, index: int, count: int, data: bytes) -> bytes:
    """Encode a ``STATE_FRAGMENT`` message (with views, one per client and state version)."""
    return _STATE_FRAGMENT_TAG + _FRAGMENT_HEADER.pack(base, target, index, count, len(data)) + data


def encode_event_fragment(event_id: int, index: int, count: int, data: bytes) -> bytes:
    """Encode an ``EVENT_FRAGMENT`` message."""
    header = _EVENT_FRAGMENT_HEADER.pack(event_id, index, count, len(data))
    return bytes((MessageTag.EVENT_FRAGMENT,)) + header + data


def split_payload(payload: bytes, fragment_size: int = MAX_FRAGMENT_DATA) -> list[bytes]:
    """Cut a payload into fragment bodies (at least one, even for an empty payload)."""
    if not payload:
        return [b""]
    return [payload[i : i + fragment_size] for i in range(0, len(payload), fragment_size)]


def peek_type(datagram: bytes) -> PacketType:
    """Check the prefix of a datagram and return its type without decoding the rest."""
    if len(datagram) < _PREFIX.size or len(datagram) > MAX_DATAGRAM_SIZE:
        raise ProtocolError("datagram size out of range")
    magic, version, raw_type = _PREFIX.unpack_from(datagram)
    if magic != MAGIC:
        raise ProtocolError("not a pygase datagram")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version}, expected {PROTOCOL_VERSION}")
    try:
        return PacketType(raw_type)
    except ValueError:
        raise ProtocolError(f"unknown packet type {raw_type}") from None


def peek_version(datagram: bytes) -> int | None:
    """The protocol version byte of something that looks like a pygase datagram, else None."""
    if len(datagram) < _PREFIX.size or datagram[:2] != MAGIC:
        return None
    return datagram[2]


def decode(datagram: bytes) -> Packet:
    """Decode any pygase datagram; raises :class:`ProtocolError` for anything malformed."""
    packet_type = peek_type(datagram)
    body = memoryview(datagram)[_PREFIX.size :]
    try:
        if packet_type is PacketType.DATA:
            return _decode_data(body)
        if packet_type in (PacketType.REQUEST, PacketType.RESPONSE, PacketType.TOKEN_REQUEST):
            if len(datagram) != HANDSHAKE_SIZE:
                raise ProtocolError("handshake packet not padded to its fixed size")
            (nonce,) = _NONCE.unpack_from(body)
            if packet_type is PacketType.REQUEST:
                return Request(nonce)
            if packet_type is PacketType.TOKEN_REQUEST:
                return _decode_token_request(nonce, body)
            size = body[_NONCE.size]
            start = _NONCE.size + 1
            if size not in _COOKIE_SIZES:
                raise ProtocolError("cookie of the wrong size")
            return Response(nonce, bytes(body[start : start + size]))
        if packet_type is PacketType.CHALLENGE:
            if len(body) - _NONCE.size not in _COOKIE_SIZES:
                raise ProtocolError("challenge of the wrong size")
            (nonce,) = _NONCE.unpack_from(body)
            return Challenge(nonce, bytes(body[_NONCE.size :]))
        if packet_type is PacketType.ACCEPT:
            _expect_size(body, _ACCEPT.size + RESUME_SECRET_SIZE)  # the tag is as long
            nonce, session_id, flags = _ACCEPT.unpack_from(body)
            if flags & ~(ACCEPT_HOST | ACCEPT_SEALED):
                raise ProtocolError(f"accept flags {flags}")
            rest = bytes(body[_ACCEPT.size :])
            is_host = bool(flags & ACCEPT_HOST)
            if flags & ACCEPT_SEALED:
                return Accept(nonce, session_id, is_host, tag=rest)
            return Accept(nonce, session_id, is_host, resume_secret=rest)
        if packet_type is PacketType.RESUME:
            _expect_size(body, _RESUME.size)
            return Resume(*_RESUME.unpack_from(body))
        if packet_type is PacketType.RESUME_PROMPT:
            _expect_size(body, _RESUME_PROMPT.size)
            return ResumePrompt(*_RESUME_PROMPT.unpack_from(body))
        if packet_type is PacketType.REJECT:
            _expect_size(body, _REJECT.size)
            nonce, reason = _REJECT.unpack_from(body)
            return Reject(nonce, RejectReason(reason))
        _expect_size(body, _DISCONNECT.size)
        session_id, reason = _DISCONNECT.unpack_from(body)
        return Disconnect(session_id, DisconnectReason(reason))
    except (struct.error, ValueError, IndexError) as error:
        raise ProtocolError(f"malformed {packet_type.name} packet: {error}") from None


def _decode_token_request(nonce: int, body: memoryview) -> TokenRequest:
    (expires_at,) = _NONCE.unpack_from(body, _NONCE.size)
    offset = 2 * _NONCE.size
    length = body[offset]
    offset += 1
    try:
        address = bytes(body[offset : offset + length]).decode()
    except UnicodeDecodeError:
        raise ProtocolError("server address is not text") from None
    offset += length
    private = bytes(body[offset : offset + PRIVATE_TOKEN_SIZE])
    return TokenRequest(nonce, expires_at, address, private)


def _expect_size(body: memoryview, size: int) -> None:
    if len(body) != size:
        raise ProtocolError(f"packet body is {len(body)} bytes, expected {size}")


def _decode_data(body: memoryview) -> Data:
    session_id, sequence, ack, ack_bits = DATA_HEADER.unpack_from(body)
    offset = DATA_HEADER.size
    end = len(body)
    messages: list[Message] = []
    while offset < end:
        tag = body[offset]
        offset += 1
        if tag == MessageTag.STATE_FRAGMENT:
            base, target, index, count, size = _FRAGMENT_HEADER.unpack_from(body, offset)
            offset += _FRAGMENT_HEADER.size
            data = _take(body, offset, size)
            offset += size
            _check_fragment(index, count)
            messages.append(StateFragment(base, target, index, count, data))
        elif tag == MessageTag.EVENT_FRAGMENT:
            event_id, index, count, size = _EVENT_FRAGMENT_HEADER.unpack_from(body, offset)
            offset += _EVENT_FRAGMENT_HEADER.size
            data = _take(body, offset, size)
            offset += size
            _check_fragment(index, count)
            messages.append(EventFragment(event_id, index, count, data))
        elif tag == MessageTag.STATE_REPORT:
            (time_order,) = _U64.unpack_from(body, offset)
            offset += _U64.size
            messages.append(StateReport(time_order))
        elif tag == MessageTag.HOST_ROLE:
            flag = _take(body, offset, 1)[0]
            offset += 1
            if flag > 1:
                raise ProtocolError(f"host role flag {flag}")
            messages.append(HostRole(flag == 1))
        elif tag == MessageTag.INPUT:
            first, view, count = _INPUT_HEADER.unpack_from(body, offset)
            offset += _INPUT_HEADER.size
            entries: list[InputEntry] = []
            previous = -1
            for _ in range(count):
                tick_offset, back, size = _INPUT_ENTRY.unpack_from(body, offset)
                offset += _INPUT_ENTRY.size
                data = _take(body, offset, size)
                offset += size
                if tick_offset <= previous:
                    raise ProtocolError("input ticks not strictly increasing")
                if first + tick_offset > MAX_INPUT_TICK:
                    # The INPUT_ACK that would answer it could not carry it.
                    raise ProtocolError(f"input tick {first + tick_offset} beyond 32 bits")
                previous = tick_offset
                entries.append(InputEntry(first + tick_offset, max(0, view - back), data))
            if not entries:
                raise ProtocolError("an INPUT message without inputs")
            messages.append(Inputs(tuple(entries)))
        elif tag == MessageTag.INPUT_ACK:
            time_order, tick, slack = _INPUT_ACK.unpack_from(body, offset)
            offset += _INPUT_ACK.size
            messages.append(InputAck(time_order, tick, slack))
        elif tag == MessageTag.EVENT_FLOOR:
            (event_id,) = _U32.unpack_from(body, offset)
            offset += _U32.size
            messages.append(EventFloor(event_id))
        else:
            raise ProtocolError(f"unknown message tag {tag}")
    return Data(session_id, sequence, ack, ack_bits, tuple(messages))


def _take(body: memoryview, offset: int, size: int) -> bytes:
    if offset + size > len(body):
        raise ProtocolError("message runs past the end of the datagram")
    return bytes(body[offset : offset + size])


def _check_fragment(index: int, count: int) -> None:
    if count == 0 or index >= count:
        raise ProtocolError(f"fragment {index} of {count}")
