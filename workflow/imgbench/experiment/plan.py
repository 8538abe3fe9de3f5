"""Which jobs a configuration asks for: the axes of the experiment, expanded.

Axes (named after their config keys, and so are the wildcards): ``method`` and its
``variant``, ``image_size``, ``cutoff``, ``repeat``; reads add ``read_cache``,
``read_pattern``, ``readers`` and ``readahead``. Every cutoff runs at every image size:
a job holds the image pool (at most ``pool_bytes``) and a few chunks (``chunk_bytes``),
not its cutoff, so a store may be larger than memory. Only the article's ``whole_array``
read, which returns the whole store as one array, is bounded (``max_array_bytes``).
"""

from __future__ import annotations

import hashlib
from itertools import product

from imgbench import methods
from imgbench.experiment import vocabulary
from imgbench.experiment.vocabulary import image_bytes
from imgbench.methods import encoding

CIFAR_SIZE = 32
CIFAR_TRAINING_IMAGES = 50_000


def pool_bytes(config: dict, size: int) -> int:
    """The most bytes the pool of ``size`` holds: ``pool_bytes``, or CIFAR's training set
    where that is smaller (the archive may hold fewer images still). An image folder
    (``dataset.images_dir``) has no such bound: ``pool_bytes`` (it may hold fewer)."""
    if (config.get("dataset") or {}).get("images_dir"):
        return int(config["pool_bytes"])
    return min(int(config["pool_bytes"]), CIFAR_TRAINING_IMAGES * image_bytes(size))


