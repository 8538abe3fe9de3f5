"""measure: timed stores and reads of every method, their rows, verification and CSV output;
the timed region, the machine's preparation and the rows' repetitions they are made of."""

from __future__ import annotations

import csv
import functools
import gc
import math
import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import h5py
import lmdb
import numpy as np
import pytest
from ci import unavailable
from PIL import Image
from processes import start_stranger

from imgbench import methods
from imgbench.data import pool
from imgbench.experiment import rows as row_model
from imgbench.harness import (
    access,
    job_rows,
    measure,
    prepare,
    provenance,
    readers,
    region,
    timed_reads,
    verification,
)
from imgbench.harness.point import Point, Settings
from imgbench.methods import available_methods, get_method
from imgbench.methods import lmdb as lmdb_method
from imgbench.results import busy as busy_rule
from imgbench.results import load
from imgbench.system import fsutil, machine, pagecache

REPO = Path(__file__).resolve().parents[2]
METHODS = available_methods()
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
    """One store per method (reads do not change a store), with its store rows."""
    images, labels = data
    root = tmp_path_factory.mktemp("stores")
    made = {}
    for method in METHODS:
        store_dir = root / method
        rows = measure.run_store(
            Point(method, variant="default", repeat=1, fsync="per_file"), data, store_dir, env=env
        )
        made[method] = (store_dir, rows)
    return made


SETTINGS = ("inner_repeats", "inner_budget_s")


def read(method, store_dir, data, env, **kwargs) -> list[dict]:
    """A read of the point ``kwargs`` (a cold whole read by default) and ``Settings`` from
    its ``inner_repeats``/``inner_budget_s``."""
    settings = Settings(**{key: kwargs.pop(key) for key in SETTINGS if key in kwargs})
    point = Point(method, **{"cache": "cold", "fsync": "per_file", **kwargs})
    return measure.run_read(point, data, store_dir, env=env, settings=settings)


def read_one(method, store_dir, data, env, **kwargs) -> dict:
    rows = read(method, store_dir, data, env, **kwargs)
    assert len(rows) == 1  # inner_repeats defaults to 1
    return rows[0]


def cache_reported(row) -> bool:
    return not math.isnan(row["cached_fraction"])


