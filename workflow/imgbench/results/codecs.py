"""Encoded series side by side: the summary's "Codecs" section.

A series keeps its images in an ``encoding`` (``png``, ``jpeg q95 4:4:4``, ``qoi``...)
made and read back by a ``codec`` (the library: pillow, imagecodecs, opencv, simplejpeg,
spng; ``none`` for raw pixels and for methods without an encoding, see
``load.with_defaults``). Per image size, at its largest cutoff with two or more encoded
series, one table gives each encoded series' bytes per image, its fidelity, its store's
images/s (encode and write) and its warm reads' images/s by one reader (decode and the
container's read): what the store and the read cost with that codec, not a codec
micro-benchmark. Under the table, the verdicts: per method and encoding with several
codecs, the fastest decoder of each warm read kind; per method, the smallest lossless
encoding and the fastest-reading one. A codec or encoding is named only when its
interval over the stores lies wholly above (bytes: below) every other's
(``stats.separate``); points measured on a busy machine are left out, as in every
verdict.
"""

from __future__ import annotations

import pandas as pd

from imgbench.experiment import vocabulary
from imgbench.results import stats as st
from imgbench.results.load import NO_CODEC, with_defaults
from imgbench.results.markdown import and_list, markdown_table
from imgbench.results.series import is_many_clients, series_name
from imgbench.results.tables import busy_mark
from imgbench.results.verdicts import is_lossy, throughput_verdict

# The warm read the per-method verdict and the codecs figure use: a shuffled epoch (a
# training loader's read) where measured, else the whole-store read, else the first.
PREFERRED_READS = (vocabulary.SHUFFLED, vocabulary.WHOLE)

SECTION_NOTE = (
    "Each encoded series as this run measured it: the store's images/s (encode and "
    "write, flush included) and warm reads' images/s by one reader (decode and the "
    "container's read), not a codec micro-benchmark. Bytes per image: the store's bytes "
    "on disk over its images (median over stores). PSNR: the store's against its source "
    "and its worst image's (lossy encodings only). Images/s: medians over stores with "
    "their interval in brackets (none with one store). A codec or encoding is named "
    "fastest or smallest only when its interval lies wholly beyond every other's; busy "
    "points are left out of the verdicts.\n\n"
)


# --- which series are encoded, by which codec ------------------------------------------------


def series_codecs(rows: pd.DataFrame) -> dict[str, str]:
    """The codec of each series (``method:variant``) of the rows; rows written before
    ``codec`` existed get ``load.with_defaults``'s (pillow, or none where raw)."""
    rows = with_defaults(rows)
    first = rows.groupby(["method", "variant"], sort=True)["codec"].first()
    return {series_name(method, variant): str(codec) for (method, variant), codec in first.items()}


