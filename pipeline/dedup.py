"""Exact and MinHash near-duplicate removal as Beam PTransforms; the lowest id of each group is kept.

Both take a PCollection[Doc] (normalized text) and return `(kept, dropped)`: PCollection[Doc] and
PCollection[Drop] with reason "dedup/exact" or "dedup/near". Text is never shuffled: only hashes and
ids move, and the documents are split in one pass against a side input that maps each loser's key to
the id it loses to. Every decision is a function of sets of ids, so any runner and worker count gives
the same result.

Near dedup, step by step (`cfg` is a DedupConfig):
1. sign documents in batches (pipeline.minhash) and emit (band key, id) per band;
2. GroupByKey on the band key; a bucket with several ids gives star edges (id -> bucket minimum), so a
   bucket of k documents costs k-1 edges, never k^2 pairs;
3. optionally keep only edges whose exact shingle Jaccard reaches `jaccard_threshold` (only candidate
   documents are shingled again, and each star is streamed, not held). With the check on, every member
   of a bucket links to each of the bucket's `anchors` lowest ids, not just the minimum: a false-positive
   minimum fails its checks and would otherwise cut the true duplicates in that bucket apart
   (NeMo-Curator checks against 2 anchors too);
4. connected components by alternating large-star / small-star rounds (Kiveris et al., 2014), unrolled
   `max_cc_rounds` times; each round keeps components intact and moves edges towards the minimum;
5. a document with a smaller neighbour left in the graph is dropped. Once converged each component is a
   star around its lowest id; if the rounds were too few, extra local minima are kept (never fewer)
   and the nodes involved are counted under "cramkit.dedup" / "near_cc_unconverged".
"""

import heapq
import time
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import xxhash
from apache_beam.metrics import Metrics

from pipeline import minhash
from pipeline.document import DROPPED, Doc, Drop
from pipeline.stats import SECONDS

NAMESPACE = "cramkit"  # drop counters, one per reason
INFO = "cramkit.dedup"  # diagnostic counters that are not drops


@dataclass(frozen=True)
class DedupConfig:
    """Settings of both dedup stages (`dedup.*` in the corpus config)."""

    exact: bool = True  # run exact dedup (same normalized text)
    near: bool = True  # run MinHash near dedup
    ngram: int = 5  # words per shingle
    num_perm: int = 112  # MinHash permutations; must equal bands * rows
    bands: int = 14
    rows: int = 8  # 14 x 8: P(candidate) = 0.92 at Jaccard 0.8, 0.21 at 0.6
    seed: int = 1  # seeds the permutations (datasketch's RandomState draw)
    scheme: str = "affine32"  # "affine32" (datasketch default) or "mersenne" (datasketch legacy)
    min_words: int = 10  # shorter documents are left to exact dedup
    jaccard_check: bool = True  # verify candidate pairs by exact shingle Jaccard
    jaccard_threshold: float = 0.8
    anchors: int = 2  # with the Jaccard check: lowest ids of a bucket each member is checked against
    max_cc_rounds: int = 8  # large-star + small-star rounds; a randomly numbered chain of 1,000 docs needs 8
    batch_size: int = 256  # documents signed per numpy batch

    def __post_init__(self):
        def bad(field, why):
            raise ValueError(f"dedup.{field}={getattr(self, field)!r}: {why}")

        for field in ("ngram", "num_perm", "bands", "rows", "batch_size", "anchors"):
            if getattr(self, field) < 1:
                bad(field, "must be a positive integer")
        if self.bands * self.rows != self.num_perm:
            bad("num_perm", f"must equal dedup.bands * dedup.rows = {self.bands * self.rows}")
        if self.scheme not in minhash.SCHEMES:
            bad("scheme", f"must be one of {', '.join(minhash.SCHEMES)}")
        if not 0.0 < self.jaccard_threshold <= 1.0:
            bad("jaccard_threshold", "must be in (0, 1]")
        if self.max_cc_rounds < 0 or self.min_words < 0:
            bad("max_cc_rounds" if self.max_cc_rounds < 0 else "min_words", "must not be negative")


def _text_key(doc: Doc) -> bytes:
    return xxhash.xxh3_128_digest(doc.text.encode("utf-8", "surrogatepass"))


def _doc_id(doc: Doc) -> str:
    return doc.id


