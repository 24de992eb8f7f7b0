"""Several pktgen runs as one: on several machines (generator hosts loading one device) or
namespaces. Each is set up (all refused if one is), all are started together, one stop goes to
all at once at the end (or each ends by its count), and each is collected. Their spans, from
pktgen's own started/stopped stamps mapped onto this machine's clock
(:mod:`pytest_pktgen.host.clock`), say whether they ran together: pps of runs that did not
overlap do not add up, and the result says so.

A run is a :class:`~pytest_pktgen.run.runner.PktgenRun` here or one on another machine
(:func:`~pytest_pktgen.run.remote.new_run`): only its methods are used.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import PktgenRunError
from ..host.clock import ClockOffset
from .runner import RunResult

TOGETHER = 0.9  # runs ran together when their common time covers this share of each


@dataclass
class MultiResult:
    """Each run's result by name, their spans on this machine's clock (seconds, monotonic)."""

    results: dict[str, RunResult]
    spans: dict[str, tuple[float, float]]
    uncertainty_s: float = 0.0  # of the spans, from the clock offsets
    notes: list[str] = field(default_factory=list)

    @property
    def common_s(self) -> float:
        """Seconds every run was running at once (0 when some never overlapped)."""
        if not self.spans:
            return 0.0
        start = max(s for s, _ in self.spans.values())
        stop = min(e for _, e in self.spans.values())
        return max(0.0, stop - start)

    @property
    def together(self) -> bool:
        """Whether the runs ran at the same time: their common time covers most of each."""
        common = self.common_s + 2 * self.uncertainty_s
        return all(common >= TOGETHER * (e - s) for s, e in self.spans.values())

    @property
    def sent(self) -> int:
        return sum(r.sent for r in self.results.values())

    @property
    def pps(self) -> int | None:
        """What all generators sent per second together: the sum of their pps, only when they
        ran together (else None: their rates do not add up)."""
        return sum(r.pps for r in self.results.values()) if self.together else None

    def warning(self) -> str:
        """A sentence when the runs did not run together (empty when they did)."""
        if self.together:
            return ""
        start = min(s for s, _ in self.spans.values())
        spans = ", ".join(f"{name} {s - start:.3f}-{e - start:.3f} s"
                          for name, (s, e) in sorted(self.spans.items()))
        return (f"the generators' runs did not overlap (common {self.common_s:.3f} s; {spans}): "
                "their pps do not add up")


def _each(runs: Mapping[str, object], step: Callable[[str, object], object]) -> dict:
    """``step(name, run)`` for every run at once (a thread each: remote calls block); every
    outcome by name, values or exceptions."""
    with concurrent.futures.ThreadPoolExecutor(max(1, len(runs))) as pool:
        futures = {name: pool.submit(step, name, run) for name, run in runs.items()}
    out = {}
    for name, future in futures.items():
        try:
            out[name] = future.result()
        except BaseException as err:  # noqa: BLE001 - collected, raised by the caller
            out[name] = err
    return out


def _raise_first(outcomes: dict, what: str) -> None:
    failed = {n: o for n, o in outcomes.items() if isinstance(o, BaseException)}
    if failed:
        name, err = next(iter(failed.items()))
        raise PktgenRunError(f"{what} failed on {', '.join(sorted(failed))}: {name}: "
                             f"{err}") from err


class RunGroup:
    """Several runs as one, with a run's phases (``setup``, ``start``, ``wait``, ``finish``,
    ``cleanup``): each phase done on every run at once. :meth:`finish` gives one RunResult
    of all their devices (named ``run:device``) and keeps the :class:`MultiResult`
    (``.multi``): whether they ran together, each one's result and span."""

    def __init__(self, runs: Mapping[str, object],
                 offsets: Mapping[str, ClockOffset | None] | None = None):
        self.runs = dict(runs)
        self.offsets = dict(offsets or {})
        self.multi: MultiResult | None = None
        self._ended: dict[str, bool] = {}

    def setup(self) -> None:
        """Every run set up, or none: a run that fails cleans up every other."""
        set_up = _each(self.runs, lambda name, run: run.setup())
        if any(isinstance(o, BaseException) for o in set_up.values()):
            _each({n: r for n, r in self.runs.items()
                   if not isinstance(set_up[n], BaseException)}, lambda name, run: run.cleanup())
            _raise_first(set_up, "setting up the runs")

    def start(self) -> None:
        _raise_first(_each(self.runs, lambda name, run: run.start()), "starting the runs")

    def wait(self) -> bool:
        """Every run waited for at once; True if each ended by itself."""
        ended = _each(self.runs, lambda name, run: run.wait())
        _raise_first(ended, "waiting for the runs")
        self._ended = {name: bool(value) for name, value in ended.items()}
        return all(self._ended.values())

    def finish(self, finished: bool = False) -> RunResult:
        """One stop for all: every run not ended by itself stopped at the same moment, each
        collected; a failure to collect one is a PktgenRunError with the others' results."""
        done = _each(self.runs, lambda name, run: run.finish(self._ended.get(name, finished)))
        results = {n: o for n, o in done.items() if not isinstance(o, BaseException)}
        if len(results) != len(self.runs):
            failed = {n: o for n, o in done.items() if isinstance(o, BaseException)}
            name, err = next(iter(failed.items()))
            raise PktgenRunError(f"collecting the runs failed on {', '.join(sorted(failed))}: "
                                 f"{name}: {err}", {n: r.devices for n, r in results.items()})
        spans = {name: span(result, self.offsets.get(name)) for name, result in results.items()}
        uncertainty = max((o.uncertainty_ns for o in self.offsets.values() if o),
                          default=0) / 1e9
        self.multi = MultiResult(results, spans, uncertainty)
        if self.multi.warning():
            self.multi.notes.append(self.multi.warning())
        return combined(results)

    def cleanup(self) -> None:
        _each(self.runs, lambda name, run: run.cleanup())


