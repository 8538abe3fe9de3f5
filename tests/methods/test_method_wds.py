"""The wds method (WebDataset tar shards + an offset index): its options, roundtrips in
every encoding, random access, several shards, the tar layout, the disk bound and the
harness (the contract every method keeps is in test_contract.py)."""

from __future__ import annotations

import gc
import json
import os
import random
import re
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from method_helpers import (
    ENV,
    MIB,
    advised_random,
    assert_same,
    photo_set,
    reader_get,
    record_fadvise,
    store_fresh,
)
from skimage import data as photos

from imgbench.data.pool import tile
from imgbench.harness import measure, space
from imgbench.harness.point import Point
from imgbench.methods import encoding, resolve_options
from imgbench.methods import wds as wds_method
from imgbench.system import fsutil

LOSSLESS = [{"encoding": "raw"}, {"encoding": "png"}, {"encoding": "webp"}]
RAW_1MIB = {"encoding": "raw", "shard_bytes": MIB}  # 64 x 64 images: 85 a shard
LOSSY = [{"encoding": "jpeg"}, {"encoding": "webp", "lossless": False, "quality": 90}]


def ids(options: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in options.items())


def batches(store_dir: Path, batch_images: int):
    got = list(wds_method.read_batches(store_dir, batch_images))
    assert all(len(images) <= batch_images for images, _ in got)
    if not got:
        return None
    return np.concatenate([i for i, _ in got]), np.concatenate([labels for _, labels in got])


def load_index(store_dir: Path) -> dict:
    return json.loads((store_dir / wds_method.INDEX_FILE).read_text())


# --- the options --------------------------------------------------------------------------


def test_options_packages_and_codec_versions():
    assert wds_method.PACKAGES == ("webdataset", "Pillow")
    assert wds_method.OPTIONS == {
        "encoding": "png",
        "quality": 95,
        "subsampling": None,
        "lossless": True,
        "compress_level": 6,
        "effort": None,
        "codec": None,
        "shard_bytes": 256 * MIB,
    }
    assert wds_method.CHOICES["shard_bytes"].minimum == MIB
    versions = wds_method.library_versions()
    assert "zlib" in versions and all(isinstance(v, str) for v in versions.values())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"encoding": "gif"},
            r"option encoding must be one of raw, png, jpeg, webp, qoi, jpegxl, avif, not 'gif'",
        ),
        ({"quality": 0}, r"option quality must be one of 1 to 100, not 0"),
        ({"lossless": 1}, r"option lossless must be one of true, false, not 1"),
        ({"shard_bytes": 1000}, r"option shard_bytes must be .*at least 1048576.*not 1000"),
        ({"shard_bytes": 0}, r"option shard_bytes must be .*not 0"),
        ({"shard_bytes": -1}, r"option shard_bytes must be .*not -1"),
        ({"shard_bytes": True}, r"option shard_bytes must be .*not True"),
        ({"shard_bytes": "256MiB"}, r"option shard_bytes must be .*not '256MiB'"),
        ({"shard_size": MIB}, r"method wds has no option shard_size"),
    ],
    ids=str,
)
def test_bad_option_values_are_refused(options, message, tmp_path):
    images, labels = photo_set(2)
    with pytest.raises(ValueError, match=message):
        store_fresh("wds", tmp_path / "store", images, labels, options)
    assert not any((tmp_path / "store").iterdir())


def test_the_space_check_refuses_a_small_shard_bytes_too():
    with pytest.raises(ValueError, match=r"shard_bytes .* e\.g\. 268435456"):
        space.store_bytes("wds", 10, 3072, {"shard_bytes": MIB - 1})


# --- roundtrips ----------------------------------------------------------------------------


@pytest.mark.parametrize("options", LOSSLESS, ids=ids)
def test_lossless_roundtrip_is_exact(options, tmp_path):
    images, labels = photo_set(23, 32, seed=1)
    store_dir = store_fresh("wds", tmp_path / "store", images, labels, options)
    assert load_index(store_dir)["encoding"] == options["encoding"]
    assert_same(wds_method.read(store_dir), images, labels)
    for batch_images in (1, 3, 100):
        assert_same(batches(store_dir, batch_images), images, labels)
    indices = [22, 0, 7, 7, 13]
    assert_same(reader_get("wds", store_dir, indices), images[indices], labels[indices])


