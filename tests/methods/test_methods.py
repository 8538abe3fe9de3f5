"""Storage methods (png, lmdb, hdf5, npy): roundtrips, random access, variants, errors."""

from __future__ import annotations

import json
import os
import pickle
import re
import types
from pathlib import Path

import h5py
import lmdb
import numpy as np
import pytest
from ci import unavailable

from imgbench import methods
from imgbench.data.pool import tile
from imgbench.harness import measure
from imgbench.methods import available_methods, contract_problems, get_method, resolve_options
from imgbench.methods import hdf5 as hdf5_method
from imgbench.methods import lmdb as lmdb_method
from imgbench.methods import png as png_method

METHODS = available_methods()

# Every option combination each method's variants may use (besides the default).
VARIANTS = [
    ("png", {}),
    ("png", {"compress_level": 1}),
    ("png", {"compress_level": 6}),
    ("png", {"compress_level": 0}),
    ("png", {"compress_level": 9}),
    *[
        ("hdf5", {"chunks": chunks, "compression": compression})
        for chunks in ("none", "image")
        for compression in ("none", "gzip", "lzf")
    ],
    ("hdf5", {"chunks": "image", "compression": "gzip", "compression_opts": 4}),
    *[
        ("lmdb", {"value_format": value_format, "writemap": writemap, "sync": sync})
        for value_format in ("raw", "pickle")
        for writemap in (False, True)
        for sync in (None, False, True)
    ],
    ("npy", {}),
]


def random_set(count: int, height: int = 32, width: int | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, height, width or height, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count).astype(np.uint8)
    return images, labels


def smooth_set(count: int, size: int = 32):
    """Compressible images (gradients), so compression levels change the file size."""
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1) % 256
    images = np.stack([(base + i) % 256 for i in range(count)]).astype(np.uint8)
    return images, (np.arange(count) % 10).astype(np.uint8)


def store_fresh(method: str, store_dir: Path, images, labels, *, options=None):
    store_dir.mkdir(parents=True)
    methods.store(method, store_dir, images, labels, options)
    return store_dir


def assert_same(got, images, labels):
    got_images, got_labels = got
    assert got_images.dtype == np.uint8
    assert got_images.shape == images.shape
    assert np.array_equal(got_images, images)
    assert got_labels.dtype == labels.dtype
    assert got_labels.shape == labels.shape
    assert np.array_equal(got_labels, labels)


def reader_get(method: str, store_dir: Path, indices, *, readahead=True):
    reader = get_method(method).open_reader(store_dir, readahead=readahead)
    try:
        return reader.get(indices)
    finally:
        reader.close()


# --- the interface -------------------------------------------------------------------------


def test_the_shipped_methods_are_available():
    # Not the exact list: a new module in methods/ is a new method, nothing else to edit.
    assert set(METHODS) <= set(available_methods())
    assert available_methods() == sorted(available_methods())


@pytest.mark.parametrize("method", available_methods())
def test_module_keeps_the_method_contract(method):
    module = get_method(method)
    assert contract_problems(module) == []
    assert resolve_options(module, None) == module.OPTIONS
    assert resolve_options(module, {}) == module.OPTIONS


@pytest.mark.parametrize(
    ("method", "packages", "library"),
    [("png", ("Pillow",), "zlib"), ("lmdb", ("lmdb",), "lmdb_c"), ("hdf5", ("h5py",), "hdf5_c")],
)
def test_format_methods_declare_their_package_and_report_its_c_library(method, packages, library):
    module = get_method(method)
    assert packages == module.PACKAGES
    versions = module.library_versions()
    assert list(versions) == [library]
    assert re.fullmatch(r"\d+(\.\d+)+", versions[library]), versions


def test_npy_needs_no_package_beyond_numpy():
    assert get_method("npy").PACKAGES == ()
    assert not hasattr(get_method("npy"), "library_versions")


def test_contract_problems_name_what_a_module_lacks():
    module = types.ModuleType("imgbench.methods.half")
    module.DESCRIPTION = "two\nlines"
    module.OPTIONS = {}
    module.store = lambda *args, **kwargs: None
    problems = contract_problems(module)
    assert problems[0].startswith("DESCRIPTION")
    assert problems[1].startswith("PACKAGES")
    assert problems[2:] == ["disk_bytes()", "read()", "read_batches()", "open_reader()"]


