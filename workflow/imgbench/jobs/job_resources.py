"""Resource requests of the timing jobs, from the pool and chunk sizes, not the cutoff.

A store or read job holds the image pool (at most ``pool_bytes``) and a few chunks
(``chunk_bytes``), whatever its cutoff; only the article's ``whole_array`` read holds the
whole store as one array. Each job records what it really used (``peak_rss_bytes`` in its
rows, ``max_rss`` in its Snakemake benchmark file), so these requests can be checked.
"""

from __future__ import annotations

from types import SimpleNamespace

from imgbench.experiment import plan, vocabulary

BASE_MB = 512  # Python, numpy, the format libraries, the warm-up store
# A method's own unit of a buffered shuffle (``read_units``), read by one ``get``: at most
# a WebDataset shard (``shard_bytes``, 256 MiB by default), the largest of the methods'
# units at their defaults (a Parquet row group of 100 images, an Arrow record batch of
# 100, a Zarr shard of 128: 25 MB at 256x256); its raw bytes and the images made of them.
UNIT_BOUND_MB = 2 * 269  # MB: two of 256 MiB (268.4 MB) rounded up
# A client process of a many-clients read: Python, numpy and the format library (it maps
# the pool, whose pages the node's clients share, and holds a batch or two).
CLIENT_MB = 256


def _mb(nbytes: float) -> int:
    return int(nbytes / 1e6 + 0.5)


class _PerJob:
    def __init__(self, config: dict):
        self.config = config

    def _pool_mb(self, wildcards) -> int:
        return _mb(plan.pool_bytes(self.config, int(wildcards.image_size)))

    def _chunk_mb(self, wildcards) -> int:
        size = int(wildcards.image_size)
        return _mb(plan.chunk_images(self.config, size) * vocabulary.image_bytes(size))

    def _store_mb(self, wildcards) -> int:
        """The largest of the job's stores (a job may hold several small ones)."""
        largest = max(plan.cutoffs_of(wildcards.cutoff))
        return _mb(largest * vocabulary.image_bytes(int(wildcards.image_size)))


class StoreMemMb(_PerJob):
    """The pool, a chunk being produced, the library's copy of it, and slack."""

    def __call__(self, wildcards) -> int:
        return BASE_MB + self._pool_mb(wildcards) + 3 * self._chunk_mb(wildcards)


def read_kinds(config: dict, wildcards) -> list[SimpleNamespace]:
    """The reads of the job's stores, each as wildcards of one read (store and kind)."""
    store = {name: getattr(wildcards, name) for name in plan.STORE_WILDCARDS}
    return [SimpleNamespace(**store, **kind) for kind in plan.job_read_kinds(config, wildcards)]


class ReadMemMb(_PerJob):
    """The most any one of the store's reads holds (they run one after another): the pool
    and two chunks (a batch read and the check); the whole_array read adds the store as
    one array and a copy for the check, a buffered shuffle each reader's shuffle buffer,
    minibatches and a unit (``batch_size`` images, or a method's own unit up to
    ``UNIT_BOUND_MB``)."""

    def __call__(self, wildcards) -> int:
        return max((self.one(read) for read in read_kinds(self.config, wildcards)), default=0)

    def one(self, read) -> int:
        mb = BASE_MB + self._pool_mb(read) + 2 * self._chunk_mb(read)
        if read.read_pattern == vocabulary.WHOLE_ARRAY:
            mb += 2 * self._store_mb(read)
        if read.read_pattern == vocabulary.BUFFERED_SHUFFLE:
            held = self.config["shuffle_buffer"] + 3 * self.config["batch_size"]
            image = vocabulary.image_bytes(int(read.image_size))
            mb += int(read.readers) * (_mb(held * image) + UNIT_BOUND_MB)
        per_node = int(getattr(read, "per_node", 0))
        if per_node:  # a node's clients, and the pool they map once
            mb += per_node * (CLIENT_MB + 2 * self._chunk_mb(read)) + self._pool_mb(read)
        return mb


class ReadThreads:
    """One core per reader process, for the store's read with the most readers (or client
    processes on its node)."""

    def __init__(self, config: dict):
        self.config = config

    def __call__(self, wildcards) -> int:
        return max(
            (
                max(int(read.readers), int(getattr(read, "per_node", 0)))
                for read in read_kinds(self.config, wildcards)
            ),
            default=1,
        )


class MultiNode:
    """A Slurm resource of a job whose reads include clients on several nodes (the
    executor plugin's way to a multi-node job: ``mpi`` names the launcher, so the job
    runs in the batch script on the first node and starts its clients with ``srun``
    itself; ``nodes``; ``tasks_per_node`` or ``tasks``; one CPU per task); None (unset)
    for every other job. Store and read rules both carry it: the Slurm profile groups a
    store with its read job, and a group's string resources must agree."""

    def __init__(self, config: dict, name: str):
        self.config, self.name = config, name

    def __call__(self, wildcards):
        nodes, per_node = plan.client_layout(self.config, wildcards)
        if nodes <= 1:
            return None
        values = {
            "nodes": nodes,
            "mpi": "srun",
            "tasks_per_node": per_node if per_node > 1 else None,
            "tasks": nodes if per_node == 1 else None,
            "cpus_per_task": 1,
        }
        return values[self.name]


def timing_runtime(wildcards) -> int:
    """Minutes: PNG, the slowest method, encodes about 10 MB of pixels a second here
    (256x256 images in about 20 ms each); 10 minutes plus three times that, for all the
    job's stores."""
    images = sum(plan.cutoffs_of(wildcards.cutoff))
    pixels_mb = images * vocabulary.image_bytes(int(wildcards.image_size)) / 1e6
    return 10 + int(pixels_mb / 200)


class ReadRuntime:
    """Minutes of a store's read job: ``timing_runtime``'s allowance beyond 10 minutes for
    each of its reads."""

    def __init__(self, config: dict):
        self.config = config

    def __call__(self, wildcards) -> int:
        reads = len(read_kinds(self.config, wildcards))
        return 10 + reads * (timing_runtime(wildcards) - 10)
