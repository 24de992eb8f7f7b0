"""Measurements: a test's pktgen run, repeated as rounds of a fixed packet count through
pytest-benchmark, counted at the receiver, recorded for the reports and checked against gates.

Each round: the receive counter is reset and pktgen's devices are configured (untimed), then
``start`` to the end of the run is timed (pytest-benchmark's timer: seconds per round of N
packets, so ``--benchmark-compare-fail`` works), then the statistics are collected and the
devices removed (untimed). pps and Mb/s are pktgen's own figures, in ``extra_info``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest

from .. import host
from ..errors import PktgenRunError
from ..host import cpu
from ..host.clock import ClockOffset
from ..host.irq import read_mask
from ..host.netdev import driver_info
from ..lab import losses
from ..lab.latency import check_every, clock_between, every_for, merged
from ..lab.rx import AFTER_TC_INGRESS, RxCount, summed
from ..lab.topology import Topology
from ..pktgen.params import DeviceConfig
from ..run.multi import RunGroup
from ..run.runner import RunResult, Sample
from . import compare, gates, report
from .point import AXIS_COLUMNS, Point, Settings, point_configs
from .row import Row, key_of
from .search import SearchResult


@dataclass
class Measurement:
    """What :func:`pktgen_bench` measured: the report row and every round's RunResult."""

    row: Row
    rounds: list[RunResult]
    failures: list[str] = field(default_factory=list)

    @property
    def pps(self) -> float:
        return self.row.pps

    @property
    def mbps(self) -> float:
        return self.row.mbps

    @property
    def sent(self) -> int:
        return self.row.sent

    @property
    def received(self) -> int | None:
        return self.row.received

    @property
    def loss_ratio(self) -> float | None:
        return self.row.loss_ratio


BENCHMARK_TAKEN = pytest.StashKey[bool]()


def take_benchmark(node: pytest.Item) -> bool:
    """Whether ``node``'s pytest-benchmark fixture was taken already (it times one thing per
    test: the first measurement's rounds or search), taking it if not."""
    taken = node.stash.get(BENCHMARK_TAKEN, False)
    node.stash[BENCHMARK_TAKEN] = True
    return taken


@dataclass
class SessionState:
    """What the measurements of one session share: results, gates, baseline, progress."""

    results: report.Results
    requirements: list[gates.Requirement]
    thresholds: gates.Thresholds | None
    baseline: dict | None  # the saved measurements by key
    baseline_path: str | None
    baseline_thresholds: dict  # by metric: compare.DEFAULT_THRESHOLDS and the option's
    allow_devices: tuple[str, ...]
    progress: Progress | None = None
    search_baseline: dict | None = None  # the saved throughput searches by key
    confidence: float = compare.CONFIDENCE  # of a baseline comparison's interval

    def judge(self, subject: Row | SearchResult, node: pytest.Item, where: str
              ) -> gates.Verdict:
        """Every gate on ``node``'s measurement row or throughput search ``subject``: the
        options', the thresholds file's and the ``pktgen_gate`` marker's requirements (those
        that judge its kind), relative gates against the reference of its kind measured
        earlier at the same point (``where`` names it), the baseline."""
        search = isinstance(subject, SearchResult)
        reqs = list(self.requirements)
        if self.thresholds:
            reqs += self.thresholds.for_test(node.name, subject.frame)
        marker = node.get_closest_marker("pktgen_gate")
        relative = []
        if marker:
            plain, relative = gates.marker_requirements(marker.kwargs, node.nodeid)
            reqs += plain + gates.per_frame(marker.kwargs, subject.frame, node.nodeid)
        thresholds = self.baseline_thresholds
        if marker:
            thresholds = {**thresholds, **gates.marker_thresholds(marker.kwargs, node.nodeid)}
        find = self.results.find_search if search else self.results.find
        verdict = gates.evaluate(
            subject, gates.of_kind(reqs, search), relative,
            lambda label: find(label, subject.point_key),
            self.search_baseline if search else self.baseline, self.baseline_path,
            thresholds, self.confidence, where=where, marked=marker is not None)
        self.results.comparisons += verdict.comparisons
        for c in verdict.comparisons:
            if c.verdict == "undecided":
                node.warn(pytest.PytestWarning(f"pktgen baseline: {c.key}: {c.line()}"))
        return verdict


