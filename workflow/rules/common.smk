# Shared helpers of the workflow's rules.

import sys
import threading
from types import SimpleNamespace

from imgbench import space, storeref


def end_reselection_timers():
    """Snakemake's job rate limiter starts a threading.Timer per scheduling round; a
    pending one keeps the finished process alive until it fires. End them."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


def owned_stores(root):
    """The store directories the current configuration's store jobs write."""
    return [
        root / str(STORE.relative_to(STORE_DIR)).format(**job) for job in STORE_JOBS
    ]


def sweep_orphan_stores():
    """Remove the pipeline's stores under store_dir that no current job owns: stores of
    points no longer in the config, and partial stores of killed jobs."""
    try:
        root = storeref.resolve(config["store_dir"])
    except storeref.StoreLocationError as error:
        print(f"Note: orphaned stores not looked for: {error}", file=sys.stderr)
        return []
    removed = storeref.sweep(
        root, owned_stores(root), keep_complete=config["keep_stores"]
    )
    for store in removed:
        print(f"Removed the orphaned store {store}", file=sys.stderr)
    return removed


def check_disk_space():
    """Print the run's peak disk need against the free space; stop when it cannot fit."""
    try:
        root = storeref.resolve(config["store_dir"])
    except storeref.StoreLocationError:
        return  # resolved on the node that runs each store job, and checked there
    options = plan.VariantOptions(config)
    label, need = space.largest_store(
        STORE_JOBS, lambda job: options(SimpleNamespace(**job))
    )
    missing = [
        size
        for size in config["image_sizes"]
        if not Path(str(POOL).format(image_size=size)).exists()
    ]
    data_need = sum(plan.pool_bytes(config, size) for size in missing)
    try:
        line = space.start_check(root, label, need, data_need, DATA_DIR)
    except space.StoreSpaceError as error:
        print(f"Error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(line, file=sys.stderr)


onstart:
    sweep_orphan_stores()
    check_disk_space()


onsuccess:
    end_reselection_timers()


onerror:
    end_reselection_timers()
