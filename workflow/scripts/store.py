"""Snakemake adapter: write a fresh store of the first `cutoff` images, timed (write, flush);
for a job of several small stores (cutoff "1+10+100"), each of them in turn.

Before anything is written: store_dir must be able to hold files and have room for the
store (an upper bound from the method). The store is claimed while it is written and
removed if the job fails or is interrupted, so no partial store stays behind (nor the
job's other stores).
"""

from imgbench.system import phases

phases.begin()

import signal  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from imgbench.experiment import plan  # noqa: E402
from imgbench.harness import measure, memory, provenance, space, storeref  # noqa: E402
from imgbench.jobs import scriptlog  # noqa: E402
from imgbench.system.units import human_bytes  # noqa: E402

smk = snakemake  # noqa: F821
wildcards = smk.wildcards
# The job's stores: one, or several small ones sharing the job (plan.cutoff_groups).
cutoffs = plan.cutoffs_of(wildcards.cutoff)


def store_label(cutoff):
    return (
        f"{wildcards.method}/{wildcards.variant} {wildcards.image_size}px {cutoff:,}-image "
        f"(repeat {wildcards.repeat})"
    )


label = store_label(cutoffs[0])  # the store being written, as the job goes
store_dir = None


def describe(error):
    if isinstance(error, scriptlog.Interrupted):
        return f"{error}; the partial {label} store was removed"
    if isinstance(error, (space.StoreSpaceError, storeref.StoreLocationError)):
        return str(error)
    return space.describe_os_error(error, store_dir)


logger = scriptlog.setup(smk.log[0], describe)
store_root = storeref.resolve(smk.params.store_root)
store_dirs = [storeref.resolve(path) for path in smk.params.store_paths]
store_dir = store_dirs[0]
phases.now_in(phases.OTHER)


def on_signal(signum):
    """The sentence for a store job killed by a signal it could not catch; its partial
    store (and the job's stores written before it) are removed here, since the job could
    not."""
    name = signal.Signals(signum).name
    free = human_bytes(space.free_bytes(store_dir))  # before the partial store goes
    for each in store_dirs:
        storeref.release(each, store_root)
    if signum == signal.SIGBUS:
        return (
            f"the {label} store job was killed by SIGBUS: a memory-mapped file found no "
            f"space on the file system of store_dir ({store_dir}, {free} free); free space "
            "there, lower the cutoffs, or point store_dir at a larger file system"
        )
    return (
        f"the {label} store job was killed by {name} (SIGKILL is often the out-of-memory "
        f"killer: see dmesg); its partial store was removed; rerun, or lower the cutoffs "
        "if memory ran out"
    )


def main():
    global label, store_dir
    with phases.phase("provenance"):
        env = provenance.collect(
            store_dirs[0], Path(smk.scriptdir).parents[1], wildcards.method, smk.params.options
        )
    rows = []
    try:
        for cutoff, each in zip(cutoffs, store_dirs, strict=True):
            label, store_dir = store_label(cutoff), each  # for the failure's sentence
            rows += store_one(cutoff, env)
        measure.write_rows(rows, smk.output.row)
        ledger = phases.summary()  # the same figures in the log and the env.json
        logger.info(phases.line(ledger))
        measure.write_environment(env | {"job": ledger}, smk.output.env)
        storeref.write_manifest(Path(smk.output.manifest), store_dirs)
        for each in store_dirs:
            storeref.complete(each)
    except BaseException:
        for each in store_dirs:  # every store of the job, not only the one that failed
            storeref.release(each, store_root)
        raise
    if smk.params.remove_after:  # no read job reads these stores
        with phases.phase("remove store"):
            for each in store_dirs:
                storeref.release(each, store_root)
                logger.info("removed %s: no read of the config reads a store of its cutoff", each)


def store_one(cutoff, env):
    """Write the store of ``cutoff`` images (``store_dir``), timed; its rows."""
    phases.now_in(phases.OTHER)
    space.check_store_dir(store_dir)
    need = space.store_bytes(
        wildcards.method,
        cutoff,
        plan.image_bytes(int(wildcards.image_size)),
        smk.params.options,
    )
    space.check_store_fits(store_dir, label, need)
    logger.info(
        "%s store needs up to %s; %s free under store_dir",
        label,
        human_bytes(need),
        human_bytes(space.free_bytes(store_dir)),
    )
    with storeref.writing(store_dir, store_root), memory.AnonWatch() as watch:
        with phases.phase("source"):
            source = measure.load_source(
                Path(smk.input.images),
                Path(smk.input.labels),
                cutoff,
                plan.chunk_images(
                    {"chunk_bytes": smk.params.chunk_bytes}, int(wildcards.image_size)
                ),
            )
        point = measure.Point(
            wildcards.method,
            variant=wildcards.variant,
            options=smk.params.options,
            repeat=int(wildcards.repeat),
            fsync=smk.params.fsync,
        )
        settings = measure.Settings(
            inner_repeats=smk.params.inner_repeats,
            inner_budget_s=smk.params.inner_budget_seconds,
            rigor=smk.params.rigor,
            store_psnr_floor_db=smk.params.store_psnr_floor_db,
            image_psnr_floor_db=smk.params.image_psnr_floor_db,
        )
        started = time.monotonic()

        def progress(number, timed):
            write_s, total_s = timed.marks_ns[0] / 1e9, timed.elapsed_ns / 1e9
            logger.info(
                "store %d: %.3f s (write %.3f s, flush %.3f s); job %.1f s so far",
                number,
                total_s,
                write_s,
                total_s - write_s,
                time.monotonic() - started,
            )

        rows = measure.run_store(
            point,
            source,
            store_dir,
            env=env,
            settings=settings,
            memory_watch=watch,
            after_repetition=progress,
        )
        phases.now_in("rows")
        for row in rows:
            logger.info(
                "stored %d images of %dpx with %s/%s in %.6f s (write %.6f s + %s flush %.6f s) "
                "at %s (%d bytes on disk, %d files; pool of %d images, chunks of %d; "
                "peak RSS %.0f MiB, of it anonymous %.0f MiB)",
                cutoff,
                row["image_size"],
                row["method"],
                row["variant"],
                row["seconds"],
                row["write_seconds"],
                row["fsync"],
                row["flush_seconds"],
                store_dir,
                row["bytes_on_disk"],
                row["n_files"],
                row["pool_images"],
                row["chunk_images"],
                row["peak_rss_bytes"] / 2**20,
                row["peak_anon_bytes"] / 2**20,
            )
    return rows


scriptlog.run_guarded(main, on_signal)
