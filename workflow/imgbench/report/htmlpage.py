"""A Markdown table of the run (summary.md, disk_usage.md) as a self-contained HTML page,
so the report shows it as a page rather than a file to download."""

from __future__ import annotations

import html

import markdown

STYLE = """
body { font-family: sans-serif; font-size: 14px; line-height: 1.45; margin: 1.5em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f2f2f2; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f4f4f4; padding: 0 2px; }
"""


def markdown_page(text: str, title: str) -> str:
    """``text`` (Markdown with tables) rendered into one HTML document titled ``title``."""
    body = markdown.markdown(text, extensions=["tables", "sane_lists"])
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
