"""Store locations: variables expanded in the job, manifests checked on the reading host."""

from __future__ import annotations

import json
import socket

import pytest

from imgbench.harness import storeref


def test_resolve_expands_environment_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("IMGBENCH_SCRATCH", str(tmp_path))
    assert storeref.resolve("$IMGBENCH_SCRATCH/stores/png") == tmp_path / "stores" / "png"
    assert storeref.resolve("${IMGBENCH_SCRATCH}/x") == tmp_path / "x"


def test_resolve_makes_relative_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storeref.resolve("results/stores") == tmp_path / "results" / "stores"


def test_resolve_refuses_an_unset_variable(monkeypatch):
    monkeypatch.delenv("IMGBENCH_UNSET_SCRATCH", raising=False)
    with pytest.raises(storeref.StoreLocationError, match=r"\$IMGBENCH_UNSET_SCRATCH.*not set"):
        storeref.resolve("$IMGBENCH_UNSET_SCRATCH/stores")


def test_manifest_roundtrip_and_removal(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "data.bin").write_bytes(b"x" * 100)
    manifest = tmp_path / "store.json"
    storeref.write_manifest(manifest, store)
    record = json.loads(manifest.read_text())
    assert record["host"] == socket.gethostname()
    assert record["fs_type"]
    assert storeref.read_manifest(manifest) == [store]

    kept, removed = storeref.remove(manifest, keep=True)
    assert (kept, removed) == ([store], False) and (store / "data.bin").exists()
    gone, removed = storeref.remove(manifest, keep=False)
    assert (gone, removed) == ([store], True) and not store.exists()


def test_manifest_of_a_job_holding_several_small_stores(tmp_path):
    """A job of several small stores lists them all; one missing fails the read, in one
    sentence naming it; removal takes them all."""
    stores = [tmp_path / str(cutoff) / "repeat1" for cutoff in (1, 10, 100)]
    for store in stores:
        store.mkdir(parents=True)
    manifest = tmp_path / "store.json"
    storeref.write_manifest(manifest, stores)
    assert storeref.read_manifest(manifest) == stores
    assert storeref.remove(manifest, keep=False) == (stores, True)
    assert not any(store.exists() for store in stores)
    stores[1].mkdir(parents=True)
    with pytest.raises(storeref.StoreLocationError, match=rf"store {stores[0]} .* missing"):
        storeref.read_manifest(manifest)


def test_store_written_on_another_host_is_refused(tmp_path):
    manifest = tmp_path / "store.json"
    manifest.write_text(
        json.dumps({"store": str(tmp_path / "absent"), "host": "node-that-wrote-it"})
    )
    with pytest.raises(storeref.StoreLocationError, match="node-that-wrote-it.*job group"):
        storeref.read_manifest(manifest)


def test_missing_store_on_this_host_is_refused(tmp_path):
    manifest = tmp_path / "store.json"
    storeref.write_manifest(manifest, tmp_path / "never-written")
    with pytest.raises(storeref.StoreLocationError, match="missing"):
        storeref.read_manifest(manifest)
