"""The parquet method: one Parquet file of encoded image bytes and labels (the Hugging Face
layout), its options, row groups, readers, space bound and the harness around it (the
contract every method keeps is in test_contract.py)."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from method_helpers import (
    ENV,
    assert_same,
    joined,
    reader_get,
    record_fadvise,
    store_fresh,
)
from method_helpers import photo_set as helpers_photo_set
from method_helpers import random_set as noise_set

from imgbench.data.pool import tile
from imgbench.harness import measure, space
from imgbench.harness.point import Point
from imgbench.methods import encoding, resolve_options
from imgbench.methods import parquet as parquet_method
from imgbench.methods._binary import BinaryCells
from imgbench.system import fsutil

RANDOM = os.POSIX_FADV_RANDOM
# The codec each compression option writes, as the Parquet metadata names it.
CODEC_NAMES = {"none": "UNCOMPRESSED", "snappy": "SNAPPY", "zstd": "ZSTD"}
LOSSLESS = [
    {"encoding": "raw"},
    {"encoding": "png"},
    {"encoding": "png", "compress_level": 1},
    {"encoding": "webp"},
]


def photo_set(count: int, size: int = 32, seed: int = 0):
    """Photo crops with labels 0-9 (a label column of few values, as a data set's)."""
    return helpers_photo_set(count, size, seed, label_values=10)


def epoch(store_dir: Path, batch_images: int, like: np.ndarray):
    """The batches of one epoch and their images and labels joined (empty like ``like``)."""
    batches = list(parquet_method.read_batches(store_dir, batch_images))
    return batches, joined(batches, like)


def file_of(store_dir: Path) -> Path:
    return store_dir / parquet_method.FILE_NAME


# --- the options --------------------------------------------------------------------------


def test_options_packages_and_library_versions():
    module = parquet_method
    assert module.OPTIONS == {
        "encoding": "png",
        "quality": 95,
        "subsampling": None,
        "lossless": True,
        "compress_level": 6,
        "effort": None,
        "codec": None,
        "row_group_images": 100,
        "compression": "none",
    }
    assert module.CHOICES["compression"] == ("none", "snappy", "zstd")
    assert module.CHOICES["encoding"] == encoding.ENCODINGS
    assert module.CHOICES["row_group_images"].minimum == 1
    assert module.PACKAGES == ("pyarrow", "Pillow")
    versions = module.library_versions()
    assert versions["arrow_cpp"] == pa.cpp_version
    assert all(re.fullmatch(r"\d+(\.\d+)+", v) for v in versions.values()), versions


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"compression": "lz77"}, r"compression must be one of none, snappy, zstd, not 'lz77'"),
        ({"compression": None}, r"compression must be one of none, snappy, zstd, not None"),
        (
            {"encoding": "gif"},
            r"encoding must be one of raw, png, jpeg, webp, qoi, jpegxl, avif, not 'gif'",
        ),
        ({"quality": 0}, r"quality must be one of .*not 0"),
        ({"row_group_images": 0}, r"row_group_images must be a whole number .* at least 1, not 0"),
        ({"row_group_images": -5}, r"row_group_images must be .*not -5"),
        ({"row_group_images": True}, r"row_group_images must be .*not True"),
        ({"row_group_images": 2.5}, r"row_group_images must be .*not 2\.5"),
        ({"row_group_images": "64"}, r"row_group_images must be .*not '64'"),
        ({"level": 3}, r"method parquet has no option level"),
    ],
)
def test_bad_option_values_are_refused(options, message, tmp_path):
    images, labels = photo_set(2)
    with pytest.raises(ValueError, match=message):
        store_fresh("parquet", tmp_path / "store", images, labels, options)
    assert not file_of(tmp_path / "store").exists()


def test_the_space_check_refuses_a_bad_row_group_size_before_anything_is_written():
    with pytest.raises(ValueError, match="row_group_images"):
        space.store_bytes("parquet", 10, 3072, {"row_group_images": 0})


# --- roundtrips ----------------------------------------------------------------------------


@pytest.mark.parametrize("options", LOSSLESS, ids=encoding.describe)
def test_lossless_encodings_roundtrip_exactly(options, tmp_path):
    images, labels = photo_set(23, seed=1)
    store_dir = store_fresh(
        "parquet", tmp_path / "store", images, labels, {**options, "row_group_images": 5}
    )
    assert_same(parquet_method.read(store_dir), images, labels)
    for batch_images in (1, 3, 5, 100):
        batches, whole = epoch(store_dir, batch_images, images)
        assert_same(whole, images, labels)
        sizes = [len(b[0]) for b in batches]
        # Full batches across row-group boundaries, a shorter last one.
        assert sizes == [min(batch_images, 23 - s) for s in range(0, 23, batch_images)]
        assert all(len(b[1]) == len(b[0]) for b in batches)
    indices = [22, 0, 7, 7, 13, 4, 21, 0]
    assert_same(reader_get("parquet", store_dir, indices), images[indices], labels[indices])


