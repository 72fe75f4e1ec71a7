"""Stage 1, one work unit at a time: read -> web cleaning (pipeline.cleaning.webclean, when on) -> normalize
-> filter -> decontam, then stage and sign the survivors.

For every document that passes, the scan writes
- its text to the unit's docstore, and to the unit's tokenizer sample when its sample hash is below
  the plan's threshold (pipeline.graph.docstore);
- an exact-dedup record (128-bit hash of the normalized text, id, characters) to a run partitioned by
  the hash (pipeline.graph.runs);
- with near dedup on and at least `dedup.min_words` words: one record per MinHash band (the band's key,
  the text hash, id, characters) to a run partitioned by band and key.
With decontam.* set, the documents that hold evaluation text are dropped or cut before any of this, and
their matches go to the unit's contamination.jsonl (pipeline.cleaning.decontam finds them,
pipeline.cleaning.contamination records them).
Only a small ScanResult (file names, batch ids, counts) goes back to the pipeline.
"""

import time
from typing import NamedTuple

import numpy as np
import xxhash

from pipeline.cleaning import contamination, decontam
from pipeline.cleaning.filters import Filters
from pipeline.cleaning.normalize import PRESETS
from pipeline.cleaning.webclean import WebClean
from pipeline.document import Doc, Drop
from pipeline.duplicates import minhash
from pipeline.graph import docstore, progress, runs
from pipeline.graph.plan import STAGES, Plan, sample_hash
from pipeline.graph.stats import Tally
from pipeline.reading.inputs import Unit
from pipeline.reading.sources import Reader

EXACT = np.dtype([("h1", "<u8"), ("h2", "<u8"), ("id", "<i8"), ("chars", "<u4")])
BAND = np.dtype([("key", "<u8"), ("text", "<u8"), ("id", "<i8"), ("chars", "<u4")])
BATCH = 512  # documents normalized, filtered and signed together


class ScanResult(NamedTuple):
    unit: int
    docs: list  # first id of each docstore batch (empty: no docstore)
    sample: list  # the same for the tokenizer sample
    exact: list  # run paths
    bands: list  # run paths
    tally: Tally


def text_hash(text: str) -> tuple[int, int]:
    digest = xxhash.xxh3_128_intdigest(text.encode("utf-8", "surrogatepass"))
    return digest >> 64, digest & 0xFFFFFFFFFFFFFFFF


