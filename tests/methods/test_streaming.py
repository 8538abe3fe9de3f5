"""Streaming stores (chunk by chunk from a tiled pool) and streaming reads (read_batches)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import lmdb
import numpy as np
import pytest

from imgbench import methods
from imgbench.data.pool import tile
from imgbench.methods import available_methods, get_method
from imgbench.methods import lmdb as lmdb_method
from imgbench.methods import npy as npy_method

METHODS = available_methods()
POOL = 7
COUNT = 50


def pool_set(count: int = POOL, size: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)
    labels = rng.permutation(np.arange(count) % 256).astype(np.uint8)  # distinct labels
    return images, labels


def store_fresh(method: str, store_dir: Path, images, labels, *, options=None) -> Path:
    store_dir.mkdir(parents=True)
    methods.store(method, store_dir, images, labels, options)
    return store_dir


def epoch(method: str, store_dir: Path, batch_images: int):
    return list(get_method(method).read_batches(store_dir, batch_images))


class StrictStream:
    """Only the stream interface: no ``__array__``, indexing or iteration over images, so
    a store that tries to build an N-sized array from it fails."""

    def __init__(self, tiled):
        self._tiled = tiled
        self.shape = tiled.shape
        self.dtype = tiled.dtype
        self.nbytes = tiled.nbytes
        self.labels = tiled.labels
        self.chunks_taken = 0

    def __len__(self) -> int:
        return len(self._tiled)

    def iter_chunks(self):
        for chunk in self._tiled.iter_chunks():
            self.chunks_taken += 1
            yield chunk

    def __array__(self, *args, **kwargs):
        raise AssertionError("store built an array of the whole stream")

    def __getitem__(self, key):
        raise AssertionError("store indexed the stream")

    def __iter__(self):
        raise AssertionError("store iterated the stream image by image")


# --- stores from a stream ------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_streamed_store_roundtrips(method, tmp_path):
    pool_images, pool_labels = pool_set()
    stream = tile(pool_images, pool_labels, COUNT, chunk_images=4)
    store_dir = store_fresh(method, tmp_path / "store", stream, stream.labels)
    module = get_method(method)

    images, labels = module.read(store_dir)
    assert images.shape == (COUNT, 8, 8, 3) and images.dtype == np.uint8
    for i in range(COUNT):
        assert np.array_equal(images[i], pool_images[i % POOL]), i
    assert labels.dtype == np.uint8
    assert np.array_equal(labels, pool_labels[np.arange(COUNT) % POOL])

    batches = epoch(method, store_dir, 6)
    assert [len(b) for b, _ in batches] == [6] * 8 + [2]
    assert [len(lab) for _, lab in batches] == [6] * 8 + [2]
    start = 0
    for batch, batch_labels in batches:
        assert batch.dtype == np.uint8 and batch.shape[1:] == (8, 8, 3)
        assert batch_labels.dtype == np.uint8
        assert stream.matches(start, batch) is None
        assert np.array_equal(batch_labels, pool_labels[np.arange(start, start + len(batch)) % 7])
        start += len(batch)
    assert start == COUNT


@pytest.mark.parametrize("method", METHODS)
def test_store_uses_only_the_stream_interface(method, tmp_path):
    pool_images, pool_labels = pool_set(seed=1)
    tiled = tile(pool_images, pool_labels, 23, chunk_images=5)
    stream = StrictStream(tiled)
    store_dir = store_fresh(method, tmp_path / "store", stream, stream.labels)
    assert stream.chunks_taken == len(list(tiled.chunk_bounds()))  # cut at the pool's end
    images, labels = get_method(method).read(store_dir)
    assert np.array_equal(images, pool_images[np.arange(23) % POOL])
    assert np.array_equal(labels, pool_labels[np.arange(23) % POOL])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("chunk_images", [4, 1])
def test_chunked_store_equals_one_piece_store(method, chunk_images, tmp_path):
    pool_images, pool_labels = pool_set(seed=2)
    stream = tile(pool_images, pool_labels, COUNT, chunk_images=chunk_images)
    whole = pool_images[np.arange(COUNT) % POOL]
    whole_labels = stream.labels.copy()
    one_piece = store_fresh(method, tmp_path / "whole", whole, whole_labels)
    chunked = store_fresh(method, tmp_path / "chunked", stream, stream.labels)
    module = get_method(method)
    got_whole, got_whole_labels = module.read(one_piece)
    got_chunked, got_chunked_labels = module.read(chunked)
    assert np.array_equal(got_whole, whole)
    assert np.array_equal(got_chunked, got_whole)
    assert np.array_equal(got_chunked_labels, got_whole_labels)
    assert np.array_equal(got_whole_labels, whole_labels)
    if method == "npy":
        for name in ("images.npy", "labels.npy"):
            assert (chunked / name).read_bytes() == (one_piece / name).read_bytes()
        reference = tmp_path / "np_save.npy"
        np.save(reference, whole)
        assert (chunked / "images.npy").read_bytes() == reference.read_bytes()


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("hdf5", {"chunks": "image", "compression": "gzip", "compression_opts": 4}),
        ("hdf5", {"chunks": "image", "compression": "lzf"}),
        ("lmdb", {"value_format": "pickle", "writemap": True}),
        ("lmdb", {"value_format": "raw", "sync": True}),
        ("png", {"compress_level": 1}),
    ],
    ids=str,
)
def test_streamed_variants_roundtrip(method, options, tmp_path):
    pool_images, pool_labels = pool_set(seed=3)
    stream = tile(pool_images, pool_labels, 19, chunk_images=4)
    store_dir = store_fresh(method, tmp_path / "store", stream, stream.labels, options=options)
    images, labels = get_method(method).read(store_dir)
    assert stream.matches(0, images) is None and len(images) == 19
    assert np.array_equal(labels, stream.labels)
    got = np.concatenate([b for b, _ in epoch(method, store_dir, 5)])
    assert np.array_equal(got, images)


class ShortStream(StrictStream):
    """Claims more images than its chunks hold."""

    def __init__(self, tiled):
        super().__init__(tiled)
        self.shape = (len(tiled) + 1, *tiled.shape[1:])

    def __len__(self) -> int:
        return len(self._tiled) + 1


@pytest.mark.parametrize("method", METHODS)
def test_a_stream_shorter_than_its_length_is_refused(method, tmp_path):
    pool_images, pool_labels = pool_set(seed=4)
    stream = ShortStream(tile(pool_images, pool_labels, 10, chunk_images=4))
    labels = np.zeros(len(stream), dtype=np.uint8)
    with pytest.raises(ValueError, match="yielded 10 images, its length is 11"):
        store_fresh(method, tmp_path / "store", stream, labels)


# --- npy header ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((50, 8, 8, 3), np.uint8), ((0, 16, 16, 3), np.uint8), ((3, 5), np.float32), ((7,), "<i8")],
    ids=str,
)
def test_npy_header_is_the_one_np_save_writes(shape, dtype):
    array = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    ours = io.BytesIO()
    npy_method.write_header(ours, array.shape, array.dtype)
    ours.write(array.tobytes())
    theirs = io.BytesIO()
    np.save(theirs, array)
    assert ours.getvalue() == theirs.getvalue()
    ours.seek(0)
    assert np.array_equal(np.load(ours), array)
    ours.seek(0)
    assert npy_method.read_header(ours) == (shape, np.dtype(dtype))
    assert ours.tell() % 64 == 0  # header padded so the data is aligned


# --- read_batches --------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_read_batches_larger_than_the_store(method, tmp_path):
    pool_images, pool_labels = pool_set(seed=5)
    stream = tile(pool_images, pool_labels, 11, chunk_images=3)
    store_dir = store_fresh(method, tmp_path / "store", stream, stream.labels)
    ((images, labels),) = epoch(method, store_dir, 1000)
    assert images.shape == (11, 8, 8, 3)
    assert stream.matches(0, images) is None
    assert np.array_equal(labels, stream.labels)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("batch_images", [1, 4])
def test_read_batches_of_a_one_image_store(method, batch_images, tmp_path):
    images, labels = pool_set(1, size=16, seed=6)
    store_dir = store_fresh(method, tmp_path / "store", images, labels)
    ((got, got_labels),) = epoch(method, store_dir, batch_images)
    assert got.shape == (1, 16, 16, 3) and got.dtype == np.uint8
    assert np.array_equal(got, images)
    assert np.array_equal(got_labels, labels)


@pytest.mark.parametrize("method", METHODS)
def test_read_batches_yields_fresh_arrays(method, tmp_path):
    pool_images, pool_labels = pool_set(seed=7)
    stream = tile(pool_images, pool_labels, 14, chunk_images=7)
    store_dir = store_fresh(method, tmp_path / "store", stream, stream.labels)
    batches = epoch(method, store_dir, 3)  # all kept while later ones are read
    assert [len(b) for b, _ in batches] == [3, 3, 3, 3, 2]
    arrays = [a for pair in batches for a in pair]
    for i, one in enumerate(arrays):
        for other in arrays[i + 1 :]:
            assert not np.shares_memory(one, other)
    for position, (batch, batch_labels) in enumerate(batches):
        assert batch.flags.writeable
        assert stream.matches(3 * position, batch) is None
        assert np.array_equal(batch_labels, stream.labels[3 * position : 3 * position + 3])
    batches[0][0][:] = 0  # writing to one batch changes no other
    assert stream.matches(3, batches[1][0]) is None


def open_files_under(directory: Path) -> list[str]:
    fd_dir = Path("/proc/self/fd")
    found = []
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(directory.resolve())):
            found.append(target)
    return found


@pytest.mark.parametrize("method", METHODS)
def test_read_batches_opens_lazily_and_closes_at_the_end(method, tmp_path):
    missing = get_method(method).read_batches(tmp_path / "missing", 4)  # nothing opened yet
    with pytest.raises((OSError, FileNotFoundError, lmdb.Error)):
        next(missing)
    pool_images, pool_labels = pool_set(seed=8)
    stream = tile(pool_images, pool_labels, 10)
    store_dir = store_fresh(method, tmp_path / "store", stream, stream.labels)
    if not Path("/proc/self/fd").exists():
        return
    batches = get_method(method).read_batches(store_dir, 4)
    assert open_files_under(store_dir) == []
    next(batches)
    if method in ("npy", "hdf5", "lmdb"):
        assert open_files_under(store_dir), "the store is not held open during the epoch"
    assert len(list(batches)) == 2
    assert open_files_under(store_dir) == []
    early = get_method(method).read_batches(store_dir, 4)
    next(early)
    early.close()  # an epoch abandoned part way closes the store too
    assert open_files_under(store_dir) == []


@pytest.mark.parametrize("method", METHODS)
def test_read_batches_refuses_a_batch_of_zero(method, tmp_path):
    images, labels = pool_set(2)
    store_dir = store_fresh(method, tmp_path / "store", images, labels)
    with pytest.raises(ValueError, match="batch_images must be at least 1"):
        epoch(method, store_dir, 0)


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


# --- lmdb: one write transaction per chunk -------------------------------------------------


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
    stream = tile(pool_images, pool_labels, COUNT, chunk_images=4)
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
    store_dir = store_fresh("lmdb", tmp_path / "store", stream, stream.labels, options=options)
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
