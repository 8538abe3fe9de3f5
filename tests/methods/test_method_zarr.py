"""The zarr method: a Zarr v3 array of the images (chunked, sharded by default), labels
beside it; roundtrips over its layouts, the store's layout on disk, shard-aligned
writes from a stream, random access, readers forked after the parent used zarr, the
disk-space bound and the harness (the contract every method keeps is in test_contract.py)."""

from __future__ import annotations

import math
import multiprocessing
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from ci import unavailable
from method_helpers import (
    ENV,
    advised_random,
    assert_same,
    photo_crops,
    reader_get,
    record_fadvise,
    request_orders,
    store_fresh,
)
from method_helpers import random_set as noise
from zarr.storage import LocalStore

from imgbench import methods
from imgbench.data import pool
from imgbench.harness import measure, space, storeref
from imgbench.harness.point import Point
from imgbench.methods import resolve_options
from imgbench.methods import zarr as zarr_method
from imgbench.system import fsutil

# Every layout: sharding on/off x compression none/zstd x one or four images per chunk
# (shards of 8 images, so a store of 11 holds a full and a short shard).
LAYOUTS = [
    {"sharding": sharding, "compression": compression, "chunk_images": chunk, "shard_images": 8}
    for sharding in (True, False)
    for compression in ("none", "zstd")
    for chunk in (1, 4)
]


def layout_id(options: dict) -> str:
    sharded = "shard8" if options["sharding"] else "noshard"
    return f"{sharded}-{options['compression']}-chunk{options['chunk_images']}"


def photos(count: int, size: int = 24, *, black: int | None = None):
    """``photo_crops`` of ``size`` pixels (from a generator seeded by count and size);
    labels 0-9 with 255 among them. ``black``: the index of an all-zero image (a chunk
    equal to the fill value)."""
    images = photo_crops(count, size, np.random.default_rng(count * 1000 + size))
    if black is not None:
        images[black] = 0
    labels = (np.arange(count) % 10).astype(np.uint8)
    labels[count // 2] = 255
    return images, labels


def chunk_files(store_dir: Path) -> list[Path]:
    """The images' chunk (or shard) files, in chunk order."""
    files = [p for p in (store_dir / "images" / "c").rglob("*") if p.is_file()]
    return sorted(files, key=lambda p: int(p.relative_to(store_dir / "images" / "c").parts[0]))


# --- the interface -------------------------------------------------------------------------


def test_options_packages_and_library_versions():
    assert "Zarr" in zarr_method.DESCRIPTION
    assert zarr_method.PACKAGES == ("zarr", "numcodecs")
    versions = zarr_method.library_versions()
    assert list(versions) == ["zstd_c"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", versions["zstd_c"]), versions
    assert zarr_method.OPTIONS == {
        "chunk_images": 1,
        "sharding": True,
        "shard_images": 128,
        "compression": "none",
        "compression_level": None,
        "read_path": "runs",
    }
    assert zarr_method.CHOICES["sharding"] == (True, False)
    assert zarr_method.CHOICES["compression"] == ("none", "zstd")
    assert zarr_method.CHOICES["chunk_images"].minimum == 1
    assert zarr_method.CHOICES["shard_images"].minimum == 1


def test_import_zarr_inside_the_module_is_the_library(tmp_path):
    """The module is named like the library; its ``import zarr`` is absolute."""
    assert Path(zarr.__file__).parent.name == "zarr"
    assert "site-packages" in zarr.__file__
    assert sys.modules["zarr"] is zarr
    assert sys.modules["imgbench.methods.zarr"] is zarr_method
    assert zarr_method._compressors({"compression": "zstd", "compression_level": None})
    assert type(
        zarr_method._compressors({"compression": "zstd", "compression_level": 5})
    ).__module__.startswith("zarr.codecs")
    images, labels = photos(2)
    store_fresh("zarr", tmp_path / "store", images, labels)
    assert zarr.open_group(tmp_path / "store", mode="r").info is not None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"compression": "lz4"}, r"option compression must be one of none, zstd, not 'lz4'"),
        ({"sharding": "yes"}, r"option sharding must be one of true, false, not 'yes'"),
        ({"sharding": 1}, r"option sharding must be one of true, false, not 1"),
        ({"compression_level": 23}, r"compression_level must be one of null, 1, .*not 23"),
        (
            {"chunk_images": 8, "shard_images": 100},
            r"shard_images must be a multiple of chunk_images \(8\), as a shard holds whole "
            r"chunks, not 100; set shard_images to e\.g\. 96, or sharding: false",
        ),
        (
            {"chunk_images": 0},
            r"chunk_images must be a whole number of images of at least 1, not 0",
        ),
        ({"chunk_images": 2.5}, r"chunk_images must be a whole number .*, not 2\.5"),
        ({"shard_images": True}, r"shard_images must be a whole number .*, not True"),
        (
            {"compression_level": 9},
            r"compression_level must be null without compression, not 9; set compression: zstd",
        ),
        ({"chunks": 4}, r"method zarr has no option chunks"),
    ],
)
def test_bad_values_are_refused(options, message, tmp_path):
    images, labels = photos(3)
    with pytest.raises(ValueError, match=message):
        store_fresh("zarr", tmp_path / "store", images, labels, options)
    assert not any((tmp_path / "store").iterdir())  # refused before writing anything


