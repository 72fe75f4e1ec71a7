"""Accounting: the pipeline's own counts -> stats.json, and the summary table printed at the end.

Counts are computed by the pipeline (combiners over the documents and Drop records of every stage), not
taken from runner metrics, so they are the same on every runner. The books must balance:
documents read == kept + sum of drops, where read = documents out of the read stage + its drops.

stats.json:
  documents   read, kept, dropped, balanced
  stages      per stage in order: docs and chars out, seconds of work (for the stages that time
              themselves: read, normalize, filter, write; wall time of the whole run is "wall_seconds")
  dropped     per reason "<stage>/<rule>": docs, chars
  files       count, bytes_in, repaired (documents whose bytes were not UTF-8 and were repaired by
              source.encoding_errors), failed: [{path, error}]
  output      files [{file, docs (clean files) or rows (shards), bytes}], bytes_out
Timings are the only values that differ between two runs of the same input and config.
"""

import json
import os
import time
from pathlib import Path

import apache_beam as beam

SECONDS = "seconds"  # tag of the (stage, seconds) side outputs of the stages that time themselves
STATS = "stats.json"


def timed(gen, clock: list):
    """Yield from `gen`, adding to clock[0] the seconds spent inside it (not in the consumers that run
    while it is suspended, as fused downstream stages do)."""
    start = time.perf_counter()
    for item in gen:
        clock[0] += time.perf_counter() - start
        yield item
        start = time.perf_counter()
    clock[0] += time.perf_counter() - start


class _CountChars(beam.CombineFn):
    """(documents, characters) of a PCollection[Doc]."""

    def create_accumulator(self):
        return (0, 0)

    def add_input(self, acc, doc):
        return (acc[0] + 1, acc[1] + len(doc.text))

    def merge_accumulators(self, accs):
        accs = list(accs)
        return (sum(a[0] for a in accs), sum(a[1] for a in accs))

    def extract_output(self, acc):
        return acc


def _sum_pairs(pairs):
    pairs = list(pairs)
    return (sum(p[0] for p in pairs), sum(p[1] for p in pairs))


def build_stats(facts: list[tuple], stage_names: list[str], extra: dict) -> dict:
    """The stats dict from the facts the pipeline gathered (see Accounting)."""
    stages = {name: {"docs": 0, "chars": 0} for name in stage_names}
    dropped, files, written = {}, [], []
    seconds = {}
    for kind, key, value in facts:
        if kind == "stage":
            stages[key].update(docs=value[0], chars=value[1])
        elif kind == "drop":
            dropped[key] = {"docs": value[0], "chars": value[1]}
        elif kind == "seconds":
            seconds[key] = seconds.get(key, 0.0) + value
        elif kind == "file":
            files.append(value)
        elif kind == "written":
            written.append(value)
    for name, s in sorted(seconds.items()):
        stages.setdefault(name, {})["seconds"] = round(s, 3)
    failed = []
    for f in files:
        if f["error"]:
            failed.append({"path": f["path"], "error": f["error"]})
        failed += f.get("failed", [])
    read = stages[stage_names[0]]["docs"] + sum(v["docs"] for k, v in dropped.items() if k.startswith("read/"))
    kept = stages[stage_names[-1]]["docs"]
    n_dropped = sum(v["docs"] for v in dropped.values())
    written.sort(key=lambda w: w["file"])
    return {
        **extra,
        "documents": {"read": read, "kept": kept, "dropped": n_dropped, "balanced": read == kept + n_dropped},
        "stages": stages,
        "dropped": dict(sorted(dropped.items())),
        "files": {"count": len(files), "bytes_in": sum(f["bytes"] for f in files),
                  "repaired": sum(f["repaired"] for f in files),
                  "failed": sorted(failed, key=lambda f: f["path"])},
        "output": {"files": [{k: w[k] for k in ("file", "docs", "rows", "bytes") if k in w} for w in written],
                   "bytes_out": sum(w["bytes"] for w in written)},
    }


