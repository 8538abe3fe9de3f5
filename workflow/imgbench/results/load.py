"""What the aggregate step reads: the rows the store and read jobs wrote (one per timed
operation), their provenance records (environments) and Snakemake's benchmark files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from imgbench.experiment import vocabulary

SORT_KEYS = [
    "_order",
    "method",
    "variant",
    "image_size",
    "cutoff",
    "cache",
    "eviction",
    "read_pattern",
    "readahead",
    "readers",
    "clients",
    "nodes",
    "repeat",
    "inner_repeat",
]

# Columns rows gained after runs were made, with what an older row means by their absence:
# a read by the job's own process or its forked readers, on one node, no client processes.
READ_DEFAULTS = {"nodes": 1, "clients": 0}
# ``codec`` (which library encoded and decoded a series' images) where a row lacks it:
# none for raw pixels and for methods without an encoding (no ``encoding``), else Pillow,
# the only codec before the option existed.
NO_CODEC = "none"
CODEC_BEFORE_OPTION = "pillow"


def _numbers(rows: pd.DataFrame, column: str) -> pd.Series:
    """``rows[column]`` as numbers; all NaN where rows lack the column."""
    if column not in rows:
        return pd.Series(float("nan"), index=rows.index, dtype=float)
    return pd.to_numeric(rows[column], errors="coerce")


def with_defaults(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with every column of ``READ_DEFAULTS``, empty cells (rows written before
    the column existed, or rows that leave it empty) at its default, as whole numbers;
    ``images_per_s_per_client`` (``images_per_s / clients``) where a many-clients row
    lacks it; ``codec`` where a row lacks it (``codec_column``). Idempotent: the aggregate
    step, ``imgbench compare`` and the statistics all apply it."""
    rows = rows.copy()
    for column, default in READ_DEFAULTS.items():
        given = _numbers(rows, column)
        rows[column] = given.fillna(default).astype(int)
    derived = (_numbers(rows, "images_per_s") / rows["clients"]).where(rows["clients"] > 0)
    rows["images_per_s_per_client"] = _numbers(rows, "images_per_s_per_client").fillna(derived)
    rows["codec"] = codec_column(rows)
    return rows


def _texts(rows: pd.DataFrame, column: str) -> pd.Series:
    """``rows[column]`` as text, missing (NaN) where empty or where rows lack the column."""
    if column not in rows:
        return pd.Series(float("nan"), index=rows.index, dtype=object)
    return rows[column].astype(object).where(rows[column].notna() & (rows[column] != ""))


def codec_column(rows: pd.DataFrame) -> pd.Series:
    """Each row's ``codec`` (of ``rows``, or of any table with ``encoding``: statistics,
    disk usage); where empty (rows written before it existed), ``NO_CODEC`` for raw or
    missing ``encoding``, else ``CODEC_BEFORE_OPTION``."""
    encoding = _texts(rows, "encoding")
    raw = encoding.isna() | (encoding == "raw")
    default = pd.Series(CODEC_BEFORE_OPTION, index=rows.index, dtype=object).where(~raw, NO_CODEC)
    return _texts(rows, "codec").fillna(default)


def load_rows(paths: Iterable[Path]) -> pd.DataFrame:
    """Concatenate the rows' CSVs into the tidy table (one row per timed operation)."""
    frames = [pd.read_csv(path, keep_default_na=False, na_values=[""]) for path in paths]
    if not frames:
        raise ValueError("no timing rows to aggregate")
    rows = with_defaults(pd.concat(frames, ignore_index=True))
    rows["_order"] = rows["operation"].map({"store": 0, "read": 1})
    rows = rows.sort_values(SORT_KEYS)
    return rows.drop(columns="_order").reset_index(drop=True)


def _join(record: dict, key: str, value) -> None:
    """Set ``record[key]`` to ``value``, or to the list of the distinct values when jobs
    of one environment reported it differently."""
    if key not in record:
        record[key] = value
        return
    values = record[key] if isinstance(record[key], list) else [record[key]]
    if value not in values:
        record[key] = [*values, value]


def load_environments(paths: Iterable[Path]) -> dict[str, dict]:
    """Distinct provenance records keyed by env_id, each joining what its jobs reported
    of their methods (``provenance``): ``methods`` maps every method run there to the
    versions of its packages and C libraries, which also stand at the top level under
    their own keys (``pillow``, ``zlib``, ``lmdb``, ``lmdb_c``, ``h5py``, ``hdf5_c``...).
    A version jobs of one environment reported differently is the list of the values."""
    environments: dict[str, dict] = {}
    for path in paths:
        record = json.loads(Path(path).read_text())
        record.pop("job", None)  # the job's own phases (``job_phases``), not provenance
        if "methods" not in record:  # written before methods reported their versions
            environments.setdefault(record["env_id"], record)
            continue
        joined = environments.setdefault(record["env_id"], {**record, "methods": {}})
        for method, versions in record["methods"].items():
            mine = joined["methods"].setdefault(method, {})
            for key, value in versions.items():
                _join(mine, key, value)
                _join(joined, key, value)
    return environments


_BENCHMARK_NAME = re.compile(
    r"(?P<operation>store|read)/(?P<method>[^/]+)/(?P<variant>[^/]+)/(?P<image_size>\d+)px/"
    r"(?P<cutoff>\d+(?:\+\d+)*)/repeat(?P<repeat>\d+)"
    rf"(?:_(?P<cache>{'|'.join(vocabulary.CACHE_STATES)})_(?P<read_pattern>.+)"
    rf"_(?P<readers>\d+)readers_ra-(?P<readahead>{'|'.join(vocabulary.READAHEAD)}))?"
    r"\.tsv$"
)


def load_benchmarks(paths: Iterable[Path]) -> pd.DataFrame:
    """Snakemake's benchmark files of the store and read jobs (``max_rss`` in MB, sampled
    by Snakemake), one row per job and store, with the job's coordinates from its path: a
    job holding several small stores (cutoff "1+10+100") gives each of them its figures."""
    records = []
    for path in paths:
        match = _BENCHMARK_NAME.search(Path(path).as_posix())
        if match is None:
            raise ValueError(f"{path} is not a store or read benchmark file of this workflow")
        frame = pd.read_csv(path, sep="\t")
        record = {k: v for k, v in match.groupdict().items() if v is not None}
        for key in ("image_size", "repeat", "readers"):
            if key in record:
                record[key] = int(record[key])
        record["max_rss_mb"] = pd.to_numeric(frame["max_rss"], errors="coerce").max()
        record["job_seconds"] = pd.to_numeric(frame["s"], errors="coerce").max()
        for cutoff in record.pop("cutoff").split("+"):
            records.append({**record, "cutoff": int(cutoff)})
    return pd.DataFrame.from_records(records)
