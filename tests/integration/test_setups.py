"""The paper's example setups run for real: what ran is what was asked, every packet accounted."""

from __future__ import annotations

import pytest

from pytest_pktgen import DeviceConfig, PktgenRun
from pytest_pktgen.check import mismatches
from pytest_pktgen.links import dummy_link
from pytest_pktgen.netdev import link_stats
from pytest_pktgen.setups import SETUPS, Target, multi

pytestmark = pytest.mark.integration

COUNT = 10_000
RATEP = 5_000  # per device; 8 devices on 2 vCPUs under TCG keep up with this


@pytest.fixture
def two_pairs(lab_nic_pairs):
    if len(lab_nic_pairs) < 2:
        pytest.fail("these setups need two NIC pairs: --pktgen-vm-nics 2", pytrace=False)
    return lab_nic_pairs[:2]


def rx_counts(pairs) -> dict[str, int]:
    return {p.tx: link_stats(p.rx).rx_packets for p in pairs}


@pytest.mark.parametrize("name", list(SETUPS))
def test_paper_setup(name, pktgen, two_pairs):
    configs = SETUPS[name]([Target(p.tx, p.rx_mac) for p in two_pairs], count=COUNT)
    before = rx_counts(two_pairs)
    result = PktgenRun(configs, pktgen=pktgen).run()
    after = rx_counts(two_pairs)

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
    for tx, sent in sent_per_nic.items():
        received = after[tx] - before[tx]
        assert received == sent, f"{tx}: sent {sent}, received {received}"


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
        after = rx_counts(two_pairs)

        assert result.stopped_by_us
        assert len(result.devices) == len(targets) * threads
        stopped = []
        for config in configs:
            status = result.devices[config.device]
            assert mismatches(config, status) == []
            # every device shared its thread: each sent at about its rate
            assert status.result.pps == pytest.approx(RATEP, rel=0.25), config.device
            stopped.append(int(status.current["stopped"].removesuffix("us")))
        # one stop for all: every device's clock stopped within a few thread loops of the others
        assert max(stopped) - min(stopped) < 300_000, stopped
        for pair in two_pairs:
            sent = sum(s.result.sofar for n, s in result.devices.items()
                       if n.split("@")[0] == pair.tx)
            assert after[pair.tx] - before[pair.tx] == sent
        for d in (d0, d1):
            sent = sum(s.result.sofar for n, s in result.devices.items() if n.split("@")[0] == d)
            assert link_stats(d).tx_packets - dummy_before[d] == sent
        assert len(run.samples) >= 4  # sampled pkts-sofar while it ran
        assert run.samples[-1].sofar[configs[0].device] > run.samples[0].sofar[configs[0].device]


def test_stop_all_at_once_two_devices_two_threads(pktgen, two_pairs):
    """The paper's Ctrl-C semantics: count 0 on two threads, one stop, one clean snapshot."""
    # paced: at full rate on both vCPUs the receiving NICs' NAPI starves under TCG and drops
    configs = [DeviceConfig(p.tx, {"count": 0, "pkt_size": 60, "dst": "198.18.0.2",
                                   "dst_mac": p.rx_mac, "ratep": 20_000}, thread=cpu)
               for cpu, p in enumerate(two_pairs)]
    before = rx_counts(two_pairs)
    result = PktgenRun(configs, pktgen=pktgen, duration=2.0).run()
    after = rx_counts(two_pairs)
    assert result.stopped_by_us and result.short_devices() == {}
    started, stopped = [], []
    for config in configs:
        status = result.devices[config.device]
        assert status.result.sofar > 0
        assert after[config.device] - before[config.device] == status.result.sofar
        started.append(int(status.current["started"].removesuffix("us")))
        stopped.append(int(status.current["stopped"].removesuffix("us")))
        assert status.result.elapsed_us == pytest.approx(2_000_000, rel=0.2)
    assert max(started) - min(started) < 300_000
    assert max(stopped) - min(stopped) < 300_000
