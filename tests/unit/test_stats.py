"""stats: the order-statistics interval of the median and the winner/tie rule, against
values worked out by hand (binomial counts over 2**n), not against a library."""

from __future__ import annotations

import math

import pytest

from imgbench.results import stats


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [
        (-1, 5, 0.0),
        (0, 3, 1 / 8),  # C(3,0) = 1
        (1, 9, 10 / 512),  # 1 + 9
        (2, 9, 46 / 512),  # 1 + 9 + 36
        (3, 15, 576 / 32768),  # 1 + 15 + 105 + 455
        (5, 5, 1.0),
    ],
)
def test_binomial_half_cdf(k, n, expected):
    assert stats.binomial_half_cdf(k, n) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(
    ("n", "ranks", "coverage"),
    [
        # n < 6: no pair reaches 95 %, so min and max with their own coverage 1 - 2 / 2**n
        (1, (1, 1), 0.0),
        (2, (1, 2), 0.5),
        (3, (1, 3), 0.75),
        (5, (1, 5), 1 - 2 / 32),  # 0.9375
        # n = 6: (1, 6) covers 1 - 2/64; (2, 5) would cover 1 - 2*7/64 = 0.78
        (6, (1, 6), 1 - 2 / 64),
        # n = 9: (2, 8) covers 1 - 2*10/512 = 0.961; (3, 7) only 1 - 2*46/512 = 0.820
        (9, (2, 8), 1 - 20 / 512),
        # n = 10: (2, 9) covers 1 - 2*11/1024; (3, 8) only 1 - 2*56/1024 = 0.891
        (10, (2, 9), 1 - 22 / 1024),
        # n = 15: (4, 12) covers 1 - 2*576/32768 = 0.965; (5, 11) 1 - 2*1941/32768 = 0.882
        (15, (4, 12), 1 - 1152 / 32768),
        # n = 20: (6, 15) covers 1 - 2*21700/2**20 = 0.959; (7, 14) 1 - 2*60460/2**20 = 0.885
        (20, (6, 15), 1 - 43400 / 2**20),
    ],
)
def test_median_ranks(n, ranks, coverage):
    low, high, level = stats.median_ranks(n)
    assert (low, high) == ranks
    assert level == pytest.approx(coverage, abs=1e-12)


def test_median_ranks_needs_a_value():
    with pytest.raises(ValueError, match="at least one"):
        stats.median_ranks(0)


def test_median_interval_of_nine_values_is_the_second_and_eighth():
    values = [5.0, 9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0]
    assert stats.median_interval(values) == (2.0, 8.0, pytest.approx(492 / 512))


def test_median_interval_of_three_values_is_min_max_at_75_percent():
    low, high, level = stats.median_interval([3.0, 1.0, 2.0])
    assert (low, high) == (1.0, 3.0)
    assert level == 0.75  # never 0.95


def test_median_interval_of_fifteen_values_is_the_fourth_and_twelfth():
    values = [10.0 * i for i in (15, 3, 8, 1, 12, 6, 14, 2, 9, 11, 5, 13, 4, 7, 10)]
    low, high, level = stats.median_interval(values)
    assert (low, high) == (40.0, 120.0)
    assert level == pytest.approx(31616 / 32768)


def test_median_interval_of_two_values_is_min_max_at_50_percent():
    assert stats.median_interval([2.0, 1.0]) == (1.0, 2.0, 0.5)  # 1 - 2 / 4


def test_median_interval_ignores_nan_and_handles_none_left():
    assert stats.median_interval([math.nan, 2.0, 3.0, 1.0])[:2] == (1.0, 3.0)
    assert all(math.isnan(v) for v in stats.median_interval([math.nan]))
    assert all(math.isnan(v) for v in stats.median_interval([]))


def test_one_value_gives_no_interval():
    """Ranks (1, 1) of one value cover the median with 0 (test_median_ranks): a point,
    not an interval, so none is given (one store: no interval)."""
    assert all(math.isnan(v) for v in stats.median_interval([2.0]))
    assert all(math.isnan(v) for v in stats.median_interval([2.0, math.nan]))


def candidate(name, value, low, high):
    return stats.Candidate(name, value, low, high)


def test_separate_names_a_clear_winner():
    verdict = stats.separate(
        [candidate("png", 2.0, 1.8, 2.2), candidate("npy", 1.0, 0.9, 1.1)],
    )
    assert verdict.clear and verdict.best.name == "npy" and verdict.tied == ()


def test_separate_overlapping_intervals_are_a_tie():
    verdict = stats.separate([candidate("npy", 1.0, 0.9, 1.3), candidate("png", 1.2, 1.25, 1.5)])
    assert not verdict.clear
    assert verdict.best.name == "npy" and [c.name for c in verdict.tied] == ["png"]
    # touching ends overlap too: the best's high must lie strictly below the other's low
    touching = stats.separate([candidate("a", 1.0, 0.9, 1.2), candidate("b", 1.3, 1.2, 1.4)])
    assert [c.name for c in touching.tied] == ["b"]


def test_separate_lists_every_overlapping_series_not_only_the_runner_up():
    verdict = stats.separate(
        [
            candidate("c", 3.0, 1.4, 10.0),  # wide: reaches down into a's interval
            candidate("b", 2.0, 1.6, 2.4),  # runner-up, clear of a
            candidate("a", 1.0, 0.5, 1.5),
        ]
    )
    assert verdict.best.name == "a" and [c.name for c in verdict.tied] == ["c"]


def test_separate_higher_is_better_and_equal_values():
    throughput = stats.separate(
        [candidate("png", 25.0, 24.0, 26.0), candidate("npy", 100.0, 98.0, 102.0)],
        higher_is_better=True,
    )
    assert throughput.clear and throughput.best.name == "npy"
    same = stats.separate([candidate("hdf5", 4096, 4096, 4096), candidate("npy", 4096, 4096, 4096)])
    assert not same.clear


def test_separate_unknown_interval_is_no_evidence_of_a_winner():
    lone = candidate("a", 1.0, math.nan, math.nan)
    verdict = stats.separate([lone, candidate("b", 5.0, 4, 6)])
    assert not verdict.clear
    # nor when the series without an interval is not the best
    assert not stats.separate([candidate("b", 5.0, 4, 6), candidate("c", 9.0, math.nan, 9)]).clear
    assert not stats.has_interval(lone) and stats.has_interval(candidate("b", 5.0, 4, 6))
    with pytest.raises(ValueError, match="no candidates"):
        stats.separate([])
