"""The operating-system layer: file systems and mounts (``fsutil``), the machine's counters
and facts (``machine``), atomic file writes (``atomic``) and process lifetime
(``lifetime``).

The lowest layer: it imports nothing else of imgbench.
"""
