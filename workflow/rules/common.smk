# Shared helpers of the workflow's rules.

import threading


def end_reselection_timers():
    """Snakemake's job rate limiter starts a threading.Timer per scheduling round; a
    pending one keeps the finished process alive until it fires. End them."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


onsuccess:
    end_reselection_timers()


onerror:
    end_reselection_timers()
