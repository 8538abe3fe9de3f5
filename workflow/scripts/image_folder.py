"""Snakemake adapter: the images of dataset.images_dir at one image size (short side
resized, centre square cropped; imgbench.imagefolder), with their labels and classes, as
.npy arrays for the pool."""

from imgbench.data import imagefolder
from imgbench.jobs import scriptlog

smk = snakemake  # noqa: F821


def describe(error):
    return str(error) if isinstance(error, imagefolder.FolderError) else None


logger = scriptlog.setup(smk.log[0], describe)
size = int(smk.wildcards.image_size)
max_images = int(smk.params.max_images)
if max_images < 1:
    raise SystemExit(
        f"config key pool_bytes is smaller than one {size}x{size} image; raise it or lower "
        "image_sizes"
    )
listing = imagefolder.scan(smk.params.images_dir)
if listing.fingerprint != smk.params.listing:
    logger.warning(
        "%s changed after the workflow was planned; its current files are used "
        "(the next run reruns this job)",
        listing.root,
    )
count = imagefolder.write_arrays(
    listing,
    size,
    smk.output.images,
    smk.output.labels,
    smk.output.classes,
    count=max_images,
    chunk_bytes=int(smk.params.chunk_bytes),
)
logger.info(
    "%d images of %d classes from %s (%d files) at %dx%d: short side resized with %s, "
    "centre crop%s",
    count,
    len(set(listing.labels[:count].tolist())),
    listing.root,
    len(listing),
    size,
    size,
    imagefolder.FILTER.name,
    "" if count == len(listing) else f"; the first {count} kept (pool_bytes)",
)
