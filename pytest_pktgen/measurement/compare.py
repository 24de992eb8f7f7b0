"""Is it a regression? Two sets of rounds compared, with a known error rate.

A comparison of one metric at one point gives the ratio of the two sides' geometric means
(after / before; a loss ratio: the difference of the means, in shares), a confidence interval
around it, and one of four verdicts against the threshold, the smallest change the user cares
about (not a tolerance for noise):

- ``regression``: the whole interval lies beyond the threshold on the worse side;
- ``improvement``: the whole interval lies beyond it on the better side;
- ``no change``: the whole interval lies within +-threshold;
- ``undecided``: the interval straddles a bound of the band; ``rounds_needed`` says about how
  many rounds on each side would settle it at the spread seen.

The interval is Welch's t interval (``scipy.stats.ttest_ind(equal_var=False)``) on the
logarithms of the rounds' figures (on the figures themselves for a loss ratio): the difference
of mean logarithms is the logarithm of the ratio of geometric means, and rounds spread by
factors, not by packets. Why Welch's t and not a bootstrap or Mann-Whitney: measurements have
few rounds (3 by default) and a bootstrap's interval at such sizes covers far less than it
claims (tests/unit/test_compare.py measures it), while Mann-Whitney cannot reach 95 % with 3
rounds against 3 at all (its smallest two-sided p is 0.1); Welch assumes no equal spread (a
patched kernel may be noisier than a stock one).

The error rate it promises: a change smaller than the threshold is called a regression at most
``(1 - confidence) / 2`` of the times (2.5 % at 95 %), since the interval's better end lies on
the worse side of the truth no more often; an unchanged point, far less often still.

A throughput search has no rounds: its NDR is known to lie within the search's relevant lower
and upper bounds (MLRsearch's), so two searches' NDRs compare by the ratio of those bounds
(``method="search bounds"``), judged by the same verdicts.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
MAX_ROUNDS = 100_000  # "rounds needed" beyond this: none that a lab would run
VERDICTS = ("regression", "undecided", "no change", "improvement")  # worst first


@dataclass(frozen=True)
class Metric:
    """A metric compared between sessions: which way is better, whether it compares by
    difference (a share: a loss ratio of 0 has no ratio) and its default threshold."""

    name: str
    higher_is_better: bool
    threshold: float  # relative, or absolute (a share) where ``absolute``
    absolute: bool = False
    searched: bool = False  # a throughput search's, compared by its bounds

    def show(self, value: float) -> str:
        return f"{value:+.3%}" if self.absolute else f"{value:.3f}"


METRICS = {m.name: m for m in (
    Metric("pps", True, 0.05),
    Metric("loss_ratio", False, 0.001, absolute=True),
    Metric("lat_p50_us", False, 0.10),
    Metric("lat_p99_us", False, 0.25),
    Metric("ndr_pps", True, 0.05, searched=True),
    Metric("pdr_pps", True, 0.05, searched=True),
)}
ROUND_METRICS = tuple(m for m, metric in METRICS.items() if not metric.searched)
SEARCH_METRICS = tuple(m for m, metric in METRICS.items() if metric.searched)
DEFAULT_THRESHOLDS = {name: m.threshold for name, m in METRICS.items()}


def with_defaults(thresholds: Mapping[str, float]) -> dict[str, float]:
    """``thresholds`` with the defaults of the metrics it does not name."""
    return {**DEFAULT_THRESHOLDS, **thresholds}


def thresholds(value: str | Mapping[str, object]) -> dict[str, float]:
    """Thresholds by metric from ``pps=2%,loss_ratio=0.1%`` or ``{"pps": 0.02}``: relative ones
    (a share of the metric) from 0 to below 1, a loss ratio's (a difference of shares) from 0
    to 1; a ValueError says what is allowed."""
    allowed = (f"METRIC=SHARE with METRIC one of {', '.join(METRICS)}, e.g. "
               "pps=2%,loss_ratio=0.1%")
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        items = [item.partition("=")[::2] if "=" in item else (item, None)
                 for item in str(value).replace(" ", "").split(",")]
    out = {}
    for name, raw in items:
        metric, value = METRICS.get(name), share(raw)
        if metric is None or value is None or value < 0 or value > 1 or (
                value == 1 and not metric.absolute):
            most = "1 (100%)" if metric is not None and metric.absolute else "below 1 (100%)"
            given = name if raw is None else f"{name}={raw}"
            raise ValueError(f"threshold {given}: {allowed}; a share from 0 to {most}")
        out[name] = value
    if not out:
        raise ValueError(f"threshold {value!r}: {allowed}")
    return out


def share(raw: object) -> float | None:
    """0.02 or "2%" or "0.02" as a share; None if it is none."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return float(raw)
    text = str(raw).strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Comparison:
    """One metric at one point, ``after`` against ``before``: the estimate (a ratio, or a
    difference for an absolute metric), its interval (None: none could be had, ``note`` says
    why), the verdict and, when undecided, about how many rounds per side would settle it."""

    key: str
    metric: Metric
    before: tuple[float, ...]
    after: tuple[float, ...]
    estimate: float
    low: float | None
    high: float | None
    threshold: float
    confidence: float
    verdict: str
    method: str
    rounds_needed: int | None = None
    note: str = ""

    @property
    def band(self) -> tuple[float, float]:
        """The band of no change, on the estimate's scale."""
        if self.metric.absolute:
            return -self.threshold, self.threshold
        return 1 - self.threshold, 1 + self.threshold

    def line(self) -> str:
        """One line: what, the estimate with its interval, the verdict and why."""
        m, what = self.metric, "difference" if self.metric.absolute else "ratio"
        shown = m.show(self.estimate)
        if self.low is not None:
            level = "" if self.method == "search bounds" else f", {self.confidence:.0%}"
            shown += f" ({m.show(self.low)}..{m.show(self.high)}{level})"
        thr = f"{self.threshold:.2%}" if m.absolute else f"{self.threshold:.1%}"
        text = (f"{m.name} {what} {shown}: {self.verdict} at a threshold of {thr}, "
                f"{self.sides()}")
        if self.verdict == "undecided":
            text += "; " + self.settle()
        return text + (f" ({self.note})" if self.note else "")

    def as_dict(self) -> dict:
        """For results.json's ``comparisons``: what was compared, the estimate, its interval,
        the verdict and each side's figures."""
        return {"key": self.key, "metric": self.metric.name, "method": self.method,
                "estimate": None if math.isnan(self.estimate) else self.estimate,
                "low": self.low,
                "high": None if self.high == math.inf else self.high,
                "threshold": self.threshold, "confidence": self.confidence,
                "verdict": self.verdict, "rounds_needed": self.rounds_needed,
                "note": self.note, "before": _finite(self.before), "after": _finite(self.after)}

    def sides(self) -> str:
        if self.method == "search bounds":
            return "by the searches' bounds"
        return f"{len(self.after)} rounds against {len(self.before)}"

    def settle(self) -> str:
        """What would settle an undecided comparison."""
        if self.method == "search bounds":
            return "narrower searches would settle it (--pktgen-search-width)"
        if self.rounds_needed is None:
            return "no number of rounds settles it: the change lies at the threshold"
        if self.rounds_needed >= MAX_ROUNDS:
            return (f"more than {MAX_ROUNDS:,} rounds on each side would settle it: the change "
                    "lies next to the threshold")
        return (f"about {self.rounds_needed} rounds on each side would settle it "
                f"({POWER:.0%} of the time)")