def test_the_space_check_refuses_a_bad_shard_size_too():
    with pytest.raises(ValueError, match=r"shard_images must be a multiple of chunk_images \(3\)"):
        space.store_bytes("zarr", 100, 3072, {"chunk_images": 3, "shard_images": 10})
    # without sharding shard_images is not used, so not checked
    options = {"chunk_images": 3, "shard_images": 10, "sharding": False}
    assert space.store_bytes("zarr", 100, 3072, options) > 100 * 3072


# --- roundtrips ----------------------------------------------------------------------------


@pytest.mark.parametrize("options", LAYOUTS, ids=layout_id)
def test_every_layout_roundtrips(options, tmp_path):
    images, labels = photos(11, black=4)
    store_dir = store_fresh("zarr", tmp_path / "store", images, labels, options)
    assert_same(zarr_method.read(store_dir), images, labels)
    for batch in (1, 3, 50):
        batches = list(zarr_method.read_batches(store_dir, batch))
        assert [len(b) for b, _ in batches] == [
            min(batch, 11 - start) for start in range(0, 11, batch)
        ]
        got = (np.concatenate([b for b, _ in batches]), np.concatenate([lb for _, lb in batches]))
        assert_same(got, images, labels)
    indices = [10, 0, 4, 4, 7, 1, 10, 8, 9, 2]
    for readahead in (True, False):
        got = reader_get("zarr", store_dir, indices, readahead=readahead)
        assert_same(got, images[indices], labels[indices])


def test_one_image_and_the_full_label_range(tmp_path):
    images, _ = photos(1)
    labels = np.array([255], dtype=np.uint8)
    store_dir = store_fresh("zarr", tmp_path / "one", images, labels)
    assert_same(zarr_method.read(store_dir), images, labels)
    assert_same(reader_get("zarr", store_dir, [0]), images, labels)
    assert len(chunk_files(store_dir)) == 1


# --- layout on disk ------------------------------------------------------------------------