def write_json(path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


class Accounting(beam.PTransform):
    """Gather counts into `out_dir/stats.json`; the output PCollection holds the stats dict.

    stages: [(name, PCollection[Doc])] in pipeline order, the first being the read stage's output;
    drops: PCollection[Drop] of all stages; files: the read stage's file records; seconds:
    PCollections of (stage, seconds); written: records {file, docs or rows, bytes, seconds} of output files."""

    def __init__(self, out_dir, stages, drops, files, seconds, written, extra: dict):
        super().__init__()
        self.out_dir, self.stages, self.drops, self.files = str(out_dir), stages, drops, files
        self.seconds, self.written, self.extra = seconds, written, extra

    def expand(self, pbegin):
        facts = []
        for name, docs in self.stages:
            facts.append(docs
                         | f"Count {name}" >> beam.CombineGlobally(_CountChars())
                         | f"Fact {name}" >> beam.Map(lambda c, n=name: ("stage", n, c)))
        facts.append(self.drops
                     | "DropKeys" >> beam.Map(lambda d: (d.reason, (1, d.chars)))
                     | "SumDrops" >> beam.CombinePerKey(_sum_pairs)
                     | "DropFacts" >> beam.Map(lambda kv: ("drop", kv[0], kv[1])))
        facts.append(self.files | "FileFacts" >> beam.Map(lambda f: ("file", f["path"], f)))
        facts.append(self.written | "WrittenFacts" >> beam.Map(lambda w: ("written", w["file"], w)))
        facts.append(self.written | "WriteSeconds" >> beam.Map(lambda w: ("seconds", "write", w["seconds"])))
        facts.append(self.files | "ReadSeconds" >> beam.Map(lambda f: ("seconds", "read", f["seconds"])))
        for i, secs in enumerate(self.seconds):
            facts.append(secs | f"SecondsFacts{i}" >> beam.Map(lambda s: ("seconds", s[0], s[1])))
        names = [name for name, _ in self.stages]
        out_dir, extra = self.out_dir, self.extra
        return (facts
                | "AllFacts" >> beam.Flatten()
                | "Gather" >> beam.combiners.ToList()
                | "Stats" >> beam.Map(lambda fs: build_stats(fs, names, extra))
                | "WriteStats" >> beam.Map(lambda s: (write_json(Path(out_dir) / STATS, s), s)[1]))


def summary_table(stats: dict):
    """A rich renderable: documents per stage, drops per reason, failed files, bytes."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    docs = stats["documents"]
    stages = Table(title="corpus pipeline", title_justify="left")
    for col in ("stage", "docs out", "MB out", "seconds"):
        stages.add_column(col, justify="left" if col == "stage" else "right")
    for name, s in stats["stages"].items():
        stages.add_row(name, f"{s['docs']:,}" if "docs" in s else "",
                       f"{s['chars'] / 1e6:.2f}" if "chars" in s else "",
                       f"{s['seconds']:.1f}" if "seconds" in s else "")
    balance = Text.from_markup(f"documents: read {docs['read']:,} = kept {docs['kept']:,} + dropped "
                               f"{docs['dropped']:,}" + ("" if docs["balanced"] else "  [bold red]DOES NOT BALANCE[/]"))
    drops = Table(title="drops", title_justify="left")
    drops.add_column("drop reason")
    drops.add_column("docs", justify="right")
    drops.add_column("MB", justify="right")
    for reason, d in stats["dropped"].items():
        drops.add_row(reason, f"{d['docs']:,}", f"{d['chars'] / 1e6:.2f}")
    parts = [stages, balance, drops]
    files = stats["files"]
    lines = [f"files read: {files['count']:,}, {files['bytes_in'] / 1e6:.1f} MB in; "
             f"{stats['output']['bytes_out'] / 1e6:.1f} MB out in {len(stats['output']['files'])} files; "
             f"{files['repaired']:,} documents with repaired encoding"]
    if "wall_seconds" in stats:
        lines[0] += f"; {stats['wall_seconds']:.1f} s wall"
    if files["failed"]:
        failed = Table(title=f"{len(files['failed'])} files failed", title_justify="left")
        failed.add_column("file")
        failed.add_column("error")
        for f in files["failed"][:20]:
            failed.add_row(Text(f["path"]), Text(f["error"]))
        if len(files["failed"]) > 20:
            failed.add_row("...", f"{len(files['failed']) - 20} more in stats.json")
        parts.append(failed)
    return Group(*parts, *map(Text, lines))
