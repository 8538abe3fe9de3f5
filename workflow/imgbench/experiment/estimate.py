"""How long a configuration will take here, printed when a run starts: its timed
operations and an estimate of its wall time.

The estimate is a model of each job fed with reference speeds of the timed operations,
scaled by a short calibration on this machine:

* **reference speeds** (``REFERENCE``): each method's store, whole read (cold, warm) in
  megabytes of pixels a second, and its single-image reads (cold, warm) in seconds per
  image, measured on the reference machine (``REFERENCE_MACHINE``) by the default run. A
  method without figures of its own uses ``FALLBACK``; an encoded variant uses PNG's,
  plus what its encoding and codec cost beyond PNG through Pillow (``CODEC_US``);
* **calibration** (``calibrate``): Pillow encodes the same synthetic images as on the
  reference machine (about 30 ms); the ratio of the two times scales every figure;
* **the job model** (``job_seconds``): a job's timed repetitions follow the harness's
  rule (``inner_repeats`` at most, no new one after ``inner_budget_seconds``, a cheap
  first one a warm-up), each with its preparation and check (``UNTIMED``), plus the
  job's start, and Snakemake's work between jobs.

It is an estimate: page cache, disk and a busy machine move it; the run's own figures
(``imgbench phases``) tell what really happened.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from imgbench.experiment import plan, vocabulary

REFERENCE_MACHINE = "a 2-core AMD EPYC VM (23.5 GiB, ext4 on virtio)"
MB = 1e6


@dataclass(frozen=True)
class Speeds:
    """One method's timed operations on the reference machine."""

    store_mb_s: float
    whole_cold_mb_s: float
    whole_warm_mb_s: float
    single_cold_s: float  # a single-image read from a cold store, seconds per image
    single_warm_s: float
    files_per_image: float = 0.0  # files of a store per image (PNG: one each)


# The default run on the reference machine (32x32 CIFAR-10, stores of 100,000 images).
REFERENCE = {
    "png": Speeds(14.7, 16.4, 37.0, 213e-6, 113e-6, files_per_image=1.0),
    "npy": Speeds(1980, 2850, 6260, 64e-6, 4.4e-6),
    "lmdb": Speeds(725, 1516, 2720, 290e-6, 11e-6),
    "hdf5": Speeds(1960, 2900, 5430, 167e-6, 15e-6),
    # zarr-python pays about 1 ms per call (docs/read-paths.md)
    "zarr": Speeds(400, 300, 400, 2e-3, 1.1e-3),
}
FALLBACK = REFERENCE["lmdb"]
ENCODED = REFERENCE["png"]

# What each encoding and codec costs beyond PNG through Pillow (which ``ENCODED`` and
# REFERENCE["png"] include): (encode, decode) microseconds per image at 32x32 and at
# 256x256, linear in the pixels between and beyond. At 32x32: LMDB values of 10,000
# CIFAR-10 images (docs/configs/codecs.yaml) less raw values' cost; at 256x256: 20 of the
# example photographs encoded and decoded in memory, on the reference machine
# (docs/codecs.md). Lossy JPEG XL and lossless AVIF cost about what their entries say.
PNG_PILLOW_US = ((127.0, 63.0), (23560.0, 2470.0))
CODEC_US = {
    ("png", "imagecodecs"): ((92.0, 32.0), (17910.0, 1400.0)),
    ("png", "opencv"): ((97.0, 49.0), (18570.0, 2100.0)),
    ("png", "spng"): ((108.0, 29.0), (20070.0, 1080.0)),
    ("jpeg", "pillow"): ((40.0, 75.0), (420.0, 630.0)),
    ("jpeg", "imagecodecs"): ((8.0, 15.0), (330.0, 410.0)),
    ("jpeg", "opencv"): ((9.0, 22.0), (390.0, 460.0)),
    ("jpeg", "simplejpeg"): ((8.0, 15.0), (480.0, 560.0)),
    ("qoi", "imagecodecs"): ((8.0, 9.0), (540.0, 410.0)),
    ("qoi", "pillow"): ((1237.0, 1310.0), (71900.0, 78640.0)),
    ("jpegxl", "imagecodecs"): ((2115.0, 302.0), (80160.0, 12780.0)),
    ("avif", "pillow"): ((3348.0, 87.0), (51220.0, 1290.0)),
    ("avif", "imagecodecs"): ((2537.0, 56.0), (39750.0, 1280.0)),
}
CIFAR_IMAGE_BYTES = 32 * 32 * 3
PHOTO_IMAGE_BYTES = 256 * 256 * 3


def codec_seconds(points: tuple, image_bytes: int) -> tuple[float, float]:
    """(encode, decode) seconds per image of ``image_bytes`` from a ``CODEC_US`` entry."""
    (e32, d32), (e256, d256) = points
    share = (image_bytes - CIFAR_IMAGE_BYTES) / (PHOTO_IMAGE_BYTES - CIFAR_IMAGE_BYTES)
    return (
        max(e32 + share * (e256 - e32), 0.0) * 1e-6,
        max(d32 + share * (d256 - d32), 0.0) * 1e-6,
    )


