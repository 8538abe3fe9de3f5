"""PNG files plus a CSV of labels, as in the article: one ``{i}.png`` per image.

``store`` encodes the images chunk by chunk; ``read_batches`` decodes the files of one
batch at a time.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from . import batch_bounds, blocks, indexed_chunks

DESCRIPTION = "PNG files + labels.csv"
PACKAGES = ("Pillow",)
LABELS_FILE = "labels.csv"
# Pillow's default zlib level is 6, which is also what the article used.
OPTIONS = {"compress_level": 6}
CHOICES = {"compress_level": tuple(range(10))}


def library_versions() -> dict:
    """zlib, which does the deflate of Pillow's PNG encoder and decoder."""
    from PIL import features

    return {"zlib": features.version("zlib")}


def _image_path(store_dir: Path, index: int) -> Path:
    return store_dir / f"{index}.png"


def disk_bytes(n_images: int, image_bytes: int, options: dict) -> int:
    """Upper bound of the store's bytes on disk: one file per image no larger than its
    pixels stored uncompressed (a filter byte per row, 5 bytes per 64 KiB deflate block,
    zlib's 6 bytes and PNG's 57 bytes of chunks), each rounded up to whole blocks, plus
    the labels CSV (at most 16 bytes a line)."""
    rows = math.isqrt(image_bytes // 3) + 1  # square RGB images
    raw = image_bytes + rows
    per_image = blocks(raw + 5 * -(-raw // 65535) + 6 + 57 + 64)
    return n_images * per_image + blocks(16 * (n_images + 1))


def store(
    store_dir: Path,
    images,
    labels: np.ndarray,
    *,
    options: dict,
) -> None:
    from PIL import Image

    level = options["compress_level"]
    for start, chunk in indexed_chunks(images):
        for index, image in enumerate(chunk, start=start):
            Image.fromarray(image).save(
                _image_path(store_dir, index), format="PNG", compress_level=level
            )
    with open(store_dir / LABELS_FILE, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "label"])
        writer.writerows(zip(range(len(labels)), labels.tolist(), strict=True))


def _read_labels(store_dir: Path) -> np.ndarray:
    with open(store_dir / LABELS_FILE, newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        return np.array([int(row[1]) for row in reader], dtype=np.uint8)


def _decode(open_image, path: Path, readahead: bool) -> np.ndarray:
    """The pixels of one file, opened with ``open_image`` (``PIL.Image.open``, imported
    once per call of the caller, not per image)."""
    if readahead:
        with open_image(path) as image:
            return np.asarray(image)
    with open(path, "rb") as handle:
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
        with open_image(handle) as image:
            return np.asarray(image)


def _read_images(store_dir: Path, indices, readahead: bool = True) -> np.ndarray:
    from PIL import Image

    indices = list(indices)
    first_array = _decode(Image.open, _image_path(store_dir, indices[0]), readahead)
    images = np.empty((len(indices), *first_array.shape), dtype=first_array.dtype)
    images[0] = first_array
    for position, index in enumerate(indices[1:], start=1):
        images[position] = _decode(Image.open, _image_path(store_dir, index), readahead)
    return images


def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    labels = _read_labels(store_dir)
    return _read_images(store_dir, range(len(labels))), labels


def read_batches(store_dir: Path, batch_images: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch front to back: the files of each batch decoded into a fresh array."""
    labels = _read_labels(Path(store_dir))
    for start, stop in batch_bounds(len(labels), batch_images):
        yield _read_images(Path(store_dir), range(start, stop)), labels[start:stop].copy()


class Reader:
    """Opens each image file on request; without readahead each file is advised
    ``POSIX_FADV_RANDOM`` before Pillow reads it."""

    def __init__(self, store_dir: Path, *, readahead: bool = True):
        self.store_dir = Path(store_dir)
        self.readahead = readahead
        self.labels = _read_labels(self.store_dir)

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices)
        images = _read_images(self.store_dir, indices.tolist(), self.readahead)
        return images, self.labels[indices]

    def close(self) -> None:
        pass


def open_reader(store_dir: Path, *, readahead: bool = True) -> Reader:
    return Reader(store_dir, readahead=readahead)
