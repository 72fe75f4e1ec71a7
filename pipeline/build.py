"""The Beam graph of `python -m pipeline`: a chain of stages, each PCollection[Doc] -> (kept, dropped).

    read -> normalize -> exact -> filter -> near -> clean | shards

Exact dedup runs before the filters and near dedup last: copies are removed by the cheapest test
first, and the costly MinHash stage only sees documents that passed every other rule. `until` stops the
chain after a stage; "clean" (and any stage before it) writes the documents of that point with
pipeline.output.WriteDocs; "shards" (the default) goes on from "near" through pipeline.pack.ToShards
(tokenizer, tokenize, pack, order) into Arrow shards, report.png and, last, manifest.json. Every
stage's drops and counts go to pipeline.stats.Accounting, which writes stats.json.
"""

import apache_beam as beam

from pipeline.config import CorpusConfig
from pipeline.dedup import ExactDedup, NearDedup
from pipeline.filters import Filter
from pipeline.normalize import Normalize
from pipeline.output import WriteDocs
from pipeline.pack import ToShards, finish
from pipeline.sources import Read, Unit
from pipeline.stats import Accounting

STAGES = ("read", "normalize", "exact", "filter", "near", "clean", "shards")


def doc_stages(cfg: CorpusConfig) -> list[tuple[str, beam.PTransform]]:
    """The document stages after read, in order."""
    return [("normalize", Normalize(cfg.normalize)), ("exact", ExactDedup(cfg.dedup)),
            ("filter", Filter(cfg.filters)), ("near", NearDedup(cfg.dedup))]


def build(p: beam.Pipeline, cfg: CorpusConfig, units: list[Unit], out_dir, until: str = "clean",
          extra: dict | None = None):
    """Add the stages up to `until` to `p`, writing documents and stats.json into `out_dir`."""
    if until not in STAGES:
        raise ValueError(f"--until {until}: choose one of {', '.join(STAGES)}")
    read = Read(cfg.source, sum(u.size for u in units))
    docs, dropped = (p
                     | "Units" >> beam.Create(units)
                     | "SpreadUnits" >> beam.Reshuffle()  # one element per file: parallel reads, not per doc
                     | "Read" >> read)
    outputs, drops, seconds = [("read", docs)], [dropped], []
    for name, stage in doc_stages(cfg):
        if STAGES.index(name) > STAGES.index(until):
            break
        docs, dropped = docs | name.capitalize() >> stage
        outputs.append((name, docs))
        drops.append(dropped)
        if getattr(stage, "seconds", None) is not None:
            seconds.append(stage.seconds)
    if until == "shards":
        to_shards = ToShards(out_dir, cfg)
        summary, dropped = docs | "Shards" >> to_shards
        outputs.append(("tokenize", to_shards.kept))
        drops.append(dropped)
        seconds.append(to_shards.seconds)
        written = to_shards.shards | "ShardFiles" >> beam.Map(
            lambda e: {"file": e["file"], "rows": e["rows"], "bytes": e["bytes"], "seconds": e["seconds"]})
    else:
        written = docs | "WriteDocs" >> WriteDocs(out_dir, cfg.output)
    all_drops = drops | "AllDrops" >> beam.Flatten()
    extra = {"config_hash": cfg.hash(), "until": until, **(extra or {})}
    stats = p | "Accounting" >> Accounting(out_dir, outputs, all_drops, read.files, seconds, written, extra)
    if until == "shards":  # the manifest last, once the shards and the counts are in
        _ = stats | "Manifest" >> beam.Map(lambda s, _, out=str(out_dir): (finish(out, cfg, s), s)[1],
                                           beam.pvalue.AsSingleton(summary))
    return stats
