"""WebDataset: tar shards of samples, streamed front to back; an index of member offsets
for random access.

Each image is one sample of two tar members, ``{key}.{ext}`` (the image in the store's
``encoding``: ``raw`` pixels, PNG, JPEG or WebP, see ``imgbench.methods.encoding``) and
``{key}.cls`` (the label as decimal text, the WebDataset convention), with ``key =
f"{index:09d}"`` so that keys sort in index order. The samples fill ``shard-000000.tar``,
``shard-000001.tar``, ... of at most ``shard_bytes`` each (a sample larger than that on
its own gets a shard of its own).

``store`` encodes the images itself, chunk by chunk, and writes each shard with
``webdataset.TarWriter`` given bytes and ``encoder=False``, so webdataset adds no encoding
(no pickling, no re-encoding of images by extension). One ``TarWriter`` per shard rather
than ``ShardWriter``: ``ShardWriter`` counts only member payloads against ``maxsize`` and
closes a shard after it has passed it (headers, padding and the last sample come on top),
cuts shards at 100,000 samples by default and prints a line per shard; here a shard is cut
before the sample that would take the tar file past ``shard_bytes`` (headers, 512-byte
padding, the end-of-archive blocks and the 10240-byte record rounding counted).

After each shard is closed its tar headers are read back (``os.pread`` of each 512-byte
header where the members before it end, its name and size checked against what was
written) for the byte offset and size of every image member's data, and its end checked
against the size it was cut at; ``index.json``, written last (atomically), holds
the count, image shape and dtype, the encoding, the shard names and per sample its shard,
offset, size and label: the index of member offsets that random access needs, like the
index webdataset's ``wids`` builds over shards. A store without ``index.json`` is
incomplete. Building the index is part of ``store`` (and timed with it): without it the
store has no random access.

``read_batches`` is one streaming epoch through ``webdataset.WebDataset`` over the shards
in order (no shard shuffle, no decoding by webdataset, no cache directory), the raw member
bytes decoded with ``encoding.decode``. ``open_reader`` reads a member's bytes with
``os.pread`` at the offset the index gives, from shard files opened on first use.

Options: the encoding's (``encoding`` ``png`` by default; ``quality``, ``lossless``,
``compress_level``, see ``imgbench.methods.encoding``) and ``shard_bytes`` (256 MiB; at least
1 MiB).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from imgbench.methods import batch_bounds, blocks, encoding, indexed_chunks
from imgbench.methods._base import (
    advise_random,
    byte_size,
    check_lengths,
    opener,
    pillow_codec_versions,
    store_header,
)
from imgbench.system.atomic import write_text

DESCRIPTION = "WebDataset tar shards (+ offset index)"
PACKAGES = ("webdataset", "Pillow")
OPTIONS = {**encoding.options("png"), "shard_bytes": 256 << 20}
MIN_SHARD_BYTES = 1 << 20
CHOICES = {**encoding.CHOICES, "shard_bytes": byte_size(MIN_SHARD_BYTES)}
INDEX_FILE = "index.json"
LABEL_EXTENSION = "cls"
# The tar layout (POSIX ustar, as TarWriter writes it).
TAR_BLOCK = 512
TAR_RECORD = 20 * TAR_BLOCK  # a tar file is whole records of 10240 bytes
TAR_END = 2 * TAR_BLOCK  # two zero blocks end the archive
# A fixed member time: the same images give the same shards, byte for byte.
MEMBER_MTIME = 0
# Bytes of index.json per image: shard, offset, size and label as JSON numbers, and at
# most one shard name per image.
INDEX_BYTES_PER_IMAGE = 80


def library_versions() -> dict:
    """The codec libraries under Pillow that the encodings use (PNG's zlib, JPEG's
    libjpeg-turbo, libwebp), those this Pillow has."""
    return pillow_codec_versions()


def _padded(nbytes: int) -> int:
    """A member's data rounded up to whole tar blocks."""
    return -(-int(nbytes) // TAR_BLOCK) * TAR_BLOCK


def _tar_bytes(members_bytes: int) -> int:
    """The size of a tar file whose members (headers and padded data) take
    ``members_bytes``: plus the end-of-archive blocks, rounded up to whole records."""
    return -(-(members_bytes + TAR_END) // TAR_RECORD) * TAR_RECORD


def _sample_bytes(image_bytes: int, label_bytes: int) -> int:
    """A sample's bytes in a shard: a header and the padded data of each of its members."""
    return TAR_BLOCK + _padded(image_bytes) + TAR_BLOCK + _padded(label_bytes)


def disk_bytes(n_images: int, image_bytes: int, options: dict) -> int:
    """Upper bound of the store's bytes on disk: per sample two tar headers, the image at
    most ``encoding.max_encoded_bytes`` and a label of at most 3 digits, each padded to
    512 bytes; per shard the end-of-archive blocks, the record rounding and a block's
    rounding; plus ``index.json``.

    Shards: a shard is cut only when the next sample would take it past ``shard_bytes``,
    so any two neighbouring shards hold more than ``shard_bytes - 11264`` (at least half
    of ``shard_bytes``, which is at least 1 MiB) between them; hence fewer than ``4 *
    samples / shard_bytes + 2`` shards, and never more than one per image."""
    shard_bytes = options["shard_bytes"]
    per_sample = _sample_bytes(encoding.max_encoded_bytes(image_bytes, options), 3)
    samples = n_images * per_sample
    shards = min(n_images, 4 * samples // shard_bytes + 2)
    per_shard = TAR_END + TAR_RECORD + 4096
    index = blocks(INDEX_BYTES_PER_IMAGE * n_images + 4096)
    return samples + shards * per_shard + index


def _key(index: int) -> str:
    return f"{index:09d}"


def _shard_name(number: int) -> str:
    return f"shard-{number:06d}.tar"


def _label_text(label) -> bytes:
    return str(int(label)).encode("ascii")


def _samples(images, labels: np.ndarray, options: dict) -> Iterator[tuple[int, dict]]:
    """``(index, sample)`` for every image, front to back, chunk by chunk: the sample as
    ``TarWriter`` takes it with ``encoder=False`` (members as bytes)."""
    extension = encoding.EXTENSIONS[options["encoding"]]
    encode = encoding.encoder(options)
    for start, chunk in indexed_chunks(images):
        for index, image in enumerate(chunk, start=start):
            yield (
                index,
                {
                    "__key__": _key(index),
                    extension: encode(image),
                    LABEL_EXTENSION: _label_text(labels[index]),
                },
            )


class _Shard:
    """One shard being written: a file, webdataset's ``TarWriter`` on it, what went in
    (each sample's index and member sizes) and the bytes the tar file will take when
    closed (kept to cut shards at ``shard_bytes``)."""

    def __init__(self, path: Path, extension: str):
        import webdataset

        self.path = path
        self.extension = extension
        self.handle = open(path, "wb")  # noqa: SIM115 - open across writes, closed in close()
        self.writer = webdataset.TarWriter(self.handle, encoder=False, mtime=MEMBER_MTIME)
        self.members_bytes = 0
        self.samples: list[tuple[int, int, int]] = []  # index, image and label bytes

    def fits(self, sample_bytes: int, shard_bytes: int) -> bool:
        """Whether a sample of ``sample_bytes`` keeps the shard within ``shard_bytes``
        (an empty shard takes any sample)."""
        return not self.samples or _tar_bytes(self.members_bytes + sample_bytes) <= shard_bytes

    def write(self, index: int, sample: dict, sample_bytes: int) -> None:
        self.writer.write(sample)
        self.members_bytes += sample_bytes
        self.samples.append((index, len(sample[self.extension]), len(sample[LABEL_EXTENSION])))

    def members(self) -> list[tuple[str, int]]:
        """``(name, size)`` of every member in the order ``TarWriter`` wrote them (each
        sample's members sorted by suffix)."""
        image_first = self.extension < LABEL_EXTENSION
        members = []
        for index, image_bytes, label_bytes in self.samples:
            image = (f"{_key(index)}.{self.extension}", image_bytes)
            label = (f"{_key(index)}.{LABEL_EXTENSION}", label_bytes)
            members += [image, label] if image_first else [label, image]
        return members

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.handle.close()


def _header_fields(header: bytes) -> tuple[str, int]:
    """Name and size of a POSIX ustar header block (name: bytes 0-99, NUL-terminated;
    size: bytes 124-135 in octal digits)."""
    name = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
    try:
        size = int(header[124:136].strip(b"\0 ") or b"0", 8)
    except ValueError:
        size = -1
    return name, size


def _member_offsets(path: Path, members: list[tuple[str, int]]) -> list[int]:
    """The data offset of each of ``members`` (``(name, size)`` in the order written) in
    the closed tar file ``path``, read back from its headers: the header at the end of
    the members before it must name the member and give its size; after the last, the
    end-of-archive blocks and nothing but the record rounding. A few bytes read per member
    with ``os.pread`` (``tarfile`` parses each header in Python, which on a shard of small
    images took as long as writing it)."""
    offsets = []
    fd = os.open(path, os.O_RDONLY)
    try:
        position = 0
        for name, size in members:
            found = _header_fields(os.pread(fd, TAR_BLOCK, position))
            if found != (name, size):
                raise RuntimeError(
                    f"{path}: the tar header at byte {position} is {found[0]!r} of {found[1]} "
                    f"bytes, {name!r} of {size} was written"
                )
            offsets.append(position + TAR_BLOCK)
            position += TAR_BLOCK + _padded(size)
        end = os.pread(fd, TAR_END, position)
        if end != bytes(TAR_END) or os.fstat(fd).st_size != _tar_bytes(position):
            raise RuntimeError(f"{path} does not end where its {len(members)} members do")
    finally:
        os.close(fd)
    return offsets


def store(
    store_dir: Path,
    images,
    labels: np.ndarray,
    *,
    options: dict,
) -> None:
    shard_bytes = options["shard_bytes"]
    check_lengths(images, labels)
    store_dir = Path(store_dir)
    extension = encoding.EXTENSIONS[options["encoding"]]
    shard_names: list[str] = []
    columns = {"shard": [], "offset": [], "size": [], "label": []}

    def finish(shard: _Shard) -> None:
        """Close the shard, read its headers back and add its samples to the index."""
        shard.close()
        members = shard.members()
        names = [name for name, _ in members]
        offsets = dict(zip(names, _member_offsets(shard.path, members), strict=True))
        for index, image_bytes, _ in shard.samples:
            columns["shard"].append(len(shard_names))
            columns["offset"].append(offsets[f"{_key(index)}.{extension}"])
            columns["size"].append(image_bytes)
            columns["label"].append(int(labels[index]))
        shard_names.append(shard.path.name)

    shard = None
    try:
        for index, sample in _samples(images, labels, options):
            size = _sample_bytes(len(sample[extension]), len(sample[LABEL_EXTENSION]))
            if shard is not None and not shard.fits(size, shard_bytes):
                finish(shard)
                shard = None
            if shard is None:
                shard = _Shard(store_dir / _shard_name(len(shard_names)), extension)
            shard.write(index, sample, size)
        if shard is not None:
            finish(shard)
            shard = None
    finally:
        if shard is not None:  # an error midway: close the file, the store stays incomplete
            shard.close()
    index = store_header(
        images,
        labels,
        **encoding.store_fields(options),
        extension=extension,
        shards=shard_names,
        samples=columns,
    )
    write_text(json.dumps(index, separators=(",", ":")), store_dir / INDEX_FILE)


def _load_index(store_dir: Path) -> dict:
    path = Path(store_dir) / INDEX_FILE
    if not path.exists():
        raise FileNotFoundError(f"{store_dir} has no {INDEX_FILE}: the wds store is incomplete")
    with open(path) as handle:
        index = json.load(handle)
    index["shape"] = tuple(index["shape"])
    return index


def _labels(index: dict) -> np.ndarray:
    return np.array(index["samples"]["label"], dtype=index["labels_dtype"])


def _shard_urls(store_dir: Path, index: dict) -> list[str]:
    """The shards as the absolute paths WebDataset opens. Its opener takes the path part
    of ``urlparse(url)``, so a path with ``?``, ``#`` or ``;`` would open another file:
    refused."""
    directory = os.path.abspath(store_dir)
    urls = [os.path.join(directory, name) for name in index["shards"]]
    for url in urls:
        if urlparse(url).path != url:
            raise ValueError(
                f"WebDataset cannot open {url!r} (it reads shard names as URLs); "
                "move the store to a path without '?', '#' or ';'"
            )
    return urls


def _closing(opener):
    """Webdataset's shard opener, closing each shard file once the tar reader has moved
    on to the next (or the epoch ended): its own opener leaves every file to the garbage
    collector, which warns (``ResourceWarning: unclosed file``)."""

    def stage(urls):
        for source in opener(urls):
            try:
                yield source
            finally:
                source["stream"].close()

    return stage


def _stream(urls: list[str]):
    """One pass over the shards in order with webdataset's own streaming reader: no shard
    shuffle, no node or worker split (this process reads every shard), no decoding, no
    cache directory, a fixed seed (webdataset otherwise draws one from ``random``); its
    opener wrapped to close each shard file when done with it."""
    import webdataset
    from webdataset import cache

    dataset = webdataset.WebDataset(
        urls,
        shardshuffle=False,
        nodesplitter=None,
        workersplitter=None,
        empty_check=False,
        cache_dir=None,
        seed=0,
    )
    stages = dataset.pipeline
    if any(isinstance(stage, cache.FileCache) for stage in stages):
        dataset.close()
        raise RuntimeError(
            "webdataset would copy the shards to a cache directory (WDS_CACHE is set); "
            "unset WDS_CACHE and WDS_CACHE_SIZE to read the store itself"
        )
    openers = [i for i, stage in enumerate(stages) if isinstance(stage, cache.StreamingOpen)]
    if len(openers) != 1:
        dataset.close()
        raise RuntimeError(f"webdataset's pipeline has {len(openers)} shard openers, expected 1")
    stages[openers[0]] = _closing(stages[openers[0]])
    return dataset


def _streamed(store_dir: Path, index: dict) -> Iterator[tuple[bytes, int]]:
    """``(image bytes, label)`` of every sample, front to back, as ``WebDataset`` streams
    them from the shards; checks that the samples come in the index's order and number."""
    count, extension = index["count"], index["extension"]
    if not count:
        return
    dataset = _stream(_shard_urls(store_dir, index))
    samples = iter(dataset)
    try:
        position = 0
        for sample in samples:
            key = sample.get("__key__")
            if position >= count or key != _key(position):
                expected = f"sample {_key(position)}" if position < count else "the end"
                raise ValueError(
                    f"wds store {store_dir} streamed sample {key!r} where {expected} belongs "
                    f"(its index lists {count} samples)"
                )
            if extension not in sample or LABEL_EXTENSION not in sample:
                raise ValueError(
                    f"wds store {store_dir}: sample {key} lacks its .{extension} or "
                    f".{LABEL_EXTENSION} member"
                )
            yield sample[extension], int(sample[LABEL_EXTENSION])
            position += 1
        if position != count:
            raise ValueError(
                f"wds store {store_dir} streamed {position} samples, its index lists {count}"
            )
    finally:
        samples.close()
        dataset.close()


def _fill(samples, images: np.ndarray, labels: np.ndarray, index: dict) -> None:
    """Decode the next ``len(images)`` streamed samples into ``images`` and ``labels``
    (with the encoding and codec the store's ``index`` records)."""
    shape = images.shape[1:]
    encoding_name, codec = index["encoding"], index.get("codec")
    # Not strict: the range ends first and the rest of the stream stays for later; a
    # stream that ends early raises in ``_streamed`` itself.
    for position, (data, label) in zip(range(len(images)), samples, strict=False):
        images[position] = encoding.decode(data, encoding_name, shape, codec)
        labels[position] = label


def read_batches(store_dir: Path, batch_images: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch front to back through ``webdataset.WebDataset`` (see ``_streamed``): the
    raw member bytes of each batch decoded into fresh arrays."""
    index = _load_index(store_dir)
    bounds = list(batch_bounds(index["count"], batch_images))
    samples = _streamed(store_dir, index)
    try:
        for start, stop in bounds:
            images = np.empty((stop - start, *index["shape"]), dtype=index["dtype"])
            labels = np.empty(stop - start, dtype=index["labels_dtype"])
            _fill(samples, images, labels, index)
            yield images, labels
        next(samples, None)  # the end of the stream, where its count is checked
    finally:
        samples.close()


def read(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The whole store into one array: one streaming epoch decoded in place."""
    index = _load_index(store_dir)
    images = np.empty((index["count"], *index["shape"]), dtype=index["dtype"])
    labels = np.empty(index["count"], dtype=index["labels_dtype"])
    samples = _streamed(store_dir, index)
    try:
        _fill(samples, images, labels, index)
        next(samples, None)
    finally:
        samples.close()
    return images, labels


def read_path(options: dict) -> str:
    """How the reader reads a batch (the methods table names it per series)."""
    if options["encoding"] == "raw":
        return "pread of each member into the batch, by the offset index"
    return (
        f"pread of each member by the offset index, {options['encoding']} decoded with "
        f"{encoding.codec_name(options)}"
    )


class Reader:
    """Random access by the index: a member's bytes with ``os.pread`` at its offset in its
    shard, decoded. Shard files are opened on first use (in the process that reads, so a
    reader works after fork); without readahead each is advised ``POSIX_FADV_RANDOM``."""

    def __init__(self, store_dir: Path, *, readahead: bool = True):
        index = _load_index(store_dir)
        self.store_dir = Path(store_dir)
        self.readahead = readahead
        self.shape = index["shape"]
        self.dtype = np.dtype(index["dtype"])
        self.encoding = index["encoding"]
        self.codec = index.get("codec")
        self.shards = index["shards"]
        samples = index["samples"]
        self.shard = np.array(samples["shard"], dtype=np.int64)
        self.offset = np.array(samples["offset"], dtype=np.int64)
        self.size = np.array(samples["size"], dtype=np.int64)
        self.labels = _labels(index)
        self.fds: dict[int, int] = {}

    def _fd(self, shard: int) -> int:
        fd = self.fds.get(shard)
        if fd is None:
            fd = os.open(self.store_dir / self.shards[shard], os.O_RDONLY)
            if not self.readahead:
                advise_random(fd)
            self.fds[shard] = fd
        return fd

    def _member(self, index: int) -> bytes:
        size = int(self.size[index])
        data = os.pread(self._fd(int(self.shard[index])), size, int(self.offset[index]))
        if len(data) != size:
            raise ValueError(
                f"wds store {self.store_dir}: image {index} ends {size - len(data)} bytes "
                f"early in {self.shards[int(self.shard[index])]}"
            )
        return data

    def _read_raw_into(self, row: np.ndarray, index: int) -> None:
        """A raw member's bytes with ``os.preadv`` straight into ``row`` (one copy)."""
        size = int(self.size[index])
        if size != row.nbytes:
            raise ValueError(f"a raw image of {size} bytes is not of shape {tuple(self.shape)}")
        got = os.preadv(self._fd(int(self.shard[index])), [row], int(self.offset[index]))
        if got != size:
            raise ValueError(
                f"wds store {self.store_dir}: image {index} ends {size - got} bytes "
                f"early in {self.shards[int(self.shard[index])]}"
            )

    def get(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self.labels)):
            raise IndexError(f"wds store holds images 0..{len(self.labels) - 1}")
        images = np.empty((len(indices), *self.shape), dtype=self.dtype)
        if self.encoding == "raw":
            rows = images.reshape(len(indices), -1).view(np.uint8)
            for position, index in enumerate(indices.tolist()):
                self._read_raw_into(rows[position], index)
            return images, self.labels[indices]
        for position, index in enumerate(indices.tolist()):
            images[position] = encoding.decode(
                self._member(index), self.encoding, self.shape, self.codec
            )
        return images, self.labels[indices]

    def close(self) -> None:
        fds, self.fds = self.fds, {}
        for fd in fds.values():
            os.close(fd)


open_reader = opener(Reader)


def read_units(store_dir: Path) -> list[tuple[int, int]]:
    """The store's natural unit of a streaming read: its shards (the images of each
    shard, from the index; shards hold consecutive images)."""
    shards = np.array(_load_index(store_dir)["samples"]["shard"], dtype=np.int64)
    breaks = np.flatnonzero(np.diff(shards)) + 1
    starts = [0, *breaks.tolist()]
    stops = [*breaks.tolist(), len(shards)]
    return [(a, b) for a, b in zip(starts, stops, strict=True) if b > a]
