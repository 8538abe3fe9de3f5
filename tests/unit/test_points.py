"""points: statistics per point, the median and interval from the store medians."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from results_fixtures import make_rows, row

from imgbench.results import points, verdicts


def warm_read(store: int, inner: int, seconds: float) -> dict:
    """One timed warm read of 10 images (npy) from store ``store``."""
    return row(
        method="npy",
        operation="read",
        cache="warm",
        cutoff=10,
        images_read=10,
        repeat=store,
        inner_repeat=inner,
        seconds=seconds,
    )


def test_stats_per_point(tables):
    rows, stats, _ = tables
    assert len(stats) == 12
    # Recompute every point from the generated values, without pandas.
    generated = {}
    for item in make_rows():
        key = (item["method"], item["operation"], item["cache"], item["cutoff"])
        generated.setdefault(key, []).append(item)
    assert len(generated) == 12
    for point in stats.itertuples():
        items = generated[(point.method, point.operation, point.cache, point.cutoff)]
        seconds = np.array([i["seconds"] for i in items])
        assert point.n == len(items)
        assert point.series == point.method
        by_store = {}
        for i in items:
            by_store.setdefault(i["repeat"], []).append(i["seconds"])
        store_medians = [np.median(times) for times in by_store.values()]
        assert point.median_s == pytest.approx(np.median(store_medians))
        assert point.min_s == pytest.approx(seconds.min())
        assert point.max_s == pytest.approx(seconds.max())
        q25, q75 = np.percentile(seconds, [25, 75])
        assert point.q25_s == pytest.approx(q25)
        assert point.q75_s == pytest.approx(q75)
        assert point.iqr_s == pytest.approx(q75 - q25)
        assert point.mean_s == pytest.approx(seconds.mean())
        assert point.std_s == pytest.approx(seconds.std(ddof=1))
        assert point.cv == pytest.approx(seconds.std(ddof=1) / seconds.mean())
        assert point.median_images_per_s == pytest.approx(
            np.median([point.cutoff / median for median in store_medians])
        )
        assert point.median_bytes_on_disk == np.median([i["bytes_on_disk"] for i in items])
        assert not point.busy and point.max_load_1min == 0.5
        if point.cache == "cold":
            assert point.median_cached_fraction == pytest.approx(0.01)
            assert point.max_cached_fraction == pytest.approx(0.02)
            assert point.eviction == "fadvise"
        elif point.cache == "n/a":
            assert math.isnan(point.median_cached_fraction)
            assert point.median_write_seconds == pytest.approx(0.75 * point.median_s)
            assert point.median_flush_seconds == pytest.approx(0.25 * point.median_s)
            assert math.isnan(point.device_bytes_per_requested)
        # 3 stores: min and max of the store medians, at their true coverage 1 - 2 / 8
        assert (point.ci_low, point.ci_high) == (min(store_medians), max(store_medians))
        assert point.ci_level == 0.75 and point.stores == 3

    by = stats.set_index(["method", "operation", "cache", "cutoff"])
    nine = by.loc[("npy", "read", "warm", 100)]
    assert (nine["n"], nine["stores"], nine["inner_repeats"]) == (9, 3, 3)
    # the stores' min–max at 75 %, never the 96.1 % of ranks 2 and 8 of the nine timings
    assert (nine["median_s"], nine["ci_low"], nine["ci_high"]) == (2.0, 1.99, 2.01)
    assert nine["ci_level"] == 0.75
    assert nine["ci_halfwidth_rel"] == pytest.approx(0.005)
    # images/s: 100 / seconds, each store's median 100 / its median seconds
    assert nine["median_images_per_s"] == pytest.approx(50.0)
    assert nine["ci_images_per_s_low"] == pytest.approx(100 / 2.01)
    assert nine["ci_images_per_s_high"] == pytest.approx(100 / 1.99)
    assert nine["ci_images_per_s_level"] == 0.75
    noisy = by.loc[("png", "store", "n/a", 10)]
    assert noisy["median_s"] == 4.0
    assert noisy["iqr_s"] == pytest.approx(1.0)  # quartiles 3.5 and 4.5
    assert noisy["cv"] == pytest.approx(0.25)
    assert noisy["ci_halfwidth_rel"] == pytest.approx(0.25)  # max(4 - 3, 5 - 4) / 4
    assert by.loc[("png", "store", "n/a", 100), "cv"] == pytest.approx(0.02)
    assert by.loc[("png", "store", "n/a", 100), "ci_halfwidth_rel"] == pytest.approx(0.02)
    # device bytes per requested byte: npy 36,864 / 30,720; png 1.5 x 40,960 / 30,720
    assert by.loc[("npy", "read", "cold", 10), "device_bytes_per_requested"] == 1.2
    assert by.loc[("png", "read", "cold", 10), "device_bytes_per_requested"] == 2.0
    assert by.loc[("png", "read", "warm", 10), "device_bytes_per_requested"] == 0.0


def test_one_store_has_no_interval_however_many_timings():
    """npy: one store timed five times, 1.00–1.04 s; png: three stores at 2.0–2.2 s. The
    five timings share one store's placement on disk: no interval and no verdict, said as
    such (an unknown interval overlaps every other, which alone would read "no clear
    difference")."""
    rows = [warm_read(store=1, inner=i + 1, seconds=1.0 + 0.01 * i) for i in range(5)]
    rows += [
        {**warm_read(store=s + 1, inner=1, seconds=2.0 + 0.1 * s), "method": "png"}
        for s in range(3)
    ]
    stats = points.summarise(pd.DataFrame(rows))
    npy = stats.set_index("method").loc["npy"]
    assert (npy["n"], npy["stores"], npy["median_s"]) == (5, 1, 1.02)
    ends = ["ci_low", "ci_high", "ci_level", "ci_images_per_s_low", "ci_images_per_s_level"]
    assert npy[ends].isna().all() and math.isnan(npy["ci_halfwidth_rel"])
    assert verdicts.time_verdict(stats, "warm read") == (
        "warm read: best median npy, but npy had one store (no interval), so no verdict"
    )
    assert verdicts.fastest_cell(stats) == (
        "no clear winner: npy and png (best median npy 1.02 s; npy: one store, no interval)"
    )


def test_interval_comes_from_the_store_medians_alone():
    """20 timings of one store at 1.0 s and one of another store at 5.0 s. The order
    statistics of the 21 timings (ranks 6 and 16) would give 1.0–1.0 at 97 %, hiding the
    second store; the stores are the independent units: median of the two store medians
    3.0, interval their min–max 1.0–5.0 at 50 %."""
    rows = [warm_read(store=1, inner=i + 1, seconds=1.0) for i in range(20)]
    rows.append(warm_read(store=2, inner=1, seconds=5.0))
    (point,) = points.summarise(pd.DataFrame(rows)).itertuples()
    assert (point.n, point.stores, point.median_s) == (21, 2, 3.0)
    assert (point.ci_low, point.ci_high) == (1.0, 5.0)
    assert point.ci_level == 0.5  # min–max of 2 store medians: 1 - 2 / 4
    assert point.store_spread_rel == pytest.approx(4.0 / 3.0)
    # images/s the same way: store medians 10 and 2 images/s
    assert point.median_images_per_s == 6.0
    assert (point.ci_images_per_s_low, point.ci_images_per_s_high) == (2.0, 10.0)
    assert point.ci_images_per_s_level == 0.5


def test_no_column_says_widened(tables):
    _, stats, _ = tables
    assert not [column for column in stats.columns if "widen" in column]


def test_six_stores_give_a_95_percent_interval_of_their_medians():
    """Six stores of four timings each; store medians 1.0 … 1.5. For 6 store medians the
    95 % ranks are 1 and 6 (coverage 1 - 2 / 64), so 1.0–1.5, whatever the 24 timings
    (ranks 7 and 18 of them would give 1.1–1.4)."""
    rows = [
        warm_read(store=store + 1, inner=i + 1, seconds=1.0 + 0.1 * store)
        for store in range(6)
        for i in range(4)
    ]
    (point,) = points.summarise(pd.DataFrame(rows)).itertuples()
    assert (point.ci_low, point.ci_high) == (1.0, pytest.approx(1.5))
    assert point.median_s == pytest.approx(1.25)
    assert point.ci_level == pytest.approx(1 - 2 / 64)
