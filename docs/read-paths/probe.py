"""The read paths that are not a variant of the workflow, timed side by side: how the
alternatives of docs/read-paths.md were measured (the chosen paths and the variants that
keep the others have harness numbers of their own, docs/configs/read-paths-256.yaml).

Each measurement runs in a process forked for it, as the harness's readers are: the
store opened, the requests served, the store closed, all inside the clock, nothing
checked inside it (each path's answers are checked against the source before it is
timed). ``warm``: the store's files read once before; ``cold``: their pages dropped with
``POSIX_FADV_DONTNEED``. Paths alternate within each repetition, so a disturbance falls on
all of them. Rates are images/s: the median and the range of ``--repeats`` repetitions.

    python docs/read-paths/probe.py --size 256 --images results/data/.../pool_256px_images.npy
    python docs/read-paths/probe.py --size 32 --cifar ../shared/data/cifar-10-mini-python.tar.gz

Groups: npy (memory map against pread), hdf5 (h5py's paths, contiguous and chunked),
zarr (per image and orthogonal selection besides the reader's runs), parquet (row group
sizes against Arrow IPC with ``Table.take``), lmdb (the whole read's loops), profile
(where a single image's read goes in HDF5 and zarr-python; not run by default).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
from imgbench import methods  # noqa: E402
from imgbench.harness import access  # noqa: E402

SHUFFLED, SINGLE = "shuffled", "random_single"
NPY_PREAD_MIN = methods.get_method("npy").PREAD_MIN_IMAGE_BYTES


# --- the alternatives ----------------------------------------------------------------------


def reader_of(method: str, **attributes):
    """The method's own reader, with module attributes set first. The check runs in this
    process, so an attribute set for one path stays set: every path of a method that
    sets one names its value (``NPY_PREAD_MIN``: the module's own)."""

    def factory(store_dir: Path):
        module = methods.get_method(method)
        for name, value in attributes.items():
            setattr(module, name, value)
        return module.open_reader(store_dir)

    return factory


class NpyMapGather:
    """A gather from the memory map for every request (numpy's fancy index, copied)."""

    def __init__(self, store_dir: Path):
        self.images = np.load(Path(store_dir) / "images.npy", mmap_mode="r")
        self.labels = np.load(Path(store_dir) / "labels.npy")

    def get(self, indices):
        indices = np.asarray(indices)
        return np.array(self.images[indices]), self.labels[indices]

    def close(self):
        self.images = None


class ZarrPerImage:
    """One synchronous ``images[i]`` per image."""

    def __init__(self, store_dir: Path):
        from imgbench.methods.zarr import _open

        self.images, labels = _open(Path(store_dir))
        self.labels = labels[:]

    def get(self, indices):
        indices = np.asarray(indices)
        out = np.empty((len(indices), *self.images.shape[1:]), self.images.dtype)
        for position, index in enumerate(indices.tolist()):
            out[position] = self.images[index]
        return out, self.labels[indices]

    def close(self):
        self.images = None


class H5Union:
    """One ``H5Dread`` of the union of the batch's one-image hyperslabs, then reordered."""

    def __init__(self, store_dir: Path):
        import h5py

        self.h5s = h5py.h5s
        self.handle = h5py.File(Path(store_dir) / "images.h5", "r")
        self.images = self.handle["images"]
        self.labels = self.handle["labels"][()]
        self.one = (1, *self.images.shape[1:])

    def get(self, indices):
        indices = np.asarray(indices)
        unique, inverse = np.unique(indices, return_inverse=True)
        space = self.images.id.get_space()
        space.select_none()
        for index in unique.tolist():
            space.select_hyperslab(
                (index,) + (0,) * (len(self.one) - 1), self.one, op=self.h5s.SELECT_OR
            )
        block = np.empty((len(unique), *self.one[1:]), self.images.dtype)
        self.images.id.read(self.h5s.create_simple(block.shape), space, block)
        return block[inverse.reshape(-1)], self.labels[indices]

    def close(self):
        self.handle.close()


class IpcTake:
    """An Arrow IPC file memory-mapped, ``ChunkedArray.take`` of the requested rows."""

    def __init__(self, store_dir: Path):
        import json

        import pyarrow as pa

        self.source = pa.memory_map(str(Path(store_dir) / "images.arrow"), "r")
        self.table = pa.ipc.open_file(self.source).read_all()
        meta = json.loads(self.table.schema.metadata[b"imgbench"])
        self.shape = tuple(meta["shape"])
        self.labels = self.table.column("label").to_numpy()

    def get(self, indices):
        indices = np.asarray(indices)
        taken = self.table.column("image").take(indices).combine_chunks()
        _, offsets, data = taken.buffers()
        first = int(np.frombuffer(offsets, np.int32, count=1, offset=taken.offset * 4)[0])
        size = int(np.prod(self.shape))
        flat = np.frombuffer(data, np.uint8)[first : first + len(indices) * size]
        return flat.reshape(len(indices), *self.shape).copy(), self.labels[indices]

    def close(self):
        self.table = None
        self.source.close()


# --- timing --------------------------------------------------------------------------------


def files(path: Path) -> list[Path]:
    return [p for p in sorted(path.rglob("*")) if p.is_file()]


def make_cold(path: Path) -> None:
    for p in files(path):
        fd = os.open(p, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def make_warm(path: Path) -> None:
    for p in files(path):
        with open(p, "rb") as handle:
            while handle.read(1 << 24):
                pass


def _serve(factory, store_dir, requests, send):
    started = time.perf_counter()
    reader = factory(store_dir)
    for request in requests:
        batch = reader.get(request)
        del batch
    reader.close()
    send.send(time.perf_counter() - started)


def timed_in_child(factory, store_dir: Path, requests: list) -> float:
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_serve, args=(factory, store_dir, requests, send))
    child.start()
    seconds = receive.recv()
    child.join()
    return seconds


def check(factory, store_dir: Path, images: np.ndarray, requests: list) -> None:
    reader = factory(store_dir)
    try:
        for request in requests[:3] + requests[-2:]:
            got, _ = reader.get(request)
            if not np.array_equal(got, images[np.asarray(request)]):
                raise SystemExit(f"{factory} reads wrong images from {store_dir}")
    finally:
        reader.close()


def compare(paths: dict, images: np.ndarray, size: int, repeats: int, reads: int) -> None:
    """``paths``: name -> (store_dir, factory). Prints one line per pattern, cache, path."""
    count = len(images)
    patterns = {
        SHUFFLED: (access.shuffled(count, 64, 0), count),
        SINGLE: (access.random_single(count, reads, 0), reads),
    }
    for pattern, (requests, served) in patterns.items():
        for store_dir, factory in paths.values():
            check(factory, store_dir, images, requests)
        for cache, prepare in (("warm", make_warm), ("cold", make_cold)):
            seconds = {name: [] for name in paths}
            for _ in range(repeats):
                for name, (store_dir, factory) in paths.items():
                    prepare(store_dir)
                    seconds[name].append(timed_in_child(factory, store_dir, requests))
            for name, values in seconds.items():
                rates = sorted(served / s for s in values)
                print(
                    f"| {size} | {pattern} | {cache} | {name} | {np.median(rates):,.0f} "
                    f"[{rates[0]:,.0f}, {rates[-1]:,.0f}] |",
                    flush=True,
                )


def whole_reads(functions: dict, stores: list[Path], images, size: int, repeats: int) -> None:
    for name, function in functions.items():
        if not np.array_equal(function(), images):
            raise SystemExit(f"{name} reads wrong images")
    seconds = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            for store_dir in stores:
                make_warm(store_dir)
            started = time.perf_counter()
            function()
            seconds[name].append(time.perf_counter() - started)
    for name, values in seconds.items():
        ms = sorted(1e3 * s for s in values)
        spread = f"[{ms[0]:.1f}, {ms[-1]:.1f}]"
        print(f"| {size} | whole_array | warm | {name} | {np.median(ms):.1f} ms {spread} |")


# --- the groups ----------------------------------------------------------------------------


def build(root: Path, method: str, name: str, options: dict, images, labels) -> Path:
    store_dir = root / f"{method}-{name}"
    done = store_dir / ".complete"
    if done.exists():
        return store_dir
    shutil.rmtree(store_dir, ignore_errors=True)
    store_dir.mkdir(parents=True)
    methods.store(method, store_dir, images, labels, options)
    os.sync()
    done.write_text("")
    return store_dir


def run_group(group: str, root: Path, images, labels, size: int, repeats: int, reads: int):
    store = lambda method, name="default", options=None: build(  # noqa: E731
        root, method, name, options or {}, images, labels
    )
    if group == "npy":
        npy = store("npy")
        compare(
            {
                "npy: gather from the memory map": (
                    npy,
                    reader_of("npy", PREAD_MIN_IMAGE_BYTES=1 << 62),
                ),
                "npy: pread of each image": (npy, reader_of("npy", PREAD_MIN_IMAGE_BYTES=0)),
                "npy: the reader (as chosen)": (
                    npy,
                    reader_of("npy", PREAD_MIN_IMAGE_BYTES=NPY_PREAD_MIN),
                ),
            },
            images,
            size,
            repeats,
            reads,
        )
    elif group == "hdf5":
        contiguous, chunked = store("hdf5"), store("hdf5", "chunked", {"chunks": "image"})
        selection = store("hdf5", "selection", {"read_path": "selection"})
        compare(
            {
                "hdf5 contiguous: fancy selection": (selection, reader_of("hdf5")),
                "hdf5 contiguous: union of hyperslabs, one read": (contiguous, H5Union),
                "hdf5 contiguous: one hyperslab read per image": (contiguous, reader_of("hdf5")),
                "hdf5 one-image chunks: read_direct_chunk": (chunked, reader_of("hdf5")),
            },
            images,
            size,
            repeats,
            reads,
        )
    elif group == "zarr":
        sharded, unsharded = store("zarr"), store("zarr", "unsharded", {"sharding": False})
        oindex = store("zarr", "oindex", {"read_path": "orthogonal"})
        compare(
            {
                "zarr sharded: oindex": (oindex, reader_of("zarr")),
                "zarr sharded: images[i] per image": (sharded, ZarrPerImage),
                "zarr sharded: runs, gathered (reader)": (sharded, reader_of("zarr")),
                "zarr unsharded: runs, gathered (reader)": (unsharded, reader_of("zarr")),
            },
            images,
            size,
            repeats,
            reads,
        )
    elif group == "parquet":
        paths = {
            f"parquet raw, row groups of {g}": (
                store("parquet", f"raw-rg{g}", {"encoding": "raw", "row_group_images": g}),
                reader_of("parquet"),
            )
            for g in (1024, 100, 16)
        }
        arrow = store("arrow")
        paths["arrow ipc: Table.take"] = (arrow, IpcTake)
        paths["arrow ipc: copy from the map (reader)"] = (arrow, reader_of("arrow"))
        compare(paths, images, size, repeats, reads)
        whole_reads(
            {
                f"parquet raw, row groups of {g}": (
                    lambda p=paths[f"parquet raw, row groups of {g}"][0]: methods.get_method(
                        "parquet"
                    ).read(p)[0]
                )
                for g in (1024, 100, 16)
            },
            [paths[f"parquet raw, row groups of {g}"][0] for g in (1024, 100, 16)],
            images,
            size,
            repeats,
        )
    elif group == "lmdb":
        lmdb, npy = store("lmdb"), store("npy")
        whole_reads(
            {
                "npy: np.load": lambda: methods.get_method("npy").read(npy)[0],
                "lmdb: cursor walk, copy from the map (read)": lambda: methods.get_method(
                    "lmdb"
                ).read(lmdb)[0],
                "lmdb: txn.get per key": lambda: (
                    methods.get_method("lmdb").open_reader(lmdb).get(np.arange(len(images)))[0]
                ),
            },
            [lmdb, npy],
            images,
            size,
            repeats,
        )
    elif group == "profile":
        profile(store("hdf5"), store("npy"), store("zarr"), len(images), reads)
    else:
        raise SystemExit(f"unknown group {group}")


def per_call_us(function, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls * 1e6


def profile(hdf5_store: Path, npy_store: Path, zarr_store: Path, count: int, calls: int) -> None:
    """Where one warm single-image read's time goes: HDF5's selection and ``H5Dread``
    against a ``pread`` of the same bytes; zarr-python's ``images[i]`` and its parts."""
    import cProfile
    import pstats

    import h5py

    make_warm(hdf5_store), make_warm(npy_store), make_warm(zarr_store)
    rng = np.random.default_rng(0)
    handle = h5py.File(hdf5_store / "images.h5", "r")
    dataset = handle["images"]
    one = (1, *dataset.shape[1:])
    space, memory_space = dataset.id.get_space(), h5py.h5s.create_simple(one)
    out = np.empty(one, dataset.dtype)
    origin = (0,) * (len(one) - 1)
    picks = iter(rng.integers(0, count, size=10 * calls).tolist())
    select = per_call_us(lambda: space.select_hyperslab((next(picks), *origin), one), calls)
    read = per_call_us(lambda: dataset.id.read(memory_space, space, out), calls)
    both = per_call_us(
        lambda: (
            space.select_hyperslab((next(picks), *origin), one),
            dataset.id.read(memory_space, space, out),
        ),
        calls,
    )
    offset = dataset.id.get_offset()
    fd = os.open(hdf5_store / "images.h5", os.O_RDONLY)
    row = out.reshape(-1)
    size = row.nbytes
    pread = per_call_us(lambda: os.preadv(fd, [row], offset + next(picks) * size), calls)
    os.close(fd)
    handle.close()
    print(
        f"hdf5, one image of {size:,} bytes, warm, per call: select_hyperslab {select:.1f} us, "
        f"H5Dread {read:.1f} us, both {both:.1f} us; os.preadv of the same bytes {pread:.1f} us"
    )
    reader = reader_of("zarr")(zarr_store)
    single = per_call_us(lambda: reader.get([next(picks)]), calls)
    reader.close()
    print(f"zarr, one image per request through the reader, warm: {single:.0f} us per request")
    # zarr's coroutines run here, on this thread's own event loop (the reader hands them to
    # zarr's loop thread, which cProfile would not see); file reads stay in worker threads
    import asyncio

    from imgbench.methods.zarr import _open

    images, _ = _open(zarr_store)
    array = images.async_array
    indices = rng.integers(0, count, size=calls).tolist()

    async def reads():
        for index in indices:
            await array.getitem(slice(index, index + 1))

    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(asyncio.run, reads())
    elapsed = time.perf_counter() - started
    print(
        f"zarr getitem of one image on this thread's loop, profiled: {elapsed / calls * 1e6:.0f} us"
    )
    pstats.Stats(profiler).sort_stats("tottime").print_stats(10)


def source(args) -> tuple[np.ndarray, np.ndarray]:
    if args.images:
        images = np.load(args.images)
        if images.shape[1] != args.size:
            step = images.shape[1] // args.size
            images = np.ascontiguousarray(images[:, ::step, ::step])
        return images, np.zeros(len(images), np.uint8)
    from imgbench.data import cifar

    images, labels = cifar.load_training_set(Path(args.cifar))
    reps = -(-args.count // len(images))
    return (
        np.tile(images, (reps, 1, 1, 1))[: args.count].copy(),
        np.tile(labels, reps)[: args.count].copy(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--images", help="an (N, S, S, 3) uint8 .npy (a pool of photographs)")
    parser.add_argument("--cifar", help="a CIFAR-10 python archive (32x32)")
    parser.add_argument("--count", type=int, default=20000, help="CIFAR images, tiled")
    parser.add_argument("--stores", default="results/read-paths-probe")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reads", type=int, default=300, help="random single reads")
    parser.add_argument("groups", nargs="*", default=["npy", "hdf5", "zarr", "parquet", "lmdb"])
    args = parser.parse_args()
    images, labels = source(args)
    root = Path(args.stores) / f"{args.size}px"
    print(f"{len(images)} images of {images.shape[1:]}, {args.repeats} repetitions")
    print("| size | pattern | cache | path | images/s (or ms) [range] |\n|---|---|---|---|---|")
    for group in args.groups:
        run_group(group, root, images, labels, args.size, args.repeats, args.reads)


if __name__ == "__main__":
    main()
