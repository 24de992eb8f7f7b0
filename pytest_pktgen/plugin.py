"""The pytest plugin: options, the --pktgen-vm re-run inside the VM lab, and the base fixtures."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import gates, ledger, leftovers, measure, module, options, report, sweep, topology, vm
from .errors import DeviceUnsupported, PktgenNotAvailable, VmLabError
from .guard import ModuleUse, NamespaceLock
from .proc import Pktgen

MARKERS = (
    "integration: needs the real pktgen module (the VM lab: --pktgen-vm)",
    "pktgen(count=, duration=, rounds=, warmup=, rx=, flags=, ipv6=, frame=, clone_skb=, "
    "flows=, threads=, **pktgen_params): configure this test's pktgen measurement "
    "(pktgen_bench); the marker wins over the --pktgen-* options",
    "pktgen_sweep(frame=[...], clone_skb=[...], flows=[...], threads=[...], **{param: [...]}): "
    "parametrize over every combination, ids like 64B-clone0-flows8192; frame sizes are on the "
    "wire with the FCS and default to --pktgen-sizes",
    "pktgen_gate(min_pps=, max_loss=, min_mbps=, min_ratio=, relative_to=): what this test's "
    "measurements must reach; numbers or {frame: number}; min_ratio compares pps with the "
    "measurement labelled relative_to at the same point, earlier in the session",
)
STATE = pytest.StashKey[measure.SessionState]()
LEFTOVERS = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    _cleanup_on_sigterm()
    config.stash[STATE] = _session_state(config)
    config.stash[LEFTOVERS] = _clean_leftovers()


def _clean_leftovers() -> list[str]:
    """Before anything starts: undo what killed sessions left here (NICs home, namespaces)."""
    if os.geteuid() != 0 or not (ledger.any_dead() or Pktgen().devices_here()):
        return []
    return leftovers.clean()[0]


def _session_state(config: pytest.Config) -> measure.SessionState:
    """The options checked against each other, thresholds and baseline files read: a
    UsageError for anything wrong."""
    options.check_usage(config)
    thresholds = options.get(config, "pktgen_thresholds")
    baseline = options.get(config, "pktgen_baseline")
    return measure.SessionState(
        results=report.Results(),
        requirements=gates.option_requirements(options.get(config, "pktgen_min_pps"),
                                               options.get(config, "pktgen_max_loss")),
        thresholds=gates.Thresholds.load(thresholds) if thresholds else None,
        baseline=gates.load_baseline(baseline) if baseline else None,
        baseline_path=baseline,
        tolerance=options.get(config, "pktgen_tolerance"),
        allow_devices=options.get(config, "pktgen_allow_dev"),
    )


def _cleanup_on_sigterm() -> None:
    """SIGTERM ends the session like Ctrl-C does: pytest then tears every fixture down, so
    namespaces, links, pktgen devices, IRQ masks and modules are undone (the default action
    would kill the process with all of them left behind)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # someone else handles it

    session_pid = os.getpid()

    def interrupt(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills for real
        if os.getpid() != session_pid:
            # A forked child (pyroute2 makes namespace sockets in some) must die as it would
            # have, not unwind the copy of pytest's stack it carries and run tests itself.
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, interrupt)


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
    _session_state(config)  # every usage error before a VM boots
    invocation = config.invocation_params
    out = Path(invocation.dir, options.get(config, "pktgen_out")).resolve()
    rwdirs = [str(invocation.dir), str(config.rootpath)]
    vm.check_shell_safe("--pktgen-out", str(out))  # before anything is made of it
    if options.given(config, "pktgen_out"):  # there for the guest's tests to write into
        out.mkdir(parents=True, exist_ok=True)
    if not out.is_relative_to(invocation.dir) and not out.is_relative_to(config.rootpath):
        out.mkdir(parents=True, exist_ok=True)
        rwdirs.append(str(out))
    opts = vm.VmOptions(
        kernel=options.get(config, "pktgen_vm_kernel"),
        cpus=options.get(config, "pktgen_vm_cpus"),
        memory=options.get(config, "pktgen_vm_memory"),
        nics=options.get(config, "pktgen_vm_nics"),
        kvm=options.get(config, "pktgen_vm_kvm"),
        timeout=options.get(config, "pktgen_vm_timeout"),
        test_timeout=options.get(config, "pktgen_vm_test_timeout"),
        rwdirs=rwdirs,
        cwd=str(invocation.dir),
    )
    args = options.strip_vm_args(list(invocation.args))
    return vm.run_pytest_in_vm(opts, args, echo=lambda s: print(s, flush=True))


