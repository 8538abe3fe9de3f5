"""Coverage of the intervals of ``points.summarise``, by simulation.

The data-generating process of one point: each store draws its own level, log-normal
around ``TRUE_MEDIAN`` with a spread of ``BETWEEN`` (its placement on disk, its process,
its moment on the machine); each timing of that store is log-normal around the store's
level with the smaller spread ``WITHIN``. Both are symmetric in log, so the median a new
store would give (the median of the distribution of one store's median) is exactly
``TRUE_MEDIAN``: that is what a point's interval claims to cover, with its ``ci_level``.
Timings of one store are not independent, so an interval that treats them as such (the
pooled rule of old) covers far less often than it says; the stores are the unit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imgbench.harness import measure
from imgbench.results import points
from imgbench.results import stats as st

SEED = 20_240_611
POINTS = 2_000
TRUE_MEDIAN = 1.0  # seconds; one image per operation, so 1.0 image/s
BETWEEN = 0.10  # sd of log(store level): stores differ by about 10 %
WITHIN = 0.03  # sd of log(timing / store level): 3 % inside a store
TOLERANCE = 0.03  # empirical coverage within 3 percentage points of the stated level


def simulated_seconds(rng, stores: int, timings: int) -> np.ndarray:
    """Seconds of POINTS points, shape (points, stores, timings)."""
    levels = TRUE_MEDIAN * np.exp(rng.normal(0.0, BETWEEN, (POINTS, stores, 1)))
    return levels * np.exp(rng.normal(0.0, WITHIN, (POINTS, stores, timings)))


def simulated_rows(seconds: np.ndarray) -> pd.DataFrame:
    """One row per timing: point p is the warm npy read at cutoff p + 1."""
    point, store, inner = np.indices(seconds.shape).reshape(3, -1)
    rows = pd.DataFrame(np.nan, index=range(seconds.size), columns=measure.ROW_FIELDS)
    fixed = {"method": "npy", "variant": "default", "image_size": 32, "operation": "read"}
    fixed |= {"cache": "warm", "eviction": "none", "read_pattern": "whole", "readahead": "on"}
    rows = rows.assign(**fixed, readers=1, images_read=1, cpu_count=4)
    rows = rows.assign(cutoff=point + 1, repeat=store + 1, inner_repeat=inner + 1)
    flat = seconds.reshape(-1)
    return rows.assign(seconds=flat, images_per_s=1.0 / flat)


def coverage_by_level(low, high, level, target: float) -> dict[float, tuple[int, float]]:
    """Per stated level: how many intervals state it, and the share of them covering
    ``target``."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    covered = pd.Series((low <= target) & (target <= high))
    grouped = covered.groupby(np.asarray(level, dtype=float))
    return {stated: (len(group), group.mean()) for stated, group in grouped}


def assert_coverage_as_stated(by_level: dict[float, tuple[int, float]]) -> None:
    assert sum(count for count, _ in by_level.values()) == POINTS  # none without a level
    for stated, (_, share) in by_level.items():
        assert share == pytest.approx(stated, abs=TOLERANCE), (stated, share)


SHAPES = [(2, 5), (3, 5), (6, 5), (9, 3)]  # (stores, timings per store)


@pytest.fixture(scope="module", params=SHAPES, ids=[f"{s} stores x {t}" for s, t in SHAPES])
def simulated(request):
    stores, timings = request.param
    rng = np.random.default_rng([SEED, stores, timings])
    seconds = simulated_seconds(rng, stores, timings)
    return seconds, points.summarise(simulated_rows(seconds))


def test_summarise_takes_the_level_from_the_stores_alone(simulated):
    seconds, stats = simulated
    _, stores, timings = seconds.shape
    assert len(stats) == POINTS and (stats["n"] == stores * timings).all()
    # 2, 3, 6 stores: min–max at 1 - 2 / 2**s (50 %, 75 %, 96.9 %); 9 stores: ranks 2
    # and 8 at 1 - 20 / 512. Never the 96.5 % that 15 timings would claim.
    assert (stats["ci_level"] == st.median_ranks(stores)[2]).all()
    assert (stats["ci_images_per_s_level"] == stats["ci_level"]).all()
    assert (stats["ci_low"] <= stats["median_s"]).all()
    assert (stats["median_s"] <= stats["ci_high"]).all()


def test_intervals_cover_the_true_median_as_often_as_they_say(simulated):
    _, stats = simulated
    level = stats["ci_level"]
    times = coverage_by_level(stats["ci_low"], stats["ci_high"], level, TRUE_MEDIAN)
    assert_coverage_as_stated(times)
    per_s = (stats["ci_images_per_s_low"], stats["ci_images_per_s_high"])
    assert_coverage_as_stated(coverage_by_level(*per_s, level, 1 / TRUE_MEDIAN))


def test_the_check_rejects_intervals_of_pooled_timings(simulated):
    """The same check, on the interval that treats every timing as independent: it
    states 95 % or more and covers far less, so the check can fail."""
    seconds, _ = simulated
    pooled = np.array([st.median_interval(timings) for timings in seconds.reshape(POINTS, -1)])
    assert (pooled[:, 2] >= st.LEVEL).all()
    with pytest.raises(AssertionError):
        assert_coverage_as_stated(coverage_by_level(*pooled.T, TRUE_MEDIAN))
