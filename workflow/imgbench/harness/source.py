"""The images a job stores and checks against: the pool in memory, tiled to the cutoff.

A store is written from the source's chunks and every read is checked against it; nothing
N-sized is ever built, so a store may be larger than memory (``pool.TiledImages``).
"""

from __future__ import annotations

import time
from pathlib import Path

from imgbench.data import pool


def load_source(
    images_path: Path, labels_path: Path, cutoff: int, chunk_images: int | None = None
) -> pool.TiledImages:
    """The pool in memory (no lazy mapping), tiled to ``cutoff`` images in chunks of
    ``chunk_images``: never an N-sized copy."""
    return pool.load(images_path, labels_path, cutoff, chunk_images)


def as_source(images, labels=None) -> pool.TiledImages:
    """A ``TiledImages`` as it is; arrays of images and labels, or a pair of them, as a
    one-chunk source."""
    if isinstance(images, pool.TiledImages):
        return images
    if isinstance(images, tuple):
        images, labels = images
        if isinstance(images, pool.TiledImages):
            return images
    return pool.tile(images, labels, len(images), max(1, len(images)))


def source_seconds(source: pool.TiledImages) -> float:
    """What producing every chunk of ``source`` costs (views of the pool), measured once
    outside the clock: the timed store pays it."""
    start = time.perf_counter_ns()
    for chunk in source.iter_chunks():
        chunk.ravel()[::4096].sum()  # touch each chunk's pages, as a writer would
    return (time.perf_counter_ns() - start) / 1e9
