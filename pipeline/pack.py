"""Clean documents -> token rows -> ordered Arrow shards: the stages after cleaning, as one PTransform.

`ToShards` chains them:
1. tokenizer: trained on a fixed-size sample (pipeline.tokenize.TrainTokenizer), saved as tokenizer.json;
2. tokenize in batches; the tokenizer-compression filter drops "tokenize/compression";
3. pack: documents go to pack groups by xxh64(id) % groups, groups = ceil(kept tokens / group_tokens)
   (from the data and the config, never from the worker count); within a group they are sorted by id,
   each ends with [SEP], and
   - cross_documents (default, as cramming): the group's token stream is cut into rows of seq_len with
     no padding; the last < seq_len tokens of each group are dropped (counted as tokens "pack_tail");
   - otherwise: each document is cut into rows on its own, its last row padded with [PAD] and an
     attention_mask column written (padding counted as "padding");
4. order: every row gets a sort key (primary, tie); tie = group << 40 | row index in the group:
   none = as packed; random = xxh64(seed, tie); sentence-length = most "." tokens first (cramming's
   curriculum); unigram = mean log2 unigram probability, likely rows first (add-one smoothed counts of
   all rows; `reverse` puts unlikely rows first);
5. shards: the key range is split at quantiles of a fixed-size key sample (the keys with the smallest
   hash of tie) into ceil(rows / rows_per_shard) partitions; each partition is sorted and written as
   one shard named by its index, so names sort in read order and no process ever holds the corpus;
   `max_rows` keeps the first rows of the global order (counts per partition come as a side input).

The pipeline leaves a summary (shards written, tokens per stage, histograms) in the output folder;
`finish` turns it into report.png and, last, manifest.json, once the run's counts are known.
"""

import bisect
import functools
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import apache_beam as beam
import numpy as np
import xxhash

from pipeline import report, shards
from pipeline.tokenize import (
    SPECIAL_TOKENS,
    Tokenize,
    TokenizedDoc,
    TrainTokenizer,
    load_tokenizer,
    special_ids,
    tokenizer_sha,
)

ORDERS = ("none", "random", "sentence-length", "unigram")
SUMMARY = ".tmp-summary.json"  # what the pipeline hands to `finish`; removed once the manifest exists
TOKENS = "tokens"  # tag of the (stage, token count) side outputs
_TIE_ROW_BITS = 40


@dataclass(frozen=True)
class PackConfig:
    """`pack.*` in the corpus config."""

    seq_len: int = 128
    cross_documents: bool = True  # False: rows never span documents (padding + attention_mask)
    group_tokens: int = 50_000_000  # tokens per pack group (~100 MB held by one worker); each group
    # drops a tail of < seq_len tokens when cross_documents

    def __post_init__(self):
        for field in ("seq_len", "group_tokens"):
            if getattr(self, field) < 1:
                raise ValueError(f"pack.{field}={getattr(self, field)}: must be a positive integer")


def pack_groups(tokens: int, group_tokens: int) -> int:
    """How many pack groups `tokens` kept tokens make: ceil(tokens / group_tokens), at least 1."""
    groups = max(1, math.ceil(tokens / group_tokens))
    if groups >= 1 << (64 - _TIE_ROW_BITS):
        raise ValueError(f"pack.group_tokens={group_tokens}: {groups} pack groups for {tokens} tokens; "
                         f"must be < {1 << (64 - _TIE_ROW_BITS)}, raise pack.group_tokens")
    return groups


@dataclass(frozen=True)
class OrderConfig:
    """`order.*` in the corpus config."""

    name: str = "sentence-length"  # none | random | sentence-length | unigram
    seed: int = 233  # random order
    reverse: bool = False  # unigram: unlikely rows first (cramming's "unigram-curriculum")
    max_rows: int = 0  # keep the first max_rows rows of the order; 0 keeps all

    def __post_init__(self):
        if self.name not in ORDERS:
            raise ValueError(f"order.name={self.name!r}: choose one of {', '.join(ORDERS)}")
        if self.max_rows < 0:
            raise ValueError(f"order.max_rows={self.max_rows}: must be >= 0 (0 keeps all rows)")