def test_default_options_store_png(tmp_path):
    images, labels = photo_set(6, seed=2)
    store_dir = store_fresh("parquet", tmp_path / "store", images, labels)
    table = pq.read_table(file_of(store_dir))
    first = table.column("image")[0].as_py()
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    assert json.loads(table.schema.metadata[b"imgbench"])["encoding"] == "png"
    assert_same(parquet_method.read(store_dir), images, labels)


@pytest.mark.parametrize(
    "options", [{"encoding": "jpeg", "quality": 95}, {"encoding": "webp", "lossless": False}]
)
def test_lossy_encodings_reach_the_fidelity_floor(options, tmp_path):
    images, labels = photo_set(12, size=48, seed=3)
    store_dir = store_fresh(
        "parquet", tmp_path / "store", images, labels, {**options, "row_group_images": 4}
    )
    got, got_labels = parquet_method.read(store_dir)
    assert got.shape == images.shape and got.dtype == np.uint8
    assert np.array_equal(got_labels, labels)
    assert not np.array_equal(got, images)  # lossy: the test would prove nothing otherwise
    assert (encoding.psnr_per_image_db(images, got) >= 30).all()
    # Decoding is deterministic: every read path gives the same pixels.
    assert np.array_equal(epoch(store_dir, 5, images)[1][0], got)
    indices = [11, 0, 5, 5]
    assert np.array_equal(reader_get("parquet", store_dir, indices)[0], got[indices])


@pytest.mark.parametrize("count", [1, 0])
def test_tiny_and_empty_stores(count, tmp_path):
    images, labels = photo_set(count, seed=4)
    store_dir = store_fresh("parquet", tmp_path / "store", images, labels)
    assert_same(parquet_method.read(store_dir), images, labels)
    batches, whole = epoch(store_dir, 4, images)
    assert len(batches) == count
    assert_same(whole, images, labels)
    if count:
        assert_same(reader_get("parquet", store_dir, [0]), images, labels)
    assert pq.ParquetFile(file_of(store_dir)).metadata.num_row_groups == count


@pytest.mark.parametrize("labels_dtype", [np.uint8, np.int64])
def test_labels_keep_their_dtype_and_range(labels_dtype, tmp_path):
    images, _ = photo_set(6, seed=5)
    labels = np.array([0, 9, 255, 128, 1, 7], dtype=labels_dtype)
    store_dir = store_fresh("parquet", tmp_path / "store", images, labels, {"row_group_images": 4})
    assert_same(parquet_method.read(store_dir), images, labels)
    assert_same(epoch(store_dir, 4, images)[1], images, labels)
    assert_same(reader_get("parquet", store_dir, [5, 2]), images[[5, 2]], labels[[5, 2]])


@pytest.mark.parametrize("compression", ["none", "snappy", "zstd"])
@pytest.mark.parametrize("encoding_name", ["raw", "png"])
def test_every_compression_roundtrips_in_an_ordinary_parquet_file(
    compression, encoding_name, tmp_path
):
    """A plain ``pyarrow.parquet.read_table`` (any other tool) sees a table of image bytes
    and labels in row groups of ``row_group_images`` rows, compressed with the codec."""
    images, labels = photo_set(23, seed=6)
    options = {"encoding": encoding_name, "compression": compression, "row_group_images": 8}
    store_dir = store_fresh("parquet", tmp_path / "store", images, labels, options)
    assert sorted(p.name for p in store_dir.iterdir()) == [parquet_method.FILE_NAME]
    assert_same(parquet_method.read(store_dir), images, labels)
    assert_same(
        reader_get("parquet", store_dir, [22, 3, 8]), images[[22, 3, 8]], labels[[22, 3, 8]]
    )

    table = pq.read_table(file_of(store_dir))
    assert table.column_names == ["image", "label"]
    assert table.schema.field("image").type == pa.binary()
    assert table.schema.field("label").type == pa.uint8()
    assert table.num_rows == 23
    assert table.column("label").to_pylist() == labels.tolist()
    cells = table.column("image").to_pylist()
    decoded = [encoding.decode(cell, encoding_name, (32, 32, 3)) for cell in cells]
    assert np.array_equal(np.stack(decoded), images)
    meta = json.loads(table.schema.metadata[b"imgbench"])
    assert meta == {
        "count": 23,
        "shape": [32, 32, 3],
        "dtype": "uint8",
        "labels_dtype": "uint8",
        "encoding": encoding_name,
        "codec": "none" if encoding_name == "raw" else "pillow",
        "row_group_images": 8,
    }

    metadata = pq.ParquetFile(file_of(store_dir)).metadata
    assert metadata.num_row_groups == 3
    assert [metadata.row_group(g).num_rows for g in range(3)] == [8, 8, 7]
    for group in range(3):
        image_chunk = metadata.row_group(group).column(0)
        label_chunk = metadata.row_group(group).column(1)
        assert image_chunk.compression == CODEC_NAMES[compression]
        # Unique blobs: no dictionary, no min/max blobs in the footer; labels keep both.
        assert not any("DICTIONARY" in e for e in image_chunk.encodings), image_chunk.encodings
        assert not image_chunk.is_stats_set
        assert label_chunk.is_stats_set


