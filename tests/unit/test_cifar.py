"""CIFAR-10 archive: loader on tiny official-layout archives, its errors, download, tiling."""

from __future__ import annotations

import collections
import functools
import hashlib
import http.server
import io
import os
import pickle
import socket
import tarfile
import threading

import numpy as np
import pytest
from cifar_fixtures import BATCH_DIR, batch_bytes, make_archive, make_images

from imgbench.data import cifar
from imgbench.data.cifar import DatasetError


def batch_of(data, labels, name: str = "data_batch_3") -> bytes:
    """A protocol-2 batch pickle with arbitrary data and labels (to break one thing)."""
    return pickle.dumps(
        {b"batch_label": name.encode(), b"labels": labels, b"data": data}, protocol=2
    )


def replace_batch(tmp_path, payload: bytes, name: str = "data_batch_3"):
    """An archive whose ``name`` member holds ``payload`` instead of a good batch."""
    path, _, _, _ = make_archive(
        tmp_path / "bad.tar.gz", skip_batches=(name,), extra_members={name: payload}
    )
    return path


class RunsShell:
    """Unpickling this calls os.system(command) (what a tampered archive could do)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


# --- loader --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "batch_sizes",
    [(3, 4, 2, 5, 1), (4, 3, 2, 3, 3), (1, 1, 1, 1, 1), (10, 1, 6, 2, 9), (5, 0, 3, 0, 2)],
    ids=str,
)
def test_load_training_set_returns_the_fixture_images(batch_sizes, tmp_path):
    path, _, images, labels = make_archive(
        tmp_path / "c.tar.gz", batch_sizes, seed=sum(batch_sizes)
    )
    got_images, got_labels = cifar.load_training_set(path)
    assert got_images.shape == (sum(batch_sizes), 32, 32, 3)
    assert got_images.dtype == np.uint8
    assert got_images.flags.c_contiguous
    assert np.array_equal(got_images, images)
    assert got_labels.dtype == np.uint8
    assert got_labels.shape == (sum(batch_sizes),)
    assert np.array_equal(got_labels, labels)


def test_load_training_set_decodes_planes_correctly(tmp_path):
    """R, G, B planes of 1024 bytes each: pixel (row, col) of channel c is byte
    c * 1024 + row * 32 + col (checked on a hand-built image, not via the fixture)."""
    data = np.arange(3072, dtype=np.int64) % 251
    path = replace_batch(tmp_path, batch_of(data.astype(np.uint8)[None], [7]), "data_batch_2")
    images, labels = cifar.load_training_set(path)
    # Default fixture sizes (3, 4, 2, 5, 1) with data_batch_2 replaced by one image.
    _, _, fixture_images, _ = make_archive(tmp_path / "ref.tar.gz")
    assert len(images) == 3 + 1 + 2 + 5 + 1
    image = images[3]
    assert labels[3] == 7
    for channel, row, col in [(0, 0, 0), (0, 5, 17), (1, 0, 1), (2, 31, 31), (1, 12, 3)]:
        assert image[row, col, channel] == (channel * 1024 + row * 32 + col) % 251
    assert np.array_equal(images[:3], fixture_images[:3])
    assert np.array_equal(images[4:], fixture_images[7:])


def test_loader_orders_batches_by_number_not_archive_order(tmp_path):
    """data_batch_1 stored last in the tar still comes first."""
    all_images, all_labels = make_images(4, seed=5)
    moved = batch_bytes(all_images, all_labels, "data_batch_1")
    path, _, rest_images, rest_labels = make_archive(
        tmp_path / "c.tar.gz",
        (4, 2, 2, 2, 2),
        skip_batches=("data_batch_1",),
        extra_members={"data_batch_1": moved},
    )
    images, labels = cifar.load_training_set(path)
    assert np.array_equal(images, np.concatenate([all_images, rest_images]))
    assert np.array_equal(labels, np.concatenate([all_labels, rest_labels]))


def test_loader_ignores_test_batch_and_meta(tiny_archive):
    path, _, images, _ = tiny_archive
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
    assert f"{BATCH_DIR}/test_batch" in names and f"{BATCH_DIR}/batches.meta" in names
    got_images, _ = cifar.load_training_set(path)
    assert len(got_images) == len(images) == 15


# --- loader errors -------------------------------------------------------------------------


def test_missing_archive_names_the_path_and_the_setting(tmp_path):
    missing = tmp_path / "nowhere.tar.gz"
    with pytest.raises(DatasetError, match=r"nowhere\.tar\.gz does not exist.*dataset\.archive"):
        cifar.load_training_set(missing)


@pytest.mark.parametrize("name", ["data_batch_1", "data_batch_4", "data_batch_5"])
def test_missing_batch_member(name, tmp_path):
    path, _, _, _ = make_archive(tmp_path / "c.tar.gz", skip_batches=(name,))
    with pytest.raises(DatasetError, match=rf"has no {BATCH_DIR}/{name}.*official layout"):
        cifar.load_training_set(path)


def test_batch_member_that_is_a_directory(tmp_path):
    path = tmp_path / "c.tar.gz"
    make_archive(path, skip_batches=("data_batch_2",))
    # Rebuild with a directory where data_batch_2 should be.
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w:gz") as tar:
        for member, payload in members:
            tar.addfile(member, io.BytesIO(payload))
        directory = tarfile.TarInfo(f"{BATCH_DIR}/data_batch_2")
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
    with pytest.raises(DatasetError, match=r"has no cifar-10-batches-py/data_batch_2"):
        cifar.load_training_set(path)


def test_truncated_archive(tmp_path):
    path, _, _, _ = make_archive(tmp_path / "c.tar.gz", (20, 20, 20, 20, 20))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match=r"not a readable tar\.gz archive.*download it again"):
        cifar.load_training_set(path)


def test_file_that_is_not_an_archive(tmp_path):
    path = tmp_path / "c.tar.gz"
    path.write_bytes(b"<html>404 not found</html>" * 50)
    with pytest.raises(DatasetError, match=r"not a readable tar\.gz archive"):
        cifar.load_training_set(path)


def test_pickle_with_a_forbidden_class_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": RunsShell(f"touch {marker}"), b"labels": []}, protocol=2)
    # The payload is live: a plain unpickler would run it (checked on another marker).
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(RunsShell(f"touch {control}"), protocol=2))
    assert control.exists()

    path = replace_batch(tmp_path, payload)
    with pytest.raises(DatasetError, match=r"data_batch_3 is not a readable.*refusing to load"):
        cifar.load_training_set(path)
    assert not marker.exists(), "the archive's pickle ran a shell command"


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps({b"data": eval, b"labels": []}, protocol=2),
        pickle.dumps({b"data": collections.OrderedDict(), b"labels": []}, protocol=2),
    ],
    ids=["builtins.eval", "collections.OrderedDict"],
)
def test_pickle_with_other_non_numpy_globals_is_refused(payload, tmp_path):
    path = replace_batch(tmp_path, payload)
    with pytest.raises(DatasetError, match=r"refusing to load"):
        cifar.load_training_set(path)


def test_batch_that_is_not_a_pickle(tmp_path):
    path = replace_batch(tmp_path, b"this is not a pickle")
    with pytest.raises(DatasetError, match=r"batch data_batch_3 is not a readable CIFAR-10 pickle"):
        cifar.load_training_set(path)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (pickle.dumps([1, 2, 3], protocol=2), r"data_batch_3 lacks the keys.*list"),
        (
            pickle.dumps({b"data": 1}, protocol=2),
            r"data_batch_3 lacks the keys b'data' and b'labels'",
        ),
        (
            batch_of(np.zeros((2, 3000), np.uint8), [0, 1]),
            r"data_batch_3 data is uint8\(2, 3000\), expected uint8 \(N, 3072\)",
        ),
        (
            batch_of(np.zeros((2, 3072), np.float32), [0, 1]),
            r"data_batch_3 data is float32\(2, 3072\), expected uint8",
        ),
        (
            batch_of(np.zeros((2, 3, 32, 32), np.uint8), [0, 1]),
            r"data_batch_3 data is uint8\(2, 3, 32, 32\), expected uint8 \(N, 3072\)",
        ),
        (batch_of(np.zeros((3, 3072), np.uint8), [0, 1]), r"data_batch_3 has 2 labels for 3"),
        (
            batch_of(np.zeros((2, 3072), np.uint8), [[0], [1]]),
            r"data_batch_3 has 2 labels for 2 images",
        ),
        (
            batch_of(np.zeros((2, 3072), np.uint8), [3, 10]),
            r"data_batch_3 has labels outside 0\.\.9 \(3\.\.10\)",
        ),
        (
            batch_of(np.zeros((2, 3072), np.uint8), [-1, 4]),
            r"data_batch_3 has labels outside 0\.\.9 \(-1\.\.4\)",
        ),
    ],
    ids=[
        "not-a-dict",
        "missing-labels",
        "short-rows",
        "float-data",
        "4d-data",
        "label-count",
        "2d-labels",
        "label-10",
        "label-minus-1",
    ],
)
def test_malformed_batch(payload, message, tmp_path):
    path = replace_batch(tmp_path, payload)
    with pytest.raises(DatasetError, match=message):
        cifar.load_training_set(path)


# --- md5 -----------------------------------------------------------------------------------


def test_md5_of_matches_hashlib(tiny_archive):
    path, md5, _, _ = tiny_archive
    assert cifar.md5_of(path) == md5 == hashlib.md5(path.read_bytes()).hexdigest()
    assert cifar.md5_of(path, chunk_size=7) == md5


def test_check_md5_accepts_the_right_sum_in_any_case_and_none(tiny_archive):
    path, md5, _, _ = tiny_archive
    cifar.check_md5(path, md5)
    cifar.check_md5(path, md5.upper())
    cifar.check_md5(path, None)


def test_check_md5_mismatch_names_the_setting(tiny_archive):
    path, md5, _, _ = tiny_archive
    wrong = "0" * 32
    with pytest.raises(DatasetError, match=rf"has md5 {md5}, expected {wrong} \(dataset\.md5\)"):
        cifar.check_md5(path, wrong)


# --- download ------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def http_root(tmp_path):
    """(directory, base URL) of a local HTTP server running in a thread."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


