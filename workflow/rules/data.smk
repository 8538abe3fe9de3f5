# Get the CIFAR-10 training set into plain .npy arrays, and one pool of distinct images
# per image size (at most pool_bytes; upscaled for sizes other than 32). Jobs tile a pool
# to their cutoff: image i is pool[i mod P].

DOWNLOADED_ARCHIVE = DATA_DIR / "cifar-10-python.tar.gz"
ARCHIVE = config["dataset"]["archive"] or DOWNLOADED_ARCHIVE
# The training set (150 MB) plus one resized chunk at a time.
POOL_MEM_MB = int(768 + 2 * config["resize_chunk_bytes"] / 1e6)


# Cluster login nodes have internet, compute nodes often not.
localrules:
    download_cifar,


rule download_cifar:
    output:
        archive=DOWNLOADED_ARCHIVE,
    log:
        LOGS_DIR / "download_cifar.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=256,
        runtime=60,
    params:
        url=config["dataset"]["url"],
        md5=config["dataset"]["md5"],
    script:
        "../scripts/download_cifar.py"


rule unpickle_cifar:
    input:
        archive=ARCHIVE,
        code=script_sources("unpickle_cifar.py"),
    output:
        images=DATA_DIR / "train_images.npy",
        labels=DATA_DIR / "train_labels.npy",
    log:
        LOGS_DIR / "unpickle_cifar.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2048,
        runtime=20,
    params:
        md5=config["dataset"]["md5"],
    script:
        "../scripts/unpickle_cifar.py"


rule pool:
    input:
        images=rules.unpickle_cifar.output.images,
        labels=rules.unpickle_cifar.output.labels,
        code=script_sources("pool.py"),
    output:
        images=DATA_DIR / "pool_{image_size}px_images.npy",
        labels=DATA_DIR / "pool_{image_size}px_labels.npy",
    log:
        LOGS_DIR / "pool_{image_size}px.log",
    conda:
        "../../envs/bench.yaml"
    threads: 1
    resources:
        mem_mb=POOL_MEM_MB,
        runtime=60,
        # Heavy disk and CPU work: never beside a timed store or read.
        timing_slot=1,
    params:
        max_images=plan.PoolCount(config),
        chunk_bytes=config["resize_chunk_bytes"],
    script:
        "../scripts/pool.py"
