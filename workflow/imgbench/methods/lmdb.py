"""LMDB: one environment per store, one key per image, one write transaction per chunk.

Keys are ``f"{index:08}"`` as in the article, so they arrive in sorted order and are
written with ``MDB_APPEND`` (the fastest insert path). Labels and the array shape are
stored under two metadata keys that sort after every image key.

One transaction per chunk of the image stream (``methods.chunks``), never one for the
whole store: without ``writemap`` a write transaction keeps every dirty page in malloc'd
memory until it commits (LMDB spills only past 131,072 dirty page runs), so a single
transaction of 100,000 values of 196 KB would hold 19.7 GB. Each chunk's transaction
appends its keys with ``putmulti(append=True)`` on a cursor and commits; the labels and
metadata keys follow in a final transaction, so a store without its ``~meta`` key is an
incomplete one. The map is sized from ``map_bytes``; when a transaction finds it full,
the map is doubled and only that transaction is retried (the earlier ones are committed).

Options: ``encoding`` of each value (``imgbench.methods.encoding``: ``raw`` pixel bytes, the
default, or ``png``, ``jpeg``, ``webp`` bytes); ``value_format`` ``raw`` (the value is the
encoded image; the default) or ``pickle`` (the article's pickled ``CIFAR_Image`` object
holding the pixel bytes and the label, to show what that choice costs; raw encoding
only); ``writemap`` (write through a writable memory map); ``sync`` (``null`` or
``false``: no commit-time sync, the harness's flush makes the store durable and is timed
apart; ``true``: LMDB's own commit-time fdatasync, which then counts as writing).
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from imgbench.methods import batch_bounds, encoding, indexed_chunks
from imgbench.methods._base import OptionError, check_lengths, opener, store_header

DESCRIPTION = "LMDB (one key per image)"
PACKAGES = ("lmdb",)
LABELS_KEY = b"~labels"
META_KEY = b"~meta"
OPTIONS = {**encoding.options("raw"), "value_format": "raw", "writemap": False, "sync": None}
CHOICES = {
    **encoding.CHOICES,
    "value_format": ("raw", "pickle"),
    "writemap": (False, True),
    "sync": (None, True, False),
}
# Room for B-tree branch/leaf pages, page headers and free-list churn.
HEADROOM = 1.5
MIN_MAP_SIZE = 1 << 20


def check_options(options: dict) -> None:
    """``value_format: pickle`` stores the article's object of raw pixels: encoding raw."""
    if options["value_format"] == "pickle" and options["encoding"] != "raw":
        raise OptionError(
            "lmdb",
            "encoding",
            options["encoding"],
            "raw with value_format pickle (the article's object of raw pixels)",
            "use encoding raw with it, or value_format raw",
        )


def library_versions() -> dict:
    """The LMDB C library py-lmdb was built with."""
    import lmdb

    return {"lmdb_c": ".".join(map(str, lmdb.version()))}


class CIFAR_Image:  # noqa: N801 - the article's class name, kept for its pickles
    """The article's value object: pixel bytes plus label."""

    def __init__(self, image: np.ndarray, label: int):
        self.channels = image.shape[2]
        self.size = image.shape[:2]
        self.image = image.tobytes()
        self.label = label

    def get_image(self) -> np.ndarray:
        image = np.frombuffer(self.image, dtype=np.uint8)
        return image.reshape(*self.size, self.channels)


def image_key(index: int) -> bytes:
    return f"{index:08}".encode("ascii")


def map_bytes(n_images: int, image_bytes: int, label_bytes: int, page_size: int = 4096) -> int:
    """Bytes of map needed for ``n_images`` values of ``image_bytes``: values larger than
    half a page go to overflow pages (whole pages each), smaller ones share leaf pages;
    plus headroom."""
    count = max(n_images, 1)
    value_bytes = image_bytes + 256 if n_images else 0  # + pickle framing
    node_bytes = value_bytes + 16 + 8  # node header + key
    if node_bytes > page_size // 2:
        per_image = math.ceil((value_bytes + 16) / page_size) * page_size + 64
    else:
        per_image = node_bytes * 2
    total = count * per_image + label_bytes + 64 * page_size
    return max(int(total * HEADROOM), MIN_MAP_SIZE)