def busy_cpu(seconds: float) -> None:
    """Burn ``seconds`` of this process's CPU time (not a sleep: the process stays busy)."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


def check_common(row, env):
    assert list(row) == measure.ROW_FIELDS
    assert row["method_description"] == get_method(row["method"]).DESCRIPTION
    assert row["seconds"] > 0
    assert row["images_per_s"] == pytest.approx(row["images_read"] / row["seconds"])
    assert row["host"] == env["host"]
    assert row["store_fs_type"] == env["store_fs_type"]
    assert row["cpu_count"] == env.get("cpu_count")
    assert row["env_id"] == row_model.environment_id(env)
    assert row["gc"] == "disabled"
    assert row["inner_repeat"] >= 1
    start, end = float(row["t_start_unix"]), float(row["t_end_unix"])
    assert start <= end
    assert row["t_start_unix"] == f"{start:.6f}"
    assert row["bytes_on_disk"] > 0
    assert row["bytes_apparent"] > 0
    assert row["n_files"] >= 1
    assert row["bytes_requested"] == row["images_read"] * 32 * 32 * 3
    assert row["prefault_bytes"] > 0
    assert row["cpu_seconds"] >= 0


# --- stores --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_store_row(method, stores, data, env):
    store_dir, rows = stores[method]
    (row,) = rows
    check_common(row, env)
    assert row["method"] == method
    assert row["variant"] == "default"
    assert row["operation"] == "store"
    assert row["image_size"] == 32
    assert row["cutoff"] == COUNT == row["images_read"]
    assert row["repeat"] == 1 and row["inner_repeat"] == 1
    assert row["fsync"] == "per_file"
    assert row["cache"] == "n/a" and row["read_pattern"] == "n/a"
    assert row["eviction"] == "n/a" and row["readahead"] == "n/a"
    assert row["readers"] == 1
    assert row["seconds"] == pytest.approx(row["write_seconds"] + row["flush_seconds"], abs=1e-9)
    assert row["write_seconds"] > 0 and row["flush_seconds"] > 0
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


@pytest.mark.parametrize("strategy", ["per_file", "syncfs", "none"])
def test_store_time_is_write_plus_flush(strategy, tmp_path, data, env, monkeypatch):
    """Each strategy flushes the store its own way, timed apart from the write."""
    images, labels = data
    store_dir = tmp_path / "store"
    calls = []
    real_fsync_tree, real_syncfs = fsutil.fsync_tree, fsutil.syncfs

    def fsync_tree(path):
        calls.append(("per_file", Path(path)))
        real_fsync_tree(path)

    def syncfs(path):
        calls.append(("syncfs", Path(path)))
        real_syncfs(path)

    monkeypatch.setattr(fsutil, "fsync_tree", fsync_tree)
    monkeypatch.setattr(fsutil, "syncfs", syncfs)
    rows = measure.run_store(
        Point("npy", fsync=strategy),
        (images, labels),
        store_dir,
        env=env,
        settings=Settings(inner_repeats=3, inner_budget_s=60),
    )
    assert [row["inner_repeat"] for row in rows] == [1, 2, 3]
    for row in rows:
        assert row["fsync"] == strategy
        assert row["seconds"] == pytest.approx(
            row["write_seconds"] + row["flush_seconds"], abs=1e-9
        )
        assert row["write_seconds"] > 0 and row["flush_seconds"] >= 0
        if strategy == "none":
            assert row["flush_seconds"] < 1e-3  # an empty call, nothing flushed
    # Every repetition flushed the store once; a cheap first one is a discarded warm-up.
    on_store = [kind for kind, path in calls if path == store_dir]
    warmups = 1 if rows[0]["warmup_seconds"] == rows[0]["warmup_seconds"] else 0
    assert on_store == ([] if strategy == "none" else [strategy] * (3 + warmups))


def test_a_store_row_records_the_points_variant_repeat_and_flush(tmp_path, data, env):
    (row,) = measure.run_store(
        Point("npy", variant="x", repeat=2, fsync="none"), data, tmp_path / "s", env=env
    )
    assert row["fsync"] == "none"
    assert row["repeat"] == 2 and row["variant"] == "x"


@pytest.mark.parametrize("bad", ["always", None, 1, "True", True, False])
def test_bad_flush_strategy_is_refused(bad):
    """The config turns the older boolean fsync into a strategy's name (``config``); the
    harness takes names only."""
    with pytest.raises(ValueError, match="fsync must be one of per_file, syncfs, none, not"):
        Point("npy", fsync=bad)


def test_inner_repeats_and_budget(tmp_path, data, env):
    images, labels = data
    rows = measure.run_store(
        Point("npy", repeat=4, fsync="none"),
        (images, labels),
        tmp_path / "s",
        env=env,
        settings=Settings(inner_repeats=4, inner_budget_s=60),
    )
    assert [row["inner_repeat"] for row in rows] == [1, 2, 3, 4]
    assert {row["repeat"] for row in rows} == {4}
    starts = [float(row["t_start_unix"]) for row in rows]
    assert starts == sorted(starts) and len(set(starts)) == 4  # distinct timed regions
    # The cheap first repetition was a warm-up: not a row, but its time is on every row.
    assert all(row["warmup_seconds"] > 0 for row in rows)
    # A zero budget allows exactly one repetition, whatever inner_repeats says.
    rows = read("npy", tmp_path / "s", data, env, cache="warm", inner_repeats=50, inner_budget_s=0)
    assert [row["inner_repeat"] for row in rows] == [1]


def test_first_cheap_repetition_is_a_warmup_not_kept():
    cheap = job_rows.Repetitions(inner_repeats=4, inner_budget_s=4.0)  # cheap: < 4 s
    for seconds in (3.9, 0.5, 0.6):
        cheap.add({"seconds": seconds})
    rows = cheap.result()
    assert [row["seconds"] for row in rows] == [0.5, 0.6]
    assert all(row["warmup_seconds"] == 3.9 for row in rows)
    # An expensive first repetition (no second one fits in the budget) is kept.
    costly = job_rows.Repetitions(inner_repeats=4, inner_budget_s=4.0)
    costly.add({"seconds": 4.5})
    assert [row["seconds"] for row in costly.result()] == [4.5]
    assert math.isnan(costly.result()[0]["warmup_seconds"])
    # With one repetition asked for, nothing is set aside.
    single = job_rows.Repetitions(inner_repeats=1, inner_budget_s=4.0)
    single.add({"seconds": 0.01})
    assert len(single.result()) == 1


def test_warm_fill_reads_a_store_that_is_not_cached(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "a.bin").write_bytes(os.urandom(4 << 20))
    pagecache.evict_tree(store)
    assert pagecache.cached_fraction(store) < 0.5
    prepare.fill_cache(store)
    assert pagecache.cached_fraction(store) == 1.0


def test_keep_going_follows_count_and_budget():
    now = time.perf_counter_ns()
    long_ago = now - 10 * 10**9
    assert job_rows.keep_going(0, long_ago, 5, 0.0)  # the first repetition always runs
    assert job_rows.keep_going(1, now, 5, 3.0)
    assert not job_rows.keep_going(1, long_ago, 5, 3.0)  # budget spent
    assert not job_rows.keep_going(5, now, 5, 100.0)  # count reached
    assert not job_rows.keep_going(1, now, 1, 100.0)


@pytest.mark.parametrize("method", METHODS)
def test_repeat_store_replaces_older_store(method, tmp_path, data, env):
    images, labels = data
    store_dir = tmp_path / "store"
    (big,) = measure.run_store(Point(method, fsync="none"), data, store_dir, env=env)
    (store_dir / "stale.txt").write_text("left over")
    few_images, few_labels = images[:5].copy(), labels[:5].copy()
    (small,) = measure.run_store(
        Point(method, repeat=2, fsync="none"), (few_images, few_labels), store_dir, env=env
    )
    assert not (store_dir / "stale.txt").exists()
    assert small["cutoff"] == 5
    assert small["bytes_apparent"] < big["bytes_apparent"]
    files = fsutil.store_files(store_dir)
    assert small["n_files"] == len(files)
    if method == "png":
        expected = {f"{i}.png" for i in range(5)} | {"labels.csv", "format.json"}
        assert {path.name for path in files} == expected
    got_images, got_labels = get_method(method).read(store_dir)
    assert len(got_images) == 5 and len(got_labels) == 5
    np.testing.assert_array_equal(got_images, few_images)
    (row,) = measure.run_read(
        Point(method, repeat=2, fsync="none", cache="cold"),
        (few_images, few_labels),
        store_dir,
        env=env,
    )
    assert row["images_read"] == 5
    # Neither the warm-up scratch store nor the page-cache scratch file is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


# --- reads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_whole_read(method, cache, stores, data, env):
    store_dir, _ = stores[method]
    row = read_one(method, store_dir, data, env, cache=cache, repeat=3)
    check_common(row, env)
    assert row["operation"] == "read"
    assert row["cache"] == cache
    assert row["eviction"] == ("fadvise" if cache == "cold" else "none")
    assert row["read_pattern"] == "whole" and row["readers"] == 1
    assert row["readahead"] == "on"
    assert row["batch_size"] == "" and row["seed"] == ""
    assert row["cutoff"] == COUNT == row["images_read"]
    assert row["repeat"] == 3
    assert row["fsync"] == "per_file"
    assert math.isnan(row["write_seconds"]) and math.isnan(row["flush_seconds"])
    # The whole-store read is one call: no per-request latencies.
    assert math.isnan(row["latency_p50_us"])
    if not cache_reported(row):
        unavailable("this platform cannot report page-cache residency (no mincore)")
    if cache == "cold":
        assert row["cached_fraction"] < 0.05
    else:
        assert row["cached_fraction"] > 0.5


@pytest.mark.parametrize(
    "kwargs", [{"readers": 2}, {"readahead": "off"}], ids=["2-readers", "readahead-off"]
)
def test_whole_read_is_one_process_with_readahead(kwargs, stores, data, env):
    store_dir, _ = stores["npy"]
    with pytest.raises(ValueError, match="the whole read runs in one process"):
        read("npy", store_dir, data, env, pattern="whole", **kwargs)


# Every request pattern goes through forked readers, also with one reader.
PATTERN_READERS = [
    ("sequential", 1),
    ("sequential", 2),
    ("shuffled", 1),
    ("shuffled", 2),
    ("buffered_shuffle", 1),
    ("buffered_shuffle", 2),
    ("random_single", 1),
    ("random_single", 2),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("pattern", "readers"), PATTERN_READERS)
def test_patterns_and_readers(method, pattern, readers, stores, data, env, monkeypatch):
    store_dir, _ = stores[method]
    calls = []
    real_read_in_workers = timed_reads.read_in_workers

    def recording(*args, **kwargs):
        calls.append(kwargs["readahead"])
        return real_read_in_workers(*args, **kwargs)

    monkeypatch.setattr(timed_reads, "read_in_workers", recording)
    row = read_one(
        method,
        store_dir,
        data,
        env,
        pattern=pattern,
        readers=readers,
        batch_size=BATCH,
        random_reads=RANDOM_READS,
        shuffle_buffer=5,
        seed=7,
    )
    assert calls == [True]  # through the workers, even with one reader
    check_common(row, env)
    assert row["read_pattern"] == pattern
    assert row["readers"] == readers
    assert row["readahead"] == "on" and row["eviction"] == "fadvise"
    if pattern == "random_single":
        assert row["images_read"] == RANDOM_READS
        assert row["batch_size"] == ""
    else:
        assert row["images_read"] == COUNT
        assert row["batch_size"] == BATCH
    assert row["seed"] == ("" if pattern == "sequential" else 7)
    assert row["shuffle_buffer"] == (5 if pattern == "buffered_shuffle" else "")
    p50, p95, p99, p_max = (row[f"latency_{name}_us"] for name in ("p50", "p95", "p99", "max"))
    assert 0 < p50 <= p95 <= p99 <= p_max
    if cache_reported(row):
        assert row["cached_fraction"] < 0.05


@pytest.mark.parametrize("method", METHODS)
def test_readahead_off_reaches_the_forked_readers(method, stores, data, env, monkeypatch, tmp_path):
    """With readahead off every reader process opens the store advised of random access."""
    store_dir, _ = stores[method]
    module = get_method(method)
    real_open = module.open_reader
    log = tmp_path / "opens.txt"

    def logging_open(path, *, readahead=True):
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()} {readahead}\n")
        return real_open(path, readahead=readahead)

    monkeypatch.setattr(module, "open_reader", logging_open)  # inherited by the fork
    row = read_one(
        method,
        store_dir,
        data,
        env,
        pattern="random_single",
        readahead="off",
        readers=2,
        random_reads=RANDOM_READS,
    )
    assert row["readahead"] == "off"
    opens = [line.split() for line in log.read_text().splitlines()]
    in_workers = {pid for pid, _ in opens if int(pid) != os.getpid()}
    assert len(in_workers) == 2  # each reader: its warm-up, the timed pass, the checks
    assert all(flag == "False" for _, flag in opens)  # the warm-ups' too


def test_warm_pattern_read_fills_cache_first(stores, data, env):
    store_dir, _ = stores["npy"]
    row = read_one("npy", store_dir, data, env, cache="warm", pattern="shuffled", batch_size=BATCH)
    assert row["eviction"] == "none"
    if not cache_reported(row):
        unavailable("this platform cannot report page-cache residency (no mincore)")
    assert row["cached_fraction"] > 0.5


def test_bad_cache_pattern_readahead_and_eviction(stores, data, env):
    store_dir, _ = stores["npy"]
    with pytest.raises(ValueError, match="cache must be one of"):
        read("npy", store_dir, data, env, cache="lukewarm")
    with pytest.raises(ValueError, match="read pattern 'backwards' has no requests"):
        read("npy", store_dir, data, env, pattern="backwards")
    with pytest.raises(ValueError, match="readahead must be one of"):
        read("npy", store_dir, data, env, pattern="shuffled", readahead=False)
    with pytest.raises(ValueError, match="cold must be one of fadvise, drop_caches, not 'hot'"):
        read("npy", store_dir, data, env, eviction="hot")
    with pytest.raises(ValueError, match="cold must be one of"):
        prepare.evict(store_dir, "hot")


def test_cold_read_with_drop_caches(stores, data, env):
    """Root may drop the whole page cache: the row names that eviction."""
    if not fsutil.can_drop_caches():
        unavailable("not root: /proc/sys/vm/drop_caches is not writable")
    store_dir, _ = stores["npy"]
    for pattern in ("whole", "random_single"):
        row = read_one(
            "npy", store_dir, data, env, eviction="drop_caches", pattern=pattern, random_reads=5
        )
        assert row["eviction"] == "drop_caches"
        assert row["cache"] == "cold"
        assert row["cached_fraction"] < 0.05


# --- verification --------------------------------------------------------------------------

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


def rewrite_with_image_3_inverted(method):
    """A store of the same images but image 3 inverted, written by the method itself in
    place of the measured one (for formats whose bytes cannot be patched in place:
    encoded members of a tar shard, Parquet pages, compressed chunks)."""

    def corrupt(store_dir, images):
        changed = images.copy()
        changed[3] = 255 - images[3]
        labels = get_method(method).read(store_dir)[1]
        fsutil.remove_tree(store_dir)
        store_dir.mkdir()
        methods.store(method, store_dir, changed, labels)

    return corrupt


CORRUPT = {"png": corrupt_png, "npy": corrupt_npy, "hdf5": corrupt_hdf5, "lmdb": corrupt_lmdb}
CORRUPT.update({m: rewrite_with_image_3_inverted(m) for m in METHODS if m not in CORRUPT})


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("pattern", "readers"), [("whole", 1), ("shuffled", 1), ("shuffled", 2)])
def test_corrupted_store_fails_verification(method, pattern, readers, tmp_path, data, env):
    images, labels = data
    store_dir = tmp_path / "store"
    measure.run_store(Point(method, fsync="none"), data, store_dir, env=env)
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
    measure.run_store(Point("png", fsync="none"), data, store_dir, env=env)
    lines = (store_dir / "labels.csv").read_text().splitlines()
    index, label = lines[5].split(",")
    lines[5] = f"{index},{(int(label) + 1) % 10}"
    (store_dir / "labels.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(measure.VerificationError, match="labels differ"):
        read("png", store_dir, data, env)


def test_verify_reports_shape_mismatch(data):
    images, labels = data
    with pytest.raises(measure.VerificationError, match="19 images, expected 20"):
        verification.verify_whole("npy", (images[:-1], labels[:-1]), images)
    with pytest.raises(measure.VerificationError, match="expected uint8"):
        verification.verify("npy", (images[:, :16], labels), images, labels)
    with pytest.raises(measure.VerificationError, match="image 4 differs"):
        verification.verify("npy", (images[[2, 3, 5]], labels[[2, 3, 4]]), images, labels, start=2)
    with pytest.raises(measure.VerificationError, match="labels differ"):
        verification.verify("npy", (images[[4, 0]], labels[[4, 1]]), images, labels, indices=[4, 0])
    verification.verify("npy", (images.copy(), labels.copy()), images, labels)  # equal: no error
    verification.verify("npy", (images[5:9], labels[5:9]), images, labels, start=5)
    verification.verify(
        "npy", (images[[9, 2, 9]], labels[[9, 2, 9]]), images, labels, indices=[9, 2, 9]
    )


def test_checking_many_batches_at_once_checks_each_one(data, tmp_path):
    """``RequestCheck.many`` compares many batches in one go, yet names the image that
    differs, refuses a batch that is not a fresh array and one of the wrong shape, as
    checking them one by one does."""
    images, labels = data
    source = pool.tile(images, labels, len(images))
    check = verification.request_check("npy", source)
    requests = [np.array([i]) for i in (3, 7, 7, 0)] + [np.array([1, 2])]
    pairs = [((images[r].copy(), labels[r].copy()), r) for r in requests]
    check.many(pairs)  # all right
    wrong = [*pairs]
    wrong[2] = ((images[[8]].copy(), labels[[7]].copy()), requests[2])
    with pytest.raises(measure.VerificationError, match="image 7 differs"):
        check.many(wrong)
    path = tmp_path / "mapped.npy"
    np.save(path, images)
    mapped = np.load(path, mmap_mode="r")
    viewed = [*pairs]
    viewed[1] = ((mapped[7:8], labels[[7]].copy()), requests[1])  # a view of the map
    with pytest.raises(measure.VerificationError, match="fresh array"):
        check.many(viewed)
    short = [*pairs]
    short[4] = ((images[[1]].copy(), labels[[1]].copy()), requests[4])
    with pytest.raises(measure.VerificationError, match=r"images uint8\(1, 32, 32, 3\)"):
        check.many(short)


def test_the_check_pass_checks_small_batches_together_and_large_ones_alone(data):
    """Single images go to ``check.many`` in bundles of at most ``CHECK_HELD_BYTES``; a
    batch of ``CHECK_BULK_BELOW_BYTES`` or more is checked on its own; every one once."""
    images, labels = data
    source = pool.tile(images, labels, len(images))
    real = verification.request_check("npy", source)
    calls = {"one": 0, "many": []}

    class Counting:
        def __call__(self, batch, request):
            calls["one"] += 1
            real(batch, request)

        def many(self, pairs):
            calls["many"].append(len(pairs))
            real.many(pairs)

    class Reader:
        def get(self, request):
            return source.take(request), source.labels[request]

        def close(self):
            pass

    module = SimpleNamespace(__name__="npy", open_reader=lambda store, readahead: Reader())
    big = int(np.ceil(readers.CHECK_BULK_BELOW_BYTES / images[0].nbytes))
    requests = [np.array([i % COUNT]) for i in range(12)] + [np.arange(big) % COUNT]
    readers.checked_requests(module, Path("."), requests, True, Counting())
    assert calls["one"] == 1 and sum(calls["many"]) == 12


CHECK_S = 1.0


@pytest.mark.parametrize(
    ("pattern", "readers"),
    [("whole", 1), ("random_single", 1), ("shuffled", 1), ("random_single", 3)],
)
def test_verification_is_outside_the_clock(
    pattern, readers, stores, data, env, monkeypatch, tmp_path
):
    """A check that burns CPU for CHECK_S seconds must not show in the read time, whether
    it runs in this process (whole) or in the forked readers (which inherit the patch)."""
    store_dir, _ = stores["npy"]
    log = tmp_path / "checks.txt"
    real_verify = verification.verify

    checked_here = set()  # a forked reader starts with the parent's (empty) set

    def slow_verify(method, got, source, *args, **kwargs):
        # the warm-up's one-image store stays quick; one slow check per process
        if len(source) > 1 and os.getpid() not in checked_here:
            checked_here.add(os.getpid())
            busy_cpu(CHECK_S)
            with open(log, "a") as handle:
                handle.write(f"{os.getpid()}\n")
        real_verify(method, got, source, *args, **kwargs)

    monkeypatch.setattr(verification, "verify", slow_verify)
    began = time.monotonic()
    row = read_one(
        "npy",
        store_dir,
        data,
        env,
        pattern=pattern,
        readers=readers,
        random_reads=RANDOM_READS,
        batch_size=BATCH,
    )
    took = time.monotonic() - began
    checkers = [int(pid) for pid in log.read_text().split()]
    if pattern == "whole":
        assert checkers == [os.getpid()]
    else:  # every reader checked (its part of) its share in its own process, and the
        # checker processes forked for the cores the readers leave free the rest
        parts = max(1, min(os.cpu_count() or 1, 4) // readers)
        assert len(checkers) == readers * parts and os.getpid() not in checkers
    assert took > CHECK_S  # the checks really ran during the job
    assert row["seconds"] < CHECK_S / 2, row["seconds"]


# --- the parallel harness ------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_more_readers_than_requests(method, tmp_path):
    """One image, three readers: two of them get nothing to read; the row is still whole.
    A minimal environment (host and file-system type) is enough for a row."""
    minimal_env = {"host": "testhost", "store_fs_type": "testfs"}
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(1, 32, 32, 3), dtype=np.uint8)
    labels = np.array([3], dtype=np.uint8)
    store_dir = tmp_path / "store"
    measure.run_store(Point(method, fsync="none"), (images, labels), store_dir, env=minimal_env)
    for pattern, expected_reads in (("sequential", 1), ("shuffled", 1), ("random_single", 2)):
        point = Point(
            method,
            fsync="none",
            cache="warm",
            pattern=pattern,
            readers=3,
            batch_size=8,
            random_reads=2,
        )
        (row,) = measure.run_read(point, (images, labels), store_dir, env=minimal_env)
        assert row["images_read"] == expected_reads
        assert row["readers"] == 3
        assert row["host"] == "testhost" and row["store_fs_type"] == "testfs"
        assert row["cpu_count"] is None
        assert row["latency_p50_us"] > 0


BARRIER_TIMEOUT_S = 10.0
PROMPT_S = 5.0


@pytest.fixture
def short_barrier_timeout(monkeypatch):
    """Readers that never reach a barrier fail the job after BARRIER_TIMEOUT_S instead of
    10 minutes; a prompt failure is one well before that."""
    monkeypatch.setattr(
        timed_reads,
        "read_in_workers",
        functools.partial(timed_reads.read_in_workers, timeout_s=BARRIER_TIMEOUT_S),
    )


def test_failing_reader_process_fails_the_read(data, env, tmp_path, short_barrier_timeout):
    """A worker that cannot open the store reports its error; the parent raises."""
    missing = tmp_path / "no-such-store"
    missing.mkdir()
    began = time.monotonic()
    with pytest.raises(measure.VerificationError, match=r"npy reader failed: FileNotFound"):
        read("npy", missing, data, env, pattern="shuffled", readers=2, batch_size=BATCH)
    assert time.monotonic() - began < PROMPT_S


def test_reader_process_killed_by_a_signal_fails_the_read_promptly(
    data, env, stores, monkeypatch, short_barrier_timeout
):
    """A reader that dies without reporting (a segfault in a C library, the OOM killer)
    fails the job within seconds instead of leaving the parent waiting at a barrier."""
    store_dir, _ = stores["npy"]
    module = get_method("npy")
    real_open = module.open_reader

    def open_and_die(path, *, readahead=True):
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_open(path, readahead=readahead)

    parent = os.getpid()
    monkeypatch.setattr(module, "open_reader", open_and_die)  # inherited by the fork
    began = time.monotonic()
    with pytest.raises(measure.VerificationError, match=r"died without reporting.*-9"):
        read("npy", store_dir, data, env, pattern="shuffled", readers=2, batch_size=BATCH)
    assert time.monotonic() - began < PROMPT_S


def test_reader_killed_before_the_start_fails_the_read_promptly(
    data, env, stores, monkeypatch, short_barrier_timeout
):
    """A reader killed before it reaches the ready barrier: the others and the parent must
    not wait out the barrier's timeout."""
    store_dir, _ = stores["npy"]
    real_get_method = readers.get_method
    parent = os.getpid()

    def get_method_dying_in_workers(name):
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_get_method(name)

    monkeypatch.setattr(readers, "get_method", get_method_dying_in_workers)
    began = time.monotonic()
    with pytest.raises(measure.VerificationError, match=r"died without reporting.*-9"):
        read("npy", store_dir, data, env, pattern="random_single", readers=2, random_reads=4)
    assert time.monotonic() - began < PROMPT_S


