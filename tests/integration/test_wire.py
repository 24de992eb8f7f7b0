"""The wire protocol against the real module: errno, Result checks, short writes, deadlines."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from accounting import PACE_SLACK, paced_within_rate, wait_until

from pytest_pktgen import (
    DeviceConfig,
    DeviceUnsupported,
    PktgenConfigError,
    PktgenResultError,
    PktgenRun,
    PktgenRunError,
    PktgenWriteError,
)
from pytest_pktgen.host.links import dummy_link
from pytest_pktgen.host.netdev import set_state
from pytest_pktgen.pktgen.proc import write_command

pytestmark = pytest.mark.integration


def test_add_device_errors(pktgen, dummy_dev):
    with pytest.raises(PktgenWriteError) as info:
        pktgen.add_device(0, "pgnosuchdev0")
    assert info.value.errno == errno.ENODEV
    assert "ENODEV" in str(info.value) and "no network device of that name" in str(info.value)

    pktgen.add_device(0, dummy_dev)
    assert pktgen.thread_status(0).stopped == [dummy_dev]
    with pytest.raises(PktgenWriteError) as info:
        pktgen.add_device(1 if len(pktgen.threads()) > 1 else 0, dummy_dev)
    assert info.value.errno == errno.EBUSY
    pktgen.add_device(0, f"{dummy_dev}@1")  # the same netdev under another name is fine
    assert sorted(pktgen.thread_status(0).devices) == sorted([dummy_dev, f"{dummy_dev}@1"])
    pktgen.remove_thread_devices([0])
    assert pktgen.devices() == []


def test_device_down_is_enetdown(pktgen):
    with dummy_link(up=False) as down:
        with pytest.raises(PktgenWriteError) as info:
            pktgen.add_device(0, down)
        assert info.value.errno == errno.ENETDOWN


def test_unknown_parameter_carries_the_kernels_result(pktgen, dummy_dev):
    pktgen.add_device(0, dummy_dev)
    with pytest.raises(PktgenWriteError) as info:
        pktgen.device_command(dummy_dev, "bogus 1")
    assert info.value.errno == errno.EINVAL
    assert info.value.result == 'No such parameter "bogus"'
    assert 'pktgen says \'No such parameter "bogus"\'' in str(info.value)


@pytest.mark.parametrize("command, result_starts", [
    ("flag FOO", "Flag -:FOO:- unknown"),
    ("flag NODE_ALLOC", "Flag -:NODE_ALLOC:- unknown"),  # the documentation's name
    ("xmit_mode fast", "xmit_mode -:fast:- unknown"),
])
def test_accepted_write_with_error_result_is_an_error(pktgen, dummy_dev, command, result_starts):
    """The kernel answers these with a successful write; only the Result says no."""
    pktgen.add_device(0, dummy_dev)
    with pytest.raises(PktgenResultError) as info:
        pktgen.device_command(dummy_dev, command)
    assert info.value.result.startswith(result_starts)


def test_vlan_p_out_of_range_is_an_error_result(pktgen, dummy_dev):
    pktgen.add_device(0, dummy_dev)
    pktgen.device_command(dummy_dev, "vlan_id 5")
    with pytest.raises(PktgenResultError, match="vlan_p must be 0-7"):
        pktgen.device_command(dummy_dev, "vlan_p 9")


def test_rate_zero_is_refused(pktgen, dummy_dev, pktgen_module):
    """6.1 answers 'rate 0' with a short write, mainline with EINVAL: both are errors here."""
    pktgen.add_device(0, dummy_dev)
    with pytest.raises(PktgenWriteError) as info:
        write_command(pktgen.device_path(dummy_dev), "rate 0")
    if pktgen_module.kernel_version < (6, 15):
        assert "short write: 1 of 7 bytes" in str(info.value)
    else:
        assert info.value.errno == errno.EINVAL


def test_clone_skb_on_veth_is_not_supported(pktgen, veth_dev, pktgen_module):
    """veth lacks shared-skb support: the kernel says ENOTSUPP (524) on 6.1, EOPNOTSUPP (95) on
    mainline; a run refuses it before writing anything."""
    name, _peer = veth_dev
    pktgen.add_device(0, name)
    with pytest.raises(PktgenWriteError) as info:
        pktgen.device_command(name, "clone_skb 10")
    assert info.value.not_supported
    assert info.value.errno == pktgen_module.features.not_supported_errno
    assert "shared-skb" in str(info.value)
    pktgen.remove_thread_devices([0])

    for params in ({"clone_skb": 10}, {"burst": 4}):
        with pytest.raises(DeviceUnsupported, match="has no shared-skb support"):
            PktgenRun([DeviceConfig(name, {"count": 10, **params})], pktgen=pktgen).run()
        assert pktgen.devices() == []  # refused before the first write
    # burst with netif_receive works on any device
    config = DeviceConfig(name, {"count": 100, "burst": 4, "xmit_mode": "netif_receive",
                                 "dst": "198.18.0.2"})
    assert PktgenRun([config], pktgen=pktgen).run().devices[name].result.sofar == 100


def test_missing_or_down_device_is_refused_before_any_write(pktgen):
    with pytest.raises(PktgenConfigError, match="there is no 'pgnosuch0'"):
        PktgenRun([DeviceConfig("pgnosuch0", {"count": 1})], pktgen=pktgen).run()
    with dummy_link(up=False) as down:
        with pytest.raises(PktgenConfigError, match=f"{down} is down"):
            PktgenRun([DeviceConfig(down, {"count": 1})], pktgen=pktgen).run()
    assert pktgen.devices() == []


class _Garbled(DeviceConfig):
    """A config whose dst6 goes out garbled: a gap in rendering, played on purpose."""

    def commands(self) -> list[str]:
        return [c + "::5" if c.startswith("dst6 ") else c for c in super().commands()]


def test_values_the_kernel_holds_otherwise_stop_the_run_before_start(pktgen, dummy_dev):
    """pktgen answers OK to an IPv6 address it cannot parse and keeps the one it had (:: on a
    new device). The runner reads every device's Params back after configuring it: a run whose
    device holds other values than asked never starts."""
    with pytest.raises(PktgenConfigError, match="without a zone"):
        DeviceConfig(dummy_dev, {"count": 10, "dst6": "fe80::1%eth1"})
    ok = DeviceConfig(dummy_dev, {"count": 10, "pkt_size": 100, "dst6": "::ffff:198.18.0.2"})
    assert PktgenRun([ok], pktgen=pktgen).run().sent == 10  # shown as ::ffff:198.18.0.2: same

    tx = Path(f"/sys/class/net/{dummy_dev}/statistics/tx_packets")
    tx_before = tx.read_text()
    garbled = _Garbled(dummy_dev, {"count": 10, "pkt_size": 100, "dst6": "2001:2::2"})
    assert "dst6 2001:2::2::5" in garbled.commands()
    with pytest.raises(PktgenRunError, match=r"holds other.*daddr is '::', asked '2001:2::2'"):
        PktgenRun([garbled], pktgen=pktgen).run()
    assert pktgen.devices() == []  # removed again, never started
    assert tx.read_text() == tx_before


def test_flags_this_kernel_lacks_are_refused(pktgen, dummy_dev, pktgen_module):
    config = DeviceConfig(dummy_dev, {"count": 100, "dst": "198.18.0.2"}, flags=["SHARED"])
    if pktgen_module.features.shared_flag:
        status = PktgenRun([config], pktgen=pktgen).run().devices[dummy_dev]
        assert "SHARED" in status.flags
    else:
        with pytest.raises(PktgenConfigError, match="SHARED exists from about Linux 6.7 on"):
            PktgenRun([config], pktgen=pktgen).run()
    assert pktgen.devices() == []


def test_clone_skb_and_burst_work_on_dummy(pktgen, dummy_dev):
    config = DeviceConfig(dummy_dev, {"count": 20_000, "clone_skb": 100, "burst": 4, "pkt_size": 60,
                                  "dst": "198.18.0.2"})
    status = PktgenRun([config], pktgen=pktgen).run().devices[dummy_dev]
    assert status.result.sofar == 20_000
    assert status.params["clone_skb"] == "100" and status.params["burst"] == "4"


def test_imix_leaves_result_unchanged_and_runs(pktgen, dummy_dev):
    config = DeviceConfig(dummy_dev, {"count": 3000, "imix_weights": [(64, 7), (594, 4), (1500, 1)],
                                  "dst": "198.18.0.2"})
    status = PktgenRun([config], pktgen=pktgen).run().devices[dummy_dev]
    counts = dict(p.split(",") for p in status.current["imix_size_counts"].split())
    assert sum(map(int, counts.values())) == 3000
    assert set(counts) == {"64", "594", "1500"}


def test_ratep_limits_the_rate(pktgen, dummy_dev):
    """pktgen sends the n-th packet no earlier than (n - 1) / ratep after the start: the run
    lasts at least that long whatever the load, and is slower than the same run unpaced."""
    params = {"count": 2000, "pkt_size": 60, "dst": "198.18.0.2"}
    paced = PktgenRun([DeviceConfig(dummy_dev, {**params, "ratep": 10_000})],
                      pktgen=pktgen).run()
    free = PktgenRun([DeviceConfig(dummy_dev, params)], pktgen=pktgen).run()
    result = paced.devices[dummy_dev].result
    assert result.sofar == 2000
    assert result.elapsed_us * PACE_SLACK >= (2000 - 1) * 1_000_000 // 10_000
    paced_within_rate(paced, 10_000)
    assert result.pps < free.devices[dummy_dev].result.pps


def test_deadline_stops_the_run_and_reports_partial_results(pktgen, dummy_dev):
    config = DeviceConfig(dummy_dev, {"count": 1_000_000, "pkt_size": 60, "ratep": 1000,
                                  "dst": "198.18.0.2"})
    started = time.monotonic()
    with pytest.raises(PktgenRunError, match="did not finish within its deadline of 2s") as info:
        PktgenRun([config], pktgen=pktgen, timeout=2).run()
    assert time.monotonic() - started < 1_000 / 2  # the whole run takes 1000 s
    partial = info.value.results[dummy_dev].result
    assert 0 < partial.sofar < 1_000_000
    assert pktgen.devices() == []


def test_device_going_down_ends_its_run(pktgen, dummy_dev):
    """A device whose link goes down stops at its next xmit: a short, still 'OK' result."""
    config = DeviceConfig(dummy_dev, {"count": 10_000_000, "pkt_size": 60, "ratep": 20_000,
                                  "dst": "198.18.0.2"})
    with PktgenRun([config], pktgen=pktgen, timeout=600) as run:
        run.start()
        wait_until(lambda: run.sample().sofar[dummy_dev] > 0, "pktgen sending")
        set_state(dummy_dev, "down")
        assert run.wait()  # ended by itself
        status = run.collect()[dummy_dev]
    assert status.result_ok and 0 < status.result.sofar < 10_000_000


def test_thread_and_counter_commands(pktgen, dummy_dev):
    """The paper's Appendix A commands that configure nothing: both answered with OK."""
    assert pktgen.max_before_softirq(0, 10000).startswith(
        "OK: Note! max_before_softirq is obsoleted")
    config = DeviceConfig(dummy_dev, {"count": 500, "dst": "198.18.0.2"})
    with PktgenRun([config], pktgen=pktgen) as run:
        run.start()
        assert run.wait()
        assert run.collect()[dummy_dev].result.sofar == 500
        assert pktgen.clear_counters(dummy_dev) == "OK: Clearing counters."
        status = pktgen.device_status(dummy_dev)
        assert status.sofar == 0 and status.current["seq_num"] == "1"


