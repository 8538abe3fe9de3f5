"""Snakemake adapter: time one read of a store (cache state, pattern, readers), then check it."""

import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_DIR / "workflow"))

from imgbench import measure, provenance, scriptlog, storeref  # noqa: E402

smk = snakemake  # noqa: F821
logger = scriptlog.setup(smk.log[0])
cutoff = int(smk.wildcards.cutoff)
store_dir = storeref.read_manifest(Path(smk.input.manifest))
images, labels = measure.load_source(Path(smk.input.images), Path(smk.input.labels), cutoff)
env = provenance.collect(store_dir, REPO_DIR)
row = measure.run_read(
    smk.wildcards.method,
    store_dir,
    images,
    labels,
    cache=smk.wildcards.read_cache,
    fsync=smk.params.fsync,
    repeat=int(smk.wildcards.repeat),
    env=env,
    variant=smk.wildcards.variant,
    pattern=smk.wildcards.read_pattern,
    readers=int(smk.wildcards.readers),
    batch_size=smk.params.batch_size,
    random_reads=smk.params.random_reads,
    seed=smk.params.seed,
)
logger.info(
    "read %d images from %s/%s (%s, %s, %d readers) in %.6f s, %.1f%% cached before; verified",
    row["images_read"],
    row["method"],
    row["variant"],
    row["cache"],
    row["read_pattern"],
    row["readers"],
    row["seconds"],
    100 * row["cached_fraction"],
)
measure.write_environment(env, smk.output.env)
measure.write_row(row, smk.output.row)
