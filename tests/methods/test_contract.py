"""The method contract (``imgbench.methods``' docstring), checked for every available method:
a new module in ``workflow/imgbench/methods/`` is tested here without a line added. The
interface and its options, roundtrips, random access, stores written from a stream,
``read_batches`` epochs and the harness's fresh store. Each format's own specifics are in
``test_method_<name>.py``."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from ci import unavailable
from method_helpers import (
    ENV,
    advised_get,
    advised_random,
    assert_same,
    epoch,
    mapped_get,
    mapping_flags,
    open_files_under,
    random_set,
    reader_get,
    record_fadvise,
    request_orders,
    store_fresh,
)

from imgbench.data.pool import tile
from imgbench.harness import access, measure
from imgbench.harness.point import Point
from imgbench.methods import (
    OptionError,
    _base,
    available_methods,
    codecs,
    contract_problems,
    encoding,
    get_method,
    resolve_options,
)

REPO = Path(__file__).resolve().parents[2]
METHODS = available_methods()
POOL = 7
COUNT = 50

# Option combinations of the methods without a test file of their own for them (wds,
# parquet and zarr roundtrip their variants in theirs).
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


def pool_set(count: int = POOL, size: int = 8, seed: int = 0):
    """A small pool of noise images with distinct labels, to tile into streams."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)
    labels = rng.permutation(np.arange(count) % 256).astype(np.uint8)
    return images, labels


# --- the interface -------------------------------------------------------------------------


def test_methods_are_the_modules_of_the_package():
    """A new module in methods/ is a new method; the support modules are not methods."""
    assert sorted(METHODS) == METHODS
    assert {"npy", "png", "lmdb", "hdf5"} <= set(METHODS)
    assert not {"encoding", "_base"} & set(METHODS)
    for method in METHODS:
        assert get_method(method).__name__ == f"imgbench.methods.{method}"
    with pytest.raises(ValueError, match=r"unknown storage method 'tiff'.*methods/tiff\.py"):
        get_method("tiff")


@pytest.mark.parametrize("method", METHODS)
def test_module_keeps_the_method_contract(method):
    module = get_method(method)
    assert contract_problems(module) == []
    assert "\n" not in module.DESCRIPTION and module.DESCRIPTION.strip()
    # the defaults, with the codec (None: the encoding's default) resolved
    resolved = {**module.OPTIONS}
    if "codec" in resolved:
        resolved["codec"] = encoding.codec_of(module.OPTIONS)
        assert resolved["codec"] in ("none", *codecs.CODECS)
    assert resolve_options(module, None) == resolved
    assert resolve_options(module, {}) == resolved
    assert resolve_options(module, resolved) == resolved  # resolving again changes nothing
    assert set(getattr(module, "CHOICES", {})) <= set(module.OPTIONS)


@pytest.mark.parametrize("method", METHODS)
def test_packages_are_installed_and_c_libraries_report_versions(method):
    module = get_method(method)
    for package in module.PACKAGES:
        assert metadata.version(package), package
    if hasattr(module, "library_versions"):
        versions = module.library_versions()
        assert versions, "library_versions() names no library"
        for name, version in versions.items():
            assert isinstance(version, str) and version[0].isdigit(), (name, version)


FORMAT_LIBRARIES = ("PIL", "h5py", "lmdb", "webdataset", "pyarrow", "zarr", "numcodecs")
IMPORT_EACH_METHOD = f"""
import json, sys
from imgbench.methods import available_methods, get_method, resolve_options
loaded = {{}}
for name in available_methods():
    module = get_method(name)
    module.DESCRIPTION, module.PACKAGES
    module.disk_bytes(10, 3072, resolve_options(module, None))
    loaded[name] = sorted(m for m in {FORMAT_LIBRARIES!r} if m in sys.modules)
print(json.dumps(loaded))
"""


