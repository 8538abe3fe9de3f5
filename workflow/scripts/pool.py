"""Snakemake adapter: the pool of distinct images of one image size (upscaled in chunks
for sizes other than CIFAR's 32), at most pool_bytes of them."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from imgbench import plan, resize, scriptlog  # noqa: E402
from imgbench.atomic import save_npy  # noqa: E402

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
