"""measure: timed stores and reads of every method, their rows, verification and CSV output."""

from __future__ import annotations

import csv
import gc
import math
from pathlib import Path

import h5py
import lmdb
import numpy as np
import pytest
from PIL import Image

from imgbench import aggregate, fsutil, measure, provenance
from imgbench.methods import get_method
from imgbench.methods import lmdb as lmdb_method

REPO = Path(__file__).resolve().parents[1]
METHODS = ["png", "lmdb", "hdf5", "npy"]
COUNT = 20
RANDOM_READS = 40
BATCH = 8


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1234)
    images = rng.integers(0, 256, size=(COUNT, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=COUNT, dtype=np.uint8)
    return images, labels


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return provenance.collect(tmp_path_factory.getbasetemp(), REPO)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, data, env):
    """One store per method (reads do not change a store), with its store row."""
    images, labels = data
    root = tmp_path_factory.mktemp("stores")
    made = {}
    for method in METHODS:
        store_dir = root / method
        row = measure.run_store(
            method, images, labels, store_dir, fsync=True, repeat=1, env=env, variant="default"
        )
        made[method] = (store_dir, row)
    return made


def read(method, store_dir, data, env, **kwargs):
    images, labels = data
    options = {"cache": "cold", "fsync": True, "repeat": 1, "env": env}
    options.update(kwargs)
    return measure.run_read(method, store_dir, images, labels, **options)


def cache_reported(row) -> bool:
    return not math.isnan(row["cached_fraction"])


def check_common(row, env):
    assert list(row) == measure.ROW_FIELDS
    assert row["seconds"] > 0
    assert row["images_per_s"] == pytest.approx(row["images_read"] / row["seconds"])
    assert row["host"] == env["host"]
    assert row["store_fs_type"] == env["store_fs_type"]
    assert row["env_id"] == provenance.environment_id(env)
    assert row["gc"] == "disabled"
    start, end = float(row["t_start_unix"]), float(row["t_end_unix"])
    assert start <= end
    assert row["t_start_unix"] == f"{start:.6f}"
    assert row["bytes_on_disk"] > 0
    assert row["bytes_apparent"] > 0
    assert row["n_files"] >= 1


@pytest.mark.parametrize("method", METHODS)
def test_store_row(method, stores, data, env):
    store_dir, row = stores[method]
    check_common(row, env)
    assert row["method"] == method
    assert row["variant"] == "default"
    assert row["operation"] == "store"
    assert row["image_size"] == 32
    assert row["cutoff"] == COUNT == row["images_read"]
    assert row["repeat"] == 1
    assert row["fsync"] is True
    assert row["cache"] == "n/a" and row["read_pattern"] == "n/a"
    assert row["readers"] == 1
    assert math.isnan(row["cached_fraction"])
    assert math.isnan(row["latency_p50_us"])
    usage = fsutil.disk_usage(store_dir)
    assert (row["bytes_on_disk"], row["bytes_apparent"], row["n_files"]) == (
        usage.bytes_on_disk,
        usage.bytes_apparent,
        usage.n_files,
    )
    # The store holds the data: the method reads it back unchanged.
    got_images, got_labels = get_method(method).read(store_dir)
    np.testing.assert_array_equal(got_images, data[0])
    np.testing.assert_array_equal(got_labels, data[1])


def test_store_without_fsync_is_recorded(tmp_path, data, env):
    images, labels = data
    row = measure.run_store(
        "npy", images, labels, tmp_path / "s", fsync=False, repeat=2, env=env, variant="x"
    )
    assert row["fsync"] is False
    assert row["repeat"] == 2 and row["variant"] == "x"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_sequential_whole_read(method, cache, stores, data, env):
    store_dir, _ = stores[method]
    row = read(method, store_dir, data, env, cache=cache, repeat=3)
    check_common(row, env)
    assert row["operation"] == "read"
    assert row["cache"] == cache
    assert row["read_pattern"] == "sequential" and row["readers"] == 1
    assert row["cutoff"] == COUNT == row["images_read"]
    assert row["repeat"] == 3
    assert row["fsync"] is True
    # The whole-store read is one call: no per-request latencies.
    assert math.isnan(row["latency_p50_us"])
    if not cache_reported(row):
        pytest.skip("this platform cannot report page-cache residency (no mincore)")
    if cache == "cold":
        assert row["cached_fraction"] < 0.05
    else:
        assert row["cached_fraction"] > 0.5


