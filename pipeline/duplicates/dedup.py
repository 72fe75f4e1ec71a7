"""Exact and near-duplicate decisions, computed from the small records the scan staged.

Ties go to the lowest id. Only fixed-size records (hashes, ids, lengths) are read, from run files, one
partition per work item; texts are read back from the docstores only to verify candidate pairs. The
losers go to runs partitioned by work unit, which the next stages apply.

Exact (per hash partition): documents with the same 128-bit hash of their normalized text; all but the
lowest id are "dedup/exact".

Near (MinHash LSH, `cfg` a DedupConfig):
1. candidates (per band partition): documents sharing a band key form a bucket. Copies of one text
   (same text hash) count once, as their lowest id, so exact duplicates never become near pairs. Each
   member is linked to the `anchors` lowest ids of its bucket below it: a bucket of k documents gives at
   most anchors * k edges, never k^2 pairs, however large it is (thousands of boilerplate pages).
2. verify (per edge partition, `jaccard_check`): an edge stays when the exact Jaccard of the two
   documents' word n-gram shingle sets reaches `jaccard_threshold`. Edges are processed in chunks, so
   a partition holds at most EDGE_CHUNK edges' texts at once.
3. clusters (one worker, over the verified edges only): a document is removed only when it is a
   verified near-duplicate of a document that is KEPT. Documents are taken by most verified partners
   first, then ascending id (a greedy maximal independent set of the verified graph): the centre of a
   group of copies (the original, similar to each copy) is kept and its copies go, even where two
   copies differ too much to pair with each other. A chain A~B~C~D whose ends share little keeps B
   and D, and pages that merely share a template are never merged through a third page: no
   transitive over-merging. Memory: about 60 bytes per verified edge.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from configs import setting
from pipeline.duplicates import minhash
from pipeline.graph import docstore, progress, runs
from pipeline.graph.scan import BAND, EXACT
from pipeline.graph.stats import Tally

LOSER = np.dtype([("id", "<i8"), ("chars", "<u4")])
EDGE = np.dtype([("lo", "<i8"), ("hi", "<i8"), ("lo_chars", "<u4"), ("hi_chars", "<u4")])
EDGE_CHUNK = 50_000  # edges verified at once


@dataclass(frozen=True)
class DedupConfig:
    """Settings of both dedup stages (`dedup.*` in the corpus config)."""

    exact: bool = setting("run exact dedup (same normalized text)", True)
    near: bool = setting("run MinHash near dedup", True)
    ngram: int = setting("words per shingle", 5)
    num_perm: int = setting("MinHash permutations; must equal bands * rows", 112)
    bands: int = setting("LSH bands: documents sharing a band's hash are candidates", 14)
    rows: int = setting("hashes per band; 14 x 8: P(candidate) = 0.92 at Jaccard 0.8, 0.21 at 0.6", 8)
    seed: int = setting("seeds the permutations (datasketch's RandomState draw)", 1)
    scheme: str = setting("affine32 (datasketch's default) or mersenne (datasketch's legacy)", "affine32")
    min_words: int = setting("shorter documents are left to exact dedup", 10)
    jaccard_check: bool = setting("verify candidate pairs by exact shingle Jaccard", True)
    jaccard_threshold: float = setting("a verified pair reaches this Jaccard of its shingle sets", 0.8)
    anchors: int = setting("with the Jaccard check: lowest ids of a bucket each member is checked against", 2)

    def __post_init__(self):
        def bad(field, why):
            raise ValueError(f"dedup.{field}={getattr(self, field)!r}: {why}")

        for field in ("ngram", "num_perm", "bands", "rows", "anchors"):
            if getattr(self, field) < 1:
                bad(field, "must be a positive integer")
        if self.bands * self.rows != self.num_perm:
            bad("num_perm", f"must equal dedup.bands * dedup.rows = {self.bands * self.rows}")
        if self.scheme not in minhash.SCHEMES:
            bad("scheme", f"must be one of {', '.join(minhash.SCHEMES)}")
        if not 0.0 < self.jaccard_threshold <= 1.0:
            bad("jaccard_threshold", "must be in (0, 1]")
        if self.min_words < 0:
            bad("min_words", "must not be negative")


class Decision(NamedTuple):
    """Losers (runs of LOSER records partitioned by unit) and the tally of their drops."""

    runs: list
    tally: Tally


def _losers(path: str, plan, ids: np.ndarray, chars: np.ndarray) -> list:
    rec = np.empty(len(ids), LOSER)
    rec["id"], rec["chars"] = ids, chars
    runs.write(path, rec, plan.unit_of(rec["id"]), plan.units)
    return [path]


def losers_of(unit: int, decisions) -> np.ndarray:
    """The ids that the decisions remove from one unit, sorted."""
    found = [runs.read(p, unit)["id"] for d in decisions for p in d.runs]
    return np.sort(np.concatenate(found)) if found else np.zeros(0, np.int64)


def exact(part: int, plan, scans) -> Decision:
    """All but the lowest id of each group of equal text hashes in one hash partition."""
    rec = runs.read_all([p for s in scans for p in s.exact], part, EXACT)
    rec = rec[np.lexsort((rec["id"], rec["h2"], rec["h1"]))]
    later = (rec["h1"][1:] == rec["h1"][:-1]) & (rec["h2"][1:] == rec["h2"][:-1])
    gone = rec[1:][later]
    tally = Tally()
    if len(gone):
        tally.drop("dedup/exact", int(gone["chars"].sum()), len(gone))
    progress.advance("exact dedup", plan.exact_parts)
    return Decision(_losers(plan.path("exact", f"losers-{part:05d}.run"), plan, gone["id"], gone["chars"]), tally)


def candidates(part: int, cfg: DedupConfig, plan, scans) -> list:
    """Candidate edges of one band partition, as runs partitioned by their low id (see the module doc)."""
    rec = runs.read_all([p for s in scans for p in s.bands], part, BAND)
    rec = rec[np.lexsort((rec["id"], rec["text"], rec["key"]))]
    first = np.ones(len(rec), bool)
    first[1:] = (rec["key"][1:] != rec["key"][:-1]) | (rec["text"][1:] != rec["text"][:-1])
    rec = rec[first]  # one member per distinct text in a bucket: its lowest id
    rec = rec[np.lexsort((rec["id"], rec["key"]))]
    start = np.ones(len(rec), bool)
    start[1:] = rec["key"][1:] != rec["key"][:-1]
    group_start = np.flatnonzero(start)
    begin = group_start[np.cumsum(start) - 1]  # each member's bucket start
    rank = np.arange(len(rec)) - begin
    parts = []
    for a in range(cfg.anchors if cfg.jaccard_check else 1):
        member = rank > a
        anchor = rec[begin[member] + a]
        edge = np.empty(int(member.sum()), EDGE)
        edge["lo"], edge["lo_chars"] = anchor["id"], anchor["chars"]
        edge["hi"], edge["hi_chars"] = rec["id"][member], rec["chars"][member]
        parts.append(edge)
    edges = np.concatenate(parts)
    path = plan.path("candidates", f"edges-{part:05d}.run")
    runs.write(path, edges, (minhash.mix64(edges["lo"].astype(np.uint64)) % np.uint64(plan.edge_parts)).astype(np.int64),
               plan.edge_parts)
    progress.advance("near candidates", cfg.bands * plan.band_parts)
    return [path]


def _texts(ids: np.ndarray, plan, scans) -> dict:
    """{id: text} read from the docstores of the units that hold them."""
    units = plan.unit_of(ids)
    out = {}
    for u in np.unique(units):
        out.update(docstore.fetch(plan.unit_file(int(u), "docs.arrow"), scans[int(u)].docs, ids[units == u]))
    return out


def verify(part: int, cfg: DedupConfig, plan, scans, candidate_runs) -> tuple:
    """(verified edges, tally) of one edge partition: the unique candidate edges whose exact shingle
    Jaccard reaches the threshold (all of them without the check)."""
    edges = np.unique(runs.read_all([p for c in candidate_runs for p in c], part, EDGE))
    tally = Tally()
    tally.count("near_candidate_pairs", len(edges))
    if cfg.jaccard_check and len(edges):
        by_unit = {s.unit: s for s in scans}
        keep = np.zeros(len(edges), bool)
        for at in range(0, len(edges), EDGE_CHUNK):
            chunk = edges[at : at + EDGE_CHUNK]
            texts = _texts(np.unique(np.concatenate([chunk["lo"], chunk["hi"]])), plan, by_unit)
            sets = {i: minhash.shingle_set(t, cfg.ngram) for i, t in texts.items()}
            keep[at : at + len(chunk)] = [minhash.jaccard(sets[lo], sets[hi]) >= cfg.jaccard_threshold
                                          for lo, hi in zip(chunk["lo"].tolist(), chunk["hi"].tolist(), strict=True)]
        tally.count("near_pairs_rejected", int((~keep).sum()))
        edges = edges[keep]
    progress.advance("near verify", plan.edge_parts)
    return edges, tally


def clusters(plan, verified) -> Decision:
    """Near losers from all verified edges (see the module doc): documents are taken by most verified
    partners first (then ascending id); a document taken while still undecided is kept and its undecided
    partners are removed, so every removed document has a verified edge to a kept one."""
    found = [e for e, _ in verified]
    edges = np.concatenate(found) if found else np.zeros(0, EDGE)
    nodes, ends = np.unique(np.concatenate([edges["lo"], edges["hi"]]), return_inverse=True)
    chars = np.zeros(len(nodes), np.uint32)
    chars[ends] = np.concatenate([edges["lo_chars"], edges["hi_chars"]])
    source = np.concatenate([ends[len(edges):], ends[:len(edges)]])  # both directions: hi -> lo, lo -> hi
    order = np.argsort(ends, kind="stable")
    partners, starts = source[order], np.concatenate([[0], np.cumsum(np.bincount(ends, minlength=len(nodes)))])
    degree = np.diff(starts)
    state = np.zeros(len(nodes), np.int8)  # 0 undecided, 1 kept, 2 removed
    for v in np.lexsort((nodes, -degree)).tolist():
        if state[v] == 0:
            state[v] = 1
            near = partners[starts[v]:starts[v + 1]]
            state[near[state[near] == 0]] = 2
    removed = state == 2
    tally = sum((t for _, t in verified), Tally())
    tally.count("near_verified_pairs", len(edges))
    ids, chars = nodes[removed], chars[removed]
    if len(ids):
        tally.drop("dedup/near", int(chars.sum()), len(ids))
    return Decision(_losers(plan.path("near", "losers.run"), plan, ids, chars), tally)
