"""How sure a ratio of paired runs is: under QEMU's TCG one pair's ratio moves by a fifth
either way, so a benchmark's verdict is its pairs' geometric mean with a 95 % interval
(bootstrap over the pairs), not one median read against a target."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence

RESAMPLES = 4000


def ratio_interval(ratios: Sequence[float], seed: int = 2544) -> tuple[float, float, float]:
    """The geometric mean of ``ratios`` and its 95 % bootstrap interval (low, mean, high).
    Pairs alternate which side goes first, so a first-run advantage falls out of the mean
    of their logarithms."""
    logs = [math.log(r) for r in ratios]
    rng = random.Random(seed)  # the same figures give the same interval
    means = sorted(statistics.fmean(rng.choices(logs, k=len(logs))) for _ in range(RESAMPLES))
    low, high = means[int(0.025 * RESAMPLES)], means[int(0.975 * RESAMPLES) - 1]
    return math.exp(low), math.exp(statistics.fmean(logs)), math.exp(high)


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
