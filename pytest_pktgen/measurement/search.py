"""RFC 2544 throughput with MLRsearch: the highest rate a device forwards with no loss (NDR)
and with at most a small loss ratio (PDR), searched over trials of pktgen at an intended load.

pktgen has no duration: a trial of ``load`` pps for ``duration`` seconds is ``load x duration``
packets at ``ratep``, split over as many threads (``dev@N``) as keep each thread's delay at or
above :data:`MIN_THREAD_DELAY_S`. The run is cut at the intended duration plus a little
(:data:`LATE_SLACK`): a generator that cannot keep up leaves packets unsent, and MLRsearch
counts unsent packets as lost (its ``intended_count`` minus ``offered_count``), never hidden.
The receive counter at the sink is reset before and read after each trial, settled (frames in
flight when pktgen stops are not loss). Loss is what the draft means: offered (sent + refused
by the driver) minus received.

The search itself is FD.io CSIT's MLRsearch (PyPI ``MLRsearch``, the IETF BMWG draft "Multiple
Loss Ratio Search"): this module provides its trial measurer and turns its goal results into
pps figures.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import TYPE_CHECKING

from .. import host
from ..errors import PktgenConfigError, PktgenRunError
from ..host.clock import ClockOffset
from ..host.netdev import link_speed_mbps
from ..lab.latency import Latency, clock_between, every_for
from ..lab.topology import Topology
from ..pktgen.params import pkt_size_of
from .point import Point, Settings, point_configs
from .row import L1_OVERHEAD, key_of

if TYPE_CHECKING:
    from MLRsearch import MeasurementResult
    from MLRsearch import SearchGoal as MlrGoal

MIN_THREAD_DELAY_S = 200e-9  # each pktgen thread's delay at least this: well above its timer
LATE_SLACK = (1.05, 0.2)  # a trial runs at most duration x 1.05 + 0.2 s, then it is cut
MAX_LOAD_PROBE_S = 1.0  # the back-to-back trial that finds max load where no link speed is known
LATENCY_BACKENDS = ("kmod",)  # the receive counters that measure latency (pgrx)


def mlrsearch() -> ModuleType:
    """MLRsearch, imported when a search needs it: its dataclasses inspect the call stack as
    they are defined, and its import takes 0.3 s on a host and 10 s in the VM lab under TCG,
    which every pytest session (and every child session of the tests) would pay otherwise."""
    import MLRsearch

    return MLRsearch


@dataclass(frozen=True)
class Trial:
    """One trial: what was intended, what pktgen offered, what arrived."""

    intended_load: float  # pps
    intended_duration: float  # s
    intended_count: int
    sent: int  # accepted by the driver (pkts-sofar)
    errors: int  # refused by the driver: lost
    received: int
    duration: float  # pktgen's own elapsed time, s
    wall_s: float  # the trial's time with its setup and settling
    threads: int
    warmup: bool = False  # the warm-up trial at max load: MLRsearch ignores its result

    @property
    def offered(self) -> int:
        return self.sent + self.errors

    @property
    def unsent(self) -> int:
        """Packets the generator did not get to send within the trial's time."""
        return max(self.intended_count - self.offered, 0)

    @property
    def loss_ratio(self) -> float:
        """MLRsearch's trial loss ratio: lost and unsent packets over what was intended."""
        return self.result().loss_ratio

    def result(self) -> MeasurementResult:
        """The trial as MLRsearch reads it. A count-based run stops when pktgen has sent the
        count, so a frame the driver refused is attempted again on top: offered exceeds the
        intended count by the refusals, which MLRsearch would count twice (lost, and again as
        a negative unsent count: 1,000,000 sent, 3,000 refused, all received read as 0.598 %
        loss). The intended count is then what was offered: the refusals count once, as loss."""
        return mlrsearch().MeasurementResult(
            intended_duration=self.intended_duration, intended_load=self.intended_load,
            intended_count=max(self.intended_count, self.offered), offered_count=self.offered,
            forwarding_count=self.received, offered_duration=self.duration,
            duration_with_overheads=self.wall_s)

    def as_dict(self) -> dict:
        return {"intended_load": self.intended_load, "intended_duration": self.intended_duration,
                "intended_count": self.intended_count, "offered": self.offered,
                "sent": self.sent, "errors": self.errors, "received": self.received,
                "unsent": self.unsent, "loss_ratio": self.loss_ratio,
                "duration": self.duration, "wall_s": self.wall_s, "threads": self.threads,
                "warmup": self.warmup}


