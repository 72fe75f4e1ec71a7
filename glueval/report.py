"""Results out: medians and spreads over seeds, both averages, results.json, a markdown table, a bar chart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from glueval import metrics
from glueval.tasks import TASKS
from model import card
from pipeline.files import record

FILES = ("results.json", "predictions.jsonl", "results.md", "results.png")  # in out_dir, listed in its record
BACKEND_NAMES = {"cramkit": "cramkit's (glueval.finetune)", "hf": "transformers' Trainer (glueval.hf_backend)"}
_METRIC_NAMES = {"accuracy": "acc", "f1": "F1", "mcc": "MCC", "pearson": "Pearson", "spearman": "Spearman"}


def summarize(results: dict) -> dict:
    """Add per-task median/min/max over seeds and, per init and for the majority baseline, both averages."""
    columns: dict[str, dict] = {"majority": {}}
    for name, entry in results["tasks"].items():
        columns["majority"][name] = entry["majority"]
        entry["median"], entry["min"], entry["max"] = {}, {}, {}
        for init, runs in entry["runs"].items():
            if not runs:
                continue
            stats = {k: {} for k in ("median", "min", "max")}
            for dev in entry["dev_sets"]:
                for k in stats:
                    stats[k][dev] = {}
                for m in entry["metrics"]:
                    vals = [r["scores"][dev][m] for r in runs.values()]
                    stats["median"][dev][m] = float(np.median(vals))
                    stats["min"][dev][m], stats["max"][dev][m] = float(min(vals)), float(max(vals))
            for k, v in stats.items():
                entry[k][init] = v
            columns.setdefault(init, {})[name] = stats["median"]
    results["averages"] = {}
    for col, scores in columns.items():
        cram, n_cram = metrics.cramming_average(scores)
        board, n_board = metrics.leaderboard_average(scores)
        results["averages"][col] = {"cramming": {"value": cram, "terms": n_cram, "of": 9},
                                    "leaderboard": {"value": board, "terms": n_board, "of": 8}}
        if col != "majority":
            for kind, average in (("cramming", metrics.cramming_average), ("leaderboard", metrics.leaderboard_average)):
                per_seed = _per_seed(results, col, average)
                results["averages"][col][kind]["per_seed"] = per_seed
                if per_seed:
                    results["averages"][col][kind]["spread"] = max(per_seed.values()) - min(per_seed.values())
    return results


def _per_seed(results: dict, init: str, average) -> dict[str, float]:
    """The average of each seed's own scores, for the seeds that finished on every task."""
    runs = [e["runs"].get(init, {}) for e in results["tasks"].values()]
    seeds = [s for s in map(str, results["protocol"]["seeds"]) if runs and all(s in r for r in runs)]
    out = {}
    for seed in seeds:
        value, _ = average({name: e["runs"][init][seed]["scores"] for name, e in results["tasks"].items()})
        if value is not None:
            out[seed] = value
    return out


def comparable(old: dict, new: dict) -> str | None:
    """Why an earlier results.json cannot lend its runs to this evaluation (None: it can): another
    checkpoint (weights hash), protocol (any key but the seeds) or data source."""
    for key, what in (("checkpoint_sha256", "checkpoint weights"), ("data", "data source"),
                      ("backend", "fine-tuning backend")):
        if old.get(key) != new.get(key):
            return f"another {what}"
    mine, theirs = json.loads(json.dumps(new["protocol"])), dict(old.get("protocol", {}))  # tuples as in JSON
    mine.pop("seeds"), theirs.pop("seeds", None)
    changed = sorted(k for k in mine if mine[k] != theirs.get(k))
    return f"another protocol ({', '.join(changed)})" if changed else None


def read_previous(out_dir: Path) -> dict | None:
    """results.json and predictions.jsonl of an earlier (maybe interrupted) run in out_dir, or None."""
    path, preds = out_dir / "results.json", out_dir / "predictions.jsonl"
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
        old["predictions"] = [json.loads(x) for x in preds.read_text().splitlines()] if preds.is_file() else []
    except (OSError, ValueError):
        return None
    return old


def write_json(results: dict, out_dir: Path) -> tuple[Path, Path]:
    """results.json (without predictions) and predictions.jsonl (one line per task, dev set, init, seed),
    after listing FILES in out_dir's record (pipeline.files.record)."""
    path, preds = out_dir / "results.json", out_dir / "predictions.jsonl"
    record.claim(out_dir, "glue", files=FILES)
    path.write_text(json.dumps({k: v for k, v in results.items() if k != "predictions"}, indent=2))
    preds.write_text("".join(json.dumps(p) + "\n" for p in results.get("predictions", [])))
    return path, preds


