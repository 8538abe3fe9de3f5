# Tidy table, statistics over repeats, disk usage, summary and figures.

RESULTS_DIR = Path("results")
PLOTS_DIR = RESULTS_DIR / "plots"
PLOT_STEMS = [
    f"{figure}_{scale}"
    for figure in ("store_time", "read_time", "store_and_read_time")
    for scale in ("linear", "loglog")
] + ["throughput", "disk_usage"]
REPEATS = range(1, config["repeats"] + 1)


localrules:
    aggregate,
    plot,


rule aggregate:
    input:
        rows=expand(
            rules.store.output.row,
            method=config["methods"],
            cutoff=config["cutoffs"],
            repeat=REPEATS,
        )
        + expand(
            rules.read.output.row,
            method=config["methods"],
            cutoff=config["cutoffs"],
            repeat=REPEATS,
            read_cache=config["read_cache"],
        ),
        envs=expand(
            rules.store.output.env,
            method=config["methods"],
            cutoff=config["cutoffs"],
            repeat=REPEATS,
        )
        + expand(
            rules.read.output.env,
            method=config["methods"],
            cutoff=config["cutoffs"],
            repeat=REPEATS,
            read_cache=config["read_cache"],
        ),
        code=PACKAGE_DIR / "aggregate.py",
    output:
        timings=RESULTS_DIR / "timings.csv",
        stats=RESULTS_DIR / "timings_stats.csv",
        disk_csv=RESULTS_DIR / "disk_usage.csv",
        disk_md=RESULTS_DIR / "disk_usage.md",
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
        cv_threshold=config["cv_threshold"],
    script:
        "../scripts/aggregate.py"


rule plot:
    input:
        stats=rules.aggregate.output.stats,
        disk=rules.aggregate.output.disk_csv,
        code=PACKAGE_DIR / "plotting.py",
    output:
        plots=expand(
            PLOTS_DIR / "{stem}.{ext}", stem=PLOT_STEMS, ext=config["plot"]["formats"]
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