def threads_for(load: float, available: int) -> int:
    """Threads that keep each one's delay at or above MIN_THREAD_DELAY_S, at most ``available``
    (fewer than needed: the generator falls short, and the trial says so as unsent packets)."""
    return max(1, min(available, math.ceil(load * MIN_THREAD_DELAY_S)))


class PktgenMeasurer:
    """MLRsearch's trial measurer (its AbstractMeasurer's one method, :meth:`measure`; not
    subclassed, so that MLRsearch is imported only when a search runs): pktgen on
    ``topology``'s tx link ``index`` sending what ``point`` says (its frame, clone_skb,
    flows, imix, threads: :func:`~pytest_pktgen.measurement.point.point_configs`, as a
    measurement's rounds do; by default a point of ``frame`` bytes), counted by ``counter``
    at its sink; ``settings`` carry every point's parameters, ``params`` more."""

    def __init__(self, topology: Topology, counter, frame: int = 64, index: int = 0,
                 params: dict | None = None, latency_every: int | str = "auto", *,
                 point: Point | None = None, settings: Settings | None = None):
        self.topology, self.counter, self.index = topology, counter, index
        self.point = point or Point(frame=frame)
        self.frame = self.point.frame
        self.settings = settings or Settings()
        self.params = dict(params or {})
        self.latency_every = latency_every  # the latency trial's sample (every_for)
        self.trials: list[Trial] = []
        self.warmup_pending = False  # the next trial is MLRsearch's warm-up

    def configs(self, count: int, load: float | None, threads: int) -> list:
        """``count`` packets at ``load`` pps in all (None: as fast as it goes) on ``threads``."""
        params = {**self.params, **({"ratep": max(1, round(load / threads))} if load else {})}
        return point_configs(self.topology, self.index, self.point, self.settings, params,
                             count, threads)

    def trial(self, duration: float, load: float | None, latency: bool = False) -> Trial:
        """``load`` pps for ``duration`` s; ``load`` None: as fast as pktgen goes on one
        thread, for ``duration`` s (count 0). A throughput trial samples no latency (a
        sample costs the sink pps); a ``latency`` one samples as :attr:`latency_every` says."""
        # the point's threads, more where the load needs them to keep each one's pace
        threads = max(self.point.threads,
                      threads_for(load, len(self.topology.pktgen.threads())) if load else 1)
        count = max(1, round(load * duration)) if load else 0
        limit = duration * LATE_SLACK[0] + LATE_SLACK[1] if load else duration
        configs = self.configs(count, load, threads)
        self.counter.sample_latency(every_for(self.latency_every, configs) if latency else 0)
        started = time.monotonic()
        result = self.topology.run(configs, rx=[self.counter], duration=limit)
        elapsed = max(s.result.elapsed_us for s in result.devices.values()) / 1e6
        self.last_count = result.received[self.counter.backend]
        if self.last_count.packets > result.offered:  # MLRsearch would take it for loss
            raise PktgenRunError(
                f"a search trial at {load or 0:,.0f} pps: the {self.counter.backend} counter "
                f"counted {self.last_count.packets:,} frames, "
                f"{self.last_count.packets - result.offered:,} more than the {result.offered:,} "
                "pktgen offered: frames pktgen did not send were counted (a switch's LLDP or "
                "STP on a real NIC); count pktgen's frames only: rx='tc', 'nft' or 'kmod'")
        return Trial(float(load or 0), duration, count or result.offered, result.sent,
                     result.errors, self.last_count.packets, elapsed,
                     time.monotonic() - started, threads)

    def measure(self, intended_duration: float, intended_load: float) -> MeasurementResult:
        trial = self.trial(intended_duration, intended_load)
        if self.warmup_pending:
            trial, self.warmup_pending = replace(trial, warmup=True), False
        self.trials.append(trial)
        return trial.result()