def chunk_images(config: dict, size: int) -> int:
    """Images per chunk of a store or a whole-store read (at least one)."""
    return max(1, int(config["chunk_bytes"]) // image_bytes(size))


def array_read_fits(config: dict, size: int, cutoff: int) -> bool:
    """Whether the article's whole_array read of a store may load it into one array."""
    return cutoff * image_bytes(size) <= int(config["max_array_bytes"])


def excluded_points(config: dict) -> list[str]:
    notes = []
    if vocabulary.WHOLE_ARRAY in config["read_patterns"]:
        for size in config["image_sizes"]:
            big = [c for c in config["cutoffs"] if not array_read_fits(config, size, c)]
            if big:
                notes.append(
                    f"read_patterns whole_array: image_size {size}: cutoffs {big} skipped, "
                    f"larger than max_array_bytes ({int(config['max_array_bytes']):,} bytes) "
                    "in one array; their whole read streams (pattern whole)"
                )
    if vocabulary.RANDOM_SINGLE in config["read_patterns"]:
        small = sorted(c for c in config["cutoffs"] if c < config["random_reads"])
        if small:
            notes.append(
                f"read_patterns random_single: cutoffs {small} skipped, below random_reads "
                f"({config['random_reads']}): a store of fewer images than reads would mostly "
                "re-read images already read"
            )
    return notes


def method_variants(config: dict) -> list[tuple[str, str]]:
    """(method, variant) pairs; a method without configured variants runs ``default``."""
    pairs = []
    for method in config["methods"]:
        for variant in config["variants"].get(method) or {"default": {}}:
            pairs.append((method, variant))
    return pairs


STORE_WILDCARDS = ("method", "variant", "image_size", "cutoff", "repeat")


def store_jobs(config: dict) -> list[dict]:
    """Every store of the run (one per method, variant, image size, cutoff and repeat);
    the Snakemake jobs that write them are ``job_groups``."""
    jobs = []
    for (method, variant), size in product(method_variants(config), config["image_sizes"]):
        for cutoff, repeat in product(config["cutoffs"], range(1, config["repeats"] + 1)):
            jobs.append(
                {
                    "method": method,
                    "variant": variant,
                    "image_size": size,
                    "cutoff": cutoff,
                    "repeat": repeat,
                }
            )
    return jobs


# --- small stores share their jobs ---------------------------------------------------------
#
# A store of a few images is written and read in milliseconds, while a job costs about
# 0.35 s beyond its timed work (the interpreter, Snakemake's preamble and its work between
# jobs, imports, provenance): in the default run the 72 jobs of cutoffs 1, 10 and 100
# spent 27 s for 2 s of timed work. So the stores of at most ``small_store_bytes`` of
# pixels of one method, variant, image size and repeat, with the same reads, share one
# store job and one read job. Each store is still written fresh and read from its own
# prepared state with its own repetitions, and its rows are its own; the job's
# ``cutoff`` wildcard names the cutoffs it holds ("1+10+100").

CUTOFF_JOINER = "+"


def cutoff_groups(config: dict, size: int) -> list[list[int]]:
    """The config's cutoffs at ``size`` as the jobs hold them: each small store's cutoff
    (at most ``small_store_bytes`` of pixels) with the other small ones that have the
    same reads, every other cutoff alone; in the config's order."""
    limit = int(config.get("small_store_bytes") or 0)
    groups: list[list[int]] = []
    shared: dict[tuple, list[int]] = {}
    for cutoff in config["cutoffs"]:
        if cutoff * image_bytes(size) > limit:
            groups.append([cutoff])
            continue
        reads = tuple(tuple(kind.values()) for kind in read_kinds(config, cutoff, size))
        if reads in shared:
            shared[reads].append(cutoff)
        else:
            shared[reads] = [cutoff]
            groups.append(shared[reads])
    return groups


def cutoff_label(cutoffs: list[int]) -> str:
    """A job's ``cutoff`` wildcard: its cutoffs joined ("1+10+100", or "1000")."""
    return CUTOFF_JOINER.join(str(cutoff) for cutoff in cutoffs)


def cutoffs_of(label) -> list[int]:
    """The cutoffs a job's ``cutoff`` wildcard names."""
    return [int(cutoff) for cutoff in str(label).split(CUTOFF_JOINER)]


def job_groups(config: dict) -> list[dict]:
    """The store jobs: the wildcards of each (``cutoff`` a ``cutoff_label``) and the
    ``cutoffs`` of the stores it writes."""
    jobs = []
    for (method, variant), size in product(method_variants(config), config["image_sizes"]):
        groups = cutoff_groups(config, size)
        for cutoffs, repeat in product(groups, range(1, config["repeats"] + 1)):
            jobs.append(
                {
                    "method": method,
                    "variant": variant,
                    "image_size": size,
                    "cutoff": cutoff_label(cutoffs),
                    "repeat": repeat,
                    "cutoffs": cutoffs,
                }
            )
    return jobs


def read_job_groups(config: dict) -> list[dict]:
    """The read jobs: one per store job whose stores have reads (``job_groups``). A read
    job runs all its stores' reads in one process, each from its own prepared state
    (``StoreReadKinds``)."""
    return [
        job
        for job in job_groups(config)
        if read_kinds(config, job["cutoffs"][0], job["image_size"])
    ]


def read_kinds(
    config: dict, cutoff: int | None = None, image_size: int | None = None
) -> list[dict]:
    """The reads of a store of ``cutoff`` images of ``image_size``: cache state x pattern
    x readers x readahead, and for a request pattern x ``clients`` x readahead (every
    kind when ``cutoff`` is None).

    ``whole`` (an epoch streamed in chunks) and ``whole_array`` (the article's read into
    one array; only up to ``max_array_bytes``) run once per cache state, in one process
    with the kernel's readahead. Readahead ``off`` is read only cold: a warm read fetches nothing
    from the device, so it would repeat the ``on`` figure. ``random_single`` runs only on
    stores of at least ``random_reads`` images (fewer would mostly re-read images).
    """
    kinds = []
    for cache, pattern in product(config["read_cache"], config["read_patterns"]):
        if (
            vocabulary.uses(pattern, "random_reads")
            and cutoff is not None
            and cutoff < config["random_reads"]
        ):
            continue
        if (
            pattern == vocabulary.WHOLE_ARRAY
            and cutoff is not None
            and image_size is not None
            and not array_read_fits(config, image_size, cutoff)
        ):
            continue
        if vocabulary.is_one_process(pattern):
            kinds.append((cache, pattern, 1, vocabulary.READAHEAD_ON))
            continue
        for readers, readahead in product(config["readers"], config["readahead"]):
            if readahead == vocabulary.READAHEAD_ON or cache == vocabulary.COLD:
                kinds.append((cache, pattern, readers, readahead))
        for clients, readahead in product(config.get("clients") or [], config["readahead"]):
            if readahead == vocabulary.READAHEAD_ON or cache == vocabulary.COLD:
                kinds.append((cache, pattern, (clients["nodes"], clients["per_node"]), readahead))
    return [_kind(*kind) for kind in kinds]


def _kind(cache: str, pattern: str, readers, readahead: str) -> dict:
    """A read kind as the read job's params carry it: a many-clients read (``readers`` a
    pair: nodes, per node) has ``nodes`` and ``per_node`` and one reader per client."""
    kind = {
        "read_cache": cache,
        "read_pattern": pattern,
        "readers": readers,
        "readahead": readahead,
    }
    if isinstance(readers, tuple):
        kind.update(readers=1, nodes=readers[0], per_node=readers[1])
    return kind


def client_layout(config: dict, wildcards) -> tuple[int, int]:
    """The most nodes and client processes per node any read of a job's stores uses:
    (1, 0) for a job without many-clients reads."""
    kinds = [kind for kind in job_read_kinds(config, wildcards) if kind.get("per_node")]
    if not kinds:
        return 1, 0
    return max(kind["nodes"] for kind in kinds), max(kind["per_node"] for kind in kinds)


def read_points(config: dict) -> list[dict]:
    """Every read of the run: each store with each of its read kinds."""
    return [
        {**job, **kind}
        for job in store_jobs(config)
        for kind in read_kinds(config, job["cutoff"], job["image_size"])
    ]


def job_read_kinds(config: dict, wildcards) -> list[dict]:
    """The reads of each store of a job (the stores a job holds have the same reads)."""
    return read_kinds(config, cutoffs_of(wildcards.cutoff)[0], int(wildcards.image_size))


def job_order(kind: dict) -> tuple:
    """A store's reads in the order its read job runs them: warm reads first, while the
    store just written is still in the page cache and making it warm costs nothing; then
    in the config's order."""
    return (kind["read_cache"] != vocabulary.WARM,)


class StoreReadKinds:
    """Rule ``params`` callable: the read kinds of the job's store, in the order its read
    job runs them (``job_order``); a read setting changed reruns these jobs only."""

    def __init__(self, config: dict):
        self.config = config

    def __call__(self, wildcards) -> list[dict]:
        return sorted(job_read_kinds(self.config, wildcards), key=job_order)


class ReadParameter:
    """Rule ``params`` callable: the config's ``key`` (``batch_size``, ``random_reads``,
    ``shuffle_buffer`` or ``seed``) for a read job with a read whose pattern uses it,
    ``None`` for any other, so changing it reruns only the read jobs it concerns."""

    def __init__(self, config: dict, key: str):
        self.config, self.key = config, key

    def __call__(self, wildcards):
        kinds = job_read_kinds(self.config, wildcards)
        if any(vocabulary.uses(kind["read_pattern"], self.key) for kind in kinds):
            return self.config[self.key]
        return None


class StoreUnread:
    """Rule ``params`` callable: whether the job's store has no read (then its store job
    removes it, unless ``keep_stores``)."""

    def __init__(self, config: dict):
        self.config = config

    def __call__(self, wildcards) -> bool:
        return not job_read_kinds(self.config, wildcards) and not self.config["keep_stores"]


def paths(template, jobs: list[dict]) -> list[str]:
    """Fill a rule's output pattern with each job's wildcards."""
    return [str(template).format(**job) for job in jobs]


class StorePaths:
    """Rule ``params`` callable: the store directory of each of the job's cutoffs, from
    the layout ``template`` (``store_dir`` not expanded: the job resolves it where it
    runs, see ``storeref``)."""

    def __init__(self, template: str):
        self.template = str(template)

    def __call__(self, wildcards) -> list[str]:
        path = self.template
        for name in STORE_WILDCARDS:
            if name != "cutoff":
                path = path.replace("{" + name + "}", str(getattr(wildcards, name)))
        return [path.replace("{cutoff}", str(cutoff)) for cutoff in cutoffs_of(wildcards.cutoff)]


class VariantOptions:
    """Rule ``params`` callable: the format options of the job's (method, variant)."""

    def __init__(self, config: dict):
        self.variants = config["variants"]

    def __call__(self, wildcards) -> dict:
        return dict((self.variants.get(wildcards.method) or {}).get(wildcards.variant) or {})


class PsnrFloor:
    """Rule ``params`` callable: the config's floor ``key`` (``store_psnr_floor_db`` or
    ``image_psnr_floor_db``) for a job whose variant stores lossy images
    (``encoding.is_lossy`` of its resolved options), ``None`` for every other job, so
    changing a floor reruns only the lossy stores and reads."""

    def __init__(self, config: dict, key: str):
        self.floor_db = config[key]
        self.options = VariantOptions(config)

    def __call__(self, wildcards) -> float | None:
        module = methods.get_method(wildcards.method)
        options = methods.resolve_options(module, self.options(wildcards))
        return self.floor_db if encoding.is_lossy(options) else None


class StorePriority:
    """Rule ``priority`` callable: a seeded order of the store jobs in [0, 1).

    Block by repeat (every point's first store before any second store), shuffled within
    a block with ``seed``, so repeats of one method never run back to back by design and
    slow drift of the machine spreads over all methods. Reads (priority 20) and removals
    (10) of a store run before the next store starts.
    """

    def __init__(self, config: dict):
        self.repeats = int(config["repeats"])
        self.seed = int(config["seed"])

    def __call__(self, wildcards) -> float:
        point = "/".join(
            str(getattr(wildcards, name))
            for name in ("method", "variant", "image_size", "cutoff", "repeat")
        )
        digest = hashlib.sha256(f"{self.seed}/{point}".encode()).digest()
        within_block = int.from_bytes(digest[:6], "big") / float(1 << 48)
        block = self.repeats - int(wildcards.repeat)  # repeat 1 first
        return (block + within_block) / self.repeats


class PoolCount:
    """Rule ``params`` callable: the most images of the pool of the job's image_size."""

    def __init__(self, config: dict):
        self.config = config

    def __call__(self, wildcards) -> int:
        size = int(wildcards.image_size)
        return pool_bytes(self.config, size) // image_bytes(size)