# Untimed work, on the reference machine: a job's start (interpreter, Snakemake's
# preamble, imports, provenance, warm-up), Snakemake's work per job, and per repetition
# the preparation (write back, eviction or fill) and the check; the per-job and
# per-repetition figures from the phase ledger of the default run of a20584e (its
# estimate then: +9 % for default, +8 % for fast, +1 % for rigorous; most of the rest is
# the random reads of the 1,000- and 10,000-image stores, faster than REFERENCE's).
UNTIMED = {
    "job_start_s": 0.32,
    "between_jobs_s": 0.056,
    "repetition_s": 0.008,
    "per_file_s": 3.6e-6,  # one pass over a store's files (evict or fill, with residency)
    "unlink_s": 38e-6,  # removing a file of a store (4 threads)
    "recycle_mb_s": 700.0,  # the first repetition's memory recycling
    "check_whole_mb_s": 3000.0,  # comparing a whole read's chunks with the pool
    "readers_s": 0.012,  # forking and warming up the readers of a request read
    "clients_s": 0.25,  # starting a many-clients read's client processes, per client (once)
    "start_s": 3.0,  # Snakemake building the DAG
    "end_s": 10.0,  # aggregation, figures and report pages
}

# What Pillow encodes to calibrate, and how long it took on the reference machine.
CALIBRATION_IMAGES = 64
REFERENCE_CALIBRATION_S = 0.0079