@dataclass(frozen=True)
class Goal:
    """A search goal (MLRsearch's SearchGoal): the loss ratio a load may have and still count,
    the bounds' relative width, the trial durations, the exceed ratio."""

    loss_ratio: float = 0.0
    relative_width: float = 0.005
    initial_trial_duration: float = 1.0
    final_trial_duration: float = 1.0
    duration_sum: float = 1.0
    exceed_ratio: float = 0.5

    def mlr(self) -> MlrGoal:
        try:
            return mlrsearch().SearchGoal(
                loss_ratio=self.loss_ratio, relative_width=self.relative_width,
                initial_trial_duration=self.initial_trial_duration,
                final_trial_duration=self.final_trial_duration,
                duration_sum=self.duration_sum, exceed_ratio=self.exceed_ratio)
        except ValueError as err:
            raise PktgenConfigError("goal", self, str(err)) from None


@dataclass(frozen=True)
class SearchSettings:
    """How a search runs: its goals' loss ratios and shared settings, the load's range
    (``max_load`` None: the link's speed where known, else measured back-to-back)."""

    loss_ratios: tuple[float, ...] = (0.0, 0.005)
    relative_width: float = 0.005
    trial_duration: float = 1.0  # the first trials' duration
    final_trial_duration: float = 1.0  # the bounds' trials' duration
    duration_sum: float = 1.0  # seconds of trials a bound needs
    exceed_ratio: float = 0.5
    min_load: float = 1000.0
    max_load: float | None = None
    warmup: float = 0.0  # seconds of a warm-up trial at max load first (0: none)

    def goals(self) -> list[Goal]:
        """The goals, checked as MLRsearch checks them (a PktgenConfigError if not)."""
        if not self.loss_ratios or len(set(self.loss_ratios)) != len(self.loss_ratios):
            raise PktgenConfigError("loss_ratios", self.loss_ratios,
                                    "one loss ratio or more, each once, from 0 to below 1")
        goals = [Goal(ratio, self.relative_width, self.trial_duration,
                      self.final_trial_duration, self.duration_sum, self.exceed_ratio)
                 for ratio in self.loss_ratios]
        for goal in goals:
            goal.mlr()
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, (int, float)) or \
                not 0 <= self.warmup <= 3600:
            raise PktgenConfigError("warmup", self.warmup,
                                    "seconds of a warm-up trial at max load, 0 (none) to 3600")
        if self.max_load is not None and not 0 < self.min_load < self.max_load:
            raise PktgenConfigError("min_load", self.min_load,
                                    f"a load above 0 and below max_load {self.max_load:,.0f}")
        return goals


@dataclass(frozen=True)
class GoalResult:
    """What the search found for one goal, in pps: the relevant lower and upper bounds and the
    conditional throughput (the lower bound's forwarding rate). ``irregular``: no upper bound,
    every trial at max load met the goal."""

    goal: Goal
    lower_pps: float | None
    upper_pps: float | None
    throughput_pps: float | None

    @property
    def irregular(self) -> bool:
        return self.upper_pps is None

    def as_dict(self) -> dict:
        """In MLRsearch's own form: the search goal, the relevant bounds and the conditional
        throughput (pps), and whether it is irregular."""
        g = self.goal
        return {"search_goal": {"loss_ratio": g.loss_ratio, "exceed_ratio": g.exceed_ratio,
                                "relative_width": g.relative_width,
                                "initial_trial_duration": g.initial_trial_duration,
                                "final_trial_duration": g.final_trial_duration,
                                "duration_sum": g.duration_sum},
                "relevant_lower_bound": self.lower_pps, "relevant_upper_bound": self.upper_pps,
                "conditional_throughput": self.throughput_pps, "irregular": self.irregular}


