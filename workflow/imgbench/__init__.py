"""imgbench: measure how fast and how compactly images are stored and read back.

The Snakemake workflow in this repository is a thin layer over this package: every
rule's script calls one function from here, so the logic is tested with pytest alone.
"""

__version__ = "0.1.0"
