"""End to end: the documented lossy variants (JPEG with both subsamplings, lossy WebP) on
CIFAR-sized natural images, stored and read by Snakemake under the default floors; the
rows, the summary's methods table, and a store floor set too high stopping the run with
its sentence."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from cifar_fixtures import photo_images
from workflow_runs import REPO, cifar_workflow, overlay, snakemake

from imgbench.methods import encoding, get_method, resolve_options

BATCH_SIZES = (60, 60, 60, 60, 60)  # 300 training images, as a CIFAR-10 archive
CUTOFF = sum(BATCH_SIZES)

pytestmark = pytest.mark.e2e


# Where the formats' YAML examples are: the formats page (and the README, should it show any).
DOCUMENTS = ("README.md", "docs/formats.md")


def documented_lossy_variants() -> dict[str, dict[str, dict]]:
    """Every lossy variant of the YAML examples of ``DOCUMENTS``, by method, as written
    there."""
    text = "\n".join((REPO / name).read_text() for name in DOCUMENTS if (REPO / name).is_file())
    found: dict[str, dict[str, dict]] = {}
    for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL):
        config = yaml.safe_load(block)
        if not isinstance(config, dict):
            continue
        for method, variants in (config.get("variants") or {}).items():
            for name, options in variants.items():
                if encoding.is_lossy(resolve_options(get_method(method), options)):
                    found.setdefault(method, {})[name] = options or {}
    return found


LOSSY = documented_lossy_variants()


def resolved(method: str, variant: str) -> dict:
    return resolve_options(get_method(method), LOSSY[method][variant])


@pytest.fixture(scope="module")
def lossy_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("lossy_workflow")
    images, _ = cifar_workflow(
        workdir,
        archive={
            "batch_sizes": BATCH_SIZES,
            "name": "photo-cifar.tar.gz",
            "seed": 7,
            "make": photo_images,
        },
        n_images=CUTOFF,
        cutoffs=[CUTOFF],
        methods=sorted(LOSSY),
        variants=LOSSY,
        store_dir="stores",
        repeats=1,
        inner_repeats=1,
        read_cache=["warm"],
        read_patterns=["whole", "shuffled"],
        readahead=["on"],
        batch_size=32,
    )
    target = "results/summary.md"  # the tables; no figures
    snakemake(workdir, target)
    timings = pd.read_csv(workdir / "results" / "timings.csv")
    summary = (workdir / "results" / "summary.md").read_text()
    too_high = overlay(workdir, "too-high", {"store_psnr_floor_db": 60})
    refused = snakemake(workdir, target, *too_high, check=False)
    return workdir, timings, summary, refused, images


def test_the_docs_show_jpeg_with_both_subsamplings_and_lossy_webp():
    encodings = {
        encoding.describe(resolved(method, variant))
        for method, variants in LOSSY.items()
        for variant in variants
    }
    assert {"jpeg q95 4:4:4", "jpeg q95 4:2:0"} <= encodings
    assert any(name.startswith("webp q") for name in encodings)


def test_every_documented_lossy_variant_is_stored_and_read_above_the_floors(lossy_run):
    _, timings, _, _, _ = lossy_run
    series = {(m, v) for m, variants in LOSSY.items() for v in variants}
    stores = timings[timings["operation"] == "store"]
    reads = timings[timings["operation"] == "read"]
    assert set(zip(stores["method"], stores["variant"], strict=True)) == series
    assert set(zip(reads["method"], reads["variant"], strict=True)) == series
    assert set(reads["read_pattern"]) == {"whole", "shuffled"}  # each image checked
    assert stores["lossy"].all() and reads["lossy"].all()
    assert (stores["psnr_db"] >= encoding.STORE_PSNR_FLOOR_DB).all()
    assert (stores["psnr_min_db"] >= encoding.IMAGE_PSNR_FLOOR_DB).all()
    assert (stores["psnr_p01_db"] >= stores["psnr_min_db"]).all()
    for row in stores.itertuples():
        assert row.encoding == encoding.describe(resolved(row.method, row.variant))


def test_the_recorded_psnr_is_that_of_the_source_images(lossy_run):
    _, timings, _, _, images = lossy_run
    stores = timings[timings["operation"] == "store"]
    for row in stores.itertuples():
        options = resolved(row.method, row.variant)
        got = np.stack(
            [
                encoding.decode(encoding.encode(i, options), options["encoding"], i.shape)
                for i in images
            ]
        )
        fidelity = encoding.Fidelity()
        fidelity.add(images, got)
        assert row.psnr_db == pytest.approx(fidelity.store_db, abs=1e-3)
        assert row.psnr_min_db == pytest.approx(fidelity.worst_db, abs=1e-3)
        assert row.psnr_p01_db == pytest.approx(fidelity.low_percentile_db, abs=1e-3)


def test_four_four_four_keeps_more_than_four_two_zero(lossy_run):
    _, timings, _, _, _ = lossy_run
    stores = timings[timings["operation"] == "store"].set_index("encoding")
    full, half = stores.loc["jpeg q95 4:4:4"], stores.loc["jpeg q95 4:2:0"]
    full = full.iloc[0] if isinstance(full, pd.DataFrame) else full  # png and wds both
    assert full["psnr_db"] > half["psnr_db"] + 3
    assert full["psnr_min_db"] > half["psnr_min_db"] + 3


def test_the_summary_names_subsampling_and_each_fidelity(lossy_run):
    _, timings, summary, _, _ = lossy_run
    methods = summary.split("## Methods")[1].split("\n## ")[0]
    stores = timings[timings["operation"] == "store"]
    for row in stores.itertuples():
        name = row.method if row.variant == "default" else f"{row.method}:{row.variant}"
        line = next(line for line in methods.splitlines() if line.startswith(f"| {name} |"))
        assert f"| {row.encoding} | {row.read_path} | lossy: PSNR {row.psnr_db:.1f} dB, " in line
        assert f", 1st percentile {row.psnr_p01_db:.1f} dB, " in line
        assert line.endswith(f"worst image {row.psnr_min_db:.1f} dB |")


def test_a_store_floor_above_the_store_stops_the_run_with_its_sentence(lossy_run):
    workdir, _, _, refused, _ = lossy_run
    assert refused.returncode != 0
    logs = "".join(p.read_text() for p in (workdir / "logs").rglob("*.log"))
    said = refused.stdout + refused.stderr + logs
    assert re.search(
        r"the lossy \w+ store is \d+\.\d dB PSNR from its source over all its pixels \(worst "
        r"image \d+\.\d dB\), below store_psnr_floor_db 60; raise the variant's quality",
        said,
    ), said[-3000:]
