"""The paper's example setups run for real: what ran is what was asked, every packet accounted."""

from __future__ import annotations

import pytest
from accounting import CABLE_QUEUE, paced_within_rate, stopped_by_the_stop

from pytest_pktgen import DeviceConfig, PktgenRun
from pytest_pktgen.host.links import dummy_link
from pytest_pktgen.host.netdev import link_stats
from pytest_pktgen.lab.rx import settle
from pytest_pktgen.pktgen.check import mismatches
from pytest_pktgen.pktgen.setups import SETUPS, Target, multi

pytestmark = pytest.mark.integration

# Every frame must arrive: at most CABLE_QUEUE frames reach one receiving NIC in any run (two
# devices per NIC at the most), so QEMU's queue holds them all whatever the load.
COUNT = CABLE_QUEUE // 2
RATEP = 2_000  # per device: two devices per NIC for about 2 s stay under CABLE_QUEUE too


@pytest.fixture
def two_pairs(lab_nic_pairs):
    if len(lab_nic_pairs) < 2:
        pytest.fail("these setups need two NIC pairs: --pktgen-vm-nics 2", pytrace=False)
    return lab_nic_pairs[:2]


def rx_counts(pairs) -> dict[str, int]:
    return {p.tx: link_stats(p.rx).rx_packets for p in pairs}


def arrived(pair, before: dict[str, int], sent: int) -> int:
    """Frames the pair's receiving NIC took in since ``before``, once none is in flight."""
    return settle(lambda: link_stats(pair.rx).rx_packets - before[pair.tx], sent)


@pytest.mark.parametrize("name", list(SETUPS))
def test_paper_setup(name, pktgen, two_pairs):
    configs = SETUPS[name]([Target(p.tx, p.rx_mac) for p in two_pairs], count=COUNT)
    before = rx_counts(two_pairs)
    result = PktgenRun(configs, pktgen=pktgen).run()

    assert sorted(result.devices) == sorted(c.device for c in configs)
    sent_per_nic: dict[str, int] = {}
    for config in configs:
        status = result.devices[config.device]
        assert mismatches(config, status) == []
        assert status.result.sofar == COUNT == status.sofar
        assert status.result.errors == 0
        assert status.result.pps > 0
        sent_per_nic[config.netdev] = sent_per_nic.get(config.netdev, 0) + status.result.sofar
    # every frame pktgen counted as sent arrived on the other end of its cable
    for pair in two_pairs:
        sent = sent_per_nic.get(pair.tx, 0)
        received = arrived(pair, before, sent)
        assert received == sent, f"{pair.tx}: sent {sent}, received {received}"


@pytest.mark.parametrize("threads", [1, 2])
def test_multi_device_stopped_at_once(pktgen, two_pairs, threads):
    """2x4+2 scaled to the lab: every NIC and two dummies on every thread, count 0, one stop."""
    with dummy_link() as d0, dummy_link() as d1:
        targets = [Target(p.tx, p.rx_mac) for p in two_pairs]
        targets += [Target(d, "02:00:00:00:00:09") for d in (d0, d1)]
        configs = multi(targets, threads=threads, ratep=RATEP)
        before = rx_counts(two_pairs)
        dummy_before = {d: link_stats(d).tx_packets for d in (d0, d1)}
        run = PktgenRun(configs, pktgen=pktgen, duration=2.0)
        result = run.run()

        assert len(result.devices) == len(targets) * threads
        for config in configs:
            assert mismatches(config, result.devices[config.device]) == []
        # every device shared its thread: each sent, none faster than its rate allows
        paced_within_rate(result, RATEP)
        stopped_by_the_stop(result)  # one stop for all: each ran until it, and ended after it
        for pair in two_pairs:
            sent = sum(s.result.sofar for n, s in result.devices.items()
                       if n.split("@")[0] == pair.tx)
            assert arrived(pair, before, sent) == sent
        for d in (d0, d1):
            sent = sum(s.result.sofar for n, s in result.devices.items() if n.split("@")[0] == d)
            assert link_stats(d).tx_packets - dummy_before[d] == sent
        # sampled pkts-sofar while it ran: never backwards, never beyond what was sent
        assert run.samples
        for name, status in result.devices.items():
            seen = [s.sofar[name] for s in run.samples]
            assert seen == sorted(seen) and seen[-1] <= status.result.sofar, (name, seen)


def test_stop_all_at_once_two_devices_two_threads(pktgen, two_pairs):
    """The paper's Ctrl-C semantics: count 0 on two threads, one stop, one clean snapshot."""
    # paced: well under CABLE_QUEUE frames per NIC in 2 s, so every frame arrives
    configs = [DeviceConfig(p.tx, {"count": 0, "pkt_size": 60, "dst": "198.18.0.2",
                                   "dst_mac": p.rx_mac, "ratep": 2 * RATEP}, thread=cpu)
               for cpu, p in enumerate(two_pairs)]
    before = rx_counts(two_pairs)
    result = PktgenRun(configs, pktgen=pktgen, duration=2.0).run()
    assert result.short_devices() == {}
    stopped_by_the_stop(result)
    paced_within_rate(result, 2 * RATEP)
    for pair in two_pairs:
        sent = result.devices[pair.tx].result.sofar
        assert arrived(pair, before, sent) == sent
