"""End to end: Snakemake on a tiny generated archive in a temporary copy of the workflow,
then the rerun behaviour asserted from dry-run job lists."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from workflow_runs import cifar_workflow, overlay, planned_jobs, snakemake

from imgbench.experiment import plan
from imgbench.report import figures
from imgbench.results.busy import overlapping_timings

METHODS = ["png", "lmdb", "hdf5", "npy"]
CUTOFFS = [1, 12]
REPEATS = 2
INNER = 2
CACHES = ["cold", "warm"]
RANDOM_READS = 10
# (cache, pattern, readers, readahead) of every read of a store, as plan.read_kinds gives;
# random_single only on stores of at least RANDOM_READS images.
READ_KINDS = [
    ("cold", "whole", 1, "on"),
    ("cold", "random_single", 1, "on"),
    ("cold", "random_single", 1, "off"),
    ("warm", "whole", 1, "on"),
    ("warm", "random_single", 1, "on"),
]


def read_kinds(cutoff: int) -> list[tuple]:
    return [k for k in READ_KINDS if k[1] != "random_single" or cutoff >= RANDOM_READS]


pytestmark = pytest.mark.e2e


def figure_stems(workdir: Path) -> list[str]:
    """The figures the copy's config asks for, from the registry."""
    return figures.stems(yaml.safe_load((workdir / "config.yaml").read_text()))


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    images, labels = cifar_workflow(
        workdir,
        n_images=40,
        cutoffs=CUTOFFS,
        methods=METHODS,
        store_dir="stores",
        repeats=REPEATS,
        inner_repeats=INNER,
        # Large enough that every job makes exactly INNER timed repetitions.
        inner_budget_seconds=600,
        read_cache=CACHES,
        read_patterns=["whole", "random_single"],
        readahead=["on", "off"],
        random_reads=RANDOM_READS,
    )
    result = snakemake(workdir)
    return workdir, result, images, labels