def test_download_from_file_url(tiny_archive, tmp_path):
    path, md5, _, _ = tiny_archive
    destination = tmp_path / "data" / "sub" / "cifar-10-python.tar.gz"
    cifar.download(path.as_uri(), destination, md5, progress=False)
    assert destination.read_bytes() == path.read_bytes()
    assert cifar.md5_of(destination) == md5
    assert leftovers(destination.parent) == ["cifar-10-python.tar.gz"]


def test_download_over_http(tiny_archive, http_root, tmp_path):
    path, md5, images, _ = tiny_archive
    root, base = http_root
    (root / "cifar.tar.gz").write_bytes(path.read_bytes())
    destination = tmp_path / "out" / "cifar-10-python.tar.gz"
    cifar.download(f"{base}/cifar.tar.gz", destination, md5, progress=False, timeout=10)
    assert cifar.md5_of(destination) == md5
    assert leftovers(destination.parent) == ["cifar-10-python.tar.gz"]
    assert np.array_equal(cifar.load_training_set(destination)[0], images)


def test_download_without_md5_check(tiny_archive, tmp_path):
    path, _, _, _ = tiny_archive
    destination = tmp_path / "out" / "a.tar.gz"
    cifar.download(path.as_uri(), destination, None, progress=False)
    assert destination.read_bytes() == path.read_bytes()


