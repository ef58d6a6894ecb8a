"""Optional encryption: connect tokens and authenticated, encrypted sessions.

The flow follows the ideas of the netcode.io standard:

1. Whatever decides who may play (a matchmaker, a web backend) shares a 32-byte secret key with
   the game servers and calls :func:`make_connect_token` for a player. The token names the
   server's address, the client id and an expiry, and carries two fresh session keys (one per
   direction). Its private part is sealed with the secret key, so the client can read the keys
   but cannot read or change anything the server will trust. The backend hands the token to
   the client over a secure channel (HTTPS).
2. The client sends the private part in its padded connection request. The server opens it,
   checks expiry and address, and answers with a challenge whose cookie seals the session keys
   under a key only the server knows: the server still keeps nothing per request.
3. When the cookie comes back, the server spends the token (each token connects once) and
   creates the session. From then on every packet is sealed with ChaCha20-Poly1305 under the
   sender's direction key, with a 64-bit packet number as nonce, and the receiver drops any
   number it has already seen or that is older than its replay window.
4. A session whose client turns up at a new address (NAT rebinding, a new network) moves there
   with the first genuine packet from it, sealed under the session's keys; its ``RESUME``
   packets are keyed with a secret derived from them (:attr:`SessionCipher.resume_secret`),
   which never travels.

Needs the ``cryptography`` package (``pip install "pygase[crypto]"``); nothing here is imported
unless a secret key or a token is used.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from typing import Any

from pygase_core.errors import ProtocolError, UsageError

KEY_SIZE = 32
TAG_SIZE = 16
NONCE_SIZE = 12
TOKEN_VERSION = 1
SEAL_OVERHEAD = 8 + TAG_SIZE
"""Bytes a sealed session packet carries beyond its plain form: packet number and tag."""
REPLAY_WINDOW = 256
_PRIVATE = struct.Struct("!Q32s32s")
PRIVATE_TOKEN_SIZE = NONCE_SIZE + _PRIVATE.size + TAG_SIZE
_U64 = struct.Struct("!Q")
_TOKEN_HEAD = struct.Struct("!BQ")


def _aead(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    except ImportError:  # pragma: no cover - depends on the installation
        raise UsageError(
            "encryption needs the 'cryptography' package: pip install 'pygase[crypto]'"
        ) from None
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise UsageError(f"keys must be {KEY_SIZE} bytes")
    return ChaCha20Poly1305(key)


def generate_key() -> bytes:
    """A new random 32-byte key (for the secret shared by token issuer and servers)."""
    return os.urandom(KEY_SIZE)


def format_address(host: str, port: int) -> str:
    """The canonical text form of a server address inside tokens: ``host:port``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class ConnectToken:
    """What the client holds: the session keys in the clear, and the sealed private part."""

    server_address: str
    expires_at: int
    client_to_server_key: bytes
    server_to_client_key: bytes
    private: bytes

    def to_bytes(self) -> bytes:
        """Serialise, for handing the token to a client (e.g. base64 in a JSON response)."""
        address = self.server_address.encode()
        return (
            _TOKEN_HEAD.pack(TOKEN_VERSION, self.expires_at)
            + bytes((len(address),)) + address
            + self.client_to_server_key + self.server_to_client_key + self.private
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ConnectToken:
        """Parse a serialised token; raises ValueError if it is malformed."""
        try:
            version, expires_at = _TOKEN_HEAD.unpack_from(data)
            offset = _TOKEN_HEAD.size
            length = data[offset]
            address = data[offset + 1 : offset + 1 + length].decode()
            offset += 1 + length
            c2s = data[offset : offset + KEY_SIZE]
            s2c = data[offset + KEY_SIZE : offset + 2 * KEY_SIZE]
            private = data[offset + 2 * KEY_SIZE :]
        except (struct.error, IndexError, UnicodeDecodeError) as error:
            raise ValueError(f"malformed connect token: {error}") from None
        if version != TOKEN_VERSION or len(c2s) != KEY_SIZE or len(s2c) != KEY_SIZE or len(
            private
        ) != PRIVATE_TOKEN_SIZE:
            raise ValueError("malformed connect token")
        return cls(address, expires_at, c2s, s2c, private)


def _token_ad(server_address: str, expires_at: int) -> bytes:
    return b"pygase token" + _TOKEN_HEAD.pack(TOKEN_VERSION, expires_at) + server_address.encode()


def make_connect_token(
    secret_key: bytes,
    server_address: tuple[str, int] | str,
    client_id: int,
    *,
    now: float,
    expires_in: float = 30.0,
) -> ConnectToken:
    """Issue a token that lets one client connect once to one server before it expires.

    ``server_address`` is ``(host, port)`` as the server is bound (or its ``host:port`` text);
    ``now`` is the current Unix time (``time.time()``).
    """
    if isinstance(server_address, tuple):
        server_address = format_address(*server_address)
    if not 0 <= client_id < 2**64:
        raise ValueError("client_id must fit in 64 bits")
    expires_at = int(now + expires_in)
    c2s, s2c = generate_key(), generate_key()
    nonce = os.urandom(NONCE_SIZE)
    sealed = _aead(secret_key).encrypt(
        nonce, _PRIVATE.pack(client_id, c2s, s2c), _token_ad(server_address, expires_at)
    )
    return ConnectToken(server_address, expires_at, c2s, s2c, nonce + sealed)


@dataclass(frozen=True)
class TokenContents:
    """What a server learns from a valid token."""

    client_id: int
    client_to_server_key: bytes
    server_to_client_key: bytes
    token_id: bytes
    expires_at: int


def open_private_token(
    secret_key: bytes, server_address: str, expires_at: int, private: bytes, now: float
) -> TokenContents:
    """Check and open a token's private part; raises ProtocolError if it is not acceptable."""
    if expires_at < now:
        raise ProtocolError("connect token expired")
    if len(private) != PRIVATE_TOKEN_SIZE:
        raise ProtocolError("connect token has the wrong size")
    nonce, sealed = private[:NONCE_SIZE], private[NONCE_SIZE:]
    try:
        plain = _aead(secret_key).decrypt(nonce, sealed, _token_ad(server_address, expires_at))
    except Exception:
        raise ProtocolError("connect token is not valid for this server") from None
    client_id, c2s, s2c = _PRIVATE.unpack(plain)
    return TokenContents(client_id, c2s, s2c, nonce, expires_at)


class CookieSealer:
    """Seals session keys into a challenge cookie under a key that never leaves the server."""

    def __init__(self) -> None:
        self._aead = _aead(generate_key())

    def seal(self, contents: TokenContents, associated: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        plain = (
            _PRIVATE.pack(
                contents.client_id, contents.client_to_server_key, contents.server_to_client_key
            )
            + contents.token_id
            + _U64.pack(contents.expires_at)
        )
        return bytes(nonce + self._aead.encrypt(nonce, plain, associated))

    def open(self, cookie: bytes, associated: bytes) -> TokenContents:
        try:
            plain = self._aead.decrypt(cookie[:NONCE_SIZE], cookie[NONCE_SIZE:], associated)
        except Exception:
            raise ProtocolError("invalid challenge cookie") from None
        client_id, c2s, s2c = _PRIVATE.unpack_from(plain)
        token_id = plain[_PRIVATE.size : _PRIVATE.size + NONCE_SIZE]
        (expires_at,) = _U64.unpack_from(plain, _PRIVATE.size + NONCE_SIZE)
        return TokenContents(client_id, c2s, s2c, token_id, expires_at)


SEALED_COOKIE_SIZE = NONCE_SIZE + _PRIVATE.size + NONCE_SIZE + 8 + TAG_SIZE


def session_cipher(
    contents_or_token: TokenContents | ConnectToken, session_id: int, client_nonce: int,
    *, server: bool,
) -> SessionCipher:
    """The cipher of one session, with keys derived from the token's keys and the session.

    Deriving per session (from the server's random session id and the client's random nonce)
    means packet numbers, which restart at 0 with every session, never repeat a nonce under the
    same key, even if a token connects again (say, to a restarted server).
    """
    salt = _U64.pack(session_id) + _U64.pack(client_nonce)

    def derive(key: bytes, direction: bytes) -> bytes:
        return hashlib.blake2b(salt, key=key, person=direction, digest_size=KEY_SIZE).digest()

    c2s = derive(contents_or_token.client_to_server_key, b"pygase c2s")
    s2c = derive(contents_or_token.server_to_client_key, b"pygase s2c")
    resume = derive(contents_or_token.client_to_server_key, b"pygase resume")
    if server:
        return SessionCipher(s2c, c2s, resume_secret=resume)
    return SessionCipher(c2s, s2c, resume_secret=resume)


def _accept_nonce(accept: bytes) -> bytes:
    # Its own nonce space under the token's key (packet numbers use derived keys anyway).
    return b"\xff\xff\xff\xff" + accept[4:12]


def accept_tag(server_to_client_key: bytes, accept: bytes) -> bytes:
    """Server side: authenticate an ACCEPT, so the client knows the server holds its keys."""
    return bytes(_aead(server_to_client_key).encrypt(_accept_nonce(accept), b"", accept))


def accept_genuine(server_to_client_key: bytes, accept: bytes, tag: bytes) -> bool:
    """Client side: whether an ACCEPT carries the tag only the right server can make."""
    try:
        _aead(server_to_client_key).decrypt(_accept_nonce(accept), tag, accept)
    except Exception:
        return False
    return True


class SessionCipher:
    """Seals outgoing and opens incoming session packets of one connection.

    The plain form of a session packet is ``prefix(4) | session id(8) | body``. Its sealed form
    is ``prefix | session id | packet number(8) | encrypted body + tag``, with prefix, session
    id and packet number authenticated as associated data.
    """

    def __init__(self, send_key: bytes, receive_key: bytes, resume_secret: bytes = b"") -> None:
        self._send = _aead(send_key)
        self._receive = _aead(receive_key)
        self.resume_secret = resume_secret
        """The key of the session's ``RESUME`` MACs, derived from the session's keys."""
        self._next_number = 0
        self._highest: int | None = None
        self._seen: set[int] = set()

    @property
    def highest(self) -> int | None:
        """The highest packet number opened so far (None: none yet)."""
        return self._highest

    @staticmethod
    def _nonce(number: int) -> bytes:
        return b"\x00\x00\x00\x00" + _U64.pack(number)

    def seal(self, plain: bytes) -> bytes:
        """Encrypt one plain session datagram."""
        number = self._next_number
        self._next_number += 1
        head = plain[:12] + _U64.pack(number)
        return head + bytes(self._send.encrypt(self._nonce(number), plain[12:], head))

    def open(self, sealed: bytes) -> bytes:
        """Decrypt one sealed datagram; raises ProtocolError if forged, tampered or replayed."""
        if len(sealed) < 20 + TAG_SIZE:
            raise ProtocolError("sealed packet too short")
        head = sealed[:20]
        (number,) = _U64.unpack_from(sealed, 12)
        highest = self._highest
        if number in self._seen or (highest is not None and number + REPLAY_WINDOW <= highest):
            raise ProtocolError("replayed packet")
        try:
            body = self._receive.decrypt(self._nonce(number), sealed[20:], head)
        except Exception:
            raise ProtocolError("packet failed authentication") from None
        self._seen.add(number)
        if highest is None or number > highest:
            self._highest = highest = number
            if len(self._seen) > 2 * REPLAY_WINDOW:
                self._seen = {n for n in self._seen if n + REPLAY_WINDOW > highest}
        return head[:12] + bytes(body)