# (sequential, 1 reader) is the whole-store read of test_sequential_whole_read.
PATTERN_READERS = [
    ("sequential", 2),
    ("shuffled", 1),
    ("shuffled", 2),
    ("random_single", 1),
    ("random_single", 2),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("pattern", "readers"), PATTERN_READERS)
def test_patterns_and_readers(method, pattern, readers, stores, data, env):
    store_dir, _ = stores[method]
    row = read(
        method,
        store_dir,
        data,
        env,
        pattern=pattern,
        readers=readers,
        batch_size=BATCH,
        random_reads=RANDOM_READS,
        seed=7,
    )
    check_common(row, env)
    assert row["read_pattern"] == pattern
    assert row["readers"] == readers
    assert row["seed"] == 7
    if pattern == "random_single":
        assert row["images_read"] == RANDOM_READS
        assert row["batch_size"] == 1
    else:
        assert row["images_read"] == COUNT
        assert row["batch_size"] == BATCH
    p50, p95, p99, p_max = (row[f"latency_{name}_us"] for name in ("p50", "p95", "p99", "max"))
    assert 0 < p50 <= p95 <= p99 <= p_max
    if cache_reported(row):
        assert row["cached_fraction"] < 0.05


def test_warm_pattern_read_fills_cache_first(stores, data, env):
    store_dir, _ = stores["npy"]
    row = read("npy", store_dir, data, env, cache="warm", pattern="shuffled", batch_size=BATCH)
    if not cache_reported(row):
        pytest.skip("this platform cannot report page-cache residency (no mincore)")
    assert row["cached_fraction"] > 0.5


def test_bad_cache_state_and_pattern(stores, data, env):
    store_dir, _ = stores["npy"]
    with pytest.raises(ValueError, match="cache must be one of"):
        read("npy", store_dir, data, env, cache="lukewarm")
    with pytest.raises(ValueError, match="unknown read pattern"):
        read("npy", store_dir, data, env, pattern="backwards")


# Corruptions: each changes image 3 of a store written from ``images``.


def corrupt_png(store_dir, images):
    Image.fromarray(255 - images[3]).save(store_dir / "3.png")


def corrupt_npy(store_dir, images):
    path = store_dir / "images.npy"
    raw = bytearray(path.read_bytes())
    header = len(raw) - images.nbytes  # the data region is the last images.nbytes bytes
    start = header + 3 * images[0].nbytes
    raw[start : start + 16] = bytes(b ^ 0xFF for b in raw[start : start + 16])
    path.write_bytes(bytes(raw))


def corrupt_hdf5(store_dir, images):
    with h5py.File(store_dir / "images.h5", "r+") as handle:
        handle["images"][3] = 255 - images[3]


def corrupt_lmdb(store_dir, images):
    env = lmdb.open(str(store_dir), subdir=True)
    try:
        with env.begin(write=True) as txn:
            txn.put(lmdb_method.image_key(3), (255 - images[3]).tobytes())
    finally:
        env.close()


CORRUPT = {"png": corrupt_png, "npy": corrupt_npy, "hdf5": corrupt_hdf5, "lmdb": corrupt_lmdb}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("pattern", "readers"), [("sequential", 1), ("shuffled", 1), ("shuffled", 2)]
)
def test_corrupted_store_fails_verification(method, pattern, readers, tmp_path, data, env):
    images, labels = data
    store_dir = tmp_path / "store"
    measure.run_store(method, images, labels, store_dir, fsync=False, repeat=1, env=env)
    # Intact, the read passes.
    read(method, store_dir, data, env, pattern=pattern, readers=readers, batch_size=BATCH)
    CORRUPT[method](store_dir, images)
    stored_images, _ = get_method(method).read(store_dir)
    assert not np.array_equal(stored_images[3], images[3])  # the corruption took
    with pytest.raises(measure.VerificationError, match=method):
        read(method, store_dir, data, env, pattern=pattern, readers=readers, batch_size=BATCH)


