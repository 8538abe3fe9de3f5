"""The experiment's vocabulary: read patterns, cache states, readahead settings, what an
image weighs and which read is the whole-store read. Every other module, the config
schema (checked by tests/unit/test_vocabulary.py) and the workflow's wildcard constraints take
these names from here; a new read pattern is one entry in ``READ_PATTERNS`` (and, for a
request pattern, its request list in ``access``).

Pure Python: importable by the workflow, the jobs and the figures alike.
"""

from __future__ import annotations

from typing import NamedTuple

# --- read patterns ------------------------------------------------------------------------

# Kinds of read pattern. A one-process read is the method's own read in the job's
# process, with the kernel's readahead (one reader, readahead on). A request read is a
# list of requests (arrays of image indices) served through the method's reader by one or
# more reader processes, with readahead on or off.
ONE_PROCESS = "one_process"
REQUESTS = "requests"


class Pattern(NamedTuple):
    name: str
    kind: str  # ONE_PROCESS or REQUESTS
    description: str  # one line, for the docs and the figures
    # Config keys the pattern's reads depend on beyond the store: ``batch_size``,
    # ``random_reads``, ``shuffle_buffer`` and ``seed``; a row records the batch size,
    # shuffle buffer and seed only of the patterns that use them.
    parameters: tuple[str, ...] = ()


WHOLE = "whole"
WHOLE_ARRAY = "whole_array"
SEQUENTIAL = "sequential"
SHUFFLED = "shuffled"
BUFFERED_SHUFFLE = "buffered_shuffle"
RANDOM_SINGLE = "random_single"

# In the order of tables, legends and panels.
READ_PATTERNS: dict[str, Pattern] = {
    p.name: p
    for p in (
        Pattern(
            WHOLE,
            ONE_PROCESS,
            "an epoch over the whole store, streamed in chunks by the method's own read",
        ),
        Pattern(
            WHOLE_ARRAY,
            ONE_PROCESS,
            "the article's read: the whole store into one array (up to max_array_bytes)",
        ),
        Pattern(
            SEQUENTIAL,
            REQUESTS,
            "front to back in minibatches of batch_size through the reader",
            ("batch_size",),
        ),
        Pattern(
            SHUFFLED,
            REQUESTS,
            "one epoch in a seeded random order, in minibatches of batch_size",
            ("batch_size", "seed"),
        ),
        Pattern(
            BUFFERED_SHUFFLE,
            REQUESTS,
            "the store's units (shards, row groups or blocks) in a seeded random order, "
            "minibatches of batch_size drawn from a buffer of shuffle_buffer images",
            ("batch_size", "shuffle_buffer", "seed"),
        ),
        Pattern(
            RANDOM_SINGLE,
            REQUESTS,
            "random_reads single-image reads at seeded random positions (latency)",
            ("random_reads", "seed"),
        ),
    )
}
PATTERNS = tuple(READ_PATTERNS)
ONE_PROCESS_PATTERNS = tuple(p for p in PATTERNS if READ_PATTERNS[p].kind == ONE_PROCESS)
REQUEST_PATTERNS = tuple(p for p in PATTERNS if READ_PATTERNS[p].kind == REQUESTS)


def pattern(name: str) -> Pattern:
    """The pattern called ``name``; a ValueError naming the known ones otherwise."""
    try:
        return READ_PATTERNS[name]
    except KeyError:
        raise ValueError(
            f"unknown read pattern {name!r}; choose one of {', '.join(PATTERNS)}"
        ) from None


def is_one_process(name: str) -> bool:
    """Whether ``name`` is read by the method's own read in one process (False for names
    not in the vocabulary)."""
    return name in ONE_PROCESS_PATTERNS


def uses(name: str, parameter: str) -> bool:
    """Whether reads of pattern ``name`` depend on ``parameter`` (``batch_size``,
    ``random_reads``, ``shuffle_buffer`` or ``seed``)."""
    return parameter in pattern(name).parameters


def pattern_rank(name: str) -> int:
    """Position of a pattern in ``PATTERNS``; unknown names sort after every known one."""
    return PATTERNS.index(name) if name in READ_PATTERNS else len(PATTERNS)


# --- cache states and readahead -------------------------------------------------------------

COLD = "cold"  # the store evicted from the page cache before each timed read
WARM = "warm"  # the store read once, untimed, before each timed read
CACHE_STATES = (COLD, WARM)  # what a config asks for
# What a warm read's row says when less than 99 % of the store was cached before the read
# (a store larger than memory): never called warm in figures, tables or verdicts.
PARTLY_CACHED = "partly_cached"
ROW_CACHE_STATES = (COLD, WARM, PARTLY_CACHED)  # what rows carry
NO_CACHE = "n/a"  # the cache state of a store row (stores have none)

READAHEAD_ON = "on"
READAHEAD_OFF = "off"  # readers advised of random access (MADV_RANDOM, POSIX_FADV_RANDOM)
READAHEAD = (READAHEAD_ON, READAHEAD_OFF)

# How a cold read's store is evicted before each timed read (config key ``cold``).
FADVISE = "fadvise"  # the store's data pages dropped (posix_fadvise), no root needed
DROP_CACHES = "drop_caches"  # the page cache, dentries and inodes of the machine (root)
EVICTIONS = (FADVISE, DROP_CACHES)

# --- images -----------------------------------------------------------------------------------

CHANNELS = 3  # RGB, one byte each


def image_bytes(size: int) -> int:
    """Raw pixel bytes of one ``size`` x ``size`` RGB image (uint8)."""
    return size * size * CHANNELS


# --- the whole-store read ------------------------------------------------------------------

# The read of the per-cutoff tables, the time figures and the speed-vs-npy figure: the
# article's experiment, streamed. Where it was measured with readahead both on and off
# (rows of a one-process read are always on), only ``on`` counts.
WHOLE_STORE_READ = {"read_pattern": WHOLE, "readers": 1}
WHOLE_STORE_READAHEAD = READAHEAD_ON
WHOLE_STORE_TEXT = "the whole store, streamed in chunks by one reader"


# The baseline method: raw pixels in one .npy file, read with numpy. Tables and figures
# give every other series as a ratio to it ("x times npy").
BASELINE = "npy"
