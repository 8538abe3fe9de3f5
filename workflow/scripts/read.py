"""Snakemake adapter: time reads of a store (cache state, pattern, readers, readahead)."""

from imgbench.system import phases

phases.begin()

import signal  # noqa: E402
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
store_dir = storeref.read_manifest(Path(smk.input.manifest))
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
    cutoff = int(smk.wildcards.cutoff)
    size = int(smk.wildcards.image_size)
    with phases.phase("source"):
        source = measure.load_source(
            Path(smk.input.images),
            Path(smk.input.labels),
            cutoff,
            plan.chunk_images({"chunk_bytes": smk.params.chunk_bytes}, size),
        )
    with phases.phase("provenance"):
        env = provenance.collect(store_dir, Path(smk.scriptdir).parents[1], smk.wildcards.method)
    point = measure.Point(
        smk.wildcards.method,
        variant=smk.wildcards.variant,
        options=smk.params.options,
        repeat=int(smk.wildcards.repeat),
        fsync=smk.params.fsync,
        cache=smk.wildcards.read_cache,
        eviction=smk.params.cold,
        pattern=smk.wildcards.read_pattern,
        readahead=smk.wildcards.readahead,
        readers=int(smk.wildcards.readers),
        batch_size=smk.params.batch_size,
        random_reads=smk.params.random_reads,
        shuffle_buffer=smk.params.shuffle_buffer,
        seed=smk.params.seed,
    )
    settings = measure.Settings(
        inner_repeats=smk.params.inner_repeats,
        inner_budget_s=smk.params.inner_budget_seconds,
        image_psnr_floor_db=smk.params.image_psnr_floor_db,
    )
    rows = measure.run_read(
        point, source, store_dir, env=env, settings=settings, memory_watch=watch
    )
    phases.now_in("rows")
    for row in rows:
        logger.info(
            "read %d images from %s/%s (%s/%s, %s, %d readers, readahead %s) in %.6f s; "
            "%.1f%% cached before, %s bytes from the device; verified; peak RSS %.0f MiB, "
            "of it anonymous %.0f MiB",
            row["images_read"],
            row["method"],
            row["variant"],
            row["cache"],
            row["eviction"],
            row["read_pattern"],
            row["readers"],
            row["readahead"],
            row["seconds"],
            100 * row["cached_fraction"],
            row["device_read_bytes"],
            row["peak_rss_bytes"] / 2**20,
            row["peak_anon_bytes"] / 2**20,
        )
    measure.write_rows(rows, smk.output.row)
    logger.info(phases.line())
    measure.write_environment(env | {"job": phases.summary()}, smk.output.env)


scriptlog.run_guarded(main, on_signal)
