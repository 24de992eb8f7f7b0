"""Gates: what a measurement must reach, where each requirement came from, and baselines.

Requirements come from the options (``--pktgen-min-pps``, ``--pktgen-max-loss``), the test's
``pktgen_gate`` marker, and a thresholds file; every one that applies must hold. A relative gate
compares with a reference measured earlier in the same session (same point, another label), for
noisy CI machines and VMs where absolute pps mean little. A baseline is a saved session: a later
one fails where a metric's rounds show, at the stated confidence, a change beyond its threshold
in the worse direction (:mod:`~pytest_pktgen.measurement.compare`: the verdicts and their error
rate).

Throughput searches are gated the same ways on their NDR and PDR (``min_ndr``, ``min_pdr``:
pps, or a share of the link's line rate as ``"95%"`` where its speed is known; relative gates
compare NDRs; against a baseline, the NDR's and PDR's bounds).

A thresholds file (TOML) keeps per-test and per-size thresholds in the user's repository::

    [defaults]
    max_loss = 0.001            # a share: 0.1 % of the frames sent
    min_ndr = "90%"             # of the line rate, for links whose speed is known

    [frames.64]
    min_pps = 1_000_000

    [tests."test_size_sweep[1500B*"]   # fnmatch on the test's name with its id
    min_pps = 80_000
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..lab import latency
from . import compare, saved
from .row import Row
from .search import SearchResult

GATE_KEYS = {"min_pps": ("pps", "min"), "min_mbps": ("mbps", "min"),
             "max_loss": ("loss_ratio", "max"),
             "min_ndr": ("ndr_pps", "min"), "min_pdr": ("pdr_pps", "min")}
# what a throughput search (pktgen_search) is judged by; the rest judge measurements
SEARCH_METRICS = frozenset({"ndr_pps", "pdr_pps"})
# max_latency_us={"p99": 500, ...}: a table of percentiles, each a requirement on its column
LATENCY_GATE = "max_latency_us"
LATENCY_NAMES = latency.NAMES
RELATIVE_KEYS = ("min_ratio", "relative_to")
THRESHOLD_KEY = "threshold"  # pktgen_gate(threshold={"pps": 0.02}): a baseline's thresholds


@dataclass(frozen=True)
class Requirement:
    """``metric`` must be at least (``min``) or at most (``max``) ``value``; ``source`` says
    who asked. ``of_line_rate``: ``value`` is a share of the line rate (searches' NDR/PDR)."""

    metric: str
    bound: str  # "min" or "max"
    value: float
    source: str
    of_line_rate: bool = False

    def failure(self, measured: float, line_rate: float | None = None) -> str | None:
        """Why ``measured`` misses this requirement, or None; ``line_rate`` in pps turns a
        share of it into pps."""
        value, what = self.value, _fmt(self.metric, self.value)
        if self.of_line_rate:
            value = self.value * (line_rate or 0.0)
            what = f"{self.value:.1%} of the line rate {line_rate:,.0f} pps = {value:,.0f}"
        ok = measured >= value if self.bound == "min" else measured <= value
        if ok:
            return None
        word = "at least" if self.bound == "min" else "at most"
        return (f"{self.metric} {_fmt(self.metric, measured)} measured, {word} "
                f"{what} required by {self.source}")


@dataclass(frozen=True)
class RelativeRequirement:
    """pps (a search's: its NDR) must be at least ``ratio`` times the reference's, labelled
    ``relative_to`` at the same point, measured (searched) earlier in this session."""

    relative_to: str
    ratio: float
    source: str


def _fmt(metric: str, value: float) -> str:
    if metric == "loss_ratio":
        return f"{value:.4%}"
    if metric.startswith("lat_"):
        return f"{value:,.0f} µs"
    return f"{value:,.0f}" if metric.endswith("pps") else f"{value:,.1f}"


def of_kind(requirements: Iterable[Requirement], search: bool) -> list[Requirement]:
    """The requirements that judge a throughput search (``search``), or a measurement."""
    return [r for r in requirements if (r.metric in SEARCH_METRICS) == search]


def requirement(key: str, value: object, source: str) -> Requirement:
    """The requirement a gate key (:data:`GATE_KEYS`) and its value make; a ValueError says
    what is allowed. A search's ``min_ndr``/``min_pdr`` take pps or a share of the line rate
    as a string, ``"95%"``."""
    metric, bound = GATE_KEYS[key]
    if metric in SEARCH_METRICS and isinstance(value, str) and value.strip().endswith("%"):
        try:
            share = float(value.strip()[:-1]) / 100
        except ValueError:
            share = -1.0
        if not 0 < share <= 1:
            raise ValueError(f"{key} = {value!r} is not a share of the line rate above 0 % and "
                             "at most 100 %")
        return Requirement(metric, bound, share, source, of_line_rate=True)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
            metric == "loss_ratio" and value > 1):
        allowed = {"loss_ratio": "a share from 0 to 1"}.get(
            metric, "pps, 0 or more, or a share of the line rate such as \"95%\""
            if metric in SEARCH_METRICS else "a number, 0 or more")
        raise ValueError(f"{key} = {value!r} is not {allowed}")
    return Requirement(metric, bound, float(value), source)


