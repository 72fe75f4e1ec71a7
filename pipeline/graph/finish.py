"""The last step of a run: stats.json, report.png and, last of all, manifest.json.

It gathers every stage's Tally and every file written. A run that produced nothing (every input
failed, nothing survived the filters, no row was packed) gets an "error" in stats.json and no manifest;
the command line prints the summary and the error and exits non-zero.
"""

import io
from dataclasses import asdict, dataclass

from pipeline.files import storage
from pipeline.graph import report
from pipeline.graph.plan import STAGES
from pipeline.graph.stats import STATS, build_stats, to_json, total
from pipeline.tokens import shards

REPORT = "report.png"


def stage_names(until: str, quality: bool = False) -> list[str]:
    names = list(STAGES[: STAGES.index(until) + 1])
    names = [n for n in names if n != "clean" and (quality or n != "quality")]
    return names[:-1] + ["tokenize"] if until == "shards" else names


def counts_of(stats: dict) -> dict:
    """The counts of a stats dict that belong in a manifest: no timings, the same every run."""
    stages = {name: {k: v for k, v in s.items() if k in ("docs", "chars")}
              for name, s in stats.get("stages", {}).items()}
    files = stats.get("files", {})
    return {"documents": stats.get("documents", {}), "dropped": stats.get("dropped", {}),
            "stages": {name: s for name, s in stages.items() if s},
            "files": {k: files[k] for k in ("count", "bytes_in", "repaired", "failed", "skipped") if k in files},
            "contamination": stats.get("contamination")}


def _error(stats: dict, rows: int | None) -> str | None:
    docs, files = stats["documents"], stats["files"]
    if docs["read"] == 0:
        failed = len(files["failed"])
        return (f"no document was read: {failed} of {files['count']} input files failed" if failed else
                "no document was read: the inputs are empty") + "; see the failed files above"
    if docs["kept"] == 0:
        return ("every document was filtered away; check the drop counts in the summary, loosen the "
                "filters or add text")
    if rows == 0:
        return ("no rows to write: every document was filtered away or was shorter than one row. "
                "Check the drop counts in the summary; loosen the filters or add text.")
    return None


@dataclass(frozen=True)
class Results:
    """What the graph hands to `finish`: the stages' tallies and written files, and for shards the
    tokenizer stage's record (pipeline.tokens.tokenize.Vocab), the packing layout
    (pipeline.tokens.pack.Layout) and the report's histograms. `contamination`: the decontamination report
    (pipeline.cleaning.contamination.collect), when the run checked; `quality`: the quality.Cut when quality
    scores are on."""

    skipped: list
    tallies: list
    written: list
    extra: dict
    vocab: object = None
    layout: object = None
    hists: dict | None = None
    contamination: dict | None = None
    quality: object = None


def finish(cfg, plan, results: Results) -> dict:
    """Write stats.json (and for shards report.png and manifest.json) into the output; the stats dict."""
    r = results
    tally = total(r.tallies)
    shard_run = plan.until == "shards"
    entries = [w for w in r.written if w.get("file")]
    rows = sum(e["rows"] for e in entries) if shard_run else None
    if shard_run and r.layout is not None:
        layout = r.layout
        kept = tally.tokens.get("kept", 0)
        tally.count("pack_tail", layout.tail, tokens=True)
        tally.count("padding", layout.rows * layout.seq_len - kept if not cfg.pack.cross_documents else 0, tokens=True)
        tally.count("packed", layout.rows * layout.seq_len, tokens=True)
        tally.count("capped", sum(w["capped"] for w in r.written), tokens=True)
        tally.count("written", sum(e["tokens"] for e in entries), tokens=True)
    stats = build_stats(tally, stage_names(plan.until, r.quality is not None), r.skipped,
                        [{k: e[k] for k in ("file", "rows", "docs", "bytes") if k in e} for e in entries], r.extra)
    if r.quality is not None:
        stats["quality"] = r.quality.record()
    if shard_run:
        stats["tokens"] = dict(sorted(tally.tokens.items()))
    if r.contamination is not None:
        stats["contamination"] = r.contamination
    error = _error(stats, rows)
    if error:
        stats["error"] = error
    storage.write_text(storage.join(plan.out, STATS), to_json(stats))
    if shard_run and not error:
        _manifest(cfg, plan, stats, entries, r)
    return stats


def _manifest(cfg, plan, stats: dict, entries: list, r: Results) -> None:
    drops = {reason: d["docs"] for reason, d in stats["dropped"].items()}
    png = io.BytesIO()
    report.write_report(png, r.hists, drops, cfg.tokenizer.compression_cutoff, r.quality, stats.get("contamination"))
    storage.write_bytes(storage.join(plan.out, REPORT), png.getvalue())
    pack, vocab, seq_len = cfg.pack, r.vocab, r.layout.seq_len
    columns = ["input_ids"] + ([] if pack.cross_documents else ["attention_mask"])
    columns += ["segment_ids"] if pack.segments else []
    packing = {"seq_len": seq_len, "cross_documents": pack.cross_documents,
               "document_end": {"token": vocab.end_token, "id": vocab.end},
               "pad": {"token": vocab.pad_token, "id": vocab.pad},
               "tail": "the token stream's last < seq_len tokens are left out (tokens.pack_tail)"
               if pack.cross_documents else "a document's last row is padded (tokens.padding)"}
    shard_list = sorted(({k: e[k] for k in ("file", "rows", "bytes", "sha256")} for e in entries),
                        key=lambda e: e["file"])
    text = shards.manifest(
        objective=cfg.objective, seq_len=seq_len, vocab_size=vocab.size, shards=shard_list,
        config=cfg.to_dict(), order=asdict(cfg.order), packing=packing, counts=counts_of(stats),
        tokens=stats["tokens"], tokenizer_sha256=shards.sha256_bytes(vocab.json.encode()),
        created=plan.created, columns=columns, special_tokens=vocab.specials,
        quality=None if r.quality is None else stats["quality"])
    storage.write_text(storage.join(plan.out, shards.MANIFEST), text)
