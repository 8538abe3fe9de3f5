"""LMDB: one environment per store, one key per image, written in one transaction.

Values are the raw pixel bytes (no pickle). Keys are ``f"{index:08}"`` as in the article,
so they arrive in sorted order and are written with ``MDB_APPEND`` (``append=True``), the
fastest insert path. Labels and the array shape are stored under two metadata keys that
sort after every image key.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import lmdb
import numpy as np

DESCRIPTION = "LMDB (one key per image, raw bytes)"
LABELS_KEY = b"~labels"
META_KEY = b"~meta"
# Room for B-tree branch/leaf pages, page headers and free-list churn.
HEADROOM = 1.5
MIN_MAP_SIZE = 1 << 20


def image_key(index: int) -> bytes:
    return f"{index:08}".encode("ascii")


def estimate_map_size(images: np.ndarray, labels: np.ndarray, page_size: int = 4096) -> int:
    """Bytes of map needed for ``images``: values larger than half a page go to overflow
    pages (whole pages each), smaller ones share leaf pages; plus headroom."""
    count = max(len(images), 1)
    value_bytes = images[0].nbytes if len(images) else 0
    node_bytes = value_bytes + 16 + 8  # node header + key
    if node_bytes > page_size // 2:
        per_image = math.ceil((value_bytes + 16) / page_size) * page_size + 64
    else:
        per_image = node_bytes * 2
    total = count * per_image + labels.nbytes + 64 * page_size
    return max(int(total * HEADROOM), MIN_MAP_SIZE)


def _write(env: lmdb.Environment, images: np.ndarray, labels: np.ndarray) -> None:
    meta = {
        "count": len(images),
        "shape": list(images.shape[1:]),
        "dtype": str(images.dtype),
        "labels_dtype": str(labels.dtype),
    }
    with env.begin(write=True) as txn:
        with txn.cursor() as cursor:
            items = ((image_key(i), image.tobytes()) for i, image in enumerate(images))
            cursor.putmulti(items, append=True)
        txn.put(LABELS_KEY, np.ascontiguousarray(labels).tobytes(), append=True)
        txn.put(META_KEY, json.dumps(meta).encode(), append=True)


def store(store_dir: Path, images: np.ndarray, labels: np.ndarray, *, fsync: bool) -> None:
    map_size = estimate_map_size(images, labels)
    # sync/metasync: LMDB's own durability (fdatasync at commit) when fsync is asked for.
    env = lmdb.open(
        str(store_dir),
        map_size=map_size,
        subdir=True,
        sync=fsync,
        metasync=fsync,
        meminit=False,
        max_dbs=0,
    )
    try:
        while True:
            try:
                _write(env, images, labels)
                break
            except lmdb.MapFullError:
                # The transaction was aborted by the context manager; grow and retry.
                map_size *= 2
                env.set_mapsize(map_size)
        if fsync:
            env.sync(True)
    finally:
        env.close()


def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    env = lmdb.open(str(store_dir), readonly=True, lock=False, subdir=True)
    try:
        with env.begin(buffers=True) as txn:
            meta = json.loads(bytes(txn.get(META_KEY)))
            labels = np.frombuffer(bytes(txn.get(LABELS_KEY)), dtype=meta["labels_dtype"])
            shape = (meta["count"], *meta["shape"])
            images = np.empty(shape, dtype=meta["dtype"])
            flat = images.reshape(meta["count"], -1).view(np.uint8)
            with txn.cursor() as cursor:
                index = 0
                for _key, value in cursor:
                    if index >= meta["count"]:
                        break
                    flat[index] = np.frombuffer(value, dtype=np.uint8)
                    index += 1
            if index != meta["count"]:
                raise ValueError(
                    f"LMDB store {store_dir} holds {index} images, "
                    f"its metadata says {meta['count']}"
                )
    finally:
        env.close()
    return images, labels.copy()
