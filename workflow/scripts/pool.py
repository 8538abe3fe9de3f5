"""Snakemake adapter: the pool of distinct images of one image size (upscaled in chunks
for sizes other than CIFAR's 32), at most pool_bytes of them."""

import numpy as np

from imgbench import plan, resize, scriptlog
from imgbench.atomic import save_npy

smk = snakemake  # noqa: F821
logger = scriptlog.setup(smk.log[0])
size = int(smk.wildcards.image_size)
available = len(np.load(smk.input.labels, mmap_mode="r"))
count = min(available, int(smk.params.max_images))
if count < 1:
    raise SystemExit(f"the training set in {smk.input.images} holds no images")
if size == plan.CIFAR_SIZE:
    save_npy(np.array(np.load(smk.input.images, mmap_mode="r")[:count]), smk.output.images)
else:
    resize.resize_file(smk.input.images, smk.output.images, size, count, smk.params.chunk_bytes)
save_npy(np.array(np.load(smk.input.labels, mmap_mode="r")[:count]), smk.output.labels)
logger.info(
    "pool of %d distinct %dx%d images (%d bytes) from %d training images%s",
    count,
    size,
    size,
    count * plan.image_bytes(size),
    available,
    "" if size == plan.CIFAR_SIZE else f", upscaled with {resize.FILTER.name}",
)
