"""The sink: pktgen's frames counted and dropped at its tc ingress by default, everything else
left to its stack; ``discard=False`` (``--pktgen-sink stack``) lets them go up as to a host."""

from __future__ import annotations

import socket

import pytest
from accounting import CABLE_QUEUE, wait_until

from pytest_pktgen import host
from pytest_pktgen.host.netns import call_in
from pytest_pktgen.lab import rx
from pytest_pktgen.lab.rx import KmodCounter, netstat

pytestmark = pytest.mark.integration

COUNT = 5_000  # under the cable's queue: every frame the crossover's sink takes arrives


def ip_received(topo) -> int:
    """IPv4 packets the sink's stack took in (ip_rcv counts each in IpExt InNoECTPkts)."""
    return netstat(topo.sink.netns)["InNoECTPkts"]


def datagram_to_port_9(topo) -> None:
    """One UDP datagram to the sink's port 9 from the generator's side: not pktgen's (no magic)."""
    def send():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"not pktgen", (topo.sink.ip4, 9))

    call_in(topo.generator_ns, send)


@pytest.mark.parametrize("name", ["veth", "forwarding", "crossover"])
def test_the_sink_drops_pktgens_frames_counted_and_nothing_else(name, request, rx_counter):
    topo = request.getfixturevalue(name)
    assert topo.sink_mode == "tc-drop"
    ifstats = rx_counter(topo, "ifstats")
    tc = rx_counter(topo, "tc")  # UDP port 9, before the discard: it counts, the discard drops
    topo.discard.reset()
    stack_before, sink_before = ip_received(topo), topo.sink.stats()
    assert COUNT <= CABLE_QUEUE
    result = topo.run(topo.config(count=COUNT, pkt_size=60), rx=[ifstats, tc])
    arrived = result.received["ifstats"].packets
    if name == "veth":
        assert arrived == result.sent == COUNT
    assert arrived > 0 and result.received["tc"].packets == arrived
    discarded = topo.discard.settled(arrived)
    assert discarded.packets == discarded.dropped == arrived
    assert discarded.bytes == arrived * 46  # from the IP header on: 60 - 14
    # none went up the sink's stack, so nothing answered them (ICMP port unreachable)
    assert ip_received(topo) == stack_before
    assert (topo.sink.stats() - sink_before).tx_packets == 0
    # a datagram to the same port that pktgen did not make goes up, and is answered
    datagram_to_port_9(topo)
    wait_until(lambda: (topo.sink.stats() - sink_before).tx_packets > 0,
               "ICMP port unreachable for a datagram that is not pktgen's", timeout=10)
    assert ip_received(topo) == stack_before + 1
    assert topo.discard.read().packets == arrived


@pytest.mark.parametrize("veth", [{"discard": False}], indirect=True)
def test_a_sink_that_does_not_discard_takes_the_frames_up_its_stack(veth):
    assert veth.sink_mode == "stack" and veth.discard is None
    stack_before, sink_before = ip_received(veth), veth.sink.stats()
    result = veth.run(veth.config(count=COUNT, pkt_size=60))
    wait_until(lambda: ip_received(veth) - stack_before == result.sent,
               "every frame at the sink's ip_rcv", timeout=10)
    wait_until(lambda: (veth.sink.stats() - sink_before).tx_packets > 0,
               "ICMP port unreachable from the sink's UDP", timeout=10)


@pytest.mark.parametrize("hook", ["ingress", "prerouting"])
def test_a_counter_after_tc_ingress_takes_over_the_discard(veth, rx_counter, pgrx, hook):
    """pgrx counts after tc ingress: the discard steps aside for it, and with ``drop`` it is
    pgrx that drops; at the sink's netdev ingress (the default) before the IP layer, so ip_rcv
    never sees them, at PRE_ROUTING after it. Its counters close, the hook with them."""
    kmod = rx_counter(veth, "kmod", drop=True, hook=hook)
    assert kmod.hook == hook, kmod.hook_error
    assert veth.discard is None
    assert veth.sink_mode == {"ingress": "kmod-drop", "prerouting": "kmod-drop-prerouting"}[hook]
    assert f"ingress {veth.sink.ifname if hook == 'ingress' else '-'}\n" in kmod.raw()
    stack_before = ip_received(veth)
    veth.run(veth.config(count=COUNT, pkt_size=60))
    count = kmod.settled(COUNT)
    assert count.packets == count.dropped == COUNT
    # ip_rcv counts each frame that reaches it; pgrx at ingress drops them all before
    assert ip_received(veth) - stack_before == (0 if hook == "ingress" else COUNT)
    kmod.close()  # nothing drops them now: the report must not say pgrx does
    assert veth.sink_mode == "stack" and veth.sink_drop is None
    assert "ingress -\n" in kmod.raw()  # counting where it always did, for the next counter


def kernel_warned() -> bool:
    """The kernel's taint W: a WARN fired since boot (netfilter's "hook not found", say)."""
    with open("/proc/sys/kernel/tainted") as f:
        return bool(int(f.read()) & 1 << 9)


def test_pgrx_forgets_a_device_that_leaves(veth, rx_counter, pgrx):
    """Devices pgrx counts at the ingress of, deleted or renamed: pgrx lets a deleted one go
    (no hook left on a device that is gone) whichever place in its list it held, shows the new
    name of a renamed one, and counts on at the sink's ingress."""
    sink = veth.sink
    warned = kernel_warned()
    with host.on(sink.netns).netlink() as ipr:
        for name in ("pgrxd0", "pgrxd1"):
            ipr.link("add", ifname=name, kind="dummy")
    try:
        kmod = rx_counter(veth, "kmod", drop=True)
        others = [KmodCounter(name, sink.netns, drop=True) for name in ("pgrxd0", "pgrxd1")]
        assert [o.hook for o in others] == ["ingress"] * 2, [o.hook_error for o in others]
        assert f"ingress {sink.ifname} pgrxd0 pgrxd1\n" in kmod.raw()
        with host.on(sink.netns).netlink() as ipr:  # not the last in pgrx's list
            ipr.link("del", index=ipr.link_lookup(ifname="pgrxd0")[0])
            ipr.link("set", index=ipr.link_lookup(ifname="pgrxd1")[0], ifname="pgrxd2")
        assert f"ingress {sink.ifname} pgrxd2\n" in kmod.raw()
        others[1].ifname = "pgrxd2"
        others[1].set_hook("prerouting")  # its hook, where it was, unregisters cleanly
        assert f"ingress {sink.ifname}\n" in kmod.raw()
        others[1].set_hook("ingress")  # and the freed place is taken again
        assert f"ingress {sink.ifname} pgrxd2\n" in kmod.raw()
    finally:
        with host.on(sink.netns).netlink() as ipr:
            for name in ("pgrxd0", "pgrxd2"):
                for index in ipr.link_lookup(ifname=name):
                    ipr.link("del", index=index)
    assert f"ingress {sink.ifname}\n" in kmod.raw()
    veth.run(veth.config(count=COUNT, pkt_size=60))
    assert kmod.settled(COUNT).dropped == COUNT
    assert others[0].host.call(rx._pgrx_write, "ingress del pgrxd0") is not None  # none such
    assert warned or not kernel_warned()