def test_compression_reaches_the_file(tmp_path):
    """Raw gradients compress (zstd 6x, snappy 13 %; raw photo crops only by 5 to 18 %)."""
    y, x = np.mgrid[0:32, 0:32]
    base = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1)
    images = np.stack([(base + i) % 256 for i in range(40)]).astype(np.uint8)
    labels = (np.arange(40) % 10).astype(np.uint8)
    sizes = {}
    for compression in ("none", "snappy", "zstd"):
        options = {"encoding": "raw", "compression": compression}
        store_dir = store_fresh("parquet", tmp_path / compression, images, labels, options)
        sizes[compression] = file_of(store_dir).stat().st_size
        assert_same(parquet_method.read(store_dir), images, labels)
    assert sizes["snappy"] < sizes["none"] and sizes["zstd"] < 0.5 * sizes["none"], sizes


def test_decoding_takes_chunked_and_sliced_binary_columns(tmp_path):
    """What pyarrow may hand back: a column in several arrays, arrays that are slices
    (offsets not from 0), empty arrays; raw cells of another length are refused."""
    images, labels = photo_set(9, seed=16)
    for name in ("raw", "png"):
        options = resolve_options(parquet_method, {"encoding": name})
        store_dir = store_fresh("parquet", tmp_path / name, images, labels, options)
        blobs = [encoding.encode(image, options) for image in images]
        whole = pa.array([b"junk", *blobs], type=pa.binary()).slice(1)
        column = pa.chunked_array([whole.slice(0, 4), whole.slice(4, 0), whole.slice(4)])
        store = parquet_method._Store(store_dir)
        try:
            out = store.empty(9)
            store.decode_into(out, column)
            assert np.array_equal(out, images)
            cells = BinaryCells(column)
            assert len(cells) == 9
            assert [bytes(cells[i]) for i in range(9)] == blobs
            if name == "raw":
                with pytest.raises(ValueError, match="raw image of 3071 bytes"):
                    store.decode_into(store.empty(1), pa.array([blobs[0][:-1]], pa.binary()))
        finally:
            store.close()


# --- row groups and the image stream -------------------------------------------------------