@pytest.mark.parametrize("method", METHODS)
def test_module_store_takes_the_resolved_options_only(method, tmp_path):
    """The harness resolves options once: a method's own store needs the complete dict
    (no default, no resolving of its own); methods.store resolves for everyone else."""
    images, labels = random_set(2)
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    with pytest.raises(TypeError, match="options"):
        get_method(method).store(store_dir, images, labels)
    get_method(method).store(store_dir, images, labels, options=dict(get_method(method).OPTIONS))
    assert_same(get_method(method).read(store_dir), images, labels)


def test_get_method_refuses_an_unknown_name():
    with pytest.raises(ValueError, match=r"unknown storage method 'tiff'.*methods/tiff\.py"):
        get_method("tiff")


def test_resolve_options_overrides_defaults_without_changing_them():
    resolved = resolve_options(png_method, {"compress_level": 1})
    assert resolved == {
        "encoding": "png",
        "quality": 95,
        "subsampling": None,
        "lossless": True,
        "compress_level": 1,
    }
    assert png_method.OPTIONS["compress_level"] == 6
    resolved = resolve_options(lmdb_method, {"writemap": True})
    assert resolved == {
        "encoding": "raw",
        "quality": 95,
        "subsampling": None,
        "lossless": True,
        "compress_level": 6,
        "value_format": "raw",
        "writemap": True,
        "sync": None,
    }


@pytest.mark.parametrize("method", METHODS)
def test_unknown_option_names_are_refused(method, tmp_path):
    module = get_method(method)
    with pytest.raises(ValueError, match=rf"method {method} has no option bogus_level"):
        resolve_options(module, {"bogus_level": 1})
    images, labels = random_set(2)
    with pytest.raises(ValueError, match=rf"method {method} has no option bogus_level"):
        store_fresh(method, tmp_path / "store", images, labels, options={"bogus_level": 1})


def test_unknown_option_error_lists_the_known_options():
    with pytest.raises(ValueError, match=r"options: chunks, compression, compression_opts"):
        resolve_options(hdf5_method, {"chunk": "image"})
    with pytest.raises(ValueError, match=r"options: none"):
        resolve_options(get_method("npy"), {"anything": 1})


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("lmdb", {"value_format": "json"}, r"value_format must be one of raw, pickle, not 'json'"),
        ("lmdb", {"writemap": 1}, r"writemap must be one of false, true, not 1"),
        ("lmdb", {"sync": "yes"}, r"sync must be one of null, true, false, not 'yes'"),
        ("hdf5", {"chunks": "row"}, r"chunks must be one of none, image, not 'row'"),
        (
            "hdf5",
            {"compression": "zstd"},
            r"compression must be one of none, gzip, lzf, not 'zstd'",
        ),
        ("hdf5", {"compression_opts": 12}, r"compression_opts must be one of null, 0, 1, .*not 12"),
        ("png", {"compress_level": 10}, r"compress_level must be one of 0, 1, .*, 9, not 10"),
        ("png", {"compress_level": True}, r"compress_level must be one of .*not True"),
        ("png", {"encoding": "gif"}, r"encoding must be one of raw, png, jpeg, webp, not 'gif'"),
        ("png", {"quality": 0}, r"quality must be one of 1 to 100, not 0"),
        ("png", {"lossless": "yes"}, r"lossless must be one of true, false, not 'yes'"),
        ("lmdb", {"encoding": "tiff"}, r"encoding must be one of raw, png, jpeg, webp"),
    ],
)
def test_bad_option_values_are_refused(method, options, message, tmp_path):
    images, labels = random_set(2)
    with pytest.raises(ValueError, match=message):
        store_fresh(method, tmp_path / "store", images, labels, options=options)


