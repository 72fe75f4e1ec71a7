"""Run files: how bulk records (hashes, ids, token rows) move from one stage to the next.

A run holds fixed-size records (a numpy structured dtype) grouped by partition: a header (magic, then
JSON with the dtype and the partition offsets) followed by the records of partition 0, 1, ... Each work
item of a stage writes its own runs; a work item of the next stage reads its partition from every run,
one contiguous byte range per file. No record goes through a Beam shuffle, and no process holds more
than one partition (or one chunk of a writer), however large the corpus.
"""

import json
import struct

import numpy as np

from pipeline.files import storage

MAGIC = b"CRAMRUN1"
CHUNK_BYTES = 32 << 20  # a writer flushes a run file once it holds this many bytes of records


def write(path: str, records: np.ndarray, parts: np.ndarray, n_parts: int) -> None:
    """Write `records` grouped by `parts` (ints in [0, n_parts)), keeping their order within a partition."""
    order = np.argsort(parts, kind="stable")
    offsets = np.searchsorted(parts[order], np.arange(n_parts + 1), side="left")
    header = json.dumps({"dtype": np.lib.format.dtype_to_descr(records.dtype),
                         "offsets": offsets.tolist()}).encode()
    with storage.create(path) as f:
        f.write(MAGIC + struct.pack("<I", len(header)) + header)
        f.write(np.ascontiguousarray(records[order]).tobytes())


def _header(f) -> tuple[np.dtype, list[int], int]:
    head = f.read(len(MAGIC) + 4)
    if head[: len(MAGIC)] != MAGIC:
        raise ValueError("not a cramkit run file")
    (size,) = struct.unpack("<I", head[len(MAGIC):])
    meta = json.loads(f.read(size))
    descr = meta["dtype"]
    dtype = np.lib.format.descr_to_dtype([tuple(d) for d in descr] if isinstance(descr, list) else descr)
    return dtype, meta["offsets"], len(head) + size


def _slice(f, part: int):
    dtype, offsets, start = _header(f)
    lo, hi = offsets[part], offsets[part + 1]
    f.seek(start + lo * dtype.itemsize)
    return dtype, hi - lo


def read(path: str, part: int) -> np.ndarray:
    """The records of partition `part` of one run."""
    with storage.open_read(path) as f:
        dtype, n = _slice(f, part)
        return np.frombuffer(f.read(n * dtype.itemsize), dtype=dtype)


def read_all(paths, part: int, dtype: np.dtype) -> np.ndarray:
    """Partition `part` of every run, concatenated (an empty array of `dtype` when there is none). Each
    file is opened once (on an object store every open is a request); the pieces are freed as soon as
    they are joined, so the peak is twice the partition."""
    found = [read(p, part) for p in paths]
    found = [f for f in found if len(f)]
    return np.concatenate(found) if found else np.zeros(0, dtype)


class Writer:
    """Collects records with their partitions and writes them as runs `<prefix>-NNN.run`, a new one every
    CHUNK_BYTES of records, so a writer never holds more than that. `close()` returns the paths."""

    def __init__(self, prefix: str, dtype: np.dtype, n_parts: int):
        self.prefix, self.dtype, self.n_parts = prefix, np.dtype(dtype), n_parts
        self.paths: list[str] = []
        self._records, self._parts, self._count = [], [], 0

    def add(self, records: np.ndarray, parts: np.ndarray) -> None:
        if len(records):
            self._records.append(records)
            self._parts.append(np.asarray(parts, dtype=np.int64))
            self._count += len(records)
            if self._count * self.dtype.itemsize >= CHUNK_BYTES:
                self._flush()

    def _flush(self) -> None:
        if self._records:
            path = f"{self.prefix}-{len(self.paths):03d}.run"
            write(path, np.concatenate(self._records), np.concatenate(self._parts), self.n_parts)
            self.paths.append(path)
        self._records, self._parts, self._count = [], [], 0

    def close(self) -> list[str]:
        self._flush()
        return self.paths
