"""Comparisons of rounds (measurement/compare.py): verdicts on known intervals, the error rate
the method promises measured on rounds of known spread and known change, and what would
settle an undecided one. Real rounds from the VM lab: tests/unit/test_saved.py."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from pytest_pktgen.measurement import compare
from pytest_pktgen.measurement.compare import METRICS, compare_bounds, compare_rounds

PPS, LOSS, P99 = METRICS["pps"], METRICS["loss_ratio"], METRICS["lat_p99_us"]


@pytest.mark.parametrize(("metric", "low", "high", "verdict"), [
    (PPS, 0.90, 0.97, "regression"),  # wholly below 1 - 2 %
    (PPS, 0.95, 0.99, "undecided"),  # worse, but maybe by less than 2 %
    (PPS, 0.985, 1.01, "no change"),
    (PPS, 0.97, 1.03, "undecided"),
    (PPS, 1.03, 1.10, "improvement"),
    (P99, 1.03, 1.10, "regression"),  # latency: up is worse
    (P99, 0.90, 0.97, "improvement"),
    (LOSS, 0.03, 0.05, "regression"),  # a difference of shares, 2 % absolute
    (LOSS, -0.01, 0.01, "no change"),
])
def test_an_interval_s_verdict_against_the_threshold_band(metric, low, high, verdict):
    assert compare.verdict_of(metric, low, high, 0.02) == verdict


def test_rounds_without_spread_compare_exactly():
    paced = compare_rounds("k", PPS, [20_000] * 3, [18_000] * 3, threshold=0.02)
    assert (paced.verdict, paced.low, paced.high) == ("regression", pytest.approx(0.9),
                                                      pytest.approx(0.9))
    same = compare_rounds("k", LOSS, [0.0] * 3, [0.0] * 3)
    assert (same.verdict, same.estimate, same.low, same.high) == ("no change", 0.0, 0.0, 0.0)
    dropped = compare_rounds("k", LOSS, [0.0] * 3, [0.1] * 3)  # 1 in 10 dropped
    assert dropped.verdict == "regression" and dropped.low == pytest.approx(0.1)
    assert "loss_ratio difference +10.000%" in dropped.line()


def test_a_single_round_or_a_zero_gives_no_interval_and_says_why():
    one = compare_rounds("k", PPS, [1000.0], [900.0, 910.0])
    assert (one.verdict, one.low, one.rounds_needed) == ("undecided", None, None)
    assert "one round on a side" in one.note
    zero = compare_rounds("k", PPS, [1000.0, 1010.0], [0.0, 900.0])
    assert zero.verdict == "undecided" and "measured 0" in zero.note
    with pytest.raises(ValueError, match="no rounds to compare"):
        compare_rounds("k", PPS, [], [1.0])


def _rounds(rng, ratio: float, spread: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rounds of a lab whose pps spread by ``spread`` (the sd of their logarithms), before and
    after a change of exactly ``ratio``."""
    base = 150_000.0
    return (base * rng.lognormal(0, spread, n), base * ratio * rng.lognormal(0, spread, n))


@pytest.mark.parametrize("n", [3, 10])
def test_the_error_rate_is_what_the_method_promises(n):
    """A change of exactly the threshold (the hardest case that is no regression) is called a
    regression in at most (1 - 0.95) / 2 of 2,000 comparisons (plus the simulation's own
    error, 3 sd); an unchanged point almost never."""
    rng = np.random.default_rng(2544 + n)
    trials, threshold = 2000, 0.02
    at_threshold = sum(compare_rounds("k", PPS, *_rounds(rng, 1 - threshold, 0.03, n),
                                      threshold).verdict == "regression"
                       for _ in range(trials))
    unchanged = sum(compare_rounds("k", PPS, *_rounds(rng, 1.0, 0.03, n),
                                   threshold).verdict == "regression" for _ in range(trials))
    promised = 0.025
    slack = 3 * math.sqrt(promised * (1 - promised) / trials)
    assert at_threshold / trials <= promised + slack
    assert unchanged / trials <= 0.005


def test_a_real_regression_is_found_and_its_interval_holds_it():
    """10 % slower at a 3 % spread, 5 rounds each: a regression nearly always, and the 95 %
    interval holds the true ratio about 95 % of the times."""
    rng = np.random.default_rng(7)
    found = [compare_rounds("k", PPS, *_rounds(rng, 0.90, 0.03, 5), 0.02) for _ in range(1000)]
    assert sum(c.verdict == "regression" for c in found) >= 950
    covered = sum(c.low <= 0.90 <= c.high for c in found) / len(found)
    assert 0.93 <= covered <= 0.97


def test_welch_covers_at_three_rounds_where_a_bootstrap_does_not():
    """Why Welch's t (compare.py's docstring): at 3 rounds a side, a percentile bootstrap's
    95 % interval of the same difference holds the truth far less often than it claims."""
    from scipy import stats

    rng = np.random.default_rng(11)
    welch = boot = 0
    for _ in range(300):
        before, after = (np.log(side) for side in _rounds(rng, 1.0, 0.05, 3))
        c = compare_rounds("k", PPS, np.exp(before), np.exp(after), 0.02)
        welch += c.low <= 1.0 <= c.high
        ci = stats.bootstrap((after, before), lambda a, b, axis=-1: a.mean(axis) - b.mean(axis),
                             n_resamples=999, method="percentile", rng=rng).confidence_interval
        boot += ci.low <= 0.0 <= ci.high
    assert welch / 300 >= 0.92 and boot / 300 <= 0.85


