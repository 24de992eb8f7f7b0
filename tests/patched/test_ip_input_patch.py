"""The paper's ip_input.c patchlet, brought to 6.1 (patches/), in the kernel built from it.

Run by `make test` as `pytest --pktgen-vm --pktgen-vm-kernel <patched tree> tests/patched`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_pktgen import host
from pytest_pktgen.host import netdev
from pytest_pktgen.host.netdev import sysctl
from pytest_pktgen.lab.hosts import SshLab
from pytest_pktgen.lab.rx import netstat
from pytest_pktgen.lab.topology import Endpoint, NetnsTopology

pytestmark = pytest.mark.integration


@pytest.fixture
def patched(lab, veth):
    """The sink's netstat reader; skip on a stock kernel, fail on a tree that lacks the patch."""
    columns = netstat(veth.sink.netns)
    if "PktgenRcv" not in columns:
        message = (f"kernel {lab.kernel_release} ({lab.kernel}) has no PktgenRcv counter: boot "
                   "the patched kernel (make patched-kernel; --pktgen-vm-kernel <tree>)")
        if Path(lab.kernel).is_dir():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return netstat


def test_counts_and_drops_exactly_what_pktgen_sent(veth, patched):
    sink = veth.sink
    assert patched(sink.netns)["PktgenRcv"] == 0
    veth.run(veth.config(count=10_000, pkt_size=60))
    assert patched(sink.netns)["PktgenRcv"] == 0  # off by default

    assert sysctl("net/ipv4/pktgen_rcv", 2, sink.netns) == "0"
    replies_before = sink.stats().tx_packets
    result = veth.run(veth.config(count=1_000_000, pkt_size=60))
    counts = patched(sink.netns)
    assert counts["PktgenRcv"] == counts["PktgenDrop"] == result.sent == 1_000_000
    assert sink.stats().tx_packets == replies_before  # dropped before UDP: no ICMP replies

    sysctl("net/ipv4/pktgen_rcv", 1, sink.netns)
    result = veth.run(veth.config(count=10_000, pkt_size=60))
    counts = patched(sink.netns)
    assert counts["PktgenRcv"] == 1_010_000 and counts["PktgenDrop"] == 1_000_000
    assert sink.stats().tx_packets > replies_before  # counted only: the stack answers again

    # per namespace: the generator's own counter never moved
    assert patched(veth.generator_ns)["PktgenRcv"] == 0


def test_only_pktgen_packets_are_counted(veth, patched):
    """Port 9 without pktgen's magic is not pktgen: pktgen to port 10 is not counted either."""
    sink = veth.sink
    sysctl("net/ipv4/pktgen_rcv", 2, sink.netns)
    veth.run(veth.config(count=1_000, pkt_size=60, udp_dst_min=10, udp_dst_max=10))
    assert patched(sink.netns)["PktgenRcv"] == 0


def test_patched_backend_of_the_rx_counter(veth, patched, rx_counter):
    """The same counter through the rx_counter fixture, beside interface statistics."""
    counters = [rx_counter(veth, "patched", drop=True), rx_counter(veth, "ifstats")]
    result = veth.run(veth.config(count=50_000, pkt_size=60))
    patched_count, ifstats = (c.read() for c in counters)
    assert patched_count.packets == patched_count.dropped == ifstats.packets == result.sent
    counters[0].close()
    assert sysctl("net/ipv4/pktgen_rcv", 0, veth.sink.netns) == "0"  # restored on close


def test_a_sink_that_cannot_discard_takes_the_frames_up_and_says_why(patched, veth):
    """This kernel is allnoconfig plus what the lab needs: no ingress qdisc. The topology is
    built all the same, its sink takes pktgen's frames up its stack, and it says why."""
    assert veth.discard is None and veth.sink_mode == "stack"
    assert veth.discard_error.startswith(f"no tc ingress drop on {veth.sink.ifname}: the kernel "
                                         "answered No such file or directory")
    before = patched(veth.sink.netns)["InNoECTPkts"]
    result = veth.run(veth.config(count=1_000, pkt_size=60))
    assert patched(veth.sink.netns)["InNoECTPkts"] - before == result.sent  # all up to ip_rcv


@pytest.fixture(scope="module")
def two_hosts(pktgen_module):
    """Hosts a and b (namespaces of the guest, each with its own sshd, as in
    tests/integration/test_ssh.py) joined by a cable, both connected and known by name."""
    with SshLab(["a", "b"]) as lab:
        ends = lab.cable("a", "b", ("198.18.40.1", "198.18.40.2"))
        machines = {}
        try:
            for name in ("a", "b"):
                machines[name] = lab.machine(name).connect()
                host.register(name, machines[name])
            yield lab, ends
        finally:
            for name, machine in machines.items():
                host.forget(name)
                machine.close()


@pytest.mark.pktgen(frame=64, count=20_000, rounds=1, rx="patched")
def test_the_patched_counter_on_a_sink_of_another_host(two_hosts, rx_counter, pktgen_bench):
    """pktgen on host a, the patched kernel's counter switched on in host b's namespace by b's
    agent: it counts (and drops) exactly what a sent, a's own counter nothing, and b's switch
    is put back when the counter closes; then the same through pktgen_bench."""
    lab, (end_a, end_b) = two_hosts

    def endpoint(name: str, ifname: str, ip4: str) -> Endpoint:
        mac = netdev.link_info(ifname, netns=lab.hosts[name].netns)["mac"]
        return Endpoint(ifname, None, mac, ip4, "", prefix4=30, host=name)  # its agent's own

    tx, sink = endpoint("a", end_a, "198.18.40.1"), endpoint("b", end_b, "198.18.40.2")
    topo = NetnsTopology("cable", None, [tx], sink, [sink], generator_host="a")
    a_ns, b_ns = lab.hosts["a"].netns, lab.hosts["b"].netns
    switch = "/proc/sys/net/ipv4/pktgen_rcv"
    counter = rx_counter(topo, "patched", drop=True)
    assert host.on(b_ns).read_text(switch).strip() == "2"  # count and drop, in b's namespace
    result = topo.run(topo.config(count=10_000, pkt_size=60))
    counted = counter.settled(result.sent)
    assert counted.packets == counted.dropped == result.sent == 10_000
    counter.close()
    assert host.on(b_ns).read_text(switch).strip() == "0"

    before = netstat(b_ns)["PktgenRcv"]
    row = pktgen_bench(topo).row
    assert (row.rx_backend, row.device["host"]) == ("patched", "a")
    assert row.received == row.sent == 20_000 == netstat(b_ns)["PktgenRcv"] - before
    assert netstat(a_ns)["PktgenRcv"] == 0
