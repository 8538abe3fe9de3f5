"""The lmdb method (one key per image, one write transaction per chunk): its package and C
library, what a value holds, commit-time sync, the map's growth, its transactions and the
random-access advice on its memory map."""

from __future__ import annotations

import pickle

import lmdb
import numpy as np
import pytest
from method_helpers import (
    assert_packages,
    assert_same,
    epoch,
    random_set,
    reader_get,
    store_fresh,
)

from imgbench.data.pool import tile
from imgbench.methods import lmdb as lmdb_method


def pool_set(count: int = 7, size: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)
    labels = rng.permutation(np.arange(count) % 256).astype(np.uint8)  # distinct labels
    return images, labels


def test_lmdb_declares_its_package_and_reports_the_lmdb_c_library():
    assert_packages(lmdb_method, ("lmdb",), ["lmdb_c"])


@pytest.mark.parametrize("value_format", ["raw", "pickle"])
def test_lmdb_value_format_is_what_is_stored(value_format, tmp_path):
    images, labels = random_set(4, seed=8)
    options = {"value_format": value_format}
    store_dir = store_fresh("lmdb", tmp_path / "store", images, labels, options)
    env = lmdb.open(str(store_dir), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            keys = [key for key, _ in txn.cursor()]
            value = txn.get(lmdb_method.image_key(2))
    finally:
        env.close()
    assert keys == [lmdb_method.image_key(i) for i in range(4)] + [
        lmdb_method.LABELS_KEY,
        lmdb_method.META_KEY,
    ]
    if value_format == "raw":
        assert value == images[2].tobytes()
    else:
        # Unpickling our own test store is safe; the article's value object comes back.
        record = pickle.loads(value)
        assert isinstance(record, lmdb_method.CIFAR_Image)
        assert record.label == int(labels[2])
        assert np.array_equal(record.get_image(), images[2])


@pytest.mark.parametrize(("sync_option", "expected"), [(None, False), (False, False), (True, True)])
def test_lmdb_syncs_at_commit_only_when_asked(sync_option, expected, tmp_path, monkeypatch):
    """``sync: null`` (the default) and ``false``: no commit-time sync, the harness flushes;
    ``true``: LMDB's own fdatasync at commit, counted as writing."""
    seen = []
    synced = []
    real_open = lmdb.open

    class RecordingEnv:
        def __init__(self, env):
            self.env = env

        def sync(self, force=False):
            synced.append(force)
            return self.env.sync(force)

        def __getattr__(self, name):
            return getattr(self.env, name)

    def recording_open(path, **kwargs):
        seen.append(kwargs)
        return RecordingEnv(real_open(path, **kwargs))

    monkeypatch.setattr(lmdb, "open", recording_open)
    images, labels = random_set(3)
    options = {"sync": sync_option, "writemap": True}
    store_dir = store_fresh("lmdb", tmp_path / "store", images, labels, options)
    assert seen[0]["sync"] is expected
    assert seen[0]["metasync"] is expected
    assert seen[0]["writemap"] is True
    assert synced == ([True] if expected else [])
    monkeypatch.undo()
    assert_same(lmdb_method.read(store_dir), images, labels)


@pytest.mark.parametrize("writemap", [False, True])
@pytest.mark.parametrize("value_format", ["raw", "pickle"])
def test_lmdb_grows_the_map_when_full(writemap, value_format, tmp_path, monkeypatch):
    attempts = []
    real_write = lmdb_method._write

    def counting_write(env, items):
        attempts.append(env.info()["map_size"])
        try:
            return real_write(env, items)
        except lmdb.MapFullError:
            attempts.append("full")
            raise

    # A map far too small for 37 images of 3 KB each: the first transactions must fail.
    monkeypatch.setattr(lmdb_method, "estimate_map_size", lambda images, labels: 16384)
    monkeypatch.setattr(lmdb_method, "_write", counting_write)
    images, labels = random_set(37, seed=9)
    options = {"value_format": value_format, "writemap": writemap}
    store_dir = store_fresh("lmdb", tmp_path / "store", images, labels, options)
    assert "full" in attempts, "the tiny map did not overflow; the test proves nothing"
    sizes = [size for size in attempts if size != "full"]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]
    # One array in one piece: one images transaction (retried until it fit) + metadata.
    assert attempts[-1] != "full" and attempts[-2] != "full"
    assert len(sizes) == attempts.count("full") + 2
    assert_same(lmdb_method.read(store_dir), images, labels)
    indices = [36, 0, 18, 18]
    assert_same(reader_get("lmdb", store_dir, indices), images[indices], labels[indices])