@pytest.mark.parametrize("options", LOSSY, ids=ids)
def test_lossy_roundtrip_keeps_30_db(options, tmp_path):
    images, labels = photo_set(12, 48, seed=2)
    store_dir = store_fresh("wds", tmp_path / "store", images, labels, options)
    got_images, got_labels = wds_method.read(store_dir)
    assert got_images.shape == images.shape and got_images.dtype == np.uint8
    assert np.array_equal(got_labels, labels)
    assert (encoding.psnr_per_image_db(images, got_images) >= 30).all()
    assert not np.array_equal(got_images, images)  # lossy: not the same pixels
    # Every read path decodes the same stored bytes to the same pixels.
    assert_same(batches(store_dir, 5), got_images, labels)
    indices = [11, 3, 3, 0]
    assert_same(reader_get("wds", store_dir, indices), got_images[indices], labels[indices])


def test_an_empty_store_reads_back_empty(tmp_path):
    images = np.empty((0, 16, 16, 3), dtype=np.uint8)
    labels = np.empty(0, dtype=np.uint8)
    store_dir = store_fresh("wds", tmp_path / "store", images, labels)
    assert sorted(p.name for p in store_dir.iterdir()) == [wds_method.INDEX_FILE]
    assert_same(wds_method.read(store_dir), images, labels)
    assert list(wds_method.read_batches(store_dir, 4)) == []


def test_read_batches_names_a_store_without_its_index(tmp_path):
    epoch = wds_method.read_batches(tmp_path / "missing", 4)  # nothing opened yet
    with pytest.raises(FileNotFoundError, match="no index.json: the wds store is incomplete"):
        next(epoch)


def test_streaming_leaves_no_warning_open_file_or_random_state(tmp_path):
    """webdataset's own opener leaves shard files to the garbage collector and its
    WebDataset draws a seed from ``random``; the method closes each shard and fixes the
    seed, also when an epoch is abandoned midway."""
    images, labels = photo_set(200, 64, seed=5)
    store_dir = store_fresh("wds", tmp_path / "store", images, labels, RAW_1MIB)
    assert len(load_index(store_dir)["shards"]) >= 3
    fds = set(os.listdir("/proc/self/fd"))
    state = random.getstate()
    gc.disable()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert_same(batches(store_dir, 16), images, labels)
            epoch = wds_method.read_batches(store_dir, 100)
            next(epoch)
            epoch.close()
        assert set(os.listdir("/proc/self/fd")) == fds
    finally:
        gc.enable()
    assert random.getstate() == state


# --- random access -------------------------------------------------------------------------


def test_reader_refuses_indices_outside_the_store(tmp_path):
    images, labels = photo_set(37, seed=6)
    store_dir = store_fresh("wds", tmp_path / "store", images, labels)
    reader = wds_method.open_reader(store_dir)
    try:
        with pytest.raises(IndexError):
            reader.get([37])
    finally:
        reader.close()


@pytest.mark.parametrize("readahead", [True, False])
def test_reader_advises_random_access_once_per_shard(readahead, tmp_path, monkeypatch):
    images, labels = photo_set(200, 64, seed=8)
    options = {"encoding": "raw", "shard_bytes": MIB}
    store_dir = store_fresh("wds", tmp_path / "store", images, labels, options)
    shards = load_index(store_dir)["shards"]
    advised = record_fadvise(monkeypatch)
    indices = [199, 0, 100, 0, 199, 150]
    got = reader_get("wds", store_dir, indices, readahead=readahead)
    assert_same(got, images[indices], labels[indices])
    index = load_index(store_dir)["samples"]["shard"]
    touched = sorted({shards[index[i]] for i in indices})
    assert len(touched) >= 2
    if readahead:
        assert advised == []
    else:
        assert len(advised) == len(touched)
        assert sorted(Path(name).name for name in advised_random(advised)) == touched


