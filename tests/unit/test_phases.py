"""phases: a job's wall time split into named phases; results.phases: summed over a run."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from imgbench import cli
from imgbench.results import phases as run_phases
from imgbench.system import phases


@pytest.fixture(autouse=True)
def fresh_ledger():
    phases.begin()
    yield
    phases.begin()


def test_nested_phases_count_once_and_add_up_to_the_wall_time():
    phases.now_in("setup")
    time.sleep(0.02)
    with phases.phase("outer"):
        time.sleep(0.02)
        with phases.phase(phases.TIMED):
            time.sleep(0.05)
        time.sleep(0.02)
    phases.push("verify")
    time.sleep(0.03)
    phases.pop()
    ledger = phases.summary()
    seconds = ledger["phases_s"]
    # the inner phase's time is not the outer's
    assert 0.05 <= seconds[phases.TIMED] < 0.09
    assert 0.04 <= seconds["outer"] < 0.08
    assert 0.03 <= seconds["verify"] < 0.07
    assert 0.02 <= seconds["setup"] < 0.06
    assert ledger["wall_s"] == pytest.approx(sum(seconds.values()), abs=1e-3)
    # the process's age before begin() is its own phase, and the start precedes the end
    assert seconds[phases.PROCESS_START] > 0
    assert ledger["started_unix"] < ledger["finished_unix"]
    assert list(seconds.values()) == sorted(seconds.values(), reverse=True)
    assert phases.line(ledger).startswith(f"job phases ({ledger['wall_s']:.3f} s): ")
    assert phases.line().startswith("job phases (")  # a ledger taken now


def test_a_pop_without_push_never_ends_the_base_phase():
    phases.now_in("base")
    phases.pop()
    phases.pop()
    with phases.phase("inner"):
        pass
    time.sleep(0.01)
    assert phases.summary()["phases_s"]["base"] >= 0.01


def write_job(root, name, seconds, start, end):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    ledger = {"phases_s": seconds, "started_unix": start, "finished_unix": end}
    path.write_text(json.dumps({"env_id": "x", "job": ledger}))
    return path


def test_a_run_s_breakdown_sums_jobs_and_counts_the_time_between_them(tmp_path):
    rows = tmp_path / "results" / "rows"
    paths = [
        write_job(rows, "store/a.env.json", {"timed": 2.0, "imports": 0.5}, 100.0, 102.5),
        # overlaps the first job by 0.5 s (an untimed job beside it): covered once
        write_job(rows, "read/a.env.json", {"timed": 1.0, "verify": 1.0}, 102.0, 104.0),
        write_job(rows, "read/b.env.json", {"timed": 1.0}, 106.0, 107.0),
    ]
    (rows / "read" / "old.env.json").write_text(json.dumps({"env_id": "y"}))  # no ledger
    table = run_phases.job_phases(sorted(rows.rglob("*.env.json")), rows)
    assert set(table["job"]) == {str(p.relative_to(rows)) for p in paths}
    breakdown = run_phases.run_breakdown(table).set_index("phase")
    assert breakdown.loc["timed", "seconds"] == 4.0
    assert breakdown.loc["timed", "jobs"] == 3
    # span 100-107 = 7 s; covered 100-104 and 106-107 = 5 s
    assert breakdown.loc[run_phases.BETWEEN_JOBS, "seconds"] == pytest.approx(2.0)
    assert breakdown["share"].sum() == pytest.approx((4 + 0.5 + 1 + 2) / 7)
    text = run_phases.describe(table)
    assert text.startswith(
        "3 jobs over 7.0 s (first job's start to last job's end); timed work 4.0 s: "
        "1.75 s of wall per timed second"
    )
    assert "| between jobs | 2.0 | 28.6% | 0 |" in text
    # the command reads a project or a results directory, and refuses anything else
    for where in (tmp_path, tmp_path / "results"):
        assert cli.main(["phases", str(where)]) == 0
    csv = tmp_path / "phases.csv"
    assert cli.main(["phases", str(tmp_path), "--csv", str(csv)]) == 0
    assert len(pd.read_csv(csv)) == 5
    assert cli.main(["phases", str(tmp_path / "nowhere")]) == 2


def test_no_ledger_no_breakdown():
    empty = pd.DataFrame(columns=run_phases.PHASE_COLUMNS)
    assert run_phases.describe(empty) == "No job recorded its phases.\n"
    assert run_phases.covered_seconds([]) == 0.0
