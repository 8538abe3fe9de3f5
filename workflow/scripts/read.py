"""Snakemake adapter: time every read of one store (each cache state, pattern, readers and
readahead of the config), one after another in this process; then remove the store
(unless keep_stores). A job of several small stores (cutoff "1+10+100") reads each of them
so in turn."""

from imgbench.system import phases

phases.begin()

import signal  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from imgbench.experiment import plan  # noqa: E402
from imgbench.harness import measure, memory, provenance, space, storeref  # noqa: E402
from imgbench.jobs import scriptlog  # noqa: E402

smk = snakemake  # noqa: F821
store_dir = None


def describe(error):
    if isinstance(error, (scriptlog.Interrupted, storeref.StoreLocationError)):
        return str(error)
    return space.describe_os_error(error, store_dir)


logger = scriptlog.setup(smk.log[0], describe)
store_dirs = storeref.read_manifest(Path(smk.input.manifest))
store_dir = store_dirs[0]
phases.now_in(phases.OTHER)


def on_signal(signum):
    name = signal.Signals(signum).name
    if signum == signal.SIGBUS:
        return (
            f"the read job was killed by SIGBUS: a memory-mapped file of the store "
            f"{store_dir} could not be read (truncated or removed while mapped, or its "
            "file system failed); rerun its store job (snakemake --forcerun store)"
        )
    return (
        f"the read job was killed by {name} (SIGKILL is often the out-of-memory killer: "
        "see dmesg); rerun, or lower the cutoffs if memory ran out"
    )


def main():
    with memory.AnonWatch() as watch:
        measure_reads(watch)


def measure_reads(watch):
    global store_dir
    size = int(smk.wildcards.image_size)
    with phases.phase("provenance"):
        env = provenance.collect(
            store_dir, Path(smk.scriptdir).parents[1], smk.wildcards.method, smk.params.options
        )
    # a parameter none of the store's reads uses is None (plan.ReadParameter): unused
    used = {
        key: getattr(smk.params, key)
        for key in ("batch_size", "random_reads", "shuffle_buffer", "seed")
        if getattr(smk.params, key) is not None
    }
    points = [
        measure.Point(
            smk.wildcards.method,
            variant=smk.wildcards.variant,
            options=smk.params.options,
            repeat=int(smk.wildcards.repeat),
            fsync=smk.params.fsync,
            cache=kind["read_cache"],
            eviction=smk.params.cold,
            pattern=kind["read_pattern"],
            readahead=kind["readahead"],
            readers=int(kind["readers"]),
            nodes=int(kind.get("nodes", 1)),
            per_node=int(kind.get("per_node", 0)),
            **used,
        )
        for kind in smk.params.kinds
    ]
    settings = measure.Settings(
        inner_repeats=smk.params.inner_repeats,
        inner_budget_s=smk.params.inner_budget_seconds,
        rigor=smk.params.rigor,
        image_psnr_floor_db=smk.params.image_psnr_floor_db,
    )
    cutoffs = plan.cutoffs_of(smk.wildcards.cutoff)
    progress = Progress(len(points) * len(cutoffs))
    rows = []
    for cutoff, store_dir in zip(cutoffs, store_dirs, strict=True):
        with phases.phase("source"):
            source = measure.load_source(
                Path(smk.input.images),
                Path(smk.input.labels),
                cutoff,
                plan.chunk_images({"chunk_bytes": smk.params.chunk_bytes}, size),
            )
        rows += measure.run_reads(
            points,
            source,
            store_dir,
            env=env,
            settings=settings,
            memory_watch=watch,
            after_point=progress,
            pool_files=(Path(smk.input.images), Path(smk.input.labels)),
        )
    phases.now_in("rows")
    measure.write_rows(rows, smk.output.row)
    with phases.phase("remove store"):
        stores, removed = storeref.remove(
            Path(smk.input.manifest),
            keep=smk.params.keep_stores,
            root=storeref.resolve(smk.params.store_root),
        )
    for store in stores:
        logger.info("%s %s", "removed" if removed else "kept (keep_stores)", store)
    ledger = phases.summary()  # the same figures in the log and the env.json
    logger.info(phases.line(ledger))
    measure.write_environment(env | {"job": ledger}, smk.output.env)


class Progress:
    """A line per read of the store as it ends (outside every clock): what it read, its
    repetitions, and how far the job has come."""

    def __init__(self, total: int):
        self.total, self.done = total, 0
        self.started = time.monotonic()

    def __call__(self, point, rows) -> None:
        self.done += 1
        row = rows[-1]
        seconds = [one["seconds"] for one in rows]
        readers = f"{row['readers']} readers"
        if point.clients:
            readers = f"{point.nodes} x {point.per_node} clients on {row['client_hosts']}"
        logger.info(
            "read %d of %d: %s, %s, %s, readahead %s: %d images of %s/%s in %s s "
            "(%d repetitions; last: %.1f%% cached before, %s bytes from the device, peak "
            "RSS %.0f MiB, of it anonymous %.0f MiB); verified; job %.1f s so far",
            self.done,
            self.total,
            row["cache"],
            row["read_pattern"],
            readers,
            row["readahead"],
            row["images_read"],
            row["method"],
            row["variant"],
            ", ".join(f"{value:.6f}" for value in seconds),
            len(rows),
            100 * row["cached_fraction"],
            row["device_read_bytes"],
            row["peak_rss_bytes"] / 2**20,
            row["peak_anon_bytes"] / 2**20,
            time.monotonic() - self.started,
        )


scriptlog.run_guarded(main, on_signal)