@dataclass(frozen=True)
class ShardConfig:
    """`shards.*` in the corpus config."""

    rows_per_shard: int = 262_144  # target; partitions from sampled quantiles are about this size
    key_sample: int = 65_536  # sort keys sampled to place the partition boundaries

    def __post_init__(self):
        for field in ("rows_per_shard", "key_sample"):
            if getattr(self, field) < 1:
                raise ValueError(f"shards.{field}={getattr(self, field)}: must be a positive integer")


# ---- pure steps (numpy; no Beam) -------------------------------------------------------------------

def pack(docs: list[TokenizedDoc], seq_len: int, pad_id: int, cross_documents: bool, dtype):
    """Rows [n, seq_len] from documents sorted by id, an attention mask (None when cross_documents)
    and the number of tokens left out (the tail < seq_len when cross_documents, else 0)."""
    docs = sorted(docs, key=lambda d: d.id)
    if cross_documents:
        stream = np.concatenate([d.ids for d in docs]) if docs else np.zeros(0, np.uint32)
        n = len(stream) // seq_len
        return stream[: n * seq_len].astype(dtype).reshape(n, seq_len), None, len(stream) - n * seq_len
    counts = [-(-len(d.ids) // seq_len) for d in docs]
    rows = np.full((sum(counts), seq_len), pad_id, dtype=dtype)
    mask = np.zeros(rows.shape, dtype=np.uint8)
    flat_rows, flat_mask, at = rows.reshape(-1), mask.reshape(-1), 0
    for d, c in zip(docs, counts, strict=True):
        flat_rows[at : at + len(d.ids)] = d.ids
        flat_mask[at : at + len(d.ids)] = 1
        at += c * seq_len
    return rows, mask, 0


def unigram_logp(counts: np.ndarray) -> np.ndarray:
    """log2 of add-one smoothed unigram probabilities from token counts."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.log2((counts + 1) / (counts.sum() + len(counts)))


def sort_keys(rows: np.ndarray, mask: np.ndarray | None, group: int, order: OrderConfig, dot_id,
              logp: np.ndarray | None):
    """(primary float64 [n], tie uint64 [n]) for the rows of one pack group: the global order sorts by
    (primary, tie). Ties are unique, so the order is total and the same on every runner."""
    tie = (np.uint64(group) << np.uint64(_TIE_ROW_BITS)) + np.arange(len(rows), dtype=np.uint64)
    if order.name == "none":
        primary = np.zeros(len(rows))
    elif order.name == "random":
        seed = order.seed & 0xFFFFFFFFFFFFFFFF
        primary = np.array([float(xxhash.xxh64_intdigest(t.tobytes(), seed) >> 11) for t in tie])
    elif order.name == "sentence-length":
        if dot_id is None:
            raise ValueError("order sentence-length needs a '.' token, and the tokenizer has none")
        primary = -(rows == dot_id).sum(axis=1).astype(np.float64)
    else:
        mean = np.empty(len(rows))
        for i in range(0, len(rows), 1 << 14):  # in chunks: logp of a whole group would be 8 bytes/token
            chunk = slice(i, i + (1 << 14))
            lp = logp[rows[chunk]]
            if mask is None:
                mean[chunk] = lp.mean(axis=1)
            else:
                mean[chunk] = (lp * mask[chunk]).sum(axis=1) / np.maximum(mask[chunk].sum(axis=1), 1)
        primary = mean if order.reverse else -mean
    return primary, tie


def boundaries(sample: list[tuple], total: int, rows_per_shard: int) -> list[tuple]:
    """Partition boundaries: the keys at the quantiles of the sorted sample that cut `total` rows into
    about rows_per_shard each (key k goes to partition bisect_right(boundaries, k))."""
    keys = sorted(k for _, k in sample)
    parts = min(max(1, math.ceil(total / rows_per_shard)), max(1, len(keys)))
    return [keys[i * len(keys) // parts] for i in range(1, parts)]


# ---- Beam ------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _tokenizer_info(tokenizer_json: str) -> dict:
    """vocab_size, row dtype and the pad/sep/dot ids of a tokenizer (parsed once per worker)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    size = tok.get_vocab_size(with_added_tokens=True)
    return {"vocab_size": size, "dtype": shards.dtype_for_vocab(size), **special_ids(tok)}


class _PackGroupFn(beam.DoFn):
    """(group, docs) -> one (group, rows, mask) block; token counts to the TOKENS output."""

    def __init__(self, cfg: PackConfig):
        self.cfg = cfg

    def process(self, element, tokenizer_json: str):
        group, docs = element
        docs = list(docs)
        info = _tokenizer_info(tokenizer_json)
        rows, mask, tail = pack(docs, self.cfg.seq_len, info["pad"], self.cfg.cross_documents, info["dtype"])
        yield beam.pvalue.TaggedOutput(TOKENS, ("kept", int(sum(len(d.ids) for d in docs))))
        yield beam.pvalue.TaggedOutput(TOKENS, ("pack_tail", int(tail)))
        yield beam.pvalue.TaggedOutput(TOKENS, ("padding", 0 if mask is None else int(mask.size - mask.sum())))
        yield beam.pvalue.TaggedOutput(TOKENS, ("packed", int(rows.size)))
        if len(rows):
            yield group, rows, mask


def _token_counts(block, vocab_size: int) -> np.ndarray:
    _, rows, mask = block
    flat = rows.reshape(-1) if mask is None else rows[mask.astype(bool)]
    return np.bincount(flat, minlength=vocab_size).astype(np.int64)


class _SumArrays(beam.CombineFn):
    def create_accumulator(self):
        return None

    def add_input(self, acc, x):
        return x.copy() if acc is None else acc + x

    def merge_accumulators(self, accs):
        accs = [a for a in accs if a is not None]
        return sum(accs[1:], accs[0].copy()) if accs else None

    def extract_output(self, acc):
        return acc


def _keyed_rows(block, order: OrderConfig, tokenizer_json: str, counts):
    """One (primary, tie, row bytes, mask bytes or None) per row of a block."""
    group, rows, mask = block
    dot = _tokenizer_info(tokenizer_json)["dot"]
    logp = unigram_logp(counts) if order.name == "unigram" else None
    primary, tie = sort_keys(rows, mask, group, order, dot, logp)
    for i in range(len(rows)):
        yield float(primary[i]), int(tie[i]), rows[i].tobytes(), None if mask is None else mask[i].tobytes()


class _WriteShardFn(beam.DoFn):
    """(partition, rows) -> the shard's manifest entry, rows sorted by key and capped by max_rows."""

    def __init__(self, out_dir: str, seq_len: int, max_rows: int):
        self.out_dir, self.seq_len, self.max_rows = out_dir, seq_len, max_rows

    def process(self, element, part_rows: dict, tokenizer_json: str):
        start = time.perf_counter()
        part, items = element
        items = sorted(items, key=lambda r: (r[0], r[1]))
        keep = len(items)
        if self.max_rows:
            before = sum(n for p, n in part_rows.items() if p < part)
            keep = max(0, min(keep, self.max_rows - before))
        yield beam.pvalue.TaggedOutput(TOKENS, ("capped", (len(items) - keep) * self.seq_len))
        if keep == 0:
            return
        dtype = _tokenizer_info(tokenizer_json)["dtype"]
        items = items[:keep]
        rows = np.frombuffer(b"".join(r[2] for r in items), dtype=dtype).reshape(keep, self.seq_len)
        mask = None
        if items[0][3] is not None:
            mask = np.frombuffer(b"".join(r[3] for r in items), dtype=np.uint8).reshape(keep, self.seq_len)
        entry = shards.write_shard(Path(self.out_dir) / shards.SHARD_NAME.format(part), rows, mask)
        entry["tokens"] = int(rows.size if mask is None else mask.sum())
        entry["seconds"] = time.perf_counter() - start
        yield entry


class _Histograms(beam.CombineFn):
    """Fixed-bin histograms (pipeline.report.EDGES) of (chars, tokens, zstd ratio) per document."""

    def create_accumulator(self):
        return {name: np.zeros(len(e) - 1, np.int64) for name, e in report.EDGES.items()}

    def add_input(self, acc, stat):
        return self.add_inputs(acc, [stat])

    def add_inputs(self, acc, stats):
        stats = np.array(list(stats), dtype=np.float64).reshape(-1, 3)
        if len(stats):
            acc["doc_chars"] += report.histogram("doc_chars", stats[:, 0])
            acc["tokens_per_char"] += report.histogram("tokens_per_char", stats[:, 1] / np.maximum(stats[:, 0], 1))
            acc["zstd_ratio"] += report.histogram("zstd_ratio", stats[:, 2])
        return acc

    def merge_accumulators(self, accs):
        accs = list(accs)
        out = accs[0]
        for a in accs[1:]:
            for k in out:
                out[k] = out[k] + a[k]
        return out

    def extract_output(self, acc):
        return {k: v.tolist() for k, v in acc.items()}


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)


def counts_of(stats: dict) -> dict:
    """The counts of a pipeline.stats dict that belong in a manifest: no timings, the same every run."""
    stages = {name: {k: v for k, v in s.items() if k in ("docs", "chars")}
              for name, s in stats.get("stages", {}).items()}
    files = stats.get("files", {})
    return {"documents": stats.get("documents", {}), "dropped": stats.get("dropped", {}),
            "stages": {name: s for name, s in stages.items() if s},
            "files": {k: files[k] for k in ("count", "bytes_in", "repaired", "failed") if k in files}}


class ToShards(beam.PTransform):
    """PCollection[Doc] (clean, normalized) -> (summary, PCollection[Drop]): writes tokenizer.json,
    the shards and a summary into `out_dir` (a new, empty folder); `finish` completes the set once the
    run's counts are known. `cfg` is the corpus config (its tokenizer, pack, order and shards
    sections are used). Also set by expand: `kept` (the documents that were tokenized, as Doc),
    `shards` (one manifest entry per shard written, plus its "seconds") and `seconds` (("tokenize", s))."""

    def __init__(self, out_dir, cfg):
        super().__init__()
        self.out_dir = str(out_dir)
        self.tok_cfg, self.pack_cfg, self.order_cfg, self.shard_cfg = cfg.tokenizer, cfg.pack, cfg.order, cfg.shards
        self.kept = self.shards = self.seconds = None

    def expand(self, docs):
        out, order, pack_cfg = Path(self.out_dir), self.order_cfg, self.pack_cfg
        tok_json = docs | "Tokenizer" >> TrainTokenizer(self.tok_cfg)
        tok_side = beam.pvalue.AsSingleton(tok_json)
        saved = tok_json | "SaveTokenizer" >> beam.Map(
            lambda t: (_write_text(out / shards.TOKENIZER, t), tokenizer_sha(t))[1])

        tokenize = Tokenize(self.tok_cfg, tok_json)
        kept, dropped = docs | "Tokenize" >> tokenize
        stats = tokenize.stats
        groups = (kept
                  | "KeptTokens" >> beam.Map(lambda d: len(d.ids))
                  | "SumKept" >> beam.CombineGlobally(sum)
                  | "Groups" >> beam.Map(pack_groups, pack_cfg.group_tokens))
        packed = (kept
                  | "ToGroup" >> beam.Map(lambda d, n: (xxhash.xxh64_intdigest(d.id.encode()) % n, d),
                                          beam.pvalue.AsSingleton(groups))
                  | "GroupDocs" >> beam.GroupByKey()
                  | "Pack" >> beam.ParDo(_PackGroupFn(pack_cfg), tok_side).with_outputs(TOKENS, main="rows"))
        blocks = packed.rows
        counts = (blocks
                  | "CountTokens" >> beam.Map(
                      lambda b, t: _token_counts(b, _tokenizer_info(t)["vocab_size"]), tok_side)
                  | "SumCounts" >> beam.CombineGlobally(_SumArrays()))
        keyed = blocks | "SortKeys" >> beam.FlatMap(_keyed_rows, order, tok_side, beam.pvalue.AsSingleton(counts))
        total = keyed | "CountRows" >> beam.combiners.Count.Globally()
        bounds = (keyed
                  | "KeyHash" >> beam.Map(lambda r: (xxhash.xxh64_intdigest(str(r[1]).encode()), (r[0], r[1])))
                  | "SampleKeys" >> beam.combiners.Top.Smallest(self.shard_cfg.key_sample)
                  | "Boundaries" >> beam.Map(boundaries, beam.pvalue.AsSingleton(total),
                                             self.shard_cfg.rows_per_shard))
        parted = keyed | "Partition" >> beam.Map(
            lambda r, b: (bisect.bisect_right(b, (r[0], r[1])), r), beam.pvalue.AsSingleton(bounds))
        part_rows = (parted
                     | "PartOnes" >> beam.Map(lambda kv: (kv[0], 1))
                     | "PartRows" >> beam.CombinePerKey(sum))
        written = (parted
                   | "GroupRows" >> beam.GroupByKey()
                   | "WriteShards" >> beam.ParDo(
                       _WriteShardFn(self.out_dir, pack_cfg.seq_len, order.max_rows),
                       beam.pvalue.AsDict(part_rows), tok_side).with_outputs(TOKENS, main="entries"))

        self.kept, self.shards, self.seconds = tokenize.docs, written.entries, tokenize.seconds
        encoded = stats | "EncodedTokens" >> beam.Map(lambda s: ("encoded", s[1]))
        tokens = ((encoded, packed[TOKENS], written[TOKENS])
                  | "AllTokens" >> beam.Flatten()
                  | "SumTokens" >> beam.CombinePerKey(sum)
                  | "TokensDict" >> beam.combiners.ToDict())
        hists = stats | "Histograms" >> beam.CombineGlobally(_Histograms())
        entries = written.entries | "Entries" >> beam.combiners.ToList()
        summary = (entries
                   | "Summary" >> beam.Map(self._summary, beam.pvalue.AsSingleton(tokens),
                                           beam.pvalue.AsSingleton(hists), tok_side,
                                           beam.pvalue.AsSingleton(groups), beam.pvalue.AsSingleton(saved)))
        return summary, dropped

    def _summary(self, entries, tokens, hists, tokenizer_json, groups, _saved):
        entries = sorted(({k: v for k, v in e.items() if k != "seconds"} for e in entries),
                         key=lambda e: e["file"])
        tokens = dict(sorted(tokens.items()))
        tokens["written"] = sum(e.pop("tokens") for e in entries)
        summary = {"shards": entries, "tokens": tokens, "histograms": hists, "groups": groups,
                   "vocab_size": _tokenizer_info(tokenizer_json)["vocab_size"]}
        _write_text(Path(self.out_dir) / SUMMARY, json.dumps(summary))
        return summary


def finish(out_dir, cfg, stats: dict) -> Path:
    """Once ToShards has written the shards: report.png, then manifest.json (last). `cfg` is the corpus
    config (all of it is hashed into the manifest); `stats` the run's accounting (pipeline.stats),
    whose counts, without timings, go into the manifest. Raises EmptyCorpus when no row was written."""
    out_dir, pack_cfg = Path(out_dir), cfg.pack
    path = out_dir / SUMMARY
    if not path.is_file():
        raise shards.ShardError(f"{path}: the pipeline left no summary; it did not finish. Rerun it.")
    summary = json.loads(path.read_text())
    counts = counts_of(stats)
    drops = {reason: d["docs"] for reason, d in counts["dropped"].items()}
    report.write_report(out_dir / "report.png", summary["histograms"], drops, cfg.tokenizer.compression_cutoff)
    columns = ("input_ids",) if pack_cfg.cross_documents else ("input_ids", "attention_mask")
    packing = {"seq_len": pack_cfg.seq_len, "cross_documents": pack_cfg.cross_documents,
               "groups": summary["groups"], "document_end": "[SEP]",
               "tail": "each pack group drops its last < seq_len tokens (tokens.pack_tail)"
               if pack_cfg.cross_documents else "a document's last row is padded with [PAD] (tokens.padding)"}
    tok = load_tokenizer(out_dir / shards.TOKENIZER)
    specials = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS if tok.token_to_id(t) is not None}
    manifest = shards.write_manifest(
        out_dir, seq_len=pack_cfg.seq_len, vocab_size=summary["vocab_size"], shards=summary["shards"],
        config=cfg.to_dict(), order=asdict(cfg.order), packing=packing, counts=counts,
        tokens=summary["tokens"], columns=columns, special_tokens=specials)
    path.unlink()
    return manifest