@dataclass
class SearchResult:
    """A search at one frame size: per goal its result, every trial, the max load and where it
    came from, and the search's own time."""

    frame: int
    goals: list[GoalResult]
    trials: list[Trial]
    max_load: float
    max_load_from: str  # "link speed", "measured back-to-back" or "given"
    search_s: float
    min_load: float = 0.0
    line_rate_pps: float | None = None  # at this frame size, where the link's speed is known
    # RFC 2544's latency test: every packet's latency in a trial at the NDR's lower bound
    # (latency_load, pps), where the counter measures it (kmod)
    latency: Latency | None = None
    latency_load: float | None = None
    # that latency stamped on one machine and read on another: the sink's clock minus the
    # generator's, in every sample (None: one machine, one clock)
    latency_clock: ClockOffset | None = None
    # where it was searched, for the reports (the pytest surface fills them in)
    test: str = ""
    name: str = ""
    label: str | None = None
    point_key: tuple = ()  # the sweep point's coordinates (relative gates compare at one)
    rx_backend: str | None = None
    sink: str = ""
    device: dict[str, str] = field(default_factory=dict)
    # the gates' verdicts (filled in after): "ok", "FAIL" or "" (nothing gates it); the NDR
    # against a relative gate's reference; against the baseline, the worst verdict of its
    # metrics (compare.VERDICTS) or "none" (not in it)
    gate: str = ""
    ratio: float | None = None
    baseline: str | None = None

    @property
    def key(self) -> str:
        """Its key in baselines (a search's own section): the test's node id and the label."""
        return key_of(self.test, self.label)

    def goal(self, loss_ratio: float) -> GoalResult:
        for result in self.goals:
            if result.goal.loss_ratio == loss_ratio:
                return result
        raise KeyError(f"no goal with loss ratio {loss_ratio} in this search")

    @property
    def ndr_pps(self) -> float | None:
        """The zero-loss goal's conditional throughput (RFC 2544 throughput)."""
        return next((g.throughput_pps for g in self.goals if g.goal.loss_ratio == 0.0), None)

    @property
    def pdr_pps(self) -> float | None:
        """The smallest non-zero loss ratio goal's conditional throughput."""
        partial = [g for g in self.goals if g.goal.loss_ratio > 0.0]
        return min(partial, key=lambda g: g.goal.loss_ratio).throughput_pps if partial else None

    @property
    def pdr_loss_ratio(self) -> float | None:
        partial = [g.goal.loss_ratio for g in self.goals if g.goal.loss_ratio > 0.0]
        return min(partial) if partial else None

    @property
    def irregular(self) -> bool:
        """Some goal had no upper bound: no loss (beyond it) even at the max load."""
        return any(g.irregular for g in self.goals)

    def as_dict(self) -> dict:
        """The search as a row of the reports (searches.csv): its throughputs in pps, Mb/s
        and L1 Mb/s, where and how it was searched."""
        ndr, pdr = self.ndr_pps, self.pdr_pps
        return {
            "test": self.test, "name": self.name, "label": self.label, "frame": self.frame,
            "pkt_size": pkt_size_of(self.frame),
            "ndr_pps": ndr, "ndr_mbps": self.mbps(ndr), "ndr_l1_mbps": self.l1_mbps(ndr),
            "pdr_loss_ratio": self.pdr_loss_ratio, "pdr_pps": pdr, "pdr_mbps": self.mbps(pdr),
            "pdr_l1_mbps": self.l1_mbps(pdr), "irregular": self.irregular,
            "ndr_line_rate": self.share_of_line_rate(ndr),
            **self.latency_columns(),
            "max_load": self.max_load, "max_load_from": self.max_load_from,
            "line_rate_pps": self.line_rate_pps,
            "min_load": self.min_load, "trial_count": len(self.trials), "search_s": self.search_s,
            "rx_backend": self.rx_backend, "sink": self.sink,
            **{f"dev_{k}": v for k, v in self.device.items()},
            "gate": self.gate, "ratio": self.ratio, "baseline": self.baseline,
        }

    def latency_columns(self) -> dict:
        """The latency at the NDR: its load, p50/p99/max µs and its sample (one sequence
        number in ``ndr_lat_every``; None where not measured)."""
        pct = self.latency.percentiles() if self.latency else {}
        clock = self.latency_clock
        return {"latency_load": self.latency_load,
                **{f"ndr_lat_{k}_us": pct.get(k) for k in ("p50", "p99", "max")},
                "ndr_lat_every": self.latency.every if self.latency else None,
                **({"lat_clock_offset_us": clock.offset_ns / 1e3,
                    "lat_clock_uncertainty_us": clock.uncertainty_ns / 1e3} if clock else {})}

    def detail(self) -> dict:
        """Every goal's result in MLRsearch's form and every trial, for results.json (and
        the latency at the NDR, every sample, HdrHistogram's encoding)."""
        out = {"goals": [g.as_dict() for g in self.goals],
               "trials": [t.as_dict() for t in self.trials]}
        if self.latency is not None and self.latency.samples:
            out["latency_hdr"] = self.latency.encoded()
        return out

    def share_of_line_rate(self, pps: float | None) -> float | None:
        """``pps`` as a share of the link's line rate at this frame size, where it is known."""
        return None if pps is None or not self.line_rate_pps else pps / self.line_rate_pps

    def mbps(self, pps: float | None) -> float | None:
        """Mb/s at ``pps`` without FCS, as pktgen counts them."""
        return None if pps is None else pps * pkt_size_of(self.frame) * 8 / 1e6

    def l1_mbps(self, pps: float | None) -> float | None:
        """Mb/s on the wire at ``pps``: FCS, preamble and gap included."""
        return None if pps is None else pps * (self.frame + L1_OVERHEAD) * 8 / 1e6


