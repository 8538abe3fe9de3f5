"""htmlpage: the run's Markdown tables as HTML pages of the report."""

from __future__ import annotations

from imgbench.report import htmlpage


def test_a_markdown_summary_becomes_one_html_document_with_its_tables():
    text = (
        "# Summary\n\nstore: **npy** fastest.\n\n"
        "| method | store |\n|---|---|\n| npy | 0.7 s |\n| hdf5 | 0.8 s |\n\n"
        "- one\n- two\n"
    )
    page = htmlpage.markdown_page(text, "summary <run>")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>summary &lt;run&gt;</title>" in page
    assert "<h1>Summary</h1>" in page and "<strong>npy</strong>" in page
    assert page.count("<table>") == 1 and "<td>0.8 s</td>" in page
    assert page.count("<li>") == 2