def test_all_outputs(workflow_run):
    workdir, _, _, _ = workflow_run
    results = workdir / "results"
    timings = pd.read_csv(results / "timings.csv", keep_default_na=False, na_values=[""])
    expected = Counter()
    for method in METHODS:
        for cutoff in CUTOFFS:
            for repeat in range(1, REPEATS + 1):
                for inner in range(1, INNER + 1):
                    expected[(method, "store", cutoff, repeat, inner, "n/a", "n/a", 1, "n/a")] += 1
                    for cache, pattern, readers, readahead in read_kinds(cutoff):
                        key = (method, "read", cutoff, repeat, inner, cache, pattern, readers)
                        expected[(*key, readahead)] += 1
    got = Counter(
        zip(
            timings["method"],
            timings["operation"],
            timings["cutoff"],
            timings["repeat"],
            timings["inner_repeat"],
            timings["cache"],
            timings["read_pattern"],
            timings["readers"],
            timings["readahead"],
            strict=True,
        )
    )
    assert got == expected
    assert (timings["seconds"] > 0).all()
    assert (timings["fsync"] == "syncfs").all()
    assert (timings["bytes_on_disk"] > 0).all()
    stores = timings[timings["operation"] == "store"]
    np.testing.assert_allclose(
        stores["write_seconds"] + stores["flush_seconds"], stores["seconds"], rtol=1e-9
    )
    assert (stores["flush_seconds"] > 0).all() and (stores["write_seconds"] > 0).all()
    reads = timings[timings["operation"] == "read"]
    assert reads["write_seconds"].isna().all()
    assert set(reads["eviction"]) == {"fadvise", "none"}
    assert ((reads["eviction"] == "none") == (reads["cache"] == "warm")).all()
    # What a skeptic asks of every timed row: device bytes, CPU time, load and pressure.
    for column in ("device_read_bytes", "cpu_seconds", "load_1min", "prefault_bytes"):
        assert timings[column].notna().all(), column
    if Path("/proc/pressure/cpu").exists():
        assert timings[["cpu_pressure_pct", "io_pressure_pct"]].notna().all().all()
    assert (reads["bytes_requested"] == reads["images_read"] * 32 * 32 * 3).all()
    cold = timings[timings["cache"] == "cold"]
    assert (cold["cached_fraction"] < 0.05).all(), cold[["method", "cached_fraction"]]
    # The default profile's timing_slot=1 keeps timed operations from overlapping.
    assert overlapping_timings(timings) == []

    environment = yaml.safe_load((results / "environment.json").read_text())
    assert set(timings["env_id"]) <= set(environment)
    record = next(iter(environment.values()))
    for key in ("host", "cpu_model", "ram_bytes", "kernel", "store_fs_type", "numpy", "lmdb_c"):
        assert record[key], key

    disk = pd.read_csv(results / "disk_usage.csv")
    assert set(zip(disk["method"], disk["cutoff"], strict=True)) == {
        (m, c) for m in METHODS for c in CUTOFFS
    }
    assert "| lmdb |" in (results / "disk_usage.md").read_text()
    summary = (results / "summary.md").read_text()
    assert "## 12 image(s)" in summary
    # A winner is named only with non-overlapping intervals and quiet points; any of the
    # three answers is honest here (the machine may run other things).
    assert any(
        verdict in summary
        for verdict in ("fastest store: **", "store: no clear difference", "store: no verdict (")
    )
    assert "Bytes from the device" in summary and "Interval check" in summary
    stats = pd.read_csv(results / "timings_stats.csv", keep_default_na=False, na_values=[""])
    assert (stats["n"] == REPEATS * INNER).all()
    assert (stats["ci_low"] <= stats["median_s"]).all()
    assert (stats["median_s"] <= stats["ci_high"]).all()

    for stem in ("store_time_linear_32px", "read_time_loglog_32px", "disk_usage"):
        with Image.open(results / "plots" / f"{stem}.png") as image:
            assert image.width > 300 and image.height > 200
        assert (results / "plots" / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    # Stores are temporary: gone once read.
    assert not any(path.is_file() for path in (workdir / "stores").rglob("*"))


def test_stores_run_interleaved_in_the_seeded_order(workflow_run):
    """Every first store before any second one; within a block, plan.StorePriority's
    seeded order, so one method's stores do not run back to back by design."""
    workdir, _, _, _ = workflow_run
    timings = pd.read_csv(workdir / "results" / "timings.csv")
    first = timings[(timings["operation"] == "store") & (timings["inner_repeat"] == 1)]
    ran = first.sort_values("t_start_unix")
    assert list(ran["repeat"]) == sorted(ran["repeat"])
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    priority = plan.StorePriority(config)
    block = ran[ran["repeat"] == 1]
    expected = sorted(
        zip(block["method"], block["cutoff"], strict=True),
        key=lambda point: (
            -priority(
                SimpleNamespace(
                    method=point[0], variant="default", image_size=32, cutoff=point[1], repeat=1
                )
            )
        ),
    )
    assert list(zip(block["method"], block["cutoff"], strict=True)) == expected


def test_second_run_has_nothing_to_do(workflow_run):
    workdir, _, _, _ = workflow_run
    assert planned_jobs(workdir) == []
    assert "Nothing to be done" in snakemake(workdir, "--dry-run").stdout


def test_new_cutoff_runs_only_that_cutoff(workflow_run):
    """A new cutoff runs its stores and reads; a small one joins the jobs of the small
    stores with the same reads (here 1: milliseconds of work), nothing else reruns."""
    workdir, _, _, _ = workflow_run
    jobs = planned_jobs(workdir, *overlay(workdir, "cutoff", {"cutoffs": [1, 5, 12]}))
    counts = Counter(rule for rule, _ in jobs)
    assert counts == Counter(
        store=len(METHODS) * REPEATS,
        read=len(METHODS) * REPEATS,  # one per store, all its reads
        aggregate=1,
        html_page=2,
        plot=len(figure_stems(workdir)),
        all=1,
    )
    assert {w["cutoff"] for rule, w in jobs if rule in ("store", "read")} == {"1+5"}
    alone = planned_jobs(
        workdir, *overlay(workdir, "alone", {"cutoffs": [1, 5, 12], "small_store_bytes": 0})
    )
    assert {w["cutoff"] for rule, w in alone if rule in ("store", "read")} == {"5"}


def test_a_read_setting_reruns_reads_not_other_points(workflow_run):
    """Changing how random reads are made reruns the read jobs of the stores that have
    random reads, with their stores (removed after their reads, so written again), and
    nothing of the other stores."""
    workdir, _, _, _ = workflow_run
    jobs = planned_jobs(workdir, *overlay(workdir, "reads", {"random_reads": RANDOM_READS + 1}))
    timing = [(rule, w) for rule, w in jobs if rule in ("store", "read")]
    with_random = {str(c) for c in CUTOFFS if c >= RANDOM_READS + 1}
    assert with_random and with_random != {str(c) for c in CUTOFFS}
    assert {w["cutoff"] for _, w in timing} == with_random
    assert Counter(rule for rule, _ in timing) == Counter(
        store=len(METHODS) * REPEATS * len(with_random),
        read=len(METHODS) * REPEATS * len(with_random),
    )


def test_plot_option_reruns_only_plotting(workflow_run):
    workdir, _, _, _ = workflow_run
    jobs = planned_jobs(workdir, *overlay(workdir, "dpi", {"plot": {"dpi": 99}}))
    assert Counter(rule for rule, _ in jobs) == Counter(plot=len(figure_stems(workdir)), all=1)
    assert {w["figure"] for rule, w in jobs if rule == "plot"} == set(figure_stems(workdir))


def test_report_holds_every_figure_and_table_with_captions(workflow_run):
    workdir, _, _, _ = workflow_run
    snakemake(workdir, "--report", "report.html")
    html = (workdir / "report.html").read_text()
    figures_made = sorted((workdir / "results" / "plots").glob("*.png"))
    assert [path.stem for path in figures_made] == sorted(figure_stems(workdir))
    for path in figures_made:
        assert path.name in html, path.name
    for table in (
        "summary.html",
        "disk_usage.html",
        "timings.csv",
        "timings_stats.csv",
        "job_memory.csv",
        "environment.json",
    ):
        assert table in html, table
    for category in ("Summary", "Time", "Throughput", "Latency", "Disk usage", "Tables"):
        assert category in html, category
    # Captions, and the front page rendered from this run's config.
    assert "interval of the median" in html
    assert "page cache" in html
    assert "Methods: png, lmdb, hdf5, npy" in html


def test_editing_one_method_reruns_only_its_jobs(workflow_run):
    workdir, _, _, _ = workflow_run
    module = workdir / "workflow" / "imgbench" / "methods" / "lmdb.py"
    module.write_text(module.read_text() + "\n# edited\n")
    try:
        jobs = planned_jobs(workdir)
    finally:
        module.write_text(module.read_text().replace("\n# edited\n", ""))
    timing_jobs = [(rule, w) for rule, w in jobs if rule in ("store", "read")]
    assert {w["method"] for _, w in timing_jobs} == {"lmdb"}
    assert Counter(rule for rule, _ in jobs) == Counter(
        store=len(CUTOFFS) * REPEATS,
        read=len(CUTOFFS) * REPEATS,
        aggregate=1,
        html_page=2,
        plot=len(figure_stems(workdir)),
        all=1,
    )


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"cutoffs": [1, 500]}, "cutoffs[1]"),
        ({"methods": ["png", "tiff"]}, "methods[1]"),
        ({"dataset": {"archive": "/nonexistent/cifar.tar.gz"}}, "dataset.archive"),
        ({"dataset": {"md5": "not-hex"}}, "dataset.md5"),
        ({"repeats": 0}, "repeats"),
    ],
)
def test_bad_config_stops_before_any_job(workflow_run, override, key):
    workdir, _, _, _ = workflow_run
    result = snakemake(workdir, "--dry-run", *overlay(workdir, "bad", override), check=False)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert f"config key {key}" in message
    assert "rule " not in message