@pytest.mark.parametrize("options", LAYOUTS, ids=layout_id)
def test_files_follow_the_layout_and_plain_zarr_reads_the_store(options, tmp_path):
    count = 11
    images, labels = photos(count)
    store_dir = store_fresh("zarr", tmp_path / "store", images, labels, options)
    chunk = options["chunk_images"]
    per_file = options["shard_images"] if options["sharding"] else chunk
    files = chunk_files(store_dir)
    assert len(files) == math.ceil(count / per_file)
    assert {p.relative_to(store_dir / "images" / "c").parts for p in files} == {
        (str(i), "0", "0", "0") for i in range(len(files))
    }
    names = {p.relative_to(store_dir).as_posix() for p in fsutil.store_files(store_dir)}
    assert names == {f.relative_to(store_dir).as_posix() for f in files} | {
        "zarr.json",
        "images/zarr.json",
        "labels/zarr.json",
        "labels/c/0",
    }
    # Another tool opens it with zarr alone.
    array = zarr.open_array(store_dir / "images", mode="r")
    assert array.metadata.zarr_format == 3
    assert array.shape == images.shape and array.dtype == np.uint8
    assert array.chunks == (chunk, 24, 24, 3)
    assert array.shards == ((per_file, 24, 24, 3) if options["sharding"] else None)
    compressors = [type(c).__name__ for c in array.compressors]
    assert compressors == ([] if options["compression"] == "none" else ["ZstdCodec"])
    np.testing.assert_array_equal(array[:], images)
    group = zarr.open_group(store_dir, mode="r")
    assert group.metadata.zarr_format == 3
    assert sorted(group.array_keys()) == ["images", "labels"]
    np.testing.assert_array_equal(group["labels"][:], labels)


def test_a_black_image_is_written_as_a_chunk(tmp_path):
    """write_empty_chunks: a chunk equal to the fill value is still a file (no sharding)
    or a chunk in its shard, so the layout does not depend on the pixels."""
    images, labels = photos(4, black=2)
    store_dir = store_fresh("zarr", tmp_path / "files", images, labels, {"sharding": False})
    assert len(chunk_files(store_dir)) == 4
    store_dir = store_fresh("zarr", tmp_path / "shard", images, labels, {"shard_images": 4})
    (shard,) = chunk_files(store_dir)
    assert shard.stat().st_size == 4 * images[0].nbytes + 4 * 16 + 4
    assert_same(zarr_method.read(store_dir), images, labels)


def test_zstd_compresses_photos_and_takes_its_level(tmp_path):
    images, labels = photos(8, 48)
    sizes = {}
    for name, options in {
        "none": {},
        "zstd": {"compression": "zstd"},
        "zstd19": {"compression": "zstd", "compression_level": 19},
    }.items():
        store_dir = store_fresh("zarr", tmp_path / name, images, labels, options)
        sizes[name] = sum(p.stat().st_size for p in chunk_files(store_dir))
        (codec,) = zarr.open_array(store_dir / "images", mode="r").compressors or [None]
        if codec is not None:
            assert codec.level == (19 if name == "zstd19" else 3)
    assert sizes["zstd"] < 0.95 * sizes["none"]
    assert sizes["zstd19"] <= sizes["zstd"]


# --- stream writes, aligned to shards -------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "chunk", "count"), [(8, 7, 50), (8, 8, 32), (8, 20, 50), (1, 3, 10), (4, 100, 9)]
)
def test_aligned_pieces_start_on_units_and_cover_the_stream(unit, chunk, count):
    images, labels = photos(13, 8)
    stream = pool.tile(images, labels, count, chunk_images=chunk)
    expected = np.concatenate(list(stream.iter_chunks()))
    pieces = [(start, block.copy()) for start, block in zarr_method._aligned(stream, unit)]
    starts = [start for start, _ in pieces]
    assert starts == sorted(starts) and all(start % unit == 0 for start in starts)
    assert all(len(block) % unit == 0 for _, block in pieces[:-1])
    assert starts[0] == 0 and sum(len(b) for _, b in pieces) == count
    np.testing.assert_array_equal(np.concatenate([b for _, b in pieces]), expected)


def spy_store_io(monkeypatch):
    """Every key zarr's LocalStore sets, and every key it reads that existed (a read of
    an existing chunk or shard during a store is a read-modify-write)."""
    sets, existing_reads = [], []
    real_set, real_get = LocalStore.set, LocalStore.get

    async def set_(self, key, value):
        sets.append(key)
        return await real_set(self, key, value)

    async def get_(self, key, prototype=None, byte_range=None):
        got = await real_get(self, key, prototype, byte_range)
        if got is not None and "/c/" in f"/{key}":
            existing_reads.append(key)
        return got

    monkeypatch.setattr(LocalStore, "set", set_)
    monkeypatch.setattr(LocalStore, "get", get_)
    return sets, existing_reads