def test_pgctrl_reset_removes_every_device(pktgen, dummy_dev):
    threads = pktgen.threads()
    for thread in threads:
        pktgen.add_device(thread, f"{dummy_dev}@{thread}")
    assert len(pktgen.devices()) == len(threads)
    pktgen.reset()
    assert pktgen.devices() == []
    assert all(pktgen.thread_status(t).devices == [] for t in threads)


HOG = """
import os, sys, time
os.sched_setaffinity(0, {1})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
print("hogging", flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
"""


def test_a_thread_that_starts_late_is_waited_for(pktgen, dummy_dev):
    """``start`` returns 125 ms after asking the threads to run, as soon as no device runs: a
    thread whose CPU is busy starts its devices later. Here a real-time task holds CPU 1 for
    5 s, longer than the runner waits for statistics, so kpktgend_1 starts only after the
    start write returned; the run still waits for it, and gets every packet's statistics."""
    if 1 not in pktgen.threads():
        pytest.fail("needs pktgen thread 1: --pktgen-vm-cpus 2", pytrace=False)
    rt_runtime = Path("/proc/sys/kernel/sched_rt_runtime_us")
    saved_runtime, saved_cpus = rt_runtime.read_text(), os.sched_getaffinity(0)
    config = DeviceConfig(dummy_dev, {"count": 1000, "pkt_size": 60, "dst": "198.18.0.2"},
                          thread=1)
    try:
        os.sched_setaffinity(0, {0})
        rt_runtime.write_text("-1\n")  # no real-time throttling: CPU 1 is the hog's alone
        with PktgenRun([config], pktgen=pktgen) as run:
            hog = subprocess.Popen([sys.executable, "-c", HOG, "5"], stdout=subprocess.PIPE,
                                   text=True)
            assert hog.stdout.readline() == "hogging\n"
            run.start()
            finished = run.wait()
            assert hog.poll() is None or hog.returncode == 0
            result = run.finish(finished)
        hog.wait(60)
    finally:
        rt_runtime.write_text(saved_runtime)
        os.sched_setaffinity(0, saved_cpus)
    assert finished and not result.stopped_by_us
    assert result.devices[dummy_dev].result.sofar == 1000
    assert pktgen.devices() == []


