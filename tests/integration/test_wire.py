"""The wire protocol against the real module: errno, Result checks, short writes, deadlines."""

from __future__ import annotations

import errno
import time

import pytest

from pytest_pktgen import (
    DeviceConfig,
    PktgenConfigError,
    PktgenResultError,
    PktgenRun,
    PktgenRunError,
    PktgenWriteError,
)
from pytest_pktgen.links import dummy_link
from pytest_pktgen.netdev import set_state
from pytest_pktgen.proc import write_command

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
        with pytest.raises(PktgenConfigError, match="has no shared-skb support"):
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
    config = DeviceConfig(dummy_dev, {"count": 2000, "pkt_size": 60, "ratep": 10_000,
                                  "dst": "198.18.0.2"})
    result = PktgenRun([config], pktgen=pktgen).run().devices[dummy_dev].result
    assert result.sofar == 2000
    assert result.pps == pytest.approx(10_000, rel=0.1)


def test_deadline_stops_the_run_and_reports_partial_results(pktgen, dummy_dev):
    config = DeviceConfig(dummy_dev, {"count": 1_000_000, "pkt_size": 60, "ratep": 1000,
                                  "dst": "198.18.0.2"})
    started = time.monotonic()
    with pytest.raises(PktgenRunError, match="did not finish within its deadline of 2s") as info:
        PktgenRun([config], pktgen=pktgen, timeout=2).run()
    assert time.monotonic() - started < 10
    partial = info.value.results[dummy_dev].result
    assert 0 < partial.sofar < 1_000_000
    assert pktgen.devices() == []


def test_device_going_down_ends_its_run(pktgen, dummy_dev):
    """A device whose link goes down stops at its next xmit: a short, still 'OK' result."""
    config = DeviceConfig(dummy_dev, {"count": 10_000_000, "pkt_size": 60, "ratep": 20_000,
                                  "dst": "198.18.0.2"})
    with PktgenRun([config], pktgen=pktgen, timeout=30) as run:
        run.start()
        time.sleep(1.0)
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
