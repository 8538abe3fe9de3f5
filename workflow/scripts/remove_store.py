"""Snakemake adapter: remove a store once all its reads are done (unless kept)."""

from imgbench.system import phases

phases.begin()

from pathlib import Path  # noqa: E402

from imgbench.harness import storeref  # noqa: E402
from imgbench.jobs import scriptlog  # noqa: E402
from imgbench.system.atomic import write_text  # noqa: E402

smk = snakemake  # noqa: F821
logger = scriptlog.setup(smk.log[0])
phases.now_in("remove store")
store, removed = storeref.remove(
    Path(smk.input.manifest),
    keep=smk.params.keep_stores,
    root=storeref.resolve(smk.params.store_root),
)
logger.info("%s %s", "removed" if removed else "kept (keep_stores)", store)
write_text(f"{'removed' if removed else 'kept'} {store}\n", smk.output.marker)
logger.info(phases.line())