@pytest.mark.parametrize("params, built", [
    ({}, 60),                                          # 60 fits 14 + 20 + 8 + pktgen's 16
    ({"dst6": "2001:2::2"}, 78),                       # IPv6: 14 + 40 + 8 + 16
    ({"vlan_id": 5}, 62),                              # a VLAN tag on 58
    ({"dst6": "2001:2::2", "vlan_id": 5, "svlan_id": 6}, 86),
    ({"mpls": "10,20"}, 66),                           # two labels on 58
])
def test_the_frame_reported_is_the_frame_sent(pktgen, dummy_dev, params, built):
    """Known answer, the link's own byte counter: a "64 B" point (pkt_size 60) whose headers
    do not fit is sent larger, and the run says by how much (pktgen's Result still says 60)."""
    tx = Path(f"/sys/class/net/{dummy_dev}/statistics/tx_bytes")
    before = int(tx.read_text())
    config = DeviceConfig(dummy_dev, {"count": 1000, "pkt_size": 60, **params})
    result = PktgenRun([config], pktgen=pktgen).run()
    status = result.devices[dummy_dev]
    assert result.sent == 1000 and status.result.pkt_size == 60
    assert (int(tx.read_text()) - before) / 1000 == built == status.frame_built
    assert status.frame_sent == built + 4
