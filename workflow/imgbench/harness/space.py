"""Disk space and the store directory: what a store will need, what its file system has
free, whether ``store_dir`` can hold stores at all, and one sentence when it cannot.

Estimates are upper bounds from the method's own ``disk_bytes(n_images, image_bytes,
options)`` (every file rounded up to whole blocks, compression ignored), so a store that
is refused could not have been sure to fit.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from imgbench.experiment import plan
from imgbench.methods import get_method, resolve_options
from imgbench.system import fsutil
from imgbench.system.units import human_bytes

MARGIN_BYTES = 16 << 20  # the one-image warm-up store, logs and file-system slack
PSEUDO_FILE_SYSTEMS = {
    "proc",
    "sysfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "debugfs",
    "tracefs",
    "securityfs",
    "configfs",
    "pstore",
    "bpf",
    "fusectl",
    "mqueue",
    "hugetlbfs",
}


class StoreSpaceError(OSError):
    """A store cannot fit, or store_dir cannot hold stores; the message is one sentence."""

    def __init__(self, message: str, code: int = errno.ENOSPC):
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged process may still write on the file system of ``path``."""
    return fsutil.free_bytes(path)


def store_bytes(method: str, n_images: int, image_bytes: int, options: dict | None = None) -> int:
    """Upper bound of the bytes a store of ``n_images`` takes on disk."""
    module = get_method(method)
    return int(module.disk_bytes(n_images, image_bytes, resolve_options(module, options)))


def store_dir_problem(path: Path) -> str | None:
    """Why stores cannot be written under ``path`` (one sentence naming store_dir), or None."""
    parent = fsutil.existing_parent(path)
    fs_type, mount = fsutil.filesystem_of(parent)
    if fs_type in PSEUDO_FILE_SYSTEMS:
        return (
            f"store_dir {path} is on the {fs_type} pseudo file system at {mount}, which "
            "cannot hold files; point store_dir at a directory on a disk"
        )
    if not parent.is_dir():
        return (
            f"store_dir {path} is under {parent}, which is a file; point store_dir at a directory"
        )
    if os.statvfs(parent).f_flag & os.ST_RDONLY:
        return (
            f"store_dir {path} is on a read-only file system ({mount or parent}); point "
            "store_dir at a writable directory"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        return (
            f"store_dir {path} cannot be created or written: {parent} is not writable by this "
            "user; fix its permissions or point store_dir elsewhere"
        )
    return None


def check_store_dir(path: Path) -> None:
    problem = store_dir_problem(path)
    if problem:
        raise StoreSpaceError(problem, errno.EROFS if "read-only" in problem else errno.EACCES)


def check_store_fits(store: Path, label: str, need: int) -> None:
    """Refuse, with one sentence, a store that needs more than its file system has free."""
    free = free_bytes(store)
    if need + MARGIN_BYTES > free:
        raise StoreSpaceError(
            f"no space for the {label} store: it needs up to {human_bytes(need)} under "
            f"store_dir ({fsutil.existing_parent(store)}), which has {human_bytes(free)} free; "
            "free space there, lower the cutoffs, or point store_dir at a larger file system"
        )


def describe_os_error(error: BaseException, store_dir: Path | None) -> str | None:
    """One sentence for a fault of the file system under ``store_dir`` (no space, read-only,
    no permission, store vanished), naming store_dir and the fix; None for other errors."""
    where = f"store_dir ({store_dir})" if store_dir is not None else "store_dir"
    code = getattr(error, "errno", None)
    text = str(error)
    # The free space when the store failed (``storeref.writing`` notes it before removing
    # the partial store), else now.
    free = getattr(error, "free_at_failure", None)
    if free is None and store_dir is not None:
        try:
            free = free_bytes(store_dir)
        except OSError:
            free = None
    low_space = free is not None and free < MARGIN_BYTES
    full_words = ("No space left", "Not enough free space")
    if (
        code in (errno.ENOSPC, errno.EDQUOT)
        or any(words in text for words in full_words)
        or type(error).__name__ == "MapFullError"
    ):
        return (
            f"no space left on the file system of {where} while writing the store; free space "
            "there, lower the cutoffs, or point store_dir at a larger file system"
        )
    short_write = "requested and" in text and "written" in text  # numpy's tofile
    if low_space and (code == errno.EIO or "Input/output error" in text or short_write):
        return (
            f"no space left on the file system of {where} (the library said: {text}); "
            "free space there, lower the cutoffs, or point store_dir at a larger file system"
        )
    if code == errno.EROFS:
        return f"{where} is on a read-only file system; point store_dir at a writable directory"
    if code in (errno.EACCES, errno.EPERM) and isinstance(error, OSError):
        return (
            f"{where} cannot be written ({text}); fix its permissions or point store_dir elsewhere"
        )
    return None


def largest_store(store_jobs: list[dict], variant_options) -> tuple[str, int]:
    """(label, bytes) of the store job of ``store_jobs`` (``plan.job_groups``, or one
    store each) that needs the most disk: its stores together (small stores sharing a job
    stay until its read job ends); stores are removed after their reads, so this is the
    run's peak need under store_dir."""
    best_label, best = "", 0
    for job in store_jobs:
        size = int(job["image_size"])
        cutoffs = [int(cutoff) for cutoff in job.get("cutoffs") or [job["cutoff"]]]
        need = sum(
            store_bytes(job["method"], cutoff, plan.image_bytes(size), variant_options(job))
            for cutoff in cutoffs
        )
        if need > best:
            best = need
            counts = [f"{cutoff:,}" for cutoff in cutoffs]
            images = (
                counts[0] if len(counts) == 1 else f"{'-, '.join(counts[:-1])}- and {counts[-1]}"
            )
            best_label = f"{job['method']}/{job['variant']} {size}px {images}-image"
            if len(counts) > 1:
                best_label += " stores of one job"
    return best_label, best


def start_check(store_root: Path, label: str, store_need: int, data_need: int, data_dir: Path):
    """One line on the run's peak disk need against the free space; raises StoreSpaceError
    (one sentence) when it cannot fit. ``data_need`` counts data files still to be made."""
    check_store_dir(store_root)
    free = free_bytes(store_root)
    same = (
        os.stat(fsutil.existing_parent(store_root)).st_dev
        == os.stat(fsutil.existing_parent(data_dir)).st_dev
    )
    need = store_need + (data_need if same else 0)
    line = (
        f"Disk: the largest store ({label}) needs up to {human_bytes(store_need)}"
        + (f" and data files still to be made {human_bytes(data_need)}" if data_need else "")
        + f"; store_dir ({store_root}) has {human_bytes(free)} free"
    )
    if not same and data_need:
        data_free = free_bytes(data_dir)
        line += f", {data_dir} {human_bytes(data_free)}"
        if data_need + MARGIN_BYTES > data_free:
            raise StoreSpaceError(
                f"no space for the data files: they need {human_bytes(data_need)} in {data_dir}, "
                f"which has {human_bytes(data_free)} free; free space there or lower n_images"
            )
    if need + MARGIN_BYTES > free:
        raise StoreSpaceError(
            f"no space for this run: its largest store ({label}) needs up to "
            f"{human_bytes(store_need)}"
            + (f" and its data files {human_bytes(data_need)}" if same and data_need else "")
            + f" under store_dir ({store_root}), which has {human_bytes(free)} free; free space "
            "there, lower the cutoffs, or point store_dir at a larger file system"
        )
    return line