def _finite(values: Sequence[float]) -> list[float | None]:
    """For JSON: a search's missing upper bound (infinite) as null."""
    return [None if v == math.inf else v for v in values]


def _logs(values: Sequence[float]) -> list[float] | None:
    return [math.log(v) for v in values] if all(v > 0 for v in values) else None


def _interval(before: Sequence[float], after: Sequence[float], confidence: float
              ) -> tuple[float, float] | None:
    """The interval of mean(after) - mean(before): Welch's t; exact where neither side
    spreads; None where a side has a single round (no spread to judge by)."""
    if len(before) < 2 or len(after) < 2:
        return None
    if statistics.variance(before) + statistics.variance(after) == 0.0:
        diff = statistics.fmean(after) - statistics.fmean(before)
        return diff, diff  # every round the same on each side: the difference is exact
    from scipy import stats

    with warnings.catch_warnings():  # one side without spread: scipy warns of precision
        warnings.simplefilter("ignore", RuntimeWarning)
        found = stats.ttest_ind(after, before, equal_var=False).confidence_interval(confidence)
    return float(found.low), float(found.high)


POWER = 0.8  # rounds_needed: the share of reruns it settles, at the spread and change seen


def _welch_half(s2a: float, s2b: float, n: int, confidence: float, power: float = 0.5
                ) -> float:
    """How far from a bound the difference must lie for Welch's interval with ``n`` rounds on
    each side to clear it in ``power`` of the reruns (0.5: the interval's half width; its
    degrees of freedom by Welch-Satterthwaite, as ``ttest_ind`` takes them)."""
    from scipy.special import stdtrit  # Student's t quantile; stats.t.ppf's, without its frame

    se2 = (s2a + s2b) / n
    df = se2 ** 2 / ((s2a / n) ** 2 / (n - 1) + (s2b / n) ** 2 / (n - 1))
    return float(stdtrit(df, 0.5 + confidence / 2) + stdtrit(df, power)) * math.sqrt(se2)


