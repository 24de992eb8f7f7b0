"""Saved sessions: results.json (and a baseline, the same document) read back, and two of them
compared point by point with :mod:`~pytest_pktgen.measurement.compare`.

The document's form is ``results.schema.json`` beside this file (JSON Schema 2020-12), its
``version`` :data:`VERSION`: every measurement's row with its rounds' own figures
(``per_round``), every throughput search with its goals' bounds and trials. Version 1 kept
medians only, which no statistics can judge: it is refused with what to do.
"""

from __future__ import annotations

import json
import math
import statistics
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .compare import METRICS, Comparison, compare_bounds, compare_rounds
from .row import key_of

VERSION = 2
SCHEMA = Path(__file__).with_name("results.schema.json")


class SavedError(ValueError):
    """A file that is no saved session of this version: the message says what to do."""


@dataclass
class Saved:
    """A saved session: its environment, and its measurements and searches by key (the test's
    node id and label, :func:`~pytest_pktgen.measurement.row.key_of`), each as saved."""

    path: str
    environment: dict = field(default_factory=dict)
    rows: dict[str, dict] = field(default_factory=dict)
    searches: dict[str, dict] = field(default_factory=dict)
    units: str = ""

    def document(self) -> dict:
        """As results.json holds a session (the schema's form)."""
        return {"version": VERSION, "units": self.units, "environment": self.environment,
                "results": list(self.rows.values()), "searches": list(self.searches.values())}


POOLED_SUMS = ("offered", "sent", "received")  # a pooled row's totals over its rounds


def pooled(sessions: list[Saved], path: str) -> Saved:
    """Several sessions of the same tests as one (the blocks of one kernel in an A/B run):
    each measurement's rounds in the sessions' order (``per_round``), each session's apart
    (``per_block``: a comparison checks whether the blocks differ), its medians and totals
    of them, its other columns the first session's; each search's goals with the widest
    bounds any session found (its throughput lay within each session's bounds, so within
    their union); the environments by session."""
    blocks: dict[str, list[list[dict]]] = {}
    firsts: dict[str, dict] = {}
    searches: dict[str, dict] = {}
    for session in sessions:
        for key, row in session.rows.items():
            firsts.setdefault(key, row)
            blocks.setdefault(key, []).append(list(row.get("per_round", ())))
        for key, found in session.searches.items():
            searches[key] = _widest(searches[key], found) if key in searches else found
    rows = {key: _pooled_row(firsts[key], per_block) for key, per_block in blocks.items()}
    return Saved(path, {"sessions": [s.environment for s in sessions]}, rows, searches,
                 sessions[0].units if sessions else "")


def _pooled_row(first: dict, per_block: list[list[dict]]) -> dict:
    per_round = [r for block in per_block for r in block]
    row = {**first, "per_round": per_round, "per_block": per_block, "rounds": len(per_round)}
    pps = [r["pps"] for r in per_round if r.get("pps") is not None]
    if pps:
        row.update(pps=statistics.median(pps), pps_min=min(pps), pps_max=max(pps))
    for column in POOLED_SUMS:
        values = [r.get(column) for r in per_round]
        row[column] = None if None in values or not values else sum(values)
    offered, received = row.get("offered"), row.get("received")
    row["loss_ratio"] = (offered - received) / offered if offered and received is not None \
        else None
    return row


def _widest(one: dict, other: dict) -> dict:
    """``one`` with each goal's bounds widened to hold ``other``'s of the same loss ratio (a
    missing lower bound, none found, is the widest of all; so is a missing upper one)."""
    theirs = {g["search_goal"]["loss_ratio"]: g for g in other.get("goals", ())}
    goals = []
    for goal in one.get("goals", ()):
        match = theirs.get(goal["search_goal"]["loss_ratio"])
        if match is not None:
            lows = [goal["relevant_lower_bound"], match["relevant_lower_bound"]]
            highs = [goal["relevant_upper_bound"], match["relevant_upper_bound"]]
            goal = {**goal, "relevant_lower_bound": None if None in lows else min(lows),
                    "relevant_upper_bound": None if None in highs else max(highs)}
        goals.append(goal)
    return {**one, "goals": goals}