@pytest.mark.parametrize(
    "options",
    [
        {"chunk_images": 1, "shard_images": 8},
        {"chunk_images": 4, "shard_images": 8, "compression": "zstd"},
        {"chunk_images": 4, "sharding": False},
    ],
    ids=["shard8-chunk1", "shard8-chunk4-zstd", "noshard-chunk4"],
)
def test_a_stream_store_writes_every_file_once_and_equals_the_array_store(
    options, tmp_path, monkeypatch
):
    """Stream chunks of 7 images never line up with shards of 8 (or chunks of 4): the
    store still writes each shard (chunk) file once, reads none back, and holds the same
    bytes as a store written from the whole array in one piece."""
    images, labels = photos(13)
    stream = pool.tile(images, labels, 50, chunk_images=7)
    plain = np.concatenate(list(stream.iter_chunks()))
    sets, existing_reads = spy_store_io(monkeypatch)
    streamed = store_fresh("zarr", tmp_path / "stream", stream, stream.labels, options)
    image_sets = [key for key in sets if key.startswith("images/c/")]
    files = chunk_files(streamed)
    assert len(image_sets) == len(set(image_sets)) == len(files)
    per_file = options["shard_images"] if options.get("sharding", True) else 4
    assert len(files) == math.ceil(50 / per_file)
    assert existing_reads == []
    monkeypatch.undo()
    whole = store_fresh("zarr", tmp_path / "whole", plain, stream.labels, options)
    assert_same(zarr_method.read(streamed), plain, stream.labels)
    for ours, theirs in zip(chunk_files(streamed), chunk_files(whole), strict=True):
        assert ours.read_bytes() == theirs.read_bytes()


def test_the_spy_sees_rewrites_of_unaligned_writes(tmp_path, monkeypatch):
    """Without the alignment (each stream chunk written as it comes) zarr reads shards
    back and writes them again: the check above would catch it."""

    def unaligned(images, unit):
        yield from methods.indexed_chunks(images)

    monkeypatch.setattr(zarr_method, "_aligned", unaligned)
    images, labels = photos(13)
    stream = pool.tile(images, labels, 50, chunk_images=7)
    sets, existing_reads = spy_store_io(monkeypatch)
    store_dir = store_fresh("zarr", tmp_path / "store", stream, stream.labels, {"shard_images": 8})
    image_sets = [key for key in sets if key.startswith("images/c/")]
    assert len(image_sets) > len(chunk_files(store_dir))
    assert existing_reads


# --- random access -------------------------------------------------------------------------


@pytest.mark.parametrize("readahead", [True, False])
@pytest.mark.parametrize("options", [{}, {"sharding": False, "chunk_images": 4}], ids=str)
def test_random_access_in_any_order_with_repeats(readahead, options, tmp_path):
    images, labels = photos(37, 16)
    store_dir = store_fresh("zarr", tmp_path / "store", images, labels, options)
    reader = zarr_method.open_reader(store_dir, readahead=readahead)
    try:
        for indices in (
            *request_orders(37),
            list(range(10, 20)),  # one run: one slice
            np.random.default_rng(1).integers(0, 37, size=64),
        ):
            index = np.asarray(indices)
            assert_same(reader.get(indices), images[index], labels[index])
        got_images, got_labels = reader.get([])
        assert got_images.shape == (0, 16, 16, 3) and got_labels.shape == (0,)
        with pytest.raises(IndexError):
            reader.get([37])
    finally:
        reader.close()


