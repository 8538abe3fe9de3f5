"""Snakemake adapter: a Markdown table of the run -> an HTML page for the report."""

from pathlib import Path

from imgbench.jobs import scriptlog
from imgbench.report import htmlpage
from imgbench.system.atomic import write_text

smk = snakemake  # noqa: F821
logger = scriptlog.setup(smk.log[0])
text = Path(smk.input.markdown).read_text()
write_text(htmlpage.markdown_page(text, smk.wildcards.page), smk.output.page)
logger.info("rendered %s into %s", smk.input.markdown, smk.output.page)