@pytest.mark.parametrize(("chunk_images", "group_images"), [(7, 5), (3, 8), (50, 4), (1, 1)])
def test_a_stream_in_unaligned_chunks_stores_what_the_array_stores(
    chunk_images, group_images, tmp_path
):
    pool_images, pool_labels = photo_set(9, seed=8)
    stream = tile(pool_images, pool_labels, 31, chunk_images=chunk_images)
    images = stream.take(np.arange(31))
    labels = stream.labels.copy()
    options = {"encoding": "raw", "row_group_images": group_images}
    streamed = store_fresh("parquet", tmp_path / "stream", stream, stream.labels, options)
    whole = store_fresh("parquet", tmp_path / "array", images, labels, options)
    metadata = pq.ParquetFile(file_of(streamed)).metadata
    groups = [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
    # Full row groups whatever the chunks, a shorter last one.
    assert groups == [min(group_images, 31 - s) for s in range(0, 31, group_images)]
    assert pq.read_table(file_of(streamed)).equals(pq.read_table(file_of(whole)))
    assert_same(parquet_method.read(streamed), images, labels)
    assert_same(epoch(streamed, 6, images)[1], images, labels)


def test_store_writes_one_row_group_per_write_call(tmp_path, monkeypatch):
    """The stream is buffered into whole row groups: one ``write_table`` per group, never
    more than ``row_group_images`` rows, however the chunks fall."""
    calls = []
    real = pq.ParquetWriter.write_table

    def recording(self, table, row_group_size=None):
        calls.append((table.num_rows, row_group_size))
        return real(self, table, row_group_size=row_group_size)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", recording)
    pool_images, pool_labels = photo_set(5, seed=9)
    stream = tile(pool_images, pool_labels, 26, chunk_images=4)
    store_fresh("parquet", tmp_path / "store", stream, stream.labels, {"row_group_images": 10})
    assert calls == [(10, 10), (10, 10), (6, 6)]


# --- random access -------------------------------------------------------------------------


@pytest.mark.parametrize("readahead", [True, False])
def test_random_access_in_any_order_across_row_groups(readahead, tmp_path):
    images, labels = photo_set(37, seed=10)
    options = {"encoding": "png", "row_group_images": 6}
    store_dir = store_fresh("parquet", tmp_path / "store", images, labels, options)
    reader = parquet_method.open_reader(store_dir, readahead=readahead)
    rng = np.random.default_rng(0)
    try:
        for indices in (
            [30, 2, 2, 17, 0, 36, 2],
            np.array([36, 35, 34, 0], dtype=np.int64),
            [5, 6],  # the two sides of a row-group boundary
            [5],
            list(range(37))[::-1],
            rng.permutation(37),
            rng.integers(0, 37, size=50),  # repeats
            np.array([], dtype=np.int64),
        ):
            got_images, got_labels = reader.get(indices)
            index = np.asarray(indices, dtype=np.int64)
            assert got_images.shape == (len(index), 32, 32, 3)
            assert got_images.dtype == np.uint8
            assert np.array_equal(got_images, images[index])
            assert np.array_equal(got_labels, labels[index])
            assert got_labels.dtype == np.uint8
    finally:
        reader.close()


def test_reader_refuses_indices_outside_the_store(tmp_path):
    images, labels = photo_set(5, seed=11)
    store_dir = store_fresh("parquet", tmp_path / "store", images, labels)
    reader = parquet_method.open_reader(store_dir)
    try:
        for bad in ([5], [0, -1]):
            with pytest.raises(IndexError, match="no image"):
                reader.get(bad)
    finally:
        reader.close()


def test_reader_returns_independent_arrays(tmp_path):
    images, labels = photo_set(12, seed=12)
    for name in ("raw", "png"):
        options = {"encoding": name, "row_group_images": 4}
        store_dir = store_fresh("parquet", tmp_path / name, images, labels, options)
        reader = parquet_method.open_reader(store_dir)
        first_images, first_labels = reader.get([7, 1, 3])
        assert first_images.flags.writeable and first_images.flags.owndata
        first_images[:] = 0
        first_labels[:] = 99
        again_images, again_labels = reader.get([7, 1, 3])  # the cached group is untouched
        reader.close()
        assert np.array_equal(again_images, images[[7, 1, 3]])
        assert np.array_equal(again_labels, labels[[7, 1, 3]])
        batches = list(parquet_method.read_batches(store_dir, 4))
        batches[0][0][:] = 0
        assert np.array_equal(batches[1][0], images[4:8])
        assert all(b[0].flags.writeable and b[0].flags.owndata for b in batches)


def test_reader_reads_each_row_group_once_per_pass(tmp_path, monkeypatch):
    """A single image costs its whole row group; a sequential pass in minibatches reads
    each group once (the last group read is kept); a shuffled batch reads each group it
    touches once."""
    images, labels = photo_set(30, seed=13)
    store_dir = store_fresh("parquet", tmp_path / "store", images, labels, {"row_group_images": 8})
    reader = parquet_method.open_reader(store_dir)
    reads = []
    real = reader.store.file.read_row_group

    def counting(group, columns=None, **kwargs):
        reads.append(group)
        table = real(group, columns=columns, **kwargs)
        assert columns == ["image"] and table.num_rows == min(8, 30 - 8 * group)
        return table

    monkeypatch.setattr(reader.store.file, "read_row_group", counting)
    try:
        assert np.array_equal(reader.get([17])[0], images[[17]])
        assert reads == [2]
        for start in range(0, 30, 3):
            batch = list(range(start, min(start + 3, 30)))
            assert np.array_equal(reader.get(batch)[0], images[batch])
        assert reads == [2, 0, 1, 2, 3]
        reads.clear()
        shuffled = [29, 0, 9, 1, 28, 10]  # groups 3, 0, 1, 0, 3, 1; group 3 is cached
        assert np.array_equal(reader.get(shuffled)[0], images[shuffled])
        assert reads == [0, 1]
    finally:
        reader.close()


@pytest.mark.parametrize("readahead", [True, False])
def test_reader_without_readahead_advises_the_file_pyarrow_reads(readahead, tmp_path, monkeypatch):
    images, labels = photo_set(12, seed=14)
    store_dir = store_fresh("parquet", tmp_path / "store", images, labels, {"row_group_images": 4})
    advised = record_fadvise(monkeypatch)
    reader = parquet_method.open_reader(store_dir, readahead=readahead)
    try:
        assert_same(reader.get([11, 3, 3, 0]), images[[11, 3, 3, 0]], labels[[11, 3, 3, 0]])
        random = [(fd, Path(name).name) for name, fd, advice in advised if advice == RANDOM]
        if readahead:
            assert random == []
        else:  # the descriptor of the file object pyarrow reads through
            assert random == [(reader.store.handle.fileno(), parquet_method.FILE_NAME)]
    finally:
        reader.close()
    assert reader.store.handle.closed


# --- space bound ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "make"),
    [
        ({"encoding": "raw"}, noise_set),
        ({"encoding": "raw", "compression": "snappy"}, noise_set),
        ({"encoding": "raw", "compression": "zstd"}, noise_set),
        ({"encoding": "png"}, noise_set),
        ({"encoding": "png", "compress_level": 0, "compression": "zstd"}, noise_set),
        ({"encoding": "jpeg", "quality": 100, "compression": "snappy"}, noise_set),
        ({"encoding": "webp"}, noise_set),
        ({"encoding": "png", "row_group_images": 1}, photo_set),
        ({"encoding": "raw", "row_group_images": 3}, photo_set),
    ],
    ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else "",
)
def test_disk_bytes_bounds_real_stores(options, make, tmp_path):
    for count, size in ((1, 32), (60, 32), (20, 64)):
        images, labels = make(count, size, seed=count)
        resolved = resolve_options(parquet_method, options)
        store_dir = store_fresh("parquet", tmp_path / f"{count}-{size}", images, labels, options)
        on_disk = fsutil.disk_usage(store_dir).bytes_on_disk
        bound = parquet_method.disk_bytes(count, images[0].nbytes, resolved)
        assert on_disk <= bound, (count, size, on_disk, bound)
        assert bound % 4096 == 0


