"""scapy in the sink's namespace: the frames look as configured (a sample, never a count)."""

from __future__ import annotations

import pytest

from pytest_pktgen.lab.sniff import PKTGEN_MAGIC, check
from pytest_pktgen.measurement.point import FLOW_PORT_BASE, Point

pytestmark = pytest.mark.integration

COUNT = 2_000
RATE = {"ratep": 2_000}  # slow enough for a sniffer under TCG to see a good share
SAMPLE = 100  # enough frames to judge the fields by; scapy misses many, and says so
LIMIT = 3 * SAMPLE  # frames kept: scapy takes ~10 ms a frame to dissect under TCG


def test_ipv4_range_config(veth, sniffer):
    config = veth.config(count=COUNT, pkt_size=124, dst_min="198.18.0.10", dst_max="198.18.0.50",
                         udp_src_min=1000, udp_src_max=1100, tos="b8",
                         flags=["IPDST_RND", "UDPSRC_RND"], **RATE)
    assert "dst" not in config.params  # a range given: no single dst filled in
    sniff = sniffer(veth, limit=LIMIT)
    result = veth.run(config)
    report = check(sniff.stop(), config, result.sent, veth.tx[0].mac)
    assert report.problems == []
    assert len(report.frames) >= SAMPLE, f"captured only {len(report.frames)} of {COUNT}"
    assert report.missed == result.sent - len(report.frames)
    print(f"captured {len(report.frames)} of {result.sent}, missed {report.missed}")
    frames = report.frames
    assert {f.length for f in frames} == {124}
    assert all(f.magic == PKTGEN_MAGIC for f in frames)
    assert len({f.dst_ip for f in frames}) > 10  # random over the range, not one address
    assert len({f.sport for f in frames}) > 10


@pytest.mark.parametrize("veth", [{"ipv6": True}], indirect=True)
def test_a_flows_point_sends_exactly_its_flows(veth, sniffer):
    """``pktgen_sweep(flows=8)``: 8 distinct 5-tuples at the sink, taken in turn (each frame's
    UDP source port follows from its sequence number), over IPv4 and IPv6 alike."""
    for ipv6 in (False, True):
        config = veth.config(count=400, ipv6=ipv6, **Point(frame=128, flows=8).params(), **RATE)
        sniff = sniffer(veth)
        result = veth.run(config)
        report = check(sniff.stop(), config, result.sent, veth.tx[0].mac)
        assert report.problems == []
        assert len(report.frames) >= 40, f"captured only {len(report.frames)} of 400"
        flows = {(f.src_ip, f.dst_ip, f.sport, f.dport) for f in report.frames}
        assert len(flows) == 8, ipv6
        assert {f.sport for f in report.frames} == set(range(FLOW_PORT_BASE, FLOW_PORT_BASE + 8))
        assert len({(f.sport - FLOW_PORT_BASE - f.seq) % 8 for f in report.frames}) == 1


@pytest.mark.parametrize("veth", [{"ipv6": True}], indirect=True)
def test_ipv6_config(veth, sniffer):
    config = veth.config(count=COUNT, pkt_size=200, ipv6=True, traffic_class="2e",
                         flags=["UDPCSUM"], **RATE)
    sniff = sniffer(veth, limit=LIMIT)
    result = veth.run(config)
    report = check(sniff.stop(), config, result.sent, veth.tx[0].mac)
    assert report.problems == []
    assert len(report.frames) >= SAMPLE
    assert {f.dst_ip for f in report.frames} == {"2001:2::2"}
    assert {f.length for f in report.frames} == {200}


def test_check_finds_what_differs(veth, sniffer):
    """The checker is not a rubber stamp: frames of one config checked against another."""
    sent_config = veth.config(count=500, pkt_size=60, **RATE)
    sniff = sniffer(veth)
    result = veth.run(sent_config)
    other = veth.config(count=500, pkt_size=100, udp_dst_min=9, tos=16)
    report = check(sniff.stop(), other, result.sent, "02:00:00:00:00:01")
    text = "\n".join(report.problems)
    assert "length 60, asked 100..100" in text and "src MAC" in text and "TOS 0x00" in text
