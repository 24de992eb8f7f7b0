"""pgrx's /proc/net/pgrx, as captured from a real run (10000 frames, every 7th dropped)."""

from __future__ import annotations

from pathlib import Path

from pytest_pktgen.lab.latency import sampled
from pytest_pktgen.lab.rx import parse_pgrx

CAPTURED = Path(__file__).parents[1] / "data" / "captured"


def test_parse_pgrx_capture():
    count = parse_pgrx((CAPTURED / "pgrx-veth-every7th-dropped.txt").read_text())
    dropped_by_nft = -(-10_000 // 7)  # numgen 0, 7, 14, ...: the first frame is dropped too
    assert count.backend == "kmod"
    assert count.packets == count.pktgen == 10_000 - dropped_by_nft
    assert count.bytes == count.packets * 60 and count.dropped == 0
    (stream,) = count.streams
    assert (stream.first, stream.highest) == (2, 10_000)  # seq 1 was the first dropped
    assert stream.lost() == stream.lost(sent=10_000) == dropped_by_nft
    assert stream.duplicates == stream.late == stream.beyond_window == 0
    assert stream.sport == 9  # pktgen's default source port: one thread
    assert count.other == {"other": 0, "fragments": 0, "gro": 0, "streams_overflow": 0}
    latency = count.latency  # one sample per packet, in buckets exact below 256 us
    assert latency.samples == count.packets == sum(latency.buckets.values())
    assert latency.min_us == min(latency.buckets) and latency.max_us >= max(latency.buckets)
    assert latency.min_us <= latency.avg_us <= latency.max_us
    pct = latency.percentiles()
    assert latency.min_us <= pct["p50"] <= pct["p99"] <= pct["p99.9"] <= pct["max"]


def test_lost_with_clones():
    from pytest_pktgen.lab.rx import Stream

    # clone_skb 10, 20000 packets: headers 1, 11, ... 19991; one header (10 packets) missing
    stream = Stream(3, "02:50:47:00:00:01", 9, 1, 19991, 19990, 1999, 17991, 0, 0)
    assert stream.lost(repeat=10) == 1 and stream.lost(repeat=10, sent=20_000) == 1


def test_a_devices_account_gathers_its_streams_by_mac_and_source_port():
    from dataclasses import replace

    from pytest_pktgen.lab.rx import StreamAccount, account

    count = parse_pgrx((CAPTURED / "pgrx-veth-every7th-dropped.txt").read_text())
    (stream,) = count.streams
    dropped_by_nft = -(-10_000 // 7)
    got = account(count.streams, stream.mac.upper(), range(9, 10), 10_000)
    assert got == StreamAccount(sent=10_000, received=10_000 - dropped_by_nft,
                                lost=dropped_by_nft, duplicates=0, late=0, streams=1)
    # a router rewrote the source MAC: no stream carries the device's, so its ports decide
    assert account(count.streams, "02:00:00:00:00:09", range(9, 10), 10_000) == got
    # another device: another MAC beside this one's stream, or other ports
    other = replace(stream, mac="02:00:00:00:00:09", unique=10, received=10)
    assert account([stream, other], "02:00:00:00:00:09", range(9, 10), 10) == StreamAccount(
        sent=10, received=10, lost=0, duplicates=0, late=0, streams=1)
    assert account(count.streams, stream.mac, range(10, 11), 500).lost == 500
    # flows: one device's sequence numbers spread over its ports, which add up
    flows = [replace(stream, sport=1024 + n, unique=250, received=250) for n in range(4)]
    assert account(flows, stream.mac, range(1024, 1028), 1_000) == StreamAccount(
        sent=1_000, received=1_000, lost=0, duplicates=0, late=0, streams=4)
    # clone_skb 10: a header counts once
    assert account(flows, stream.mac, range(1024, 1028), 10_000, repeat=10).lost == 0
    assert got + got == StreamAccount(*(2 * v for v in (10_000, 10_000 - dropped_by_nft,
                                                        dropped_by_nft, 0, 0, 1)))


def test_what_two_sinks_counted_over_one_run_adds_up():
    """Two generators' sinks, one backend: counts added, streams side by side, latencies
    merged (every sample of both)."""
    from pytest_pktgen.lab.rx import summed

    one = parse_pgrx((CAPTURED / "pgrx-veth-every7th-dropped.txt").read_text())
    both = summed([one, one])
    assert (both.backend, both.packets, both.bytes, both.pktgen, both.dropped) == (
        "kmod", 2 * one.packets, 2 * one.bytes, 2 * one.pktgen, 0)
    assert both.streams == one.streams * 2 and both.other == {k: 2 * v for k, v in
                                                             one.other.items()}
    assert both.latency.samples == 2 * one.latency.samples
    assert both.latency.percentiles()["p50"] == one.latency.percentiles()["p50"]


def test_parse_pgrx_sampled_capture():
    """10,000 frames, latency sampled at one sequence number in 16: the numbers pgrx's hash
    picks, exactly (the same rule as :func:`sampled`)."""
    count = parse_pgrx((CAPTURED / "pgrx-veth-latency-every16.txt").read_text())
    (stream,) = count.streams
    assert (stream.first, stream.highest, stream.unique) == (1, 10_000, 10_000)
    latency = count.latency
    assert latency.every == 16 and latency.future == 0
    assert latency.samples == sum(sampled(seq, 16) for seq in range(1, 10_001))
    assert latency.samples == sum(latency.buckets.values()) < count.packets // 15
    assert parse_pgrx((CAPTURED / "pgrx-veth-every7th-dropped.txt").read_text()).latency.every \
        == 1  # captured before pgrx sampled: every number, as it did
