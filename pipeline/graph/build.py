"""The Beam graph of `python -m pipeline`.

Every stage is a plain function of its config, one work item and the small results of the stages
before it; it returns its outputs (files in the staging folder) and a Tally (pipeline.graph.stats): what it
kept, dropped and why, and its seconds. Beam runs the work items in parallel and carries only these
small results between stages (as side inputs); texts, hashes and rows move through files.

    scan (per unit) --+-- exact (per hash partition) -------------------------------------+
                      +-- candidates (per band partition) -- verify (per edge partition)   |
                          -- clusters (one) ---------------------------------------------+
      quality (on):   train (one) -- score (per unit) -- cut (one) -- drops (per unit)  |
      --until clean:  write docs (per unit)                                               |
      shards:         tokenizer (one) -- encode (per unit) -- keys (per unit) -- boundaries (one)
                      -- rows (per unit) -- write (per shard)
    scan -- contamination (one): contamination.jsonl and its report (with decontam.* set)
    every Tally and file written -- finish (one): stats.json, report.png, manifest.json
"""

import apache_beam as beam

from pipeline.cleaning import contamination, quality
from pipeline.duplicates import dedup
from pipeline.graph import finish, output
from pipeline.graph.plan import STAGES
from pipeline.graph.scan import Scanner
from pipeline.tokens import order, tokenize
from pipeline.tokens.encode import Encoder
from pipeline.tokens.pack import Layout


def _items(p, label: str, items):
    """Work items spread over the workers."""
    return p | f"{label}Items" >> beam.Create(list(items)) | f"{label}Spread" >> beam.Reshuffle()


def _all(pcoll):
    return beam.pvalue.AsList(pcoll)


def _one(pcoll):
    return beam.pvalue.AsSingleton(pcoll)


class _Scan(beam.DoFn):
    def __init__(self, cfg, plan):
        self.cfg, self.plan = cfg, plan

    def setup(self):
        self.scan = Scanner(self.cfg, self.plan)  # loads the language-ID model once per worker

    def process(self, unit):
        yield self.scan(unit)


class _Score(beam.DoFn):
    def __init__(self, cfg, plan):
        self.cfg, self.plan = cfg, plan

    def setup(self):
        self.score = quality.Scoring(self.cfg, self.plan)  # loads the scorers once per worker

    def process(self, scan, decisions, trained, below):
        yield self.score(scan, decisions, below)


class _Encode(beam.DoFn):
    def __init__(self, cfg, plan):
        self.cfg, self.plan, self.encoder = cfg, plan, None

    def process(self, scan, vocab, decisions, cut=None):
        if vocab is None:
            return
        if self.encoder is None:
            self.encoder = Encoder(self.cfg, self.plan, vocab)
        yield self.encoder(scan, decisions, cut)


class _Rows(beam.DoFn):
    """keys (`bounds` None: the unit's sampled keys) or rows (the unit's row runs and counts per shard)."""

    def __init__(self, cfg, plan):
        self.cfg, self.plan, self.keys = cfg, plan, None

    def process(self, unit, layout, vocab, counts, bounds=None):
        if vocab is None:
            return
        if self.keys is None:
            self.keys = order.Keys(self.cfg, self.plan, layout, vocab, counts)
        yield self.keys.sample(unit) if bounds is None else self.keys.partition(unit, bounds)


def _layout(cfg, plan, encoded):
    per = {e[0]: e[1:] for e in encoded}
    per = [per.get(u, (0, 0, 0)) for u in range(plan.units)]
    return Layout(cfg.seq_len, cfg.pack, [t for t, _, _ in per], [r for _, r, _ in per], [d for _, _, d in per])


