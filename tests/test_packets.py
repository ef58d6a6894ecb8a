"""The wire format: round trips, padding rules, a decoder that raises only ProtocolError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pygase_core.errors import ProtocolError
from pygase_core.protocol import packets
from pygase_core.protocol.packets import (
    HANDSHAKE_SIZE,
    MAX_DATAGRAM_SIZE,
    Accept,
    Challenge,
    Data,
    Disconnect,
    DisconnectReason,
    EventFloor,
    EventFragment,
    Reject,
    RejectReason,
    Request,
    Response,
    Resume,
    ResumePrompt,
    StateFragment,
    StateReport,
    decode,
)

COOKIE = bytes(range(24))
SECRET = bytes(range(100, 116))
CHALLENGE = bytes(range(8))


def valid_datagrams() -> list[bytes]:
    header = packets.encode_data_header(0xDEADBEEF, 65535, 7, 0xF0F0F0F0)
    return [
        packets.encode_request(42),
        packets.encode_challenge(42, COOKIE),
        packets.encode_response(42, COOKIE),
        packets.encode_accept(42, 99, True, SECRET),
        packets.encode_reject(42, RejectReason.SERVER_FULL),
        packets.encode_disconnect(99, DisconnectReason.SHUTDOWN_REQUEST),
        header
        + packets.encode_state_report(12)
        + packets.encode_event_floor(3)
        + packets.encode_state_fragment(packets.FULL_STATE, 12, 1, 3, b"abc")
        + packets.encode_event_fragment(5, 0, 1, b"xyz"),
        packets.encode_resume(99, 7, CHALLENGE, SECRET),
        packets.encode_resume_prompt(99, CHALLENGE),
        packets.encode_accept(42, 99, False, None) + bytes(16),
    ]


def test_round_trip_of_every_packet_type() -> None:
    decoded = [decode(d) for d in valid_datagrams()]
    assert decoded[0] == Request(42)
    assert decoded[1] == Challenge(42, COOKIE)
    assert decoded[2] == Response(42, COOKIE)
    assert decoded[3] == Accept(42, 99, True, resume_secret=SECRET)
    assert decoded[4] == Reject(42, RejectReason.SERVER_FULL)
    assert decoded[5] == Disconnect(99, DisconnectReason.SHUTDOWN_REQUEST)
    assert decoded[6] == Data(
        0xDEADBEEF, 65535, 7, 0xF0F0F0F0,
        (
            StateReport(12),
            EventFloor(3),
            StateFragment(packets.FULL_STATE, 12, 1, 3, b"abc"),
            EventFragment(5, 0, 1, b"xyz"),
        ),
    )
    mac = packets.resume_mac(SECRET, 99, 7, CHALLENGE)
    assert decoded[7] == Resume(99, 7, CHALLENGE, mac)
    assert decoded[8] == ResumePrompt(99, CHALLENGE)
    assert decoded[9] == Accept(42, 99, False, tag=bytes(16))
    assert packets.resume_mac(SECRET, 99, 8, CHALLENGE) != mac
    assert packets.resume_mac(bytes(16), 99, 7, CHALLENGE) != mac


def test_handshake_requests_are_padded_and_answers_are_smaller() -> None:
    request = packets.encode_request(1)
    response = packets.encode_response(1, COOKIE)
    assert len(request) == len(response) == HANDSHAKE_SIZE <= MAX_DATAGRAM_SIZE
    answers = [
        packets.encode_challenge(1, COOKIE),
        packets.encode_accept(1, 2, False, SECRET),
        packets.encode_reject(1, RejectReason.VERSION_MISMATCH),
    ]
    assert all(len(answer) < HANDSHAKE_SIZE for answer in answers)
    with pytest.raises(ProtocolError):
        decode(request[:-1])  # an unpadded request is refused


def test_truncations_of_valid_packets_raise_protocol_error() -> None:
    for datagram in valid_datagrams():
        for cut in range(len(datagram) - 1, 0, -7):
            truncated = datagram[:cut]
            try:
                decode(truncated)
            except ProtocolError:
                continue
            # Only a data packet cut exactly at a message boundary is still valid.
            assert truncated[3] == packets.PacketType.DATA


def test_foreign_magic_version_and_oversize_are_refused() -> None:
    request = bytearray(packets.encode_request(1))
    with pytest.raises(ProtocolError):
        decode(b"XX" + bytes(request[2:]))
    request[2] = 99
    with pytest.raises(ProtocolError, match="version"):
        decode(bytes(request))
    with pytest.raises(ProtocolError):
        decode(bytes(MAX_DATAGRAM_SIZE + 1))


def test_a_resume_prompt_is_smaller_than_any_client_data_packet() -> None:
    smallest = packets.encode_data_header(1, 0, 0, 0) + packets.encode_state_report(0) + (
        packets.encode_event_floor(0)
    )
    assert len(packets.encode_resume_prompt(1, CHALLENGE)) < len(smallest)


def test_fragment_index_must_be_below_count() -> None:
    header = packets.encode_data_header(1, 0, 0, 0)
    with pytest.raises(ProtocolError):
        decode(header + packets.encode_event_fragment(0, 2, 2, b""))


@settings(derandomize=True, max_examples=2000, deadline=None)
@given(st.binary(max_size=1300))
def test_decoder_raises_only_protocol_error_on_random_bytes(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(data)


@settings(derandomize=True, max_examples=2000, deadline=None)
@given(
    st.sampled_from(valid_datagrams()),
    st.lists(st.tuples(st.integers(0, 1199), st.integers(0, 255)), max_size=8),
)
def test_decoder_raises_only_protocol_error_on_mutated_packets(
    datagram: bytes, flips: list[tuple[int, int]]
) -> None:
    mutated = bytearray(datagram)
    for position, value in flips:
        if position < len(mutated):
            mutated[position] = value
    with contextlib.suppress(ProtocolError):
        decode(bytes(mutated))