def _calibration_images() -> np.ndarray:
    """Deterministic 32x32 images with CIFAR-like detail (a gradient and noise)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 200, 32, dtype=np.float32)
    base = ramp[None, :, None] + ramp[:, None, None] / 2
    noise = rng.normal(0, 20, size=(CALIBRATION_IMAGES, 32, 32, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def calibrate(rounds: int = 3) -> float:
    """This machine's time for the reference PNG encodes, over the reference machine's
    (best of ``rounds``): above 1 is slower."""
    from PIL import Image

    images = _calibration_images()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for image in images:
            Image.fromarray(image).save(io.BytesIO(), format="PNG", compress_level=6)
        best = min(best, time.perf_counter() - start)
    return best / REFERENCE_CALIBRATION_S


def speeds_of(method: str, options: dict, image_bytes: int = CIFAR_IMAGE_BYTES) -> Speeds:
    """The reference speeds of a method and its options (images of ``image_bytes``): an
    encoded variant's are PNG's, with its encoding and codec's cost beyond PNG through
    Pillow (``CODEC_US``) added to every store, read and check."""
    name = options.get("encoding", "raw")
    if name == "raw":
        return REFERENCE.get(method, FALLBACK)
    base = REFERENCE["png"] if method == "png" else ENCODED
    from imgbench.methods import codecs

    codec = codecs.resolve({"lossless": True, **options})
    if (name, codec) not in CODEC_US:  # PNG through Pillow, or WebP: as PNG
        return base
    encode_s, decode_s = codec_seconds(CODEC_US[(name, codec)], image_bytes)
    png_encode_s, png_decode_s = codec_seconds(PNG_PILLOW_US, image_bytes)
    extra_encode, extra_decode = encode_s - png_encode_s, decode_s - png_decode_s
    mb = image_bytes / MB

    def slower(mb_s: float, extra_s: float) -> float:
        return 1 / max(1 / mb_s + extra_s / mb, 1e-12)

    return Speeds(
        slower(base.store_mb_s, extra_encode),
        slower(base.whole_cold_mb_s, extra_decode),
        slower(base.whole_warm_mb_s, extra_decode),
        max(base.single_cold_s + extra_decode, 1e-7),
        max(base.single_warm_s + extra_decode, 1e-7),
        base.files_per_image,
    )


@dataclass
class Estimate:
    timed_operations: int = 0
    timed_s: float = 0.0
    wall_s: float = 0.0
    jobs: int = 0


def repetitions(cost_s: float, timed_s: float, inner_repeats: int, budget_s: float):
    """(performed, kept) repetitions of a job whose repetition costs ``cost_s`` of wall
    time and ``timed_s`` inside the clock (``harness.job_rows``'s rule)."""
    performed = kept = 0
    elapsed = 0.0
    warmup = inner_repeats > 1 and timed_s < budget_s
    while kept < inner_repeats and (kept == 0 or elapsed < budget_s):
        performed += 1
        elapsed += cost_s
        if performed == 1 and warmup:
            continue
        kept += 1
    return performed, kept


def _timed_read_s(kind: dict, speeds: Speeds, images: int, mb: float, config: dict) -> float:
    pattern, cold = kind["read_pattern"], kind["read_cache"] == vocabulary.COLD
    if vocabulary.is_one_process(pattern):
        return mb / (speeds.whole_cold_mb_s if cold else speeds.whole_warm_mb_s)
    per_image = speeds.single_cold_s if cold else speeds.single_warm_s
    if pattern == vocabulary.RANDOM_SINGLE:
        reads = config["random_reads"]
        return reads * per_image / max(int(kind["readers"]), kind_clients(kind))
    # batches: about a whole read's speed, split over the readers
    whole = mb / (speeds.whole_cold_mb_s if cold else speeds.whole_warm_mb_s)
    return max(whole, images * per_image / 4) / max(int(kind["readers"]), kind_clients(kind))


def estimate(config: dict, factor: float = 1.0) -> Estimate:
    """The run's timed operations, timed seconds and wall time, with every reference
    time multiplied by ``factor`` (``calibrate``)."""
    result = Estimate()
    options_of = plan.VariantOptions(config)
    inner, budget = int(config["inner_repeats"]), float(config["inner_budget_seconds"])
    untimed = {key: value * factor for key, value in UNTIMED.items()}
    # the first store of each job (small stores share their jobs: plan.cutoff_groups)
    job_starts = {
        (job["method"], job["variant"], job["image_size"], job["cutoffs"][0], job["repeat"])
        for job in plan.job_groups(config)
    }
    for job in plan.store_jobs(config):
        wildcards = SimpleNamespace(**{key: str(value) for key, value in job.items()})
        images, size = job["cutoff"], job["image_size"]
        speeds = speeds_of(job["method"], options_of(wildcards), vocabulary.image_bytes(size))
        mb = images * vocabulary.image_bytes(size) / MB
        files = 1 + speeds.files_per_image * images
        store_s = factor * mb / speeds.store_mb_s
        cost = store_s + untimed["repetition_s"] + files * untimed["per_file_s"] * 2
        performed, kept = repetitions(cost, store_s, inner, budget)
        result.timed_operations += kept
        result.timed_s += kept * store_s
        # the store, and its removal (by its read job, or by its store job without reads)
        result.wall_s += performed * cost + mb / untimed["recycle_mb_s"]
        result.wall_s += files * untimed["unlink_s"]
        kinds = plan.read_kinds(config, images, size)
        starts = (job["method"], job["variant"], size, images, job["repeat"]) in job_starts
        jobs = 2 if kinds else 1
        if starts:
            result.jobs += jobs
            result.wall_s += jobs * (untimed["job_start_s"] + untimed["between_jobs_s"])
        if not kinds:
            continue
        for kind in kinds:
            timed = factor * _timed_read_s(kind, speeds, images, mb, config)
            cost = timed + untimed["repetition_s"] + files * untimed["per_file_s"]
            if vocabulary.is_one_process(kind["read_pattern"]):
                cost += mb / untimed["check_whole_mb_s"]
            else:
                checked = (
                    config["random_reads"] if kind["read_pattern"] == "random_single" else images
                )
                cost += untimed["readers_s"] + factor * checked * speeds.single_warm_s
            performed, kept = repetitions(cost, timed, inner, budget)
            result.wall_s += kind_clients(kind) * untimed["clients_s"]
            # a cold read's recycling is the page cache its eviction did not free: none
            # after the warm reads, which run first
            warm_first = any(k["read_cache"] == vocabulary.WARM for k in kinds)
            cold = kind["read_cache"] == vocabulary.COLD
            recycle = mb / untimed["recycle_mb_s"] if cold and not warm_first else 0.0
            result.timed_operations += kept
            result.timed_s += kept * timed
            result.wall_s += performed * cost + recycle
    result.wall_s += untimed["start_s"] + untimed["end_s"]
    return result


def kind_clients(kind: dict) -> int:
    """A read kind's client processes (0: the job's own readers)."""
    return int(kind.get("nodes", 1)) * int(kind.get("per_node", 0))


def minutes(seconds: float) -> str:
    """``seconds`` as "N min S s" (or "S s" under a minute)."""
    whole = int(round(seconds))
    return f"{whole // 60} min {whole % 60:02d} s" if whole >= 60 else f"{whole} s"


def announcement(config: dict, factor: float | None = None) -> str:
    """The lines a run prints at its start: its jobs, timed operations and estimate."""
    if factor is None:
        factor = calibrate()
    planned = estimate(config, factor)
    reads = len(plan.read_points(config))
    stores = len(plan.store_jobs(config))
    return (
        f"Plan: {stores} stores and {reads} reads ({planned.jobs} store and read jobs), "
        f"about {planned.timed_operations:,} timed operations of "
        f"{minutes(planned.timed_s)} in all. Estimated wall time here: about "
        f"{minutes(planned.wall_s)} (this machine encoded the calibration PNGs at "
        f"{1 / factor:.2f}x the speed of {REFERENCE_MACHINE}, where the reference speeds "
        "were measured); each job logs its progress in logs/."
    )