# --- roundtrips ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_roundtrip_one_image(method, tmp_path):
    images, labels = random_set(1, seed=1)
    store_dir = store_fresh(method, tmp_path / "store", images, labels)
    assert_same(get_method(method).read(store_dir), images, labels)
    assert_same(reader_get(method, store_dir, [0]), images, labels)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("count", "height", "width"), [(37, 32, 32), (11, 48, 48), (5, 20, 36)], ids=str
)
def test_roundtrip_many_images(method, count, height, width, tmp_path):
    images, labels = random_set(count, height, width, seed=count)
    store_dir = store_fresh(method, tmp_path / "store", images, labels)
    got_images, got_labels = get_method(method).read(store_dir)
    assert got_images.shape == (count, height, width, 3)
    assert_same((got_images, got_labels), images, labels)


@pytest.mark.parametrize("method", METHODS)
def test_labels_keep_full_uint8_range(method, tmp_path):
    images, _ = random_set(6)
    labels = np.array([0, 9, 255, 128, 1, 7], dtype=np.uint8)
    store_dir = store_fresh(method, tmp_path / "store", images, labels)
    assert_same(get_method(method).read(store_dir), images, labels)


@pytest.mark.parametrize("method", METHODS)
def test_random_access_returns_requested_order(method, tmp_path):
    images, labels = random_set(37, seed=3)
    store_dir = store_fresh(method, tmp_path / "store", images, labels)
    reader = get_method(method).open_reader(store_dir)
    try:
        for indices in (
            [30, 2, 2, 17, 0, 36, 2],
            np.array([36, 35, 34, 0], dtype=np.int64),
            [5],
            list(range(37))[::-1],
            np.random.default_rng(0).permutation(37),
        ):
            got_images, got_labels = reader.get(indices)
            index = np.asarray(indices)
            assert got_images.shape == (len(index), 32, 32, 3)
            assert got_images.dtype == np.uint8
            assert np.array_equal(got_images, images[index])
            assert np.array_equal(got_labels, labels[index])
    finally:
        reader.close()


@pytest.mark.parametrize("method", METHODS)
def test_reader_get_returns_independent_arrays(method, tmp_path):
    """A batch stays valid after the reader is closed (no views into a closed map)."""
    images, labels = random_set(8, seed=4)
    store_dir = store_fresh(method, tmp_path / "store", images, labels)
    got_images, got_labels = reader_get(method, store_dir, [7, 1, 3])
    assert np.array_equal(got_images, images[[7, 1, 3]])
    assert np.array_equal(got_labels, labels[[7, 1, 3]])


@pytest.mark.parametrize(
    ("method", "options"),
    VARIANTS,
    ids=[f"{m}-" + "-".join(f"{k}={v}" for k, v in o.items()) for m, o in VARIANTS],
)
def test_every_variant_roundtrips(method, options, tmp_path):
    images, labels = random_set(9, 24, seed=5)
    store_dir = store_fresh(method, tmp_path / "store", images, labels, options=options)
    module = get_method(method)
    assert_same(module.read(store_dir), images, labels)
    indices = [8, 0, 4, 4, 1]
    assert_same(reader_get(method, store_dir, indices), images[indices], labels[indices])


# --- method specifics ----------------------------------------------------------------------


def test_png_writes_one_file_per_image_plus_labels_csv(tmp_path):
    images, labels = random_set(13, seed=6)
    store_dir = store_fresh("png", tmp_path / "store", images, labels)
    names = sorted(p.name for p in store_dir.iterdir())
    assert len(names) == 15
    assert set(names) == {f"{i}.png" for i in range(13)} | {"labels.csv", "format.json"}
    assert json.loads((store_dir / "format.json").read_text()) == {
        "encoding": "png",
        "shape": [32, 32, 3],
    }
    rows = (store_dir / "labels.csv").read_text().splitlines()
    assert rows[0] == "index,label"
    assert rows[1:] == [f"{i},{label}" for i, label in enumerate(labels.tolist())]


def test_png_compress_level_reaches_the_encoder(tmp_path):
    images, labels = smooth_set(4)
    stored = store_fresh("png", tmp_path / "l0", images, labels, options={"compress_level": 0})
    packed = store_fresh("png", tmp_path / "l9", images, labels, options={"compress_level": 9})
    size_stored = sum(p.stat().st_size for p in stored.glob("*.png"))
    size_packed = sum(p.stat().st_size for p in packed.glob("*.png"))
    assert size_stored > 2 * size_packed


