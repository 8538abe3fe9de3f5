"""Each method's read paths (issue 24): the path a reader takes is the one its docstring
names, every path returns the requested images in the requested order, and the store's
natural units of a streaming read (``read_units``) cover it once, in order. Speed is not
asserted here (docs/read-paths.md has the measurements)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from method_helpers import assert_same, photo_set, reader_get, request_orders, store_fresh

from imgbench import methods
from imgbench.methods import hdf5 as hdf5_method
from imgbench.methods import npy as npy_method

COUNT = 40


@pytest.fixture(scope="module")
def photos():
    return photo_set(COUNT, size=16, seed=3, label_values=10)


def every_order_reads_right(method: str, store_dir: Path, images, labels) -> None:
    for request in request_orders(COUNT):
        request = np.asarray(request)
        assert_same(reader_get(method, store_dir, request), images[request], labels[request])


# --- hdf5 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "direct_chunks"),
    [
        ({}, False),
        ({"chunks": "image"}, True),
        ({"chunks": "image", "compression": "gzip"}, False),
        ({"read_path": "selection"}, False),
    ],
)
def test_hdf5_records_its_read_path_and_reads_every_order(tmp_path, photos, options, direct_chunks):
    images, labels = photos
    store = store_fresh("hdf5", tmp_path / "s", images, labels, options)
    expected = options.get("read_path", "hyperslabs")
    with h5py.File(store / hdf5_method.FILE_NAME, "r") as handle:
        assert handle["images"].attrs[hdf5_method.READ_PATH_ATTRIBUTE] == expected
    reader = methods.get_method("hdf5").open_reader(store)
    try:
        assert reader.read_path == expected
        assert reader.direct_chunks is direct_chunks
    finally:
        reader.close()
    every_order_reads_right("hdf5", store, images, labels)


def test_hdf5_hyperslab_path_reads_one_image_per_call(tmp_path, photos, monkeypatch):
    """The default path never hands HDF5 a multi-image selection: one H5Dread per image."""
    images, labels = photos
    store = store_fresh("hdf5", tmp_path / "s", images, labels)
    reader = methods.get_method("hdf5").open_reader(store)
    calls = []
    original = h5py.h5d.DatasetID.read

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def read(self, mspace, fspace, out, *args, **kwargs):
            calls.append(fspace.get_select_npoints())
            return original(self.inner, mspace, fspace, out, *args, **kwargs)

    try:
        monkeypatch.setattr(reader.images, "_id", Counting(reader.images.id), raising=False)
        request = np.array([7, 3, 30, 3])
        got = reader.get(request)
    finally:
        reader.close()
    assert_same(got, images[request], labels[request])
    assert calls == [int(np.prod(images.shape[1:]))] * 4


def test_hdf5_refuses_an_index_outside_the_store(tmp_path, photos):
    images, labels = photos
    store = store_fresh("hdf5", tmp_path / "s", images, labels)
    with pytest.raises(IndexError, match="out of range for 40 images"):
        reader_get("hdf5", store, [3, COUNT])


# --- npy -----------------------------------------------------------------------------------


def count_preadv(monkeypatch) -> list:
    calls = []
    original = os.preadv

    def counting(fd, buffers, offset, *args):
        calls.append(offset)
        return original(fd, buffers, offset, *args)

    monkeypatch.setattr(os, "preadv", counting)
    return calls


@pytest.mark.parametrize(
    ("request_", "threshold", "preads"),
    [
        ([5], npy_method.PREAD_MIN_IMAGE_BYTES, 1),  # a single image: pread
        ([5, 1, 9], npy_method.PREAD_MIN_IMAGE_BYTES, 0),  # small images: the map
        ([5, 1, 9], 1, 3),  # images at the threshold: one pread each
    ],
)
def test_npy_reads_single_and_large_images_with_pread(
    tmp_path, photos, monkeypatch, request_, threshold, preads
):
    images, labels = photos
    store = store_fresh("npy", tmp_path / "s", images, labels)
    monkeypatch.setattr(npy_method, "PREAD_MIN_IMAGE_BYTES", threshold)
    calls = count_preadv(monkeypatch)
    request = np.array(request_)
    assert_same(reader_get("npy", store, request), images[request], labels[request])
    assert len(calls) == preads
    assert calls == sorted(calls)  # in file order


def test_npy_pread_path_reads_every_order(tmp_path, photos, monkeypatch):
    images, labels = photos
    store = store_fresh("npy", tmp_path / "s", images, labels)
    monkeypatch.setattr(npy_method, "PREAD_MIN_IMAGE_BYTES", 1)
    every_order_reads_right("npy", store, images, labels)
    with pytest.raises(IndexError, match="out of range"):
        reader_get("npy", store, [0, -COUNT - 1])


def test_npy_pread_refuses_a_truncated_store(tmp_path, photos, monkeypatch):
    images, labels = photos
    store = store_fresh("npy", tmp_path / "s", images, labels)
    reader = methods.get_method("npy").open_reader(store)
    try:
        os.truncate(store / "images.npy", os.path.getsize(store / "images.npy") - 10)
        with pytest.raises(ValueError, match=f"ends inside image {COUNT - 1}"):
            reader.get([COUNT - 1])
    finally:
        reader.close()


# --- zarr ----------------------------------------------------------------------------------


@pytest.mark.parametrize("read_path", ["runs", "orthogonal"])
def test_zarr_records_its_read_path_and_reads_every_order(tmp_path, photos, read_path):
    images, labels = photos
    store = store_fresh("zarr", tmp_path / "s", images, labels, {"read_path": read_path})
    group = zarr.open_group(store, mode="r")
    assert group["images"].attrs["imgbench_read_path"] == read_path
    every_order_reads_right("zarr", store, images, labels)


# --- lmdb ----------------------------------------------------------------------------------


def test_lmdb_raw_value_of_the_wrong_length_is_refused_naming_it(tmp_path, photos):
    import lmdb

    from imgbench.methods.lmdb import image_key

    images, labels = photos
    store = store_fresh("lmdb", tmp_path / "s", images, labels)
    env = lmdb.open(str(store), subdir=True)
    try:
        with env.begin(write=True) as txn:
            txn.put(image_key(6), b"short")
    finally:
        env.close()
    with pytest.raises(ValueError, match="LMDB image 6 holds 5 bytes"):
        reader_get("lmdb", store, [6])
    with pytest.raises(ValueError, match="LMDB image 6 holds 5 bytes"):
        methods.get_method("lmdb").read(store)


@pytest.mark.parametrize("batch_images", [1, 7, COUNT])
def test_lmdb_epoch_walk_goes_on_where_each_batch_ended(tmp_path, photos, batch_images):
    images, labels = photos
    store = store_fresh("lmdb", tmp_path / "s", images, labels)
    batches = list(methods.get_method("lmdb").read_batches(store, batch_images))
    assert_same(
        (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])),
        images,
        labels,
    )


# --- natural units -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "options", "unit"),
    [
        ("parquet", {"encoding": "raw", "row_group_images": 16}, 16),
        ("zarr", {"shard_images": 8}, 8),
        ("zarr", {"sharding": False, "chunk_images": 4}, 4),
        ("arrow", {"batch_images": 12}, 12),
    ],
)
def test_read_units_are_the_stores_own_units_covering_it_once(
    tmp_path, photos, method, options, unit
):
    images, labels = photos
    store = store_fresh(method, tmp_path / "s", images, labels, options)
    units = methods.get_method(method).read_units(store)
    assert units[0][0] == 0 and units[-1][1] == COUNT
    assert all(a[1] == b[0] for a, b in zip(units, units[1:], strict=False))
    assert [b - a for a, b in units[:-1]] == [unit] * (len(units) - 1)
    assert 0 < units[-1][1] - units[-1][0] <= unit


def test_wds_units_are_its_shards(tmp_path):
    """Images of 128x128 (48 KiB), shards of at most 1 MiB: about 20 images a shard."""
    images, labels = photo_set(50, size=128, seed=5, label_values=10)
    options = {"encoding": "raw", "shard_bytes": 1 << 20}
    store = store_fresh("wds", tmp_path / "s", images, labels, options)
    units = methods.get_method("wds").read_units(store)
    shards = sorted(p.name for p in store.glob("shard-*.tar"))
    assert len(units) == len(shards) >= 2
    assert units[0][0] == 0 and units[-1][1] == 50
    assert all(a[1] == b[0] for a, b in zip(units, units[1:], strict=False))
    reader = methods.get_method("wds").open_reader(store)
    try:
        for number, (start, stop) in enumerate(units):
            assert set(reader.shard[start:stop].tolist()) == {number}
    finally:
        reader.close()


def test_zarr_of_one_image_chunks_has_no_unit_of_its_own(tmp_path, photos):
    images, labels = photos
    store = store_fresh("zarr", tmp_path / "s", images, labels, {"sharding": False})
    assert methods.get_method("zarr").read_units(store) is None


# --- the rows name it ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "options", "phrase"),
    [
        ("hdf5", {"read_path": "selection"}, "h5py fancy selection"),
        ("hdf5", {"chunks": "image"}, "read_direct_chunk"),
        ("hdf5", None, "one H5Dread of a one-image hyperslab per image"),
        ("zarr", {"read_path": "orthogonal"}, "oindex"),
        ("parquet", {"row_group_images": 7}, "(7 images), png decoded"),
    ],
)
def test_every_row_names_the_read_path_of_its_store(tmp_path, photos, method, options, phrase):
    from method_helpers import ENV

    from imgbench.harness import measure
    from imgbench.harness.point import Point

    images, labels = photos
    point = Point(method, variant="v", options=options, fsync="none")
    rows = measure.run_store(point, (images, labels), tmp_path / "s", env=ENV)
    read = Point(method, variant="v", options=options, fsync="none", cache="warm")
    rows += measure.run_read(read, (images, labels), tmp_path / "s", env=ENV)
    module = methods.get_method(method)
    expected = module.read_path(methods.resolve_options(module, options))
    assert phrase in expected
    assert {row["read_path"] for row in rows} == {expected}
