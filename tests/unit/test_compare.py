"""compare and the ``imgbench`` command: two hand-made results directories compared point
by point (ratios, intervals, verdicts, a contradiction, points of one run only, the CSV),
and the pure rules behind them against values worked out by hand."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from imgbench import cli
from imgbench.experiment.rows import ROW_FIELDS, write_rows
from imgbench.results import compare

REPO = Path(__file__).resolve().parents[2]
SIZE, CUTOFF = 32, 100
STORE = {"operation": "store", "cache": "n/a", "eviction": "n/a", "read_pattern": "n/a"}
STORE |= {"readahead": "n/a"}
COLD = {"operation": "read", "cache": "cold", "eviction": "fadvise", "read_pattern": "whole"}
COLD |= {"readahead": "on"}
WARM = {**COLD, "cache": "warm", "eviction": "none"}

# (method, context) -> seconds of each store (a list: that store's timed repetitions).
RUN_A = {
    ("png", "store"): [1.0, 1.1, 1.2],
    ("npy", "store"): [0.5, 0.6, 0.7],
    ("lmdb", "store"): [0.8, 0.9, [1.0, 9.0, 0.1]],  # the third store's median: 1.0
    ("hdf5", "store"): [1.0],
    ("png", "cold"): [2.0, 2.1, 2.2],
    ("npy", "cold"): [3.0, 3.1, 3.2],
    ("png", "warm"): [0.2, 0.21, 0.22],
}
RUN_B = {
    ("png", "store"): [2.0, 2.1, 2.2],  # slower: ratio 2.1 / 1.1, interval [2.0/1.2, 2.2/1.0]
    ("npy", "store"): [0.3, 0.35, 0.4],  # faster
    ("lmdb", "store"): [0.85, 0.95, 1.05],  # no clear difference
    ("hdf5", "store"): [1.5],  # one store: no verdict
    ("png", "cold"): [3.0, 3.1, 3.2],  # png and npy swap: a contradiction
    ("npy", "cold"): [2.0, 2.1, 2.2],
    ("zarr", "store"): [0.4, 0.5, 0.6],
}
CONTEXTS = {"store": STORE, "cold": COLD, "warm": WARM}
CONTEXT_OPERATION = compare.CONTEXT_KEYS.index("operation")


def row(method: str, context: str, repeat: int, inner: int, seconds: float, **extra) -> dict:
    fields = dict.fromkeys(ROW_FIELDS, float("nan"))
    fields.update(CONTEXTS[context])
    fields.update(
        method=method,
        variant="default",
        image_size=SIZE,
        cutoff=CUTOFF,
        repeat=repeat,
        inner_repeat=inner,
        readers=1,
        images_read=CUTOFF,
        seconds=seconds,
        images_per_s=CUTOFF / seconds,
        fsync="syncfs",
        host="node1",
        cpu_count=2,
        load_1min=0.1,
        cpu_pressure_pct=0.0,
        store_fs_type="ext4",
    )
    fields.update(extra)
    return fields


def run_rows(run: dict, **extra) -> list[dict]:
    rows = []
    for (method, context), stores in run.items():
        for repeat, timings in enumerate(stores, start=1):
            timings = timings if isinstance(timings, list) else [timings]
            for inner, seconds in enumerate(timings, start=1):
                rows.append(row(method, context, repeat, inner, seconds, **extra))
    return rows


@pytest.fixture
def runs(tmp_path) -> tuple[Path, Path]:
    """A as a results directory, B as a project directory (results/timings.csv)."""
    run_a, run_b = tmp_path / "ssd", tmp_path / "scratch"
    write_rows(run_rows(RUN_A), run_a / "timings.csv")
    rows_b = run_rows(RUN_B, host="node2", store_fs_type="lustre")
    for item in rows_b:  # B's npy store ran on a busy machine: load 3 on 2 cores
        if item["method"] == "npy" and item["operation"] == "store":
            item["load_1min"] = 3.0
    write_rows(rows_b, run_b / "results" / "timings.csv")
    return run_a, run_b


def key(method: str, context: str) -> tuple:
    values = {"method": method, "variant": "default", "image_size": SIZE, "cutoff": CUTOFF}
    values |= CONTEXTS[context] | {"readers": 1}
    return compare.point_key(values[name] for name in compare.KEYS)


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
    point = compare.make_point(medians)
    assert point.median == median
    assert (point.low, point.high) == (low, high)
    assert point.level == pytest.approx(level)
    assert point.has_interval


def test_one_store_has_no_interval_and_no_verdict():
    one, three = compare.make_point([1.0]), compare.make_point([1.0, 1.1, 1.2])
    assert not one.has_interval and math.isnan(one.low) and math.isnan(one.level)
    assert compare.verdict(one, three) == compare.NO_VERDICT
    assert compare.verdict(three, one) == compare.NO_VERDICT
    assert all(math.isnan(value) for value in compare.ratio_interval(one, three))
    assert compare.pair_verdict(one, three) == compare.NO_INTERVAL


def test_ratio_interval_and_verdict():
    a = compare.make_point([1.0, 1.1, 1.2])
    slower, faster = compare.make_point([2.0, 2.1, 2.2]), compare.make_point([0.3, 0.35, 0.4])
    low, high, level = compare.ratio_interval(a, slower)
    assert (low, high) == pytest.approx((2.0 / 1.2, 2.2 / 1.0))
    assert level == pytest.approx(0.75 * 0.75)
    assert compare.verdict(a, slower) == compare.SLOWER
    assert compare.verdict(a, faster) == compare.FASTER
    touching = compare.make_point([1.2, 1.3, 1.4])  # shares 1.2 with A's interval
    assert compare.verdict(a, touching) == compare.NO_CLEAR
    low, high, _ = compare.ratio_interval(a, touching)
    assert low <= 1.0 <= high  # the ratio interval holds 1 exactly when intervals overlap


def test_ratio_interval_is_the_range_of_pairwise_ratios_up_to_five_stores():
    a, b = [1.0, 1.3, 0.9, 1.1], [2.0, 1.7, 2.4]
    low, high, _ = compare.ratio_interval(compare.make_point(a), compare.make_point(b))
    ratios = [y / x for x in a for y in b]
    assert (low, high) == pytest.approx((min(ratios), max(ratios)))


@pytest.mark.parametrize(
    ("in_a", "in_b", "outcome", "clear"),
    [
        (compare.FIRST, compare.FIRST, compare.AGREE, True),
        (compare.TIE, compare.TIE, compare.AGREE, False),
        (compare.FIRST, compare.SECOND, compare.CONTRADICT, True),
        (compare.TIE, compare.SECOND, compare.ONE_RUN_CLEAR, True),
        (compare.FIRST, compare.NO_INTERVAL, compare.NOT_COMPARED, False),
    ],
)
def test_pair_outcomes(in_a, in_b, outcome, clear):
    point = compare.make_point([1.0, 2.0])
    check = compare.PairCheck((), "x", "y", in_a, in_b, (point, point), (point, point))
    assert check.outcome == outcome
    assert check.clear is clear


def test_keys_match_whatever_the_dtype():
    assert compare.point_key([1.0, float("nan"), "n/a"]) == (1, "", "n/a")
    assert compare.point_key(pd.Series([32, 2.5]).tolist()) == (32, 2.5)


# --- two hand-made runs ---------------------------------------------------------------------


def test_compare_runs_ratios_verdicts_and_missing_points(runs):
    result = compare.compare_runs(compare.load_run(runs[0]), compare.load_run(runs[1]))
    found = {c.key: c for c in result.common}
    png = found[key("png", "store")]
    assert png.a.store_medians == (1.0, 1.1, 1.2)
    assert png.ratio == pytest.approx(2.1 / 1.1)
    assert (png.ratio_low, png.ratio_high) == pytest.approx((2.0 / 1.2, 2.2 / 1.0))
    assert png.a.images_per_s == pytest.approx(CUTOFF / 1.1)
    assert png.verdict == compare.SLOWER
    assert found[key("npy", "store")].verdict == compare.FASTER
    assert found[key("lmdb", "store")].a.store_medians == (0.8, 0.9, 1.0)
    assert found[key("lmdb", "store")].verdict == compare.NO_CLEAR
    assert found[key("hdf5", "store")].verdict == compare.NO_VERDICT
    assert result.only_a == [key("png", "warm")]
    assert result.only_b == [key("zarr", "store")]
    assert found[key("npy", "store")].b.busy and not found[key("npy", "store")].a.busy
    assert not any(c.a.busy for c in result.common)


def test_a_contradiction_is_found_and_counted(runs):
    result = compare.compare_runs(compare.load_run(runs[0]), compare.load_run(runs[1]))
    outcomes = {(p.context[CONTEXT_OPERATION], p.first, p.second): p.outcome for p in result.pairs}
    assert outcomes == {
        ("store", "hdf5", "lmdb"): compare.NOT_COMPARED,
        ("store", "hdf5", "npy"): compare.NOT_COMPARED,
        ("store", "hdf5", "png"): compare.NOT_COMPARED,
        ("store", "lmdb", "npy"): compare.AGREE,  # npy faster in both
        ("store", "lmdb", "png"): compare.ONE_RUN_CLEAR,  # A: intervals touch at 1.0
        ("store", "npy", "png"): compare.AGREE,
        ("read", "npy", "png"): compare.CONTRADICT,
    }
    [contradiction] = result.contradictions
    assert contradiction.winner(contradiction.in_a) == "png"
    assert contradiction.winner(contradiction.in_b) == "npy"
    assert len(result.clear_pairs) == 4


def test_report_text(runs):
    text = compare.compare(*runs)
    lines = text.splitlines()
    assert lines[-1] == "contradictions: 1 of 4 verdicts"
    assert lines[0].startswith(f"A: {runs[0] / 'timings.csv'}: ")
    assert "host node2; store file system lustre" in lines[1]
    png = next(line for line in lines if line.startswith("png 32px 100 images store"))
    assert "1.1 [1, 1.2] 75%" in png and "2.1 [2, 2.2] 75%" in png
    assert f"{2.1 / 1.1:.3f} [{2.0 / 1.2:.3f}, {2.2:.3f}]" in png
    assert png.split()[-1] == "slower"
    hdf5 = next(line for line in lines if line.startswith("hdf5 "))
    assert "1 (1 store)" in hdf5 and hdf5.endswith(compare.NO_VERDICT)
    npy = next(line for line in lines if line.startswith("npy 32px 100 images store"))
    assert npy.split()[-2:] == ["faster", "B"]  # busy in B
    only_a = lines.index("Only in A (1 point):")
    assert lines[only_a + 1] == "  png 32px 100 images read whole warm 1 reader ra on"
    assert "  zarr 32px 100 images store" in lines
    contradiction = (
        "  contradiction at 32px 100 images read whole cold/fadvise 1 reader ra on: npy vs png"
    )
    assert contradiction in lines
    assert "verdicts for B: faster 2, slower 2, no clear difference 1, one store: no verdict 1" in (
        text
    )
    assert "measured on a busy machine: 0 points in A, 1 in B" in text


def test_csv_lists_every_point_of_either_run(runs, tmp_path):
    out = tmp_path / "out" / "points.csv"
    compare.compare(*runs, csv=out)
    table = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert len(table) == 8  # 6 common, 1 in A only, 1 in B only
    by_point = table.set_index("point")
    png = by_point.loc["png 32px 100 images store"]
    assert png["ratio"] == pytest.approx(2.1 / 1.1)
    assert png["ratio_level_min"] == pytest.approx(0.5625)
    assert (png["stores_a"], png["verdict"]) == (3, "slower")
    assert by_point.loc["zarr 32px 100 images store", "verdict"] == compare.ONLY_B
    assert math.isnan(by_point.loc["zarr 32px 100 images store", "median_s_a"])
    assert (
        by_point.loc["png 32px 100 images read whole warm 1 reader ra on", "verdict"]
        == compare.ONLY_A
    )
    assert set(compare.KEYS) <= set(table.columns)


def test_differing_settings_are_reported(tmp_path):
    write_rows(run_rows(RUN_A), tmp_path / "a" / "timings.csv")
    write_rows(run_rows(RUN_A, fsync="per_file"), tmp_path / "b" / "timings.csv")
    text = compare.compare(tmp_path / "a", tmp_path / "b")
    assert "settings differ between the runs at 7 points (verdict *):" in text
    assert "fsync: A syncfs, B per_file (7 points)" in text
    assert text.splitlines()[-1] == "contradictions: 0 of 3 verdicts"


def test_older_runs_without_load_columns(tmp_path):
    older = [
        {k: v for k, v in item.items() if k not in compare.BUSY_COLUMNS[:3] + ("images_per_s",)}
        for item in run_rows(RUN_A)
    ]
    path = tmp_path / "old" / "timings.csv"
    path.parent.mkdir()
    pd.DataFrame.from_records(older).to_csv(path, index=False)
    result = compare.compare_runs(compare.load_run(path), compare.load_run(path))
    assert not any(c.a.busy for c in result.common)
    png = next(c for c in result.common if c.key == key("png", "store"))
    assert png.a.images_per_s == pytest.approx(CUTOFF / 1.1)  # images_read / seconds
    assert {c.verdict for c in result.common} == {compare.NO_CLEAR, compare.NO_VERDICT}


def test_foreign_cpu_marks_a_point_busy(tmp_path):
    rows = run_rows(RUN_A)
    for item in rows:
        item["foreign_cpu_seconds"] = 0.5 * item["seconds"] if item["method"] == "png" else 0.0
    path = tmp_path / "a.csv"
    pd.DataFrame.from_records(rows).to_csv(path, index=False)
    points = compare.run_points(compare.load_run(path))
    assert points[key("png", "store")].busy and not points[key("npy", "store")].busy


# --- the command ----------------------------------------------------------------------------


def test_main_compare(runs, tmp_path, capsys):
    out = tmp_path / "p.csv"
    assert cli.main(["compare", str(runs[0]), str(runs[1]), "--csv", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == "contradictions: 1 of 4 verdicts"
    assert out.is_file() and str(out) in captured.err


def test_bad_input_is_one_sentence_and_status_2(runs, tmp_path, capsys):
    assert cli.main(["compare", str(tmp_path / "nothing"), str(runs[1])]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert "neither timings.csv nor results/timings.csv" in error
    other = tmp_path / "other"
    write_rows([row("png", "store", 1, 1, 1.0, image_size=64)], other / "timings.csv")
    assert cli.main(["compare", str(runs[0]), str(other)]) == 2
    assert "no point is in both runs (A has 7, B has 1)" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "timings.csv").write_text("method,seconds\npng,1.0\n")
    assert cli.main(["compare", str(broken), str(runs[1])]) == 2
    assert "lacks the columns variant, image_size" in capsys.readouterr().err


def test_console_script_module(runs):
    result = subprocess.run(
        [sys.executable, "-m", "imgbench.cli", "compare", *map(str, runs)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "workflow")},
        check=True,
    )
    assert result.stdout.splitlines()[-1] == "contradictions: 1 of 4 verdicts"


def test_photos_subcommand(tmp_path, capsys):
    folder = tmp_path / "photos"
    assert cli.main(["photos", str(folder), "--count", "3", "--sources", "coins"]) == 0
    assert "wrote 3 photographs in 1 class folders" in capsys.readouterr().out
    assert len(list((folder / "coins").iterdir())) == 3


def test_pyproject_declares_the_command():
    text = (REPO / "pyproject.toml").read_text()
    assert 'imgbench = "imgbench.cli:main"' in text