def _f(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def _cell(e: dict, init: str, dev: str, m: str) -> tuple[float | None, float | None]:
    """(median, spread) of one init's runs on one metric; (None, None) without finished runs."""
    if init not in e["median"]:
        return None, None
    return e["median"][init][dev][m], e["max"][init][dev][m] - e["min"][init][dev][m]


def _difference(pretrained: tuple, random: tuple) -> str:
    """`+4.2 (> spread)` when the gap of the medians exceeds both inits' seed spreads, else `+1.0`."""
    (a, spread_a), (b, spread_b) = pretrained, random
    if a is None or b is None:
        return "–"
    gap = a - b
    clear = spread_a is not None and spread_b is not None and abs(gap) > max(spread_a, spread_b)
    return f"{gap:+.1f}" + (" (> spread)" if clear else "")


def _avg_cell(a: dict) -> str:
    if a["value"] is None:
        return "–"
    return _f(a["value"]) + ("" if a["terms"] == a["of"] else f" ({a['terms']}/{a['of']})")


def markdown(results: dict) -> str:
    """The results table (per task, per seed, median, spread, both averages, majority baseline)."""
    p, inits = results["protocol"], results["inits"]
    lines = [f"# GLUE dev results: `{results['checkpoint']}`", "",
             f"Protocol **{p['name']}**: AdamW lr {p['lr']:g}, betas {tuple(p['betas'])}, eps {p['eps']:g}, "
             f"wd {p['weight_decay']:g}, batch {p['batch_size']}, {p['epochs']} epoch(s), {p['schedule']} decay "
             f"with {p['warmup']:.0%} warm-up per task, dropout {p['dropout']:g}, max length {p['max_length']}, "
             f"precision {p.get('precision', 'auto')}, "
             f"seeds {p['seeds']}; score after the last epoch, median over seeds, spread = max − min. "
             f"Data: {results['data']}. Device: {results['machine']['device']}. "
             f"Fine-tuning loop: {BACKEND_NAMES[results.get('backend', 'cramkit')]}.", ""]
    if p["max_train_examples"] is not None or p["max_eval_examples"] is not None:
        cut = [f"{p[k]} {what}" for k, what in (("max_train_examples", "training"), ("max_eval_examples", "dev"))
               if p[k] is not None]
        lines += [f"**Subset run** (not comparable to full GLUE): at most {' and '.join(cut)} examples per task, "
                  "drawn with a fixed seed (column n).", ""]
    head = ["Task", "Metric", "n train/dev", "Majority"]
    for init in inits:
        head += [f"{init} median", "spread", f"{init} per seed"]
    compare = inits == ["pretrained", "random"]
    if compare:
        head.append("pretrained − random")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, e in results["tasks"].items():
        for dev in e["dev_sets"]:
            title = e["title"] + ("" if dev == "dev" else f"-{dev}") + ("" if TASKS[name].in_average else " *")
            for m in e["metrics"]:
                row = [title, _METRIC_NAMES[m], f"{e['used']['train']}/{e['used'][dev]}", _f(e["majority"][dev][m])]
                for init in inits:
                    runs = e["runs"][init]
                    if not runs:
                        row += ["–", "–", "–"]
                        continue
                    spread = e["max"][init][dev][m] - e["min"][init][dev][m]
                    per_seed = " · ".join(f"{r['scores'][dev][m]:.1f}" for r in runs.values())
                    row += [f"**{_f(e['median'][init][dev][m])}**", _f(spread), per_seed]
                if compare:
                    row.append(_difference(*(_cell(e, i, dev, m) for i in inits)))
                lines.append("| " + " | ".join(row) + " |")
    avg = results["averages"]
    for key, label in (("cramming", "Average, cramming (mean of 9 numbers)"),
                       ("leaderboard", "Average, GLUE leaderboard (per-task mean, 8 tasks)")):
        row = [label, "", "", _avg_cell(avg["majority"][key])]
        for init in inits:
            a = avg.get(init, {}).get(key, {})
            per_seed = " · ".join(f"{v:.1f}" for v in a.get("per_seed", {}).values())
            row += [f"**{_avg_cell(a)}**" if a else "–", _f(a.get("spread")), per_seed]
        if compare:
            row.append(_difference(*((avg[i][key]["value"], avg[i][key].get("spread")) if i in avg else (None, None)
                                     for i in inits)))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "\\* WNLI is reported but left out of both averages, as in BERT and cramming. The cramming average "
              "takes MNLI-m, MNLI-mm, QQP F1, MRPC F1, STS-B Pearson, CoLA MCC and the accuracy of SST-2, QNLI, "
              "RTE; the leaderboard average first averages each task's metrics (MNLI m and mm too). "
              "(k/n) = only k of the n terms were run. Majority = always the most frequent training label "
              "(STS-B: the mean score, whose correlations are 0 by convention). Averages: the average of the "
              "medians; its spread and per-seed values are the averages of each seed's own scores."
              + (" pretrained − random: the difference of the medians, marked (> spread) where it exceeds the "
                 "seed spread of both inits." if compare else ""), ""]
    lines += ["Data rows per file (malformed rows are skipped and counted):", "",
              "| Task | split | source | rows | used | malformed |", "|---|---|---|---|---|---|"]
    for e in results["tasks"].values():
        for split, s in e["data"].items():
            bad = ", ".join(f"{r}: {n}" for r, n in s["malformed"].items()) or "0"
            lines.append(f"| {e['title']} | {split} | {s['source']} | {s['rows']} | {s['used']} | {bad} |")
    return "\n".join(lines) + "\n"


