"""The contamination report: each work unit's match records (`Found`, written by the scan as decontam.py
finds them), gathered after the scan into the output's contamination.jsonl and per task and split counts
(`collect`: examples, checkable, found, documents), shown as the summary's table, report.png's rows and
glue.py's markdown. Importing this module needs no Beam (glue.py renders the report of a checkpoint's
shards with `markdown`).
"""

from __future__ import annotations

import json

from pipeline.cleaning.decontam import META

FOUND = "contamination.jsonl"  # the match records: a unit's in its staging folder, then all in the output


class Found:
    """A unit's match records, appended batch by batch to a file in its staging folder (opened at the
    first match: object stores hold no empty files)."""

    def __init__(self, path: str):
        self.path, self.fh = path, None

    def add(self, records: list) -> None:
        from pipeline.files import storage

        if records:
            self.fh = self.fh or storage.create(self.path)
            self.fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


def collect(plan) -> dict:
    """After the scan: every unit's records into contamination.jsonl (document order) and the report."""
    from pipeline.files import storage

    meta = json.loads(storage.read_text(plan.path(META)))
    at = {(s["task"], s["split"]): i for i, s in enumerate(meta["sets"])}
    found = [set() for _ in meta["sets"]]
    docs = [0] * len(meta["sets"])
    records, documents, out = 0, 0, None
    for unit in range(plan.units):
        path = plan.unit_file(unit, FOUND)
        if not storage.exists(path):
            continue
        data = storage.read_bytes(path)
        out = out or storage.create(storage.join(plan.out, FOUND))
        out.write(data)
        last = None
        seen = set()
        for line in data.decode("utf-8").splitlines():
            r = json.loads(line)
            s = at[(r["task"], r["split"])]
            found[s].add(r["example"])
            records += 1
            if r["id"] != last:
                last, seen = r["id"], set()
                documents += 1
            if s not in seen:
                seen.add(s)
                docs[s] += 1
    if out is not None:
        out.close()
    cfg = meta["config"]
    sets: dict = {}
    for i, s in enumerate(meta["sets"]):
        sets.setdefault(s["task"], {})[s["split"]] = {
            "examples": s["examples"], "checkable": s["checkable"], "found": len(found[i]), "documents": docs[i],
            "malformed": s["malformed"]}
    return {"mode": cfg["mode"], "ngram": cfg["ngram"], "min_words": cfg["min_words"],
            "max_examples": cfg["max_examples"], "documents": documents, "records": records,
            "file": FOUND if records else None, "sets": sets}


def rows(report: dict) -> list[tuple]:
    """(task, split, examples, checkable, found, percent found of checkable, documents) per split."""
    return [(task, split, s["examples"], s["checkable"], s["found"],
             100.0 * s["found"] / s["checkable"] if s["checkable"] else 0.0, s["documents"])
            for task, splits in report["sets"].items() for split, s in splits.items()]


def table(report: dict):
    """The report as a rich table for the summary."""
    from rich.table import Table

    t = Table(title=f"contamination ({report['ngram']}-grams, mode {report['mode']}): evaluation examples found "
                    f"in the corpus; {report['documents']:,} documents matched", title_justify="left")
    for col in ("task", "split", "examples", "checkable", "found", "% found", "documents"):
        t.add_column(col, justify="left" if col in ("task", "split") else "right")
    for task, split, n, ok, found, pct, docs in rows(report):
        t.add_row(task, split, f"{n:,}", f"{ok:,}", f"{found:,}", f"{pct:.2f}", f"{docs:,}")
    return t


def markdown(report: dict) -> str:
    """The report as a markdown table (glue.py prints it beside its GLUE table)."""
    lines = [f"Contamination of the pretraining corpus ({report['ngram']}-grams, mode {report['mode']}): evaluation "
             f"examples found in it, {report['documents']:,} documents matched", "",
             "| task | split | examples | checkable | found | % found | documents |", "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {t} | {s} | {n:,} | {ok:,} | {f:,} | {pct:.2f} | {d:,} |" for t, s, n, ok, f, pct, d in rows(report)]
    return "\n".join(lines) + "\n"