def estimate_map_size(images, labels: np.ndarray, page_size: int = 4096) -> int:
    """Bytes of map needed for ``images`` (an array or a stream) and ``labels`` (see
    ``map_bytes``); from the shape and dtype only."""
    image_bytes = math.prod(images.shape[1:]) * np.dtype(images.dtype).itemsize
    image_bytes = image_bytes if len(images) else 0
    return map_bytes(len(images), image_bytes, labels.nbytes, page_size)


def disk_bytes(n_images: int, image_bytes: int, options: dict) -> int:
    """Upper bound of the store's bytes on disk: the map LMDB is given (with writemap the
    file takes the whole map), headroom included, for values of at most
    ``encoding.max_encoded_bytes``."""
    return map_bytes(n_images, encoding.max_encoded_bytes(image_bytes, options), n_images)


def _values(start: int, chunk: np.ndarray, labels: np.ndarray, options: dict):
    if options["value_format"] == "raw":
        encode = encoding.encoder(options)
        for index, image in enumerate(chunk, start=start):
            yield image_key(index), encode(image)
    else:
        for index, image in enumerate(chunk, start=start):
            yield image_key(index), pickle.dumps(CIFAR_Image(image, int(labels[index])))


def _write(env, items) -> None:
    """One write transaction: ``items()`` (a fresh iterable of key, value pairs in key
    order each call) appended through a cursor, then committed."""
    with env.begin(write=True) as txn, txn.cursor() as cursor:
        cursor.putmulti(items(), append=True)


def _commit(env, items) -> None:
    """``_write`` the transaction; when the map is full, double it and retry only this
    transaction (the context manager aborted it; earlier ones stay committed)."""
    import lmdb

    while True:
        try:
            _write(env, items)
            return
        except lmdb.MapFullError:
            env.set_mapsize(env.info()["map_size"] * 2)


def _meta_items(images, labels: np.ndarray, options: dict):
    meta = store_header(
        images, labels, value_format=options["value_format"], **encoding.store_fields(options)
    )
    return [
        (LABELS_KEY, np.ascontiguousarray(labels).tobytes()),
        (META_KEY, json.dumps(meta).encode()),
    ]


def store(
    store_dir: Path,
    images,
    labels: np.ndarray,
    *,
    options: dict,
) -> None:
    import lmdb

    check_lengths(images, labels)
    sync = bool(options["sync"])
    env = lmdb.open(
        str(store_dir),
        map_size=estimate_map_size(images, labels),
        subdir=True,
        sync=sync,
        metasync=sync,
        writemap=bool(options["writemap"]),
        meminit=False,
        max_dbs=0,
    )
    try:
        for start, chunk in indexed_chunks(images):
            if len(chunk):
                _commit(env, lambda s=start, c=chunk: _values(s, c, labels, options))
        meta_items = _meta_items(images, labels, options)
        _commit(env, lambda: meta_items)
        if sync:
            env.sync(True)
    finally:
        env.close()


def read_path(options: dict) -> str:
    """How the reader reads a batch (the methods table names it per series)."""
    if options["value_format"] == "pickle":
        return "txn.get per image, unpickled"
    if options["encoding"] == "raw":
        return "txn.get per image, copied from the memory map"
    return f"txn.get per image, {options['encoding']} decoded with {encoding.codec_name(options)}"