class Progress:
    """A live pps line while a run goes: rewritten in place on a terminal, otherwise a line
    every few seconds for runs long enough to need it."""

    EVERY_S = 5.0

    def __init__(self, config: pytest.Config):
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")
        self.capture = config.pluginmanager.get_plugin("capturemanager")
        self.tty = bool(self.reporter and self.reporter.isatty) and not os.environ.get("CI")

    def watcher(self, what: str):
        last: list = []

        def on_sample(sample: Sample) -> None:
            total = sum(max(0, n) for n in sample.sofar.values())
            if last:
                t0, n0, shown = last
                pps = (total - n0) / max(sample.t - t0, 1e-6)
                if self.tty or sample.t - shown >= self.EVERY_S:
                    self._show(f"{what}: {pps:,.0f} pps, {total:,} sent, {sample.t:.1f} s")
                    last[:] = [sample.t, total, sample.t if not self.tty else shown]
                    return
                last[:2] = [sample.t, total]
            else:
                last[:] = [sample.t, total, 0.0]

        return on_sample

    def _show(self, text: str) -> None:
        if self.reporter is None:
            return
        with self.capture.global_and_fixture_disabled() if self.capture else _nothing():
            if self.tty:
                self.reporter.write(f"\r  [pktgen] {text}\x1b[K", flush=True)
            else:  # flushed: a run killed at a deadline still shows what it had sent
                self.reporter.ensure_newline()
                self.reporter.write(f"  [pktgen] {text}\n", flush=True)

    def done(self) -> None:
        if self.tty and self.reporter is not None:
            with self.capture.global_and_fixture_disabled() if self.capture else _nothing():
                self.reporter.write("\r\x1b[K", flush=True)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def device_configs(topology: Topology, index: int, point: Point, settings: Settings,
                   params: dict) -> list[DeviceConfig]:
    """The point's configs: one device, or ``dev@N`` on threads 0..N-1 sharing the count."""
    return point_configs(topology, index, point, settings, params, settings.count)


@dataclass
class _Leg:
    """One generator's part of a measurement: its topology, device configs, receive counter,
    and its name among several (``""`` alone)."""

    topology: Topology
    configs: list[DeviceConfig]
    counter: object | None
    tag: str


def _tags(topologies) -> list[str]:
    """Each topology's name in a measurement of several: its generator's host (``here`` for
    this machine), numbered where two share one; ``""`` for a measurement of one."""
    if len(topologies) == 1:
        return [""]
    hosts = [getattr(t, "generator_host", None) or "here" for t in topologies]
    return [h if hosts.count(h) == 1 else f"{h}#{n}" for n, h in enumerate(hosts, 1)]


def _monotonic_offset(topology: Topology):
    """The generator machine's CLOCK_MONOTONIC against this one's (None: this machine)."""
    machine = getattr(topology, "generator_host", None)
    return None if machine is None else host.machine(machine).clock_offset()


def tx_facts(tx) -> dict:
    """A sending link's name, machine and driver facts, read on its machine (a remote
    generator's NIC there, never a NIC of the same name here)."""
    return {"name": tx.ifname, **({"host": tx.host} if tx.host else {}),
            **host.on(None, tx.host).call(driver_info, tx.ifname, tx.netns)}


def _device(legs: list[_Leg], index: int) -> dict:
    """The sending NIC(s) of a measurement: name, host, driver facts and IRQ masks; of
    several generators, each fact of each joined by "+" where they differ."""
    facts = []
    for leg in legs:
        tx = leg.topology.tx[index]
        facts.append({**tx_facts(tx),
                      "name": tx.ifname if len(legs) == 1 else f"{leg.tag}:{tx.ifname}",
                      "irq_affinity": _irq_affinity(leg.topology)})
    if len(facts) == 1:
        return facts[0]
    keys = list(dict.fromkeys(k for f in facts for k in f))
    return {k: "+".join(dict.fromkeys(str(f.get(k, "")) for f in facts)) for k in keys}


