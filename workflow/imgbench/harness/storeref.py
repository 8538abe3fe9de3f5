"""Where a store lives, resolved inside the job, so ``store_dir`` may be node-local scratch;
which stores under ``store_dir`` the pipeline made, and removing those no job owns.

``store_dir`` may name environment variables (``$TMPDIR/imgbench``, ``${SLURM_TMPDIR}``),
expanded by the store job on the node that runs it. The store job writes a small manifest
(its stores' paths, host); the read jobs and the removal job read it and run on another host only
where the store's path exists there too (a shared file system), so a store on node-local
disk is never silently missing. Snakemake tracks the manifest,
not the store directory.

Every store directory the pipeline creates has a claim beside it, ``<store>.imgbench``
(JSON: state ``writing`` or ``complete``, host, pid), written before the directory and
removed after it. A store job that fails removes its store and claim (``release``); what
it cannot (SIGKILL, power loss) ``sweep`` removes at the start of the next run or through
``snakemake clean_stores``: stores left ``writing`` by a process that is gone, and
complete stores no current job owns. Nothing without a claim is ever removed, apart from
the job's own scratch beside a claimed store and directories of the store layout
(``method/variant/<size>px/<cutoff>``) left empty.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
from collections.abc import Iterable
from pathlib import Path

from imgbench.system.atomic import write_text
from imgbench.system.fsutil import filesystem_of, free_bytes, remove_tree


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


def write_manifest(manifest: Path, stores: Path | list[Path]) -> None:
    """Record the job's stores (one, or the small stores sharing a job), the host that
    wrote them and their file system."""
    stores = [stores] if isinstance(stores, (str, Path)) else list(stores)
    fs_type, mount = filesystem_of(stores[0])
    record = {
        "stores": [str(store) for store in stores],
        "host": socket.gethostname(),
        "fs_type": fs_type,
        "mount": mount,
    }
    write_text(json.dumps(record, indent=2) + "\n", manifest)


def read_manifest(manifest: Path) -> list[Path]:
    """The store directories named by ``manifest``; each must exist here: on the host
    that wrote it, or on another that sees the same path (a shared file system)."""
    record = json.loads(Path(manifest).read_text())
    stores = [Path(store) for store in record.get("stores") or [record["store"]]]
    here = socket.gethostname()
    for store in stores:
        if record["host"] != here and not store.exists():
            raise StoreLocationError(
                f"store {store} was written on {record['host']} but this job runs on {here}, "
                "where it does not exist: on a cluster keep each store's jobs in one job group "
                "(profiles/slurm sets `groups`) or put store_dir on a shared file system"
            )
        if not store.is_dir():
            raise StoreLocationError(
                f"store {store} named by {manifest} is missing; rerun its store job "
                f"(snakemake --forcerun store) or check that store_dir is not cleaned by the "
                "system"
            )
    return stores


def remove(manifest: Path, keep: bool, root: Path | None = None) -> tuple[list[Path], bool]:
    """Remove the manifest's stores and their claims unless ``keep``, then layout
    directories left empty up to ``root``; returns (stores, removed)."""
    stores = read_manifest(manifest)
    if keep:
        return stores, False
    for store in stores:
        release(store, root)
    return stores, True


CLAIM_SUFFIX = ".imgbench"
_SCRATCH = re.compile(r"\.warmup-(\d+)$")
_RECYCLE = re.compile(r"^\.recycle-(\d+)$")


def claim_path(store: Path) -> Path:
    return store.with_name(store.name + CLAIM_SUFFIX)


def _write_claim(store: Path, state: str) -> None:
    record = {"store": str(store), "state": state, "host": socket.gethostname(), "pid": os.getpid()}
    write_text(json.dumps(record) + "\n", claim_path(store))


def claim(store: Path) -> None:
    """Mark ``store`` as being written by this process (before its directory exists)."""
    store.parent.mkdir(parents=True, exist_ok=True)
    _write_claim(store, "writing")


def complete(store: Path) -> None:
    """Mark ``store`` as whole: its rows and manifest are written."""
    _write_claim(store, "complete")


def _read_claim(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _scratch_of(store: Path) -> list[Path]:
    """The job scratch beside ``store``: its warm-up stores and recycled page-cache files."""
    found = []
    if store.parent.is_dir():
        for entry in store.parent.iterdir():
            warmup = _SCRATCH.search(entry.name) if entry.name.startswith(store.name) else None
            match = warmup or _RECYCLE.match(entry.name)
            if match is None:
                continue
            pid = int(match.group(1))
            if pid == os.getpid() or not _alive(pid):  # never another running job's
                found.append(entry)
    return found


def prune_empty(directory: Path, root: Path) -> None:
    """Remove ``directory`` and its parents while they are empty, up to ``root`` (kept)."""
    root = Path(root).absolute()
    directory = Path(directory).absolute()
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


@contextlib.contextmanager
def writing(store: Path, root: Path | None = None):
    """Claim ``store`` for this process; if the block fails for any reason it can see
    (an exception, SIGINT, SIGTERM turned into an exception), remove what was written."""
    store = Path(store)
    claim(store)
    try:
        yield store
    except BaseException as error:
        with contextlib.suppress(OSError, AttributeError, TypeError):
            error.free_at_failure = free_bytes(store)  # before the store goes
        release(store, root)
        raise


def release(store: Path, root: Path | None = None) -> None:
    """Remove ``store``, its job scratch and its claim; then empty layout directories up to
    ``root`` (store_dir) when given."""
    for scratch in _scratch_of(store):
        remove_tree(scratch)
    remove_tree(store)
    claim_path(store).unlink(missing_ok=True)
    if root is not None:
        prune_empty(store.parent, root)


def _layout_dirs(root: Path) -> list[Path]:
    """Directories of the store layout under ``root`` (method/variant/<size>px/<cutoff>),
    deepest first: the only directories sweep may remove when empty."""
    from imgbench.methods import available_methods

    found = []
    for method in available_methods():
        for variant_dir in sorted((root / method).glob("*")):
            for size_dir in sorted(variant_dir.glob("*px")):
                if not re.fullmatch(r"\d+px", size_dir.name):
                    continue
                found += [d for d in size_dir.glob("*") if re.fullmatch(r"\d+", d.name)]
                found.append(size_dir)
            found.append(variant_dir)
        found.append(root / method)
    return [d for d in found if d.is_dir() and not d.is_symlink()]


def sweep(root: Path, owned: Iterable[Path], keep_complete: bool = False) -> list[Path]:
    """Remove the pipeline's stores under ``root`` that no job owns; returns them.

    A claimed store goes when it was left ``writing`` by a process no longer running on
    this host, or when it is complete but not in ``owned`` (unless ``keep_complete``, for
    keep_stores). A store another host is writing is left alone (its writer cannot be
    checked from here). Empty layout directories go too.
    """
    root = Path(root).absolute()
    if not root.is_dir():
        return []
    owned = {Path(path).absolute() for path in owned}
    here = socket.gethostname()
    removed = []
    for claim_file in sorted(root.rglob("*" + CLAIM_SUFFIX)):
        record = _read_claim(claim_file)
        store = claim_file.with_name(claim_file.name[: -len(CLAIM_SUFFIX)])
        if record is None:
            continue
        if record.get("state") == "writing":
            if record.get("host") != here:
                continue  # whether its writer still runs cannot be told from here
            pid = int(record.get("pid", -1))
            if pid != os.getpid() and _alive(pid):
                continue  # being written right now
        elif store in owned or keep_complete:
            continue
        release(store)
        removed.append(store)
    for directory in _layout_dirs(root):
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when empty
    return removed
