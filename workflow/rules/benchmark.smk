# One store job and one read job per cache state, per (method, cutoff, repeat).
# Timing jobs take the `timing_slot` resource; the default profile allows one at a time,
# so no two timed operations share the disk or the CPU.

STORE_DIR = Path(config["store_dir"])
STORE = STORE_DIR / "{method}" / "{cutoff}" / "repeat{repeat}"
ROWS_DIR = Path("results") / "rows"
HARNESS = [
    PACKAGE_DIR / name
    for name in ("measure.py", "fsutil.py", "provenance.py", "methods/__init__.py")
]
STORE_OUTPUT = directory(STORE) if config["keep_stores"] else temp(directory(STORE))


wildcard_constraints:
    cutoff=r"\d+",
    repeat=r"\d+",
    read_cache="cold|warm",


rule store:
    input:
        images=rules.duplicate.output.images,
        labels=rules.duplicate.output.labels,
        method_code=PACKAGE_DIR / "methods" / "{method}.py",
        harness=HARNESS,
    output:
        store=STORE_OUTPUT,
        row=ROWS_DIR / "store" / "{method}" / "{cutoff}" / "repeat{repeat}.csv",
        env=ROWS_DIR / "store" / "{method}" / "{cutoff}" / "repeat{repeat}.env.json",
    log:
        Path("logs") / "store" / "{method}" / "{cutoff}" / "repeat{repeat}.log",
    conda:
        "../../envs/bench.yaml"
    threads: 1
    resources:
        mem_mb=job_resources.store_mem_mb,
        runtime=job_resources.timing_runtime,
        timing_slot=1,
    params:
        fsync=config["fsync"],
    script:
        "../scripts/store.py"


rule read:
    input:
        store=STORE,
        images=rules.duplicate.output.images,
        labels=rules.duplicate.output.labels,
        method_code=PACKAGE_DIR / "methods" / "{method}.py",
        harness=HARNESS,
    output:
        row=ROWS_DIR
        / "read"
        / "{method}"
        / "{cutoff}"
        / "repeat{repeat}_{read_cache}.csv",
        env=ROWS_DIR
        / "read"
        / "{method}"
        / "{cutoff}"
        / "repeat{repeat}_{read_cache}.env.json",
    log:
        Path("logs")
        / "read"
        / "{method}"
        / "{cutoff}"
        / "repeat{repeat}_{read_cache}.log",
    # Read a store as soon as it exists, so few stores sit on disk at once.
    priority: 10
    conda:
        "../../envs/bench.yaml"
    threads: 1
    resources:
        mem_mb=job_resources.read_mem_mb,
        runtime=job_resources.timing_runtime,
        timing_slot=1,
    params:
        fsync=config["fsync"],
    script:
        "../scripts/read.py"
