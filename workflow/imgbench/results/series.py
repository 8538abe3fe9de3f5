"""Series and their names: a series is a method with one variant (``png:jpeg95``); the
points every table and figure starts from (stores and the whole-store read); the baseline
series that speed-ups are relative to; the columns that name a table's series
(``add_series_columns``: name, description, encoding, fidelity).
"""

from __future__ import annotations

import pandas as pd

from imgbench.experiment import vocabulary

# The series every "x times npy" ratio divides by: raw pixels in one file, read with numpy.
BASELINE = vocabulary.BASELINE


def series_name(method: str, variant: str) -> str:
    """Legend and table name: the method, with its variant unless it is ``default``."""
    return method if variant == "default" else f"{method}:{variant}"


def clients_text(nodes, clients) -> str:
    """``2x2 clients``: a many-clients read's client processes as nodes x per node."""
    nodes, clients = max(int(nodes), 1), int(clients)
    return f"{nodes}x{clients // nodes} clients"


def is_many_clients(frame: pd.DataFrame) -> pd.Series:
    """Which lines of ``frame`` (rows or statistics) are reads by client processes
    (``clients`` >= 1); none where the frame has no ``clients``."""
    if "clients" not in frame:
        return pd.Series(False, index=frame.index)
    return pd.to_numeric(frame["clients"], errors="coerce").fillna(0) > 0


def method_descriptions(frame: pd.DataFrame) -> dict[str, str]:
    """Each method's ``DESCRIPTION``, as the rows carry it into every table (column
    ``method_description``); the method's name where none was recorded."""
    described = {}
    if "method_description" in frame:
        given = frame[frame["method_description"].notna()]
        described = dict(zip(given["method"], given["method_description"], strict=True))
    return {method: str(described.get(method, method)) for method in sorted(set(frame["method"]))}


def series_encodings(frame: pd.DataFrame) -> dict[str, str]:
    """The encoding of each series' images (rows' ``encoding``, see ``encoding.describe``)
    for the methods that keep encoded images, i.e. where some series of the method is not
    raw pixels; nothing for the others, whose images are always raw."""
    if "encoding" not in frame or "series" not in frame:
        return {}
    given = frame[frame["encoding"].notna()]
    encoded = set(given.loc[given["encoding"] != "raw", "method"])
    chosen = given[given["method"].isin(encoded)]
    return dict(zip(chosen["series"], chosen["encoding"].astype(str), strict=True))


def series_label(
    series: str, descriptions: dict[str, str], encodings: dict[str, str] | None = None
) -> str:
    """A series (``method`` or ``method:variant``) by its method's description, the
    variant in brackets and the encoding of its images where the method has several:
    ``image files + labels.csv [jpeg95], jpeg q95 4:4:4``."""
    method, _, variant = series.partition(":")
    name = descriptions.get(method, method)
    label = f"{name} [{variant}]" if variant else name
    encoding = (encodings or {}).get(series)
    return f"{label}, {encoding}" if encoding else label


def whole_store_reads(frame: pd.DataFrame) -> pd.Series:
    """Which rows of ``frame`` (rows or statistics) are the whole-store read of
    ``vocabulary.WHOLE_STORE_READ``: only those with ``WHOLE_STORE_READAHEAD`` where it
    was measured with several readahead settings; never a read by client processes."""
    whole = (frame["operation"] == "read") & ~is_many_clients(frame)
    for column, value in vocabulary.WHOLE_STORE_READ.items():
        whole &= frame[column] == value
    preferred = frame["readahead"] == vocabulary.WHOLE_STORE_READAHEAD
    if (whole & preferred).any():
        whole &= preferred
    return whole


def store_and_whole_reads(stats: pd.DataFrame) -> pd.DataFrame:
    """Stores, and the whole-store read (``vocabulary.WHOLE_STORE_READ``): the rows of the
    per-cutoff tables, the time figures and the speed-vs-npy figure."""
    return stats[(stats["operation"] == "store") | whole_store_reads(stats)]


_SERIES_PROPERTIES = {  # rows' column: how a series' rows give its one value
    "encoding": "first",
    "codec": "first",
    "read_path": "first",
    "lossy": "first",
    "psnr_db": "median",
    "psnr_min_db": "min",
    "psnr_p01_db": "min",
}


def add_series_columns(table: pd.DataFrame, rows: pd.DataFrame) -> None:
    """Columns of ``table`` (one line per method and variant or finer) that name its
    series from the rows: ``series``, ``method_description``, and the rows' ``encoding``,
    ``read_path``, ``lossy``, the median store PSNR and the lowest worst-image and
    1st-percentile PSNR per (method, variant) (NaN for rows written before they
    existed)."""
    methods, variants = table["method"], table["variant"]
    table["series"] = [series_name(m, v) for m, v in zip(methods, variants, strict=True)]
    table["method_description"] = methods.map(method_descriptions(rows))
    present = {c: how for c, how in _SERIES_PROPERTIES.items() if c in rows}
    by_series = rows.groupby(["method", "variant"], sort=False).agg(present) if present else None
    for column in _SERIES_PROPERTIES:
        if by_series is not None and column in by_series:
            found = by_series[column]
            table[column] = [found.get(key) for key in zip(methods, variants, strict=True)]
        else:
            table[column] = float("nan")
