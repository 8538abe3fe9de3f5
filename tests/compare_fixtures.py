"""Two hand-made runs of the same points, shared by the tests of ``matching`` and
``compare``."""

from __future__ import annotations

from pathlib import Path

from imgbench.experiment.rows import ROW_FIELDS, write_rows
from imgbench.results import matching

REPO = Path(__file__).resolve().parents[1]
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
CONTEXT_OPERATION = matching.CONTEXT_KEYS.index("operation")


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


def write_runs(tmp_path) -> tuple[Path, Path]:
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
    values |= CONTEXTS[context] | {"readers": 1, "nodes": 1, "clients": 0}
    return matching.point_key(values[name] for name in matching.KEYS)
