"""What one job measures (``Point``: the coordinates its rows record) and how (``Settings``).

A store job and a read job of the workflow each measure one point: the Snakemake
wildcards and the config's params become a ``Point`` and ``Settings`` in the job's script,
and ``measure.run_store``/``measure.run_read`` take them. The image size and the cutoff
are the source's (the pool tiled to the cutoff, ``source``), not the point's.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgbench.experiment import vocabulary
from imgbench.methods import encoding
from imgbench.system import fsutil


@dataclass(frozen=True)
class Point:
    """What one store or read job measures, as its rows record it.

    ``options`` are the variant's (``None``: the method's defaults), resolved by the job
    once. ``fsync`` names the flush strategy (``fsutil.FLUSH_STRATEGIES``; the config turns
    the older ``true``/``false`` into names). The fields from ``cache`` on are a read's:
    ``cache`` is ``cold`` or ``warm`` (a read must say which); ``eviction`` how a cold
    store is evicted (``vocabulary.EVICTIONS``); ``pattern`` the read pattern
    (``vocabulary.READ_PATTERNS``) with its ``batch_size``, ``random_reads``,
    ``shuffle_buffer`` and ``seed``;
    ``readers`` and ``readahead`` how a request pattern is served; ``nodes`` and
    ``per_node`` (0: none) the client processes of a many-clients read (``clients``),
    each with one reader, instead of the job's forked readers. A store's rows carry
    ``n/a`` in place of the read's fields."""

    method: str
    variant: str = "default"
    options: dict | None = None
    repeat: int = 1
    fsync: str = "syncfs"
    cache: str | None = None
    eviction: str = vocabulary.FADVISE
    pattern: str = vocabulary.WHOLE
    readahead: str = vocabulary.READAHEAD_ON
    readers: int = 1
    nodes: int = 1
    per_node: int = 0
    batch_size: int = 64
    random_reads: int = 1000
    shuffle_buffer: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.fsync not in fsutil.FLUSH_STRATEGIES:
            raise ValueError(
                f"fsync must be one of {', '.join(fsutil.FLUSH_STRATEGIES)}, not {self.fsync!r}"
            )

    @property
    def clients(self) -> int:
        """Client processes of a many-clients read (0: the job's own readers)."""
        return self.nodes * self.per_node

    @property
    def cold(self) -> bool:
        return self.cache == vocabulary.COLD

    @property
    def eviction_used(self) -> str:
        """The eviction a read row records: the point's for a cold read, ``none`` warm."""
        return self.eviction if self.cold else "none"

    def check_read(self) -> None:
        """Refuse, in one sentence, a read the harness cannot measure as asked."""
        if self.cache not in vocabulary.CACHE_STATES:
            raise ValueError(f"cache must be one of {vocabulary.CACHE_STATES}, not {self.cache!r}")
        if self.readahead not in vocabulary.READAHEAD:
            raise ValueError(
                f"readahead must be one of {vocabulary.READAHEAD}, not {self.readahead!r}"
            )
        if self.cold and self.eviction not in vocabulary.EVICTIONS:
            raise ValueError(
                f"cold must be one of {', '.join(vocabulary.EVICTIONS)}, not {self.eviction!r}"
            )
        one_process = vocabulary.is_one_process(self.pattern)
        if one_process and (self.readers != 1 or self.readahead != vocabulary.READAHEAD_ON):
            raise ValueError(f"the {self.pattern} read runs in one process with readahead on")
        if self.per_node < 0 or self.nodes < 1:
            raise ValueError(
                f"clients need nodes >= 1 and per_node >= 0, not {self.nodes} x {self.per_node}"
            )
        if self.clients and (one_process or self.readers != 1):
            raise ValueError(
                f"a many-clients read has one reader per client and a request pattern, not "
                f"{self.pattern} with {self.readers} readers"
            )
        if self.nodes > 1 and not self.per_node:
            raise ValueError("a read on several nodes is a many-clients read: per_node >= 1")


@dataclass(frozen=True)
class Settings:
    """How a job measures and checks its point: it repeats its timed operation
    ``inner_repeats`` times at most while it has spent less than ``inner_budget_s`` in its
    repetitions; a lossy store must keep ``store_psnr_floor_db`` over all its pixels and
    every image ``image_psnr_floor_db`` (``verification``)."""

    inner_repeats: int = 1
    inner_budget_s: float = 0.0
    rigor: str = ""  # the config's rigor preset (``experiment.rigor``), recorded in rows
    store_psnr_floor_db: float = encoding.STORE_PSNR_FLOOR_DB
    image_psnr_floor_db: float = encoding.IMAGE_PSNR_FLOOR_DB

    def floor_db(self, options: dict) -> float | None:
        """The floor every image read back must keep: ``image_psnr_floor_db`` for a lossy
        store, ``None`` (every pixel equal) for a lossless one."""
        return self.image_psnr_floor_db if encoding.is_lossy(options) else None
