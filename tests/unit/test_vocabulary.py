"""vocabulary: one place for the read patterns, cache states, readahead settings, image
bytes and the whole-store read; the schema, the wildcard constraints and the modules that
use them agree with it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from imgbench.experiment import plan, vocabulary
from imgbench.harness import access
from imgbench.results import series, tables

REPO = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
BENCHMARK_RULES = REPO / "workflow" / "rules" / "benchmark.smk"


def schema_enum(key: str) -> list:
    return SCHEMA["properties"][key]["items"]["enum"]


def test_schema_enums_are_the_vocabulary():
    assert schema_enum("read_patterns") == list(vocabulary.PATTERNS)
    assert schema_enum("read_cache") == list(vocabulary.CACHE_STATES)
    # YAML reads a bare on/off as true/false; the config normalises them to the strings.
    readahead = schema_enum("readahead")
    assert [v for v in readahead if isinstance(v, str)] == list(vocabulary.READAHEAD)
    assert set(readahead) - set(vocabulary.READAHEAD) == {True, False}


def wildcard_constraints() -> dict[str, str]:
    """The wildcard constraints of the benchmark rules, by wildcard name."""
    text = BENCHMARK_RULES.read_text()
    block = re.search(r"^wildcard_constraints:\n((?:    .*\n)+)", text, re.MULTILINE).group(1)
    return dict(re.findall(r"^    (\w+)=(.+),$", block, re.MULTILINE))


def test_only_a_store_s_coordinates_are_wildcards():
    """A read's kind (cache, pattern, readers, readahead) is no wildcard: a store's read job
    gets its kinds as a param (``plan.StoreReadKinds``), so its paths and the constraints
    hold only the store's coordinates."""
    assert set(wildcard_constraints()) == set(plan.STORE_WILDCARDS)
    assert not re.search(
        r"\{(read_cache|read_pattern|readers|readahead)\}", BENCHMARK_RULES.read_text()
    )


def test_patterns_have_a_kind_a_description_and_known_parameters():
    kinds = {vocabulary.ONE_PROCESS, vocabulary.REQUESTS}
    for name, pattern in vocabulary.READ_PATTERNS.items():
        assert pattern.name == name
        assert pattern.kind in kinds
        assert pattern.description and "\n" not in pattern.description
        assert set(pattern.parameters) <= {"batch_size", "random_reads", "shuffle_buffer", "seed"}
    assert vocabulary.PATTERNS == vocabulary.ONE_PROCESS_PATTERNS + vocabulary.REQUEST_PATTERNS
    assert vocabulary.ONE_PROCESS_PATTERNS == ("whole", "whole_array")
    # A one-process read is the method's own read: no requests, so no request parameters.
    for name in vocabulary.ONE_PROCESS_PATTERNS:
        assert vocabulary.READ_PATTERNS[name].parameters == ()
    with pytest.raises(ValueError, match="unknown read pattern 'zigzag'; choose one of whole"):
        vocabulary.pattern("zigzag")


def test_every_request_pattern_has_its_requests():
    assert set(access.REQUESTS) == set(vocabulary.REQUEST_PATTERNS)
    for name in vocabulary.REQUEST_PATTERNS:
        requests = access.requests(name, 20, batch_size=4, reads=30, seed=1, shuffle_buffer=8)
        assert requests and all(len(r) for r in requests)
        # A pattern that takes no seed gives the same requests whatever the seed.
        again = access.requests(name, 20, batch_size=4, reads=30, seed=2, shuffle_buffer=8)
        same = all(np.array_equal(a, b) for a, b in zip(requests, again, strict=False))
        assert same == (not vocabulary.uses(name, "seed")), name


def test_other_modules_take_the_vocabulary():
    assert access.PATTERNS == vocabulary.PATTERNS
    assert access.ONE_PROCESS_PATTERNS == vocabulary.ONE_PROCESS_PATTERNS
    assert access.REQUEST_PATTERNS == vocabulary.REQUEST_PATTERNS
    assert tuple(SCHEMA["properties"]["cold"]["enum"]) == vocabulary.EVICTIONS
    assert list(tables.PATTERN_ORDER) == list(vocabulary.PATTERNS)
    assert plan.image_bytes is vocabulary.image_bytes


def test_plan_reads_every_pattern_by_its_kind():
    config = {
        "read_cache": list(vocabulary.CACHE_STATES),
        "read_patterns": list(vocabulary.PATTERNS),
        "readers": [1, 2],
        "readahead": list(vocabulary.READAHEAD),
        "random_reads": 10,
        "max_array_bytes": 10**12,
    }
    kinds = plan.read_kinds(config, cutoff=100, image_size=32)
    for name in vocabulary.PATTERNS:
        mine = [k for k in kinds if k["read_pattern"] == name]
        if vocabulary.is_one_process(name):
            assert [(k["readers"], k["readahead"]) for k in mine] == [(1, "on")] * 2
        else:  # readers x readahead cold, readahead on warm
            assert len(mine) == 2 * 2 + 2
    # random_reads bounds only the patterns that take it.
    few = {k["read_pattern"] for k in plan.read_kinds(config, cutoff=5, image_size=32)}
    assert few == {p for p in vocabulary.PATTERNS if not vocabulary.uses(p, "random_reads")}


def test_image_bytes():
    assert vocabulary.image_bytes(32) == 3072
    assert vocabulary.image_bytes(256) == 196_608
    sizes = pd.Series([32, 64])
    assert vocabulary.image_bytes(sizes).tolist() == [3072, 12288]


def test_whole_store_read_is_the_baseline():
    stats = pd.DataFrame(
        {
            "operation": ["store"] + ["read"] * 5,
            "read_pattern": ["n/a", "whole", "whole", "whole", "whole_array", "shuffled"],
            "readers": [1, 1, 2, 1, 1, 1],
            "readahead": ["on", "on", "on", "off", "on", "on"],
        }
    )
    assert list(series.whole_store_reads(stats)) == [False, True] + [False] * 4
    assert list(series.store_and_whole_reads(stats).index) == [0, 1]
    for column, value in vocabulary.WHOLE_STORE_READ.items():
        assert (
            series.store_and_whole_reads(stats).query("operation == 'read'")[column] == value
        ).all()


def test_vocabulary_imports_nothing_heavy():
    """The Snakemake process imports it (wildcard constraints): no pandas, no matplotlib."""
    code = (
        "import sys; import imgbench.experiment.vocabulary; "
        "heavy = {'pandas', 'matplotlib', 'numpy'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    env_path = str(REPO / "workflow")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": env_path})
