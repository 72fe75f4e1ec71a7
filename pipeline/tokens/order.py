"""The curriculum order of the rows, and the shards that hold them in that order.

Every row gets a sort key (primary, row index); the global order sorts by it, and the row index breaks
ties, so the order is total and the same on every runner. `order.name`:
- none: as packed;  random: a seeded hash of the row index;
- sentence-length: most "." tokens first (cramming's shipped curriculum; the default);
- unigram: mean log2 unigram probability (add-one smoothed counts of the tokens in all rows), likely
  rows first;
  `reverse` puts unlikely rows first (cramming's "unigram-curriculum").

Only keys are compared, never rows moved through a shuffle, in three steps:
1. keys (per unit): every k-th row's key (by row index) is sampled, k = rows / shards.key_sample;
2. boundaries (one worker): the sampled keys at the quantiles that cut the rows into shards of about
   `shards.rows_per_shard`;
3. partition (per unit): the unit's rows go to a run partitioned by shard (pipeline.graph.runs), then
   write (per shard): the shard's slice of every run is read, sorted by key and written. `order.max_rows`
   keeps the first rows of the order (the shards before a shard say how many came before it).
"""

import math
from dataclasses import dataclass

import numpy as np

from configs import setting
from pipeline.duplicates import minhash
from pipeline.files import storage
from pipeline.graph import progress, runs
from pipeline.tokens import shards

ORDERS = ("none", "random", "sentence-length", "unigram")


@dataclass(frozen=True)
class OrderConfig:
    """`order.*` in the corpus config."""

    name: str = setting("row order: none | random | sentence-length | unigram", "sentence-length")
    seed: int = setting("seed of the random order", 233)
    reverse: bool = setting("unigram: unlikely rows first (cramming's unigram-curriculum)", False)
    max_rows: int = setting("keep the first max_rows rows of the order; 0 keeps all", 0)

    def __post_init__(self):
        if self.name not in ORDERS:
            raise ValueError(f"order.name={self.name!r}: choose one of {', '.join(ORDERS)}")
        if self.max_rows < 0:
            raise ValueError(f"order.max_rows={self.max_rows}: must be >= 0 (0 keeps all rows)")


@dataclass(frozen=True)
class ShardConfig:
    """`shards.*` in the corpus config."""

    rows_per_shard: int = setting("target rows per shard; partitions from sampled quantiles are about this size",
                                  262_144)
    key_sample: int = setting("sort keys sampled to place the partition boundaries", 65_536)

    def __post_init__(self):
        for field in ("rows_per_shard", "key_sample"):
            if getattr(self, field) < 1:
                raise ValueError(f"shards.{field}={getattr(self, field)}: must be a positive integer")


def unigram_logp(counts: np.ndarray) -> np.ndarray:
    """log2 of add-one smoothed unigram probabilities from token counts."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.log2((counts + 1) / (counts.sum() + len(counts)))


def sort_keys(rows: np.ndarray, lengths: np.ndarray | None, first_row: int, order: OrderConfig, dot_id,
              logp: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(primary float64 [n], row index uint64 [n]) of rows whose first has index `first_row`."""
    tie = np.arange(first_row, first_row + len(rows), dtype=np.uint64)
    if order.name == "none":
        return np.zeros(len(rows)), tie
    if order.name == "random":
        seed = minhash.mix64(np.array([order.seed & 0xFFFFFFFFFFFFFFFF], np.uint64))
        return (minhash.mix64(tie ^ seed) >> np.uint64(11)).astype(np.float64), tie
    if order.name == "sentence-length":
        if dot_id is None:
            raise ValueError("order sentence-length needs a '.' token, and the tokenizer has none")
        return -(rows == dot_id).sum(axis=1).astype(np.float64), tie
    mean = np.empty(len(rows))
    for i in range(0, len(rows), 1 << 14):  # in chunks: logp of many rows at once is 8 bytes per token
        chunk = slice(i, i + (1 << 14))
        lp = logp[rows[chunk]]
        if lengths is None:
            mean[chunk] = lp.mean(axis=1)
        else:
            valid = np.arange(rows.shape[1]) < lengths[chunk, None]
            mean[chunk] = (lp * valid).sum(axis=1) / np.maximum(lengths[chunk], 1)
    return (mean if order.reverse else -mean), tie


