"""Larger images for the size experiments: CIFAR images upscaled with Pillow, in chunks.

The filter is ``PIL.Image.Resampling.BICUBIC``: deterministic (same input, same Pillow
version, same bytes) and smooth, so PNG and compressed formats see photo-like content
rather than blocky nearest-neighbour pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from imgbench.experiment.vocabulary import image_bytes

FILTER = Image.Resampling.BICUBIC


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """(N, h, w, 3) -> (N, size, size, 3) uint8 with the documented filter."""
    out = np.empty((len(images), size, size, images.shape[3]), dtype=np.uint8)
    for index, image in enumerate(images):
        out[index] = np.asarray(Image.fromarray(image).resize((size, size), FILTER))
    return out


def chunk_length(size: int, chunk_bytes: int) -> int:
    return max(1, chunk_bytes // image_bytes(size))


def resize_file(source: Path, destination: Path, size: int, count: int, chunk_bytes: int) -> None:
    """Resize the first ``count`` images of the ``.npy`` ``source`` into ``destination``,
    holding at most about ``chunk_bytes`` of output in memory at a time."""
    images = np.load(source, mmap_mode="r", allow_pickle=False)
    if count > len(images):
        raise ValueError(f"{source} holds {len(images)} images, {count} asked for")
    destination = Path(destination)
    partial = destination.with_name(destination.name + ".part")
    try:
        out = np.lib.format.open_memmap(
            partial, mode="w+", dtype=np.uint8, shape=(count, size, size, images.shape[3])
        )
        step = chunk_length(size, chunk_bytes)
        for start in range(0, count, step):
            stop = min(start + step, count)
            out[start:stop] = resize_images(np.asarray(images[start:stop]), size)
            out.flush()
        del out
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
