"""Each topology carries a pktgen run end to end: frames sent equal frames received."""

from __future__ import annotations

import subprocess

import nics
import pytest
from accounting import CABLE_QUEUE, arrived, sent_checked
from leftovers import state

from pytest_pktgen.errors import DeviceUnsupported
from pytest_pktgen.lab import topology
from pytest_pktgen.lab.rx import settle
from pytest_pktgen.pktgen.check import mismatches

pytestmark = pytest.mark.integration

# Unpaced, so a veth may refuse frames its peer's backlog cannot take (pktgen's errors, checked
# against the link's tx_dropped, then sent again); the cable holds CABLE_QUEUE frames at most.
COUNT = CABLE_QUEUE


def test_veth(veth):
    assert isinstance(veth, topology.Topology)  # what every topology provides (the protocol)
    gen, sink = veth.tx[0], veth.sink
    assert gen.netns != sink.netns and gen.ip4 == "198.18.0.1" and sink.ip4 == "198.18.0.2"
    before, tx_before = sink.stats(), gen.stats()
    config = veth.config(count=COUNT, pkt_size=60)
    assert config.params["dst"] == "198.18.0.2" and config.params["dst_mac"] == sink.mac
    result = veth.run(config)
    assert mismatches(config, result.devices[gen.ifname]) == []
    assert sent_checked(result, gen, tx_before) == COUNT
    assert arrived(sink, before, COUNT) == COUNT


@pytest.mark.parametrize("veth", [{"ipv6": True}], indirect=True)
def test_veth_ipv6(veth):
    gen, sink = veth.tx[0], veth.sink
    before, tx_before = sink.stats(), gen.stats()
    config = veth.config(count=COUNT, pkt_size=100, ipv6=True, flags=["UDPCSUM"])
    assert config.params["dst6"] == "2001:2::2" and config.params["src6"] == "2001:2::1"
    result = veth.run(config)
    status = result.devices[gen.ifname]
    assert status.ipv6 and status.params["daddr"] == "2001:2::2"
    assert sent_checked(result, gen, tx_before) == COUNT
    assert arrived(sink, before, COUNT) == COUNT


def test_dummy(dummy):
    tx = dummy.tx[0]
    assert dummy.sink is None
    before = tx.stats()
    result = dummy.run(dummy.config(count=COUNT, pkt_size=60, clone_skb=10, burst=4))
    assert sent_checked(result, tx, before) == COUNT
    assert (tx.stats() - before).tx_packets == COUNT
    caps = dummy.caps()
    assert caps.shared_skb and "queue_xmit" in caps.xmit_modes


def test_crossover(crossover, lab_nic_pairs):
    gen, sink = crossover.tx[0], crossover.sink
    assert (gen.ifname, sink.ifname) == (lab_nic_pairs[0].tx, lab_nic_pairs[0].rx)
    assert gen.netns != sink.netns
    before, tx_before = sink.stats(), gen.stats()
    result = crossover.run(crossover.config(count=COUNT, pkt_size=60))
    assert sent_checked(result, gen, tx_before) == COUNT
    assert arrived(sink, before, COUNT) == COUNT
    caps = crossover.caps()
    assert caps.shared_skb  # virtio_net uses ether_setup: clone_skb and burst work
    assert caps.tx_queues >= 1


def test_crossover_returns_the_nics_exactly_as_found(lab_nic_pairs, pktgen_module):
    """A lab host's NICs carry addresses (one with lifetimes), routes in several tables (one
    multipath), a permanent neighbour, their own sysctls and qdiscs: moving them into the lab's
    namespaces deletes all of it, and all of it is back after the crossover."""
    from pytest_pktgen.host.netdev import link_info
    from pytest_pktgen.lab import topology

    pair = lab_nic_pairs[0]
    with nics.dressed(pair.tx, 60), nics.dressed(pair.rx, 70):
        before = {name: nics.view(name) for name in (pair.tx, pair.rx)}
        with topology.crossover(topology.Nic.named(pair.tx), topology.Nic.named(pair.rx),
                                ipv6=True) as topo:
            with pytest.raises(LookupError):
                link_info(pair.tx)  # moved away: its addresses and routes went with the move
            assert nics.sh("ip", "route", "show", "table", nics.TABLES[0]) == ""
            sink, rx_before = topo.sink, topo.sink.stats()
            result = topo.run(topo.config(count=1000, pkt_size=60, ipv6=True))
            assert result.sent == 1000
            assert arrived(sink, rx_before, result.sent) >= 1000
        after = {name: nics.view(name) for name in (pair.tx, pair.rx)}
    for name in before:
        assert nics.differences(before[name], after[name]) == [], name