class _MinId(beam.CombineFn):
    """(lowest id, count) of the documents sharing a key; lifted before the shuffle."""

    def create_accumulator(self):
        return (None, 0)

    def add_input(self, acc, doc_id):
        return (doc_id if acc[0] is None else min(acc[0], doc_id), acc[1] + 1)

    def merge_accumulators(self, accs):
        ids = [a[0] for a in accs if a[0] is not None]
        return (min(ids) if ids else None, sum(a[1] for a in accs))

    def extract_output(self, acc):
        return acc


class _Split(beam.DoFn):
    """Drop a document when the side input maps its key to another id (the one it loses to)."""

    def __init__(self, reason, key):
        self.reason, self.key = reason, key
        self.dropped = Metrics.counter(NAMESPACE, reason)

    def process(self, doc, winners):
        if winners.get(self.key(doc), doc.id) != doc.id:
            self.dropped.inc()
            yield beam.pvalue.TaggedOutput(DROPPED, Drop(doc.id, self.reason, len(doc.text)))
        else:
            yield doc


def _split(docs, winners, reason, key):
    # The pass-through step is needed: Beam 2.77's FnApiRunner deadlocks ("watermark-pending bundles did
    # not execute") when two side-input ParDos read the same PCollection and one feeds the other's side input.
    docs = docs | f"Before split {reason}" >> beam.Map(lambda d: d)
    out = docs | f"Split {reason}" >> beam.ParDo(_Split(reason, key), beam.pvalue.AsDict(winners)).with_outputs(
        DROPPED, main="kept")
    return out.kept, out[DROPPED]


def _nothing(docs, label):
    return docs | label >> beam.FlatMap(lambda _: ())


class ExactDedup(beam.PTransform):
    """Same normalized text -> keep the lowest id. Shuffles (128-bit text hash, id) through a combiner."""

    def __init__(self, cfg: DedupConfig = DedupConfig()):
        super().__init__()
        self.cfg = cfg

    def expand(self, docs):
        if not self.cfg.exact:
            return docs, _nothing(docs, "ExactOff")
        winners = (docs
                   | "TextHash" >> beam.Map(lambda d: (_text_key(d), d.id))
                   | "LowestId" >> beam.CombinePerKey(_MinId())
                   | "Repeated" >> beam.Filter(lambda kv: kv[1][1] > 1)
                   | "Winner" >> beam.Map(lambda kv: (kv[0], kv[1][0])))
        return _split(docs, winners, "dedup/exact", _text_key)