def test_wrong_label_fails_verification(tmp_path, data, env):
    images, labels = data
    store_dir = tmp_path / "store"
    measure.run_store("png", images, labels, store_dir, fsync=False, repeat=1, env=env)
    lines = (store_dir / "labels.csv").read_text().splitlines()
    index, label = lines[5].split(",")
    lines[5] = f"{index},{(int(label) + 1) % 10}"
    (store_dir / "labels.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(measure.VerificationError, match="labels differ"):
        read("png", store_dir, data, env)


def test_verify_reports_shape_mismatch(data):
    images, labels = data
    with pytest.raises(measure.VerificationError, match="expected"):
        measure.verify("npy", (images[:-1], labels[:-1]), images, labels)
    measure.verify("npy", (images.copy(), labels.copy()), images, labels)  # equal: no error


@pytest.mark.parametrize("method", METHODS)
def test_repeat_store_replaces_older_store(method, tmp_path, data, env):
    images, labels = data
    store_dir = tmp_path / "store"
    big = measure.run_store(method, images, labels, store_dir, fsync=False, repeat=1, env=env)
    (store_dir / "stale.txt").write_text("left over")
    few_images, few_labels = images[:5].copy(), labels[:5].copy()
    small = measure.run_store(
        method, few_images, few_labels, store_dir, fsync=False, repeat=2, env=env
    )
    assert not (store_dir / "stale.txt").exists()
    assert small["cutoff"] == 5
    assert small["bytes_apparent"] < big["bytes_apparent"]
    files = fsutil.store_files(store_dir)
    assert small["n_files"] == len(files)
    if method == "png":
        expected = {f"{i}.png" for i in range(5)} | {"labels.csv"}
        assert {path.name for path in files} == expected
    got_images, got_labels = get_method(method).read(store_dir)
    assert len(got_images) == 5 and len(got_labels) == 5
    np.testing.assert_array_equal(got_images, few_images)
    row = measure.run_read(
        method, store_dir, few_images, few_labels, cache="cold", fsync=False, repeat=2, env=env
    )
    assert row["images_read"] == 5


def test_write_row_writes_one_row_with_nan_as_empty(tmp_path, stores):
    _, row = stores["hdf5"]
    path = tmp_path / "rows" / "deep" / "row.csv"
    measure.write_row(row, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["row.csv"]  # no .tmp left behind
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == measure.ROW_FIELDS
        written = list(reader)
    assert len(written) == 1
    (line,) = written
    for key in ("cached_fraction", "latency_p50_us", "latency_max_us", "batch_size", "seed"):
        assert line[key] == ""
    assert line["method"] == "hdf5" and line["operation"] == "store"
    assert float(line["seconds"]) == row["seconds"]
    assert int(line["bytes_on_disk"]) == row["bytes_on_disk"]
    assert line["fsync"] == "True"
    assert "nan" not in path.read_text().lower()
    # The aggregation reads the empty cells back as missing values.
    table = aggregate.load_rows([path])
    assert len(table) == 1 and table["cached_fraction"].isna().all()


def test_write_environment_records_env_id(tmp_path, env):
    path = tmp_path / "env" / "environment.json"
    measure.write_environment(env, path)
    environments = aggregate.load_environments([path])
    assert list(environments) == [provenance.environment_id(env)]
    assert environments[provenance.environment_id(env)]["host"] == env["host"]


def test_load_source_copies_the_first_images(tmp_path, data):
    images, labels = data
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    got_images, got_labels = measure.load_source(
        tmp_path / "images.npy", tmp_path / "labels.npy", 7
    )
    assert not isinstance(got_images, np.memmap)
    np.testing.assert_array_equal(got_images, images[:7])
    np.testing.assert_array_equal(got_labels, labels[:7])
    with pytest.raises(ValueError, match="cutoff 21 is larger than the 20 images"):
        measure.load_source(tmp_path / "images.npy", tmp_path / "labels.npy", 21)


def test_timed_disables_gc_only_inside():
    assert gc.isenabled()
    result, elapsed, start, end = measure.timed(lambda: gc.isenabled())
    assert result is False
    assert elapsed > 0 and start <= end
    assert gc.isenabled()


@pytest.mark.parametrize("method", METHODS)
def test_more_readers_than_requests(method, tmp_path):
    """One image, three readers: two of them get nothing to read; the row is still whole.
    A minimal environment (host and file-system type) is enough for a row."""
    minimal_env = {"host": "testhost", "store_fs_type": "testfs"}
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(1, 32, 32, 3), dtype=np.uint8)
    labels = np.array([3], dtype=np.uint8)
    store_dir = tmp_path / "store"
    measure.run_store(method, images, labels, store_dir, fsync=False, repeat=1, env=minimal_env)
    for pattern, expected_reads in (("sequential", 1), ("shuffled", 1), ("random_single", 2)):
        row = measure.run_read(
            method,
            store_dir,
            images,
            labels,
            cache="warm",
            fsync=False,
            repeat=1,
            env=minimal_env,
            pattern=pattern,
            readers=3,
            batch_size=8,
            random_reads=2,
        )
        assert row["images_read"] == expected_reads
        assert row["readers"] == 3
        assert row["host"] == "testhost" and row["store_fs_type"] == "testfs"
        assert row["latency_p50_us"] > 0


def test_failing_reader_process_fails_the_read(data, env, tmp_path):
    """A worker that cannot open the store reports its error; the parent raises."""
    missing = tmp_path / "no-such-store"
    missing.mkdir()
    with pytest.raises(measure.VerificationError, match="reader failed"):
        read("npy", missing, data, env, pattern="shuffled", readers=2, batch_size=BATCH)


def test_reader_process_killed_by_a_signal_fails_the_read_promptly(data, env, stores, monkeypatch):
    """A reader that dies without reporting (a segfault in a C library, the OOM killer)
    fails the job within seconds instead of leaving the parent waiting for its result."""
    import os
    import signal
    import time

    store_dir, _ = stores["npy"]
    module = get_method("npy")
    real_open = module.open_reader

    def open_and_die(path):
        reader = real_open(path)
        os.kill(os.getpid(), signal.SIGKILL)
        return reader

    monkeypatch.setattr(module, "open_reader", open_and_die)  # inherited by the fork
    began = time.monotonic()
    with pytest.raises(measure.VerificationError, match=r"died without reporting.*-9"):
        read("npy", store_dir, data, env, pattern="shuffled", readers=2, batch_size=BATCH)
    assert time.monotonic() - began < 60


def test_reader_failing_before_the_start_releases_the_others(data, env, stores, monkeypatch):
    """A worker that fails before the common start breaks the barrier at once, and the
    parent reports that worker's error rather than waiting out the start timeout."""
    store_dir, _ = stores["npy"]
    real_get_method = measure.get_method
    calls = {"n": 0}

    def get_method_failing_in_workers(name):
        calls["n"] += 1
        if calls["n"] > 1:  # the parent's call is the first; the forked workers' come after
            raise RuntimeError("cannot import the method in the worker")
        return real_get_method(name)

    monkeypatch.setattr(measure, "get_method", get_method_failing_in_workers)
    with pytest.raises(measure.VerificationError, match="cannot import the method"):
        read("npy", store_dir, data, env, pattern="shuffled", readers=2, batch_size=BATCH)


def test_parallel_read_time_excludes_the_workers_checks(data, env, stores, monkeypatch):
    """Each worker checks its batches after its timed part: a slow check must not show
    up in the read time."""
    import time

    check_s = 3.0
    store_dir, _ = stores["npy"]
    real_verify = measure._verify_batches

    def slow_verify(*args):
        time.sleep(check_s)
        real_verify(*args)

    monkeypatch.setattr(measure, "_verify_batches", slow_verify)
    row = read("npy", store_dir, data, env, pattern="shuffled", readers=2, batch_size=BATCH)
    # the sleep alone would make it check_s; reading 20 tiny images takes milliseconds
    assert row["seconds"] < check_s, row["seconds"]