def load(path: str) -> Saved:
    """A saved session (results.json or a baseline); a :class:`SavedError` saying why not."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SavedError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SavedError(f"{path}: cannot be read: {err}") from None
    except json.JSONDecodeError as err:
        raise SavedError(f"{path}: not JSON: {err}") from None
    if not isinstance(data, dict) or "version" not in data:
        raise SavedError(f"{path}: not a pytest-pktgen results.json or baseline")
    if data["version"] != VERSION:
        raise SavedError(f"{path}: version {data['version']!r}, this pytest-pktgen reads "
                         f"version {VERSION} (every round's figures); version 1 kept medians "
                         "only, which no statistics can judge: run the session again and save "
                         "it (--pktgen-save-baseline, or its results.json)")
    try:
        rows = {key_of(r["test"], r.get("label")): r for r in data.get("results", [])}
        searches = {key_of(s["test"], s.get("label")): s for s in data.get("searches", [])}
    except (TypeError, KeyError, AttributeError) as err:
        raise SavedError(f"{path}: a result without its test ({err!r}): not of the form of "
                         f"{SCHEMA.name}") from None
    return Saved(path, data.get("environment", {}), rows, searches, data.get("units", ""))


def rounds_of(subject: Mapping, metric: str) -> list[float]:
    """A measurement's rounds' figures of ``metric``, where every round has one (else none:
    half a metric compares nothing)."""
    return _figures(subject.get("per_round", ()), metric)


def partial_metrics(subject: Mapping) -> dict[str, tuple[int, int]]:
    """The metrics some but not all of a measurement's rounds have: name -> (rounds with it,
    rounds); such a metric is not compared (:func:`rounds_of`), and says so."""
    rounds = list(subject.get("per_round", ()))
    out = {}
    for name, metric in METRICS.items():
        if metric.searched:
            continue
        have = sum(r.get(name) is not None for r in rounds)
        if 0 < have < len(rounds):
            out[name] = (have, len(rounds))
    return out


def _figures(rounds, metric: str) -> list[float]:
    values = [r.get(metric) for r in rounds]
    return [float(v) for v in values] if values and None not in values else []


def blocks_differ(subject: Mapping, metric: str) -> float | None:
    """Where a pooled measurement's blocks (``per_block``: boots of one kernel) differ in
    ``metric`` beyond their rounds' spread, the one-way ANOVA's p below 0.05
    (``scipy.stats.f_oneway``, on logarithms but for an absolute metric): that p; else None.
    Rounds of one boot then share what the boot gave them, and only the blocks' means are
    independent."""
    blocks = [_figures(block, metric) for block in subject.get("per_block", ())]
    if len(blocks) < 2 or any(len(b) < 2 for b in blocks):
        return None
    if not METRICS[metric].absolute:
        if any(v <= 0 for b in blocks for v in b):
            return None
        blocks = [[math.log(v) for v in b] for b in blocks]
    from scipy import stats

    with warnings.catch_warnings():  # blocks without spread within: scipy warns, says inf/nan
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.f_oneway(*blocks).pvalue)
    if math.isnan(p):  # nothing spreads at all, within or between
        return None
    return p if p < 0.05 else None


def _block_means(subject: Mapping, metric: str) -> list[float]:
    """Each block's mean of ``metric`` (geometric but for an absolute metric)."""
    out = []
    for block in subject.get("per_block", ()):
        values = _figures(block, metric)
        if not values:
            return []
        out.append(statistics.fmean(values) if METRICS[metric].absolute else
                   math.exp(statistics.fmean(math.log(v) for v in values)) if all(
                       v > 0 for v in values) else statistics.fmean(values))
    return out


def bounds_of(search: Mapping, metric: str) -> tuple[float | None, float | None] | None:
    """A search's relevant (lower, upper) bound of the NDR (``ndr_pps``) or the PDR
    (``pdr_pps``: the smallest loss ratio above 0), from its goals in MLRsearch's form (a
    bound it did not find: None); None where it has no such goal."""
    goals = [(g["search_goal"]["loss_ratio"], g) for g in search.get("goals", ())]
    if metric == "ndr_pps":
        chosen = [g for ratio, g in goals if ratio == 0.0]
    else:
        chosen = [g for ratio, g in sorted(goals, key=lambda p: p[0]) if ratio > 0.0][:1]
    if not chosen:
        return None
    return chosen[0].get("relevant_lower_bound"), chosen[0].get("relevant_upper_bound")


