"""Connect tokens and encrypted sessions: what a token holder can do, and what nobody else can."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pygase_core import Client, GameState, GameStateStore, GameStateUpdate, Server
from pygase_core.errors import ProtocolError, TokenRejectedError
from pygase_core.protocol.crypto import (
    ConnectToken,
    SessionCipher,
    format_address,
    generate_key,
    make_connect_token,
)
from pygase_core.protocol.endpoint import ClientEndpoint, ServerEndpoint
from tests.waiting import wait_for

SECRET = bytes(range(32))


@pytest.fixture
def secure_server() -> Iterator[Server]:
    server = Server(GameStateStore(GameState(secret="only for token holders")), secret_key=SECRET)
    server.run_in_thread(hostname="127.0.0.1")
    yield server
    server.shutdown()


def token_for(server: Server, client_id: int = 1, **options: float) -> ConnectToken:
    assert server.port
    return make_connect_token(
        SECRET, ("127.0.0.1", server.port), client_id, now=time.time(), **options
    )


def test_token_round_trips_through_bytes() -> None:
    token = make_connect_token(SECRET, "example.org:9000", 7, now=1000.0, expires_in=60)
    assert ConnectToken.from_bytes(token.to_bytes()) == token
    assert token.expires_at == 1060
    with pytest.raises(ValueError):
        ConnectToken.from_bytes(token.to_bytes()[:-1])
    assert format_address("::1", 5) == "[::1]:5"


def test_encrypted_session_syncs_state_and_events(secure_server: Server) -> None:
    seen: list[str] = []
    secure_server.register_event_handler("HI", seen.append)
    assert secure_server.port
    client = Client()
    client.connect_in_thread(secure_server.port, "127.0.0.1",
                             connect_token=token_for(secure_server).to_bytes())
    try:
        def secret() -> object:
            with client.access_game_state() as state:
                return getattr(state, "secret", None)

        wait_for(lambda: secret() == "only for token holders")
        client.dispatch_event("HI", "there", retries=3)
        wait_for(lambda: seen == ["there"])
        store = secure_server.game_state_store
        store.push_update(GameStateUpdate(store.time_order + 1, secret="changed"))
        wait_for(lambda: secret() == "changed")
    finally:
        client.disconnect()


@pytest.mark.parametrize("case", ["tampered", "expired", "other server", "no token"])
def test_bad_tokens_are_refused(secure_server: Server, case: str) -> None:
    assert secure_server.port
    token: ConnectToken | None = token_for(secure_server)
    if case == "tampered":
        assert token is not None
        private = bytearray(token.private)
        private[20] ^= 1
        token = ConnectToken(token.server_address, token.expires_at, token.client_to_server_key,
                             token.server_to_client_key, bytes(private))
    elif case == "expired":
        token = token_for(secure_server, expires_in=-5)
    elif case == "other server":
        token = make_connect_token(SECRET, ("127.0.0.1", secure_server.port + 1), 1,
                                   now=time.time())
    else:
        token = None
    with pytest.raises(TokenRejectedError):
        Client(connect_timeout=3).connect_in_thread(
            secure_server.port, "127.0.0.1", connect_token=token)
    assert not secure_server.connections


def test_a_token_connects_only_once(secure_server: Server) -> None:
    assert secure_server.port
    token = token_for(secure_server)
    first = Client()
    first.connect_in_thread(secure_server.port, "127.0.0.1", connect_token=token)
    try:
        with pytest.raises(TokenRejectedError):
            Client(connect_timeout=3).connect_in_thread(
                secure_server.port, "127.0.0.1", connect_token=token)
    finally:
        first.disconnect()


def test_a_token_from_another_secret_is_refused(secure_server: Server) -> None:
    assert secure_server.port
    forged = make_connect_token(generate_key(), ("127.0.0.1", secure_server.port), 1,
                                now=time.time())
    with pytest.raises(TokenRejectedError):
        Client(connect_timeout=3).connect_in_thread(
            secure_server.port, "127.0.0.1", connect_token=forged)


def handshake() -> tuple[ServerEndpoint, ClientEndpoint, tuple[str, int]]:
    """A server and a client endpoint, wired by hand in memory, through the token handshake."""
    now = 50.0
    address = ("10.0.0.5", 7000)
    server = ServerEndpoint(now, secret_key=SECRET, address_text="10.0.0.1:4000",
                            unix_offset=1_000_000.0)
    token = make_connect_token(SECRET, "10.0.0.1:4000", 3, now=1_000_000.0 + now)
    client = ClientEndpoint(now, token=token)
    to_server = client.start(now)
    for _ in range(4):
        to_client = []
        for datagram in to_server:
            out, _ = server.datagram_received(datagram, address, now)
            to_client += [d for d, _ in out]
        to_server = []
        for datagram in to_client:
            out, _ = client.datagram_received(datagram, now)
            to_server += out
    assert client.connection is not None and address in server.connections
    return server, client, address


def test_tampered_forged_and_replayed_packets_are_dropped() -> None:
    server, client, address = handshake()
    now = 51.0
    connection = client.connection
    assert connection is not None
    connection.queue_event(b"\x93\xa1E\x90\x80", retries=0)
    *resume, sealed = client.poll(now + 1)[0] or [b""]
    assert sealed and len(resume) == 1  # the server was silent for a second: a RESUME first
    tampered = bytearray(sealed)
    tampered[-1] ^= 0x80
    server.datagram_received(bytes(tampered), address, now)
    assert server.drops["failed authentication"] == 1
    _, events = server.datagram_received(sealed, address, now)
    assert events  # the genuine packet is accepted (its event arrives)
    server.datagram_received(sealed, address, now)  # a replay
    assert server.drops["failed authentication"] == 2
    plain_forgery = sealed[:12] + sealed[20:]  # right session id, no valid seal
    server.datagram_received(plain_forgery, address, now)
    assert server.drops["failed authentication"] == 3


def test_session_cipher_rejects_replays_outside_the_window() -> None:
    key_a, key_b = generate_key(), generate_key()
    sender, receiver = SessionCipher(key_a, key_b), SessionCipher(key_b, key_a)
    header = b"PG\x01\x06" + bytes(8)
    packets = [sender.seal(header + i.to_bytes(2, "big")) for i in range(300)]
    assert receiver.open(packets[299]) == header + (299).to_bytes(2, "big")
    assert receiver.open(packets[100]) == header + (100).to_bytes(2, "big")  # late, in the window
    with pytest.raises(ProtocolError):
        receiver.open(packets[100])  # replay
    with pytest.raises(ProtocolError):
        receiver.open(packets[10])  # too old to tell


def test_every_session_has_keys_of_its_own() -> None:
    """A token that connects twice (say, to a restarted server) never reuses a nonce and key."""
    from pygase_core.protocol.crypto import session_cipher

    token = make_connect_token(SECRET, "10.0.0.1:4000", 3, now=1000.0)
    plain = b"PG\x01\x06" + bytes(8) + b"same body, packet number 0"
    first = session_cipher(token, session_id=1, client_nonce=7, server=False).seal(plain)
    second = session_cipher(token, session_id=2, client_nonce=7, server=False).seal(plain)
    assert first[20:] != second[20:]
    server_side = session_cipher(token, session_id=1, client_nonce=7, server=True)
    assert server_side.open(first) == plain
    with pytest.raises(ProtocolError):
        session_cipher(token, session_id=2, client_nonce=7, server=True).open(first)
