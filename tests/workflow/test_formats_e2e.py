"""End to end over every method: Snakemake on a folder of real photographs, each format
with its encodings (PNG, raw, JPEG, WebP), every read kind, 1 and 2 readers; the rows,
the fidelity of the lossy store, the summary's format table and the figures' legends."""

from __future__ import annotations

import pandas as pd
import pytest
from workflow_runs import folder_workflow, snakemake

from imgbench.methods import available_methods, encoding

VARIANTS = {
    "png": {
        "default": {},
        "raw": {"encoding": "raw"},
        "jpeg95": {"encoding": "jpeg", "quality": 95},
    },
    "lmdb": {"default": {}, "png": {"encoding": "png"}, "webp": {"encoding": "webp"}},
    "wds": {"default": {}, "raw": {"encoding": "raw"}},
    "parquet": {"default": {}, "raw": {"encoding": "raw"}},
    "zarr": {"default": {}, "unsharded": {"sharding": False}},
}
CUTOFF = 12
# (cache, pattern, readers) of every read of a store
READS = {
    (cache, pattern, readers)
    for cache in ("cold", "warm")
    for pattern, readers in (
        ("whole", 1),
        ("shuffled", 1),
        ("shuffled", 2),
        ("random_single", 1),
        ("random_single", 2),
    )
}

pytestmark = pytest.mark.e2e


def series_of(method: str) -> list[str]:
    variants = VARIANTS.get(method, {"default": {}})
    return [method if v == "default" else f"{method}:{v}" for v in variants]


@pytest.fixture(scope="module")
def formats_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("formats_workflow")
    folder_workflow(
        workdir,
        "photos",
        9,
        seed=3,
        sources=["astronaut", "coffee", "rocket"],
        n_images=CUTOFF,
        cutoffs=[CUTOFF],
        methods=available_methods(),
        variants=VARIANTS,
        image_sizes=[48],
        store_dir="stores",
        repeats=1,
        inner_repeats=1,
        read_patterns=["whole", "shuffled", "random_single"],
        readers=[1, 2],
        readahead=["on"],
        batch_size=4,
        random_reads=6,
        plot={"formats": ["svg"], "dpi": 100, "spread": "ci"},
        # This test reads the format table, not the busy rule (tests/unit/test_busy.py):
        # a threshold no machine reaches keeps other CI work out of its rows.
        busy={"foreign_cpu_cores": 1000},
    )
    result = snakemake(workdir)
    return workdir, result


def test_every_method_and_encoding_is_stored_and_read_every_way(formats_run):
    workdir, _ = formats_run
    rows = pd.read_csv(workdir / "results" / "timings.csv")
    rows["series"] = [
        m if v == "default" else f"{m}:{v}"
        for m, v in zip(rows["method"], rows["variant"], strict=True)
    ]
    expected = {s for m in available_methods() for s in series_of(m)}
    assert {"wds", "parquet", "zarr"} <= set(available_methods())
    stores = rows[rows["operation"] == "store"]
    assert set(stores["series"]) == expected
    reads = rows[rows["operation"] == "read"]
    for series in expected:
        mine = reads[reads["series"] == series]
        kinds = set(zip(mine["cache"], mine["read_pattern"], mine["readers"], strict=True))
        assert kinds == READS, series
    encodings = dict(zip(stores["series"], stores["encoding"], strict=True))
    assert encodings["png"] == "png" and encodings["png:raw"] == "raw"
    assert encodings["png:jpeg95"] == "jpeg q95 4:4:4"
    assert encodings["lmdb:webp"] == "webp lossless"
    assert encodings["wds:raw"] == "raw" and encodings["parquet"] == "png"
    assert encodings["zarr"] == "raw" and encodings["npy"] == "raw"


def test_the_lossy_store_records_its_psnr_above_the_floor(formats_run):
    workdir, _ = formats_run
    rows = pd.read_csv(workdir / "results" / "timings.csv")
    lossy = rows[rows["lossy"]]
    assert set(lossy["variant"]) == {"jpeg95"} and set(lossy["method"]) == {"png"}
    stores = lossy[lossy["operation"] == "store"]
    assert (stores["psnr_db"] >= encoding.STORE_PSNR_FLOOR_DB).all()
    assert (stores["psnr_min_db"] >= encoding.IMAGE_PSNR_FLOOR_DB).all()
    assert (stores["psnr_db"] >= stores["psnr_p01_db"]).all()
    assert (stores["psnr_p01_db"] >= stores["psnr_min_db"]).all()
    assert rows.loc[~rows["lossy"], "psnr_db"].isna().all()


def test_summary_says_which_format_for_which_access_pattern(formats_run):
    workdir, _ = formats_run
    summary = (workdir / "results" / "summary.md").read_text()
    section = summary.split("## Which format for which access pattern")[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")][1:]
    reads = [line.split(" | ")[0].strip("| ") for line in lines]
    assert reads == [
        "whole, 1 reader(s), cold",
        "whole, 1 reader(s), warm",
        "shuffled, 1 reader(s), cold",
        "shuffled, 1 reader(s), warm",
        "shuffled, 2 reader(s), cold",
        "shuffled, 2 reader(s), warm",
        "random_single, 1 reader(s), cold",
        "random_single, 1 reader(s), warm",
        "random_single, 2 reader(s), cold",
        "random_single, 2 reader(s), warm",
    ]
    for line in lines:
        assert "x npy's time" in line and "x npy's bytes" in line and "/image" in line
    methods = summary.split("## Methods")[1].split("\n## ")[0]
    assert (
        "| png:jpeg95 | image files + labels.csv | jpeg q95 4:4:4 | one file read per image, "
        "jpeg decoded with Pillow | lossy: PSNR "
    ) in methods
    assert (
        "| lmdb:webp | LMDB (one key per image) | webp lossless | txn.get per image, webp "
        "decoded with Pillow | exact |"
    ) in methods


def test_figures_name_the_encodings(formats_run):
    workdir, _ = formats_run
    svg = (workdir / "results" / "plots" / "throughput_48px.svg").read_text()
    assert "image files + labels.csv [jpeg95], jpeg q95 4:4:4" in svg
    assert "image files + labels.csv [raw], raw" in svg
    assert "LMDB (one key per image) [png], png" in svg
    assert "raw .npy array (baseline)" in svg and ", raw" not in svg.split("npy array")[1][:20]
