"""What legends, ticks and titles call things: series by their methods' descriptions,
cache conditions (naming the eviction where cold reads used several), reader counts and
readahead settings."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from imgbench.experiment import vocabulary
from imgbench.results.series import method_descriptions, series_encodings, series_label


@dataclass(frozen=True)
class Labels:
    """The names of the series of one run: each method's DESCRIPTION, which the rows carry
    into the statistics and disk tables (column ``method_description``; a method without
    one is called by its name), and the encoding of each series' images for methods that
    keep them in several encodings."""

    descriptions: dict[str, str] = field(default_factory=dict)
    encodings: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_tables(cls, *frames: pd.DataFrame) -> Labels:
        """The labels ``frames`` (statistics, disk usage) carry; a method's first
        description other than its bare name wins, the last encoding of a series does."""
        descriptions: dict[str, str] = {}
        encodings: dict[str, str] = {}
        for frame in frames:
            for method, text in method_descriptions(frame).items():
                if descriptions.get(method, method) == method:
                    descriptions[method] = text
            encodings.update(series_encodings(frame))
        return cls(descriptions, encodings)

    def __call__(self, series: str) -> str:
        """``image files + labels.csv [level1], png``: the method's description, the
        variant, the encoding where the method has several."""
        return series_label(series, self.descriptions, self.encodings)


def with_condition(frame: pd.DataFrame) -> pd.DataFrame:
    """``condition``: the cache state, naming the eviction when cold reads used several
    (``cold (fadvise)``, ``cold (drop_caches)``)."""
    cold = frame["cache"] == vocabulary.COLD
    condition = frame["cache"].astype(str)
    if frame.loc[cold, "eviction"].nunique() > 1:
        condition = condition.where(~cold, "cold (" + frame["eviction"].astype(str) + ")")
    return frame.assign(condition=condition)


def conditions(frame: pd.DataFrame, cache: str) -> list[str]:
    """The conditions of ``frame`` (``with_condition``) with cache state ``cache``."""
    return sorted(frame.loc[frame["cache"] == cache, "condition"].unique())


def read_conditions(frame: pd.DataFrame) -> list[str]:
    """Every read condition of ``frame``, cold before warm before partly cached."""
    return [c for cache in vocabulary.ROW_CACHE_STATES for c in conditions(frame, cache)]


def readahead_text(reads: pd.DataFrame) -> str:
    return "readahead " + "/".join(sorted(map(str, reads["readahead"].unique())))


def readers_text(readers) -> str:
    return f"{int(readers)} reader" + ("" if int(readers) == 1 else "s")
