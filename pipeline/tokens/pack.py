"""Packing: the kept documents' token ids -> rows of `seq_len` tokens.

Every document ends with the document-end token ([SEP] for mlm, <|endoftext|> for clm; see
`pack.document_end`). With `cross_documents` (the default, as cramming) the documents, in id order, form
one global token stream, cut into rows with no padding; only the stream's last < seq_len tokens are left
out (counted as tokens "pack_tail"). Row r holds stream tokens [r * seq_len, (r + 1) * seq_len), so the
rows do not depend on how the input was cut into work units: a unit produces the rows that start inside
its part of the stream, reading the first tokens of the units after it where its last row runs on.
Without `cross_documents` each document is cut into rows on its own, its last row padded (counted as
"padding"), and the row lengths give the attention mask. `pack.segments` adds each token's document
number within its row ("segment_ids"), so a trainer can keep attention inside documents.
"""

from dataclasses import dataclass

import numpy as np

from configs import setting
from pipeline.files import storage
from pipeline.tokens.encode import lengths_file, tokens_file


@dataclass(frozen=True)
class PackConfig:
    """`pack.*` in the corpus config (the row length is `seq_len`, beside `objective`)."""

    cross_documents: bool = setting("rows span documents; false: a document starts each row (padding + "
                                    "attention_mask)", True)
    segments: bool = setting("also write segment_ids: each token's document number within its row", False)
    document_end: str | None = setting("the token appended to every document; null: the objective's", None)
    pad: str | None = setting("the padding token (cross_documents false); null: the objective's", None)


def _read(path: str, start: int, count: int, dtype: np.dtype) -> np.ndarray:
    if count <= 0:
        return np.zeros(0, dtype)
    with storage.open_read(path) as f:
        f.seek(start * dtype.itemsize)
        return np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)


ROWS_CHUNK = 1 << 16  # rows a unit produces at a time: 16 MB at 128 x uint16


class Layout:
    """Where each unit's rows sit in the global row order, from the encode stage's counts per unit."""

    def __init__(self, seq_len: int, cfg: PackConfig, tokens: list[int], rows: list[int], docs: list[int]):
        self.seq_len, self.cfg, self.docs = seq_len, cfg, docs
        self.token_starts = np.concatenate([[0], np.cumsum(tokens, dtype=np.int64)])
        if cfg.cross_documents:
            total = int(self.token_starts[-1]) // seq_len
            first = -(-self.token_starts // seq_len)  # the first row starting at or after each unit
            self.row_starts = np.minimum(first, total)
        else:
            self.row_starts = np.concatenate([[0], np.cumsum(rows, dtype=np.int64)])

    @property
    def rows(self) -> int:
        return int(self.row_starts[-1])

    @property
    def tail(self) -> int:
        """Tokens left out at the end of the stream."""
        return int(self.token_starts[-1]) - self.rows * self.seq_len if self.cfg.cross_documents else 0

    def chunks(self, plan, unit: int, dtype: np.dtype, pad_id: int | None):
        """(first row index, rows [n, seq_len], lengths [n] or None, segment ids [n, seq_len] or None) for the
        rows that belong to `unit`, in row order, at most ROWS_CHUNK rows at a time."""
        if self.cfg.cross_documents:
            yield from self._stream_chunks(plan, unit, dtype)
        else:
            yield from self._padded_chunks(plan, unit, dtype, pad_id)

    def stream(self, plan, begin: int, end: int, dtype: np.dtype) -> np.ndarray:
        """Tokens [begin, end) of the global stream, read from the units that hold them."""
        parts = []
        u = int(np.searchsorted(self.token_starts, begin, side="right")) - 1
        while begin < end:
            lo, hi = int(self.token_starts[u]), int(self.token_starts[u + 1])
            if hi > begin:
                take = min(hi, end) - begin
                parts.append(_read(tokens_file(plan, u), begin - lo, take, dtype))
                begin += take
            u += 1
        return np.concatenate(parts) if parts else np.zeros(0, dtype)

    def _segments(self, plan, begin: int, end: int) -> np.ndarray:
        """Segment ids of the rows covering stream [begin, end): a token's document number in its row,
        0 for the document the row starts in."""
        starts = np.zeros(end - begin, np.int64)
        u = int(np.searchsorted(self.token_starts, begin, side="right")) - 1
        while u < len(self.docs) and self.token_starts[u] < end:
            sizes = _read(lengths_file(plan, u), 0, self.docs[u], np.dtype(np.uint32)).astype(np.int64)
            at = self.token_starts[u] + np.concatenate([[0], np.cumsum(sizes)[:-1]]) if len(sizes) else sizes
            at = at[(at >= begin) & (at < end)] - begin
            starts[at] = 1
            u += 1
        rows = starts.reshape(-1, self.seq_len)
        return (np.cumsum(rows, axis=1) - rows[:, :1]).astype(np.uint16)

    def _stream_chunks(self, plan, unit, dtype):
        s = self.seq_len
        for first in range(int(self.row_starts[unit]), int(self.row_starts[unit + 1]), ROWS_CHUNK):
            last = min(first + ROWS_CHUNK, int(self.row_starts[unit + 1]))
            rows = self.stream(plan, first * s, last * s, dtype).reshape(-1, s)  # may run on into later units
            yield first, rows, None, self._segments(plan, first * s, last * s) if self.cfg.segments else None

    def _padded_chunks(self, plan, unit, dtype, pad_id):
        s = self.seq_len
        if pad_id is None:
            raise ValueError(f"pack.cross_documents=false pads rows, and the tokenizer has no "
                             f"{self.cfg.pad!r} token; set pack.pad to one of its tokens")
        lengths = _read(lengths_file(plan, unit), 0, self.docs[unit], np.dtype(np.uint32))
        first, at = int(self.row_starts[unit]), 0
        for begin in range(0, len(lengths), ROWS_CHUNK):  # a document gives at least one row
            sizes = lengths[begin : begin + ROWS_CHUNK].astype(np.int64)
            flat = _read(tokens_file(plan, unit), at, int(sizes.sum()), dtype)
            per_doc = -(-sizes // s)
            rows = np.full((int(per_doc.sum()), s), pad_id, dtype=dtype)
            row_len = np.full(len(rows), s, np.uint16)
            ends = np.cumsum(per_doc)
            row_len[ends - 1] = sizes - (per_doc - 1) * s
            mask = np.arange(s) < row_len[:, None]
            rows[mask] = flat
            yield first, rows, row_len, np.zeros(rows.shape, np.uint16) if self.cfg.segments else None
            first, at = first + len(rows), at + int(sizes.sum())
