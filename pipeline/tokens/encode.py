"""Stage: one unit's clean documents -> token ids, with cramming's tokenizer-compression filter.

Reads the unit's docstore in order, leaves out the documents the dedup decisions removed and those
below the quality cut, encodes in batches (`encode_batch`, each document followed by the document-end
token) and drops documents the tokenizer compresses badly ("tokenize/compression"). The ids of the kept
documents are appended to the unit's token file (row dtype, no header) and their lengths to its lengths
file (uint32), for the packing stage. Returns the counts, the unigram token counts and the report's histograms.
"""

import time
from typing import NamedTuple

import numpy as np
import zstandard

from pipeline.cleaning import quality
from pipeline.duplicates.dedup import losers_of
from pipeline.files import storage
from pipeline.graph import docstore, progress, report
from pipeline.graph.stats import Tally
from pipeline.tokens import shards
from pipeline.tokens.tokenize import DROP_REASON, compression_keep, encode


class Encoded(NamedTuple):
    unit: int
    tokens: int  # tokens kept (each document's ids, [SEP] included)
    docs: int
    rows: int  # rows of seq_len this unit's documents fill when packed one per row set (padded packing)
    counts: np.ndarray  # unigram token counts [vocab]
    hists: dict  # pipeline.graph.report histograms of every encoded document
    tally: Tally


def tokens_file(plan, unit: int) -> str:
    return plan.unit_file(unit, "tokens.bin")


def lengths_file(plan, unit: int) -> str:
    return plan.unit_file(unit, "lengths.bin")


class _Lazy:
    """A file created at its first write: a unit that keeps nothing writes no file (object stores cannot
    hold an empty one)."""

    def __init__(self, path: str):
        self.path, self.f = path, None

    def write(self, data: bytes) -> None:
        if self.f is None:
            self.f = storage.create(self.path)
        self.f.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.f is not None:
            self.f.close()


class Encoder:
    """One unit's encoding with the tokenizer stage's record (pipeline.tokens.tokenize.Vocab)."""

    def __init__(self, cfg, plan, vocab):
        self.cfg, self.plan, self.vocab = cfg, plan, vocab
        self.dtype = shards.dtype_for_vocab(vocab.size)
        self.cctx = zstandard.ZstdCompressor(level=3)

    def __call__(self, scan, decisions, cut=None) -> Encoded:
        cfg, plan, seq_len = self.cfg, self.plan, self.cfg.seq_len
        tally, start = Tally(), time.perf_counter()
        gone = losers_of(scan.unit, decisions)
        scored = None if cut is None else quality.unit_scores(plan, scan.unit)
        counts = np.zeros(self.vocab.size, np.int64)
        hists = {name: np.zeros(len(e) - 1, np.int64) for name, e in report.EDGES.items()}
        kept_tokens = kept_docs = kept_chars = rows = 0
        with _Lazy(tokens_file(plan, scan.unit)) as tokens, _Lazy(lengths_file(plan, scan.unit)) as lengths:
            for ids, _, texts in docstore.batches(plan.unit_file(scan.unit, "docs.arrow"), scan.docs):
                live = ~np.isin(ids, gone)
                if cut is not None:  # below the quality cut: dropped (counted by the quality drops step)
                    live &= quality.lookup(scored, ids) >= cut.threshold
                texts = [t for t, keep in zip(texts, live, strict=True) if keep]
                stats, keep_ids = [], []
                for text, token_ids in zip(texts, encode(self.vocab.tokenizer, texts, self.vocab.end), strict=True):
                    raw = text.encode()
                    stats.append((len(text), len(token_ids), len(self.cctx.compress(raw)) / len(raw) if raw else 0.0))
                    if compression_keep(len(token_ids), len(text), cfg.tokenizer.compression_cutoff):
                        keep_ids.append(token_ids)
                        kept_chars += len(text)
                    else:
                        tally.drop(DROP_REASON, len(text))
                if stats:
                    s = np.array(stats)
                    hists["doc_chars"] += report.histogram("doc_chars", s[:, 0])
                    hists["tokens_per_char"] += report.histogram("tokens_per_char", s[:, 1] / np.maximum(s[:, 0], 1))
                    hists["zstd_ratio"] += report.histogram("zstd_ratio", s[:, 2])
                    tally.count("encoded", int(s[:, 1].sum()), tokens=True)
                if keep_ids:
                    flat = np.concatenate(keep_ids)
                    counts += np.bincount(flat, minlength=self.vocab.size)
                    tokens.write(flat.astype(self.dtype).tobytes())
                    sizes = np.fromiter(map(len, keep_ids), np.uint32, len(keep_ids))
                    lengths.write(sizes.tobytes())
                    kept_tokens += int(sizes.sum())
                    kept_docs += len(keep_ids)
                    rows += int((-(-sizes.astype(np.int64) // seq_len)).sum())
        tally.passed("tokenize", kept_docs, kept_chars)
        tally.count("kept", kept_tokens, tokens=True)
        tally.took("tokenize", time.perf_counter() - start)
        progress.advance("tokenize", plan.units)
        return Encoded(scan.unit, kept_tokens, kept_docs, rows, counts, hists, tally)
