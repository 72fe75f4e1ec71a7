"""Staged documents: the texts that survive a unit's scan, written once, read back in order or by id.

A docstore is an Arrow IPC file (zstd-compressed buffers) of record batches of about BATCH_CHARS
characters, columns `id` (int64, ascending), `name`, `text`, `url` and `date` (web pages; "" elsewhere).
The writer returns the first id of each batch; with it, `fetch` reads only the batches that hold the
wanted ids. Texts move between stages only through these files, never through a Beam shuffle.
"""

import numpy as np
import pyarrow as pa

from pipeline.document import Doc
from pipeline.files import storage

BATCH_CHARS = 1 << 18
SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("text", pa.string()), ("url", pa.string()),
                    ("date", pa.string())])
_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


class Writer:
    """`add(doc)` in ascending id order; `close()` -> the first id of every batch written."""

    def __init__(self, path: str):
        self.path = path
        self.first_ids: list[int] = []
        self._docs: list[Doc] = []
        self._chars = 0
        self._file = self._writer = None

    def add(self, doc: Doc) -> None:
        self._docs.append(doc)
        self._chars += len(doc.text)
        if self._chars >= BATCH_CHARS:
            self._flush()

    def _flush(self) -> None:
        if not self._docs:
            return
        if self._writer is None:
            self._file = storage.create(self.path)
            self._writer = pa.ipc.new_file(pa.PythonFile(self._file, mode="w"), SCHEMA, options=_OPTIONS)
        ids, *strings = zip(*self._docs, strict=True)
        self._writer.write_batch(pa.record_batch([pa.array(ids, pa.int64()), *(pa.array(c, pa.string()) for c in strings)],
                                                 schema=SCHEMA))
        self.first_ids.append(ids[0])
        self._docs, self._chars = [], 0

    def close(self) -> list[int]:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._file.close()
        return self.first_ids


def batches(path: str, first_ids, web: bool = False):
    """Every batch of a docstore in order, as (ids ndarray, names list, texts list), and with `web` also
    (urls list, dates list)."""
    if not first_ids:
        return
    with storage.open_read(path) as f:
        reader = pa.ipc.open_file(pa.PythonFile(f, mode="r"))
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            yield _unpack(batch) + ((batch.column(3).to_pylist(), batch.column(4).to_pylist()) if web else ())


def _unpack(batch: pa.RecordBatch):
    return batch.column(0).to_numpy(), batch.column(1).to_pylist(), batch.column(2).to_pylist()


def fetch(path: str, first_ids, wanted) -> dict[int, str]:
    """{id: text} of the `wanted` ids (all present in the docstore), reading only the batches that hold them."""
    wanted = np.unique(np.asarray(wanted, dtype=np.int64))
    if not len(wanted):
        return {}
    which = np.searchsorted(np.asarray(first_ids, dtype=np.int64), wanted, side="right") - 1
    out = {}
    with storage.open_read(path) as f:
        reader = pa.ipc.open_file(pa.PythonFile(f, mode="r"))
        for b in np.unique(which):
            ids, _, texts = _unpack(reader.get_batch(int(b)))
            for i in np.searchsorted(ids, wanted[which == b]):
                out[int(ids[i])] = texts[i]
    return out
