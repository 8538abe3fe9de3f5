"""The report: the figure registry (``figures``), drawing them (``plotting``) and the HTML
pages (``htmlpage``).

Imports ``results`` and below.
"""