def test_rounds_needed_settle_four_reruns_in_five():
    """The count it gives is the first at which Welch's interval clears the band in 80 % of
    reruns, at the spread and change seen; rerun that many times (the same spread, the same
    change, 400 times), about 80 % settle."""
    before = [150_000.0, 154_000.0, 146_000.0]
    after = [143_000.0, 147_500.0, 139_000.0]  # about 4.5 % slower
    c = compare_rounds("k", PPS, before, after, 0.02)
    assert c.verdict == "undecided" and c.rounds_needed is not None and c.rounds_needed > 3
    logs = [np.log(before), np.log(after)]
    s2a, s2b = (float(np.var(x, ddof=1)) for x in logs)
    diff = float(np.mean(logs[1]) - np.mean(logs[0]))
    distance = min(abs(diff - b) for b in (math.log(0.98), math.log(1.02)))
    n = c.rounds_needed
    assert compare._welch_half(s2a, s2b, n, 0.95, compare.POWER) < distance
    assert compare._welch_half(s2a, s2b, n - 1, 0.95, compare.POWER) >= distance
    assert f"about {n} rounds on each side would settle it (80% of the time)" in c.line()
    rng = np.random.default_rng(3)
    settled = sum(compare_rounds(
        "k", PPS, np.exp(np.mean(logs[0]) + math.sqrt(s2a) * rng.standard_normal(n)),
        np.exp(np.mean(logs[1]) + math.sqrt(s2b) * rng.standard_normal(n)), 0.02
    ).verdict == "regression" for _ in range(400))
    assert 0.70 <= settled / 400 <= 0.90


def test_a_kernel_that_stops_sending_is_a_regression():
    stopped = compare_rounds("k", PPS, [150_000.0, 151_000.0], [0.0, 0.0, 0.0])
    assert (stopped.verdict, stopped.estimate) == ("regression", 0.0)
    assert "every round after measured 0" in stopped.note


def test_an_estimate_next_to_the_threshold_needs_more_rounds_than_any_lab_runs():
    c = compare_rounds("k", PPS, [100.0, 102.0, 98.0], [95.01, 97.0, 93.0], 0.05)
    assert c.verdict == "undecided" and c.rounds_needed == compare.MAX_ROUNDS
    assert "more than 100,000 rounds on each side would settle it" in c.line()


def test_an_estimate_on_a_bound_cannot_be_settled():
    assert compare.rounds_needed([0.0, 1.0], [0.0, 1.0], (0.0,)) is None  # exactly on it
    c = replace(compare_rounds("k", PPS, [100.0, 102.0, 98.0], [98.0, 99.96, 96.04], 0.02),
                rounds_needed=None)
    assert "no number of rounds settles it: the change lies at the threshold" in c.line()


def test_searches_compare_by_their_bounds():
    ndr = METRICS["ndr_pps"]
    slower = compare_bounds("k", ndr, (10_000.0, 10_050.0), (9_000.0, 9_045.0), 0.02)
    assert slower.verdict == "regression"
    assert (slower.low, slower.high) == (pytest.approx(9_000 / 10_050), pytest.approx(0.9045))
    same = compare_bounds("k", ndr, (10_000.0, 10_050.0), (10_010.0, 10_060.0), 0.02)
    assert same.verdict == "no change" and "by the searches' bounds" in same.line()
    irregular = compare_bounds("k", ndr, (10_000.0, 10_050.0), (10_000.0, None), 0.02)
    assert irregular.verdict == "undecided" and irregular.high == math.inf
    assert "narrower searches" in irregular.line()
    nothing = compare_bounds("k", ndr, (10_000.0, 10_050.0), (None, 1_000.0), 0.02)
    assert nothing.verdict == "regression" and nothing.low == 0.0  # not even the min load
    assert "no lower bound after" in nothing.note
    with pytest.raises(ValueError, match="the search before found no lower bound"):
        compare_bounds("k", ndr, (None, 10.0), (1.0, 2.0))


def test_paired_ratios_give_the_geometric_mean_and_a_t_interval():
    low, mean, high = compare.paired([0.95, 0.97, 0.96, 0.98, 0.94])
    assert low < mean < high and mean == pytest.approx(math.exp(np.mean(np.log(
        [0.95, 0.97, 0.96, 0.98, 0.94]))))
    assert high < 1.0
    assert compare.paired([1.0, 1.0]) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="two or more"):
        compare.paired([1.0])


def test_exit_codes_follow_the_worst_verdict():
    def c(verdict):
        return compare.Comparison("k", PPS, (1.0,), (1.0,), 1.0, 1.0, 1.0, 0.02, 0.95, verdict,
                                  "x")
    assert compare.exit_code([c("no change"), c("improvement")]) == 0
    assert compare.exit_code([c("no change"), c("undecided")]) == 2
    assert compare.exit_code([c("undecided"), c("regression")]) == 1


@pytest.mark.parametrize(("value", "expected"), [
    ("pps=2%", {"pps": 0.02}), ("pps=0.02,loss_ratio=0.1%", {"pps": 0.02, "loss_ratio": 0.001}),
    ({"lat_p99_us": 0.3}, {"lat_p99_us": 0.3}), ("loss_ratio=100%", {"loss_ratio": 1.0}),
])
def test_thresholds_parse(value, expected):
    assert compare.thresholds(value) == pytest.approx(expected)


@pytest.mark.parametrize(("value", "message"), [
    ("speed=5%", "threshold speed=5%: METRIC=SHARE with METRIC one of pps, loss_ratio"),
    ("pps=100%", "a share from 0 to below 1"), ("pps=-1%", "threshold pps=-1%"),
    ("pps", "threshold pps: METRIC=SHARE"), ({"pps": True}, "threshold pps=True"),
    ("", "METRIC=SHARE"),
])
def test_bad_thresholds_say_what_is_allowed(value, message):
    with pytest.raises(ValueError, match=".*" + __import__("re").escape(message)):
        compare.thresholds(value)