def test_download_from_unreachable_url(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/cifar-10-python.tar.gz"
    destination = tmp_path / "out" / "cifar-10-python.tar.gz"
    with pytest.raises(DatasetError, match=r"could not download .*127\.0\.0\.1.*dataset\.archive"):
        cifar.download(url, destination, None, progress=False, timeout=5)
    assert leftovers(destination.parent) == []


def test_download_http_404(http_root, tmp_path):
    _, base = http_root
    destination = tmp_path / "out" / "cifar-10-python.tar.gz"
    with pytest.raises(DatasetError, match=r"could not download .*404.*dataset\.archive"):
        cifar.download(f"{base}/missing.tar.gz", destination, None, progress=False, timeout=10)
    assert leftovers(destination.parent) == []


def test_download_md5_mismatch_leaves_no_file(tiny_archive, tmp_path):
    path, md5, _, _ = tiny_archive
    destination = tmp_path / "out" / "cifar-10-python.tar.gz"
    wrong = "f" * 32
    with pytest.raises(DatasetError, match=rf"md5 {md5}, expected {wrong} \(dataset\.md5\)"):
        cifar.download(path.as_uri(), destination, wrong, progress=False)
    assert not destination.exists()
    assert leftovers(destination.parent) == []


def test_download_md5_mismatch_keeps_an_older_file(tiny_archive, tmp_path):
    path, _, _, _ = tiny_archive
    destination = tmp_path / "cifar-10-python.tar.gz"
    destination.write_bytes(b"older")
    with pytest.raises(DatasetError, match=r"dataset\.md5"):
        cifar.download(path.as_uri(), destination, "f" * 32, progress=False)
    assert destination.read_bytes() == b"older"
    assert not destination.with_name(destination.name + ".part").exists()
