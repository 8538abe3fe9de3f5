# Tidy table, statistics over repeats, disk usage, summary and figures.

RESULTS_DIR = Path("results")
PLOTS_DIR = RESULTS_DIR / "plots"
STORE_JOBS = plan.store_jobs(config)
READ_JOBS = plan.read_jobs(config)


localrules:
    aggregate,
    plot,


rule aggregate:
    input:
        rows=plan.paths(rules.store.output.row, STORE_JOBS)
        + plan.paths(rules.read.output.row, READ_JOBS),
        envs=plan.paths(rules.store.output.env, STORE_JOBS)
        + plan.paths(rules.read.output.env, READ_JOBS),
        removed=plan.paths(rules.remove_store.output.marker, STORE_JOBS),
        benchmarks=plan.paths(
            BENCHMARKS_DIR / "store" / POINT / "repeat{repeat}.tsv", STORE_JOBS
        )
        + plan.paths(BENCHMARKS_DIR / "read" / POINT / f"{READ_NAME}.tsv", READ_JOBS),
        code=[PACKAGE_DIR / "aggregate.py", PACKAGE_DIR / "stats.py"],
    output:
        timings=RESULTS_DIR / "timings.csv",
        stats=RESULTS_DIR / "timings_stats.csv",
        disk_csv=RESULTS_DIR / "disk_usage.csv",
        disk_md=RESULTS_DIR / "disk_usage.md",
        memory=RESULTS_DIR / "job_memory.csv",
        summary=RESULTS_DIR / "summary.md",
        environment=RESULTS_DIR / "environment.json",
    log:
        Path("logs") / "aggregate.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=1024,
        runtime=10,
    params:
        interval_threshold=config["interval_threshold"],
        busy=config["busy"],
    script:
        "../scripts/aggregate.py"


rule plot:
    input:
        stats=rules.aggregate.output.stats,
        disk=rules.aggregate.output.disk_csv,
        code=[
            PACKAGE_DIR / "plotting.py",
            PACKAGE_DIR / "aggregate.py",
            PACKAGE_DIR / "stats.py",
        ],
    output:
        plots=expand(
            PLOTS_DIR / "{stem}.{ext}",
            stem=plan.plot_stems(config),
            ext=config["plot"]["formats"],
        ),
    log:
        Path("logs") / "plot.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=1024,
        runtime=10,
    params:
        formats=config["plot"]["formats"],
        dpi=config["plot"]["dpi"],
        spread=config["plot"]["spread"],
    script:
        "../scripts/plot.py"