def test_reader_returns_independent_arrays(tmp_path):
    images, labels = photos(12)
    store_dir = store_fresh("zarr", tmp_path / "store", images, labels)
    reader = zarr_method.open_reader(store_dir)
    first = reader.get([3, 4, 5])  # one run: zarr's own output array
    second = reader.get([3, 4, 5])
    shuffled = reader.get([5, 3, 3])
    reader.close()
    for got_images, got_labels in (first, shuffled):
        got_images[:] = 0
        got_labels[:] = 0
    assert_same(second, images[[3, 4, 5]], labels[[3, 4, 5]])
    assert_same(reader_get("zarr", store_dir, [5, 3, 3]), images[[5, 3, 3]], labels[[5, 3, 3]])


@pytest.mark.parametrize("sharding", [True, False])
@pytest.mark.parametrize("readahead", [True, False])
def test_readers_without_readahead_advise_every_file_they_open(
    sharding, readahead, tmp_path, monkeypatch
):
    images, labels = photos(20)
    options = {"sharding": sharding, "shard_images": 8}
    store_dir = store_fresh("zarr", tmp_path / "store", images, labels, options)
    advised = record_fadvise(monkeypatch)
    indices = [19, 3, 3, 0, 12]
    assert_same(
        reader_get("zarr", store_dir, indices, readahead=readahead),
        images[indices],
        labels[indices],
    )
    random_files = {
        Path(name).relative_to(store_dir).as_posix() for name in advised_random(advised)
    }
    if readahead:
        assert advised == []
        return
    if sharding:  # the shards holding images 0-7, 8-15, 16-19
        expected = {"images/c/0/0/0/0", "images/c/1/0/0/0", "images/c/2/0/0/0"}
    else:
        expected = {f"images/c/{i}/0/0/0" for i in set(indices)}
    assert expected | {"labels/c/0"} <= random_files
    assert all(not name.startswith("images/c/") or name in expected for name in random_files)


# --- forked readers ------------------------------------------------------------------------


def _read_in_child(store_dir, indices, readahead, results):
    try:
        import zarr.core.sync

        reader = zarr_method.open_reader(store_dir, readahead=readahead)
        got = reader.get(indices)
        reader.close()
        results.put(("ok", got, zarr.core.sync.iothread[0].ident, os.getpid()))
    except BaseException as error:  # reported to the parent
        results.put(("error", repr(error), None, os.getpid()))


def test_readers_forked_after_the_parent_used_zarr_read(tmp_path):
    """The harness warms zarr up in the job process (its event-loop thread is running),
    then forks the readers: each opens the store itself and reads in its own loop."""
    import zarr.core.sync

    images, labels = photos(20)
    store_dir = store_fresh("zarr", tmp_path / "store", images, labels, {"shard_images": 8})
    assert_same(reader_get("zarr", store_dir, [1, 2]), images[[1, 2]], labels[[1, 2]])
    parent_thread = zarr.core.sync.iothread[0]
    assert parent_thread is not None and parent_thread.is_alive()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    indices = [17, 0, 9, 9, 4]
    children = [
        context.Process(target=_read_in_child, args=(store_dir, indices, readahead, results))
        for readahead in (True, False)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0
    for status, got, _thread, pid in outcomes:
        assert status == "ok", got
        assert pid != os.getpid()
        assert_same(got, images[indices], labels[indices])
    # and the parent's zarr still works
    assert zarr.core.sync.iothread[0] is parent_thread
    assert_same(zarr_method.read(store_dir), images, labels)


# --- disk space ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "options"),
    [
        (1, {}),
        (300, {}),
        (300, {"compression": "zstd"}),
        (300, {"chunk_images": 4, "shard_images": 64, "compression": "zstd"}),
        (130, {"sharding": False}),
        (130, {"sharding": False, "chunk_images": 7, "compression": "zstd"}),
    ],
    ids=str,
)
def test_disk_bytes_bounds_the_store(count, options, tmp_path):
    images, labels = noise(count)  # incompressible: zstd at its worst
    stream = pool.tile(images, labels, count, chunk_images=50)
    store_dir = store_fresh("zarr", tmp_path / "store", stream, stream.labels, options)
    used = fsutil.disk_usage(store_dir)
    bound = zarr_method.disk_bytes(count, images[0].nbytes, resolve_options(zarr_method, options))
    assert used.bytes_apparent <= bound
    assert used.bytes_on_disk <= bound, (used, bound)
    assert bound <= 1.3 * used.bytes_apparent + 64 * 1024  # an upper bound, not a guess