def test_disk_bytes_is_not_wildly_loose_for_raw_pixels():
    """Raw pixels: the bound is the pixels plus a few percent (page headers, labels)."""
    options = {**parquet_method.OPTIONS, "encoding": "raw"}
    pixels = 100_000 * 3072
    assert pixels < parquet_method.disk_bytes(100_000, 3072, options) < 1.05 * pixels
    assert parquet_method.disk_bytes(0, 3072, options) == parquet_method.FILE_BYTES


# --- the harness ---------------------------------------------------------------------------


def test_harness_stores_and_reads_a_parquet_store(tmp_path):
    pool_images, pool_labels = photo_set(7, seed=15)
    stream = tile(pool_images, pool_labels, 40, chunk_images=9)
    store_dir = tmp_path / "store"
    options = {"row_group_images": 16, "compression": "zstd"}
    point = Point("parquet", variant="zstd", options=options, fsync="per_file")
    (row,) = measure.run_store(point, stream, store_dir, env=ENV)
    assert row["method"] == "parquet" and row["variant"] == "zstd"
    assert row["method_description"] == parquet_method.DESCRIPTION
    assert row["images_read"] == 40 and row["n_files"] == 1
    assert row["bytes_on_disk"] <= parquet_method.disk_bytes(
        40, 32 * 32 * 3, resolve_options(parquet_method, options)
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    assert pq.ParquetFile(file_of(store_dir)).metadata.num_row_groups == 3
    reads = [
        ("whole", "cold", {}),
        ("whole", "warm", {}),
        ("shuffled", "cold", {"readahead": "off"}),
        ("shuffled", "warm", {"readers": 2}),
        ("random_single", "cold", {"random_reads": 12}),
    ]
    for pattern, cache, extra in reads:
        point = Point(
            "parquet",
            variant="zstd",
            options=options,
            fsync="none",
            cache=cache,
            pattern=pattern,
            batch_size=8,
            **extra,
        )
        (read,) = measure.run_read(point, stream, store_dir, env=ENV)
        assert read["operation"] == "read" and read["read_pattern"] == pattern
        assert read["cache"] == cache
        assert read["images_read"] == (12 if pattern == "random_single" else 40)
        assert read["seconds"] > 0
        assert math.isfinite(read["seconds"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
