"""The VM lab itself: the real pktgen module loads, and a crossover pair carries every frame."""

from __future__ import annotations

import json
import os

import pytest
from accounting import CABLE_QUEUE

from pytest_pktgen import DeviceConfig, run
from pytest_pktgen.host.netdev import link_info, link_stats, nic_irqs, read_interrupts
from pytest_pktgen.lab.rx import settle

pytestmark = pytest.mark.integration

FRAMES = CABLE_QUEUE  # all of them fit in QEMU's queue: none is lost, whatever the load


def test_pktgen_module_is_real(pktgen_module, pktgen, lab):
    assert pktgen.available
    assert pktgen_module.pktgen_version == "2.75"
    assert pktgen_module.kernel_release == lab.kernel_release
    # one kpktgend thread per online CPU, as the module creates them
    assert pktgen.threads() == list(range(os.cpu_count()))
    assert pktgen.devices() == []


def test_the_guest_runs_its_python_from_cached_read_only_shares(lab, tmp_path):
    """The venv and the interpreter come over 9p shares the guest mounted with cache=loose
    (the root's mount caches nothing), read-only; the checkout stays writable."""
    import sys
    import sysconfig
    from pathlib import Path

    mounts = {f[1]: f for f in (line.split() for line in open("/proc/mounts"))}
    for path in (sys.prefix, sysconfig.get_path("stdlib")):
        resolved = Path(path).resolve()
        point = next(m for m in sorted(mounts, key=len, reverse=True)
                     if resolved.is_relative_to(m))
        _, _, fstype, options, *_ = mounts[point]
        assert (fstype, point) != ("9p", "/"), f"{path} is read from the uncached root"
        assert fstype == "9p" and {"ro", "loose"} <= set(options.split(",")), mounts[point]
        with pytest.raises(OSError):
            (resolved / "pytest-pktgen-write-probe").write_text("")
    (Path.cwd() / ".pytest-pktgen-write-probe").write_text("")
    (Path.cwd() / ".pytest-pktgen-write-probe").unlink()


def test_the_guest_keeps_time_with_the_tsc_holds_static_keys_and_logs_its_kernel(lab):
    """Under TCG the guest keeps time with the TSC (vm.TCG_CLOCK: an HPET read for every
    packet's stamp cost more than pgrx's work) and holds the static keys of ingress and
    PRE_ROUTING hooks on (a key flipped under traffic can wedge a vCPU: vm.HOLD_KEYS_NFT); its
    kernel log follows into the shared work directory, where the host reads it when the guest
    hangs."""
    import subprocess
    from pathlib import Path

    assert "Linux version" in Path(lab.kernel_log).read_text(errors="replace")
    if lab.accel != "tcg":
        pytest.skip(f"the keys are held under TCG only; this lab runs {lab.accel}")
    clock = "/sys/devices/system/clocksource/clocksource0/current_clocksource"
    assert Path(clock).read_text().strip() == "tsc"
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                            check=True).stdout
    assert "table netdev pytest_pktgen_keys" in tables, tables
    assert "table inet pytest_pktgen_keys" in tables, tables


def test_features_are_probed_from_the_module(pktgen_module, pktgen):
    features = pktgen_module.features
    assert features.not_supported_errno in (95, 524)
    if pktgen_module.kernel_version < (6, 7):  # the lab's Debian 6.1, as the reference says
        assert features == type(features)(shared_flag=False, ipsec=features.ipsec,
                                          name_equals_value=False, not_supported_errno=524)
    assert pktgen.devices() == []  # the probe ran in a namespace of its own
    # kept for this boot and this pktgen build: the next session does not probe again
    from dataclasses import asdict

    from pytest_pktgen.pktgen import module

    assert json.loads(module._features_cache().read_text()) == asdict(features)


def test_a_session_never_unloads_pktgen_from_under_another(pktgen_module, pytester):
    """A session that finds pktgen loaded leaves it; one that loads it leaves it too while
    another session (this one) still uses it: the last one out unloads it (tests/unit/
    test_guard.py; the leftover check at the end of this suite finds it unloaded)."""
    from pytest_pktgen.pktgen import module

    pytester.makepyfile("def test_uses(pktgen_module): assert pktgen_module.pktgen_version")
    assert pytester.runpytest_subprocess("-p", "no:cacheprovider").ret == 0
    assert module.PROC_DIR.exists()  # it was loaded before: left alone

    module.unload()
    try:
        assert not module.PROC_DIR.exists()
        assert pytester.runpytest_subprocess("-p", "no:cacheprovider").ret == 0
        assert module.PROC_DIR.exists()  # loaded by that session, left for this one
    finally:
        module.load()


def test_lab_nics_are_virtio_pairs(lab, lab_nic_pairs):
    assert len(lab_nic_pairs) == len(lab.pairs) >= 1
    for pair in lab_nic_pairs:
        for ifname, mac in ((pair.tx, pair.tx_mac), (pair.rx, pair.rx_mac)):
            info = link_info(ifname)
            assert info["mac"] == mac
            driver = os.path.basename(os.readlink(f"/sys/class/net/{ifname}/device/driver"))
            assert driver == "virtio_net"
            assert nic_irqs(ifname), f"{ifname} has no MSI-X interrupts"


@pytest.mark.parametrize("pair_index", [0])
def test_crossover_pair_carries_every_frame(pktgen, lab_nic_pairs, pair_index):
    pair = lab_nic_pairs[pair_index]
    rx_irqs = nic_irqs(pair.rx)
    irq_before = read_interrupts()
    tx_before, rx_before = link_stats(pair.tx), link_stats(pair.rx)

    config = DeviceConfig(pair.tx, {"count": FRAMES, "pkt_size": 60, "dst": "198.18.0.2",
                                    "dst_mac": pair.rx_mac})
    result = run(config, pktgen=pktgen)

    settle(lambda: (link_stats(pair.rx) - rx_before).rx_packets, FRAMES)
    tx_delta = link_stats(pair.tx) - tx_before
    rx_delta = link_stats(pair.rx) - rx_before
    status = result.devices[pair.tx]
    assert status.result.sofar == FRAMES
    assert status.result.errors == 0
    assert status.result.pkt_size == 60
    assert tx_delta.tx_packets == FRAMES
    assert rx_delta.rx_packets == FRAMES
    assert rx_delta.rx_bytes == FRAMES * 60
    irq_after = read_interrupts()
    # the receiving NIC's RX queue interrupt fired (NAPI batches: fewer IRQs than frames)
    fired = {irq_after[irq][1]: sum(irq_after[irq][0]) - sum(irq_before[irq][0])
             for irq in rx_irqs}
    assert any(n > 0 for name, n in fired.items() if "-input." in name), fired
    print(f"\n{pair.tx} -> {pair.rx}: {FRAMES} frames, {status.result.pps} pps, "
          f"{pair.rx} IRQs fired {fired}")