class _Sign(beam.DoFn):
    """A batch of documents -> (band key, id) for every band of every document long enough to hash,
    and ("near", seconds spent signing) on the SECONDS output."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.short = Metrics.counter(INFO, "near_too_short")

    def setup(self):
        self.hasher = minhash.MinHasher(self.cfg.num_perm, self.cfg.seed, self.cfg.scheme)

    def process(self, batch):
        cfg = self.cfg
        start = time.perf_counter()
        ids, hashes = [], []
        for doc in batch:
            ws = minhash.words(doc.text)
            if len(ws) < max(cfg.min_words, 1):
                self.short.inc()
                continue
            ids.append(doc.id)
            hashes.append(minhash.shingle_hashes(ws, cfg.ngram))
        keyed = [(key, doc_id) for doc_id, sig in zip(ids, self.hasher.sign(hashes), strict=True)
                 for key in minhash.band_keys(sig, cfg.bands, cfg.rows)]
        yield beam.pvalue.TaggedOutput(SECONDS, ("near", time.perf_counter() - start))
        yield from keyed


def _star_edges(bucket, anchors):
    """A bucket's ids -> (id, anchor) edges to each of the `anchors` lowest ids below it, streamed (the
    values are iterated twice)."""
    _, ids = bucket
    lows = heapq.nsmallest(anchors, ids)
    for doc_id in ids:
        for low in lows:
            if low < doc_id:
                yield doc_id, low


class _ShingleSets(beam.DoFn):
    """(id, sorted distinct shingle hashes) for the documents that are candidates, nothing for the rest."""

    def __init__(self, cfg):
        self.ngram = cfg.ngram

    def process(self, doc, candidates):
        if doc.id in candidates:
            yield doc.id, minhash.shingle_set(doc.text, self.ngram).tobytes()


def _with_high_set(joined):
    """Edges keyed by their high end, joined with its shingle set -> (low, (high, set))."""
    high, grouped = joined
    sets = list(grouped["set"])
    for low in grouped["edge"]:
        yield low, (high, sets[0])


class _Verify(beam.DoFn):
    """Keep the edges (high, low) of one star whose exact shingle Jaccard reaches the threshold."""

    def __init__(self, threshold):
        self.threshold = threshold
        self.rejected = Metrics.counter(INFO, "near_pairs_rejected")

    def process(self, joined):
        low, grouped = joined
        low_set = np.frombuffer(next(iter(grouped["set"])), np.uint32)
        for high, high_set in grouped["edge"]:
            if minhash.jaccard(np.frombuffer(high_set, np.uint32), low_set) >= self.threshold:
                yield high, low
            else:
                self.rejected.inc()


def _large_star(node):
    """Connect each larger neighbour of a node to the minimum of its closed neighbourhood."""
    u, nbrs = node
    nbrs = set(nbrs)
    low = min(min(nbrs), u)
    for v in nbrs:
        if v > u:
            yield v, low


def _small_star(node):
    """Connect a node and its smaller neighbours to the minimum of those."""
    u, lows = node
    lows = set(lows)
    low = min(lows)
    yield u, low
    for v in lows:
        if v != low:
            yield v, low


def _count_unconverged(joined):
    """A node that has a label and is the label of others: the rounds stopped before a star formed."""
    _, grouped = joined
    children = list(grouped["children"])
    if children and list(grouped["label"]):
        return [len(children)]
    return []


class NearDedup(beam.PTransform):
    """MinHash LSH near dedup (see the module docstring); keeps the lowest id of each component.
    `.seconds` (set by expand) holds ("near", seconds) of signing per batch for the stats."""

    def __init__(self, cfg: DedupConfig = DedupConfig()):
        super().__init__()
        self.cfg = cfg
        self.seconds = None

    def expand(self, docs):
        cfg = self.cfg
        if not cfg.near:
            return docs, _nothing(docs, "NearOff")
        signed = (docs
                  | "Batch" >> beam.BatchElements(min_batch_size=cfg.batch_size, max_batch_size=cfg.batch_size)
                  | "Sign" >> beam.ParDo(_Sign(cfg)).with_outputs(SECONDS, main="bands"))
        self.seconds = signed[SECONDS]
        edges = (signed.bands
                 | "Buckets" >> beam.GroupByKey()
                 | "StarEdges" >> beam.FlatMap(_star_edges, cfg.anchors if cfg.jaccard_check else 1)
                 | "UniqueEdges" >> beam.Distinct())
        if cfg.jaccard_check:
            edges = self._verified(docs, edges)
        for r in range(cfg.max_cc_rounds):
            edges = (edges
                     | f"LargeStarKeys{r}" >> beam.FlatMap(lambda e: [e, (e[1], e[0])])
                     | f"LargeStarGroup{r}" >> beam.GroupByKey()
                     | f"LargeStar{r}" >> beam.FlatMap(_large_star)
                     | f"SmallStarGroup{r}" >> beam.GroupByKey()
                     | f"SmallStar{r}" >> beam.FlatMap(_small_star))
        labels = edges | "Label" >> beam.CombinePerKey(min)  # (loser, a smaller id in its component)
        unconverged = Metrics.counter(INFO, "near_cc_unconverged")
        _ = ({"label": labels, "children": labels | "ByLabel" >> beam.Map(lambda kv: (kv[1], kv[0]))}
             | "ConvergedJoin" >> beam.CoGroupByKey()
             | "Unconverged" >> beam.FlatMap(_count_unconverged)
             | "CountUnconverged" >> beam.Map(unconverged.inc))
        return _split(docs, labels, "dedup/near", _doc_id)

    def _verified(self, docs, edges):
        candidates = (edges
                      | "Endpoints" >> beam.FlatMap(lambda e: e)
                      | "UniqueEndpoints" >> beam.Distinct()
                      | "AsKeys" >> beam.Map(lambda i: (i, True)))
        sets = docs | "ShingleSets" >> beam.ParDo(_ShingleSets(self.cfg), beam.pvalue.AsDict(candidates))
        by_low = ({"edge": edges, "set": sets}
                  | "JoinHigh" >> beam.CoGroupByKey()
                  | "HighSet" >> beam.FlatMap(_with_high_set))
        return ({"edge": by_low, "set": sets}
                | "JoinLow" >> beam.CoGroupByKey()
                | "Verify" >> beam.ParDo(_Verify(self.cfg.jaccard_threshold)))