# --- a full disk ---------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"sharding": False}], ids=["sharded", "files"])
def test_a_full_disk_fails_the_store_in_one_sentence_and_leaves_nothing(options, tmp_path):
    """Zarr writes several files at once and raises on the first that fails: the store
    waits for the others before it raises, so none lands after the harness removed the
    failed store (repeated, as that was a race)."""
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs for a full disk needs root")
    import subprocess

    images, labels = noise(600)  # 1.8 MB of pixels on a 1 MB file system
    root = tmp_path / "small"
    root.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(root)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        for attempt in range(4):
            store_dir = root / "zarr" / "default" / "32px" / "600" / f"repeat{attempt}"
            with pytest.raises(OSError) as caught, storeref.writing(store_dir, root):
                point = Point("zarr", options=options, fsync="none")
                measure.run_store(point, (images, labels), store_dir, env={})
            sentence = space.describe_os_error(caught.value, root)
            assert sentence is not None, f"{type(caught.value).__name__}: {caught.value}"
            assert sentence.startswith("no space left on the file system of store_dir")
            assert list(root.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def test_a_failed_write_waits_for_the_writes_in_flight(tmp_path, monkeypatch):
    """The first of several concurrent chunk writes fails; store raises only once the
    others have ended, so no file appears after it raised."""
    import asyncio
    import threading

    real_set = LocalStore.set
    started = []
    finished = []

    async def slow_or_failing_set(self, key, value):
        if not key.startswith("images/c/"):
            return await real_set(self, key, value)
        started.append(key)
        if key == "images/c/0/0/0/0":
            raise OSError(28, "No space left on device")
        await asyncio.sleep(0.2)
        await real_set(self, key, value)
        finished.append((key, threading.get_ident()))

    monkeypatch.setattr(LocalStore, "set", slow_or_failing_set)
    images, labels = photos(6)
    with pytest.raises(OSError, match="No space left"):
        store_fresh("zarr", tmp_path / "store", images, labels, {"sharding": False})
    assert len(started) == 6 and len(finished) == 5  # every other write ran to its end
    files_then = sorted(p.name for p in (tmp_path / "store").rglob("*"))
    import time

    time.sleep(0.3)
    assert sorted(p.name for p in (tmp_path / "store").rglob("*")) == files_then


# --- the harness ---------------------------------------------------------------------------


def test_the_harness_stores_and_reads_zarr(tmp_path):
    images, labels = photos(24)
    stream = pool.tile(images, labels, 60, chunk_images=7)
    store_dir = tmp_path / "store"
    options = {"shard_images": 16}
    point = Point("zarr", variant="shard16", options=options, fsync="syncfs")
    (row,) = measure.run_store(point, stream, store_dir, env=ENV)
    assert row["method"] == "zarr" and row["variant"] == "shard16"
    assert row["method_description"] == zarr_method.DESCRIPTION
    assert row["n_files"] == len(fsutil.store_files(store_dir)) == math.ceil(60 / 16) + 4
    assert row["bytes_on_disk"] <= zarr_method.disk_bytes(
        60, images[0].nbytes, resolve_options(zarr_method, options)
    )
    for cache in ("cold", "warm"):
        (row,) = measure.run_read(Point("zarr", cache=cache), stream, store_dir, env=ENV)
        assert row["read_pattern"] == "whole" and row["images_read"] == 60
        for readers in (1, 2):
            for readahead in ("on", "off"):
                point = Point(
                    "zarr", cache=cache, pattern="shuffled", readers=readers,
                    readahead=readahead, batch_size=8,
                )  # fmt: skip
                (row,) = measure.run_read(point, stream, store_dir, env=ENV)
                assert row["readers"] == readers and row["readahead"] == readahead
                assert row["images_read"] == 60 and row["cache"] == cache
