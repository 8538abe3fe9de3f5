"""Snakemake adapter: the pool of distinct images of one image size, at most pool_bytes
of them: the source's images as they are when they have that size (CIFAR's at 32, an
image folder's at every size), else resized in chunks (CIFAR's upscaled)."""

import numpy as np

from imgbench.data import resize
from imgbench.experiment import plan
from imgbench.jobs import scriptlog
from imgbench.system.atomic import save_npy

smk = snakemake  # noqa: F821
logger = scriptlog.setup(smk.log[0])
size = int(smk.wildcards.image_size)
available = len(np.load(smk.input.labels, mmap_mode="r"))
count = min(available, int(smk.params.max_images))
if count < 1:
    raise SystemExit(f"the training set in {smk.input.images} holds no images")
source_shape = np.load(smk.input.images, mmap_mode="r").shape
resized = source_shape[1:3] != (size, size)
if not resized:
    save_npy(np.array(np.load(smk.input.images, mmap_mode="r")[:count]), smk.output.images)
else:
    resize.resize_file(smk.input.images, smk.output.images, size, count, smk.params.chunk_bytes)
save_npy(np.array(np.load(smk.input.labels, mmap_mode="r")[:count]), smk.output.labels)
logger.info(
    "pool of %d distinct %dx%d images (%d bytes) from %d source images%s",
    count,
    size,
    size,
    count * plan.image_bytes(size),
    available,
    f", resized from {source_shape[2]}x{source_shape[1]} with {resize.FILTER.name}"
    if resized
    else "",
)
