"""Packing with or without cross-document attention: MLM pretraining at equal tokens with train.py's
`document_mask=false` (cramming: every token of a packed row attends to every other) and `document_mask=true`
(attention only within each document, from the shards' segment_ids), same shards, model, seed and budget.

Both runs start together as child processes, one thread each, pinned to their own core where there are
two, so the machine's other load slows both alike. The figure is train.py's own held-out loss at the end
of the budget (its fixed task on `heldout_rows` rows the runs never train on, scored with the attention the
run trained with; see trainer/heldout.py), next to the unigram entropy of the rows. Each final model is
also scored on the same task with the other attention, which shows how much each has come to rely on it.

    python -m pipeline --input ../shared/data/text --output out/docmask tokenizer.vocab_size=4096 \\
        tokenizer.compression_cutoff=0 order.name=random pack.segments=true
    PYTHONPATH=. .venv/bin/python benchmarks/document_mask.py --shards out/docmask --budget 2e6tok \\
        micro_batch=16 batch_size=16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from model.io import load_pretrained
from model.tokenizer import special_ids
from pipeline.tokens.shards import ShardSet
from trainer.heldout import HeldOut, heldout_indices

sys.path.insert(0, str(Path(__file__).resolve().parent))
import side_by_side  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "document_mask.md"
WORK = ROOT / "benchmarks" / "work" / "document_mask"
SETTINGS = {"across documents (cramming)": False, "within documents (document_mask=true)": True}


def run_both(args: argparse.Namespace) -> tuple[dict, list[int]]:
    """Both train.py runs at once (benchmarks/side_by_side.py); per setting its last metrics records, process
    wall and CPU seconds."""
    cmds = {f"mask-{within}": [
        sys.executable, str(ROOT / "train.py"), "--config", "tiny", "--model", args.model, "--shards", args.shards,
        "--budget", args.budget, f"out={WORK}", f"name=mask-{within}", "--overwrite",
        f"document_mask={str(within).lower()}", f"seed={args.seed}", "threads=1", f"heldout_rows={args.heldout}",
        "eval_every=1h", "checkpoint_every=1h", "log_every=20", "precision=fp32", "compile=false", *args.settings]
        for within in SETTINGS.values()}
    usage, cores = side_by_side.run_pinned(cmds, WORK, ROOT)
    out = {}
    for name, within in SETTINGS.items():
        run = WORK / f"mask-{within}"
        if usage[run.name]["returncode"]:
            sys.exit(f"{name}: train.py failed; see {run}.log")
        records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        held = [r for r in records if "heldout_loss" in r]
        trained = [r for r in records if "loss" in r]
        out[name] = {**usage[run.name], "tokens": held[-1]["tokens"], "train_s": held[-1]["elapsed_s"],
                     "final": run / "final", "heldout": held[-1]["heldout_loss"],
                     "heldout_init": held[0]["heldout_loss"], "entropy": held[-1]["unigram_entropy"],
                     "train_loss": float(np.mean([r["loss"] for r in trained[-5:]]))}
    return out, cores


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", required=True, help="an mlm shard set built with pack.segments=true")
    ap.add_argument("--budget", default="2e6tok", help="token budget of each run (default 2e6tok)")
    ap.add_argument("--heldout", type=int, default=512, help="train.py's heldout_rows (default 512)")
    ap.add_argument("--model", default="tiny-2", help="model preset (default tiny-2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("settings", nargs="*", help="more train.py settings (key=value) for both runs")
    args = ap.parse_args()

    torch.set_num_threads(1)
    shards = ShardSet(args.shards)
    if "segment_ids" not in shards.columns:
        sys.exit(f"{args.shards}: no segment_ids column; build the shards with pack.segments=true")
    WORK.mkdir(parents=True, exist_ok=True)
    loads = [load_average()]
    runs, cores = run_both(args)
    loads.append(load_average())

    specials = special_ids(shards.tokenizer_file)
    rows = heldout_indices(len(shards), min(args.heldout, len(shards) // 10))  # the rows train.py held out
    documents = float((shards.take(rows, "segment_ids").max(axis=1) + 1).mean())
    for side_name, side in runs.items():
        other = HeldOut(shards, rows, specials["[MASK]"], tuple(specials.values()), 64,
                        document_mask=not SETTINGS[side_name])
        side["heldout_other"] = other.loss(load_pretrained(side["final"], kind="mlm"), torch.device("cpu"),
                                           nullcontext)

    pinning = f"pinned to cores {cores[0]} and {cores[1]}" if cores else "not pinned (one core available)"
    lines = [
        "# Packing: MLM with and without cross-document attention (CPU, both runs at the same time)", "",
        f"Command: `PYTHONPATH=. .venv/bin/python benchmarks/document_mask.py --shards {args.shards} "
        f"--budget {args.budget} --heldout {args.heldout} --model {args.model} --seed {args.seed}"
        f"{''.join(' ' + x for x in args.settings)}`", "",
        f"Machine: {os.cpu_count()}-core {platform.machine()} VM, CPU, fp32, torch {torch.__version__}, Python "
        f"{platform.python_version()}; shared with other jobs. Both runs start together, one thread each, "
        f"{pinning}. Load average (1/5/15 min) before / after: {' | '.join(loads)} (the two runs add about 2).", "",
        f"Data: `{args.shards}` (content hash {shards.manifest['content_hash'][:12]}), {len(shards):,} rows of "
        f"{shards.seq_len} tokens, vocab {shards.vocab_size:,}; train.py holds out {len(rows)} rows spread evenly "
        f"over the set, {documents:.2f} documents per held-out row on average. Model: the `{args.model}` preset, "
        f"`configs/train/tiny.yaml` recipe{' with ' + ', '.join(args.settings) if args.settings else ''}, seed "
        f"{args.seed}, budget {args.budget} each.", "",
        "| setting | tokens | held-out MLM loss (as trained) | same model, the other attention | at init "
        "| train loss (last 5 logs) | tokens/s | process CPU / wall |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, side in runs.items():
        lines.append(f"| {name} | {side['tokens']:,} | **{side['heldout']:.3f}** | {side['heldout_other']:.3f} | "
                     f"{side['heldout_init']:.3f} | {side['train_loss']:.3f} | "
                     f"{side['tokens'] / side['train_s']:,.0f} | {side['cpu_s'] / side['wall_s']:.2f} |")
    entropy = next(iter(runs.values()))["entropy"]
    lines += ["", f"Unigram entropy of the rows: {entropy:.3f} nats (the best context-free guess; below it, a model "
              "uses the context).", ""]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
