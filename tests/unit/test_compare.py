"""compare and the ``imgbench`` command: two hand-made results directories compared point
by point (the report, the CSV, settings that differ), and the command's errors."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from compare_fixtures import REPO, RUN_A, row, run_rows, write_runs

from imgbench import cli
from imgbench.experiment.rows import write_rows
from imgbench.results import compare, matching


@pytest.fixture
def runs(tmp_path) -> tuple[Path, Path]:
    return write_runs(tmp_path)


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
    assert "1 (1 store)" in hdf5 and hdf5.endswith(matching.NO_VERDICT)
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
    assert by_point.loc["zarr 32px 100 images store", "verdict"] == matching.ONLY_B
    assert math.isnan(by_point.loc["zarr 32px 100 images store", "median_s_a"])
    assert (
        by_point.loc["png 32px 100 images read whole warm 1 reader ra on", "verdict"]
        == matching.ONLY_A
    )
    assert set(matching.KEYS) <= set(table.columns)


def test_differing_settings_are_reported(tmp_path):
    write_rows(run_rows(RUN_A), tmp_path / "a" / "timings.csv")
    write_rows(run_rows(RUN_A, fsync="per_file"), tmp_path / "b" / "timings.csv")
    text = compare.compare(tmp_path / "a", tmp_path / "b")
    assert "settings differ between the runs at 7 points (verdict *):" in text
    assert "fsync: A syncfs, B per_file (7 points)" in text
    assert text.splitlines()[-1] == "contradictions: 0 of 3 verdicts"


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