def latency_requirements(value: object, source: str) -> list[Requirement]:
    """``max_latency_us={"p99": 500, "p50": 100}``: each percentile's most µs (pgrx's
    latency, ``rx="kmod"``); a ValueError says what is allowed."""
    allowed = (f"a table of percentiles ({', '.join(LATENCY_NAMES)}) to µs, e.g. "
               "{\"p99\": 500}")
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"{LATENCY_GATE} = {value!r} is not {allowed}")
    out = []
    for name, limit in value.items():
        if name not in LATENCY_NAMES or isinstance(limit, bool) or not isinstance(
                limit, (int, float)) or limit < 0:
            raise ValueError(f"{LATENCY_GATE} {name!r} = {limit!r}: {allowed}, each a number "
                             "of µs, 0 or more")
        out.append(Requirement(latency.column(name), "max", float(limit), source))
    return out


def _by_frame(value: object) -> bool:
    """Whether a marker's value is given per frame size (``{64: 1e6, 1500: 8e4}``)."""
    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(k, int) and not isinstance(k, bool) for k in value)


def _gate_items(table: Mapping, source: str) -> list[Requirement]:
    out = []
    for key, value in table.items():
        if key not in GATE_KEYS and key != LATENCY_GATE:
            raise pytest.UsageError(f"{source}: {key!r} is not a threshold; use "
                                    f"{', '.join((*GATE_KEYS, LATENCY_GATE))}")
        try:
            out += latency_requirements(value, source) if key == LATENCY_GATE else \
                [requirement(key, value, source)]
        except ValueError as err:
            raise pytest.UsageError(f"{source}: {err}") from None
    return out


@dataclass(frozen=True)
class Thresholds:
    """A thresholds file, read and checked once per session."""

    path: str
    defaults: tuple[Requirement, ...]
    frames: dict[int, tuple[Requirement, ...]]
    tests: dict[str, tuple[Requirement, ...]]

    @classmethod
    def load(cls, path: str) -> Thresholds:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise pytest.UsageError(f"--pktgen-thresholds {path}: no such file") from None
        except tomllib.TOMLDecodeError as err:
            raise pytest.UsageError(f"--pktgen-thresholds {path}: not TOML: {err}") from None
        unknown = set(data) - {"defaults", "frames", "tests"}
        if unknown:
            raise pytest.UsageError(f"{path}: unknown section(s) {sorted(unknown)}; use "
                                    "[defaults], [frames.<size>] and [tests.\"<pattern>\"]")
        frames = {}
        for size, table in data.get("frames", {}).items():
            if not size.isdigit():
                raise pytest.UsageError(f"{path}: [frames.{size}]: a frame size in bytes")
            frames[int(size)] = tuple(_gate_items(table, f"{path} [frames.{size}]"))
        tests = {pattern: tuple(_gate_items(table, f'{path} [tests."{pattern}"]'))
                 for pattern, table in data.get("tests", {}).items()}
        return cls(path, tuple(_gate_items(data.get("defaults", {}), f"{path} [defaults]")),
                   frames, tests)

    def for_test(self, name: str, frame: int) -> list[Requirement]:
        out = list(self.defaults) + list(self.frames.get(frame, ()))
        for pattern, reqs in self.tests.items():
            if fnmatch.fnmatchcase(name, pattern):
                out.extend(reqs)
        return out


def marker_requirements(kwargs: Mapping[str, object], where: str
                        ) -> tuple[list[Requirement], list[RelativeRequirement]]:
    """A ``pktgen_gate`` marker's requirements. ``min_pps``/``max_loss``/``min_mbps`` take a
    number, or a dict by frame size (``min_pps={64: 1e6, 1500: 8e4}``)."""
    source = f"the pktgen_gate marker of {where}"
    plain, relative = {}, []
    for key, value in kwargs.items():
        if key in RELATIVE_KEYS or key == THRESHOLD_KEY:
            continue
        plain[key] = value
    if "min_ratio" in kwargs or "relative_to" in kwargs:
        ratio, ref = kwargs.get("min_ratio"), kwargs.get("relative_to")
        if not isinstance(ref, str) or isinstance(ratio, bool) or not isinstance(
                ratio, (int, float)) or not ratio > 0:
            raise pytest.UsageError(f"{source}: a relative gate needs min_ratio (a number above "
                                    f"0) and relative_to (a reference label), got {ratio!r}, "
                                    f"{ref!r}")
        relative.append(RelativeRequirement(ref, float(ratio), source))
    return _gate_items({k: v for k, v in plain.items() if not _by_frame(v)}, source), \
        relative


