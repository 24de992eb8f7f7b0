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


def run_together(runs: Mapping[str, object], offsets: Mapping[str, ClockOffset | None]
                 | None = None) -> MultiResult:
    """Set up every run, start them together, wait, stop all at once, collect each. A run
    that fails to set up cleans up every other; a failure after the start still stops and
    collects the others (their results on the error)."""
    offsets = dict(offsets or {})
    set_up = _each(runs, lambda name, run: run.setup())
    if any(isinstance(o, BaseException) for o in set_up.values()):
        _each({n: r for n, r in runs.items() if not isinstance(set_up[n], BaseException)},
              lambda name, run: run.cleanup())
        _raise_first(set_up, "setting up the runs")
    try:
        _raise_first(_each(runs, lambda name, run: run.start()), "starting the runs")
        ended = _each(runs, lambda name, run: run.wait())
        _raise_first(ended, "waiting for the runs")
        # one stop for all: every run not ended by itself is stopped at the same moment
        finished = _each(runs, lambda name, run: run.finish(bool(ended[name])))
    except BaseException:
        _each(runs, lambda name, run: run.cleanup())
        raise
    results = {n: o for n, o in finished.items() if not isinstance(o, BaseException)}
    if len(results) != len(runs):
        failed = {n: o for n, o in finished.items() if isinstance(o, BaseException)}
        name, err = next(iter(failed.items()))
        raise PktgenRunError(f"collecting the runs failed on {', '.join(sorted(failed))}: "
                             f"{name}: {err}", {n: r.devices for n, r in results.items()})
    spans = {name: span(result, offsets.get(name)) for name, result in results.items()}
    uncertainty = max((o.uncertainty_ns for o in offsets.values() if o), default=0) / 1e9
    multi = MultiResult(results, spans, uncertainty)
    if multi.warning():
        multi.notes.append(multi.warning())
    return multi


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