def update_card(results: dict) -> Path | None:
    """Put the table into the checkpoint's model card (model.card), keyed by protocol and backend; None when
    the checkpoint has no cramkit model card."""
    p = results["protocol"]
    subset = p["max_train_examples"] is not None or p["max_eval_examples"] is not None
    key = f"protocol {p['name']}{' (subset)' if subset else ''}, {results.get('backend', 'cramkit')} backend"
    table = markdown(results).split("\n", 1)[1].split("\nData rows per file")[0]  # no title, no file list
    return card.update_glue(results["checkpoint"], key, table)


def contamination(checkpoint) -> str | None:
    """What the checkpoint's pretraining shards recorded about GLUE text in their corpus: the contamination
    report of their manifest (pipeline.cleaning.contamination) as markdown, or a line saying it was not checked;
    None when the checkpoint's card names no shard folder, or that folder (relative to the working directory,
    as at training) holds no manifest of the same content_hash."""
    from pipeline.cleaning import contamination

    facts = card.facts(checkpoint)
    path = Path(facts.get("shards", "")) / "manifest.json"
    if "shards" not in facts or not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("content_hash") != facts.get("data"):
        return None
    report = manifest.get("counts", {}).get("contamination")
    if report is None:
        return (f"Contamination: the pretraining shards {facts['shards']} were built without decontam.*: GLUE text "
                "in their corpus was not checked.\n")
    return contamination.markdown(report)


def chart_rows(results: dict) -> list[tuple[str, float, dict]]:
    """One bar group per task, dev set and metric: (label, majority score, {init: (median, min, max)})."""
    rows = []
    for e in results["tasks"].values():
        for dev in e["dev_sets"]:
            for m in e["metrics"]:
                inits = {i: (e["median"][i][dev][m], e["min"][i][dev][m], e["max"][i][dev][m])
                         for i in results["inits"] if i in e["median"]}
                rows.append((f"{e['title']}{'' if dev == 'dev' else '-' + dev}\n{_METRIC_NAMES[m]}",
                             e["majority"][dev][m], inits))
    return rows


def chart_title(results: dict) -> str:
    p = results["protocol"]
    title = (f"GLUE dev, {Path(results['checkpoint']).name}, protocol {p['name']}, {len(p['seeds'])} seed(s): "
             "median over seeds (bars: min–max)")
    if p["max_train_examples"] is not None or p["max_eval_examples"] is not None:
        cut = ", ".join(f"<= {p[k]} {what}" for k, what in (("max_train_examples", "train"),
                                                               ("max_eval_examples", "dev")) if p[k] is not None)
        title += f"\nSUBSET RUN ({cut} examples per task): not comparable to full GLUE"
    return title


def bar_chart(results: dict, path: Path) -> Path:
    """Every metric of every task (`chart_rows`): the median per init with the seed range as error bars,
    the majority baseline beside it; a subset run says so in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = chart_rows(results)
    series = {"majority": ([r[1] for r in rows], None)}
    for init in results["inits"]:
        stats = [r[2].get(init, (np.nan, np.nan, np.nan)) for r in rows]
        series[init] = ([m for m, _, _ in stats], [[m - lo for m, lo, _ in stats], [hi - m for m, _, hi in stats]])
    x = np.arange(len(rows))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.4))
    for k, (name, (vals, err)) in enumerate(series.items()):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, vals, width, label=name, yerr=err, capsize=3,
               color="lightgray" if name == "majority" else None)
    ax.set_xticks(x, [r[0] for r in rows], fontsize=8)
    ax.set_ylabel("dev score (x100)")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_title(chart_title(results), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_all(results: dict, out_dir: Path) -> dict[str, Path]:
    """results.json, predictions.jsonl, results.md and results.png in `out_dir`, listed first in its record."""
    record.claim(out_dir, "glue", files=FILES)
    summarize(results)
    md = out_dir / "results.md"
    md.write_text(markdown(results))
    js, preds = write_json(results, out_dir)
    return {"json": js, "predictions": preds, "markdown": md, "chart": bar_chart(results, out_dir / "results.png")}
