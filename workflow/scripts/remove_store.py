"""Snakemake adapter: remove a store once all its reads are done (unless kept)."""

from pathlib import Path

from imgbench.harness import storeref
from imgbench.jobs import scriptlog
from imgbench.system.atomic import write_text

smk = snakemake  # noqa: F821
logger = scriptlog.setup(smk.log[0])
store, removed = storeref.remove(
    Path(smk.input.manifest),
    keep=smk.params.keep_stores,
    root=storeref.resolve(smk.params.store_root),
)
logger.info("%s %s", "removed" if removed else "kept (keep_stores)", store)
write_text(f"{'removed' if removed else 'kept'} {store}\n", smk.output.marker)
