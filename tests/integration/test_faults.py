"""Faults in the middle of a run: each ends as a clear failure carrying what was measured, and
leaves nothing behind. (Link down with phases driven by hand, pgrx unloaded under traffic and
signals are in test_wire, test_rx and test_signals; the guest running out of time is a host test,
tests/host/test_vm_session.py.)"""

from __future__ import annotations

import re

import nics
import pytest
from leftovers import state

from pytest_pktgen.errors import PktgenRunError
from pytest_pktgen.host.netdev import set_state
from pytest_pktgen.host.netlink import IPRoute

pytestmark = pytest.mark.integration


AFTER = 10_000  # the fault strikes once pktgen has sent this many, whatever the load


def _once_sending(fn, *args):
    """A run's on_sample callback that calls ``fn(*args)`` once the run has sent AFTER."""
    done = []

    def on_sample(sample):
        if not done and max(sample.sofar.values()) >= AFTER:
            done.append(True)
            fn(*args)

    return on_sample


def _delete(ifname: str, netns: str) -> None:
    with IPRoute(netns=netns, flags=0) as ipr:
        ipr.link("del", ifname=ifname)


def test_device_deleted_mid_run_fails_with_what_was_sent(dummy):
    config = dummy.config(count=10_000_000, pkt_size=60, ratep=20_000)
    tx = dummy.tx[0]
    with pytest.raises(PktgenRunError) as info:
        dummy.run(config, timeout=600, on_sample=_once_sending(_delete, tx.ifname, tx.netns))
    message = str(info.value)
    # pktgen drops the device when the link unregisters: gone before the run's statistics were
    # read, or just after (then they are the partial result)
    assert re.search(rf"(pktgen device\(s\) vanished mid-run: {tx.ifname} \(sent \d+ by the "
                     rf"last sample\)|pktgen stopped early: {tx.ifname} sent \d+ of 10000000); "
                     rf"{tx.ifname} was deleted", message), message
    sent = int(re.search(r"sent (\d+)", message).group(1))
    assert AFTER <= sent < 10_000_000
    assert dummy.pktgen.devices() == []


def test_link_down_mid_run_fails_with_what_was_sent(dummy):
    config = dummy.config(count=10_000_000, pkt_size=60, ratep=20_000)
    tx = dummy.tx[0]
    with pytest.raises(PktgenRunError) as info:
        dummy.run(config, timeout=600,
                  on_sample=_once_sending(set_state, tx.ifname, "down", None, tx.netns))
    match = re.search(rf"pktgen stopped early: {tx.ifname} sent (\d+) of 10000000; "
                      rf"{tx.ifname} is down", str(info.value))
    assert match, str(info.value)
    partial = info.value.results[tx.ifname].result
    assert partial.sofar == int(match.group(1)) >= AFTER
    assert dummy.pktgen.devices() == []


SINK_CUT = """
import threading
import time

from pytest_pktgen.host import netns


def cut_once_sending(topology):
    while True:  # the sink's namespace goes once pktgen sends, whatever the load
        try:
            if topology.pktgen.device_status(topology.tx[0].ifname).sofar > 0:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    netns.remove(topology.sink.netns)


def test_sink_cut(crossover, pktgen_bench):
    threading.Thread(target=cut_once_sending, args=(crossover,), daemon=True).start()
    pktgen_bench(crossover)
"""


def test_sink_namespace_deleted_mid_run_fails_and_the_nic_comes_home(pytester, lab_nic_pairs):
    """The receiving NIC comes home by itself when its namespace goes (the kernel's work), and
    then gets back what the move took: addresses, routes, neighbours, sysctls, qdiscs."""
    with nics.dressed(lab_nic_pairs[0].rx, 80, ipv6=False) as rx_nic:
        _sink_cut(pytester, rx_nic)


def _sink_cut(pytester, rx_nic: str) -> None:
    before, rx_before = state(), nics.view(rx_nic)
    pytester.makepyfile(SINK_CUT)
    # a fixed time: the lab's virtio cable stalls its sender once the receiving NIC is down
    result = pytester.runpytest("--pktgen-duration", "5", "--pktgen-repeats", "1",
                                "--pktgen-param", "ratep=20000", "-p", "no:cacheprovider",
                                f"--pktgen-out={pytester.path / 'out'}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*PktgenRunError: pktgen sent * packets at * pps, but the ifstats counter on * in "
        "pgs* could not be read (*): was the sink's link or namespace deleted mid-run?"])
    after = state()
    assert after["netns"] == before["netns"]
    assert after["links"] == before["links"]  # the receiving NIC is back, up as it was
    assert after["our_links"] == before["our_links"]
    assert nics.differences(rx_before, nics.view(rx_nic)) == []
