"""A dataset is a pool of distinct images tiled to N: image ``i`` is ``pool[i mod P]``.

The article repeats CIFAR-10's 50,000 training images to 100,000; here every image size
has one pool of at most ``pool_bytes`` of distinct images (all CIFAR training images at
32x32, the first 5,086 upscaled ones at 256x256 with 1 GB), prepared once by the data
rules. A job loads only the pool into memory, never an N-sized copy: a store is written
from a stream of chunks, and what is read back is checked chunk by chunk against the
pool. So a job's memory is the pool plus a few chunks, whatever the cutoff, and a dataset
can be larger than the machine's memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np


class TiledImages:
    """``count`` images (and labels) drawn from an in-memory pool: image ``i`` is
    ``pool[i mod P]``. Looks like an (N, H, W, C) uint8 array where the harness needs
    one (``shape``, ``dtype``, ``len``, ``nbytes``) without holding N images.

    ``iter_chunks()`` yields the images front to back in arrays of at most
    ``chunk_images`` images, each a view of the pool (chunks are cut at the pool's end);
    ``take(indices)`` gathers any images; ``matches(start, got)`` checks images read back
    against the pool without building the expected array.
    """

    def __init__(
        self,
        pool_images: np.ndarray,
        pool_labels: np.ndarray,
        count: int,
        chunk_images: int | None = None,
    ):
        if len(pool_images) == 0:
            raise ValueError("the image pool is empty")
        if len(pool_labels) != len(pool_images):
            raise ValueError(
                f"the pool has {len(pool_images)} images but {len(pool_labels)} labels"
            )
        if count < 0:
            raise ValueError("count must not be negative")
        self.pool = pool_images
        self.pool_labels = pool_labels
        self.count = int(count)
        self.chunk_images = int(chunk_images or len(pool_images))
        if self.chunk_images < 1:
            raise ValueError("chunk_images must be at least 1")
        self.labels = pool_labels[np.arange(self.count) % len(pool_images)]

    # --- array-like -------------------------------------------------------------------
    @property
    def pool_size(self) -> int:
        return len(self.pool)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.count, *self.pool.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.pool.dtype

    @property
    def ndim(self) -> int:
        return self.pool.ndim

    @property
    def image_bytes(self) -> int:
        return int(self.pool[0].nbytes)

    @property
    def nbytes(self) -> int:
        return self.count * self.image_bytes

    def __len__(self) -> int:
        return self.count

    @property
    def held_chunk_bytes(self) -> int:
        """The bytes of the largest chunk a pass over these images holds: ``chunk_images``
        images, or all of them when there are fewer."""
        return min(self.chunk_images, self.count) * self.image_bytes

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(self.count)
            if step != 1:
                return self.take(np.arange(start, stop, step))
            return self.batch(start, stop)
        if isinstance(key, (int, np.integer)):
            index = int(key)
            if not -self.count <= index < self.count:
                raise IndexError(f"image {index} is outside 0..{self.count - 1}")
            return self.pool[index % self.count % len(self.pool)]
        return self.take(key)

    # --- access -----------------------------------------------------------------------
    def _segments(self, start: int, stop: int) -> Iterator[tuple[int, int, int]]:
        """(position in the range, pool start, pool stop) pieces of images start..stop."""
        position = start
        while position < stop:
            offset = position % len(self.pool)
            length = min(stop - position, len(self.pool) - offset)
            yield position - start, offset, offset + length
            position += length

    def _check_range(self, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= self.count:
            raise IndexError(f"images {start}..{stop} are outside 0..{self.count}")

    def batch(self, start: int, stop: int) -> np.ndarray:
        """Images ``start``..``stop``: a view of the pool when they do not wrap around
        it, else a copy."""
        self._check_range(start, stop)
        pieces = list(self._segments(start, stop))
        if len(pieces) <= 1:
            offset = start % len(self.pool)
            return self.pool[offset : offset + (stop - start)]
        out = np.empty((stop - start, *self.pool.shape[1:]), dtype=self.pool.dtype)
        for position, first, last in pieces:
            out[position : position + last - first] = self.pool[first:last]
        return out

    def take(self, indices) -> np.ndarray:
        """The images at ``indices`` (any order, repeats allowed), gathered into one array."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= self.count):
            raise IndexError(f"image indices must lie in 0..{self.count - 1}")
        return self.pool[indices % len(self.pool)]

    def chunk_bounds(self) -> Iterator[tuple[int, int]]:
        """(start, stop) of each chunk: at most ``chunk_images`` images, cut at the pool's
        end, so every chunk is one piece of the pool (a pass over a pool of P images ends
        with a shorter chunk unless ``chunk_images`` divides P)."""
        start = 0
        while start < self.count:
            to_pool_end = len(self.pool) - start % len(self.pool)
            stop = start + min(self.chunk_images, to_pool_end, self.count - start)
            yield start, stop
            start = stop

    def iter_chunks(self) -> Iterator[np.ndarray]:
        """The images front to back, at most ``chunk_images`` at a time, each chunk a view
        of the pool: a timed store never pays for copying a chunk that wraps around it
        (with a 5,085-image pool every 64 MiB chunk wrapped, and npy's write took 72 %
        longer from copies)."""
        for start, stop in self.chunk_bounds():
            yield self.batch(start, stop)

    def matches(self, start: int, images: np.ndarray) -> int | None:
        """None when ``images`` equal images ``start``..``start + len(images)``, else the
        index of the first image that differs (compared piece by piece, no copy)."""
        stop = start + len(images)
        self._check_range(start, stop)
        for position, first, last in self._segments(start, stop):
            got = images[position : position + last - first]
            expected = self.pool[first:last]
            if got.shape != expected.shape or not np.array_equal(got, expected):
                if got.shape != expected.shape:
                    return start + position
                differs = (got != expected).reshape(len(got), -1).any(axis=1)
                return start + position + int(np.flatnonzero(differs)[0])
        return None


def tile(images: np.ndarray, labels: np.ndarray, count: int, chunk_images: int | None = None):
    """A ``TiledImages`` over arrays already in memory (tests, warm-ups)."""
    return TiledImages(
        np.ascontiguousarray(images), np.ascontiguousarray(labels), count, chunk_images
    )


def load(
    images_path: Path, labels_path: Path, count: int, chunk_images: int | None = None
) -> TiledImages:
    """The pool files read fully into memory (no lazy mapping: producing a chunk inside a
    timed store must not read the disk), tiled to ``count`` images."""
    images = np.load(images_path, allow_pickle=False)
    labels = np.load(labels_path, allow_pickle=False)
    return TiledImages(images, labels, count, chunk_images)