def with_codecs(frame: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (statistics or disk usage, with ``series``) with each series' ``codec``
    from the rows (``none`` for a series the rows lack)."""
    return frame.assign(codec=frame["series"].map(series_codecs(rows)).fillna(NO_CODEC))


def encoded(frame: pd.DataFrame) -> pd.DataFrame:
    """The lines of ``frame`` (with ``codec``) of encoded series."""
    return frame[frame["codec"] != NO_CODEC]


def warm_single_reads(stats: pd.DataFrame) -> pd.DataFrame:
    """Warm reads by one reader of the job's own (no client processes)."""
    return stats[
        (stats["operation"] == "read")
        & (stats["cache"] == vocabulary.WARM)
        & (stats["readers"] == 1)
        & ~is_many_clients(stats)
    ]


def read_kinds(reads: pd.DataFrame) -> list[tuple[str, str]]:
    """The (read pattern, readahead) of ``reads``, in the vocabulary's pattern order."""
    pairs = set(reads[["read_pattern", "readahead"]].itertuples(index=False, name=None))
    return sorted(pairs, key=lambda p: (vocabulary.pattern_rank(p[0]), p[0], str(p[1])))


def kind_label(kind: tuple[str, str], kinds: list[tuple[str, str]]) -> str:
    """``shuffled``; ``shuffled, readahead off`` where a pattern has both settings."""
    pattern, readahead = kind
    several = sum(1 for p, _ in kinds if p == pattern) > 1
    return f"{pattern}, readahead {readahead}" if several else pattern


def main_kind(kinds: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The read of ``PREFERRED_READS`` measured (readahead on where both), else the first."""
    for pattern in PREFERRED_READS:
        mine = [k for k in kinds if k[0] == pattern]
        if mine:
            on = [k for k in mine if k[1] == vocabulary.READAHEAD_ON]
            return (on or mine)[0]
    return kinds[0] if kinds else None


def _of_kind(reads: pd.DataFrame, kind: tuple[str, str]) -> pd.DataFrame:
    return reads[(reads["read_pattern"] == kind[0]) & (reads["readahead"] == kind[1])]


def codec_cutoff(stores: pd.DataFrame) -> int | None:
    """The largest cutoff at which two or more encoded series were stored (``stores``:
    encoded store points of one image size), None if no cutoff has two."""
    counts = stores.groupby("cutoff")["series"].nunique()
    counts = counts[counts >= 2]
    return int(counts.index.max()) if len(counts) else None


# --- the table ---------------------------------------------------------------------------------


def _speed(point) -> str:
    """``12,345 [12,100, 12,600]`` (busy marked); ``n/a`` without the point."""
    if point is None or pd.isna(point.median_images_per_s):
        return "n/a"
    text = f"{point.median_images_per_s:,.0f}"
    low, high = point.ci_images_per_s_low, point.ci_images_per_s_high
    if pd.notna(low) and pd.notna(high):
        text += f" [{low:,.0f}, {high:,.0f}]"
    return text + busy_mark(point)


def _first(frame: pd.DataFrame):
    return next(frame.itertuples(), None)


def store_fidelity(rows: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per series, from its store rows (of one size and cutoff): the median store PSNR and
    the lowest worst-image PSNR (NaN where not recorded)."""
    stores = rows[rows["operation"] == "store"]
    found = {}
    for (method, variant), group in stores.groupby(["method", "variant"], sort=True):
        psnr, worst = (_numbers(group, column) for column in ("psnr_db", "psnr_min_db"))
        found[series_name(method, variant)] = (psnr.median(), worst.min())
    return found


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(float("nan"), index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce")


def psnr_cell(lossy: bool, fidelity: tuple[float, float] | None) -> str:
    """``exact`` for a lossless series; ``39.9 dB (worst 36.1 dB)`` for a lossy one."""
    if not lossy:
        return "exact"
    psnr, worst = fidelity or (float("nan"), float("nan"))
    if pd.isna(psnr):
        return "lossy (PSNR not recorded)"
    return f"{psnr:.1f} dB" + ("" if pd.isna(worst) else f" (worst {worst:.1f} dB)")


def bytes_per_image(disk_line) -> str:
    return "n/a" if disk_line is None else f"{disk_line.bytes_per_image:,.0f} B"


def _ordered(series: pd.DataFrame) -> pd.DataFrame:
    """One line per series, by encoding, then codec, then name."""
    return series.sort_values(["encoding", "codec", "series"])


def codec_table(here, disk, rows, kinds) -> str:
    """The table of one image size and cutoff: ``here`` its encoded points (statistics
    with ``codec``), ``disk`` its encoded disk lines, ``rows`` its rows."""
    stores = here[here["operation"] == "store"]
    reads = warm_single_reads(here)
    fidelity = store_fidelity(rows)
    lines = _ordered(here.drop_duplicates("series"))
    header = ["method", "encoding", "codec", "bytes per image", "PSNR"]
    header.append("store images/s (encode + write)")
    header += [f"warm {kind_label(k, kinds)} read images/s, 1 reader" for k in kinds]
    body = []
    for line in lines.itertuples():
        lossy = bool(is_lossy(here[here["series"] == line.series]).any())
        cells = [
            line.series,
            str(line.encoding),
            str(line.codec),
            bytes_per_image(_first(disk[disk["series"] == line.series])),
            psnr_cell(lossy, fidelity.get(line.series)),
            _speed(_first(stores[stores["series"] == line.series])),
        ]
        for kind in kinds:
            cells.append(_speed(_first(_of_kind(reads[reads["series"] == line.series], kind))))
        body.append(cells)
    return markdown_table(header, body)


# --- the verdicts ------------------------------------------------------------------------------


def _names(points: pd.DataFrame, short: str) -> pd.Series:
    """Each line's name in a verdict: ``points[short]`` (codec, encoding), with the series
    after it where two lines would share it."""
    names = points[short].astype(str)
    shared = names.duplicated(keep=False)
    return names.where(~shared, names + " (" + points["series"] + ")")


def decoder_verdicts(method: str, reads: pd.DataFrame, kinds) -> list[str]:
    """Per encoding of ``method`` with two or more codecs and per warm read kind: the
    fastest decoder, or no clear difference (``verdicts.throughput_verdict``)."""
    lines = []
    mine = reads[reads["method"] == method]
    for encoding in sorted(mine["encoding"].astype(str).unique()):
        same = mine[mine["encoding"].astype(str) == encoding]
        if same["codec"].nunique() < 2:
            continue
        for kind in kinds:
            points = _of_kind(same, kind)
            if points["codec"].nunique() < 2:
                continue
            named = points.assign(series=_names(points, "codec"))
            title = f"{method}, {encoding}, warm {kind_label(kind, kinds)} read, fastest decoder"
            lines.append(throughput_verdict(named, title))
    return lines


def _lossless(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[~is_lossy(frame)]


def _label(frame: pd.DataFrame) -> pd.Series:
    """``png (opencv)``: a series by its encoding and codec (its name after it where two
    series share both)."""
    label = frame["encoding"].astype(str) + " (" + frame["codec"].astype(str) + ")"
    return _names(frame.assign(_label=label), "_label")


def _per_image(c: st.Candidate) -> str:
    if c.low == c.high:
        return f"{c.value:,.0f} B"
    return f"{c.value:,.0f} B ({c.low:,.0f}–{c.high:,.0f} over stores)"


def smallest_verdict(method: str, disk: pd.DataFrame) -> str:
    """The smallest lossless encoding of ``method`` in bytes per image (its disk lines of
    one size and cutoff), by the range of bytes over its stores (as ``disk_verdict``):
    named only when that range lies wholly below every other's."""
    per_image = disk.assign(name=_label(disk))
    candidates = [
        st.Candidate(
            r.name,
            r.bytes_per_image,
            r.min_bytes_on_disk / r.cutoff,
            r.max_bytes_on_disk / r.cutoff,
        )
        for r in per_image.itertuples()
    ]
    title = f"{method}, smallest lossless encoding per image"
    verdict = st.separate(candidates)
    if verdict.clear:
        others = sorted((c for c in candidates if c is not verdict.best), key=lambda c: c.value)
        return (
            f"{title}: **{verdict.best.name}** {_per_image(verdict.best)}; next "
            f"{others[0].name} {others[0].value:,.0f} B"
        )
    tied = [verdict.best, *verdict.tied]
    values = ", ".join(f"{c.name} {_per_image(c)}" for c in tied)
    return f"{title}: no clear difference between {and_list(c.name for c in tied)} ({values})"


def encoding_verdicts(method: str, here: pd.DataFrame, disk: pd.DataFrame, kinds) -> list[str]:
    """Across ``method``'s lossless encodings (two or more): the smallest per image and
    the fastest on the main warm read (``main_kind``)."""
    exact = _lossless(here[here["method"] == method])
    if exact["encoding"].nunique() < 2:
        return []
    lines = []
    sizes = _lossless(disk[disk["method"] == method])
    if sizes["series"].nunique() >= 2:
        lines.append(smallest_verdict(method, sizes))
    kind = main_kind(kinds)
    reads = _of_kind(warm_single_reads(exact), kind) if kind else exact.iloc[0:0]
    if reads["series"].nunique() >= 2:
        title = f"{method}, fastest-reading lossless encoding, warm {kind_label(kind, kinds)} read"
        lines.append(throughput_verdict(reads.assign(series=_label(reads)), title))
    return lines


# --- the section -------------------------------------------------------------------------------


def _size_markdown(size, here, disk, rows) -> str:
    """One image size's table and verdicts (``here``: its encoded points at one cutoff)."""
    cutoff = int(here["cutoff"].iloc[0])
    kinds = read_kinds(warm_single_reads(here))
    parts = [f"### {size}x{size}, {cutoff:,} images\n\n"]
    parts.append(codec_table(here, disk, rows, kinds))
    verdicts = []
    for method in sorted(here["method"].unique()):
        verdicts += decoder_verdicts(method, warm_single_reads(here), kinds)
        verdicts += encoding_verdicts(method, here, disk, kinds)
    if verdicts:
        parts.append("\n" + "".join(f"- {line}.\n" for line in verdicts) + "\n")
    else:
        parts.append("\nNo method has two codecs of one encoding or two lossless encodings.\n\n")
    return "".join(parts)


def codecs_markdown(rows: pd.DataFrame, stats: pd.DataFrame, disk: pd.DataFrame) -> str:
    """Per image size, at its largest cutoff with two or more encoded series: a table of
    the encoded series (encoding, codec, bytes per image, PSNR, store and warm
    single-reader read images/s) and the verdicts (``decoder_verdicts``,
    ``encoding_verdicts``). ``""`` when no image size has two encoded series."""
    points = encoded(with_codecs(stats, rows))
    sizes = encoded(with_codecs(disk, rows))
    parts = []
    for size in sorted(points["image_size"].unique()):
        at_size = points[points["image_size"] == size]
        cutoff = codec_cutoff(at_size[at_size["operation"] == "store"])
        if cutoff is None:
            continue
        here = at_size[at_size["cutoff"] == cutoff]
        mine = sizes[(sizes["image_size"] == size) & (sizes["cutoff"] == cutoff)]
        timed = rows[(rows["image_size"] == size) & (rows["cutoff"] == cutoff)]
        parts.append(_size_markdown(size, here, mine, timed))
    if not parts:
        return ""
    heading = "\n## Codecs (largest cutoff of each size with two or more encoded series)\n\n"
    return heading + SECTION_NOTE + "".join(parts)
