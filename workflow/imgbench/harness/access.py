"""Read access patterns: which images, in which order, split how among reader processes.

``whole`` is an epoch over the whole store in one process through the method's own
streaming read (``read_batches``, chunks of ``chunk_bytes``), front to back: what a
training loader that streams a store does, in memory a chunk at a time whatever the
store's size. ``whole_array`` is the article's read: the method's own ``read`` returns
the whole store as one array (only for stores that fit in memory). Every other pattern
is a list of *requests*, each an array of image indices read (and gathered into one
array) together through the method's reader, by 1 or more reader processes. Orders
depend only on the seed and the number of images, so every method reads the same
permutation. The patterns' names, kinds and parameters are in ``vocabulary``.
"""

from __future__ import annotations

import numpy as np

from imgbench.experiment.vocabulary import (  # noqa: F401  (re-exported: the patterns' names and kinds)
    ONE_PROCESS_PATTERNS,
    PATTERNS,
    RANDOM_SINGLE,
    REQUEST_PATTERNS,
    SEQUENTIAL,
    SHUFFLED,
    WHOLE,
    WHOLE_ARRAY,
)


def sequential(count: int, batch_size: int) -> list[np.ndarray]:
    """Front to back, in batches of ``batch_size``, through the reader."""
    return [
        np.arange(start, min(start + batch_size, count)) for start in range(0, count, batch_size)
    ]


def shuffled(count: int, batch_size: int, seed: int) -> list[np.ndarray]:
    """One epoch in a random permutation, cut into minibatches like a training loader."""
    permutation = np.random.default_rng(seed).permutation(count)
    return [permutation[start : start + batch_size] for start in range(0, count, batch_size)]


def random_single(count: int, reads: int, seed: int) -> list[np.ndarray]:
    """``reads`` single-image reads at uniformly random positions (with replacement)."""
    positions = np.random.default_rng(seed).integers(0, count, size=reads)
    return [positions[i : i + 1] for i in range(reads)]


# The request list of each request pattern of the vocabulary (tests/unit/test_vocabulary.py
# checks that none is missing).
REQUESTS = {
    SEQUENTIAL: lambda count, batch_size, reads, seed: sequential(count, batch_size),
    SHUFFLED: lambda count, batch_size, reads, seed: shuffled(count, batch_size, seed),
    RANDOM_SINGLE: lambda count, batch_size, reads, seed: random_single(count, reads, seed),
}


def requests(pattern: str, count: int, *, batch_size: int, reads: int, seed: int):
    if pattern not in REQUESTS:
        raise ValueError(
            f"read pattern {pattern!r} has no requests; choose one of {REQUEST_PATTERNS}"
        )
    return REQUESTS[pattern](count, batch_size, reads, seed)


def split(items: list, workers: int) -> list[list]:
    """Contiguous shares for ``workers`` readers: no item lost or read twice, sizes
    differing by at most one."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    bounds = np.linspace(0, len(items), workers + 1).round().astype(int)
    return [items[bounds[w] : bounds[w + 1]] for w in range(workers)]


def latency_percentiles(latencies_ns: np.ndarray) -> dict[str, float]:
    """p50, p95, p99 (and max) of per-request latencies, in microseconds."""
    if len(latencies_ns) == 0:
        return {
            "latency_p50_us": np.nan,
            "latency_p95_us": np.nan,
            "latency_p99_us": np.nan,
            "latency_max_us": np.nan,
        }
    micro = np.asarray(latencies_ns, dtype=float) / 1e3
    p50, p95, p99 = np.percentile(micro, [50, 95, 99])
    return {
        "latency_p50_us": p50,
        "latency_p95_us": p95,
        "latency_p99_us": p99,
        "latency_max_us": float(micro.max()),
    }