def pytest_runtest_logstart(nodeid: str, location) -> None:
    """In the VM lab: tell the host's watchdog that a test starts (a hung one is stopped)."""
    vm.note_progress(nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A sweep point the device cannot do is an xfail with the reason, never an errno."""
    try:
        return (yield)
    except DeviceUnsupported as err:
        pytest.xfail(f"not applicable to this device: {err}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"pytest-pktgen: {line}" for line in config.stash.get(LEFTOVERS, [])]
    lab = vm.lab_info()
    if lab is None:
        return lines
    pairs = ", ".join(f"{a}<->{b}" for a, b in lab.pairs) or "none"
    return lines + [f"pktgen VM lab: kernel {lab.kernel_release}, {lab.accel.upper()}, "
                    f"{lab.cpus} vCPUs, {lab.memory}, NIC pairs (by MAC): {pairs}"]


KERNEL_INFO = pytest.StashKey["module.KernelInfo"]()
REPORTS = pytest.StashKey[dict]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``pktgen_sweep`` parametrizes the test's ``pktgen_point`` over every combination."""
    marker = metafunc.definition.get_closest_marker("pktgen_sweep")
    if marker is None:
        return
    where = metafunc.definition.nodeid
    if marker.args:
        sweep.bad(f"{where}: pktgen_sweep takes keyword lists only, e.g. "
                                "pktgen_sweep(frame=[64, 1500], clone_skb=[0, 1000])")
    if "pktgen_point" not in metafunc.fixturenames:
        sweep.bad(f"{where}: pktgen_sweep needs the test to use pktgen_bench "
                                "(or pktgen_point)")
    fixed = metafunc.definition.get_closest_marker("pktgen")
    points = sweep.sweep_points(metafunc.config, marker.kwargs, fixed.kwargs if fixed else {},
                                where)
    metafunc.parametrize("pktgen_point", points, ids=[p.id for p in points], indirect=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the reports and the baseline of whatever was measured."""
    state = session.config.stash.get(STATE, None)
    if state is None or not state.results.rows:
        return
    info = session.config.stash.get(KERNEL_INFO, None)
    state.results.environment = report.environment(info, vm.lab_info())
    out = options.get(session.config, "pktgen_out")
    paths = state.results.write(out)
    save = options.get(session.config, "pktgen_save_baseline")
    if save:
        gates.save_baseline(save, state.results.rows, state.results.environment)
        paths["baseline"] = Path(save)
    session.config.stash[REPORTS] = paths


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    info = config.stash.get(KERNEL_INFO, None)
    if info is not None:
        loaded = "loaded by this session" if info.loaded_by_us else "already loaded"
        terminalreporter.write_line(
            f"pktgen {info.pktgen_version} on Linux {info.kernel_release} ({loaded}): "
            f"{info.features.describe()}")
    state = config.stash.get(STATE, None)
    if state is None or not state.results.rows:
        return
    for title, lines in report.tables(state.results.rows):
        terminalreporter.section(f"pktgen: {title}", sep="-")
        for line in lines:
            terminalreporter.write_line(line)
    terminalreporter.write_line(report.UNITS)
    for kind, path in config.stash.get(REPORTS, {}).items():
        terminalreporter.write_line(f"pktgen {kind}: {Path(path).resolve()}")


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """The environment fingerprint goes into pytest-benchmark's saved runs too."""
    machine_info["pktgen"] = report.environment(config.stash.get(KERNEL_INFO, None),
                                                vm.lab_info())


def unavailable(message: str):
    """Fail inside the lab and in CI (a missing pktgen there is a broken lab); skip elsewhere."""
    if vm.lab_info() is not None or os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(f"{message} -- run with --pktgen-vm to use the VM lab")


# --- fixtures ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pktgen_module(pytestconfig):
    """The pktgen module, loaded if needed; yields its :class:`~pytest_pktgen.module.KernelInfo`.

    Unloads the module at the end only if a session of ours loaded it and no other session
    still uses it (see :class:`~pytest_pktgen.guard.ModuleUse`).
    """
    use = ModuleUse()  # other sessions may use the module too: the last one out unloads it
    try:
        loaded = module.load()
        if loaded:
            use.loaded_it()
        info = module.kernel_info(loaded_by_us=loaded)
    except PktgenNotAvailable as err:
        use.release(module.unload)
        unavailable(str(err))
    except BaseException:
        use.release(module.unload)  # no teardown follows a failed setup: undo it here
        raise
    pytestconfig.stash[KERNEL_INFO] = info
    yield info
    # reset acts on every device of the namespace: only when no other session runs here
    with NamespaceLock(None):
        pg = Pktgen()
        if pg.available and pg.devices():
            pg.reset()
    use.release(module.unload)


@pytest.fixture
def pktgen(pktgen_module) -> Pktgen:
    """pktgen of this network namespace, with no devices, held for this test alone (another
    session waits: start/stop/reset act on every device); every device is removed afterwards."""

    pg = Pktgen()
    with NamespaceLock(None):
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
    """The lab's crossover pairs, found by MAC, set up and IPv6-quiet; as found afterwards."""
    from . import netdev

    pairs, brought_up, ipv6_was = [], [], {}
    try:
        for tx_mac, rx_mac in lab.pairs:
            tx, rx = netdev.ifname_by_mac(tx_mac), netdev.ifname_by_mac(rx_mac)
            for ifname in (tx, rx):
                ipv6_was[ifname] = netdev.quiet(ifname)
                if netdev.set_state(ifname, "up"):
                    brought_up.append(ifname)
            pairs.append(NicPair(tx, rx, tx_mac, rx_mac))
        if not pairs:
            unavailable("the VM lab has no NIC pairs (--pktgen-vm-nics 0)")
        yield pairs
    finally:
        for ifname in brought_up:
            netdev.set_state(ifname, "down")
        for ifname, value in ipv6_was.items():
            netdev.quiet(ifname, value=value)


class _Made:
    """What a factory fixture made: undone in reverse order afterwards, every one tried, the
    first error raised after that (a failure to clean up is a failure)."""

    def __init__(self):
        self.things: list = []

    def add(self, thing):
        self.things.append(thing)
        return thing

    def undo(self, undo_one=lambda thing: thing.close()) -> None:
        errors = []
        for thing in reversed(self.things):
            try:
                undo_one(thing)
            except Exception as err:  # noqa: BLE001 - all undone, then reported
                errors.append(err)
        self.things.clear()
        if errors:
            raise errors[0]


def _topology(request, build, sink: bool = True, **kwargs):
    """Build a topology with the test's indirect parameters (a dict of keyword arguments); one
    with a sink discards there by ``--pktgen-sink`` unless they say ``discard``."""
    if sink:
        kwargs["discard"] = options.get(request.config, "pktgen_sink") == "discard"
    kwargs.update(getattr(request, "param", None) or {})
    topo = build(**kwargs)
    request.addfinalizer(topo.close)
    if topo.discard_error:
        request.node.warn(pytest.PytestWarning(f"{topo.name}: the sink cannot discard "
                                               f"pktgen's frames ({topo.discard_error}): they "
                                               "go up its stack, which costs pps"))
    return topo


@pytest.fixture
def veth(pktgen_module, request):
    """A veth pair: the generator end in a namespace of its own, the sink end in another.

    A :class:`~pytest_pktgen.topology.Topology`: ``.tx[0]``/``.sink`` carry ifname, MAC and
    addresses (198.18.0.1/.2, 2001:2::1/::2), ``.config(count=...)`` fills dst and dst_mac,
    ``.run(...)`` runs pktgen in the generator namespace. Both namespaces are removed after.
    Indirect parameters: ``{"ipv6": True}`` configures the IPv6 addresses too; ``{"discard":
    False}`` lets pktgen's frames go up the sink's stack (default: ``--pktgen-sink``, which
    counts and drops them at its tc ingress: ``.sink_mode``, ``.discard.read()``).
    """
    return _topology(request, topology.veth)


@pytest.fixture
def dummy(pktgen_module, request):
    """A dummy device in a namespace of its own: the paper's reproducible TX-only output."""
    return _topology(request, topology.dummy, sink=False)


@pytest.fixture
def crossover(pktgen_module, request, pytestconfig):
    """Two NICs joined by a cable, each moved into a namespace of its own (Figure 4).

    The NICs are ``--pktgen-dev``/``--pktgen-rx-dev`` on a real host, else the VM lab's first
    pair. They come back to this namespace as they were found afterwards.
    """
    tx, rx = options.get(pytestconfig, "pktgen_dev"), options.get(pytestconfig, "pktgen_rx_dev")
    if bool(tx) != bool(rx):
        raise pytest.UsageError("a crossover needs both --pktgen-dev and --pktgen-rx-dev")
    if not tx:
        pairs = request.getfixturevalue("lab_nic_pairs")
        tx, rx = pairs[0].tx, pairs[0].rx
    return _topology(request, topology.crossover, tx_nic=topology.Nic.named(tx),
                     rx_nic=topology.Nic.named(rx),
                     allow_devices=options.get(pytestconfig, "pktgen_allow_dev"))


@pytest.fixture
def forwarding(pktgen_module, request):
    """Generator -> router namespace (forwarding on) -> sink namespace (Figure 6). The frames
    are addressed to the router (``.next_hops``); ``.hops`` are its in/out ends."""
    return _topology(request, topology.forwarding)


@pytest.fixture
def forwarding_parallel(pktgen_module, request):
    """Forwarding with two generator links into the router, for two threads (Figure 7)."""
    return _topology(request, topology.forwarding, parallel=True)


@pytest.fixture
def pktgen_dut(request, pytestconfig, pktgen_module):
    """The device under test as a topology: a crossover (``--pktgen-dev`` with
    ``--pktgen-rx-dev``, or the VM lab's first NIC pair), or a NIC sending to a remote receiver
    (``--pktgen-dev`` with ``--pktgen-dst-mac``, optionally ``--pktgen-dst``)."""
    dst_mac = options.get(pytestconfig, "pktgen_dst_mac")
    if dst_mac:
        return _topology(request, topology.remote, sink=False,
                         tx_nic=options.get(pytestconfig, "pktgen_dev"), dst_mac=dst_mac,
                         dst=options.get(pytestconfig, "pktgen_dst"),
                         allow_devices=options.get(pytestconfig, "pktgen_allow_dev"))
    return request.getfixturevalue("crossover")


@pytest.fixture
def pktgen_point(request) -> sweep.Point:
    """This test's point: frame size, clone_skb, flows, threads (and any swept parameter), from
    its ``pktgen_sweep`` parametrization, else its ``pktgen`` marker, else the options."""
    if hasattr(request, "param"):
        return request.param
    marker = request.node.get_closest_marker("pktgen")
    return sweep.point_from_marker(request.config, marker.kwargs if marker else {},
                                   request.node.nodeid)


@pytest.fixture
def pktgen_settings(request) -> sweep.Settings:
    """Count (or duration) per round, rounds, receive counter and extra pktgen parameters:
    the ``pktgen`` marker over ``--pktgen-*`` options over ini keys over defaults."""
    marker = request.node.get_closest_marker("pktgen")
    return sweep.settings_for(request.config, marker.kwargs if marker else {},
                              request.node.nodeid)


@pytest.fixture
def pktgen_bench(request, pktgen_point, pktgen_settings) -> measure.Bench:
    """``pktgen_bench(topology, label=None, index=0, **params)`` measures pktgen on the
    topology's tx link ``index`` at this test's point: ``rounds`` rounds of ``count`` packets
    through pytest-benchmark (the first call of a test; later calls are timed alike but
    outside it), received frames counted at the sink (``rx``), every gate checked (the test
    fails with what was measured, what was required and by whom). Returns a
    :class:`~pytest_pktgen.measure.Measurement` (``.pps``, ``.mbps``, ``.loss_ratio``, ``.row``);
    ``label`` names a measurement that relative gates compare with. Each row goes to the
    session's table, CSV, JSON and plot; pktgen devices and counters are removed after."""
    state = request.config.stash[STATE]
    if state.progress is None:
        state.progress = measure.Progress(request.config)
    return measure.Bench(request, pktgen_point, pktgen_settings, state)


@pytest.fixture
def irq_pin():
    """``irq_pin(irqs, cpu)`` pins IRQs to one CPU and returns the
    :class:`~pytest_pktgen.irq.IrqPinning`; every mask is restored (and read back) afterwards."""
    from .irq import IrqPinning

    made = _Made()

    def pin(irqs, cpu: int):
        return made.add(IrqPinning(list(irqs), cpu))

    yield pin
    made.undo(lambda pinning: pinning.restore())


@pytest.fixture(scope="session")
def pgrx(pktgen_module):
    """The pgrx receive-counter module of kmod/: built with kbuild if needed and loaded; unloaded
    afterwards if this session loaded it."""
    from . import rx

    loaded = rx.load_kmod(pktgen_module.kernel_release)
    yield rx.KMOD_KO
    if loaded:
        rx.unload_kmod()


@pytest.fixture
def rx_counter(request):
    """``rx_counter(topology, backend, **options)``: a receive counter at the topology's sink,
    reset and ready. Backends: ifstats, tc, nft, kmod, patched (see :mod:`pytest_pktgen.rx`);
    tc/nft/kmod take ``port`` and ``drop``, patched ``drop``. Whatever a counter installed is
    removed afterwards.

    nft, kmod and patched count after tc ingress, where the sink discards pktgen's frames: the
    first of them lifts that discard, and the topology's ``sink_mode`` then says who drops
    them (a counter made with ``drop=True``) or that the sink's stack takes them."""
    from . import rx

    made = _Made()

    def make(topo, backend: str = "ifstats", **kwargs):
        if backend not in rx.BACKENDS:
            raise pytest.UsageError(f"rx_counter backend {backend!r}: one of "
                                    f"{', '.join(rx.BACKENDS)}")
        if backend == "kmod":
            request.getfixturevalue("pgrx")
        if backend in rx.AFTER_TC_INGRESS:
            topo.lift_discard()
        counter = made.add(rx.BACKENDS[backend](topo.sink.ifname, topo.sink.netns, **kwargs))
        if counter.drop and backend in rx.AFTER_TC_INGRESS:
            topo.dropper = counter
        counter.reset()
        return counter

    yield make
    made.undo()


@pytest.fixture
def sniffer(request):
    """``sniffer(topology, limit=5000)``: a scapy capture of port-9 frames inside the sink's
    namespace, started; ``.stop()`` returns the frames and
    :func:`pytest_pktgen.sniff.check` compares them with a config. A sample, not a count."""
    from .sniff import Sniffer

    made = _Made()

    def make(topo, limit: int = 5000):
        sniff = made.add(Sniffer(topo.sink.ifname, topo.sink.netns, limit))
        sniff.start()
        return sniff

    yield make
    made.undo()