def test_reader_failing_before_the_start_releases_the_others(
    data, env, stores, monkeypatch, short_barrier_timeout
):
    """A worker that fails before the common start breaks the barrier at once, and the
    parent reports that worker's error rather than waiting out the start timeout."""
    store_dir, _ = stores["npy"]
    real_get_method = readers.get_method
    parent = os.getpid()

    def get_method_failing_in_workers(name):
        if os.getpid() != parent:
            raise RuntimeError("cannot import the method in the worker")
        return real_get_method(name)

    monkeypatch.setattr(readers, "get_method", get_method_failing_in_workers)
    began = time.monotonic()
    with pytest.raises(
        measure.VerificationError, match="npy reader failed: RuntimeError: cannot import"
    ):
        read("npy", store_dir, data, env, pattern="shuffled", readers=2, batch_size=BATCH)
    assert time.monotonic() - began < PROMPT_S


def test_clock_ends_when_the_last_reader_finished_not_when_the_parent_noticed(
    stores, data, monkeypatch
):
    """On a busy machine (N readers on fewer cores) the parent may run again long after the
    readers finished; the time runs from the release to the last reader's own finish.
    One reader makes 3 requests of ~0.2 s CPU each; the parent notices 0.5 s late."""
    store_dir, _ = stores["npy"]
    images, labels = data
    module = get_method("npy")
    real_open = module.open_reader

    class SlowReader:
        def __init__(self, reader):
            self.reader = reader

        def get(self, indices):
            busy_cpu(0.2)
            return self.reader.get(indices)

        def close(self):
            self.reader.close()

    def slow_open(path, *, readahead=True):
        return SlowReader(real_open(path, readahead=readahead))

    real_gather = readers._gather

    def parent_notices_late(method, workers, receivers, stage, timeout_s):
        if stage == "timed":
            time.sleep(0.5 + 0.6)  # the readers finish after about 0.6 s
        return real_gather(method, workers, receivers, stage, timeout_s)

    monkeypatch.setattr(module, "open_reader", slow_open)
    monkeypatch.setattr(readers, "_gather", parent_notices_late)
    shares = access.split(access.random_single(COUNT, 3, seed=0), 1)
    latencies, timed = timed_reads.read_in_workers(
        "npy", store_dir, shares, images, labels, readahead=True
    )
    assert len(latencies) == 3 and latencies.min() >= 0.2e9
    # one reader: its requests ran back to back inside the timed region ...
    assert timed.elapsed_ns >= latencies.sum(), (timed.elapsed_ns, latencies.sum())
    # ... and the region ended with them, not when the parent looked
    assert timed.elapsed_ns < latencies.sum() + 0.4e9, (timed.elapsed_ns, latencies.sum())