@pytest.mark.parametrize("chunks", ["none", "image"])
@pytest.mark.parametrize("compression", ["none", "gzip", "lzf"])
def test_hdf5_layout_follows_options(chunks, compression, tmp_path):
    images, labels = random_set(5, seed=7)
    options = {"chunks": chunks, "compression": compression}
    store_dir = store_fresh("hdf5", tmp_path / "store", images, labels, options=options)
    assert sorted(p.name for p in store_dir.iterdir()) == [hdf5_method.FILE_NAME]
    with h5py.File(store_dir / hdf5_method.FILE_NAME, "r") as handle:
        dataset = handle["images"]
        assert dataset.dtype == np.uint8
        if chunks == "none" and compression == "none":
            assert dataset.chunks is None
        else:  # compression implies per-image chunks
            assert dataset.chunks == (1, 32, 32, 3)
        assert dataset.compression == (None if compression == "none" else compression)


def test_hdf5_gzip_level_is_passed(tmp_path):
    images, labels = random_set(3)
    options = {"chunks": "image", "compression": "gzip", "compression_opts": 7}
    store_dir = store_fresh("hdf5", tmp_path / "store", images, labels, options=options)
    with h5py.File(store_dir / hdf5_method.FILE_NAME, "r") as handle:
        assert handle["images"].compression_opts == 7


@pytest.mark.parametrize("value_format", ["raw", "pickle"])
def test_lmdb_value_format_is_what_is_stored(value_format, tmp_path):
    images, labels = random_set(4, seed=8)
    options = {"value_format": value_format}
    store_dir = store_fresh("lmdb", tmp_path / "store", images, labels, options=options)
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
    store_dir = store_fresh("lmdb", tmp_path / "store", images, labels, options=options)
    assert seen[0]["sync"] is expected
    assert seen[0]["metasync"] is expected
    assert seen[0]["writemap"] is True
    assert synced == ([True] if expected else [])
    monkeypatch.undo()
    assert_same(lmdb_method.read(store_dir), images, labels)


@pytest.mark.parametrize("method", METHODS)
def test_store_takes_no_fsync_argument(method, tmp_path):
    """Durability is the harness's flush step now, not the method's."""
    images, labels = random_set(2)
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    with pytest.raises(TypeError, match="fsync"):
        get_method(method).store(store_dir, images, labels, fsync=True)


# --- readahead -----------------------------------------------------------------------------


def mapping_flags(path: Path) -> list[list[str]]:
    """VmFlags of every mapping of ``path`` in this process (``rr``: MADV_RANDOM)."""
    target = str(Path(path).resolve())
    flags, inside = [], False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and ":" not in fields[0]:
            inside = len(fields) >= 6 and " ".join(fields[5:]) == target
        elif inside and line.startswith("VmFlags:"):
            flags.append(fields[1:])
    return flags


@pytest.mark.parametrize(("method", "file_name"), [("npy", "images.npy"), ("lmdb", "data.mdb")])
@pytest.mark.parametrize("readahead", [True, False])
def test_memory_mapped_readers_advise_random_access(method, file_name, readahead, tmp_path):
    if not Path("/proc/self/smaps").exists():
        unavailable("no /proc/self/smaps (not Linux)")
    images, labels = random_set(40, seed=12)
    store_dir = store_fresh(method, tmp_path / "store", images, labels)
    reader = get_method(method).open_reader(store_dir, readahead=readahead)
    try:
        got = reader.get([39, 0, 17])
        flags = mapping_flags(store_dir / file_name)
        assert flags, f"{file_name} is not mapped by the reader"
        assert all(("rr" in f) is (not readahead) for f in flags), flags
    finally:
        reader.close()
    assert_same(got, images[[39, 0, 17]], labels[[39, 0, 17]])


