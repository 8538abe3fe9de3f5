"""The arrow method: an Arrow IPC file any Arrow reader opens as an ordinary table, record
batches of ``batch_images``, raw and encoded roundtrips, the disk-space bound and refusals
of broken files (the contract every method keeps is in test_contract.py)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from method_helpers import (
    assert_same,
    epoch,
    joined,
    photo_set,
    reader_get,
    request_orders,
    store_fresh,
)
from method_helpers import random_set as noise

from imgbench import methods
from imgbench.methods import arrow as arrow_method
from imgbench.system import fsutil

COUNT = 40


@pytest.mark.parametrize("options", [{}, {"encoding": "png"}, {"batch_images": 7}])
def test_any_arrow_reader_opens_the_file_as_a_table(tmp_path, options):
    images, labels = photo_set(COUNT, size=16, seed=1, label_values=10)
    store = store_fresh("arrow", tmp_path / "s", images, labels, options)
    table = feather.read_table(store / arrow_method.FILE_NAME, memory_map=True)
    assert table.column_names == ["image", "label"]
    assert table.schema.field("image").type == pa.binary()
    assert table.schema.field("label").type == pa.uint8()
    assert table.num_rows == COUNT
    batch = options.get("batch_images", arrow_method.OPTIONS["batch_images"])
    sizes = [len(chunk) for chunk in table.column("image").chunks]
    assert sizes == [min(batch, COUNT - start) for start in range(0, COUNT, batch)]
    meta = json.loads(table.schema.metadata[arrow_method.META_KEY])
    assert meta["count"] == COUNT and meta["shape"] == [16, 16, 3]
    assert meta["encoding"] == options.get("encoding", "raw")
    np.testing.assert_array_equal(table.column("label").to_numpy(), labels)
    if meta["encoding"] == "raw":
        first = np.frombuffer(table.column("image")[0].as_py(), np.uint8).reshape(16, 16, 3)
        np.testing.assert_array_equal(first, images[0])


@pytest.mark.parametrize("options", [{}, {"encoding": "png"}, {"batch_images": 7}])
def test_roundtrip_whole_epoch_and_every_order(tmp_path, options):
    images, labels = photo_set(COUNT, size=16, seed=2, label_values=10)
    store = store_fresh("arrow", tmp_path / "s", images, labels, options)
    assert_same(methods.get_method("arrow").read(store), images, labels)
    assert_same(joined(epoch("arrow", store, 9), images), images, labels)
    for request in request_orders(COUNT):
        request = np.asarray(request)
        assert_same(reader_get("arrow", store, request), images[request], labels[request])
    with pytest.raises(IndexError, match="no image 40"):
        reader_get("arrow", store, [0, COUNT])


@pytest.mark.parametrize("options", [{}, {"encoding": "png"}, {"batch_images": 3}])
def test_disk_bytes_bounds_the_store(tmp_path, options):
    images, labels = noise(25, 32)
    store = store_fresh("arrow", tmp_path / "s", images, labels, options)
    resolved = methods.resolve_options(arrow_method, options)
    bound = arrow_method.disk_bytes(len(images), images[0].nbytes, resolved)
    usage = fsutil.disk_usage(store)
    assert usage.bytes_on_disk <= bound and usage.bytes_apparent <= bound


def test_a_file_without_its_metadata_or_empty_is_refused(tmp_path):
    images, labels = photo_set(5, size=8, seed=4, label_values=10)
    store = tmp_path / "s"
    store.mkdir()
    table = pa.table({"image": pa.array([im.tobytes() for im in images]), "label": labels})
    feather.write_feather(table, store / arrow_method.FILE_NAME, compression="uncompressed")
    with pytest.raises(ValueError, match="has no imgbench metadata"):
        reader_get("arrow", store, [0])
    (store / arrow_method.FILE_NAME).write_bytes(b"")
    with pytest.raises(ValueError, match="is empty: the store is incomplete"):
        reader_get("arrow", store, [0])


def test_a_raw_value_of_the_wrong_length_is_refused(tmp_path):
    images, labels = photo_set(5, size=8, seed=4, label_values=10)
    store = store_fresh("arrow", tmp_path / "s", images, labels)
    reader = methods.get_method("arrow").open_reader(store)
    try:
        reader.image_bytes += 1
        with pytest.raises(ValueError, match="image 2 holds 192 bytes, not 193"):
            reader.get([2])
    finally:
        reader.close()
