"""Snakemake adapter: upscale the first images of the tiled set, streaming in chunks."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from imgbench import resize, scriptlog  # noqa: E402
from imgbench.atomic import save_npy  # noqa: E402

smk = snakemake  # noqa: F821
logger = scriptlog.setup(smk.log[0])
size = int(smk.wildcards.image_size)
count = int(smk.params.n_images)
resize.resize_file(smk.input.images, smk.output.images, size, count, smk.params.chunk_bytes)
save_npy(np.array(np.load(smk.input.labels, mmap_mode="r")[:count]), smk.output.labels)
logger.info("resized %d images to %dx%d with %s", count, size, size, resize.FILTER.name)
