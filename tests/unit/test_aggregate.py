"""The aggregate step: the Snakemake script writes every output of the rule."""

from __future__ import annotations

import json
import logging
import runpy
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from results_fixtures import ENV_ID, ENVIRONMENT, make_rows, write_rows

from imgbench.harness import measure
from imgbench.jobs import scriptlog

REPO = Path(__file__).resolve().parents[2]


def test_aggregate_script_writes_every_output(tmp_path, monkeypatch):
    """The Snakemake script, run with a stand-in ``snakemake`` object."""
    rows = write_rows(make_rows(), tmp_path / "rows")
    env_path = tmp_path / "envs" / "env.json"
    env_path.parent.mkdir()
    env_path.write_text(json.dumps(ENVIRONMENT))
    out = tmp_path / "results"
    outputs = {
        "timings": out / "timings.csv",
        "stats": out / "timings_stats.csv",
        "disk_csv": out / "disk_usage.csv",
        "disk_md": out / "disk_usage.md",
        "memory": out / "job_memory.csv",
        "summary": out / "summary.md",
        "environment": out / "environment.json",
    }
    benchmark = (
        tmp_path / "benchmarks" / "store" / "npy" / "default" / "32px" / "100" / "repeat1.tsv"
    )
    benchmark.parent.mkdir(parents=True)
    benchmark.write_text("s\th:m:s\tmax_rss\tmax_vms\n1.5\t0:00:01\t123.4\t500.0\n")
    smk = SimpleNamespace(
        input=SimpleNamespace(
            rows=[str(p) for p in rows], envs=[str(env_path)], benchmarks=[str(benchmark)]
        ),
        output=SimpleNamespace(**{k: str(v) for k, v in outputs.items()}),
        log=[str(tmp_path / "aggregate.log")],
        params=SimpleNamespace(interval_threshold=0.1, busy={"load_per_core": 0.1}),
    )
    monkeypatch.setattr(scriptlog, "setup", lambda _path: logging.getLogger("test_aggregate"))
    runpy.run_path(
        str(REPO / "workflow" / "scripts" / "aggregate.py"), init_globals={"snakemake": smk}
    )
    timings = pd.read_csv(outputs["timings"], keep_default_na=False, na_values=[""])
    assert len(timings) == 42 and list(timings.columns) == measure.ROW_FIELDS
    stats = pd.read_csv(outputs["stats"], keep_default_na=False, na_values=[""])
    assert len(stats) == 12 and sorted(set(stats["n"])) == [3, 9]
    assert set(stats["cache"]) == {"n/a", "cold", "warm"}  # "n/a" is a value, not missing
    assert {"ci_low", "ci_high", "ci_level", "ci_halfwidth_rel", "busy"} <= set(stats.columns)
    # load 0.5 > 0.1 x 4 cores: every point busy under this stricter threshold
    assert stats["busy"].all()
    disk = pd.read_csv(outputs["disk_csv"])
    assert sorted(disk["bytes_on_disk"]) == [36864, 40960, 311296, 409600]
    assert "| npy | 36.0 KiB (36,864 B)" in outputs["disk_md"].read_text()
    memory = pd.read_csv(outputs["memory"])
    sampled = memory.set_index(["method", "operation", "cutoff"])["snakemake_max_rss_mb"]
    assert sampled[("npy", "store", 100)] == 123.4
    assert sampled.drop(("npy", "store", 100)).isna().all()
    text = outputs["summary"].read_text()
    assert "0 of 12 points have a 95 % interval within ±10 % of the median." in text
    assert "12 of 12 points were measured on a busy machine" in text
    assert "above 0.1 x the host's cores or CPU pressure (PSI some avg10) above 10 %" in text
    assert json.loads(outputs["environment"].read_text()) == {ENV_ID: ENVIRONMENT}
    assert not list(out.glob("*.part"))
