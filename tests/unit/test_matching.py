"""matching: two runs' points, ratios, verdicts and series pairs, against values
worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from compare_fixtures import CONTEXT_OPERATION, CUTOFF, RUN_A, key, run_rows, write_runs

from imgbench.results import matching


@pytest.fixture
def runs(tmp_path) -> tuple[Path, Path]:
    return write_runs(tmp_path)


# --- the rules, by hand ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("medians", "median", "low", "high", "level"),
    [
        ([2.0, 1.0], 1.5, 1.0, 2.0, 0.5),
        ([3.0, 1.0, 2.0], 2.0, 1.0, 3.0, 0.75),
        ([5.0, 1.0, 4.0, 2.0, 3.0], 3.0, 1.0, 5.0, 0.9375),
        ([6.0, 1.0, 5.0, 2.0, 4.0, 3.0], 3.5, 1.0, 6.0, 1 - 2 / 64),
        (list(map(float, range(9, 0, -1))), 5.0, 2.0, 8.0, 1 - 2 * 10 / 512),
    ],
)
def test_point_interval_is_over_store_medians(medians, median, low, high, level):
    point = matching.make_point(medians)
    assert point.median == median
    assert (point.low, point.high) == (low, high)
    assert point.level == pytest.approx(level)
    assert point.has_interval


def test_one_store_has_no_interval_and_no_verdict():
    one, three = matching.make_point([1.0]), matching.make_point([1.0, 1.1, 1.2])
    assert not one.has_interval and math.isnan(one.low) and math.isnan(one.level)
    assert matching.verdict(one, three) == matching.NO_VERDICT
    assert matching.verdict(three, one) == matching.NO_VERDICT
    assert all(math.isnan(value) for value in matching.ratio_interval(one, three))
    assert matching.pair_verdict(one, three) == matching.NO_INTERVAL


def test_ratio_interval_and_verdict():
    a = matching.make_point([1.0, 1.1, 1.2])
    slower, faster = matching.make_point([2.0, 2.1, 2.2]), matching.make_point([0.3, 0.35, 0.4])
    low, high, level = matching.ratio_interval(a, slower)
    assert (low, high) == pytest.approx((2.0 / 1.2, 2.2 / 1.0))
    assert level == pytest.approx(0.75 * 0.75)
    assert matching.verdict(a, slower) == matching.SLOWER
    assert matching.verdict(a, faster) == matching.FASTER
    touching = matching.make_point([1.2, 1.3, 1.4])  # shares 1.2 with A's interval
    assert matching.verdict(a, touching) == matching.NO_CLEAR
    low, high, _ = matching.ratio_interval(a, touching)
    assert low <= 1.0 <= high  # the ratio interval holds 1 exactly when intervals overlap


def test_ratio_interval_is_the_range_of_pairwise_ratios_up_to_five_stores():
    a, b = [1.0, 1.3, 0.9, 1.1], [2.0, 1.7, 2.4]
    low, high, _ = matching.ratio_interval(matching.make_point(a), matching.make_point(b))
    ratios = [y / x for x in a for y in b]
    assert (low, high) == pytest.approx((min(ratios), max(ratios)))


@pytest.mark.parametrize(
    ("in_a", "in_b", "outcome", "clear"),
    [
        (matching.FIRST, matching.FIRST, matching.AGREE, True),
        (matching.TIE, matching.TIE, matching.AGREE, False),
        (matching.FIRST, matching.SECOND, matching.CONTRADICT, True),
        (matching.TIE, matching.SECOND, matching.ONE_RUN_CLEAR, True),
        (matching.FIRST, matching.NO_INTERVAL, matching.NOT_COMPARED, False),
    ],
)
def test_pair_outcomes(in_a, in_b, outcome, clear):
    point = matching.make_point([1.0, 2.0])
    check = matching.PairCheck((), "x", "y", in_a, in_b, (point, point), (point, point))
    assert check.outcome == outcome
    assert check.clear is clear


def test_keys_match_whatever_the_dtype():
    assert matching.point_key([1.0, float("nan"), "n/a"]) == (1, "", "n/a")
    assert matching.point_key(pd.Series([32, 2.5]).tolist()) == (32, 2.5)


# --- two hand-made runs ---------------------------------------------------------------------


def test_compare_runs_ratios_verdicts_and_missing_points(runs):
    result = matching.compare_runs(matching.load_run(runs[0]), matching.load_run(runs[1]))
    found = {c.key: c for c in result.common}
    png = found[key("png", "store")]
    assert png.a.store_medians == (1.0, 1.1, 1.2)
    assert png.ratio == pytest.approx(2.1 / 1.1)
    assert (png.ratio_low, png.ratio_high) == pytest.approx((2.0 / 1.2, 2.2 / 1.0))
    assert png.a.images_per_s == pytest.approx(CUTOFF / 1.1)
    assert png.verdict == matching.SLOWER
    assert found[key("npy", "store")].verdict == matching.FASTER
    assert found[key("lmdb", "store")].a.store_medians == (0.8, 0.9, 1.0)
    assert found[key("lmdb", "store")].verdict == matching.NO_CLEAR
    assert found[key("hdf5", "store")].verdict == matching.NO_VERDICT
    assert result.only_a == [key("png", "warm")]
    assert result.only_b == [key("zarr", "store")]
    assert found[key("npy", "store")].b.busy and not found[key("npy", "store")].a.busy
    assert not any(c.a.busy for c in result.common)


def test_a_contradiction_is_found_and_counted(runs):
    result = matching.compare_runs(matching.load_run(runs[0]), matching.load_run(runs[1]))
    outcomes = {(p.context[CONTEXT_OPERATION], p.first, p.second): p.outcome for p in result.pairs}
    assert outcomes == {
        ("store", "hdf5", "lmdb"): matching.NOT_COMPARED,
        ("store", "hdf5", "npy"): matching.NOT_COMPARED,
        ("store", "hdf5", "png"): matching.NOT_COMPARED,
        ("store", "lmdb", "npy"): matching.AGREE,  # npy faster in both
        ("store", "lmdb", "png"): matching.ONE_RUN_CLEAR,  # A: intervals touch at 1.0
        ("store", "npy", "png"): matching.AGREE,
        ("read", "npy", "png"): matching.CONTRADICT,
    }
    [contradiction] = result.contradictions
    assert contradiction.winner(contradiction.in_a) == "png"
    assert contradiction.winner(contradiction.in_b) == "npy"
    assert len(result.clear_pairs) == 4


def test_older_runs_without_load_columns(tmp_path):
    older = [
        {k: v for k, v in item.items() if k not in matching.BUSY_COLUMNS[:3] + ("images_per_s",)}
        for item in run_rows(RUN_A)
    ]
    path = tmp_path / "old" / "timings.csv"
    path.parent.mkdir()
    pd.DataFrame.from_records(older).to_csv(path, index=False)
    result = matching.compare_runs(matching.load_run(path), matching.load_run(path))
    assert not any(c.a.busy for c in result.common)
    png = next(c for c in result.common if c.key == key("png", "store"))
    assert png.a.images_per_s == pytest.approx(CUTOFF / 1.1)  # images_read / seconds
    assert {c.verdict for c in result.common} == {matching.NO_CLEAR, matching.NO_VERDICT}


def test_foreign_cpu_marks_a_point_busy(tmp_path):
    rows = run_rows(RUN_A)
    for item in rows:
        item["foreign_cpu_seconds"] = 0.5 * item["seconds"] if item["method"] == "png" else 0.0
    path = tmp_path / "a.csv"
    pd.DataFrame.from_records(rows).to_csv(path, index=False)
    points = matching.run_points(matching.load_run(path))
    assert points[key("png", "store")].busy and not points[key("npy", "store")].busy
