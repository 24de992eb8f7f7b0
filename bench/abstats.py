"""How sure a ratio of paired runs is: under QEMU's TCG one pair's ratio moves by a fifth
either way, so a benchmark's verdict is its pairs' geometric mean with a 95 % interval, not
one median read against a target. The interval is the package's own (pytest_pktgen's
``measurement/compare.py`` ``paired``: a t interval of the pairs' logarithms), the same
statistics that judge a regression. Figures in RESULTS.md from before 2026-12-08 came from a
bootstrap over the pairs, whose intervals are narrower than they should be at so few pairs: at
12 pairs of run 20261125T215859 section 1 the bootstrap said 0.973..1.033, the t interval
0.968..1.038 (tests/unit/test_compare.py measures a bootstrap's coverage at 3 rounds)."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_pktgen.measurement.compare import paired


def ratio_interval(ratios: Sequence[float]) -> tuple[float, float, float]:
    """The geometric mean of ``ratios`` and its 95 % interval (low, mean, high). Pairs
    alternate which side goes first, so a first-run advantage falls out of the mean of their
    logarithms."""
    return paired(ratios)


def verdict(ratios: Sequence[float], target: float, what: str) -> str:
    """A line saying the ratio, its interval and whether it meets ``target`` (at least)."""
    low, mean, high = ratio_interval(ratios)
    if low >= target:
        said = "met"
    elif high < target:
        said = "NOT met"
    else:
        said = f"{'met' if mean >= target else 'NOT met'} by the mean, not settled at this noise"
    return (f"{what}: geometric mean {mean:.3f} over {len(ratios)} pairs, 95 % interval "
            f"{low:.3f}..{high:.3f}; target at least {target}: {said}")
