"""The Snakemake glue: a rule's helper modules as its inputs (``sources``), job resources
(``job_resources``) and a job's log and guard (``scriptlog``).

Used by the rules and the scripts; the package below it never imports it.
"""
