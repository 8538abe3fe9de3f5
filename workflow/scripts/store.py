"""Snakemake adapter: write a fresh store of the first `cutoff` images, timed (write, flush)."""

import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_DIR / "workflow"))

from imgbench import measure, provenance, scriptlog, storeref  # noqa: E402

smk = snakemake  # noqa: F821
logger = scriptlog.setup(smk.log[0])
cutoff = int(smk.wildcards.cutoff)
store_dir = storeref.resolve(smk.params.store_path)
images, labels = measure.load_source(Path(smk.input.images), Path(smk.input.labels), cutoff)
env = provenance.collect(store_dir, REPO_DIR)
rows = measure.run_store(
    smk.wildcards.method,
    images,
    labels,
    store_dir,
    fsync=smk.params.fsync,
    repeat=int(smk.wildcards.repeat),
    env=env,
    variant=smk.wildcards.variant,
    options=smk.params.options,
    inner_repeats=smk.params.inner_repeats,
    inner_budget_s=smk.params.inner_budget_seconds,
)
for row in rows:
    logger.info(
        "stored %d images of %dpx with %s/%s in %.6f s (write %.6f s + %s flush %.6f s) "
        "at %s (%d bytes on disk, %d files)",
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
    )
measure.write_environment(env, smk.output.env)
measure.write_rows(rows, smk.output.row)
storeref.write_manifest(Path(smk.output.manifest), store_dir)
