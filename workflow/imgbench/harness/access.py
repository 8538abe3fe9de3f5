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

``buffered_shuffle`` is what a streaming loader does (``shuffle``): the store's *units*
(``read_units``: a method's shards or row groups, else blocks of ``batch_size``) in a
seeded random order, each read with one request, their images pushed into a shuffle buffer
and minibatches drawn from it (``BufferedShuffle``, ``ShuffleBuffer``). Its requests are
the unit reads; every method reads the units of its own store, so the order of the
images differs between methods while the buffer's rule is the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from imgbench.experiment.vocabulary import (  # noqa: F401  (re-exported: the patterns' names and kinds)
    BUFFERED_SHUFFLE,
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


# --- buffered_shuffle: units through a shuffle buffer ---------------------------------------


def default_units(count: int, batch_size: int) -> list[tuple[int, int]]:
    """The units of a method without ``read_units``: blocks of ``batch_size`` consecutive
    images (files in shuffled blocks for image files, blocks of rows for arrays)."""
    return [(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def read_units(module, store_dir: Path, count: int, batch_size: int) -> list[tuple[int, int]]:
    """The units a buffered shuffle reads the store of ``count`` images in: the method's
    own ``read_units(store_dir)`` (wds shards, parquet row groups, zarr shards) or
    ``default_units`` (also where the method's says ``None``: no unit of its own for this
    store, e.g. zarr's one-image chunks); a ValueError unless they cover images 0 to
    ``count`` once, in order, none empty."""
    own = getattr(module, "read_units", None)
    given = None if own is None else own(store_dir)
    if given is None:
        return default_units(count, batch_size)
    units = [(int(start), int(stop)) for start, stop in given]
    expected = 0
    for start, stop in units:
        if start != expected or stop <= start:
            break
        expected = stop
    else:
        if expected == count:
            return units
    name = module.__name__.rsplit(".", 1)[-1]
    shown = ", ".join(f"({a}, {b})" for a, b in units[:6]) + (", ..." if len(units) > 6 else "")
    raise ValueError(
        f"method {name}'s read_units gave {shown} for a store of {count} images; units "
        "must be (start, stop) ranges covering images 0 to the count once, in order, none "
        "empty (the method contract in workflow/imgbench/methods/__init__.py)"
    )


def buffer_capacity(shuffle_buffer: int, batch_size: int, unit_images: int) -> int:
    """The images a ``ShuffleBuffer`` holds at most: ``shuffle_buffer - 1`` waiting, a
    unit just pushed and fewer than a batch drawn but not yet gathered."""
    return shuffle_buffer - 1 + unit_images + batch_size - 1


def _draws(held: np.ndarray, pushed: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Push each of ``pushed`` in turn into a full buffer (``held``: its ``size - 1``
    waiting slots, updated in place) and draw one slot after each push: ``picks[i]``
    (uniform in ``[0, size)``) picks the waiting slot at that position, which leaves and
    the pushed slot takes its place, or (``size - 1``) the pushed slot itself. Returns the
    drawn slots in order: what webdataset's per-sample pick (swap with the last, pop) does,
    in a few numpy calls per unit."""
    drawn = pushed.copy()  # a pick of size - 1 draws what was just pushed
    steps = np.flatnonzero(picks < len(held))
    positions = picks[steps]
    order = np.lexsort((steps, positions))  # by position, then step
    steps, positions = steps[order], positions[order]
    first = np.ones(len(steps), dtype=bool)
    first[1:] = positions[1:] != positions[:-1]
    last = np.ones(len(steps), dtype=bool)
    last[:-1] = first[1:]
    # the slot at a position is what the last earlier step put there, or what was held
    previous = held[positions]
    later = np.flatnonzero(~first)
    previous[later] = pushed[steps[later - 1]]
    drawn[steps] = previous
    held[positions[last]] = pushed[steps[last]]
    return drawn


class ShuffleBuffer:
    """A shuffle buffer of ``size`` images, drawn in minibatches of ``batch_size``:
    webdataset's ``shuffle(size, initial=size)`` followed by ``batched(batch_size)``.
    After each image pushed, once the buffer holds ``size`` images, one is drawn uniformly
    at random (with ``size`` 1, every image as it comes); at the end the rest are drained
    in random order. Images are copied into preallocated storage when pushed (as a loader
    holds each sample in its own array), so memory is ``buffer_capacity`` images whatever
    the store; every batch is a numpy gather of the drawn slots: a fresh array."""

    def __init__(self, size: int, batch_size: int, unit_images: int, rng: np.random.Generator):
        self.size, self.batch_size, self.rng = int(size), int(batch_size), rng
        self.capacity = buffer_capacity(self.size, self.batch_size, int(unit_images))
        self.images: np.ndarray | None = None  # allocated at the first push
        self.labels: np.ndarray | None = None
        self.indices = np.empty(self.capacity, dtype=np.int64)
        self.free = np.arange(self.capacity)[::-1].copy()  # a stack: slot 0 taken first
        self.held = np.empty(0, dtype=np.int64)  # the slots waiting in the buffer
        self.drawn = np.empty(0, dtype=np.int64)  # drawn slots, fewer than a batch

    def push(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> Iterator:
        """Push one unit's images (with their labels and image indices); yield each
        minibatch ``((images, labels), indices)`` drawn meanwhile."""
        if self.images is None:
            self.images = np.empty((self.capacity, *images.shape[1:]), dtype=images.dtype)
            self.labels = np.empty(self.capacity, dtype=labels.dtype)
        count = len(images)
        slots = self.free[len(self.free) - count :][::-1]
        self.free = self.free[: len(self.free) - count]
        self.images[slots] = images
        self.labels[slots] = labels
        self.indices[slots] = indices
        filling = min(count, max(0, self.size - 1 - len(self.held)))
        self.held = np.concatenate([self.held, slots[:filling]])
        rest = slots[filling:]
        if len(rest):
            picks = self.rng.integers(0, self.size, size=len(rest))
            self.drawn = np.concatenate([self.drawn, _draws(self.held, rest, picks)])
        while len(self.drawn) >= self.batch_size:
            yield self._gather(self.batch_size)

    def drain(self) -> Iterator:
        """The images still in the buffer, in random order, in minibatches (the last one
        shorter)."""
        self.drawn = np.concatenate([self.drawn, self.rng.permutation(self.held)])
        self.held = self.held[:0]
        while len(self.drawn):
            yield self._gather(min(self.batch_size, len(self.drawn)))

    def _gather(self, count: int):
        slots, self.drawn = self.drawn[:count], self.drawn[count:]
        batch = (self.images[slots], self.labels[slots]), self.indices[slots]
        self.free = np.concatenate([self.free, slots])
        return batch


# The buffer's random stream, apart from the units' order (``default_rng(seed)``).
BUFFER_STREAM = 1


@dataclass(frozen=True)
class BufferedShuffle:
    """A buffered shuffle's reads: ``units`` (``(start, stop)`` image ranges) in the order
    read, each with one ``reader.get``, through a ``ShuffleBuffer`` of ``shuffle_buffer``
    images seeded by ``seed`` and the ``reader``'s number. ``epoch`` orders a store's units;
    ``split`` gives each reader a contiguous share of them, as webdataset gives each
    worker its shards. As a list of requests it is its unit reads (``len``, iteration):
    what the pool counts one latency for and what adds up to the images read."""

    units: tuple[tuple[int, int], ...]
    batch_size: int
    shuffle_buffer: int
    seed: int
    reader: int = 0

    @classmethod
    def epoch(cls, units, batch_size: int, shuffle_buffer: int, seed: int) -> BufferedShuffle:
        """``units`` in a seeded random permutation."""
        order = np.random.default_rng(seed).permutation(len(units))
        return cls(tuple(units[i] for i in order), int(batch_size), int(shuffle_buffer), seed)

    def split(self, workers: int) -> list[BufferedShuffle]:
        """Contiguous shares of the units (``split``), each numbered by its reader."""
        return [
            replace(self, units=tuple(share), reader=number)
            for number, share in enumerate(split(list(self.units), workers))
        ]

    def __len__(self) -> int:
        return len(self.units)

    def __iter__(self) -> Iterator[np.ndarray]:
        for start, stop in self.units:
            yield np.arange(start, stop)

    @property
    def images_held(self) -> int:
        """The images a reader holds at once: its buffer, a unit's batch and a minibatch."""
        unit = max((stop - start for start, stop in self.units), default=0)
        return buffer_capacity(self.shuffle_buffer, self.batch_size, unit) + unit + self.batch_size

    def serve(self, reader, latencies: np.ndarray | None = None) -> Iterator:
        """Read the units through an open reader, one ``get`` each (its latency in ns into
        ``latencies``), and yield each minibatch ``((images, labels), indices)`` drawn
        from the buffer, then the drained rest: every image of the units once."""
        unit = max((stop - start for start, stop in self.units), default=0)
        rng = np.random.default_rng([self.seed, BUFFER_STREAM, self.reader])
        buffer = ShuffleBuffer(self.shuffle_buffer, self.batch_size, unit, rng)
        for position, (start, stop) in enumerate(self.units):
            indices = np.arange(start, stop)
            begin = time.perf_counter_ns()
            images, labels = reader.get(indices)
            if latencies is not None:
                latencies[position] = time.perf_counter_ns() - begin
            yield from buffer.push(images, labels, indices)
            del images, labels
        yield from buffer.drain()


# --- every request pattern ------------------------------------------------------------------


def buffered_shuffle(
    count: int, batch_size: int, shuffle_buffer: int, seed: int, units=None
) -> BufferedShuffle:
    """One epoch of ``units`` (None: ``default_units``) in a seeded random order through a
    shuffle buffer (``BufferedShuffle``)."""
    units = default_units(count, batch_size) if units is None else units
    return BufferedShuffle.epoch(units, batch_size, shuffle_buffer, seed)


# The requests of each request pattern of the vocabulary (tests/unit/test_vocabulary.py
# checks that none is missing), from a dict of ``requests``' arguments.
REQUESTS = {
    SEQUENTIAL: lambda a: sequential(a["count"], a["batch_size"]),
    SHUFFLED: lambda a: shuffled(a["count"], a["batch_size"], a["seed"]),
    BUFFERED_SHUFFLE: lambda a: buffered_shuffle(
        a["count"], a["batch_size"], a["shuffle_buffer"], a["seed"], a["units"]
    ),
    RANDOM_SINGLE: lambda a: random_single(a["count"], a["reads"], a["seed"]),
}


def requests(
    pattern: str,
    count: int,
    *,
    batch_size: int,
    reads: int,
    seed: int,
    shuffle_buffer: int,
    units: list[tuple[int, int]] | None = None,
):
    """The requests of a request pattern over a store of ``count`` images: a list of
    index arrays, or for ``buffered_shuffle`` a ``BufferedShuffle`` of the store's
    ``units`` (``read_units``; None: blocks of ``batch_size``)."""
    if pattern not in REQUESTS:
        raise ValueError(
            f"read pattern {pattern!r} has no requests; choose one of {REQUEST_PATTERNS}"
        )
    arguments = {
        "count": count,
        "batch_size": batch_size,
        "reads": reads,
        "seed": seed,
        "shuffle_buffer": shuffle_buffer,
        "units": units,
    }
    return REQUESTS[pattern](arguments)


def split(items, workers: int) -> list:
    """Contiguous shares for ``workers`` readers: no item lost or read twice, sizes
    differing by at most one (a ``BufferedShuffle`` splits its units the same way)."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if isinstance(items, BufferedShuffle):
        return items.split(workers)
    bounds = np.linspace(0, len(items), workers + 1).round().astype(int)
    return [items[bounds[w] : bounds[w + 1]] for w in range(workers)]


def client_shares(pattern: str, requests, clients: int, batch_size: int) -> list:
    """Each client's share of a pattern's requests, as a distributed sampler splits an
    epoch (PyTorch's ``DistributedSampler``, webdataset's ``split_by_node``): client ``r``
    of ``C`` takes every ``C``-th image of the epoch's order from the ``r``-th (every
    ``C``-th shard or unit of a buffered shuffle) and reads them in minibatches of
    ``batch_size`` of its own (single images for ``random_single``). Every image of the
    epoch is read once, by one client; shares differ by at most one image (no padding)."""
    if clients < 1:
        raise ValueError("clients must be at least 1")
    if isinstance(requests, BufferedShuffle):
        return [
            replace(requests, units=requests.units[rank::clients], reader=rank)
            for rank in range(clients)
        ]
    order = np.concatenate(list(requests)) if len(requests) else np.empty(0, dtype=np.int64)
    step = 1 if pattern == RANDOM_SINGLE else batch_size
    shares = []
    for rank in range(clients):
        mine = order[rank::clients]
        shares.append([mine[start : start + step] for start in range(0, len(mine), step)])
    return shares


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
