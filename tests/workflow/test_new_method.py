"""A new storage method is one module plus its name in the config: this test writes a
module into a copy of the workflow, names it in the copy's config.yaml, edits nothing
else, and runs Snakemake end to end: the method's rows, statistics, summary, figures
(its DESCRIPTION in the legends) and the report."""

from __future__ import annotations

import pandas as pd
import pytest
from workflow_runs import cifar_workflow, snakemake

from imgbench.methods import available_methods

pytestmark = pytest.mark.e2e

NAME = "npz"
DESCRIPTION = "npz archives, one per chunk (a method only this test knows)"
# The whole method, as a user would write it from the contract in methods/__init__.py,
# taking what methods/_base.py shares.
MODULE = f'''"""npz: one ``.npz`` archive per chunk of the stream (its images and labels) and a
``meta.json`` listing the chunks; numpy only."""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from imgbench.methods import batch_bounds, blocks, indexed_chunks
from imgbench.methods._base import (
    advise_random,
    check_lengths,
    opener,
    read_from_batches,
    store_header,
)

DESCRIPTION = "{DESCRIPTION}"
OPTIONS = {{"compressed": False}}
CHOICES = {{"compressed": (False, True)}}
PACKAGES: tuple = ()


def disk_bytes(n_images: int, image_bytes: int, options: dict) -> int:
    """Pixels and labels (deflate grows incompressible data by well under 1 %), plus per
    archive (at most one per image) its zip and .npy headers and a block's rounding."""
    pixels = n_images * (image_bytes + 1)
    return blocks(pixels + pixels // 100) + max(n_images, 1) * 3 * 4096 + blocks(4096)


def _archive(store_dir: Path, index: int) -> Path:
    return Path(store_dir) / f"chunk{{index:06}}.npz"


def store(store_dir: Path, images, labels: np.ndarray, *, options: dict) -> None:
    check_lengths(images, labels)
    save = np.savez_compressed if options["compressed"] else np.savez
    chunks = []
    for start, chunk in indexed_chunks(images):
        save(
            _archive(store_dir, len(chunks)),
            images=chunk,
            labels=labels[start : start + len(chunk)],
        )
        chunks.append(start)
    meta = store_header(images, labels, chunks=chunks)
    (Path(store_dir) / "meta.json").write_text(json.dumps(meta))


class Reader:
    """Loads the archive holding each requested image (the last one kept); without
    readahead each archive's file is advised POSIX_FADV_RANDOM before it is read."""

    def __init__(self, store_dir: Path, *, readahead: bool = True):
        self.store_dir = Path(store_dir)
        self.readahead = readahead
        self.meta = json.loads((self.store_dir / "meta.json").read_text())
        self.loaded = (None, None, None)

    def _chunk(self, index: int):
        if self.loaded[0] != index:
            with open(_archive(self.store_dir, index), "rb") as handle:
                if not self.readahead:
                    advise_random(handle.fileno())
                with np.load(handle, allow_pickle=False) as archive:
                    self.loaded = (index, archive["images"], archive["labels"])
        return self.loaded[1], self.loaded[2]

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices)
        shape, starts = tuple(self.meta["shape"]), self.meta["chunks"]
        images = np.empty((len(indices), *shape), dtype=self.meta["dtype"])
        labels = np.empty(len(indices), dtype=self.meta["labels_dtype"])
        for position, index in enumerate(indices.tolist()):
            chunk = bisect.bisect_right(starts, index) - 1
            chunk_images, chunk_labels = self._chunk(chunk)
            images[position] = chunk_images[index - starts[chunk]]
            labels[position] = chunk_labels[index - starts[chunk]]
        return images, labels

    def close(self) -> None:
        self.loaded = (None, None, None)


open_reader = opener(Reader)


def read_batches(store_dir: Path, batch_images: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    reader = Reader(store_dir)
    try:
        for start, stop in batch_bounds(reader.meta["count"], batch_images):
            yield reader.get(np.arange(start, stop))
    finally:
        reader.close()


read = read_from_batches(read_batches)
'''


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The workflow copied as every end-to-end test copies it, plus the module and its name
    in config.yaml; run, then its report made."""
    assert NAME not in available_methods()  # the shipped workflow does not know it
    workdir = tmp_path_factory.mktemp("new_method")
    cifar_workflow(
        workdir,
        files={f"workflow/imgbench/methods/{NAME}.py": MODULE},
        n_images=40,
        cutoffs=[12],
        methods=["npy", NAME],
        variants={NAME: {"default": {}, "deflate": {"compressed": True}}},
        store_dir="stores",
        repeats=1,
        inner_repeats=2,
        inner_budget_seconds=600,
        read_cache=["cold", "warm"],
        # buffered_shuffle: a method without read_units is read in blocks of batch_size
        read_patterns=["whole", "buffered_shuffle", "random_single"],
        readahead=["on"],
        random_reads=10,
        batch_size=4,
        shuffle_buffer=5,
    )
    snakemake(workdir, cores=2, timeout=1800)
    snakemake(workdir, "--report", "report.html", cores=None, timeout=1800)
    return workdir


def test_rows_and_statistics_of_the_new_method(run):
    results = run / "results"
    timings = pd.read_csv(results / "timings.csv", keep_default_na=False, na_values=[""])
    mine = timings[timings["method"] == NAME]
    assert set(mine["variant"]) == {"default", "deflate"}
    assert set(mine["operation"]) == {"store", "read"}
    assert set(mine["read_pattern"]) == {"n/a", "whole", "buffered_shuffle", "random_single"}
    buffered = timings[timings["read_pattern"] == "buffered_shuffle"]
    assert set(buffered["method"]) == {"npy", NAME}
    assert (buffered["images_read"] == 12).all()  # every image of the store, once
    assert (buffered["shuffle_buffer"] == 5).all() and (buffered["batch_size"] == 4).all()
    assert timings.loc[timings["read_pattern"] != "buffered_shuffle", "shuffle_buffer"].isna().all()
    formats = (results / "summary.md").read_text().split("## Which format for which access")[1]
    assert "| buffered_shuffle, 1 reader(s), cold |" in formats
    assert "(wds, parquet) would read it with buffered_shuffle" in formats
    assert (mine["method_description"] == DESCRIPTION).all()
    assert (mine["seconds"] > 0).all() and (mine["bytes_on_disk"] > 0).all()
    stats = pd.read_csv(results / "timings_stats.csv", keep_default_na=False, na_values=[""])
    points = stats[stats["method"] == NAME]
    assert set(points["series"]) == {NAME, f"{NAME}:deflate"}
    assert set(zip(points["operation"], points["cache"], strict=True)) == {
        ("store", "n/a"),
        ("read", "cold"),
        ("read", "warm"),
    }
    assert (points["method_description"] == DESCRIPTION).all()
    assert (points["n"] >= 1).all()


def test_the_new_method_is_named_by_its_description(run):
    results = run / "results"
    assert f"| {NAME} | {DESCRIPTION} |" in (results / "summary.md").read_text()
    assert f"| {NAME} | {DESCRIPTION} |" in (results / "disk_usage.md").read_text()
    svgs = sorted((results / "plots").glob("*.svg"))
    named = [svg.name for svg in svgs if DESCRIPTION in svg.read_text()]
    assert "disk_usage.svg" in named, named
    assert f"{DESCRIPTION} [deflate]" in (results / "plots" / "disk_usage.svg").read_text()
    assert any(name.startswith("store_time") for name in named), named


def test_the_report_holds_every_figure(run):
    report = run / "report.html"
    assert report.is_file() and report.stat().st_size > 0
    text = report.read_text(errors="replace")
    figures = sorted(path.name for path in (run / "results" / "plots").glob("*.png"))
    assert figures
    missing = [name for name in figures if name not in text]
    assert missing == [], missing