def test_importing_a_method_loads_no_format_library():
    """Config validation and the space check import every method for its names, options
    and disk bound: that loads numpy only, never a format library."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH_METHOD],
        env={**os.environ, "PYTHONPATH": str(REPO / "workflow")},
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = __import__("json").loads(done.stdout)
    assert sorted(loaded) == METHODS
    assert loaded == {method: [] for method in METHODS}


def test_contract_problems_name_what_a_module_lacks():
    module = types.ModuleType("imgbench.methods.half")
    module.DESCRIPTION = "two\nlines"
    module.OPTIONS = {}
    module.store = lambda *args, **kwargs: None
    problems = contract_problems(module)
    assert problems[0].startswith("DESCRIPTION")
    assert problems[1].startswith("PACKAGES")
    assert problems[2:] == ["disk_bytes()", "read()", "read_batches()", "open_reader()"]


def test_read_units_is_optional_but_a_function_when_defined():
    module = types.ModuleType("imgbench.methods.sharded")
    module.__dict__.update(
        {k: v for k, v in vars(get_method("npy")).items() if not k.startswith("__")}
    )
    assert contract_problems(module) == []
    module.read_units = [(0, 1)]
    assert contract_problems(module) == ["read_units() (a function, if defined)"]
    module.read_units = lambda store_dir: [(0, 1)]
    assert contract_problems(module) == []


@pytest.mark.parametrize("method", METHODS)
def test_module_store_takes_the_resolved_options_only(method, tmp_path):
    """The harness resolves options once: a method's own store needs the complete dict
    (no default, no resolving of its own, no fsync argument: durability is the
    harness's flush step); methods.store resolves for everyone else."""
    images, labels = random_set(2)
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    with pytest.raises(TypeError, match="options"):
        get_method(method).store(store_dir, images, labels)
    with pytest.raises(TypeError, match="fsync"):
        get_method(method).store(store_dir, images, labels, fsync=True)
    get_method(method).store(store_dir, images, labels, options=dict(get_method(method).OPTIONS))
    assert_same(get_method(method).read(store_dir), images, labels)


@pytest.mark.parametrize("method", METHODS)
def test_unknown_option_names_are_refused(method, tmp_path):
    module = get_method(method)
    with pytest.raises(ValueError, match=rf"method {method} has no option bogus_level"):
        resolve_options(module, {"bogus_level": 1})
    images, labels = random_set(2)
    with pytest.raises(ValueError, match=rf"method {method} has no option bogus_level"):
        store_fresh(method, tmp_path / "store", images, labels, {"bogus_level": 1})


def bad_values(allowed) -> list:
    """Values outside a ``CHOICES`` entry: below a range, or of the wrong type."""
    if isinstance(allowed, _base.WholeNumber):
        return [allowed.minimum - 1, -1, True, 2.5, "big", None]
    return [v for v in ("no-such-value", 1.5, 2**40) if v not in allowed]


@pytest.mark.parametrize("method", METHODS)
def test_values_outside_the_choices_are_refused_before_writing(method, tmp_path):
    """Every option with a ``CHOICES`` entry refuses values outside it, naming the option
    (``OptionError``, which the config validation turns into its sentence)."""
    module = get_method(method)
    images, labels = random_set(2)
    for option, allowed in getattr(module, "CHOICES", {}).items():
        for value in bad_values(allowed):
            with pytest.raises(OptionError) as caught:
                resolve_options(module, {option: value})
            error = caught.value
            assert (error.method, error.option, error.value) == (method, option, value)
            assert str(error).startswith(f"method {method} option {option} must be ")
            assert f"not {value!r}; " in str(error)
            with pytest.raises(OptionError):
                store_fresh(method, tmp_path / "store", images, labels, {option: value})
            assert not any((tmp_path / "store").iterdir())
            (tmp_path / "store").rmdir()


def test_resolve_options_overrides_defaults_without_changing_them():
    png, lmdb = get_method("png"), get_method("lmdb")
    resolved = resolve_options(png, {"compress_level": 1})
    assert resolved == {
        "encoding": "png",
        "quality": 95,
        "subsampling": None,
        "lossless": True,
        "compress_level": 1,
        "effort": None,
        "codec": "pillow",
    }
    assert png.OPTIONS["compress_level"] == 6
    resolved = resolve_options(lmdb, {"writemap": True})
    assert resolved == {
        "encoding": "raw",
        "quality": 95,
        "subsampling": None,
        "lossless": True,
        "compress_level": 6,
        "effort": None,
        "codec": "none",
        "value_format": "raw",
        "writemap": True,
        "sync": None,
    }


def test_unknown_option_error_lists_the_known_options():
    with pytest.raises(ValueError, match=r"options: chunks, compression, compression_opts"):
        resolve_options(get_method("hdf5"), {"chunk": "image"})
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
        (
            "png",
            {"encoding": "gif"},
            r"encoding must be one of raw, png, jpeg, webp, qoi, jpegxl, avif, not 'gif'",
        ),
        ("png", {"quality": 0}, r"quality must be one of 1 to 100, not 0"),
        ("png", {"lossless": "yes"}, r"lossless must be one of true, false, not 'yes'"),
        ("lmdb", {"encoding": "tiff"}, r"encoding must be one of raw, png, jpeg, webp"),
    ],
)
def test_bad_option_values_are_refused_in_the_words_of_the_config(
    method, options, message, tmp_path
):
    images, labels = random_set(2)
    with pytest.raises(ValueError, match=message):
        store_fresh(method, tmp_path / "store", images, labels, options)


