"""Pure statistics: a distribution-free interval of the median, and which series is clearly
best when each carries such an interval.

The interval comes from order statistics: for ``n`` independent values the number below
the true median is Binomial(n, 1/2), so the sorted values at ranks ``j`` and ``n + 1 - j``
(1-based) enclose the median with probability ``1 - 2 P(Bin(n, 1/2) <= j - 1)``, whatever
the distribution of the values. No assumption of normality, no bootstrap. The values must
be independent: the benchmark passes one median per store (timings of one store share its
placement on disk and are not), so the coverage is that of its stores, not its timings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

LEVEL = 0.95


class MedianInterval(NamedTuple):
    low: float
    high: float
    level: float  # the coverage of [low, high], not the level asked for


class Candidate(NamedTuple):
    name: str
    value: float  # the median
    low: float
    high: float
    level: float = math.nan  # coverage of [low, high], where it is an interval of the median


class Verdict(NamedTuple):
    best: Candidate
    tied: tuple[Candidate, ...]  # the others whose interval overlaps the best's

    @property
    def clear(self) -> bool:
        return not self.tied


def binomial_half_cdf(k: int, n: int) -> float:
    """P(Bin(n, 1/2) <= k), exactly (integer counts over 2**n)."""
    if k < 0:
        return 0.0
    return math.fsum(math.comb(n, i) for i in range(min(k, n) + 1)) / 2**n


def rank_coverage(j: int, n: int) -> float:
    """Coverage of the median by the order statistics at ranks ``j`` and ``n + 1 - j``."""
    return 1.0 - 2.0 * binomial_half_cdf(j - 1, n)


def median_ranks(n: int, level: float = LEVEL) -> tuple[int, int, float]:
    """1-based ranks (j, n + 1 - j) of the narrowest symmetric pair covering the median with
    at least ``level``, and its coverage. When no pair reaches ``level`` (n < 6 for 95 %)
    the ranks are 1 and n (min and max) with their true, lower coverage."""
    if n < 1:
        raise ValueError("an interval needs at least one value")
    j = 1
    while j + 1 <= (n + 1) // 2 and rank_coverage(j + 1, n) >= level:
        j += 1
    return j, n + 1 - j, rank_coverage(j, n)


def median_interval(values: Iterable[float], level: float = LEVEL) -> MedianInterval:
    """Interval of the median of ``values`` (NaN ignored). All NaN with fewer than two
    values left: one value is a point, which covers the median with probability 0."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if len(ordered) < 2:
        return MedianInterval(math.nan, math.nan, math.nan)
    low, high, coverage = median_ranks(len(ordered), level)
    return MedianInterval(ordered[low - 1], ordered[high - 1], coverage)


def has_interval(candidate: Candidate) -> bool:
    """Whether ``candidate`` carries an interval (NaN ends: none, e.g. from one store)."""
    return not (math.isnan(candidate.low) or math.isnan(candidate.high))


def overlaps(a: Candidate, b: Candidate) -> bool:
    """Whether two closed intervals share a point; an unknown (NaN) end counts as overlap:
    a value without an interval is no evidence that either is better."""
    return not (a.high < b.low or b.high < a.low)


def separate(candidates: Sequence[Candidate], *, higher_is_better: bool = False) -> Verdict:
    """The best candidate by median, and every other whose interval overlaps the best's
    (ordered from the best down). The best is clear only when that list is empty, so never
    while any candidate has no interval (``has_interval``): callers say why."""
    if not candidates:
        raise ValueError("no candidates to compare")
    ranked = sorted(candidates, key=lambda c: -c.value if higher_is_better else c.value)
    best = ranked[0]
    return Verdict(best, tuple(c for c in ranked[1:] if overlaps(best, c)))