def sample_every(total_rows: int, key_sample: int) -> int:
    """k: every k-th row (by index) is sampled, about key_sample rows in all."""
    return max(1, total_rows // key_sample)


def boundaries(samples: list[tuple[np.ndarray, np.ndarray]], total_rows: int, rows_per_shard: int) -> list:
    """Shard boundaries [(primary, row index)]: the sampled keys at the quantiles that cut `total_rows`
    into about rows_per_shard each (a row goes to the number of boundaries at or below its key)."""
    primary = np.concatenate([p for p, _ in samples]) if samples else np.zeros(0)
    tie = np.concatenate([t for _, t in samples]) if samples else np.zeros(0, np.uint64)
    order = np.lexsort((tie, primary))
    keys = list(zip(primary[order].tolist(), tie[order].tolist(), strict=True))
    parts = min(max(1, math.ceil(total_rows / rows_per_shard)), max(1, len(keys)))
    return [keys[i * len(keys) // parts] for i in range(1, parts)]


def partition(primary: np.ndarray, tie: np.ndarray, bounds: list) -> np.ndarray:
    """The shard of each key: how many boundaries are at or below it."""
    part = np.zeros(len(primary), np.int64)
    for bp, bt in bounds:
        part += (primary > bp) | ((primary == bp) & (tie >= np.uint64(bt)))
    return part


def row_dtype(seq_len: int, dtype: np.dtype, padded: bool, segments: bool) -> np.dtype:
    fields = [("primary", "<f8"), ("tie", "<u8"), ("row", dtype, (seq_len,))]
    fields += [("len", "<u2")] if padded else []
    return np.dtype(fields + [("seg", "<u2", (seq_len,))] if segments else fields)


class Keys:
    """The keyed rows of each unit, with what the keys depend on (the tokenizer stage's record
    pipeline.tokens.tokenize.Vocab, the unigram counts)."""

    def __init__(self, cfg, plan, layout, vocab, counts: np.ndarray | None):
        self.cfg, self.plan, self.layout = cfg, plan, layout
        self.dtype = shards.dtype_for_vocab(vocab.size)
        self.pad, self.dot = vocab.pad, vocab.dot
        self.logp = None
        if cfg.order.name == "unigram":  # the counts of the tokens in rows: the stream's tail left out
            end = int(layout.token_starts[-1])
            tail = layout.stream(plan, end - layout.tail, end, self.dtype)
            self.logp = unigram_logp(counts - np.bincount(tail, minlength=len(counts)))
        self.every = sample_every(layout.rows, cfg.shards.key_sample)

    def _keyed(self, unit: int):
        for first, rows, lengths, segments in self.layout.chunks(self.plan, unit, self.dtype, self.pad):
            primary, tie = sort_keys(rows, lengths, first, self.cfg.order, self.dot, self.logp)
            yield rows, lengths, segments, primary, tie

    def sample(self, unit: int) -> tuple[np.ndarray, np.ndarray]:
        """The keys of the unit's rows whose index is a multiple of `every`."""
        primary, tie = [np.zeros(0)], [np.zeros(0, np.uint64)]
        for _, _, _, p, t in self._keyed(unit):
            pick = t % np.uint64(self.every) == 0
            primary.append(p[pick])
            tie.append(t[pick])
        progress.advance("order keys", self.plan.units)
        return np.concatenate(primary), np.concatenate(tie)

    def partition(self, unit: int, bounds: list) -> tuple[list, np.ndarray]:
        """(row runs of the unit partitioned by shard, rows per shard)."""
        parts = len(bounds) + 1
        padded = not self.cfg.pack.cross_documents
        dtype = row_dtype(self.layout.seq_len, self.dtype, padded, self.cfg.pack.segments)
        writer = runs.Writer(self.plan.unit_file(unit, "rows"), dtype, parts)
        counts = np.zeros(parts, np.int64)
        for rows, lengths, segments, primary, tie in self._keyed(unit):
            rec = np.empty(len(rows), dtype)
            rec["primary"], rec["tie"], rec["row"] = primary, tie, rows
            if padded:
                rec["len"] = lengths
            if segments is not None:
                rec["seg"] = segments
            part = partition(primary, tie, bounds)
            writer.add(rec, part)
            counts += np.bincount(part, minlength=parts)
        progress.advance("order rows", self.plan.units)
        return writer.close(), counts


def write_shard(part: int, parts: int, plan, cfg, layout, vocab, row_runs: list, before: int) -> dict:
    """Shard `part` of `parts`: its slice of every row run, sorted by key, capped by order.max_rows
    given the `before` rows of earlier shards, written to the output. Its manifest entry, with "file"
    None when no row is left, and "capped", the tokens the cap left out. `layout`:
    pipeline.tokens.pack.Layout; `vocab`: the tokenizer stage's record (pipeline.tokens.tokenize.Vocab)."""
    seq_len, padded = layout.seq_len, not cfg.pack.cross_documents
    rec = runs.read_all(row_runs, part, row_dtype(seq_len, shards.dtype_for_vocab(vocab.size), padded,
                                                  cfg.pack.segments))
    keep = len(rec) if not cfg.order.max_rows else max(0, min(len(rec), cfg.order.max_rows - before))
    entry = {"file": None, "rows": keep, "capped": (len(rec) - keep) * seq_len, "tokens": 0}
    progress.advance("write shards", parts)
    if keep:
        take = np.lexsort((rec["tie"], rec["primary"]))[:keep]
        rows = np.take(rec["row"], take, axis=0)
        mask = (np.arange(seq_len) < rec["len"][take, None]).astype(np.uint8) if padded else None
        segments = np.take(rec["seg"], take, axis=0) if cfg.pack.segments else None
        del rec
        entry["file"] = shards.SHARD_NAME.format(part)
        with storage.create(storage.join(plan.out, entry["file"])) as f:
            entry.update(shards.write_stream(f, rows, mask, segments))
        entry["tokens"] = int(rows.size if mask is None else mask.sum())
    return entry
