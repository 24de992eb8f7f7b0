"""The pytest plugin: options, the --pktgen-vm re-run inside the VM lab, and the base fixtures."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import module, options, vm
from .errors import PktgenNotAvailable, VmLabError
from .proc import Pktgen


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs the real pktgen module (the VM lab: --pktgen-vm)")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config):
    """With --pktgen-vm on the host: run the same pytest session in the VM lab instead."""
    try:
        return _run_in_vm(config)
    except (VmLabError, pytest.UsageError) as err:
        print(f"ERROR: pytest-pktgen VM lab: {err}", file=sys.stderr, flush=True)
        return pytest.ExitCode.USAGE_ERROR


def _run_in_vm(config: pytest.Config):
    if not options.get(config, "pktgen_vm") or vm.lab_info() is not None:
        return None
    invocation = config.invocation_params
    out = options.get(config, "pktgen_out")
    rwdirs = [str(invocation.dir), str(config.rootpath)]
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        rwdirs.append(str(Path(out).resolve()))
    opts = vm.VmOptions(
        kernel=options.get(config, "pktgen_vm_kernel"),
        cpus=options.get(config, "pktgen_vm_cpus"),
        memory=options.get(config, "pktgen_vm_memory"),
        nics=options.get(config, "pktgen_vm_nics"),
        kvm=options.get(config, "pktgen_vm_kvm"),
        timeout=options.get(config, "pktgen_vm_timeout"),
        rwdirs=rwdirs,
        cwd=str(invocation.dir),
    )
    args = options.strip_vm_args(list(invocation.args))
    return vm.run_pytest_in_vm(opts, args, echo=lambda s: print(s, flush=True))


def pytest_report_header(config: pytest.Config) -> list[str]:
    lab = vm.lab_info()
    if lab is None:
        return []
    pairs = ", ".join(f"{a}<->{b}" for a, b in lab.pairs) or "none"
    return [f"pktgen VM lab: kernel {lab.kernel_release}, {lab.accel.upper()}, {lab.cpus} vCPUs, "
            f"{lab.memory}, NIC pairs (by MAC): {pairs}"]


KERNEL_INFO = pytest.StashKey["module.KernelInfo"]()


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    info = config.stash.get(KERNEL_INFO, None)
    if info is not None:
        loaded = "loaded by this session" if info.loaded_by_us else "already loaded"
        terminalreporter.write_line(
            f"pktgen {info.pktgen_version} on Linux {info.kernel_release} ({loaded}): "
            f"{info.features.describe()}")


def unavailable(message: str):
    """Fail inside the lab and in CI (a missing pktgen there is a broken lab); skip elsewhere."""
    if vm.lab_info() is not None or os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(f"{message} -- run with --pktgen-vm to use the VM lab")


# --- fixtures ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pktgen_module(pytestconfig):
    """The pktgen module, loaded if needed; yields its :class:`~pytest_pktgen.module.KernelInfo`.

    Unloads the module at the end only if this fixture loaded it.
    """
    try:
        loaded = module.load()
    except PktgenNotAvailable as err:
        unavailable(str(err))
    info = module.kernel_info(loaded_by_us=loaded)
    pytestconfig.stash[KERNEL_INFO] = info
    yield info
    pg = Pktgen()
    if pg.available and pg.devices():
        pg.reset()
    if loaded:
        module.unload()


@pytest.fixture
def pktgen(pktgen_module) -> Pktgen:
    """pktgen of this network namespace, with no devices; every device is removed afterwards."""
    pg = Pktgen()
    if pg.devices():
        pg.reset()
    yield pg
    if pg.devices():
        pg.reset()


@pytest.fixture(scope="session")
def lab() -> vm.LabInfo:
    """The VM lab's description (kernel, accel, NIC pairs by MAC); outside the lab a skip/fail."""
    info = vm.lab_info()
    if info is None:
        unavailable("not inside the pytest-pktgen VM lab")
    return info


@dataclass(frozen=True)
class NicPair:
    """Two NICs joined by a cable: frames sent on ``tx`` arrive on ``rx``."""

    tx: str
    rx: str
    tx_mac: str
    rx_mac: str


@pytest.fixture(scope="session")
def lab_nic_pairs(lab) -> list[NicPair]:
    """The lab's crossover pairs, found by MAC and set up; set down again afterwards."""
    from . import netdev

    pairs, brought_up = [], []
    try:
        for tx_mac, rx_mac in lab.pairs:
            tx, rx = netdev.ifname_by_mac(tx_mac), netdev.ifname_by_mac(rx_mac)
            for ifname in (tx, rx):
                netdev.quiet(ifname)
                if netdev.set_state(ifname, "up"):
                    brought_up.append(ifname)
            pairs.append(NicPair(tx, rx, tx_mac, rx_mac))
        if not pairs:
            unavailable("the VM lab has no NIC pairs (--pktgen-vm-nics 0)")
        yield pairs
    finally:
        for ifname in brought_up:
            netdev.set_state(ifname, "down")


@pytest.fixture
def dummy(pktgen_module) -> str:
    """A fresh dummy device, up, with a unique name; deleted afterwards."""
    from .links import dummy_link

    with dummy_link() as name:
        yield name


@pytest.fixture
def veth(pktgen_module) -> tuple[str, str]:
    """A fresh veth pair (name, peer), both up, in this namespace; deleted afterwards."""
    from .links import veth_link

    with veth_link() as names:
        yield names
