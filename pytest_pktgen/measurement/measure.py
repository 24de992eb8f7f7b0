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
from ..host.irq import read_mask
from ..host.netdev import driver_info
from ..lab import losses
from ..lab.latency import clock_between, merged
from ..lab.rx import AFTER_TC_INGRESS, RxCount
from ..lab.topology import Topology, thread_configs
from ..pktgen.params import DeviceConfig
from ..run.runner import RunResult, Sample
from . import gates, report
from .point import AXIS_COLUMNS, Point, Settings
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
    tolerance: dict
    allow_devices: tuple[str, ...]
    progress: Progress | None = None
    search_baseline: dict | None = None  # the saved throughput searches by key

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
        find = self.results.find_search if search else self.results.find
        return gates.evaluate(
            subject, gates.of_kind(reqs, search), relative,
            lambda label: find(label, subject.point_key),
            self.search_baseline if search else self.baseline, self.baseline_path,
            self.tolerance, where=where, marked=marker is not None)


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
    point_params = point.params()
    if {"min_pkt_size", "max_pkt_size"} & params.keys():  # a size range instead of the frame
        point_params.pop("pkt_size", None)
    flags = tuple(dict.fromkeys((*settings.flags, *params.pop("flags", ()))))
    ipv6 = params.pop("ipv6", settings.ipv6)
    merged = {**settings.params, **point_params, **params}
    return thread_configs(topology, index, point.threads, settings.count, ipv6=ipv6,
                          flags=flags, **merged)


class Bench:
    """``pktgen_bench(topology, label=None, index=0, **params)``: see the fixture."""

    def __init__(self, request: pytest.FixtureRequest, point: Point, settings: Settings,
                 state: SessionState):
        self.request = request
        self.point = point
        self.settings = settings
        self.state = state
        self._measured: set[str] = set()  # baseline keys measured by this test

    def __call__(self, topology: Topology, *, label: str | None = None, index: int = 0,
                 **params) -> Measurement:
        point, settings = self.point, self.settings
        self._refuse_ambiguous(label)
        configs = device_configs(topology, index, point, settings, dict(params))
        threads = topology.pktgen.threads()
        if point.threads > len(threads):
            pytest.skip(f"{point.threads} pktgen threads asked, this machine has {len(threads)} "
                        f"(kpktgend_0..{len(threads) - 1})")
        counter = None
        if settings.rx and topology.sink is not None:
            # a backend counting after tc ingress takes over the sink's discard: it drops
            drop = {"drop": True} if (settings.rx in AFTER_TC_INGRESS
                                      and topology.sink_drop) else {}
            counter = self.request.getfixturevalue("rx_counter")(topology, settings.rx, **drop)
        tx = topology.tx[index]
        what = f"{self.request.node.name}" + (f" [{label}]" if label else "")
        rounds, counts, dropped, cpu_cost = self._rounds(topology, configs, counter, what, index)
        received = [c.packets for c in counts] if counter is not None else None
        device = {"name": tx.ifname, **({"host": tx.host} if tx.host else {}),
                  **host.on(None, tx.host).call(driver_info, tx.ifname, tx.netns),
                  "irq_affinity": _irq_affinity(topology)}
        latency = merged(c.latency for c in counts)
        across = clock_between(topology) if latency is not None else None
        row = Row.of(self.request.node.nodeid, self.request.node.originalname, point, label,
                     rounds, received, counter and counter.backend, device, topology.sink_mode,
                     latency=latency, drops=dropped, cpu=cpu_cost, counts=counts, clock=across)
        self.state.results.add(row)
        untrue = gates.untrue(row)
        failures, gated = self._gate(row)
        failures = untrue + failures
        row.gate = "FAIL" if failures else ("ok" if gated else "")
        self._record(row)
        measurement = Measurement(row, rounds, failures)
        if failures:
            pytest.fail("pktgen gate: " + "; ".join(failures), pytrace=False)
        return measurement

    # --- rounds --------------------------------------------------------------------------
    def _rounds(self, topology: Topology, configs, counter, what: str, index: int = 0):
        """Run the measured rounds (after the warm-up ones): their results, what the counter
        saw of each, the drop counters that moved over them and what they cost the CPUs (both
        read before the first measured round and after the last, reading costs time)."""
        s = self.settings
        where = losses.places(topology, index)
        generator = getattr(topology, "generator_ns", None)
        generator_host = getattr(topology, "generator_host", None)
        first, last = s.warmup + 1, s.warmup + s.rounds  # the measured rounds, counted from 1
        done = {"setup": 0, "teardown": 0}
        before: dict = {}  # the drop counters and CPU times before the first measured round
        after: dict = {}
        results: list[RunResult] = []
        received: list[RxCount] = []
        live: list = []
        ended: dict[int, bool] = {}
        watcher = self.state.progress.watcher(what) if self.state.progress else None

        def setup():
            done["setup"] += 1
            if counter is not None:
                counter.reset()
            if done["setup"] == first:
                before["drops"] = losses.snapshot(where)
            run = topology.prepare(configs, duration=s.duration or None, on_sample=watcher,
                                   allow_devices=self.state.allow_devices)
            run.setup()
            live.append(run)
            if done["setup"] == first:
                before["cpu"] = cpu.snapshot(generator, generator_host)
            return (run,), {}

        def target(run):
            run.start()
            ended[id(run)] = run.wait()

        def teardown(run):
            done["teardown"] += 1
            if done["teardown"] == last and "cpu" in before:
                after["cpu"] = cpu.snapshot(generator, generator_host)
            live.remove(run)
            result = run.finish(ended.pop(id(run), False))
            results.append(result)
            if counter is not None:
                try:
                    received.append(counter.settled(result.sent))
                except (OSError, LookupError) as err:
                    raise PktgenRunError(
                        f"pktgen sent {result.sent} packets at {result.pps:,} pps, but the "
                        f"{counter.backend} counter on {counter.ifname} in {counter.netns} "
                        f"could not be read ({err}): was the sink's link or namespace deleted "
                        "mid-run?", result.devices) from err
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
        return results[skip:], received[skip:], dropped, cost

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