def _clock_of(legs: list[_Leg]) -> ClockOffset | None:
    """The sink's clock minus the generator's in every latency sample; of several generators,
    one interval holding each one's offset +- uncertainty (a generator on its sink's machine:
    0); None where every one is on its sink's machine."""
    clocks = [clock_between(leg.topology) for leg in legs]
    if all(c is None for c in clocks):
        return None
    if len(clocks) == 1:
        return clocks[0]
    clocks = [c or ClockOffset(0, 0) for c in clocks]
    low = min(c.offset_ns - c.uncertainty_ns for c in clocks)
    high = max(c.offset_ns + c.uncertainty_ns for c in clocks)
    return ClockOffset((low + high) // 2, (high - low + 1) // 2)


class Bench:
    """``pktgen_bench(topology, *more, label=None, index=0, **params)``: see the fixture."""

    def __init__(self, request: pytest.FixtureRequest, point: Point, settings: Settings,
                 state: SessionState):
        self.request = request
        self.point = point
        self.settings = settings
        self.state = state
        self._measured: set[str] = set()  # baseline keys measured by this test

    def __call__(self, topology: Topology, *more: Topology, label: str | None = None,
                 index: int = 0, **params) -> Measurement:
        point, settings = self.point, self.settings
        self._refuse_ambiguous(label)
        # this measurement's latency sample, over the test's
        every = check_every(params.pop("latency_every", settings.latency_every))
        topologies = (topology, *more)
        legs = []
        for topo, tag in zip(topologies, _tags(topologies), strict=True):
            configs = device_configs(topo, index, point, settings, dict(params))
            threads = topo.pktgen.threads()
            if point.threads > len(threads):
                pytest.skip(f"{point.threads} pktgen threads asked, this machine has "
                            f"{len(threads)} (kpktgend_0..{len(threads) - 1})")
            counter = None
            if settings.rx and topo.sink is not None:
                # a backend counting after tc ingress takes over the sink's discard: it drops
                drop = {"drop": True} if (settings.rx in AFTER_TC_INGRESS
                                          and topo.sink_drop) else {}
                counter = self.request.getfixturevalue("rx_counter")(topo, settings.rx, **drop)
                counter.sample_latency(every_for(every, configs))
            legs.append(_Leg(topo, configs, counter, tag))
        what = f"{self.request.node.name}" + (f" [{label}]" if label else "")
        rounds, counts, dropped, cpu_cost, apart = self._rounds(legs, what, index)
        counted = all(leg.counter is not None for leg in legs)
        received = [c.packets for c in counts] if counted else None
        device = _device(legs, index)
        latency = merged(c.latency for c in counts)
        across = _clock_of(legs) if latency is not None else None
        sinks = sorted({leg.topology.sink_mode for leg in legs})
        row = Row.of(self.request.node.nodeid, self.request.node.originalname, point, label,
                     rounds, received, legs[0].counter and legs[0].counter.backend, device,
                     "+".join(sinks), latency=latency, drops=dropped, cpu=cpu_cost,
                     counts=counts, clock=across)
        self.state.results.add(row)
        untrue = apart + gates.untrue(row)
        failures, gated = self._gate(row)
        failures = untrue + failures
        row.gate = "FAIL" if failures else ("ok" if gated else "")
        self._record(row)
        measurement = Measurement(row, rounds, failures)
        if failures:
            pytest.fail("pktgen gate: " + "; ".join(failures), pytrace=False)
        return measurement

    # --- rounds --------------------------------------------------------------------------
    def _rounds(self, legs: list[_Leg], what: str, index: int = 0):
        """Run the measured rounds (after the warm-up ones): their results, what the counters
        saw of each, the drop counters that moved over them, what they cost the CPUs (both
        read before the first measured round and after the last, reading costs time) and
        why the figures would not be true (generators' runs that did not overlap)."""
        s = self.settings
        where = {}
        for leg in legs:
            where.update({f"{leg.tag} {role}".strip(): place
                          for role, place in losses.places(leg.topology, index).items()})
        generators = list(dict.fromkeys(
            (getattr(leg.topology, "generator_ns", None),
             getattr(leg.topology, "generator_host", None)) for leg in legs))
        # several generators' runs: their clocks against this one's, to say whether they ran
        # together (pktgen's own start and stop stamps)
        offsets = {leg.tag: _monotonic_offset(leg.topology) for leg in legs} \
            if len(legs) > 1 else {}
        first, last = s.warmup + 1, s.warmup + s.rounds  # the measured rounds, counted from 1
        done = {"setup": 0, "teardown": 0}
        before: dict = {}  # the drop counters and CPU times before the first measured round
        after: dict = {}
        results: list[RunResult] = []
        received: list[RxCount] = []
        apart: list[str] = []
        live: list = []
        ended: dict[int, bool] = {}
        watcher = self.state.progress.watcher(what) if self.state.progress else None

        def cpu_now():
            return sum((cpu.snapshot(ns, machine) for ns, machine in generators[1:]),
                       cpu.snapshot(*generators[0]))

        def setup():
            done["setup"] += 1
            for leg in legs:
                if leg.counter is not None:
                    leg.counter.reset()
            if done["setup"] == first:
                before["drops"] = losses.snapshot(where)
            runs = {leg.tag: leg.topology.prepare(
                leg.configs, duration=s.duration or None,
                on_sample=watcher if len(legs) == 1 else None,
                allow_devices=self.state.allow_devices) for leg in legs}
            run = runs[legs[0].tag] if len(legs) == 1 else RunGroup(runs, offsets)
            run.setup()
            live.append(run)
            if done["setup"] == first:
                before["cpu"] = cpu_now()
            return (run,), {}

        def target(run):
            run.start()
            ended[id(run)] = run.wait()

        def teardown(run):
            done["teardown"] += 1
            if done["teardown"] == last and "cpu" in before:
                after["cpu"] = cpu_now()
            live.remove(run)
            result = run.finish(ended.pop(id(run), False))
            results.append(result)
            each = run.multi.results if isinstance(run, RunGroup) else {legs[0].tag: result}
            if isinstance(run, RunGroup) and not run.multi.together:
                apart.append(f"round {done['teardown']}: {run.multi.warning()}")
            counts = []
            for leg in legs:
                if leg.counter is None:
                    continue
                sent = each[leg.tag].sent
                try:
                    counts.append(leg.counter.settled(sent))
                except (OSError, LookupError) as err:
                    counter = leg.counter
                    raise PktgenRunError(
                        f"pktgen sent {sent} packets at {each[leg.tag].pps:,} pps, but the "
                        f"{counter.backend} counter on {counter.ifname} in {counter.netns} "
                        f"could not be read ({err}): was the sink's link or namespace deleted "
                        "mid-run?", result.devices) from err
            if counts:
                received.append(counts[0] if len(counts) == 1 else summed(counts))
            # after the count settled: what the frames it missed moved on their way
            if done["teardown"] == last and "drops" in before:
                after["drops"] = losses.snapshot(where)

        try:
            if not take_benchmark(self.request.node):
                benchmark = self.request.getfixturevalue("benchmark")
                benchmark.pedantic(target, setup=setup, teardown=teardown, rounds=s.rounds,
                                   warmup_rounds=s.warmup)
                for run in list(live):  # --benchmark-disable runs target once, no teardown
                    teardown(run)
            else:  # pytest-benchmark takes one measurement per test: time the others here
                for _ in range(s.warmup + s.rounds):
                    (run,), _kw = setup()
                    target(run)
                    teardown(run)
        finally:
            for run in live:
                run.cleanup()
            if self.state.progress:
                self.state.progress.done()
        skip = len(results) - min(s.rounds, len(results))
        dropped = losses.moved(before["drops"], after["drops"]) if "drops" in after else {}
        cost = after["cpu"] - before["cpu"] if "cpu" in after else None
        return results[skip:], received[skip:], dropped, cost, apart

    def _refuse_ambiguous(self, label: str | None) -> None:
        """Each measurement of a test needs its own baseline key: a second unlabelled (or
        same-labelled) pktgen_bench in one test would overwrite the first."""
        key = key_of(self.request.node.nodeid, label)
        if key in self._measured:
            pytest.fail(f"pktgen_bench: {self.request.node.nodeid} measures twice "
                        f"{f'with label={label!r}' if label else 'without a label'}; give each "
                        "measurement of a test its own label= (baselines and reports key on it)",
                        pytrace=False)
        self._measured.add(key)

    # --- gates and records ---------------------------------------------------------------
    def _gate(self, row: Row) -> tuple[list[str], bool]:
        """(failure messages, whether anything gates this measurement)."""
        verdict = self.state.judge(row, self.request.node, self.point.id or "this")
        row.ratio, row.baseline = verdict.ratio, verdict.baseline
        return verdict.failures, verdict.gated

    def _record(self, row: Row) -> None:
        """extra_info for pytest-benchmark, properties for JUnit XML."""
        keep = ("pps", "pps_min", "pps_max", "mbps", "l1_mbps", *AXIS_COLUMNS, "frame_sent",
                "avg_frame", "sizes", "where", "cpu_pktgen_ns", "cpu_softirq_ns", "pktgen_busy",
                "offered", "sent", "errors", "received", "loss", "loss_ratio", "rx_backend",
                "sink", "dev_name", "dev_driver", "dev_firmware", "gate", "label")
        columns = row.as_dict()
        info = {k: columns[k] for k in keep if k in columns}
        info["per_round"] = row.per_round  # every round's figures, for statistics later
        info["units"] = report.UNITS
        self.request.getfixturevalue("benchmark").extra_info.update(
            info if not row.label else {f"{row.label}.{k}": v for k, v in info.items()})
        prefix = f"pktgen_{row.label}_" if row.label else "pktgen_"
        for key in ("pps", "mbps", "loss_ratio", "frame", "gate"):
            self.request.node.user_properties.append((prefix + key, columns[key]))


def _irq_affinity(topology: Topology) -> str:
    """The sending NIC's IRQs and their CPU masks, e.g. ``24:1 25:2`` (empty for virtual links)."""
    nic = topology.nics.get("tx")
    if nic is None:
        return ""
    out = []
    for irq in nic.irqs:
        try:
            out.append(f"{irq}:{host.on(None, nic.host).call(read_mask, irq)}")
        except OSError:
            continue
    return " ".join(out)