def marker_thresholds(kwargs: Mapping[str, object], where: str) -> dict[str, float]:
    """A ``pktgen_gate`` marker's baseline thresholds (``threshold={"pps": 0.02}`` or
    ``threshold="pps=2%"``); a UsageError says what is allowed."""
    if THRESHOLD_KEY not in kwargs:
        return {}
    try:
        return compare.thresholds(kwargs[THRESHOLD_KEY])
    except ValueError as err:
        raise pytest.UsageError(f"the pktgen_gate marker of {where}: {err}") from None


def per_frame(kwargs: Mapping[str, object], frame: int, where: str) -> list[Requirement]:
    """The marker's requirements given by frame size, for this frame."""
    source = f"the pktgen_gate marker of {where} (frame {frame})"
    chosen = {k: v[frame] for k, v in kwargs.items() if _by_frame(v) and frame in v}
    return _gate_items(chosen, source)


def option_requirements(min_pps, max_loss, min_ndr=None, min_pdr=None,
                        max_latency=None) -> list[Requirement]:
    """The gates' options' requirements (values already checked by the options' types)."""
    given = {"min_pps": (min_pps, "--pktgen-min-pps"), "max_loss": (max_loss, "--pktgen-max-loss"),
             "min_ndr": (min_ndr, "--pktgen-min-ndr"), "min_pdr": (min_pdr, "--pktgen-min-pdr")}
    out = [requirement(key, value, flag) for key, (value, flag) in given.items()
           if value is not None]
    if max_latency:
        out += latency_requirements(max_latency, "--pktgen-max-latency")
    return out


def check(row: Row | SearchResult, requirements: Iterable[Requirement]) -> list[str]:
    """Failure messages of the requirements this measurement (or search) misses."""
    out = []
    for req in requirements:
        measured = getattr(row, req.metric)
        line_rate = getattr(row, "line_rate_pps", None)
        if req.of_line_rate and not line_rate:
            device = getattr(row, "device", {}).get("name", "its link")
            out.append(f"{req.source} requires {req.metric} of at least {req.value:.1%} of the "
                       f"line rate, but {device} has no known speed (a virtual link?): give "
                       "it in pps")
            continue
        if measured is None:
            why = "no lower bound was found" if req.metric in SEARCH_METRICS else (
                "latency needs the kmod receive counter, rx=\"kmod\"" if
                req.metric.startswith("lat_") else "no receive counter?")
            out.append(f"{req.metric} was not measured ({why}), but {req.source} requires it")
            continue
        message = req.failure(float(measured), line_rate)
        if message:
            out.append(message)
    return out


def untrue(row: Row) -> list[str]:
    """Why a measurement is no result at all, gated or not: nothing was sent (no rate, no
    loss), or the sink counted more frames than pktgen offered (frames pktgen did not send were
    counted, and the loss figure would hide real loss)."""
    offered, received = row.offered, row.received
    out = []
    if offered == 0:
        out.append("pktgen sent nothing (0 frames offered): no rate or loss to report")
    if received is not None and received > offered:
        out.append(f"the {row.rx_backend} counter counted {received:,} frames, "
                   f"{received - offered:,} more than the {offered:,} pktgen offered: "
                   "frames it did not send were counted, and the loss would hide real loss")
    return out


# --- baselines ---------------------------------------------------------------------------

def load_baseline(path: str) -> saved.Saved:
    """A saved baseline (or a session's results.json: the same document), checked."""
    try:
        return saved.load(path)
    except saved.SavedError as err:
        hint = " (save one with --pktgen-save-baseline)" if "no such file" in str(err) else ""
        raise pytest.UsageError(f"--pktgen-baseline {err}{hint}") from None


def check_baseline_clock(baseline: saved.Saved, clock: str) -> None:
    """A UsageError where the baseline's figures are of another clock than this session's."""
    try:
        then = saved.clock_of(baseline)
    except saved.SavedError as err:
        raise pytest.UsageError(f"--pktgen-baseline {err}") from None
    if then != clock:
        raise pytest.UsageError(
            f"--pktgen-baseline {baseline.path} was measured by the {then} clock, this session "
            f"measures by the {clock} clock (--pktgen-vm-clock): their figures are not of one "
            f"kind; run with --pktgen-vm-clock {then}, or save a baseline of this clock")