def test_a_reader_works_in_a_forked_process(tmp_path):
    images, labels = photo_set(30, seed=9)
    store_dir = store_fresh("wds", tmp_path / "store", images, labels)
    reader = wds_method.open_reader(store_dir)
    reader.get([0])  # opened a shard in the parent
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reads through the inherited reader and its own
        try:
            ok = np.array_equal(reader.get([29, 3])[0], images[[29, 3]])
            ok = ok and np.array_equal(reader_get("wds", store_dir, [5])[0], images[[5]])
            os.write(write_end, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 1)
    os.close(read_end)
    os.waitpid(pid, 0)
    reader.close()
    assert answer == b"1"


# --- the layout: shards, tar members, the index --------------------------------------------


def test_several_shards_each_within_shard_bytes(tmp_path):
    images, labels = photo_set(200, 64, seed=10)
    store_dir = store_fresh("wds", tmp_path / "store", images, labels, RAW_1MIB)
    index = load_index(store_dir)
    shards = index["shards"]
    assert len(shards) >= 3
    assert shards == [f"shard-{n:06d}.tar" for n in range(len(shards))]
    assert sorted(p.name for p in store_dir.iterdir()) == sorted([*shards, "index.json"])
    assert all((store_dir / name).stat().st_size <= MIB for name in shards)
    assert (index["count"], index["shape"], index["dtype"]) == (200, [64, 64, 3], "uint8")
    columns = index["samples"]
    assert columns["shard"] == sorted(columns["shard"])
    assert set(columns["shard"]) == set(range(len(shards)))
    assert columns["label"] == labels.tolist()
    assert set(columns["size"]) == {64 * 64 * 3}
    # The index points at the image bytes themselves.
    for i in (0, 77, 199):
        with open(store_dir / shards[columns["shard"][i]], "rb") as handle:
            handle.seek(columns["offset"][i])
            assert handle.read(columns["size"][i]) == images[i].tobytes()
    assert_same(wds_method.read(store_dir), images, labels)
    assert_same(batches(store_dir, 7), images, labels)
    indices = np.random.default_rng(1).permutation(200)
    assert_same(reader_get("wds", store_dir, indices), images[indices], labels[indices])


@pytest.mark.parametrize("options", [{"encoding": "png"}, {"encoding": "jpeg"}], ids=ids)
def test_shards_are_plain_tar_files_in_the_webdataset_layout(options, tmp_path):
    images, labels = photo_set(9, seed=11)
    store_dir = store_fresh("wds", tmp_path / "store", images, labels, options)
    extension = encoding.EXTENSIONS[options["encoding"]]
    names, payload, members = [], {}, {}
    for shard in load_index(store_dir)["shards"]:
        with tarfile.open(store_dir / shard) as archive:
            for member in archive:
                assert member.isreg()
                names.append(member.name)
                members[member.name] = (member.offset_data, member.size)
                payload[member.name] = archive.extractfile(member).read()
    keys = [f"{i:09d}" for i in range(9)]
    assert names == [name for key in keys for name in (f"{key}.cls", f"{key}.{extension}")]
    # The index's offsets and sizes are tarfile's own for the image members.
    columns = load_index(store_dir)["samples"]
    assert list(zip(columns["offset"], columns["size"], strict=True)) == [
        members[f"{key}.{extension}"] for key in keys
    ]
    assert [payload[f"{key}.cls"] for key in keys] == [str(v).encode() for v in labels]
    assert payload[f"{keys[4]}.{extension}"] == encoding.encode(
        images[4], resolve_options(wds_method, options)
    )