@pytest.mark.parametrize("method", METHODS)
def test_store_refuses_mismatched_labels(method, tmp_path):
    images, labels = random_set(4)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        store_fresh(method, tmp_path / "store", images, labels[:3])


# --- roundtrips and random access ----------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_roundtrip_one_image(method, tmp_path):
    images, labels = random_set(1, seed=1)
    store_dir = store_fresh(method, tmp_path / "store", images, labels)
    assert_same(get_method(method).read(store_dir), images, labels)
    assert_same(reader_get(method, store_dir, [0]), images, labels)
    assert_same(reader_get(method, store_dir, [0, 0]), images[[0, 0]], labels[[0, 0]])


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
        for indices in request_orders(37):
            index = np.asarray(indices)
            assert_same(reader.get(indices), images[index], labels[index])
    finally:
        reader.close()


@pytest.mark.parametrize("method", METHODS)
def test_reader_get_returns_independent_arrays(method, tmp_path):
    """Each get is fresh memory: it stays valid after the reader is closed (no view into
    a closed map) and writing to one batch changes no other."""
    images, labels = random_set(8, seed=4)
    store_dir = store_fresh(method, tmp_path / "store", images, labels)
    reader = get_method(method).open_reader(store_dir)
    first_images, first_labels = reader.get([7, 1, 3])
    second_images, second_labels = reader.get([7, 1, 3])
    reader.close()
    assert not np.shares_memory(first_images, second_images)
    assert not np.shares_memory(first_labels, second_labels)
    first_images[:] = 0
    first_labels[:] = 0
    assert_same((second_images, second_labels), images[[7, 1, 3]], labels[[7, 1, 3]])


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