def _batches(items, size):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class Scanner:
    """The per-process state of the scan (language-ID model, MinHash permutations), built once."""

    def __init__(self, cfg, plan: Plan):
        self.cfg, self.plan = cfg, plan
        upto = STAGES.index(plan.until)
        self.normalize = upto >= STAGES.index("normalize")
        self.webclean = WebClean(cfg.webclean) if self.normalize and cfg.webclean.active else None
        self.filters = Filters(cfg.filters) if upto >= STAGES.index("filter") else None
        self.decontam = upto >= STAGES.index("decontam")
        self.matcher = decontam.Matcher.load(plan) if self.decontam and cfg.decontam.enabled else None
        self.exact = cfg.dedup.exact and upto >= STAGES.index("exact")
        self.near = cfg.dedup.near and upto >= STAGES.index("near")
        self.hasher = minhash.MinHasher(cfg.dedup.num_perm, cfg.dedup.seed, cfg.dedup.scheme) if self.near else None

    def __call__(self, unit: Unit) -> ScanResult:
        cfg, plan, tally = self.cfg, self.plan, Tally()
        reader = Reader(cfg.source, cfg.web)
        docs = docstore.Writer(plan.unit_file(unit.index, "docs.arrow"))
        sample = docstore.Writer(plan.unit_file(unit.index, "sample.arrow"))
        exact = runs.Writer(plan.unit_file(unit.index, "exact"), EXACT, plan.exact_parts)
        bands = runs.Writer(plan.unit_file(unit.index, "bands"), BAND, cfg.dedup.bands * plan.band_parts)
        found = contamination.Found(plan.unit_file(unit.index, contamination.FOUND))
        stream = reader.read(unit)
        clock = time.perf_counter()
        for batch in _batches(stream, BATCH):
            now = time.perf_counter()
            tally.took("read", now - clock)
            kept = [d for d in batch if isinstance(d, Doc)]
            for drop in batch:
                if isinstance(drop, Drop):
                    tally.drop(drop.reason, drop.size)
            tally.passed("read", len(kept), sum(len(d.text) for d in kept))
            if any(d.url for d in kept):
                tally.count("web/with_url", sum(1 for d in kept if d.url))
            kept = self._clean(kept, tally, found)
            for doc in kept:
                docs.add(doc)
            self._sign(kept, sample, exact, bands, tally)
            clock = time.perf_counter()
        tally.took("read", time.perf_counter() - clock)
        found.close()
        tally.files += reader.files
        progress.advance("scan", plan.input_bytes, unit.size, unit="B")
        return ScanResult(unit.index, docs.close(), sample.close(), exact.close(), bands.close(), tally)

    def _clean(self, docs: list, tally: Tally, found: contamination.Found) -> list:
        if self.webclean is not None:  # its drops are counted between read and normalize
            start = time.perf_counter()
            docs = self.webclean.apply(docs, tally)
            tally.took("web", time.perf_counter() - start)
        if self.normalize:
            start, fn, out = time.perf_counter(), PRESETS[self.cfg.normalize.preset], []
            for doc in docs:
                text = fn(doc.text)
                if text.strip():
                    out.append(doc._replace(text=text))
                else:
                    tally.drop("normalize/empty", len(doc.text))
            docs = out
            tally.took("normalize", time.perf_counter() - start)
            tally.passed("normalize", len(docs), sum(len(d.text) for d in docs))
        if self.filters is not None:
            start = time.perf_counter()
            docs, dropped = self.filters.apply(docs)
            for doc, reason in dropped:
                tally.drop(reason, len(doc.text))
            tally.took("filter", time.perf_counter() - start)
            tally.passed("filter", len(docs), sum(len(d.text) for d in docs))
        if self.matcher is not None:
            start = time.perf_counter()
            docs, dropped, records = self.matcher.apply(docs)
            for doc, reason in dropped:
                tally.drop(reason, len(doc.text))
            found.add(records)
            tally.took("decontam", time.perf_counter() - start)
        if self.decontam:
            tally.passed("decontam", len(docs), sum(len(d.text) for d in docs))
        return docs

    def _sign(self, docs: list, sample, exact, bands, tally: Tally) -> None:
        if not docs:
            return
        start = time.perf_counter()
        ids = np.fromiter((d.id for d in docs), np.int64, len(docs))
        for doc, below in zip(docs, sample_hash(ids) < np.uint64(self.plan.sample_below), strict=True):
            if below:
                sample.add(doc)
        if not (self.exact or self.near):
            return
        chars = np.fromiter((len(d.text) for d in docs), np.uint32, len(docs))
        hashes = np.array([text_hash(d.text) for d in docs], dtype=np.uint64).reshape(-1, 2)
        if self.exact:
            rec = np.empty(len(docs), EXACT)
            rec["h1"], rec["h2"], rec["id"], rec["chars"] = hashes[:, 0], hashes[:, 1], ids, chars
            exact.add(rec, rec["h1"] % np.uint64(self.plan.exact_parts))
        if self.near:
            self._bands(docs, ids, chars, hashes[:, 0], bands, tally)
        tally.took("sign", time.perf_counter() - start)

    def _bands(self, docs, ids, chars, text_h, bands, tally) -> None:
        cfg, plan = self.cfg.dedup, self.plan
        shingles, keep = [], []
        for i, doc in enumerate(docs):
            ws = minhash.words(doc.text)
            if len(ws) >= max(cfg.min_words, 1):
                shingles.append(minhash.shingle_hashes(ws, cfg.ngram))
                keep.append(i)
        tally.count("near_too_short", len(docs) - len(keep))
        if not keep:
            return
        keys = minhash.band_hashes(self.hasher.sign(shingles), cfg.bands, cfg.rows)  # [n, bands]
        n = len(keep)
        rec = np.empty((n, cfg.bands), BAND)
        rec["key"] = keys
        rec["text"], rec["id"], rec["chars"] = (a[keep][:, None] for a in (text_h, ids, chars))
        parts = np.arange(cfg.bands, dtype=np.int64) * plan.band_parts + (keys % np.uint64(plan.band_parts)).astype(np.int64)
        bands.add(rec.reshape(-1), parts.reshape(-1))