def test_stock_webdataset_decodes_the_shards(tmp_path):
    """Any WebDataset user reads the store: its own decoder turns ``.png`` into pixels and
    ``.cls`` into the label."""
    import webdataset

    images, labels = photo_set(11, seed=12)
    store_dir = store_fresh("wds", tmp_path / "store", images, labels)
    urls = [str(store_dir / name) for name in load_index(store_dir)["shards"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # its opener leaves files to gc
        dataset = webdataset.WebDataset(urls, shardshuffle=False).decode("rgb8")
        got = list(dataset.to_tuple("png", "cls"))
        del dataset
        gc.collect()
    assert np.array_equal(np.stack([image for image, _ in got]), images)
    assert [label for _, label in got] == labels.tolist()


def test_a_sample_larger_than_shard_bytes_gets_a_shard_alone(tmp_path):
    tall = np.concatenate([photos.astronaut()] * 2)[:700]  # 700 x 512 x 3: over 1 MiB
    images = np.stack([tall, tall[::-1], tall[:, ::-1]])
    labels = np.array([1, 2, 3], dtype=np.uint8)
    assert images[0].nbytes > MIB
    options = {"encoding": "raw", "shard_bytes": MIB}
    store_dir = store_fresh("wds", tmp_path / "store", images, labels, options)
    assert load_index(store_dir)["samples"]["shard"] == [0, 1, 2]
    assert_same(wds_method.read(store_dir), images, labels)


def test_a_tiled_stream_writes_the_same_store_as_the_array(tmp_path):
    pool_images, pool_labels = photo_set(10, seed=13)
    stream = tile(pool_images, pool_labels, 45, chunk_images=4)
    whole = stream.take(np.arange(45))
    options = {"encoding": "raw", "shard_bytes": MIB}
    streamed = store_fresh("wds", tmp_path / "streamed", stream, stream.labels, options)
    in_one = store_fresh("wds", tmp_path / "array", whole, stream.labels.copy(), options)
    files = sorted(p.name for p in streamed.iterdir())
    assert files == sorted(p.name for p in in_one.iterdir())
    for name in files:  # the same bytes (members carry a fixed mtime)
        assert (streamed / name).read_bytes() == (in_one / name).read_bytes()
    assert_same(wds_method.read(streamed), whole, stream.labels)


# --- broken stores -------------------------------------------------------------------------


def test_the_header_read_back_refuses_a_shard_unlike_what_was_written(tmp_path):
    images, labels = photo_set(3, seed=16)
    store_dir = store_fresh("wds", tmp_path / "store", images, labels, {"encoding": "raw"})
    shard = store_dir / "shard-000000.tar"
    written = []  # (name, size) of each member in the order TarWriter writes them
    for i in range(3):
        written += [(f"{i:09d}.cls", len(str(labels[i]))), (f"{i:09d}.raw", 3072)]
    offsets = wds_method._member_offsets(shard, written)
    assert offsets[1::2] == load_index(store_dir)["samples"]["offset"]
    with pytest.raises(RuntimeError, match=r"header at byte 0 is '000000000.cls'.*'x.cls'"):
        wds_method._member_offsets(shard, [("x.cls", written[0][1]), *written[1:]])
    with pytest.raises(RuntimeError, match=r"is '000000000.raw' of 3072 bytes, .* of 3071"):
        wds_method._member_offsets(shard, [written[0], (written[1][0], 3071), *written[2:]])
    with pytest.raises(RuntimeError, match="does not end where its 4 members do"):
        wds_method._member_offsets(shard, written[:4])


def test_a_store_that_disagrees_with_its_index_is_refused(tmp_path):
    images, labels = photo_set(200, 64, seed=14)
    store_dir = store_fresh("wds", tmp_path / "store", images, labels, RAW_1MIB)
    path = store_dir / wds_method.INDEX_FILE
    index = json.loads(path.read_text())

    def rewritten(**changes):
        path.write_text(json.dumps({**index, **changes}))
        return store_dir

    name = re.escape(str(store_dir))
    with pytest.raises(ValueError, match=rf"{name} streamed 200 samples, .* lists 201"):
        list(wds_method.read_batches(rewritten(count=201), 50))
    with pytest.raises(ValueError, match=rf"{name} streamed sample '000000199' where the end"):
        wds_method.read(rewritten(count=199))
    shards = index["shards"]
    with pytest.raises(ValueError, match=r"streamed sample '0000000\d\d' where sample 000000000"):
        wds_method.read(rewritten(shards=[shards[1], shards[0], *shards[2:]]))
    path.unlink()
    with pytest.raises(FileNotFoundError, match="incomplete"):
        wds_method.read(store_dir)
    with pytest.raises(FileNotFoundError, match="incomplete"):
        wds_method.open_reader(store_dir)


# --- the space bound -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "size", "options"),
    [
        (1, 32, {"encoding": "raw"}),
        (37, 32, {"encoding": "png"}),
        (200, 64, {"encoding": "raw", "shard_bytes": MIB}),
        (150, 64, {"encoding": "png", "compress_level": 0, "shard_bytes": MIB}),
        (40, 48, {"encoding": "jpeg", "quality": 100}),
        (40, 48, {"encoding": "webp"}),
    ],
    ids=str,
)
def test_disk_bytes_bounds_the_store(count, size, options, tmp_path):
    images, labels = photo_set(count, size, seed=count)
    images[0] = np.random.default_rng(0).integers(0, 256, images[0].shape)  # the worst case
    store_dir = store_fresh("wds", tmp_path / "store", images, labels, options)
    resolved = resolve_options(wds_method, options)
    bound = wds_method.disk_bytes(count, images[0].nbytes, resolved)
    on_disk = fsutil.disk_usage(store_dir).bytes_on_disk
    assert on_disk <= bound
    if options["encoding"] == "raw":  # and not far above what a raw store takes
        assert bound <= 1.3 * on_disk + 64 * 1024


def test_disk_bytes_grows_with_the_images_and_the_shards():
    options = dict(wds_method.OPTIONS)
    assert wds_method.disk_bytes(0, 3072, options) == 4096  # index.json
    small = wds_method.disk_bytes(1000, 3072, {**options, "shard_bytes": MIB})
    assert wds_method.disk_bytes(1000, 3072, options) < small
    assert wds_method.disk_bytes(2000, 3072, options) > wds_method.disk_bytes(1000, 3072, options)


# --- the harness ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options", [None, {"encoding": "raw", "shard_bytes": MIB}, {"encoding": "jpeg"}], ids=str
)
def test_the_harness_stores_and_reads_a_wds_store(options, tmp_path):
    images, labels = photo_set(20, 64, seed=15)
    if options and options.get("shard_bytes"):  # enough images for two shards
        images, labels = photo_set(100, 64, seed=15)
    store_dir = tmp_path / "store"
    point = Point("wds", options=options, fsync="none")
    (row,) = measure.run_store(point, (images, labels), store_dir, env=ENV)
    assert row["operation"] == "store" and row["method"] == "wds"
    assert row["images_read"] == len(images)
    assert row["n_files"] == len(load_index(store_dir)["shards"]) + 1
    if options and options["encoding"] == "jpeg":  # a lossy store's row carries its PSNR
        assert row["psnr_min_db"] >= encoding.IMAGE_PSNR_FLOOR_DB
        assert row["psnr_db"] >= encoding.STORE_PSNR_FLOOR_DB
        assert row["psnr_db"] >= row["psnr_p01_db"] >= row["psnr_min_db"]
    assert row["bytes_on_disk"] <= wds_method.disk_bytes(
        len(images), images[0].nbytes, resolve_options(wds_method, options)
    )
    common = {"fsync": "none", "options": options}
    for pattern, cache, extra in (
        ("whole", "cold", {}),
        ("whole", "warm", {}),
        ("shuffled", "cold", {"batch_size": 8}),
        ("shuffled", "warm", {"batch_size": 8, "readahead": "off", "readers": 2}),
    ):
        point = Point("wds", cache=cache, pattern=pattern, **extra, **common)
        (read,) = measure.run_read(point, (images, labels), store_dir, env=ENV)
        assert read["operation"] == "read" and read["read_pattern"] == pattern
        assert read["cache"] == cache and read["images_read"] == len(images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