def line_rate_pps(speed_mbps: int, frame: int) -> float:
    """The most frames of ``frame`` bytes a link of ``speed_mbps`` carries per second."""
    return speed_mbps * 1e6 / ((frame + L1_OVERHEAD) * 8)


def search(topology: Topology, counter, frame: int = 64,
           settings: SearchSettings = SearchSettings(), index: int = 0,
           search_duration_max: float = 600.0, params: dict | None = None,
           latency_every: int | str = "auto", *, point: Point | None = None,
           measuring: Settings | None = None) -> SearchResult:
    """Search ``topology``'s tx link ``index`` at ``frame`` bytes for each goal's throughput,
    counting at its sink with ``counter`` (a receive counter that counts, not the sniffer).
    Max load: the settings' if given, else the link's speed where known, else what pktgen
    sends back-to-back (one thread, :data:`MAX_LOAD_PROBE_S`). Latency is measured in a trial
    of its own at the NDR, sampled as ``latency_every`` says (the throughput trials sample
    none). ``point`` (a sweep's) says what each trial sends, ``measuring`` the settings of
    every point (pktgen parameters, flags), as for a measurement."""
    goals = settings.goals()
    min_load, max_load = settings.min_load, settings.max_load
    measurer = PktgenMeasurer(topology, counter, frame, index, params, latency_every,
                              point=point, settings=measuring)
    frame = measurer.frame
    started = time.monotonic()
    source = "given"
    tx = topology.tx[index]
    speed = host.on(None, tx.host).call(link_speed_mbps, tx.ifname, tx.netns)
    line_rate = line_rate_pps(speed, frame) if speed else None
    if max_load is None:
        if line_rate:
            max_load, source = line_rate, "link speed"
        else:
            probe = measurer.trial(MAX_LOAD_PROBE_S, None)
            max_load, source = probe.offered / max(probe.duration, 1e-6), "measured back-to-back"
    if not 0 < min_load < max_load:
        raise PktgenConfigError("min_load", min_load, f"a load in pps above 0 and below the "
                                f"max load, {max_load:,.0f} pps ({source})")
    lib = mlrsearch()
    config = lib.Config()
    config.goals = [g.mlr() for g in goals]
    config.min_load = min(float(min_load), config.min_load)  # each checked against the other
    config.max_load = float(max_load)
    config.min_load = float(min_load)
    config.search_duration_max = float(search_duration_max)
    config.warmup_duration = float(settings.warmup) or None
    measurer.warmup_pending = bool(settings.warmup)
    found = lib.MultipleLossRatioSearch(config=config).search(measurer=measurer,
                                                              debug=lambda _: None)
    results = []
    for goal in goals:
        mlr = found[goal.mlr()]
        low, high, cond = (mlr.relevant_lower_bound, mlr.relevant_upper_bound,
                           mlr.conditional_throughput)
        results.append(GoalResult(goal, None if low is None else float(low),
                                  None if high is None else float(high),
                                  None if cond is None else float(cond)))
    # RFC 2544's latency test: at the throughput found, where the counter measures latency
    ndr = next((r for r in results if r.goal.loss_ratio == 0.0 and r.lower_pps), None)
    latency = across = None
    if ndr is not None and counter.backend in LATENCY_BACKENDS:
        measurer.trial(settings.final_trial_duration, ndr.lower_pps, latency=True)
        latency = measurer.last_count.latency
        across = clock_between(topology) if latency is not None else None
    return SearchResult(frame, results, measurer.trials, float(max_load), source,
                        time.monotonic() - started, float(min_load), line_rate,
                        latency=latency, latency_load=ndr.lower_pps if latency else None,
                        latency_clock=across)
