"""Accounting: every stage's Tally -> stats.json, and the summary table printed at the end.

Each work item of every stage returns a Tally next to its output: the documents (and characters) it
passed on, what it dropped and why, the seconds it worked, the files it read. Tallies add up; the
pipeline sums them into stats.json, so the counts are the same on every runner. The books must
balance: documents read == kept + sum of drops, where read = documents out of the read stage + its drops.

stats.json:
  documents   read, kept, dropped, balanced
  stages      per stage in order: docs and chars out, seconds of work (wall time of the whole run is
              "wall_seconds")
  dropped     per reason "<stage>/<rule>": docs, chars (bytes for records never decoded)
  files       count, bytes_in, repaired (documents whose bytes were not UTF-8 and were repaired by
              source.encoding_errors), failed: [{path, error}], skipped: {reason: count} (hidden files,
              FIFOs, sockets, devices, symlinks: never opened)
  dedup       diagnostic counts of the dedup stages (candidate pairs, rejected pairs, ...)
  web         (web input) pages with a URL ("with_url"), lines removed per rule ("lines/<rule>") and
              PII redacted per kind ("pii/<kind>") by pipeline.cleaning.webclean
  output      files [{file, docs (clean files) or rows (shards), bytes}], bytes_out
  contamination  with decontam.* set: per task and split the evaluation examples, how many could be
              checked and how many were found in the corpus (pipeline.cleaning.contamination)
  error       present when the run produced nothing (every input failed, or nothing survived)
Timings are the only values that differ between two runs of the same input and config.
"""

import json
from dataclasses import dataclass, field

STATS = "stats.json"
WEB = "web/"  # Tally.info keys of web input and cleaning (pipeline.cleaning.webclean), in their own section


def _add(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        if k not in out:
            out[k] = v
        elif isinstance(v, list):
            out[k] = [x + y for x, y in zip(out[k], v, strict=True)]
        else:
            out[k] = out[k] + v
    return out


@dataclass
class Tally:
    """Counts and timings of work items; `a + b` adds them up."""

    out: dict = field(default_factory=dict)  # stage -> [docs, chars] it passed on
    dropped: dict = field(default_factory=dict)  # reason -> [docs, size]
    seconds: dict = field(default_factory=dict)  # stage -> seconds of work
    info: dict = field(default_factory=dict)  # diagnostic counters
    tokens: dict = field(default_factory=dict)  # token counts by kind (encoded, kept, pack_tail, ...)
    files: list = field(default_factory=list)  # records of files read (pipeline.reading.sources.new_file_record)

    def __add__(self, other: "Tally") -> "Tally":
        return Tally(_add(self.out, other.out), _add(self.dropped, other.dropped),
                     _add(self.seconds, other.seconds), _add(self.info, other.info),
                     _add(self.tokens, other.tokens), self.files + other.files)

    def drop(self, reason: str, size: int, docs: int = 1) -> None:
        self.dropped = _add(self.dropped, {reason: [docs, size]})

    def passed(self, stage: str, docs: int, chars: int) -> None:
        self.out = _add(self.out, {stage: [docs, chars]})

    def took(self, stage: str, seconds: float) -> None:
        self.seconds = _add(self.seconds, {stage: seconds})

    def count(self, key: str, n: int = 1, tokens: bool = False) -> None:
        if tokens:
            self.tokens = _add(self.tokens, {key: n})
        else:
            self.info = _add(self.info, {key: n})


def total(tallies) -> Tally:
    return sum(tallies, Tally())


DERIVED = {"exact": "dedup/exact", "near": "dedup/near", "quality": "filter/quality"}  # stages whose output is counted by what they drop


def stage_outputs(tally: Tally, stages: list[str]) -> dict:
    """{stage: {"docs", "chars"}} in pipeline order: what each stage passed on, as measured by the stage,
    or for the dedup stages the previous stage's output less their drops."""
    outs, prev = {}, [0, 0]
    for name in stages:
        if name in DERIVED:
            gone = tally.dropped.get(DERIVED[name], [0, 0])
            prev = [prev[0] - gone[0], prev[1] - gone[1]]
        else:
            prev = list(tally.out.get(name, [0, 0]))
        outs[name] = {"docs": prev[0], "chars": prev[1]}
    return outs


def per_file(records: list[dict]) -> list[dict]:
    """File records merged per path: the ranges of a split file add up to one record."""
    merged: dict = {}
    for f in records:
        m = merged.setdefault(f["path"], {**f, "bytes": 0, "records": 0, "repaired": 0, "error": None})
        for key in ("bytes", "records", "repaired"):
            m[key] += f[key]
        m["error"] = m["error"] or f["error"]
    return [merged[p] for p in sorted(merged)]


def build_stats(tally: Tally, stages: list[str], skipped: list, written: list[dict], extra: dict) -> dict:
    """The stats dict of a run (see the module docstring)."""
    files = per_file(tally.files)
    outs = stage_outputs(tally, stages)
    for name, s in sorted(tally.seconds.items()):
        outs.setdefault(name, {})["seconds"] = round(s, 3)
    failed = [{"path": f["path"], "error": f["error"]} for f in files if f["error"]]
    reads = sum(v[0] for r, v in tally.dropped.items() if r.startswith("read/"))
    read = outs[stages[0]]["docs"] + reads
    kept = outs[stages[-1]]["docs"]
    dropped = sum(v[0] for v in tally.dropped.values())
    skips: dict = {}
    for _, reason in skipped:
        skips[reason] = skips.get(reason, 0) + 1
    written = sorted(written, key=lambda w: w["file"])
    web = {k.removeprefix(WEB): v for k, v in sorted(tally.info.items()) if k.startswith(WEB)}
    return {
        **extra,
        "documents": {"read": read, "kept": kept, "dropped": dropped, "balanced": read == kept + dropped},
        "stages": outs,
        "dropped": {r: {"docs": v[0], "chars": v[1]} for r, v in sorted(tally.dropped.items())},
        "files": {"count": len(files), "bytes_in": sum(f["bytes"] for f in files),
                  "repaired": sum(f["repaired"] for f in files), "failed": failed,
                  "skipped": dict(sorted(skips.items()))},
        "dedup": {k: v for k, v in sorted(tally.info.items()) if not k.startswith(WEB)},
        **({"web": web} if web else {}),
        "output": {"files": [{k: w[k] for k in ("file", "docs", "rows", "bytes") if k in w} for w in written],
                   "bytes_out": sum(w["bytes"] for w in written)},
    }


def to_json(stats: dict) -> str:
    return json.dumps(stats, indent=2) + "\n"


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
    if "contamination" in stats:
        from pipeline.cleaning import contamination

        parts.append(contamination.table(stats["contamination"]))
    files = stats["files"]
    lines = [f"files read: {files['count']:,}, {files['bytes_in'] / 1e6:.1f} MB in; "
             f"{stats['output']['bytes_out'] / 1e6:.1f} MB out in {len(stats['output']['files'])} files; "
             f"{files['repaired']:,} documents with repaired encoding"]
    if files.get("skipped"):
        lines.append("paths skipped, never opened: " + ", ".join(f"{n:,} {r}" for r, n in files["skipped"].items()))
    for what, prefix in (("web lines removed", "lines/"), ("PII redacted", "pii/")):
        found = {k.removeprefix(prefix): n for k, n in stats.get("web", {}).items() if k.startswith(prefix)}
        if found:
            lines.append(f"{what}: " + ", ".join(f"{n:,} {k}" for k, n in found.items()))
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
