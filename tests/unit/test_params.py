"""Typed device configuration: every bad value refused before anything reaches the kernel."""

from __future__ import annotations

import pytest

from pytest_pktgen import DeviceConfig, PktgenConfigError, PktgenRun
from pytest_pktgen.pktgen.proc import Pktgen
from pytest_pktgen.run import runner

# (device, params, flags, the parameter the error must name, a fragment of what is allowed)
BAD = [
    ("eth1", {"count": "abc"}, (), "count", "whole number"),
    ("eth1", {"count": -1}, (), "count", "whole number"),
    ("eth1", {"count": 10**10}, (), "count", "9999999999"),
    ("eth1", {"count": 1.5}, (), "count", "whole number"),
    ("eth1", {"count": True}, (), "count", "whole number"),
    ("eth1", {"pkt_size": 41}, (), "pkt_size", "42"),
    ("eth1", {"pkt_size": 70000}, (), "pkt_size", "65535"),
    ("eth1", {"min_pkt_size": 500, "max_pkt_size": 100}, (), "max_pkt_size", "at least"),
    ("eth1", {"pkt_size": 60, "min_pkt_size": 60}, (), "pkt_size", "not both"),
    ("eth1", {"frags": 18}, (), "frags", "17"),
    ("eth1", {"delay": 2**31}, (), "delay", "2147483647"),
    ("eth1", {"rate": 0}, (), "rate", "1 to"),
    ("eth1", {"ratep": 0}, (), "ratep", "1 to"),
    ("eth1", {"rate": 100, "ratep": 1000}, (), "rate", "not both"),
    ("eth1", {"ratep": 1000, "delay": 10}, (), "delay", "rate/ratep"),
    # rate is Mb/s: pktgen derives its delay from the frame size known when rate is written
    ("eth1", {"rate": 100}, (), "rate", "together with pkt_size"),
    ("eth1", {"rate": 100, "min_pkt_size": 60, "max_pkt_size": 1500}, (), "rate", "ratep"),
    ("eth1", {"rate": 100, "pkt_size": 60, "imix_weights": "60,1"}, (), "rate", "vary"),
    ("eth1", {"dst6": "fe80::1%eth1"}, (), "dst6", "without a zone"),
    ("eth1", {"src6": "2001:2::1%2"}, (), "src6", "ignores the zone"),
    ("eth1", {"udp_src_min": 70000}, (), "udp_src_min", "65535"),
    ("eth1", {"udp_dst_min": 100, "udp_dst_max": 10}, (), "udp_dst_max", "at least"),
    ("eth1", {"clone_skb": -5}, (), "clone_skb", "whole number"),
    ("eth1", {"clone_skb": 10, "xmit_mode": "netif_receive"}, (), "clone_skb", "netif_receive"),
    ("eth1", {"clone_skb": 10, "imix_weights": "60,1"}, (), "clone_skb", "imix"),
    ("eth1", {"burst": 0}, (), "burst", "1 to"),
    ("eth1", {"burst": 8, "xmit_mode": "queue_xmit"}, (), "burst", "queue_xmit"),
    ("eth1", {"xmit_mode": "fast"}, (), "xmit_mode", "start_xmit"),
    ("eth1", {"dst": "10.0.0.256"}, (), "dst", "IPv4"),
    ("eth1", {"dst_min": "fe80::1"}, (), "dst_min", "IPv4"),
    ("eth1", {"src_min": "198.18.0"}, (), "src_min", "IPv4"),
    ("eth1", {"dst6": "2001:2::g"}, (), "dst6", "IPv6"),
    ("eth1", {"dst6": "2001:2::2", "dst": "198.18.0.2"}, (), "dst6", "not both"),
    ("eth1", {"src6_min": "2001:2::1"}, (), "src6_min", "no src6 range"),
    ("eth1", {"dst_min6": "2001:2::1"}, (), "dst_min6", "dst6_min"),
    ("eth1", {"dstmac": "02:00:00:00:00:01"}, (), "dstmac", "dst_mac"),
    ("eth1", {"dst_mac": "02-00-00-00-00-01"}, (), "dst_mac", "colon"),
    ("eth1", {"dst_mac": "02:00:00:00:00"}, (), "dst_mac", "six"),
    ("eth1", {"src_mac": "zz:00:00:00:00:01"}, (), "src_mac", "hex"),
    ("eth1", {"flows": 65537}, (), "flows", "65536"),
    ("eth1", {"queue_map_min": 3, "queue_map_max": 1}, (), "queue_map_max", "at least"),
    ("eth1", {"vlan_id": 4096}, (), "vlan_id", "4095"),
    ("eth1", {"vlan_p": 3}, (), "vlan_p", "vlan_id"),
    ("eth1", {"vlan_id": 5, "vlan_p": 8}, (), "vlan_p", "0 to 7"),
    ("eth1", {"vlan_id": 5, "vlan_cfi": 2}, (), "vlan_cfi", "0 to 1"),
    ("eth1", {"mpls": ["1"] * 17}, (), "mpls", "16"),
    ("eth1", {"mpls": "xyz"}, (), "mpls", "MPLS"),
    ("eth1", {"mpls": "0001000a", "vlan_id": 3}, (), "mpls", "not both"),
    ("eth1", {"tos": "f00"}, (), "tos", "two hex digits"),
    ("eth1", {"tos": 256}, (), "tos", "0..255"),
    ("eth1", {"traffic_class": "gg"}, (), "traffic_class", "hex"),
    ("eth1", {"imix_weights": [(60, 1)] * 21}, (), "imix_weights", "20"),
    ("eth1", {"imix_weights": "60:1"}, (), "imix_weights", "pairs"),
    ("eth1", {"imix_weights": [(30, 1)]}, (), "imix_weights", "42"),
    ("eth1", {"imix_weights": [(60, 0)]}, (), "imix_weights", "1 to"),
    ("eth1", {"skb_priority": 10**9}, (), "skb_priority", "999999999"),
    ("eth1", {"node": -1}, (), "node", "whole number"),
    ("eth1", {}, ("IPV6",), "flag", "dst6"),
    ("eth1", {}, ("NODE_ALLOC",), "flag", "NODE"),
    ("eth1", {}, ("UDPSRC_RANDOM",), "flag", "UDPSRC_RND"),
    ("eth1", {}, ("udpcsum",), "flag", "UDPCSUM"),
    ("", {"count": 1}, (), "device", "interface name"),
    ("@0", {"count": 1}, (), "device", "interface name"),
    ("a-very-long-interface-name", {}, (), "device", "interface name"),
    ("eth1@" + "x" * 30, {}, (), "device", "31"),
    ("eth 1", {}, (), "device", "interface name"),
    ("../pgctrl", {}, (), "device", "interface name"),
]