def test_a_nic_whose_qdiscs_would_not_come_back_is_never_moved(lab_nic_pairs, pktgen_module):
    """htb dumps its options in a form its own init refuses: moving a NIC with an htb root
    would lose it for good, so the crossover refuses before it makes or moves anything."""
    from pytest_pktgen.host.nicstate import NicNotRestored
    from pytest_pktgen.lab import topology

    pair = lab_nic_pairs[0]
    ours_before = state()["netns"]
    nics.sh("tc", "qdisc", "add", "dev", pair.rx, "root", "handle", "1:", "htb", "default", "10")
    try:
        with pytest.raises(NicNotRestored, match=rf"{pair.rx} is not moved into a lab namespace: "
                           r"moving a NIC deletes its queueing disciplines, and these would not "
                           r"come back as they are: qdisc htb 1:0: Invalid argument"):
            topology.crossover(topology.Nic.named(pair.tx), topology.Nic.named(pair.rx))
        assert '"kind":"htb"' in nics.sh("tc", "-j", "qdisc", "show", "dev", pair.rx)
        assert nics.view(pair.tx)["link"]["operstate"] is not None  # never moved
        assert state()["netns"] == ours_before
    finally:
        nics.sh("tc", "qdisc", "del", "dev", pair.rx, "root")


def test_veth_clone_skb_is_a_capability_not_an_errno(veth):
    caps = veth.caps()
    assert not caps.shared_skb
    reason = caps.unsupported(veth.config(count=10, clone_skb=10))
    assert reason == f"{veth.tx[0].ifname} has no shared-skb support: clone_skb must be 0"
    assert caps.unsupported(veth.config(count=10)) is None
    with pytest.raises(DeviceUnsupported, match="clone_skb must be 0"):
        veth.run(veth.config(count=10, clone_skb=10))
    assert veth.pktgen.devices() == []


def _forwarded(topo, sent: int, before: dict) -> int:
    """What the router forwarded, after checking that every frame it took in left it or was
    refused by its out link (the sink's backlog full: veth's tx_dropped), and that the sink
    received every frame that left; the router must forward most of what it took in."""
    hop_out, sink = topo.hops["out"], topo.sink
    out = settle(lambda: _out_or_refused(hop_out, before[hop_out.ifname]), sent)
    assert out == sent, f"the router took in {sent}, forwarded or refused {out}"
    forwarded = (hop_out.stats() - before[hop_out.ifname]).tx_packets
    assert arrived(sink, before[sink.ifname], forwarded) == forwarded
    assert forwarded >= sent // 2, f"the router refused {sent - forwarded} of {sent}"
    return forwarded


def _out_or_refused(hop, before) -> int:
    delta = hop.stats() - before
    return delta.tx_packets + delta.tx_dropped


def test_forwarding(forwarding):
    gen, sink = forwarding.tx[0], forwarding.sink
    hop_in, hop_out = forwarding.hops["in0"], forwarding.hops["out"]
    config = forwarding.config(count=COUNT, pkt_size=60)
    assert config.params["dst"] == sink.ip4 and config.params["dst_mac"] == hop_in.mac
    before = {e.ifname: e.stats() for e in (gen, hop_in, hop_out, sink)}
    result = forwarding.run(config)
    sent = sent_checked(result, gen, before[gen.ifname])
    assert sent == COUNT
    assert arrived(hop_in, before[hop_in.ifname], COUNT) == COUNT  # the router took them in
    _forwarded(forwarding, COUNT, before)


def test_forwarding_parallel_two_threads(forwarding_parallel):
    topo = forwarding_parallel
    assert len(topo.tx) == 2
    # paced, so that the two senders share the router fairly; what the router's out link
    # refuses when the sink's backlog is full is accounted for, not asserted away
    configs = [topo.config(i, thread=i, count=COUNT, pkt_size=60, ratep=20_000)
               for i in range(2)]
    before = {e.ifname: e.stats() for e in (*topo.tx, topo.hops["out"], topo.sink)}
    result = topo.run(configs)
    sent = sum(sent_checked(result, tx, before[tx.ifname]) for tx in topo.tx)
    assert sent == 2 * COUNT
    _forwarded(topo, sent, before)