def _document(subject: Row | SearchResult) -> dict:
    """What a comparison reads of a measurement (its rounds) or a search (its goals' bounds),
    as a saved document holds it."""
    if isinstance(subject, SearchResult):
        return {"goals": [g.as_dict() for g in subject.goals]}
    return {"per_round": subject.per_round}


def compare_baseline(subject: Row | SearchResult, baseline: Mapping[str, Mapping], path: str,
                     thresholds: Mapping[str, float], confidence: float = compare.CONFIDENCE
                     ) -> tuple[bool, list[str], list[compare.Comparison]]:
    """(found, regressions, comparisons): every metric both measured, this measurement (or
    search) against the saved one of its key; ``baseline`` holds the saved subjects of its
    kind. A regression is a failure naming its interval; undecided is none."""
    then = baseline.get(subject.key)
    if then is None:
        return False, [], []
    found = saved.compare_subject(subject.key, then, _document(subject), thresholds,
                                  confidence, searched=isinstance(subject, SearchResult))
    failures = [f"{c.line()}, against the baseline {path} (--pktgen-threshold)"
                for c in found if c.verdict == "regression"]
    return True, failures, found


def check_relative(row: Row | SearchResult, relative: Iterable[RelativeRequirement],
                   reference: Callable[[str], Row | SearchResult | None], where: str
                   ) -> tuple[list[str], float | None]:
    """(failures, ratio) of relative gates: this measurement's pps (a search's NDR) against
    the reference's (``reference(label)``: the one of its kind measured earlier at the same
    point, or None); ``where`` names the point in a message. The reference itself is not
    compared with itself."""
    metric = "ndr_pps" if isinstance(row, SearchResult) else "pps"
    failures, ratio = [], None
    for rel in relative:
        if rel.relative_to == row.label:
            continue
        ref = reference(rel.relative_to)
        if ref is None:
            failures.append(f"no reference {rel.relative_to!r} at {where} point was measured "
                            f"earlier in this session, but {rel.source} compares with it")
            continue
        now, then = getattr(row, metric), getattr(ref, metric)
        if now is None or then is None:
            failures.append(f"{metric} of {'this' if now is None else rel.relative_to!r} was "
                            f"not found, but {rel.source} compares them")
            continue
        ratio = now / then if then else 0.0
        if ratio < rel.ratio:
            failures.append(f"{metric} {now:,.0f} is {ratio:.2f} x the reference "
                            f"{rel.relative_to!r} ({then:,.0f} {metric}, {ref.test}); "
                            f"at least {rel.ratio:.2f} x required by {rel.source}")
    return failures, ratio


@dataclass
class Verdict:
    """Every gate's answer on one measurement."""

    failures: list[str]
    gated: bool  # whether anything gates it at all
    ratio: float | None = None  # pps against a relative gate's reference
    # against the baseline: the worst verdict of its metrics (compare.VERDICTS), "none" (not
    # in it); None: no baseline
    baseline: str | None = None
    comparisons: list[compare.Comparison] = field(default_factory=list)


def evaluate(row: Row | SearchResult, requirements: Iterable[Requirement] = (),
             relative: Iterable[RelativeRequirement] = (),
             reference: Callable[[str], Row | SearchResult | None] = lambda label: None,
             baseline: Mapping[str, Mapping] | None = None, baseline_path: str = "",
             thresholds: Mapping[str, float] | None = None,
             confidence: float = compare.CONFIDENCE, where: str = "this",
             marked: bool = False) -> Verdict:
    """Thresholds, relative gates and the baseline on one measurement's row (or a throughput
    search), pure: what the pytest surface collected (options, thresholds file, marker) comes
    in as arguments; ``baseline`` holds the saved ones of its kind."""
    requirements, relative = list(requirements), list(relative)
    failures = check(row, requirements)
    more, ratio = check_relative(row, relative, reference, where)
    failures += more
    status, comparisons = None, []
    if baseline is not None:
        found, regressions, comparisons = compare_baseline(
            row, baseline, baseline_path, thresholds or compare.DEFAULT_THRESHOLDS, confidence)
        status = (compare.worst(comparisons) or "none") if found else "none"
        failures += regressions
    gated = bool(requirements or relative or baseline is not None or marked)
    return Verdict(failures, gated, ratio, status, comparisons)
