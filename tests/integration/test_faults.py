"""Faults in the middle of a run: each ends as a clear failure carrying what was measured, and
leaves nothing behind. (Link down with phases driven by hand, pgrx unloaded under traffic and
signals are in test_wire, test_rx and test_signals; the guest running out of time is a host test,
tests/host/test_vm_session.py.)"""

from __future__ import annotations

import re
import threading

import pytest
from leftovers import state
from pyroute2 import IPRoute

from pytest_pktgen.errors import PktgenRunError
from pytest_pktgen.netdev import set_state

pytestmark = pytest.mark.integration


def _later(seconds: float, fn, *args) -> threading.Timer:
    timer = threading.Timer(seconds, fn, args)
    timer.start()
    return timer


def _delete(ifname: str, netns: str) -> None:
    with IPRoute(netns=netns, flags=0) as ipr:
        ipr.link("del", ifname=ifname)


def test_device_deleted_mid_run_fails_with_what_was_sent(dummy):
    config = dummy.config(count=10_000_000, pkt_size=60, ratep=20_000)
    tx = dummy.tx[0]
    timer = _later(1.5, _delete, tx.ifname, tx.netns)
    with pytest.raises(PktgenRunError) as info:
        dummy.run(config, timeout=60)
    timer.join()
    message = str(info.value)
    # pktgen drops the device when the link unregisters: gone before the run's statistics were
    # read, or just after (then they are the partial result)
    assert re.search(rf"(pktgen device\(s\) vanished mid-run: {tx.ifname} \(sent \d+ by the "
                     rf"last sample\)|pktgen stopped early: {tx.ifname} sent \d+ of 10000000); "
                     rf"{tx.ifname} was deleted", message), message
    sent = int(re.search(r"sent (\d+)", message).group(1))
    assert 10_000 < sent < 10_000_000  # about 1.5 s at 20 kpps, give or take TCG
    assert dummy.pktgen.devices() == []


def test_link_down_mid_run_fails_with_what_was_sent(dummy):
    config = dummy.config(count=10_000_000, pkt_size=60, ratep=20_000)
    tx = dummy.tx[0]
    timer = _later(1.5, set_state, tx.ifname, "down", None, tx.netns)
    with pytest.raises(PktgenRunError) as info:
        dummy.run(config, timeout=60)
    timer.join()
    match = re.search(rf"pktgen stopped early: {tx.ifname} sent (\d+) of 10000000; "
                      rf"{tx.ifname} is down", str(info.value))
    assert match, str(info.value)
    partial = info.value.results[tx.ifname].result
    assert partial.sofar == int(match.group(1)) > 10_000
    assert dummy.pktgen.devices() == []


SINK_CUT = """
import threading

from pytest_pktgen import netns


def test_sink_cut(crossover, pktgen_bench):
    threading.Timer(1.5, netns.remove, [crossover.sink.netns]).start()
    pktgen_bench(crossover)
"""


def test_sink_namespace_deleted_mid_run_fails_and_the_nic_comes_home(pytester, lab_nic_pairs):
    before = state()
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