# --- warm-up -------------------------------------------------------------------------------


def test_warm_up_exercises_the_method_before_the_first_timed_region(
    tmp_path, data, env, monkeypatch
):
    images, labels = data
    module = get_method("hdf5")
    store_dir = tmp_path / "store"
    seen = {"store": [], "open_reader": 0, "read": 0}
    at_first_timed = {}
    real_store, real_open, real_read = module.store, module.open_reader, module.read
    real_enter = region.Region.__enter__

    def store(path, imgs, lbls, **kwargs):
        seen["store"].append((Path(path), len(imgs)))
        return real_store(path, imgs, lbls, **kwargs)

    def open_reader(path, **kwargs):
        seen["open_reader"] += 1
        return real_open(path, **kwargs)

    def read_whole(path):
        seen["read"] += 1
        return real_read(path)

    def note(kind):
        at_first_timed.setdefault(
            kind,
            {
                "store": list(seen["store"]),
                "open_reader": seen["open_reader"],
                "read": seen["read"],
            },
        )

    def enter(self):
        note(self.work)
        return real_enter(self)

    monkeypatch.setattr(module, "store", store)
    monkeypatch.setattr(module, "open_reader", open_reader)
    monkeypatch.setattr(module, "read", read_whole)
    monkeypatch.setattr(region.Region, "__enter__", enter)

    one_image, one_label = images[:1].copy(), labels[:1].copy()
    measure.run_store(Point("hdf5", fsync="none"), (one_image, one_label), store_dir, env=env)
    before = at_first_timed[region.HERE]
    # Before the first timed store: one one-image store in a scratch beside the store,
    # read back whole and through a reader.
    assert len(before["store"]) == 1
    ((scratch, stored),) = before["store"]
    assert stored == 1 and scratch != store_dir
    assert scratch.parent == store_dir.parent and scratch.name.startswith("store.warmup-")
    assert before["open_reader"] >= 1 and before["read"] >= 1
    assert not scratch.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]

    at_first_timed.clear()
    seen.update(store=[], open_reader=0, read=0)
    read(
        "hdf5",
        store_dir,
        (one_image, one_label),
        env,
        cache="cold",
        pattern="random_single",
        random_reads=3,
    )
    before = at_first_timed[region.IN_READERS]
    assert len(before["store"]) == 1 and before["store"][0][0].name.startswith("store.warmup-")
    assert before["open_reader"] >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_warm_up_scratch_is_removed_when_it_fails(tmp_path, data, monkeypatch):
    images, labels = data
    module = get_method("npy")
    scratch = tmp_path / "store.warmup-1"

    def failing_read(path):
        raise OSError("disk on fire")

    monkeypatch.setattr(module, "read", failing_read)
    with pytest.raises(OSError, match="disk on fire"):
        prepare.warm_up(
            module,
            pool.tile(images, labels, len(images)),
            scratch,
            options=None,
            flush="none",
            readahead="on",
        )
    assert not scratch.exists()