@pytest.mark.parametrize("device, params, flags, param, allowed", BAD,
                         ids=[f"{b[3]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_is_refused_before_the_kernel(device, params, flags, param, allowed):
    with pytest.raises(PktgenConfigError) as info:
        DeviceConfig(device, params, flags)
    err = info.value
    assert err.param == param
    assert allowed in str(err)
    text = str(err)
    assert repr(err.value) in text  # the message quotes the refused value
    assert f"pktgen parameter {param!r}" in text


def test_at_least_forty_bad_inputs():
    assert len(BAD) >= 40


def test_bad_config_never_reaches_a_kernel(tmp_path):
    """A run refuses before touching any file: the proc dir here does not even exist."""
    pg = Pktgen(tmp_path / "no-such-proc-dir")
    with pytest.raises(PktgenConfigError, match="count 0 together with a duration"):
        PktgenRun([DeviceConfig("eth1", {"count": 0})], pktgen=pg)
    with pytest.raises(PktgenConfigError, match="each pktgen device once"):
        PktgenRun([DeviceConfig("eth1", {}), DeviceConfig("eth1", {}, thread=1)], pktgen=pg)
    with pytest.raises(PktgenConfigError, match="would only ever run the last one added"):
        PktgenRun([DeviceConfig("eth1", {"count": 0}), DeviceConfig("eth2", {"count": 0})],
                  pktgen=pg, duration=1)
    PktgenRun([DeviceConfig("eth1", {"count": 0, "ratep": 10}),  # paced devices share a thread
               DeviceConfig("eth2", {"count": 0, "delay": 10})], pktgen=pg, duration=1)
    with pytest.raises(PktgenConfigError, match="above 0"):
        PktgenRun([DeviceConfig("eth1", {})], pktgen=pg, duration=0)
    assert not (tmp_path / "no-such-proc-dir").exists()


def test_commands_are_rendered_in_a_safe_order():
    config = DeviceConfig("eth1@2", {
        "ratep": 1000, "flows": 8, "pkt_size": "60", "dst": " 198.18.0.2 ",
        "dst_mac": "02:AB:00:00:00:01", "mpls": [0x1000A, "2000a"], "tos": 0x10,
        "imix_weights": "64,7 594,4", "count": 100,
    }, flags=["UDPCSUM", "!FLOW_RND"], thread=2)
    assert config.netdev == "eth1"
    assert config.commands() == [
        "count 100", "pkt_size 60", "imix_weights 64,7 594,4", "dst 198.18.0.2",
        "dst_mac 02:ab:00:00:00:01", "flows 8", "mpls 0001000a,0002000a", "tos 10",
        "ratep 1000",  # after pkt_size: rate/ratep derive the delay from it at write time
        "flag UDPCSUM", "flag !FLOW_RND",
    ]


def test_xmit_mode_comes_before_burst_and_clone_skb():
    """The kernel checks burst against the mode in force: burst first would be refused on veth."""
    config = DeviceConfig("eth1", {"burst": 4, "count": 1, "xmit_mode": "netif_receive"})
    assert config.commands() == ["xmit_mode netif_receive", "count 1", "burst 4"]


def test_vlan_bits_follow_vlan_id():
    config = DeviceConfig("eth1", {"svlan_p": 2, "vlan_p": 1, "svlan_id": 7, "vlan_id": 5})
    assert config.commands() == ["vlan_id 5", "vlan_p 1", "svlan_id 7", "svlan_p 2"]


def test_ipv6_and_flag_clear_are_accepted():
    config = DeviceConfig("eth1", {"dst6": "2001:0002:0::2", "src6": "2001:2::1"}, ["!IPV6"])
    assert config.commands() == ["dst6 2001:2::2", "src6 2001:2::1", "flag !IPV6"]


@pytest.mark.parametrize("params, seconds", [
    ({"count": 1_000_000, "ratep": 10_000}, 100),
    ({"count": 1_000_000, "delay": 100_000}, 100),  # 100 us between transmits
    ({"count": 1_000_000, "delay": 400_000, "burst": 4}, 100),  # a burst of 4 per delay
    ({"count": 125_000, "rate": 10, "pkt_size": 1000}, 100),  # 10 Mb/s of 8000-bit packets
    ({"count": 500_000}, 500_000 / runner.SLOWEST_PPS),  # unpaced: the slowest lab device
])
def test_the_default_deadline_follows_the_pace_asked(params, seconds):
    """A paced run of 100 s must not get a deadline shorter than that (delay, rate and burst
    included, not only ratep)."""
    config = DeviceConfig("eth9", params)
    assert runner.expected_seconds(config) == pytest.approx(seconds)
    run = runner.PktgenRun([config], pktgen=Pktgen("/nonexistent"))
    assert run.timeout == pytest.approx(2 * seconds + 30)
    assert run.timeout > seconds
