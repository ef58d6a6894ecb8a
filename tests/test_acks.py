"""Sequence numbers across wrap-around, the receive window and ack bookkeeping."""

from __future__ import annotations

from pygase_core.protocol.acks import (
    CongestionControl,
    ConnectionStats,
    ReceiveWindow,
    SentBuffer,
    SentPacket,
    sequence_distance,
    sequence_newer,
)


def test_sequence_comparison_wraps() -> None:
    assert sequence_newer(1, 0)
    assert sequence_newer(0, 65535)
    assert sequence_newer(10, 65530)
    assert not sequence_newer(65530, 10)
    assert not sequence_newer(5, 5)
    assert sequence_distance(2, 65534) == 4
    assert sequence_distance(65534, 2) == -4


def test_receive_window_acks_across_wrap_and_rejects_duplicates() -> None:
    window = ReceiveWindow()
    for sequence in [65533, 65534, 65535, 0, 2]:
        assert window.record(sequence)
    assert not window.record(65535)  # duplicate
    ack, bits = window.ack_fields()
    assert ack == 2
    # 1 missing (bit 0), then 0, 65535, 65534, 65533 present (bits 1..4)
    assert bits & 0b11111 == 0b11110
    assert window.record(1)  # late but inside the window
    assert window.ack_fields()[1] & 1
    assert not window.record((2 - 40) % 65536)  # too old to tell: refused


def test_sent_buffer_turns_ack_bits_into_deliveries_across_wrap() -> None:
    buffer = SentBuffer()
    for sequence in [65534, 65535, 0, 1]:
        buffer.add(sequence, SentPacket(sent_at=0.0, size=10, items=[sequence]))
    acked = [p.items[0] for p in buffer.acknowledge(1, 0b101)]  # 1, 0 and 65534
    assert sorted(acked) == [0, 1, 65534]
    assert len(buffer) == 1
    assert [p.items[0] for p in buffer.expire(now=5.0)] == [65535]


def test_stats_smooth_rtt_and_loss() -> None:
    stats = ConnectionStats()
    stats.add_rtt_sample(0.1)
    assert stats.rtt == 0.1
    for _ in range(100):
        stats.add_rtt_sample(0.02)
    assert stats.rtt is not None and abs(stats.rtt - 0.02) < 0.001
    for i in range(200):
        stats.add_delivery(lost=i % 5 == 0, now=i * 0.02)
    assert 0.1 < stats.packet_loss < 0.3
    assert stats.packets_lost == 40


def test_congestion_backs_off_and_recovers_after_a_good_period() -> None:
    control = CongestionControl()
    stats = ConnectionStats()
    stats.add_rtt_sample(0.4)
    control.update(stats, 0.0)
    assert not control.good
    assert control.send_interval(0.0) == CongestionControl.BAD_INTERVAL
    stats.rtt = 0.01
    control.update(stats, 0.5)
    assert not control.good  # not good for long enough yet
    control.update(stats, 3.0)
    assert control.good
    assert control.send_interval(0.0) == 0.0
