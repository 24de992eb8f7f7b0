"""The plugin's fixtures: the pktgen module and its namespace, the VM lab and its NIC pairs,
topologies, the measurement (``pktgen_bench``), IRQ pinning and receive counters."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import pytest

from . import host, options, sweep
from .errors import PktgenNotAvailable
from .host import netdev, nicstate
from .host.irq import IrqPinning
from .lab import rx, topology, vm
from .lab.sniff import Sniffer
from .measurement import measure, search
from .measurement.point import Point, Settings
from .measurement.row import key_of, point_key_of
from .pktgen import module
from .pktgen.proc import Pktgen
from .run.guard import ModuleUse, NamespaceLock
from .session import HOSTS, KERNEL_INFO, STATE


def unavailable(message: str):
    """Fail inside the lab and in CI (a missing pktgen there is a broken lab); skip elsewhere."""
    if vm.lab_info() is not None or os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(f"{message} -- run with --pktgen-vm to use the VM lab")


@pytest.fixture(scope="session")
def pktgen_module(pytestconfig):
    """The pktgen module, loaded if needed; yields its
    :class:`~pytest_pktgen.pktgen.module.KernelInfo`.

    Unloads the module at the end only if a session of ours loaded it and no other session
    still uses it (see :class:`~pytest_pktgen.run.guard.ModuleUse`).
    """
    use = ModuleUse()  # other sessions may use the module too: the last one out unloads it
    try:
        loaded = module.load()
        if loaded:
            use.loaded_it()
        info = module.kernel_info(loaded_by_us=loaded)
    except PktgenNotAvailable as err:
        use.release(module.unload)
        if pytestconfig.stash.get(HOSTS, None):  # this machine only drives the hosts
            yield None
            return
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
    with quiet_pairs(lab.pairs) as pairs:
        if not pairs:
            unavailable("the VM lab has no NIC pairs (--pktgen-vm-nics 0)")
        yield pairs


@contextlib.contextmanager
def quiet_pairs(macs: list[tuple[str, str]]):
    """The NIC pairs of ``macs`` (sending, receiving MAC), found, up and IPv6-quiet (so that
    their counters count pktgen's frames only); each NIC exactly as found afterwards.
    ``disable_ipv6`` flushes a NIC's IPv6 addresses, so each NIC's state is saved first and
    put back after (:mod:`~pytest_pktgen.host.nicstate`); what would not come back is an
    error naming it."""
    pairs, saved = [], {}
    try:
        for tx_mac, rx_mac in macs:
            tx, rx = netdev.ifname_by_mac(tx_mac), netdev.ifname_by_mac(rx_mac)
            for ifname in (tx, rx):
                saved[ifname] = nicstate.snapshot(ifname)
                netdev.quiet(ifname)
                netdev.set_state(ifname, "up")
            pairs.append(NicPair(tx, rx, tx_mac, rx_mac))
        yield pairs
    finally:
        problems = []
        for ifname, state in saved.items():
            if not state.up:
                netdev.set_state(ifname, "down")
            # quieting touches sysctls and the addresses (and routes) they flush, never the
            # NIC's qdiscs: those stay, and are not added again
            problems += [f"{ifname}: {p}" for p in nicstate.restore(state, keep_tc=True)]
        if problems:
            raise nicstate.NicNotRestored("the lab's NICs did not come back as found: "
                                          + "; ".join(problems))


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


def _lab_fixture(name: str, spec: topology.LabTopology):
    """The fixture of a topology the lab builds in namespaces (``topology.IN_NAMESPACES``)."""

    def fixture(pktgen_module, request):
        return _topology(request, spec.build, sink=spec.sink, **spec.kwargs)

    fixture.__name__ = fixture.__qualname__ = name
    fixture.__doc__ = spec.doc
    return pytest.fixture(name=name)(fixture)


for _name, _spec in topology.IN_NAMESPACES.items():
    globals()[_name] = _lab_fixture(_name, _spec)


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
    (tx_host, tx), (rx_host, rx) = options.split_dev(tx), options.split_dev(rx)
    return _topology(request, topology.crossover, tx_nic=topology.Nic.named(tx, tx_host),
                     rx_nic=topology.Nic.named(rx, rx_host),
                     allow_devices=options.get(pytestconfig, "pktgen_allow_dev"))


@pytest.fixture
def pktgen_dut(request, pytestconfig, pktgen_module):
    """The device under test as a topology: a crossover (``--pktgen-dev`` with
    ``--pktgen-rx-dev``, or the VM lab's first NIC pair), or a NIC sending to a remote receiver
    (``--pktgen-dev`` with ``--pktgen-dst-mac``, optionally ``--pktgen-dst``)."""
    dst_mac = options.get(pytestconfig, "pktgen_dst_mac")
    if dst_mac:
        tx_host, tx = options.split_dev(options.get(pytestconfig, "pktgen_dev"))
        return _topology(request, topology.remote, sink=False, tx_nic=tx, tx_host=tx_host,
                         dst_mac=dst_mac,
                         dst=options.get(pytestconfig, "pktgen_dst"),
                         allow_devices=options.get(pytestconfig, "pktgen_allow_dev"))
    return request.getfixturevalue("crossover")


@pytest.fixture
def pktgen_point(request) -> Point:
    """This test's point: frame size, clone_skb, flows, threads (and any swept parameter), from
    its ``pktgen_sweep`` parametrization, else its ``pktgen`` marker, else the options."""
    if hasattr(request, "param"):
        return request.param
    marker = request.node.get_closest_marker("pktgen")
    return sweep.point_from_marker(request.config, marker.kwargs if marker else {},
                                   request.node.nodeid)


@pytest.fixture
def pktgen_settings(request) -> Settings:
    """Count (or duration) per round, rounds, receive counter and extra pktgen parameters:
    the ``pktgen`` marker over ``--pktgen-*`` options over ini keys over defaults."""
    marker = request.node.get_closest_marker("pktgen")
    return sweep.settings_for(request.config, marker.kwargs if marker else {},
                              request.node.nodeid)


@pytest.fixture
def pktgen_bench(request, pktgen_point, pktgen_settings) -> measure.Bench:
    """``pktgen_bench(topology, *more, label=None, index=0, **params)`` measures pktgen on the
    topology's tx link ``index`` at this test's point: ``rounds`` rounds of ``count`` packets
    through pytest-benchmark (the first call of a test; later calls are timed alike but
    outside it), received frames counted at the sink (``rx``), every gate checked (the test
    fails with what was measured, what was required and by whom). Returns a
    :class:`~pytest_pktgen.measurement.measure.Measurement` (``.pps``, ``.mbps``,
    ``.loss_ratio``, ``.row``: the report's :class:`~pytest_pktgen.measurement.row.Row`, typed;
    ``row["errors"]`` by column name too);
    ``label`` names a measurement that relative gates compare with; ``params`` are pktgen
    parameters, and ``ipv6``, ``flags`` and ``latency_every`` this measurement's own. Each
    row goes to the session's table, CSV, JSON and plot; pktgen devices and counters are
    removed after.

    ``more`` topologies are measured together with the first: several generators (on several
    hosts, each topology's ``generator_host``) loading at once, the paper's Figure 7 across
    machines. Each round is set up on all (or none), started together and stopped with one
    stop; the row sums what they sent and what their sinks counted, its pps the sum of
    theirs, and names each sending NIC as ``host:ifname``. Runs that did not overlap in
    time (by pktgen's own stamps, on one clock) fail the measurement: their pps do not add
    up."""
    state = request.config.stash[STATE]
    if state.progress is None:
        state.progress = measure.Progress(request.config)
    return measure.Bench(request, pktgen_point, pktgen_settings, state)


@pytest.fixture
def pktgen_search(request, pktgen_point, pktgen_settings):
    """``pktgen_search(topology, rx=None, index=0, label=None, **settings)`` searches the
    topology's tx link ``index`` for its RFC 2544 throughput at this test's frame size, with
    MLRsearch: per loss ratio, the highest load whose trials lost no more (0: the NDR; 0.005:
    a PDR), counted by ``rx`` (default: the settings' receive counter; ``tc`` instead of
    ``ifstats`` at a real NIC's sink, whose counters count every frame that arrives) at the
    sink; a trial that counts more than pktgen offered fails.
    ``settings`` (loss_ratios, relative_width, trial_duration, final_trial_duration,
    duration_sum, exceed_ratio, min_load, max_load) win over the ``pktgen_search`` marker,
    which wins over the ``--pktgen-*`` options; ``pktgen_gate(min_ndr=, min_pdr=)`` and
    ``--pktgen-min-ndr``/``--pktgen-min-pdr`` gate it. Returns a
    :class:`~pytest_pktgen.measurement.search.SearchResult` (``.ndr_pps``, ``.pdr_pps``,
    every goal's bounds, every trial); the session's reports show it (searches.csv,
    results.json, a plot per search)."""
    marker = request.node.get_closest_marker("pktgen_search")
    after_tc_ingress = rx.AFTER_TC_INGRESS
    searched_keys: set[str] = set()

    def run(topology, *, rx: str | None = None, index: int = 0, label: str | None = None,
            **settings) -> search.SearchResult:
        chosen = sweep.search_settings_for(request.config, marker.kwargs if marker else {},
                                           request.node.nodeid, **settings)
        key = key_of(request.node.nodeid, label)
        if key in searched_keys:  # before minutes of trials: the second would overwrite
            pytest.fail(f"pktgen_search: {request.node.nodeid} searches twice "
                        f"{f'with label={label!r}' if label else 'without a label'}; give each "
                        "search of a test its own label= (baselines and reports key on it)",
                        pytrace=False)
        searched_keys.add(key)
        backend = rx or pktgen_settings.rx
        if backend == "ifstats" and getattr(topology, "nics", None):
            # a real NIC's counters count what else comes in (a switch's LLDP, STP): a trial
            # would read them as less loss, or more received than sent; tc counts pktgen's
            if rx is not None:
                raise pytest.UsageError(
                    "pktgen_search(rx='ifstats') on a real NIC: its counters count every frame "
                    "that arrives (a switch's LLDP or STP too), which a trial would take for "
                    "pktgen's; count pktgen's frames only: rx='tc', 'nft' or 'kmod'")
            backend = "tc"
        if backend is None or topology.sink is None:
            raise pytest.UsageError("pktgen_search needs a topology with a sink and a receive "
                                    "counter (rx=...): throughput is what arrives")
        drop = {"drop": True} if backend in after_tc_ingress and topology.sink_drop else {}
        counter = request.getfixturevalue("rx_counter")(topology, backend, **drop)
        def searched():
            return search.search(topology, counter, pktgen_point.frame, chosen, index,
                                 latency_every=pktgen_settings.latency_every,
                                 point=pktgen_point, measuring=pktgen_settings)

        if measure.take_benchmark(request.node):
            found = searched()
        else:  # pytest-benchmark times the search (one round) and keeps its NDR/PDR
            found = request.getfixturevalue("benchmark").pedantic(searched, rounds=1)
        tx = topology.tx[index]
        found.test, found.name, found.label = request.node.nodeid, request.node.originalname, label
        found.point_key = point_key_of(pktgen_point)
        found.rx_backend, found.sink = backend, topology.sink_mode
        found.device = measure.tx_facts(tx)
        state = request.config.stash[STATE]
        verdict = state.judge(found, request.node, pktgen_point.id or "this")
        found.gate = "FAIL" if verdict.failures else ("ok" if verdict.gated else "")
        found.ratio, found.baseline = verdict.ratio, verdict.baseline
        state.results.searches.append(found)
        _record_search(request, found)
        if verdict.failures:
            pytest.fail("pktgen gate: " + "; ".join(verdict.failures), pytrace=False)
        return found

    return run


def _record_search(request, found: search.SearchResult) -> None:
    """JUnit XML properties, and pytest-benchmark's extra_info (its saved runs and
    --benchmark-compare then carry the NDR/PDR)."""
    columns = found.as_dict()
    keep = ("frame", "ndr_pps", "ndr_l1_mbps", "pdr_loss_ratio", "pdr_pps", "pdr_l1_mbps",
            "irregular", "ndr_line_rate", "trial_count", "search_s", "gate")
    prefix = f"pktgen_{found.label}_" if found.label else "pktgen_"
    for key in keep:
        request.node.user_properties.append((prefix + key, columns[key]))
    info = {k: columns[k] for k in keep}
    request.getfixturevalue("benchmark").extra_info.update(
        info if not found.label else {f"{found.label}.{k}": v for k, v in info.items()})


@pytest.fixture
def irq_pin():
    """``irq_pin(irqs, cpu, host_name=None)`` pins IRQs of machine ``host_name`` (a --pktgen-host
    name; None: this one) to one CPU and returns the :class:`~pytest_pktgen.host.irq.IrqPinning`
    (made there); ``irq_pin(nic, cpu)`` pins a :class:`~pytest_pktgen.lab.topology.Nic`'s
    IRQs on its machine. Every mask is restored (and read back) afterwards; one left by a
    killed session is restored by the next (its ledger), one on a lost host by its agent."""
    made = _Made()

    def pin(irqs, cpu: int, host_name: str | None = None):
        if isinstance(irqs, topology.Nic):
            irqs, host_name = irqs.irqs, irqs.host
        return made.add(host.new_on(host_name, IrqPinning, list(irqs), cpu))

    yield pin
    made.undo()  # close(): the restore, and on another host the agent forgets it


@pytest.fixture(scope="session")
def pgrx(pktgen_module):
    """The pgrx receive-counter module of kmod/: built with kbuild if needed and loaded; unloaded
    afterwards if this session loaded it."""
    loaded = rx.load_kmod(pktgen_module.kernel_release)
    yield rx.KMOD_KO
    if loaded:
        rx.unload_kmod()


@pytest.fixture(scope="session")
def pgrx_hosts():
    """``pgrx_hosts(name)`` loads pgrx on a --pktgen-host, once a session: built here for its
    kernel where this machine has that kernel's headers, else built there (its headers), sent
    and loaded; unloaded where this session loaded it, at the end or when that host's
    connection closes, whichever comes first."""
    loaded, done = [], {}

    def ensure(name: str) -> None:
        machine = host.machine(name)
        if done.get(name) is machine:
            return
        release = machine.facts["kernel"]
        try:
            image = rx.build_kmod(release).read_bytes()
        except RuntimeError:  # no headers for that kernel here: build it there
            image = machine.call(rx.build_kmod_from, rx.kmod_sources(), release)
        if machine.call(rx.load_kmod_image, image):
            def unload(machine=machine):
                machine.call(rx.unload_kmod)

            loaded.append((machine, unload))
            machine.before_close.append(unload)  # a machine closed before the session ends
        done[name] = machine

    yield ensure
    for machine, unload in loaded:
        if unload in machine.before_close:
            machine.before_close.remove(unload)
            if machine.connected:
                unload()


@pytest.fixture
def rx_counter(request):
    """``rx_counter(topology, backend, **options)``: a receive counter at the topology's sink,
    reset and ready. Backends: ifstats, tc, nft, kmod, patched (see :mod:`pytest_pktgen.lab.rx`);
    tc/nft/kmod take ``port`` and ``drop``, patched ``drop``. Whatever a counter installed is
    removed afterwards.

    nft, kmod and patched count after tc ingress, where the sink discards pktgen's frames: the
    first of them lifts that discard, and the topology's ``sink_mode`` then says who drops
    them (a counter made with ``drop=True``) or that the sink's stack takes them."""
    made = _Made()

    def make(topo, backend: str = "ifstats", **kwargs):
        if backend not in rx.BACKENDS:
            raise pytest.UsageError(f"rx_counter backend {backend!r}: one of "
                                    f"{', '.join(rx.BACKENDS)}")
        sink = topo.sink
        host.on(None, sink.host).call(rx.refuse_gro, backend, sink.ifname, sink.netns)
        if backend == "kmod" and sink.host is not None:
            request.getfixturevalue("pgrx_hosts")(sink.host)
        elif backend == "kmod":
            request.getfixturevalue("pgrx")
        if backend in rx.AFTER_TC_INGRESS:
            topo.lift_discard()
        counter = made.add(host.new_on(sink.host, rx.BACKENDS[backend], sink.ifname, sink.netns,
                                       **kwargs))
        if counter.drop and backend in rx.AFTER_TC_INGRESS:
            topo.dropper = counter
        if getattr(counter, "hook_error", None):
            request.node.warn(pytest.PytestWarning(
                f"{topo.name}: pgrx counts at PRE_ROUTING, after the IP layer, which costs "
                f"pps: {counter.hook_error}"))
        counter.reset()
        return counter

    yield make
    made.undo()


@pytest.fixture
def sniffer(request):
    """``sniffer(topology, limit=5000)``: a scapy capture of port-9 frames inside the sink's
    namespace, started; ``.stop()`` returns the frames and
    :func:`pytest_pktgen.lab.sniff.check` compares them with a config. A sample, not a count."""
    made = _Made()

    def make(topo, limit: int = 5000):
        sniff = made.add(Sniffer(topo.sink.ifname, topo.sink.netns, limit))
        sniff.start()
        return sniff

    yield make
    made.undo()