# --- bytes from the device -----------------------------------------------------------------

BIG_COUNT = 5000  # ~15 MB of 32x32 images: an npy store of ~15 MB, an LMDB one of ~20 MB


def need_proc_io():
    if machine.io_read_bytes() is None:
        unavailable("/proc/self/io is missing: this kernel cannot count a process's I/O")


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    rng = np.random.default_rng(99)
    images = rng.integers(0, 256, size=(BIG_COUNT, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=BIG_COUNT, dtype=np.uint8)
    env = {"host": "testhost", "store_fs_type": "testfs"}
    root = tmp_path_factory.mktemp("big")
    made = {}
    for method in ("npy", "lmdb"):
        measure.run_store(Point(method, fsync="none"), (images, labels), root / method, env=env)
        made[method] = root / method
    return made, images, labels, env


@pytest.mark.parametrize("method", ["npy", "lmdb"])
def test_whole_read_counts_device_bytes(method, big):
    need_proc_io()
    made, images, labels, env = big
    store_dir = made[method]
    on_disk = fsutil.disk_usage(store_dir).bytes_on_disk
    (cold,) = measure.run_read(Point(method, cache="cold"), (images, labels), store_dir, env=env)
    (warm,) = measure.run_read(Point(method, cache="warm"), (images, labels), store_dir, env=env)
    assert cold["bytes_on_disk"] == on_disk
    assert cold["device_read_bytes"] >= 0.5 * on_disk, cold["device_read_bytes"]
    assert warm["device_read_bytes"] < 0.05 * on_disk, warm["device_read_bytes"]


@pytest.mark.parametrize("method", ["npy", "lmdb"])
def test_one_job_runs_a_store_s_reads_each_from_its_own_state(method, big):
    """``run_reads``: the reads of a store in one process, in the order given; each
    starts from its own prepared state (a warm read after a cold one finds the store
    filled; a cold one after a warm one finds it evicted), has its own repetitions and
    its own memory peak, and its rows name it."""
    need_proc_io()
    made, images, labels, env = big
    store_dir = made[method]
    on_disk = fsutil.disk_usage(store_dir).bytes_on_disk
    kinds = [
        dict(cache="warm", pattern="whole"),
        dict(cache="cold", pattern="whole"),
        dict(cache="cold", pattern="random_single", random_reads=200, readahead="off"),
        dict(cache="warm", pattern="random_single", random_reads=200),
    ]
    points = [Point(method, **kind) for kind in kinds]
    seen = []
    rows = measure.run_reads(
        points,
        (images, labels),
        store_dir,
        env=env,
        settings=Settings(inner_repeats=2, inner_budget_s=60, rigor="fast"),
        after_point=lambda point, done: seen.append((point, len(done))),
    )
    assert seen == [(point, 2) for point in points]
    assert len(rows) == 2 * len(points)
    for kind, (first, second) in zip(kinds, zip(rows[::2], rows[1::2], strict=True), strict=True):
        for row in (first, second):
            assert (row["cache"], row["read_pattern"]) == (kind["cache"], kind["pattern"])
            assert row["readahead"] == kind.get("readahead", "on")
            assert row["rigor"] == "fast"
            if kind["cache"] == "cold":
                assert row["cached_fraction"] < 0.05
            else:
                assert row["cached_fraction"] > 0.95
                assert row["device_read_bytes"] < 0.05 * on_disk
        assert (first["inner_repeat"], second["inner_repeat"]) == (1, 2)
    # The cold whole read after the warm one fetched the store from the device.
    assert rows[2]["device_read_bytes"] >= 0.5 * on_disk
    # Peaks are per read: the random single reads hold far less than the whole reads.
    assert rows[6]["peak_rss_bytes"] < rows[0]["peak_rss_bytes"]
    with pytest.raises(ValueError, match="one store"):
        measure.run_reads(
            [Point(method, cache="warm"), Point(method, cache="warm", variant="other")],
            (images, labels),
            store_dir,
            env=env,
        )


@pytest.mark.parametrize("method", ["npy", "lmdb"])
def test_readahead_off_fetches_fewer_device_bytes(method, big):
    """A few hundred cold single-image reads. LMDB's map: with readahead each fault pulls
    a window of pages, advised of random access each pulls (about) its own pages. npy
    reads a single image with one pread: the kernel sees reads at random offsets and
    reads ahead of none of them, so both fetch about the images' own pages."""
    need_proc_io()
    made, images, labels, env = big
    store_dir = made[method]
    fetched = {}
    for readahead in ("on", "off"):
        point = Point(
            method,
            cache="cold",
            pattern="random_single",
            random_reads=300,
            readahead=readahead,
            seed=3,
        )
        (row,) = measure.run_read(point, (images, labels), store_dir, env=env)
        assert row["readahead"] == readahead and row["eviction"] == "fadvise"
        assert row["cached_fraction"] < 0.05
        fetched[readahead] = row["device_read_bytes"]
    assert fetched["off"] > 0  # a cold read fetches something
    if method == "npy":
        assert fetched["off"] <= fetched["on"] < 1.25 * fetched["off"], fetched
    else:
        assert fetched["off"] * 3 < fetched["on"], fetched


# --- rows and small helpers ----------------------------------------------------------------


def test_write_rows_writes_every_row_with_nan_as_empty(tmp_path, stores, data, env):
    _, (store_row,) = stores["hdf5"]
    read_rows = read(
        "hdf5", stores["hdf5"][0], data, env, cache="warm", inner_repeats=2, inner_budget_s=60
    )
    rows = [store_row, *read_rows]
    path = tmp_path / "rows" / "deep" / "rows.csv"
    measure.write_rows(rows, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["rows.csv"]  # no .tmp left behind
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == measure.ROW_FIELDS
        written = list(reader)
    assert len(written) == 3
    first = written[0]
    for key in ("cached_fraction", "latency_p50_us", "latency_max_us", "batch_size", "seed"):
        assert first[key] == ""
    assert first["method"] == "hdf5" and first["operation"] == "store"
    assert float(first["seconds"]) == store_row["seconds"]
    assert int(first["bytes_on_disk"]) == store_row["bytes_on_disk"]
    assert first["fsync"] == "per_file"
    assert [line["inner_repeat"] for line in written[1:]] == ["1", "2"]
    assert "nan" not in path.read_text().lower()
    # The aggregation reads the empty cells back as missing values.
    table = load.load_rows([path])
    assert len(table) == 3 and table["latency_p50_us"].isna().all()


def test_write_environment_records_env_id(tmp_path, env):
    path = tmp_path / "env" / "environment.json"
    measure.write_environment(env, path)
    environments = load.load_environments([path])
    assert list(environments) == [row_model.environment_id(env)]
    assert environments[row_model.environment_id(env)]["host"] == env["host"]


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_partial(tmp_path, env, monkeypatch):
    """Rows and environment records go through atomic.replacing: a write that fails
    (a full disk) leaves the earlier file as it was and no partial file beside it."""
    path = tmp_path / "job.env.json"
    measure.write_environment(env, path)
    before = path.read_text()

    def no_space(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", no_space)
    with pytest.raises(OSError, match="No space"):
        measure.write_environment({**env, "host": "elsewhere"}, path)
    with pytest.raises(OSError, match="No space"):
        measure.write_rows([], tmp_path / "rows.csv")
    monkeypatch.undo()
    assert path.read_text() == before
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("operation", ["store", "read"])
def test_the_harness_resolves_the_variant_options_once(operation, tmp_path, data, env, monkeypatch):
    """A job resolves its variant's options once; the method's store (the warm-up's and
    every timed one) gets the complete dict and resolves nothing itself."""
    images, labels = data[0][:3], data[1][:3]
    store_dir = tmp_path / "store"
    options = {"chunks": "image"}
    if operation == "read":
        measure.run_store(Point("hdf5", options=options), (images, labels), store_dir, env=env)
    resolved = []
    real_resolve = measure.resolve_options
    monkeypatch.setattr(
        measure,
        "resolve_options",
        lambda module, given: resolved.append(given) or real_resolve(module, given),
    )
    module = get_method("hdf5")
    received = []
    real_store = module.store
    monkeypatch.setattr(
        module,
        "store",
        lambda *args, options: received.append(options) or real_store(*args, options=options),
    )
    common = {"env": env, "settings": Settings(inner_repeats=2)}
    if operation == "store":
        measure.run_store(Point("hdf5", options=options), (images, labels), store_dir, **common)
    else:
        point = Point("hdf5", options=options, cache="warm")
        measure.run_read(point, (images, labels), store_dir, **common)
    assert resolved == [options]
    complete = {
        "chunks": "image",
        "compression": "none",
        "compression_opts": None,
        "read_path": "hyperslabs",
    }
    # The warm-up's one-image store, and for a store job each timed store.
    assert received == [complete] * len(received)
    assert len(received) >= (2 if operation == "store" else 1)


def test_unknown_options_stop_a_store_before_anything_is_written(tmp_path, data, env):
    images, labels = data
    with pytest.raises(ValueError, match="method png has no option level"):
        measure.run_store(
            Point("png", options={"level": 1}), (images, labels), tmp_path / "store", env=env
        )
    assert list(tmp_path.iterdir()) == []


def test_load_source_holds_the_pool_tiled(tmp_path, data):
    images, labels = data
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    source = measure.load_source(tmp_path / "images.npy", tmp_path / "labels.npy", 7)
    assert not isinstance(source.pool, np.memmap)
    np.testing.assert_array_equal(source[0:7], images[:7])
    np.testing.assert_array_equal(source.labels, labels[:7])
    # More images than the pool holds: the pool tiled, image i = pool[i mod 20].
    tiled = measure.load_source(tmp_path / "images.npy", tmp_path / "labels.npy", 45, 8)
    np.testing.assert_array_equal(tiled[44], images[4])
    assert tiled.labels[44] == labels[4] and tiled.chunk_images == 8


def test_timed_disables_gc_only_inside():
    assert gc.isenabled()
    results, timed = region.timed(
        [lambda: gc.isenabled(), lambda: time.sleep(0.01), lambda: "done"]
    )
    assert results == [False, None, "done"]
    marks = [timed.marks_ns[i] for i in range(3)]
    assert marks == sorted(marks) and marks[1] - marks[0] >= 10**7
    assert timed.elapsed_ns == marks[-1]
    assert timed.start_unix <= timed.end_unix
    assert gc.isenabled()


# --- busy means someone else ---------------------------------------------------------------

# Random single-image reads of the 20-image npy store: about 0.3 s for two warm readers,
# long against the 8-17 ms resolution of the foreign CPU time.
FOREIGN_READS = 100_000


def two_reader_read(stores, data, env):
    import pandas as pd

    store_dir, _ = stores["npy"]
    rows = read(
        "npy",
        store_dir,
        data,
        env,
        cache="warm",
        pattern="random_single",
        readers=2,
        random_reads=FOREIGN_READS,
    )
    frame = pd.DataFrame(rows)
    assert frame["foreign_cpu_seconds"].notna().all(), "the region fills foreign_cpu_*"
    assert (frame["foreign_cpu_resolution_seconds"] > 0).all()
    assert (frame["foreign_cpu_span_seconds"] >= frame["seconds"] * 0.5).all()
    return frame


def others_cores(seconds: float = 0.3) -> float:
    """Others' CPU time while this process sleeps, in cores, less its resolution."""
    before = machine.cpu_sample()
    time.sleep(seconds)
    after = machine.cpu_sample()
    foreign, resolution = machine.foreign_cpu(before, after)
    return (foreign - resolution) / ((after.wall_ns - before.wall_ns) / 1e9)


def test_a_read_beside_a_while_true_process_is_busy_and_alone_is_not(stores, data, env):
    """Busy means someone else: a 2-reader read beside a ``while True: pass`` process is
    flagged by ``busy.busy_rows``; the same read alone is not, its readers being its
    own. Others' tests may share the machine: a read alone counts only where the machine
    was quiet just before and after it (others below the threshold), it gets up to five
    tries, and the test skips (fails on CI) if the machine was never quiet. A job that
    counted its own readers as foreign would be flagged on every quiet try."""
    if machine.machine_cpu_source() is None:
        unavailable("no machine-wide CPU counter (/proc/stat)")
    stranger = start_stranger()
    try:
        time.sleep(0.05)
        beside = two_reader_read(stores, data, env)
    finally:
        os.kill(stranger, signal.SIGKILL)
    assert busy_rule.busy_rows(beside).all(), beside["foreign_cpu_seconds"].tolist()
    threshold = busy_rule.DEFAULT_BUSY["foreign_cpu_cores"]
    flagged_when_quiet = []
    for _ in range(5):
        quiet_before = others_cores() <= threshold
        alone = two_reader_read(stores, data, env)
        if not (quiet_before and others_cores() <= threshold):
            continue  # others ran around this try: it tells nothing
        flagged_when_quiet.append(alone["foreign_cpu_seconds"].tolist())
        if not busy_rule.busy_rows(alone).any():
            return
    if not flagged_when_quiet:
        unavailable("others kept the machine busy around every try of the read alone")
    pytest.fail(f"the read alone was flagged on every quiet try: {flagged_when_quiet}")