# the sink must answer (ICMP) so that its NIC's TX-queue IRQ fires too and moves: a sink that
# discards never transmits, and that IRQ would keep its old effective CPU
@pytest.mark.parametrize("crossover", [{"discard": False}], indirect=True)
def test_irq_pinning_on_crossover(crossover, irq_pin):
    """The paper's Section 5: pktgen sends from CPU 0, the receiving NIC's IRQs are pinned to
    CPU 1. At least 99% of them must land there; the fixture restores and reads back every
    mask afterwards (checked again in test_irq_masks_restored)."""
    from pytest_pktgen.host.irq import effective_cpus, read_mask

    rx_irqs = crossover.nics["rx"].irqs
    assert rx_irqs
    before = {irq: read_mask(irq) for irq in rx_irqs}
    pinning = irq_pin(rx_irqs, cpu=1)
    assert pinning.saved == before
    assert all(read_mask(irq) in ("2", "00000002") for irq in rx_irqs)
    # x86 moves an MSI at its next interrupt: a little traffic first makes the pinning real
    crossover.run(crossover.config(count=1000, pkt_size=60))
    rx_input = [irq for irq in rx_irqs if effective_cpus(irq) != 0]
    assert rx_input and all(effective_cpus(irq) == 0b10 for irq in rx_input)
    start = pinning.snapshot()
    sink = crossover.sink
    rx_before, tx_before = sink.stats(), crossover.tx[0].stats()
    result = crossover.run(crossover.config(count=COUNT, pkt_size=60, thread=0))
    sent = sent_checked(result, crossover.tx[0], tx_before)
    assert arrived(sink, rx_before, sent) == sent
    on_cpu, total = pinning.fired(start)
    assert total > 0, "the receiving NIC raised no interrupts"
    assert on_cpu / total >= 0.99, f"{on_cpu} of {total} interrupts on CPU 1"
    pinning.restore()
    assert {irq: read_mask(irq) for irq in rx_irqs} == before


def test_the_lab_s_pairs_quieted_come_back_with_their_ipv6_addresses(lab, lab_nic_pairs):
    """Quieting a NIC pair (disable_ipv6: no DAD, RS or MLD frames in its counters) flushes
    its IPv6 addresses and the routes through them: what lab_nic_pairs does is undone with
    the NIC's saved state, so a dressed NIC comes back exactly, its IPv6 address and route
    too (they were lost)."""
    from pytest_pktgen.fixtures import quiet_pairs

    macs = lab.pairs[-1:]
    tx = lab_nic_pairs[-1].tx
    with nics.dressed(tx, 94):
        before = nics.view(tx)
        assert "2001:2:0:94::1" in nics.sh("ip", "-6", "addr", "show", "dev", tx)
        with quiet_pairs(macs) as (pair,):
            assert pair.tx == tx
            assert "2001:2:0:94::1" not in nics.sh("ip", "-6", "addr", "show", "dev", tx)
        assert nics.differences(before, nics.view(tx)) == []


def test_a_bridge_port_moved_for_a_crossover_comes_back_a_port_of_its_bridge(lab_nic_pairs,
                                                                             pktgen_module):
    """A lab host's NIC in a bridge (a VM's bridge, say): moving it into a namespace releases
    it from the bridge; it comes back a port of it again (it came back outside, and the
    session said "restored as found")."""
    from pytest_pktgen.lab import topology

    pair = lab_nic_pairs[0]
    nics.sh("ip", "link", "add", "pgbr0", "type", "bridge")
    try:
        nics.sh("ip", "link", "set", pair.rx, "master", "pgbr0")
        before = nics.view(pair.rx)
        assert before["link"]["master"] == "pgbr0"
        with topology.crossover(topology.Nic.named(pair.tx), topology.Nic.named(pair.rx)) as t:
            assert t.run(t.config(count=100, pkt_size=60)).sent == 100
            assert pair.rx not in nics.sh("ip", "link", "show", "master", "pgbr0")  # released
        assert nics.differences(before, nics.view(pair.rx)) == []
    finally:
        subprocess.run(["ip", "link", "del", "pgbr0"], capture_output=True)
