"""GLUE fine-tuning of one pretrained crammed checkpoint through both backends of glue.py, side by side:
cramkit's own loop (glueval.finetune) and transformers' Trainer on the exported folder (glueval.hf_backend),
same protocol, data subsets, seeds and metrics. Reports per-seed scores, medians and spreads (do the two
agree within seed noise?) and the fine-tuning time of each (is the own loop faster, as its being the
default requires?). The backends take turns seed by seed, so that load drift on a shared machine hits both.

The checkpoint of the reported run (tiny with an 8192-token vocabulary, 25 CPU minutes):
    python -m pipeline --input ../shared/data/text --output out/text8k tokenizer.vocab_size=8192
    python train.py --model tiny --shards out/text8k --budget 25m --name glue-ckpt out=out/runs  # vocab: the shards'

    PYTHONPATH=. .venv/bin/python benchmarks/glue_backends.py CHECKPOINT [--tasks rte,stsb] [--seeds 0,1,2,3,4]
        [--glue-dir ../shared/data/glue] [--threads 2] [key=value ...]   # protocol overrides, e.g. epochs=3
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from glueval import protocol, tasks
from glueval.report import _METRIC_NAMES
from glueval.run import BACKENDS, evaluate
from model.card import README
from model.io import read_config

OUT = Path(__file__).resolve().parent / "results" / "glue_backends.md"
DEFAULTS = ["max_train_examples=1000", "max_eval_examples=500", "epochs=3"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path, help="a crammed final/ folder (train.py)")
    ap.add_argument("overrides", nargs="*", help=f"protocol overrides (default: {' '.join(DEFAULTS)})")
    ap.add_argument("--tasks", default="rte,stsb")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--glue-dir", type=Path,
                    default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "glue")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT, help=f"where the report goes (default: {OUT})")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    p = protocol.load("sane", (args.overrides or DEFAULTS) + [f"seeds=[{args.seeds}]"])
    chosen = tasks.resolve(args.tasks, args.glue_dir)
    cpu, load = torch.device("cpu"), [os.getloadavg()[0]]
    runs = {b: {t.name: [] for t in chosen} for b in BACKENDS}  # per backend and task: one record per seed
    seconds = {b: {"train": 0.0, "eval": 0.0, "wall": 0.0} for b in BACKENDS}
    entries = {}
    for task in chosen:
        for i, seed in enumerate(p.seeds):  # one seed at a time, the backends in alternating order
            for backend in BACKENDS if i % 2 == 0 else BACKENDS[::-1]:
                t0 = time.perf_counter()
                res = evaluate(args.checkpoint, [task], dataclasses.replace(p, seeds=[seed]), args.glue_dir,
                               ["pretrained"], cpu, backend=backend, log=lambda s: print(s, flush=True))
                seconds[backend]["wall"] += time.perf_counter() - t0
                entries[task.name] = res["tasks"][task.name]
                run = res["tasks"][task.name]["runs"]["pretrained"][str(seed)]
                runs[backend][task.name].append(run)
                seconds[backend]["train"] += run["train_seconds"]
                seconds[backend]["eval"] += run["eval_seconds"]
            load.append(os.getloadavg()[0])
    cfg, _ = read_config(args.checkpoint)
    card = args.checkpoint / README
    trained = card.read_text().split("## Pretraining")[1].split("##")[0].strip() if card.is_file() else ""
    rows, verdicts = [], []
    for task in chosen:
        entry = entries[task.name]
        for metric in task.metrics:
            per = {b: [r["scores"]["dev"][metric] for r in runs[b][task.name]] for b in BACKENDS}
            med = {b: float(np.median(v)) for b, v in per.items()}
            spread = {b: max(v) - min(v) for b, v in per.items()}
            gap = abs(med["cramkit"] - med["hf"])
            within = gap <= max(spread.values())
            verdicts.append(within)
            rows.append(f"| {task.title} | {_METRIC_NAMES[metric]} | {entry['used']['train']}/{entry['used']['dev']} | "
                        f"{entry['majority']['dev'][metric]:.1f} | "
                        + " | ".join(f"**{med[b]:.1f}** | {spread[b]:.1f} | " + " · ".join(f"{x:.1f}" for x in per[b])
                                     for b in BACKENDS)
                        + f" | {gap:.1f} | {'yes' if within else 'no'} |")
    n_runs = len(chosen) * len(p.seeds)

    def ratio(phase: str) -> float:
        return seconds["hf"][phase] / seconds["cramkit"][phase]

    def verdict(r: float) -> str:
        return ("cramkit's loop is faster" if r > 1.1 else "the Trainer is faster" if r < 0.9
                else "no difference beyond this machine's noise (10%)")

    speed = ratio("train")
    pairs = [h["train_seconds"] / c["train_seconds"] for t in chosen
             for c, h in zip(runs["cramkit"][t.name], runs["hf"][t.name], strict=True)]
    cmd = (f"PYTHONPATH=. .venv/bin/python benchmarks/glue_backends.py {args.checkpoint} "
           f"{' '.join(args.overrides or DEFAULTS)} --tasks {args.tasks} --seeds {args.seeds} --threads {args.threads}")
    text = "\n".join([
        "# GLUE fine-tuning: cramkit's loop vs transformers' Trainer on the exported model", "",
        f"Checkpoint `{args.checkpoint}` ({cfg.num_layers} x {cfg.hidden_size}, vocab {cfg.vocab_size}, crammed), "
        f"the same folder for both: cramkit loads it with `model.io.load_pretrained`, transformers with "
        f"`AutoModelForSequenceClassification.from_pretrained(..., trust_remote_code=True)` and `AutoTokenizer`. "
        "Its pretraining, from its model card:", "", trained, "",
        f"Protocol **{p.name}** with {', '.join(args.overrides or DEFAULTS)}: lr {p.lr:g}, batch {p.batch_size}, "
        f"{p.epochs} epochs, {p.schedule} decay, {p.warmup:.0%} warm-up, dropout {p.dropout:g}, max length "
        f"{p.max_length}, seeds {p.seeds}; the same fixed-seed subsets and metrics for both; dev scores x100.", "",
        "| Task | Metric | n train/dev | Majority | cramkit median | spread | cramkit per seed | "
        "HF Trainer median | spread | HF per seed | gap of medians | within the larger spread |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|", *rows, "",
        f"Agreement within seed noise (gap of the medians <= the larger spread): **{sum(verdicts)}/{len(verdicts)}** "
        "metrics. Seeds do not pair up across backends: the Trainer's sampler shuffles in another order and its "
        "head initialisation draws the seeded generator in another order.", "",
        "Fine-tuning time, all runs, fp32 on CPU:", "",
        "| backend | train s | eval s | wall s (incl. loading, tokenizing) | train s per run |", "|---|---|---|---|---|",
        *(f"| {b} | {seconds[b]['train']:.1f} | {seconds[b]['eval']:.1f} | {seconds[b]['wall']:.1f} | "
          f"{seconds[b]['train'] / n_runs:.2f} |" for b in BACKENDS), "",
        f"Training: the Trainer takes **{speed:.2f}x** the time of cramkit's loop in total; per seed, run back "
        f"to back, {float(np.median(pairs)):.2f}x in the median (range {min(pairs):.2f}-{max(pairs):.2f}x): "
        f"{verdict(float(np.median(pairs)))}. Evaluation: {ratio('eval'):.2f}x; everything, loading and "
        f"tokenizing included: {ratio('wall'):.2f}x.",
        "",
        f"Command: `{cmd}`  ", f"Machine: 2-core x86_64 VM ({platform.machine()}), {args.threads} threads, shared with "
        f"other jobs; 1-min load average {' -> '.join(f'{x:.1f}' for x in load)} (start, then after each seed's pair of runs).",
        ""])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
