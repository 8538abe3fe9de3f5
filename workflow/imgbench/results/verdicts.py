"""Which series is best at a point, in words: the fastest (by time or images/s) and the
smallest on disk, or the tie, by ``stats.separate`` (a winner only when its interval lies
clear of every other's). Points measured on a busy machine take no part (``busy``); the
verdict names them as left out.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from imgbench.results import stats as st
from imgbench.results.busy import quiet_and_busy
from imgbench.results.markdown import and_list, seconds, series_names
from imgbench.system.units import human_bytes

# --- candidates: one per series, with its median and interval ------------------------------


def time_candidates(points: pd.DataFrame) -> list[st.Candidate]:
    return [
        st.Candidate(r.series, r.median_s, r.ci_low, r.ci_high, r.ci_level)
        for r in points.itertuples()
    ]


def _describe_time(c: st.Candidate) -> str:
    return f"{seconds(c.value)}, {c.level:.1%} interval {c.low:.4g}–{c.high:.4g} s"


def _throughput_candidates(points: pd.DataFrame) -> list[st.Candidate]:
    return [
        st.Candidate(
            r.series,
            r.median_images_per_s,
            r.ci_images_per_s_low,
            r.ci_images_per_s_high,
            r.ci_images_per_s_level,
        )
        for r in points.itertuples()
    ]


def _describe_throughput(c: st.Candidate) -> str:
    return f"{c.value:,.0f} images/s, {c.level:.1%} interval {c.low:,.0f}–{c.high:,.0f}"


def _disk_candidates(disk: pd.DataFrame) -> list[st.Candidate]:
    return [
        st.Candidate(r.series, r.bytes_on_disk, r.min_bytes_on_disk, r.max_bytes_on_disk)
        for r in disk.itertuples()
    ]


def _describe_disk(c: st.Candidate) -> str:
    if c.low == c.high:
        return human_bytes(c.value)
    return f"{human_bytes(c.value)}, {human_bytes(c.low)}–{human_bytes(c.high)} over stores"


def _names(candidates) -> str:
    """``A and B``, ``A, B and C``: the candidates' names."""
    return and_list(c.name for c in candidates)


def _others(verdict: st.Verdict, candidates: list[st.Candidate]) -> list[st.Candidate]:
    return [c for c in candidates if c is not verdict.best]


# --- a verdict as a clause: "fastest store: **npy** (...)" -----------------------------------


def _verdict_text(
    verdict: st.Verdict, title: str, word: str, describe: Callable, others: list[st.Candidate]
) -> str:
    """``fastest store: **npy** (...)`` for a clear winner (``word`` may be empty), else
    ``store: no clear difference between npy and png``. No winner is named among fewer
    than two series, nor while a series has no interval (one store: its one median may
    lie clear of the others by chance, however many timings it has); the text says so
    rather than calling it no clear difference."""
    if not others:
        return f"{title}: only {verdict.best.name} measured"
    lone = [c for c in [verdict.best, *others] if not st.has_interval(c)]
    if lone:
        who = "every series" if len(lone) == len(others) + 1 else _names(lone)
        return (
            f"{title}: best median {verdict.best.name}, but {who} had one store "
            "(no interval), so no verdict"
        )
    if verdict.clear:
        lead = f"{word} {title}" if word else title
        return f"{lead}: **{verdict.best.name}** ({describe(verdict.best)})"
    return f"{title}: no clear difference between {_names([verdict.best, *verdict.tied])}"


def _left_out(busy: pd.DataFrame) -> str:
    """`` (png left out: busy)`` after a verdict; ``""`` when no point was left out."""
    return f" ({series_names(busy)} left out: busy)" if len(busy) else ""


def _no_quiet_verdict(title: str, busy: pd.DataFrame) -> str:
    return f"{title}: no verdict ({series_names(busy)} measured on a busy machine)"


def _quiet_verdict(points, title, candidates_of, word, describe, higher_is_better=False) -> str:
    """``_verdict_text`` among the points measured on a quiet machine, the busy ones named
    as left out; no verdict when every point was busy."""
    quiet, busy = quiet_and_busy(points)
    if quiet.empty:
        return _no_quiet_verdict(title, busy)
    candidates = candidates_of(quiet)
    verdict = st.separate(candidates, higher_is_better=higher_is_better)
    others = _others(verdict, candidates)
    return _verdict_text(verdict, title, word, describe, others) + _left_out(busy)


def time_verdict(points: pd.DataFrame, title: str) -> str:
    """The fastest series among ``points`` (one per series), or the tie, among the points
    measured on a quiet machine; busy ones are named as left out."""
    return _quiet_verdict(points, title, time_candidates, "fastest", _describe_time)