class Reader:
    """Read-only environment without the lock file (safe after fork, no writers).
    Without readahead py-lmdb advises the map ``MADV_RANDOM`` (``readahead=False``).

    Raw values (``encoding: raw``, ``value_format: raw``) are copied straight from the
    memory map into the output array (a ``memoryview`` slice assignment of the buffer
    ``get`` returns, one copy, no intermediate numpy array); the whole read and an epoch
    walk the keys with ``cursor.iternext(keys=False)``, so the loop over values never
    builds key objects or tuples. Measured on CIFAR tiled to 100,000 images, warm: the
    whole read took 109.5 ms against 264.9 ms for the cursor walk that decoded each value
    through numpy, and 195.5 ms for ``txn.get`` per key (npy: 50.9 ms); on 20,000 images
    ``getmulti`` (the C loop over keys) was no faster than that walk (52 against 53 ms),
    as it builds a tuple and a bytes copy per value (docs/read-paths.md)."""

    def __init__(self, store_dir: Path, *, readahead: bool = True):
        import lmdb

        self.env = lmdb.open(
            str(store_dir), readonly=True, lock=False, subdir=True, readahead=readahead
        )
        with self.env.begin() as txn:
            self.meta = json.loads(txn.get(META_KEY))
            self.labels = np.frombuffer(txn.get(LABELS_KEY), dtype=self.meta["labels_dtype"])
        self.shape = tuple(self.meta["shape"])
        self.dtype = np.dtype(self.meta["dtype"])
        self.pickled = self.meta.get("value_format", "raw") == "pickle"
        self.encoding = self.meta.get("encoding", "raw")
        self.codec = self.meta.get("codec")
        self.raw = not self.pickled and self.encoding == "raw"
        self.image_bytes = math.prod(self.shape) * self.dtype.itemsize

    def _decode(self, value) -> np.ndarray:
        if self.pickled:
            return pickle.loads(value).get_image()
        return encoding.decode(value, self.encoding, self.shape, self.codec)

    def _empty(self, count: int) -> np.ndarray:
        return np.empty((count, *self.shape), dtype=self.dtype)

    def _fill(self, images: np.ndarray, values, names=None) -> int:
        """Copy (raw) or decode ``values`` into ``images`` in order; the number filled.
        A raw value of the wrong length is refused, naming its image: ``names[position]``
        (the requested indices, or an epoch's ``range``)."""
        # zip takes from the range first: no value is pulled beyond ``images``, so an
        # epoch's walk goes on where the batch ended.
        filled = 0
        if self.raw:
            view = memoryview(images).cast("B")
            size = self.image_bytes
            for position, value in zip(range(len(images)), values, strict=False):
                if len(value) != size:
                    name = position if names is None else names[position]
                    raise ValueError(
                        f"LMDB image {name} holds {len(value)} bytes, "
                        f"not {size} (shape {self.shape})"
                    )
                view[position * size : (position + 1) * size] = value
                filled = position + 1
            return filled
        for position, value in zip(range(len(images)), values, strict=False):
            images[position] = self._decode(value)
            filled = position + 1
        return filled

    def _check_walk(self, txn, cursor, stop: int) -> None:
        """After a walk that filled images up to ``stop``: the cursor must stand on the
        key of image ``stop - 1`` (keys are unique and sorted, so then no key was
        missing); otherwise name the first image the store lacks."""
        if stop and bytes(cursor.key()) != image_key(stop - 1):
            missing = next(i for i in range(stop + 1) if txn.get(image_key(i)) is None)
            raise ValueError(
                f"LMDB store has no image {missing}, its metadata says {self.meta['count']}"
            )

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices)
        images = self._empty(len(indices))
        with self.env.begin(buffers=True) as txn:

            def values():
                for index in indices.tolist():
                    value = txn.get(image_key(index))
                    if value is None:
                        raise KeyError(f"LMDB store has no image {index}")
                    yield value

            self._fill(images, values(), indices.tolist())
        return images, self.labels[indices].copy()

    def read_all(self) -> np.ndarray:
        count = self.meta["count"]
        images = self._empty(count)
        with self.env.begin(buffers=True) as txn, txn.cursor() as cursor:
            filled = self._fill(images, cursor.iternext(keys=False, values=True))
            if filled == count:
                self._check_walk(txn, cursor, count)
        if filled != count:
            raise ValueError(f"LMDB store holds {filled} images, its metadata says {count}")
        return images

    def batches(self, batch_images: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One read transaction, a cursor walking the image keys in order, each batch
        filled into a fresh array."""
        count = self.meta["count"]
        bounds = list(batch_bounds(count, batch_images))
        with self.env.begin(buffers=True) as txn, txn.cursor() as cursor:
            walk = cursor.iternext(keys=False, values=True)
            for start, stop in bounds:
                images = self._empty(stop - start)
                filled = self._fill(images, walk, range(start, stop))
                if filled != stop - start:
                    raise ValueError(
                        f"LMDB store has no image {start + filled}, its metadata says {count}"
                    )
                self._check_walk(txn, cursor, stop)
                yield images, self.labels[start:stop].copy()

    def close(self) -> None:
        self.env.close()


open_reader = opener(Reader)


def read_batches(store_dir: Path, batch_images: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch front to back in batches of at most ``batch_images`` (see
    ``Reader.batches``); the environment is opened on the first ``next()``."""
    reader = Reader(store_dir)
    try:
        yield from reader.batches(batch_images)
    finally:
        reader.close()


def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """One read transaction, walking the keys in order with a cursor."""
    reader = Reader(store_dir)
    try:
        return reader.read_all(), reader.labels.copy()
    finally:
        reader.close()
