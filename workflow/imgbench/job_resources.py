"""Resource requests of the timing jobs, scaled with the cutoff (used by the rules).

Honest requests matter on a cluster: 100,000 CIFAR images are 0.3 GB of pixels per copy.
"""

from __future__ import annotations

IMAGE_BYTES = 32 * 32 * 3
BASE_MB = 512


def _images_mb(wildcards) -> float:
    return int(wildcards.cutoff) * IMAGE_BYTES / 1e6


def store_mem_mb(wildcards) -> int:
    """The source images in memory, plus the library's own buffers (one more copy)."""
    return int(BASE_MB + 2 * _images_mb(wildcards))


def read_mem_mb(wildcards) -> int:
    """The source images, the array read back, and the untimed warm-up read."""
    return int(BASE_MB + 4 * _images_mb(wildcards))


def timing_runtime(wildcards) -> int:
    """Minutes: PNG stores 100,000 images in about a minute on an SSD; 30x headroom."""
    return 10 + int(wildcards.cutoff) // 5000
