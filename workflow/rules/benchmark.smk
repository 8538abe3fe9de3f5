# One store job per (method, variant, image_size, cutoff, repeat), and one read job per
# (read_cache, read_pattern, readers) of each store.
# Timing jobs take the `timing_slot` resource; the default profile allows one at a time,
# so no two timed operations share the disk or the CPU.

STORE_DIR = Path(config["store_dir"])
STORE = (
    STORE_DIR
    / "{method}"
    / "{variant}"
    / "{image_size}px"
    / "{cutoff}"
    / "repeat{repeat}"
)
POINT = Path("{method}") / "{variant}" / "{image_size}px" / "{cutoff}"
ROWS_DIR = Path("results") / "rows"
READ_NAME = "repeat{repeat}_{read_cache}_{read_pattern}_{readers}readers"
DATASET = DATA_DIR / "dataset_{image_size}px_images.npy"
DATASET_LABELS = DATA_DIR / "dataset_{image_size}px_labels.npy"
HARNESS = [
    PACKAGE_DIR / name
    for name in (
        "measure.py",
        "fsutil.py",
        "provenance.py",
        "access.py",
        "methods/__init__.py",
    )
]
STORE_OUTPUT = directory(STORE) if config["keep_stores"] else temp(directory(STORE))


wildcard_constraints:
    image_size=r"\d+",
    cutoff=r"\d+",
    repeat=r"\d+",
    readers=r"\d+",
    read_cache="cold|warm",
    read_pattern="sequential|shuffled|random_single",


rule store:
    input:
        images=DATASET,
        labels=DATASET_LABELS,
        method_code=PACKAGE_DIR / "methods" / "{method}.py",
        harness=HARNESS,
    output:
        store=STORE_OUTPUT,
        row=ROWS_DIR / "store" / POINT / "repeat{repeat}.csv",
        env=ROWS_DIR / "store" / POINT / "repeat{repeat}.env.json",
    log:
        Path("logs") / "store" / POINT / "repeat{repeat}.log",
    conda:
        "../../envs/bench.yaml"
    threads: 1
    resources:
        mem_mb=job_resources.store_mem_mb,
        runtime=job_resources.timing_runtime,
        timing_slot=1,
    params:
        fsync=config["fsync"],
        options=plan.VariantOptions(config),
    script:
        "../scripts/store.py"


rule read:
    input:
        store=STORE,
        images=DATASET,
        labels=DATASET_LABELS,
        method_code=PACKAGE_DIR / "methods" / "{method}.py",
        harness=HARNESS,
    output:
        row=ROWS_DIR / "read" / POINT / f"{READ_NAME}.csv",
        env=ROWS_DIR / "read" / POINT / f"{READ_NAME}.env.json",
    log:
        Path("logs") / "read" / POINT / f"{READ_NAME}.log",
    # Read a store as soon as it exists, so few stores sit on disk at once.
    priority: 10
    conda:
        "../../envs/bench.yaml"
    # Reader processes run at once; the scheduler (and Slurm) should know.
    threads: job_resources.read_threads
    resources:
        mem_mb=job_resources.read_mem_mb,
        runtime=job_resources.timing_runtime,
        timing_slot=1,
    params:
        fsync=config["fsync"],
        batch_size=config["batch_size"],
        random_reads=config["random_reads"],
        seed=config["seed"],
    script:
        "../scripts/read.py"