def rounds_needed(before: Sequence[float], after: Sequence[float], bounds: Sequence[float],
                  confidence: float = CONFIDENCE) -> int | None:
    """About how many rounds on each side make the interval clear every bound in
    :data:`POWER` of the reruns, at the spread and difference seen (on the scale compared:
    logarithms, or shares), :data:`MAX_ROUNDS` where more would; None where the difference lies
    on a bound or there is no spread to go by."""
    if len(before) < 2 or len(after) < 2:
        return None
    s2a, s2b = statistics.variance(before), statistics.variance(after)
    diff = statistics.fmean(after) - statistics.fmean(before)
    distance = min(abs(diff - b) for b in bounds)
    if distance == 0.0 or s2a + s2b == 0.0:
        return None
    low = max(len(before), len(after))
    def clears(n: int) -> bool:
        return _welch_half(s2a, s2b, n, confidence, POWER) < distance

    if clears(low):
        return low
    high = low
    while not clears(high):
        if high >= MAX_ROUNDS:
            return MAX_ROUNDS  # as good as never: said so
        low, high = high, min(high * 2, MAX_ROUNDS)
    while high - low > 1:  # the half width falls with n: bisect to the first that clears
        mid = (low + high) // 2
        low, high = (low, mid) if clears(mid) else (mid, high)
    return high


def verdict_of(metric: Metric, low: float, high: float, threshold: float) -> str:
    """The verdict of an interval (on the estimate's scale: a ratio, or a difference)."""
    lo_band, hi_band = (-threshold, threshold) if metric.absolute else (
        1 - threshold, 1 + threshold)
    if lo_band <= low and high <= hi_band:
        return "no change"
    below, above = high < lo_band, low > hi_band
    if not (below or above):
        return "undecided"
    worse = below if metric.higher_is_better else above
    return "regression" if worse else "improvement"