@pytest.fixture(scope="module")
def axes_run(tmp_path_factory):
    """Two patterns, two reader counts, two image sizes and two PNG variants."""
    workdir = tmp_path_factory.mktemp("axes")
    cifar_workflow(
        workdir,
        n_images=30,
        cutoffs=[1, 20],
        methods=["png", "lmdb"],
        variants={"png": {"default": {}, "level1": {"compress_level": 1}}},
        image_sizes=[32, 64],
        read_patterns=["whole", "sequential", "shuffled"],
        readers=[1, 2],
        readahead=["on"],
        batch_size=8,
        # Node-local scratch on a cluster is named by a variable the job expands.
        store_dir="$IMGBENCH_TEST_SCRATCH/stores",
        repeats=1,
        inner_repeats=1,
        read_cache=["cold", "warm"],
    )
    scratch = tmp_path_factory.mktemp("scratch")
    snakemake(workdir, env={**os.environ, "IMGBENCH_TEST_SCRATCH": str(scratch)})
    return workdir, scratch


def test_axes_rows_and_outputs(axes_run):
    workdir, scratch = axes_run
    results = workdir / "results"
    timings = pd.read_csv(results / "timings.csv", keep_default_na=False, na_values=[""])
    series = {("png", "default"), ("png", "level1"), ("lmdb", "default")}
    reads = timings[timings["operation"] == "read"]
    got = set(
        zip(
            reads["method"],
            reads["variant"],
            reads["image_size"],
            reads["cutoff"],
            reads["read_pattern"],
            reads["readers"],
            reads["cache"],
            strict=True,
        )
    )
    expected = {
        (m, v, size, cutoff, pattern, readers, cache)
        for m, v in series
        for size in (32, 64)
        for cutoff in (1, 20)
        for pattern, readers in [("whole", 1)]
        + [(p, r) for p in ("sequential", "shuffled") for r in (1, 2)]
        for cache in ("cold", "warm")
    }
    assert got == expected
    assert len(reads) == len(expected)
    assert (reads["images_read"] == reads["cutoff"]).all()
    stores = timings[timings["operation"] == "store"]
    assert len(stores) == len(series) * 2 * 2

    resized = np.load(results / "data" / "pool_64px_images.npy", mmap_mode="r")
    assert resized.shape[1:] == (64, 64, 3) and resized.dtype == np.uint8

    disk = pd.read_csv(results / "disk_usage.csv")
    png = disk[(disk["method"] == "png") & (disk["cutoff"] == 20)].set_index(
        ["variant", "image_size"]
    )["bytes_apparent"]
    # Both variants stored the same images; their sizes are measured, not assumed equal.
    assert png[("default", 64)] > 0 and png[("level1", 64)] > 0
    summary = (results / "summary.md").read_text()
    assert "Access patterns and parallel readers" in summary
    assert "png:level1" in summary and "64x64" in summary
    for stem in ("throughput_32px", "throughput_64px", "disk_per_image_by_size"):
        with Image.open(results / "plots" / f"{stem}.png") as image:
            assert image.width > 300
    assert overlapping_timings(timings) == []

    # Stores went to the expanded scratch path (not a literal "$IMGBENCH_TEST_SCRATCH"
    # directory) and were removed after their reads.
    assert not (workdir / "$IMGBENCH_TEST_SCRATCH").exists()
    # The small stores of 1 and 20 images share their jobs (small_store_bytes): one log
    # names both stores.
    point = Path("png") / "level1" / "64px"
    log = (workdir / "logs" / "store" / point / "1+20" / "repeat1.log").read_text()
    for cutoff in ("1", "20"):
        assert str(scratch / "stores" / point / cutoff / "repeat1") in log
    assert (scratch / "stores").is_dir()
    assert not any(path.is_file() for path in scratch.rglob("*"))
