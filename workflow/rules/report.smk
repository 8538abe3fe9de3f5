# Tidy table, statistics over repeats, disk usage, summary and figures, each marked for
# `snakemake --report report.html` with a caption from workflow/report/. The figures come
# from the registry imgbench.report.figures: one plot job per figure file, its caption
# in workflow/report/figures/.


localrules:
    aggregate,
    html_page,
    plot,


rule aggregate:
    input:
        rows=plan.paths(rules.store.output.row, STORE_JOBS)
        + plan.paths(rules.read.output.row, READ_JOBS),
        envs=plan.paths(rules.store.output.env, STORE_JOBS)
        + plan.paths(rules.read.output.env, READ_JOBS),
        benchmarks=plan.paths(
            BENCHMARKS_DIR / "store" / POINT / "repeat{repeat}.tsv", STORE_JOBS
        )
        + plan.paths(BENCHMARKS_DIR / "read" / POINT / "repeat{repeat}.tsv", READ_JOBS),
        code=script_sources("aggregate.py"),
    output:
        timings=report(
            RESULTS_DIR / "timings.csv",
            caption="../report/timings.rst",
            category="Tables",
            labels={"table": "every timed operation"},
        ),
        stats=report(
            RESULTS_DIR / "timings_stats.csv",
            caption="../report/timings_stats.rst",
            category="Tables",
            labels={"table": "statistics per point"},
        ),
        disk_csv=RESULTS_DIR / "disk_usage.csv",
        disk_md=RESULTS_DIR / "disk_usage.md",
        memory=report(
            RESULTS_DIR / "job_memory.csv",
            caption="../report/job_memory.rst",
            category="Tables",
            labels={"table": "peak memory per job"},
        ),
        summary=RESULTS_DIR / "summary.md",
        environment=report(
            RESULTS_DIR / "environment.json",
            caption="../report/environment.rst",
            category="Tables",
            labels={"table": "machine and library versions"},
        ),
    log:
        LOGS_DIR / "aggregate.log",
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


rule html_page:
    input:
        markdown=RESULTS_DIR / "{page}.md",
        code=script_sources("html_page.py"),
    output:
        page=report(
            RESULTS_DIR / "{page}.html",
            caption="../report/caption.rst",
            category=lambda wildcards: REPORT_PAGES[wildcards.page][0],
            labels=lambda wildcards: {"table": wildcards.page.replace("_", " ")},
        ),
    log:
        LOGS_DIR / "html_page" / "{page}.log",
    wildcard_constraints:
        page="|".join(REPORT_PAGES),
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=512,
        runtime=5,
    params:
        caption=page_caption,
    script:
        "../scripts/html_page.py"


rule plot:
    input:
        stats=rules.aggregate.output.stats,
        disk=rules.aggregate.output.disk_csv,
        code=script_sources("plot.py"),
    output:
        figure=report(
            PLOTS_DIR / f"{{figure}}.{figure_formats()[0]}",
            caption="../report/caption.rst",
            category=figures.ReportField("category"),
            subcategory=figures.ReportField("subcategory"),
            labels=figures.report_labels,
        ),
        other_formats=[PLOTS_DIR / f"{{figure}}.{ext}" for ext in figure_formats()[1:]],
    log:
        LOGS_DIR / "plot" / "{figure}.log",
    wildcard_constraints:
        figure="|".join(figures.stems(config)),
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=1024,
        runtime=10,
    params:
        caption=figure_caption,
        formats=figure_formats(),
        dpi=config["plot"]["dpi"],
        spread=config["plot"]["spread"],
    script:
        "../scripts/plot.py"
