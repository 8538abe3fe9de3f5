"""Resource requests of the timing jobs, scaled with the cutoff and image size.

Honest requests matter on a cluster: 100,000 CIFAR images are 0.3 GB of pixels per copy.
"""

from __future__ import annotations

BASE_MB = 512


def _images_mb(wildcards) -> float:
    size = int(getattr(wildcards, "image_size", 32))
    return int(wildcards.cutoff) * size * size * 3 / 1e6


def store_mem_mb(wildcards) -> int:
    """The source images in memory, plus the library's own buffers (one more copy)."""
    return int(BASE_MB + 2 * _images_mb(wildcards))


def read_mem_mb(wildcards) -> int:
    """The source images, the array read back, and the untimed warm-up read."""
    return int(BASE_MB + 4 * _images_mb(wildcards))


def read_threads(wildcards) -> int:
    """One core per reader process."""
    return int(getattr(wildcards, "readers", 1))


def timing_runtime(wildcards) -> int:
    """Minutes: PNG stores 100,000 CIFAR images in about a minute on an SSD; 30x headroom."""
    return 10 + int(_images_mb(wildcards) / 15)
