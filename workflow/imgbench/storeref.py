"""Where a store lives, resolved inside the job, so ``store_dir`` may be node-local scratch.

``store_dir`` may name environment variables (``$TMPDIR/imgbench``, ``${SLURM_TMPDIR}``),
expanded by the store job on the node that runs it. The store job writes a small manifest
(path, host); the read jobs and the removal job read it and refuse to run on another host,
so a store on node-local disk is never silently missing. Snakemake tracks the manifest,
not the store directory.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

from .atomic import write_text
from .fsutil import filesystem_of, remove_tree


class StoreLocationError(RuntimeError):
    """The store's location cannot be resolved here, or it lives on another host."""


def resolve(store_path: str) -> Path:
    """Expand environment variables and ``~``; every variable must be set."""
    expanded = os.path.expanduser(os.path.expandvars(store_path))
    unresolved = re.findall(r"\$\{?(\w+)", expanded)
    if unresolved:
        raise StoreLocationError(
            f"store_dir uses the environment variable ${unresolved[0]}, which is not set on "
            f"{socket.gethostname()}; set it in the job's environment or use a plain path"
        )
    return Path(expanded).absolute()


def write_manifest(manifest: Path, store: Path) -> None:
    fs_type, mount = filesystem_of(store)
    record = {"store": str(store), "host": socket.gethostname(), "fs_type": fs_type, "mount": mount}
    write_text(json.dumps(record, indent=2) + "\n", manifest)


def read_manifest(manifest: Path) -> Path:
    """The store directory named by ``manifest``; it must be on this host and exist."""
    record = json.loads(Path(manifest).read_text())
    store = Path(record["store"])
    here = socket.gethostname()
    if record["host"] != here and not store.exists():
        raise StoreLocationError(
            f"store {store} was written on {record['host']} but this job runs on {here}, "
            "where it does not exist: on a cluster keep each store's jobs in one job group "
            "(profiles/slurm sets `groups`) or put store_dir on a shared file system"
        )
    if not store.is_dir():
        raise StoreLocationError(
            f"store {store} named by {manifest} is missing; rerun its store job "
            f"(snakemake --forcerun store) or check that store_dir is not cleaned by the system"
        )
    return store


def remove(manifest: Path, keep: bool) -> tuple[Path, bool]:
    """Remove the store unless ``keep``; returns (store, removed)."""
    store = read_manifest(manifest)
    if keep:
        return store, False
    remove_tree(store)
    return store, True