def _sum(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    if isinstance(values[0], dict):
        return {k: sum(v[k] for v in values) for k in values[0]}
    return sum(values[1:], values[0].copy())


def build(p, cfg, plan, units: list, skipped: list, extra: dict):
    """Add every stage up to `plan.until` to `p`; the output holds the stats dict (also in stats.json)."""
    upto = STAGES.index(plan.until)
    scans = _items(p, "Units", units) | "Scan" >> beam.ParDo(_Scan(cfg, plan))
    scanned = _all(scans)
    tallies = [scans | "ScanTally" >> beam.Map(lambda s: s.tally)]
    decisions = []
    if cfg.dedup.exact and upto >= STAGES.index("exact"):
        exact = _items(p, "Exact", range(plan.exact_parts)) | "Exact" >> beam.Map(dedup.exact, plan, scanned)
        decisions.append(exact)
    if cfg.dedup.near and upto >= STAGES.index("near"):
        cands = (_items(p, "Bands", range(cfg.dedup.bands * plan.band_parts))
                 | "Candidates" >> beam.Map(dedup.candidates, cfg.dedup, plan, scanned))
        verified = (_items(p, "Edges", range(plan.edge_parts))
                    | "Verify" >> beam.Map(dedup.verify, cfg.dedup, plan, scanned, _all(cands)))
        decisions.append(p | "NearOne" >> beam.Create([None])
                         | "Clusters" >> beam.Map(lambda _, v: dedup.clusters(plan, v), _all(verified)))
    decisions = decisions | "Decisions" >> beam.Flatten() if decisions else p | "NoDecisions" >> beam.Create([])
    decided = _all(decisions)
    tallies.append(decisions | "DecisionTally" >> beam.Map(lambda d: d.tally))
    one = p | "One" >> beam.Create([None])
    checked = cfg.decontam.enabled and upto >= STAGES.index("decontam")
    found = _one(one | "Contamination" >> beam.Map(lambda _, s: contamination.collect(plan) if checked else None,
                                                    scanned))
    cut = p | "NoQuality" >> beam.Create([None])  # quality off: write_docs and encode get None
    if cfg.quality.enabled and upto >= STAGES.index("quality"):
        trained = one | "QualityModels" >> beam.Map(lambda _, s: quality.train(cfg, plan, s), scanned)
        below = one | "QualitySample" >> beam.Map(lambda _, s: quality.sample_below(cfg.quality, s), scanned)
        scored = scans | "Score" >> beam.ParDo(_Score(cfg, plan), decided, _one(trained), _one(below))
        cut = one | "QualityCut" >> beam.Map(lambda _, t, s: quality.cut(cfg.quality, t[0], s), _one(trained),
                                             _all(scored))
        tallies += [trained | "TrainTally" >> beam.Map(lambda t: t[1]),
                    scored | "ScoreTally" >> beam.Map(lambda s: s[2]),
                    scans | "QualityDrops" >> beam.Map(lambda s, c: quality.drops(plan, c.threshold, s.unit),
                                                       _one(cut))]
    cut = _one(cut)

    if plan.until != "shards":
        written = scans | "WriteDocs" >> beam.Map(
            lambda s, d, c: output.write_docs(s, cfg.output, plan, d, c), decided, cut)
        return one | "Finish" >> beam.Map(
            lambda _, w, t, c, q: finish.finish(cfg, plan, finish.Results(
                skipped, t, [x for x in w if x], extra, contamination=c, quality=q)),
            _all(written), _all(tallies | "Tallies" >> beam.Flatten()), found, cut)

    tok = one | "Tokenizer" >> beam.Map(lambda _, s, d: tokenize.stage(cfg, plan, s, d), scanned, decided)
    encoded = scans | "Encode" >> beam.ParDo(_Encode(cfg, plan), _one(tok), decided, cut)
    tallies.append(encoded | "EncodeTally" >> beam.Map(lambda e: e.tally))
    counts = encoded | "Unigrams" >> beam.Map(lambda e: e.counts) | "SumUnigrams" >> beam.CombineGlobally(_sum)
    hists = encoded | "Hists" >> beam.Map(lambda e: e.hists) | "SumHists" >> beam.CombineGlobally(_sum)
    layout = one | "Layout" >> beam.Map(
        lambda _, e: _layout(cfg, plan, e), _all(encoded | "Sizes" >> beam.Map(lambda e: (e.unit, e.tokens, e.rows, e.docs))))
    sides = (_one(layout), _one(tok), _one(counts))
    unit_items = _items(p, "RowUnits", range(plan.units))
    samples = unit_items | "Keys" >> beam.ParDo(_Rows(cfg, plan), *sides)
    bounds = one | "Boundaries" >> beam.Map(
        lambda _, s, lay: order.boundaries(s, lay.rows, cfg.shards.rows_per_shard), _all(samples), _one(layout))
    parted = unit_items | "Rows" >> beam.ParDo(_Rows(cfg, plan), *sides, _one(bounds))

    def shard(part, b, rows, vocab, lay):
        before = int(sum(c[:part].sum() for _, c in rows))
        return order.write_shard(part, len(b) + 1, plan, cfg, lay, vocab, [path for paths, _ in rows for path in paths],
                                 before) if vocab is not None else {"file": None, "capped": 0}

    written = (bounds | "ShardItems" >> beam.FlatMap(lambda b: range(len(b) + 1)) | "ShardSpread" >> beam.Reshuffle()
               | "WriteShards" >> beam.Map(shard, _one(bounds), _all(parted), _one(tok), _one(layout)))
    return one | "Finish" >> beam.Map(
        lambda _, w, t, v, lay, h, c, q: finish.finish(cfg, plan, finish.Results(skipped, t, w, extra, v, lay, h, c, q)),
        _all(written), _all(tallies | "Tallies" >> beam.Flatten()), _one(tok), _one(layout), _one(hists),
        found, cut)