@pytest.mark.parametrize("method", ["hdf5", "png"])
@pytest.mark.parametrize("readahead", [True, False])
def test_file_readers_advise_random_access(method, readahead, tmp_path, monkeypatch):
    images, labels = random_set(12, seed=13)
    store_dir = store_fresh(method, tmp_path / "store", images, labels)
    advised = []
    real_fadvise = os.posix_fadvise

    def recording_fadvise(fd, offset, length, advice):
        advised.append((os.readlink(f"/proc/self/fd/{fd}"), advice))
        return real_fadvise(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", recording_fadvise)
    indices = [11, 3, 3, 0]
    got = reader_get(method, store_dir, indices, readahead=readahead)
    assert_same(got, images[indices], labels[indices])
    random_files = {Path(name).name for name, advice in advised if advice == os.POSIX_FADV_RANDOM}
    if readahead:
        assert random_files == set()
    elif method == "hdf5":
        assert random_files == {hdf5_method.FILE_NAME}
    else:  # one advice per image file opened
        assert random_files == {f"{i}.png" for i in set(indices)}
        assert len([a for a in advised if a[1] == os.POSIX_FADV_RANDOM]) == len(indices)


@pytest.mark.parametrize("method", METHODS)
def test_readers_without_readahead_return_the_same_images(method, tmp_path):
    images, labels = random_set(37, seed=14)
    store_dir = store_fresh(method, tmp_path / "store", images, labels)
    indices = np.random.default_rng(1).integers(0, 37, size=25)
    for readahead in (True, False):
        assert_same(
            reader_get(method, store_dir, indices, readahead=readahead),
            images[indices],
            labels[indices],
        )


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
    store_dir = store_fresh("lmdb", tmp_path / "store", images, labels, options=options)
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
        store_fresh("lmdb", tmp_path / f"s{size}", images, labels, options={"value_format": "raw"})
        stream = tile(images, labels, 200, chunk_images=9)
        store_fresh(
            "lmdb", tmp_path / f"t{size}", stream, stream.labels, options={"value_format": "raw"}
        )
    # In one piece: images + metadata; 200 images of a 40-image pool in chunks of at most
    # 9 (cut at the pool's end): one transaction per chunk + metadata.
    assert attempts == ([1] * 2 + [1] * (chunks + 1)) * 2
    images, labels = random_set(0)
    assert lmdb_method.estimate_map_size(images, labels) >= lmdb_method.MIN_MAP_SIZE
    stream = tile(*random_set(3, 64), 1000)
    assert lmdb_method.estimate_map_size(stream, stream.labels) == lmdb_method.map_bytes(
        1000, 64 * 64 * 3, 1000
    )


def test_npy_store_files(tmp_path):
    images, labels = random_set(3)
    store_dir = store_fresh("npy", tmp_path / "store", images, labels)
    assert sorted(p.name for p in store_dir.iterdir()) == ["images.npy", "labels.npy"]


# --- a store is always fresh ---------------------------------------------------------------

ENV = {"host": "testhost", "store_fs_type": "testfs"}


@pytest.mark.parametrize("method", METHODS)
def test_run_store_replaces_an_older_store(method, tmp_path):
    """The harness removes whatever is in the store directory before storing (methods get
    an empty directory), so a second, smaller store does not append to the first."""
    store_dir = tmp_path / "store"
    old_images, old_labels = random_set(37, seed=10)
    measure.run_store(method, old_images, old_labels, store_dir, fsync="none", repeat=1, env=ENV)
    (store_dir / "stale.bin").write_bytes(b"left over")
    images, labels = random_set(5, seed=11)
    (row,) = measure.run_store(method, images, labels, store_dir, fsync="syncfs", repeat=2, env=ENV)
    assert not (store_dir / "stale.bin").exists()
    assert_same(get_method(method).read(store_dir), images, labels)
    assert row["cutoff"] == 5 and row["images_read"] == 5
    assert row["operation"] == "store" and row["method"] == method
    files = sorted(p for p in store_dir.rglob("*") if p.is_file())
    assert row["n_files"] == len(files)
    if method == "png":
        assert len(files) == 7  # 5 images, labels.csv, format.json; none of the older 37


def test_run_store_passes_variant_options(tmp_path):
    images, labels = random_set(3)
    store_dir = tmp_path / "store"
    (row,) = measure.run_store(
        "hdf5",
        images,
        labels,
        store_dir,
        fsync=False,
        repeat=1,
        env=ENV,
        variant="lzf",
        options={"compression": "lzf"},
    )
    assert row["variant"] == "lzf"
    with h5py.File(store_dir / hdf5_method.FILE_NAME, "r") as handle:
        assert handle["images"].compression == "lzf"
