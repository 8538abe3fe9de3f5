"""The timing harness: one store or one read of one store, measured in this process.

Only the storage operation sits inside the timed region (``time.perf_counter_ns``): loading
the source images, eviction, disk-usage walks and the correctness check are outside it.
The garbage collector is collected and then disabled during the timed region, as
``timeit`` does, so a collection triggered by earlier allocations cannot land in one
method's figure; every row records that choice in ``gc``.
"""

from __future__ import annotations

import csv
import gc
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import fsutil, provenance
from .methods import get_method

CACHE_STATES = ("cold", "warm")
ROW_FIELDS = [
    "method",
    "operation",
    "cutoff",
    "repeat",
    "cache",
    "fsync",
    "seconds",
    "images_per_s",
    "bytes_on_disk",
    "bytes_apparent",
    "n_files",
    "cached_fraction",
    "gc",
    "host",
    "store_fs_type",
    "env_id",
    "t_start_unix",
    "t_end_unix",
]


class VerificationError(RuntimeError):
    """A store read back something other than what was stored."""


def load_source(images_path: Path, labels_path: Path, cutoff: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``cutoff`` images and labels, fully in memory (no lazy mapping)."""
    images = np.load(images_path, mmap_mode="r", allow_pickle=False)
    labels = np.load(labels_path, mmap_mode="r", allow_pickle=False)
    if cutoff > len(images):
        raise ValueError(
            f"cutoff {cutoff} is larger than the {len(images)} images in {images_path}; "
            "lower the cutoff or raise n_images in config.yaml"
        )
    return np.array(images[:cutoff]), np.array(labels[:cutoff])


def timed(operation: Callable[[], Any]) -> tuple[Any, int, float, float]:
    """Run ``operation`` with the GC collected and disabled; (result, ns, start, end unix)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start_unix = time.time()
        start = time.perf_counter_ns()
        result = operation()
        elapsed = time.perf_counter_ns() - start
        end_unix = time.time()
    finally:
        if was_enabled:
            gc.enable()
    return result, elapsed, start_unix, end_unix


def _row(
    method,
    operation,
    cutoff,
    repeat,
    cache,
    fsync,
    elapsed_ns,
    usage,
    cached,
    env,
    start_unix,
    end_unix,
) -> dict:
    seconds = elapsed_ns / 1e9
    return {
        "method": method,
        "operation": operation,
        "cutoff": cutoff,
        "repeat": repeat,
        "cache": cache,
        "fsync": fsync,
        "seconds": seconds,
        "images_per_s": cutoff / seconds if seconds > 0 else float("inf"),
        "bytes_on_disk": usage.bytes_on_disk,
        "bytes_apparent": usage.bytes_apparent,
        "n_files": usage.n_files,
        "cached_fraction": cached,
        "gc": "disabled",
        "host": env["host"],
        "store_fs_type": env["store_fs_type"],
        "env_id": provenance.environment_id(env),
        "t_start_unix": f"{start_unix:.6f}",
        "t_end_unix": f"{end_unix:.6f}",
    }


def run_store(
    method: str,
    images: np.ndarray,
    labels: np.ndarray,
    store_dir: Path,
    *,
    fsync: bool,
    repeat: int,
    env: dict,
) -> dict:
    """Write a fresh store and time it; the directory must not hold an older store."""
    module = get_method(method)
    store_dir = Path(store_dir)
    fsutil.remove_tree(store_dir)  # never append to an older store
    store_dir.mkdir(parents=True)

    def operation():
        module.store(store_dir, images, labels, fsync=fsync)
        if fsync:
            fsutil.fsync_tree(store_dir)

    _, elapsed, start, end = timed(operation)
    usage = fsutil.disk_usage(store_dir)
    return _row(
        method,
        "store",
        len(images),
        repeat,
        "n/a",
        fsync,
        elapsed,
        usage,
        float("nan"),
        env,
        start,
        end,
    )


def verify(
    method: str, got: tuple[np.ndarray, np.ndarray], images: np.ndarray, labels: np.ndarray
) -> None:
    got_images, got_labels = got
    problems = []
    if got_images.shape != images.shape or got_images.dtype != images.dtype:
        problems.append(
            f"images {got_images.dtype}{got_images.shape}, expected {images.dtype}{images.shape}"
        )
    elif not np.array_equal(got_images, images):
        bad = int(np.flatnonzero((got_images != images).reshape(len(images), -1).any(axis=1))[0])
        problems.append(f"image {bad} differs from the source")
    if got_labels.shape != labels.shape or not np.array_equal(got_labels, labels):
        problems.append(f"labels differ (got shape {got_labels.shape}, expected {labels.shape})")
    if problems:
        raise VerificationError(f"{method} store read back wrong data: " + "; ".join(problems))


def run_read(
    method: str,
    store_dir: Path,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    cache: str,
    fsync: bool,
    repeat: int,
    env: dict,
) -> dict:
    """Time one whole read of a store in the given cache state, then check it exactly."""
    if cache not in CACHE_STATES:
        raise ValueError(f"cache must be one of {CACHE_STATES}, not {cache!r}")
    module = get_method(method)
    store_dir = Path(store_dir)
    if cache == "cold":
        fsutil.evict_tree(store_dir)
    else:
        module.read(store_dir)  # untimed first read fills the page cache
    cached = fsutil.cached_fraction(store_dir)
    result, elapsed, start, end = timed(lambda: module.read(store_dir))
    verify(method, result, images, labels)
    usage = fsutil.disk_usage(store_dir)
    return _row(
        method, "read", len(images), repeat, cache, fsync, elapsed, usage, cached, env, start, end
    )


def write_row(row: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ROW_FIELDS)
        writer.writeheader()
        writer.writerow(
            {
                key: "" if isinstance(value, float) and math.isnan(value) else value
                for key, value in row.items()
            }
        )
    tmp.replace(path)


def write_environment(env: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"env_id": provenance.environment_id(env), "recorded_at": provenance.now_iso(), **env}
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