def test_lmdb_map_estimate_fits_without_growth(tmp_path, monkeypatch):
    """The estimate itself is big enough: no MapFullError for a normal store, whether
    written in one piece or chunk by chunk (one transaction per chunk)."""
    attempts = []
    real_write = lmdb_method._write

    def counting_write(env, items):
        try:
            real_write(env, items)
        except lmdb.MapFullError:
            attempts.append("full")
            raise
        attempts.append(1)

    monkeypatch.setattr(lmdb_method, "_write", counting_write)
    chunks = len(list(tile(*random_set(40, 32), 200, chunk_images=9).chunk_bounds()))
    for size in (32, 64):
        images, labels = random_set(40, size, seed=size)
        store_fresh("lmdb", tmp_path / f"s{size}", images, labels, {"value_format": "raw"})
        stream = tile(images, labels, 200, chunk_images=9)
        store_fresh("lmdb", tmp_path / f"t{size}", stream, stream.labels, {"value_format": "raw"})
    # In one piece: images + metadata; 200 images of a 40-image pool in chunks of at most
    # 9 (cut at the pool's end): one transaction per chunk + metadata.
    assert attempts == ([1] * 2 + [1] * (chunks + 1)) * 2
    images, labels = random_set(0)
    assert lmdb_method.estimate_map_size(images, labels) >= lmdb_method.MIN_MAP_SIZE
    stream = tile(*random_set(3, 64), 1000)
    assert lmdb_method.estimate_map_size(stream, stream.labels) == lmdb_method.map_bytes(
        1000, 64 * 64 * 3, 1000
    )


def test_lmdb_read_batches_refuses_a_store_missing_images(tmp_path):
    pool_images, pool_labels = pool_set(seed=9)
    store_dir = store_fresh("lmdb", tmp_path / "store", pool_images, pool_labels)
    env = lmdb.open(str(store_dir))
    try:
        with env.begin(write=True) as txn:
            assert txn.delete(lmdb_method.image_key(5))
    finally:
        env.close()
    with pytest.raises(ValueError, match="no image 5, its metadata says 7"):
        epoch("lmdb", store_dir, 3)


def test_lmdb_commits_one_transaction_per_chunk(tmp_path, monkeypatch):
    """A stream of 50 images in chunks of at most 4 (cut at the pool's end) is one image
    transaction per chunk, each holding its chunk's keys only, then one for labels and
    metadata."""
    real_open = lmdb.open
    transactions = []

    class CountingEnv:
        def __init__(self, env):
            self.env = env

        def begin(self, *args, write=False, **kwargs):
            txn = self.env.begin(*args, write=write, **kwargs)
            if write:
                transactions.append(txn)
            return txn

        def __getattr__(self, name):
            return getattr(self.env, name)

    monkeypatch.setattr(lmdb, "open", lambda *a, **k: CountingEnv(real_open(*a, **k)))
    pool_images, pool_labels = pool_set(seed=10)
    stream = tile(pool_images, pool_labels, 50, chunk_images=4)
    store_dir = store_fresh("lmdb", tmp_path / "store", stream, stream.labels)
    monkeypatch.undo()
    assert len(transactions) == len(list(stream.chunk_bounds())) + 1
    images, labels = lmdb_method.read(store_dir)
    assert stream.matches(0, images) is None
    assert np.array_equal(labels, stream.labels)


@pytest.mark.parametrize("writemap", [False, True])
def test_lmdb_map_growth_retries_only_the_failed_chunk(writemap, tmp_path, monkeypatch):
    written = []  # the keys each transaction attempt wrote, and whether it committed
    real_write = lmdb_method._write

    def recording_write(env, items):
        keys = [key for key, _ in items()]
        try:
            real_write(env, items)
        except lmdb.MapFullError:
            written.append((keys[0], keys[-1], "full"))
            raise
        written.append((keys[0], keys[-1], "ok"))

    monkeypatch.setattr(lmdb_method, "estimate_map_size", lambda images, labels: 16384)
    monkeypatch.setattr(lmdb_method, "_write", recording_write)
    pool_images, pool_labels = pool_set(size=32, seed=11)  # 3 KB values
    stream = tile(pool_images, pool_labels, 40, chunk_images=8)
    options = {"writemap": writemap}
    store_dir = store_fresh("lmdb", tmp_path / "store", stream, stream.labels, options)
    assert any(status == "full" for *_, status in written), "the map never filled"
    committed = [(first, last) for first, last, status in written if status == "ok"]
    key = lmdb_method.image_key
    assert committed == [(key(a), key(b - 1)) for a, b in stream.chunk_bounds()] + [
        (lmdb_method.LABELS_KEY, lmdb_method.META_KEY)
    ]
    # A failed attempt is retried right away, with the same keys; no earlier chunk again.
    for (first, last, status), following in zip(written, written[1:], strict=False):
        if status == "full":
            assert following[:2] == (first, last)
    images, labels = lmdb_method.read(store_dir)
    assert stream.matches(0, images) is None
    assert np.array_equal(labels, stream.labels)