# Where the random-access advice of a reader without readahead is seen from outside: the
# file a reader memory-maps (flag ``rr`` of the map) or the files it advises with
# ``posix_fadvise`` (wds, parquet and zarr check theirs in their own files).
MAPPED_FILES = {"npy": "images.npy", "lmdb": "data.mdb"}
ADVISED_FILES = {
    "hdf5": lambda indices: ["images.h5"],
    "png": lambda indices: [f"{i}.png" for i in indices],
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("readahead", [True, False])
def test_every_reader_advises_random_access_exactly_without_readahead(
    method, readahead, tmp_path, monkeypatch
):
    """The advice part of the contract for any method, without naming its files (a new
    format is checked here without an edit): with ``readahead=False`` some file of the
    store is advised random while the reader reads (a memory map with VmFlags ``rr``, or
    ``POSIX_FADV_RANDOM`` on a descriptor); with readahead, none is. The tests below pin
    which files for the formats that ship."""
    if not Path("/proc/self/smaps").exists():
        unavailable("no /proc/self/smaps (not Linux)")
    images, labels = random_set(40, seed=12)
    store_dir = store_fresh(method, tmp_path / "store", images, labels).resolve()
    store_files = [path for path in store_dir.rglob("*") if path.is_file()]
    advised = record_fadvise(monkeypatch)
    reader = get_method(method).open_reader(store_dir, readahead=readahead)
    try:
        got = reader.get([39, 0, 17])
        mapped_random = [
            path for path in store_files if any("rr" in f for f in mapping_flags(path))
        ]
    finally:
        reader.close()
    fadvised = [path for path in advised_random(advised) if Path(path).is_relative_to(store_dir)]
    assert_same(got, images[[39, 0, 17]], labels[[39, 0, 17]])
    if readahead:
        assert (mapped_random, fadvised) == ([], [])
    else:
        assert mapped_random or fadvised, f"{method}: no file of the store advised random"


@pytest.mark.parametrize("method", sorted(MAPPED_FILES))
@pytest.mark.parametrize("readahead", [True, False])
def test_memory_mapped_readers_advise_random_access(method, readahead, tmp_path):
    images, labels = random_set(40, seed=12)
    store_dir = store_fresh(method, tmp_path / "store", images, labels)
    indices = [39, 0, 17]
    got, flags = mapped_get(method, store_dir, MAPPED_FILES[method], indices, readahead=readahead)
    assert all(("rr" in f) is (not readahead) for f in flags), flags
    assert_same(got, images[indices], labels[indices])


@pytest.mark.parametrize("method", sorted(ADVISED_FILES))
@pytest.mark.parametrize("readahead", [True, False])
def test_file_readers_advise_random_access(method, readahead, tmp_path, monkeypatch):
    """hdf5: the one descriptor of HDF5's own driver; png: each image file it opens."""
    images, labels = random_set(12, seed=13)
    store_dir = store_fresh(method, tmp_path / "store", images, labels)
    indices = [11, 3, 3, 0]
    got, advised = advised_get(method, store_dir, indices, monkeypatch, readahead=readahead)
    assert_same(got, images[indices], labels[indices])
    expected = [] if readahead else ADVISED_FILES[method](indices)
    assert sorted(advised) == sorted(expected)


@pytest.mark.parametrize(
    ("method", "options"),
    VARIANTS,
    ids=[f"{m}-" + "-".join(f"{k}={v}" for k, v in o.items()) for m, o in VARIANTS],
)
def test_every_variant_roundtrips(method, options, tmp_path):
    images, labels = random_set(9, 24, seed=5)
    store_dir = store_fresh(method, tmp_path / "store", images, labels, options)
    assert_same(get_method(method).read(store_dir), images, labels)
    indices = [8, 0, 4, 4, 1]
    assert_same(reader_get(method, store_dir, indices), images[indices], labels[indices])


# --- stores from a stream ------------------------------------------------------------------


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


class ShortStream(StrictStream):
    """Claims more images than its chunks hold."""

    def __init__(self, tiled):
        super().__init__(tiled)
        self.shape = (len(tiled) + 1, *tiled.shape[1:])

    def __len__(self) -> int:
        return len(self._tiled) + 1


@pytest.mark.parametrize("method", METHODS)
def test_streamed_store_roundtrips(method, tmp_path):
    pool_images, pool_labels = pool_set()
    stream = tile(pool_images, pool_labels, COUNT, chunk_images=4)
    store_dir = store_fresh(method, tmp_path / "store", stream, stream.labels)
    images, labels = get_method(method).read(store_dir)
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
    store_dir = store_fresh(method, tmp_path / "store", stream, stream.labels, options)
    images, labels = get_method(method).read(store_dir)
    assert stream.matches(0, images) is None and len(images) == 19
    assert np.array_equal(labels, stream.labels)
    got = np.concatenate([b for b, _ in epoch(method, store_dir, 5)])
    assert np.array_equal(got, images)


@pytest.mark.parametrize("method", METHODS)
def test_a_stream_shorter_than_its_length_is_refused(method, tmp_path):
    pool_images, pool_labels = pool_set(seed=4)
    stream = ShortStream(tile(pool_images, pool_labels, 10, chunk_images=4))
    labels = np.zeros(len(stream), dtype=np.uint8)
    with pytest.raises(ValueError, match="yielded 10 images, its length is 11"):
        store_fresh(method, tmp_path / "store", stream, labels)


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
def test_read_from_batches_reads_what_read_reads(method, tmp_path):
    """The base's ``read`` made of ``read_batches`` (for a method with no better whole
    read) returns what the method's own ``read`` does: one batch of the whole store."""
    pool_images, pool_labels = pool_set(seed=5)
    stream = tile(pool_images, pool_labels, 23, chunk_images=3)
    store_dir = store_fresh(method, tmp_path / "store", stream, stream.labels)
    module = get_method(method)
    images, labels = module.read(store_dir)
    assert_same(_base.read_from_batches(module.read_batches)(store_dir), images, labels)


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


@pytest.mark.parametrize("method", METHODS)
def test_read_batches_opens_lazily_and_closes_at_the_end(method, tmp_path):
    import lmdb

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


# --- the harness ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_run_store_replaces_an_older_store(method, tmp_path):
    """The harness removes whatever is in the store directory before storing (methods get
    an empty directory), so a second, smaller store does not append to the first."""
    store_dir = tmp_path / "store"
    old_images, old_labels = random_set(37, seed=10)
    measure.run_store(Point(method, fsync="none"), (old_images, old_labels), store_dir, env=ENV)
    (store_dir / "stale.bin").write_bytes(b"left over")
    images, labels = random_set(5, seed=11)
    point = Point(method, fsync="syncfs", repeat=2)
    (row,) = measure.run_store(point, (images, labels), store_dir, env=ENV)
    assert not (store_dir / "stale.bin").exists()
    assert_same(get_method(method).read(store_dir), images, labels)
    assert row["cutoff"] == 5 and row["images_read"] == 5
    assert row["operation"] == "store" and row["method"] == method
    files = sorted(p for p in store_dir.rglob("*") if p.is_file())
    assert row["n_files"] == len(files)
    if method == "png":
        assert len(files) == 7  # 5 images, labels.csv, format.json; none of the older 37


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("readers", [1, 2])
def test_buffered_shuffle_reads_every_unit_once_and_checks_every_image(
    method, readers, tmp_path, monkeypatch
):
    """``buffered_shuffle`` through the forked readers (``measure.run_read``): the readers
    read the store's units (the method's ``read_units``, else blocks of ``batch_size``),
    each with one ``get`` of its images, in the timed pass and again in the checking pass,
    which checks every minibatch drawn from the shuffle buffer against the pool; the row
    counts every image once."""
    pool_images, pool_labels = pool_set(seed=9)
    stream = tile(pool_images, pool_labels, COUNT, chunk_images=4)
    store_dir = tmp_path / "store"
    measure.run_store(Point(method, fsync="none"), stream, store_dir, env=ENV)
    module = get_method(method)
    units = access.read_units(module, store_dir, COUNT, 6)
    log = tmp_path / "gets.txt"
    real_open = module.open_reader

    class LoggedReader:
        def __init__(self, path, readahead):
            self.path, self.reader = Path(path), real_open(path, readahead=readahead)

        def get(self, indices):
            if self.path == store_dir:
                with open(log, "a") as handle:
                    handle.write(f"{indices[0]} {indices[-1] + 1} {len(indices)}\n")
            return self.reader.get(indices)

        def close(self):
            self.reader.close()

    monkeypatch.setattr(
        module, "open_reader", lambda path, *, readahead=True: LoggedReader(path, readahead)
    )
    point = Point(
        method,
        fsync="none",
        cache="warm",
        pattern="buffered_shuffle",
        readers=readers,
        batch_size=6,
        shuffle_buffer=10,
        seed=3,
    )
    (row,) = measure.run_read(point, stream, store_dir, env=ENV)
    assert row["read_pattern"] == "buffered_shuffle" and row["readers"] == readers
    assert row["images_read"] == COUNT
    assert (row["batch_size"], row["shuffle_buffer"], row["seed"]) == (6, 10, 3)
    gets = [tuple(int(n) for n in line.split()) for line in log.read_text().splitlines()]
    contiguous = [(start, stop, stop - start) for start, stop in units]
    assert sorted(gets) == sorted(contiguous * 2)  # the timed pass and the checking pass
