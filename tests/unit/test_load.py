"""load: the rows and the environments of a run."""

from __future__ import annotations

import json

import pytest
from results_fixtures import ENV_ID, ENVIRONMENT, NINE

from imgbench.harness import measure
from imgbench.results import load


def test_load_rows_is_the_tidy_table(tables):
    rows, _, _ = tables
    assert len(rows) == 42
    assert list(rows.columns) == measure.ROW_FIELDS
    assert (rows["operation"].iloc[:12] == "store").all()
    assert (rows["operation"].iloc[12:] == "read").all()
    stores = rows[rows["operation"] == "store"]
    assert stores["read_pattern"].eq("n/a").all() and stores["readahead"].eq("n/a").all()
    assert stores["cached_fraction"].isna().all()
    assert rows["fsync"].eq("per_file").all()
    nine = rows[(rows["method"] == "npy") & (rows["cache"] == "warm") & (rows["cutoff"] == 100)]
    assert list(zip(nine["repeat"], nine["inner_repeat"], strict=True)) == [
        (r, i) for r in (1, 2, 3) for i in (1, 2, 3)
    ]
    assert list(nine["seconds"]) == [
        s for store in NINE[("npy", "read", "warm", 100)] for s in store
    ]
    with pytest.raises(ValueError, match="no timing rows"):
        load.load_rows([])


def test_environment_json_joins_the_methods_of_one_environment(tmp_path):
    """Each job records its own method's versions; the jobs of one machine share an env_id
    and environment.json holds one record with every method's versions, under ``methods``
    and at the top level; a version reported two ways is kept as both."""
    jobs = [
        ("hdf5", {"h5py": "3.16.0", "hdf5_c": "1.14.6"}),
        ("hdf5", {"h5py": "3.16.0", "hdf5_c": "1.14.6"}),
        ("lmdb", {"lmdb": "3.0.0", "lmdb_c": "0.9.33"}),
        ("npy", {}),
        ("png", {"pillow": "13.0.0", "zlib": "1.3.1"}),
        ("png", {"pillow": "13.0.1", "zlib": "1.3.1"}),
    ]
    paths = []
    for index, (method, versions) in enumerate(jobs):
        path = tmp_path / f"job{index}.env.json"
        path.write_text(json.dumps({**ENVIRONMENT, "methods": {method: versions}}))
        paths.append(path)
    old = tmp_path / "old.env.json"  # written before the methods reported versions
    old_record = {**ENVIRONMENT, "env_id": "fedcba987654", "lmdb_c": "0.9.31"}
    old.write_text(json.dumps(old_record))
    environments = load.load_environments([*paths, old])
    assert environments["fedcba987654"] == old_record
    joined = environments[ENV_ID]
    assert joined["methods"] == {
        "hdf5": {"h5py": "3.16.0", "hdf5_c": "1.14.6"},
        "lmdb": {"lmdb": "3.0.0", "lmdb_c": "0.9.33"},
        "npy": {},
        "png": {"pillow": ["13.0.0", "13.0.1"], "zlib": "1.3.1"},
    }
    assert {k: joined[k] for k in ENVIRONMENT} == ENVIRONMENT
    assert (joined["h5py"], joined["hdf5_c"], joined["lmdb_c"]) == ("3.16.0", "1.14.6", "0.9.33")
    assert joined["pillow"] == ["13.0.0", "13.0.1"]
