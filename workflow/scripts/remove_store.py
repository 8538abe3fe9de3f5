"""Snakemake adapter: remove a store once all its reads are done (unless kept)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imgbench import scriptlog, storeref  # noqa: E402
from imgbench.atomic import write_text  # noqa: E402

smk = snakemake  # noqa: F821
logger = scriptlog.setup(smk.log[0])
store, removed = storeref.remove(
    Path(smk.input.manifest),
    keep=smk.params.keep_stores,
    root=storeref.resolve(smk.params.store_root),
)
logger.info("%s %s", "removed" if removed else "kept (keep_stores)", store)
write_text(f"{'removed' if removed else 'kept'} {store}\n", smk.output.marker)