def compare_rounds(key: str, metric: Metric, before: Sequence[float], after: Sequence[float],
                   threshold: float | None = None, confidence: float = CONFIDENCE
                   ) -> Comparison:
    """``after``'s rounds against ``before``'s for one metric at one point."""
    threshold = metric.threshold if threshold is None else threshold
    before, after = tuple(float(v) for v in before), tuple(float(v) for v in after)
    if not before or not after:
        raise ValueError(f"{key} {metric.name}: no rounds to compare "
                         f"({len(before)} before, {len(after)} after)")
    method = f"Welch's t on {'shares' if metric.absolute else 'logarithms'}"
    scale = (list(before), list(after)) if metric.absolute else (_logs(before), _logs(after))

    def result(estimate, low, high, verdict, needed=None, note=""):
        return Comparison(key, metric, before, after, estimate, low, high, threshold,
                          confidence, verdict, method, needed, note)

    if scale[0] is None or scale[1] is None:
        if all(v > 0 for v in before) and not any(after):  # it stopped: nothing at all now
            return result(0.0, 0.0, 0.0, verdict_of(metric, 0.0, 0.0, threshold),
                          note="every round after measured 0")
        mean = statistics.fmean(before)
        return result(statistics.fmean(after) / mean if mean else math.nan, None, None,
                      "undecided", note="a round measured 0: no ratio of geometric means")
    found = _interval(*scale, confidence)
    diff = statistics.fmean(scale[1]) - statistics.fmean(scale[0])
    estimate = diff if metric.absolute else math.exp(diff)
    if found is None:
        return result(estimate, None, None, "undecided",
                      note="one round on a side: no spread to judge by; 3 or more each")
    low, high = found if metric.absolute else (math.exp(found[0]), math.exp(found[1]))
    verdict = verdict_of(metric, low, high, threshold)
    needed = None
    if verdict == "undecided":
        bounds = (-threshold, threshold) if metric.absolute else (
            math.log(1 - threshold), math.log(1 + threshold))
        needed = rounds_needed(*scale, bounds, confidence)
    return result(estimate, low, high, verdict, needed)


def compare_bounds(key: str, metric: Metric, before: tuple[float | None, float | None],
                   after: tuple[float | None, float | None], threshold: float | None = None
                   ) -> Comparison:
    """Two throughput searches' results for one goal, each known within its (lower, upper)
    bound: their ratio lies within [after's lower / before's upper, after's upper / before's
    lower]. A search without an upper bound (irregular: none found below the max load) has no
    upper end there, so it cannot be "no change" on that side."""
    threshold = metric.threshold if threshold is None else threshold
    (lo_b, up_b), (lo_a, up_a) = before, after
    if not lo_b:
        raise ValueError(f"{key} {metric.name}: the search before found no lower bound: no "
                         "throughput to compare with")
    lo_a = lo_a or 0.0  # none found after: not even the lowest load met the goal
    low = lo_a / up_b if up_b else 0.0
    high = up_a / lo_b if up_a else math.inf
    mid_b = math.sqrt(lo_b * up_b) if up_b else lo_b
    mid_a = math.sqrt(lo_a * up_a) if up_a else lo_a
    return Comparison(key, metric, (lo_b, up_b or math.inf), (lo_a, up_a or math.inf),
                      mid_a / mid_b, low, high, threshold, 1.0,
                      verdict_of(metric, low, high, threshold), "search bounds",
                      note="" if lo_a else "no lower bound after: not even the lowest load "
                      "met the goal")


def paired(ratios: Sequence[float], confidence: float = CONFIDENCE
           ) -> tuple[float, float, float]:
    """The geometric mean of paired ratios (each an A/B pair measured together) and its
    interval (low, mean, high): the one-sample t interval of their logarithms
    (``scipy.stats.ttest_1samp``), the paired form of :func:`compare_rounds`'s."""
    logs = _logs(ratios)
    if logs is None or len(logs) < 2:
        raise ValueError(f"paired ratios need two or more, each above 0: {list(ratios)}")
    mean = statistics.fmean(logs)
    if statistics.variance(logs) == 0.0:
        return math.exp(mean), math.exp(mean), math.exp(mean)
    from scipy import stats

    found = stats.ttest_1samp(logs, 0.0).confidence_interval(confidence)
    return math.exp(found.low), math.exp(mean), math.exp(found.high)


def worst(comparisons: Sequence[Comparison]) -> str | None:
    """The worst verdict among ``comparisons`` (None: none)."""
    found = {c.verdict for c in comparisons}
    return next((v for v in VERDICTS if v in found), None)


def exit_code(comparisons: Sequence[Comparison]) -> int:
    """0: nothing regressed and everything settled; 1: a regression; 2: something undecided."""
    verdict = worst(comparisons)
    return {"regression": 1, "undecided": 2}.get(verdict or "", 0)