def throughput_verdict(points: pd.DataFrame, title: str) -> str:
    """The series with the most images/s among ``points``, or the tie, among the points
    measured on a quiet machine; busy ones are named as left out."""
    return _quiet_verdict(
        points, title, _throughput_candidates, "", _describe_throughput, higher_is_better=True
    )


def disk_verdict(disk: pd.DataFrame) -> str:
    """Smallest on disk. Series whose stores all took the same bytes as the smallest are
    named together; overlapping bytes (min..max over stores) are no clear difference; a
    clear smallest is given with its margin over the next, since bytes on disk are exact
    counts and a table rounding both to ``5.9 MiB`` would hide it."""
    candidates = _disk_candidates(disk)
    verdict = st.separate(candidates)
    best, others = verdict.best, _others(verdict, candidates)
    if not others:
        return f"on disk: only {best.name} measured"
    if verdict.tied and all(c.low == c.high == best.value for c in verdict.tied + (best,)):
        return (
            f"smallest on disk: {_names([best, *verdict.tied])}, "
            f"the same {human_bytes(best.value)} each"
        )
    if verdict.tied:
        return f"on disk: no clear difference between {_names([best, *verdict.tied])}"
    runner_up = min(others, key=lambda c: c.value)
    more = runner_up.value - best.value
    return (
        f"smallest on disk: **{best.name}** ({_describe_disk(best)}; next {runner_up.name}, "
        f"{human_bytes(more)} or {more / best.value:.1%} more)"
    )


# --- a verdict as a cell of the format-choice table ----------------------------------------


def fastest_cell(points: pd.DataFrame) -> str:
    """``_fastest_among`` the points measured on a quiet machine, the busy ones named as
    left out."""
    quiet, busy = quiet_and_busy(points)
    if quiet.empty:
        return f"no verdict: {series_names(busy)} measured on a busy machine"
    return _fastest_among(quiet) + _left_out(busy)


def _fastest_among(points: pd.DataFrame) -> str:
    """The fastest series among ``points`` with its median and interval, or the tie: the
    best of the series with an interval and those whose interval overlaps its, and every
    series without an interval (one store), which nothing can rule out."""
    candidates = time_candidates(points)
    verdict = st.separate(candidates)
    best = verdict.best
    if len(candidates) == 1:
        return f"only {best.name} measured"
    if verdict.clear:
        return f"**{best.name}** {seconds(best.value)} [{best.low:.4g}, {best.high:.4g}]"
    lone = [c for c in candidates if not st.has_interval(c)]
    known = [c for c in candidates if st.has_interval(c)]
    among = st.separate(known) if known else None
    contenders = [*lone, among.best, *among.tied] if among else lone
    tied = sorted(contenders, key=lambda c: c.value)
    if len(tied) > 4:
        named = ", ".join(c.name for c in tied[:4]) + f" and {len(tied) - 4} more"
    else:
        named = _names(tied)
    why = _lone_note(lone, candidates)
    return f"no clear winner: {named} (best median {best.name} {seconds(best.value)}{why})"


def _lone_note(lone: list[st.Candidate], candidates: list[st.Candidate]) -> str:
    """Why a tie takes in the series without an interval (one store): ``""`` if none."""
    if not lone:
        return ""
    if len(lone) == len(candidates):
        return "; one store each: no interval"
    who = _names(lone) if len(lone) <= 4 else f"{len(lone)} series"
    return f"; {who}: one store, no interval"


def is_lossy(frame: pd.DataFrame) -> pd.Series:
    """Which lines of ``frame`` (statistics or disk usage) are of a lossy series."""
    if "lossy" not in frame:
        return pd.Series(False, index=frame.index)
    return frame["lossy"].isin([True, "True"])


def smallest_cell(disk: pd.DataFrame) -> str:
    """The smallest lossless series (a lossy one is no answer to "how do I store my
    images" unless the reader accepts the loss), and a smaller lossy one after it."""
    lossy = is_lossy(disk)
    exact = disk[~lossy] if (~lossy).any() else disk
    candidates = _disk_candidates(exact)
    verdict = st.separate(candidates)
    names = [verdict.best, *verdict.tied]
    text = f"**{_names(names)}**" if len(names) < len(candidates) else _names(names)
    text += f" {human_bytes(verdict.best.value / disk['cutoff'].iloc[0])}/image"
    smaller = disk[lossy & (disk["bytes_on_disk"] < verdict.best.value)]
    if len(smaller) and (~lossy).any():
        least = smaller.loc[smaller["bytes_on_disk"].idxmin()]
        per_image = human_bytes(least["bytes_on_disk"] / least["cutoff"])
        text += f" (lossy: {least['series']} {per_image}/image)"
    return text