def compare_subject(key: str, before: Mapping, after: Mapping,
                    thresholds: Mapping[str, float], confidence: float,
                    searched: bool = False) -> list[Comparison]:
    """Every metric both sides measured (a search's: both searched, the one before with a
    lower bound), ``after`` against ``before``, each at its threshold. Pooled blocks that
    differ beyond their rounds' spread (:func:`blocks_differ`) compare by the blocks' means."""
    out = []
    for name, metric in METRICS.items():
        if metric.searched != searched:
            continue
        if searched:
            then, now = bounds_of(before, name), bounds_of(after, name)
            if then and now and then[0]:
                out.append(compare_bounds(key, metric, then, now, thresholds.get(name)))
            continue
        then, now = rounds_of(before, name), rounds_of(after, name)
        if not (then and now):
            continue
        differ = [p for p in (blocks_differ(before, name), blocks_differ(after, name))
                  if p is not None]
        note = ""
        if differ:
            means = _block_means(before, name), _block_means(after, name)
            if all(len(m) >= 2 for m in means):
                then, now = means
                note = (f"the blocks differ beyond their rounds' spread (one-way ANOVA p = "
                        f"{min(differ):.2g}): compared by the blocks' means")
        found = compare_rounds(key, metric, then, now, thresholds.get(name), confidence)
        out.append(replace(found, note="; ".join(n for n in (found.note, note) if n)))
    return out


def clock_of(session: Saved) -> str:
    """What a second in the session's figures is: "host" (the host's time; every session saved
    before the VM lab had another clock) or "instructions" (a billion of the guest's
    instructions, the VM lab's ``--pktgen-vm-clock instructions``)."""
    env = session.environment
    clocks = {e.get("clock", "host") for e in env.get("sessions", [env])}
    if len(clocks) > 1:
        raise SavedError(f"{session.path}: a pool of sessions of different clocks "
                         f"({', '.join(sorted(clocks))}): its rounds are not of one kind")
    return clocks.pop() if clocks else "host"


def check_clocks(before: Saved, after: Saved) -> None:
    """A :class:`SavedError` where the two sessions' figures are of different clocks: a rate in
    a billion instructions and a rate in host seconds have no ratio that means anything."""
    then, now = clock_of(before), clock_of(after)
    if then != now:
        raise SavedError(f"{before.path} was measured by the {then} clock, {after.path} by the "
                         f"{now} clock (--pktgen-vm-clock): their figures are not of one kind; "
                         "compare sessions of one clock")


def compare_sessions(before: Saved, after: Saved, thresholds: Mapping[str, float],
                     confidence: float) -> tuple[list[Comparison], list[str]]:
    """(comparisons of every point both sessions measured or searched, in ``after``'s order;
    the keys only one of them has, said); a :class:`SavedError` where their clocks differ."""
    check_clocks(before, after)
    out: list[Comparison] = []
    for subjects, then, searched in ((after.rows, before.rows, False),
                                     (after.searches, before.searches, True)):
        for key, now in subjects.items():
            if key in then:
                out += compare_subject(key, then[key], now, thresholds, confidence, searched)
    said = _only_in(before, after) + _only_in(after, before)
    for session, other in ((before, after), (after, before)):
        for key, row in session.rows.items():
            if key in other.rows:
                said += [f"{key}: {name} in {have} of {n} rounds of {session.path}: not "
                         "compared (a round without it, e.g. no latency sample came back)"
                         for name, (have, n) in partial_metrics(row).items()]
    return out, said


def _only_in(one: Saved, other: Saved) -> list[str]:
    keys = [k for k in one.rows if k not in other.rows]
    keys += [f"{k} (search)" for k in one.searches if k not in other.searches]
    return [f"only in {one.path}: {k}" for k in keys]

