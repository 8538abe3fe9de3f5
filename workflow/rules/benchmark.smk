# One store job per (method, variant, image_size, cutoff, repeat); one read job per store,
# which runs every read of the store (read_cache x read_pattern x readers x readahead) one
# after another, each from its own prepared state, and then removes the store (unless
# keep_stores; a store without reads is removed by its store job). Small stores (at most
# small_store_bytes of pixels) of one method, variant, size and repeat share their store
# job and their read job: the cutoff wildcard then names them all ("1+10+100"), each
# store still written, read and removed as if alone (plan.cutoff_groups). Each timed operation is
# repeated (inner_repeats, inner_budget_seconds), one row per repetition. Stores run in a seeded order (plan.StorePriority).
# The store lives under store_dir, resolved inside the job (it may be node-local scratch
# such as $TMPDIR); Snakemake tracks its manifest, which the reads and the removal check.
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
POOL = rules.pool.output.images
POOL_LABELS = rules.pool.output.labels
STORE_JOBS = plan.job_groups(config)
READ_JOBS = plan.read_job_groups(config)
# Slurm: a job whose reads include clients on several nodes is a multi-node job (unset
# for every other job; job_resources.MultiNode).
MULTI_NODE = {
    name: job_resources.MultiNode(config, name)
    for name in ("nodes", "mpi", "tasks_per_node", "tasks", "cpus_per_task")
}


wildcard_constraints:
    method="|".join(config["methods"]),
    variant="|".join(sorted({variant for _, variant in plan.method_variants(config)})),
    image_size=r"\d+",
    cutoff=r"\d+(\+\d+)*",
    repeat=r"\d+",


rule store:
    input:
        images=POOL,
        labels=POOL_LABELS,
        method_code=PACKAGE_DIR / "methods" / "{method}.py",
        code=script_sources("store.py"),
    output:
        manifest=temp(ROWS_DIR / "store" / POINT / "repeat{repeat}.store.json"),
        row=ROWS_DIR / "store" / POINT / "repeat{repeat}.csv",
        env=ROWS_DIR / "store" / POINT / "repeat{repeat}.env.json",
    log:
        LOGS_DIR / "store" / POINT / "repeat{repeat}.log",
    # Snakemake's own record of the job: wall time, max_rss and more (results/job_memory.csv).
    benchmark:
        BENCHMARKS_DIR / "store" / POINT / "repeat{repeat}.tsv"
    priority: plan.StorePriority(config)
    conda:
        "../../envs/bench.yaml"
    threads: 1
    resources:
        **MULTI_NODE,
        mem_mb=job_resources.StoreMemMb(config),
        runtime=job_resources.timing_runtime,
        timing_slot=1,
    params:
        fsync=config["fsync"],
        options=plan.VariantOptions(config),
        store_psnr_floor_db=plan.PsnrFloor(config, "store_psnr_floor_db"),
        image_psnr_floor_db=plan.PsnrFloor(config, "image_psnr_floor_db"),
        store_paths=plan.StorePaths(STORE),
        store_root=config["store_dir"],
        # A store no read job reads (every pattern skipped at its cutoff) is removed here.
        remove_after=plan.StoreUnread(config),
        chunk_bytes=config["chunk_bytes"],
        inner_repeats=config["inner_repeats"],
        inner_budget_seconds=config["inner_budget_seconds"],
        rigor=config["rigor"],
    script:
        "../scripts/store.py"


rule read:
    input:
        manifest=rules.store.output.manifest,
        images=POOL,
        labels=POOL_LABELS,
        method_code=PACKAGE_DIR / "methods" / "{method}.py",
        code=script_sources("read.py"),
    output:
        row=ROWS_DIR / "read" / POINT / "repeat{repeat}.csv",
        env=ROWS_DIR / "read" / POINT / "repeat{repeat}.env.json",
    log:
        LOGS_DIR / "read" / POINT / "repeat{repeat}.log",
    benchmark:
        BENCHMARKS_DIR / "read" / POINT / "repeat{repeat}.tsv"
    # Read (and remove) a store as soon as it exists (above every store, below 1), so
    # one store at a time sits on disk.
    priority: 20
    conda:
        "../../envs/bench.yaml"
    # Reader processes run at once; the scheduler (and Slurm) should know.
    threads: job_resources.ReadThreads(config)
    resources:
        **MULTI_NODE,
        mem_mb=job_resources.ReadMemMb(config),
        runtime=job_resources.ReadRuntime(config),
        timing_slot=1,
    params:
        fsync=config["fsync"],
        cold=config["cold"],
        kinds=plan.StoreReadKinds(config),
        options=plan.VariantOptions(config),
        image_psnr_floor_db=plan.PsnrFloor(config, "image_psnr_floor_db"),
        # Only where one of the store's reads uses it (else None): changing one reruns
        # only the read jobs it concerns.
        batch_size=plan.ReadParameter(config, "batch_size"),
        chunk_bytes=config["chunk_bytes"],
        random_reads=plan.ReadParameter(config, "random_reads"),
        shuffle_buffer=plan.ReadParameter(config, "shuffle_buffer"),
        seed=plan.ReadParameter(config, "seed"),
        inner_repeats=config["inner_repeats"],
        inner_budget_seconds=config["inner_budget_seconds"],
        rigor=config["rigor"],
        keep_stores=config["keep_stores"],
        store_root=config["store_dir"],
    script:
        "../scripts/read.py"


# `snakemake --cores 1 clean_stores`: remove stores under store_dir that no job of the
# current config owns (points removed from the config, stores of killed jobs). A run does
# this at its start too; nothing the pipeline did not create is touched.
rule clean_stores:
    log:
        LOGS_DIR / "clean_stores.log",
    localrule: True
    run:
        removed = sweep_orphan_stores()
        Path(log[0]).write_text("".join(f"removed {store}\n" for store in removed))
