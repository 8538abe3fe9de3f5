"""End to end: the workflow on a folder of real photographs (``dataset.images_dir``): the
folder's images timed, a second dry run with nothing to do, a touched or added image
rerunning the folder rule, a CIFAR run beside it using other data files, and a bad folder
or file stopping the run naming itself. The folder loader itself is tested in
tests/unit/test_imagefolder.py."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from workflow_runs import folder_workflow, overlay, planned_jobs, snakemake

from imgbench.data import imagefolder


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """The workflow on a folder of 6 real photographs in 3 classes (one grayscale),
    npy and png, cutoffs 1 and 8 (8 tiles the 6 images), 32x32."""
    workdir = tmp_path_factory.mktemp("folder_workflow")
    folder = folder_workflow(
        workdir,
        "my photos",
        6,
        seed=5,
        sources=["rocket", "camera", "coffee"],
        n_images=8,
        cutoffs=[1, 8],
        methods=["npy", "png"],
        image_sizes=[32],
        store_dir="stores",
        repeats=1,
        inner_repeats=1,
        read_patterns=["whole"],
        plot={"formats": ["png"]},
    )
    result = snakemake(workdir)
    return workdir, folder, result


@pytest.mark.e2e
def test_folder_run_times_the_folders_images(folder_run):
    workdir, folder, result = folder_run
    assert "dataset.images_dir: 6 images in 3 classes" in result.stderr
    timings = pd.read_csv(workdir / "results" / "timings.csv")
    stores = timings[timings["operation"] == "store"]
    assert Counter(zip(stores["method"], stores["cutoff"], strict=True)) == Counter(
        {(m, c): 1 for m in ("npy", "png") for c in (1, 8)}
    )
    assert set(timings["image_size"]) == {32}
    reads = timings[timings["operation"] == "read"]
    assert (reads["images_read"] == reads["cutoff"]).all() and len(reads) == 8
    # The pool is the folder's images by the documented policy, in the documented order,
    # and was not resized again; CIFAR was never fetched.
    data = workdir / "results" / "data" / f"folder-{imagefolder.tag(folder)}"
    listing = imagefolder.scan(folder)
    expected = np.stack([imagefolder.decode(path, 32) for path in listing.paths()])
    np.testing.assert_array_equal(np.load(data / "pool_32px_images.npy"), expected)
    np.testing.assert_array_equal(np.load(data / "pool_32px_labels.npy"), [0, 0, 1, 1, 2, 2])
    assert json.loads((data / "folder_32px_classes.json").read_text())["classes"] == {
        "camera": 0,
        "coffee": 1,
        "rocket": 2,
    }
    assert "resized" not in (workdir / "logs" / "pool_32px.log").read_text()
    assert not (workdir / "results" / "data" / "train_images.npy").exists()
    assert not (workdir / "results" / "data" / "cifar-10-python.tar.gz").exists()


@pytest.mark.e2e
def test_folder_run_second_dry_run_has_nothing_to_do(folder_run):
    workdir, _, _ = folder_run
    assert planned_jobs(workdir) == []
    assert "Nothing to be done" in snakemake(workdir, "--dry-run").stdout


@pytest.mark.e2e
def test_touching_or_adding_an_image_reruns_the_folder_rule(folder_run):
    workdir, folder, _ = folder_run
    path = next(imagefolder.scan(folder).paths())
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    try:
        jobs = planned_jobs(workdir)
    finally:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    rules = Counter(rule for rule, _ in jobs)
    # npy and png, their stores of 1 and 8 images sharing a store job each (small_store_bytes)
    assert rules["image_folder"] == 1 and rules["pool"] == 1 and rules["store"] == 2, rules
    assert "unpickle_cifar" not in rules and "download_cifar" not in rules
    extra = folder / "camera" / "new.jpg"
    shutil.copy(path, extra)
    try:
        assert Counter(rule for rule, _ in planned_jobs(workdir))["image_folder"] == 1
    finally:
        extra.unlink()
    assert planned_jobs(workdir) == []


@pytest.mark.e2e
def test_a_cifar_run_in_the_same_results_uses_other_data_files(folder_run, tiny_archive):
    workdir, _, _ = folder_run
    archive, md5, _, _ = tiny_archive
    dataset = {"images_dir": None, "archive": str(archive), "md5": md5}
    cifar = overlay(workdir, "cifar", {"dataset": dataset})
    jobs = planned_jobs(workdir, *cifar)
    rules = Counter(rule for rule, _ in jobs)
    assert rules["unpickle_cifar"] == 1 and rules["pool"] == 1 and "image_folder" not in rules
    output = snakemake(workdir, "--dry-run", *cifar).stdout
    assert "results/data/pool_32px_images.npy" in output
    assert "folder-" not in output


@pytest.mark.e2e
def test_a_bad_folder_stops_before_any_job_and_a_bad_file_names_itself(folder_run, tmp_path):
    workdir, folder, _ = folder_run
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    (bad / "dog").mkdir()
    result = snakemake(
        workdir,
        "--dry-run",
        *overlay(workdir, "bad", {"dataset": {"images_dir": str(bad)}}),
        check=False,
    )
    message = result.stdout + result.stderr
    assert result.returncode != 0 and "config key dataset.images_dir" in message
    assert str(bad / "dog") in message and "rule " not in message

    (bad / "dog" / "notes.jpg").write_text("not a photo")
    changes = {"dataset": {"images_dir": str(bad)}, "store_dir": str(tmp_path / "stores")}
    result = snakemake(workdir, *overlay(workdir, "bad", changes), check=False)
    assert result.returncode != 0
    assert f"{bad / 'dog' / 'notes.jpg'} is not an image Pillow can read" in result.stderr
    assert "remove it from dataset.images_dir or replace it" in result.stderr
    data = workdir / "results" / "data" / f"folder-{imagefolder.tag(bad)}"
    assert not data.exists() or not any(data.iterdir())