def combined(results: Mapping[str, RunResult]) -> RunResult:
    """Runs' results as one run's: every device as ``run:device``, the longest wall time,
    the first stop written and the last returned."""
    written = [r.stop_written_us for r in results.values() if r.stop_written_us is not None]
    returned = [r.stop_returned_us for r in results.values() if r.stop_returned_us is not None]
    return RunResult(
        {f"{name}:{dev}": status for name, r in results.items()
         for dev, status in r.devices.items()},
        {f"{name}:{dev}": config for name, r in results.items()
         for dev, config in r.configs.items()},
        max(r.wall_s for r in results.values()),
        any(r.stopped_by_us for r in results.values()),
        stop_written_us=min(written) if written else None,
        stop_returned_us=max(returned) if returned else None)


def run_together(runs: Mapping[str, object], offsets: Mapping[str, ClockOffset | None]
                 | None = None) -> MultiResult:
    """Set up every run, start them together, wait, stop all at once, collect each
    (:class:`RunGroup`). A run that fails to set up cleans up every other; a failure after
    the start still stops and collects the others (their results on the error)."""
    group = RunGroup(runs, offsets)
    group.setup()
    try:
        group.start()
        group.wait()
        group.finish()
    except BaseException:
        group.cleanup()
        raise
    return group.multi


def span(result: RunResult, offset: ClockOffset | None = None) -> tuple[float, float]:
    """When a run's devices ran, first start to last stop, on this machine's clock (s)."""
    starts, stops = [], []
    for status in result.devices.values():
        started = int(status.current["started"].removesuffix("us")) * 1000
        stopped = int(status.current["stopped"].removesuffix("us")) * 1000
        if offset is not None:
            started, stopped = offset.here_ns(started), offset.here_ns(stopped)
        starts.append(started)
        stops.append(stopped)
    return min(starts) / 1e9, max(stops) / 1e9
