"""Packing with or without cross-document attention: MLM pretraining at equal tokens with train.py's
`document_mask=false` (cramming: every token of a packed row attends to every other) and `document_mask=true`
(attention only within each document, from the shards' segment_ids), same shards, model, seed and budget.

Both runs start together as child processes, one thread each, pinned to their own core where there are
two, so the machine's other load slows both alike. A slice of rows spread evenly over the shard set is held
out (never trained on); each final model is scored on it with one fixed masking (exactly round(0.15 x
seq_len) positions per row, 80/10/10, seed 1234), with the attention it was trained with and with the
other one. For scale: the loss of the training rows' unigram frequencies (add-one) on the same targets.

    python -m pipeline --input ../shared/data/text --output out/docmask tokenizer.vocab_size=8192 \\
        tokenizer.compression_cutoff=0.3 order.name=random pack.segments=true
    PYTHONPATH=. .venv/bin/python benchmarks/document_mask.py --shards out/docmask --budget 2e6tok
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from model.config import PRESET_DIR
from model.io import load_pretrained
from pipeline.shards import ShardSet, write_manifest, write_shard
from trainer.data import special_token_ids
from trainer.masking import IGNORE, Masker

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "document_mask.md"
WORK = ROOT / "benchmarks" / "work" / "document_mask"
SETTINGS = {"across documents (cramming)": "false", "within documents (document_mask)": "true"}


def split(shards: ShardSet, heldout: int, folder: Path) -> np.ndarray:
    """Write every row but `heldout` ones spread evenly over the set as a training shard set (segment_ids
    kept); return the held-out row indices."""
    held = ((np.arange(heldout) + 0.5) * len(shards) / heldout).astype(np.int64)
    keep = np.setdiff1d(np.arange(len(shards)), held)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    entries = [write_shard(folder / f"shard-{i:06d}.arrow", shards.take(part),
                           segment_ids=shards.take(part, column="segment_ids"))
               for i, part in enumerate(np.array_split(keep, max(1, len(keep) // 8192)))]
    shutil.copyfile(shards.tokenizer_file, folder / "tokenizer.json")
    write_manifest(folder, seq_len=shards.seq_len, vocab_size=shards.vocab_size, shards=entries,
                   config={"split_of": shards.manifest["content_hash"], "heldout": heldout}, order={},
                   packing=shards.manifest["packing"], counts={}, tokens={"total": len(keep) * shards.seq_len},
                   columns=("input_ids", "segment_ids"))
    return held


def run_both(args: argparse.Namespace, model_yaml: Path) -> tuple[dict, list[int]]:
    """Both train.py runs at once, one thread each, pinned to a core each where there are two; per setting
    its tokens, training seconds, process wall and CPU time."""
    available = sorted(os.sched_getaffinity(0))
    cores = available[:2] if len(available) > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs, t0 = {}, time.perf_counter()
    for i, (name, flag) in enumerate(SETTINGS.items()):
        cmd = [sys.executable, str(ROOT / "train.py"), "--config", "tiny", "--model", str(model_yaml),
               "--shards", str(WORK / "train-shards"), "--budget", args.budget, f"out={WORK / 'runs'}",
               f"name=mask-{flag}", "--overwrite", f"document_mask={flag}", f"seed={args.seed}", "threads=1",
               "checkpoint_every=1h", "log_every=15", "precision=fp32"]
        pin = (lambda core=cores[i]: os.sched_setaffinity(0, {core})) if cores else None
        with open(WORK / f"mask-{flag}.log", "w") as log:
            procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           preexec_fn=pin)
    names, out = {p.pid: name for name, p in procs.items()}, {}
    while len(out) < len(procs):
        pid, status, ru = os.wait4(-1, 0)
        name = names[pid]
        if os.waitstatus_to_exitcode(status):
            sys.exit(f"{name}: train.py failed; see {WORK / f'mask-{SETTINGS[name]}.log'}")
        run = WORK / "runs" / f"mask-{SETTINGS[name]}"
        last = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][-1]
        out[name] = {"wall_s": time.perf_counter() - t0, "cpu_s": ru.ru_utime + ru.ru_stime, "tokens": last["tokens"],
                     "train_s": last["elapsed_s"], "final": run / "final"}
    return out, cores


@torch.no_grad()
def heldout_loss(model, rows: np.ndarray, segments: np.ndarray | None, masker: Masker, batch: int = 64) -> float:
    """Mean cross-entropy over the fixed masked positions of the held-out rows."""
    total, count = 0.0, 0
    for s in range(0, len(rows), batch):
        m = masker(rows[s : s + batch], index=s)
        seg = None if segments is None else torch.from_numpy(segments[s : s + batch].astype(np.int64))
        live = int((m.targets != IGNORE).sum())
        loss = model(torch.from_numpy(m.input_ids), torch.from_numpy(m.positions), torch.from_numpy(m.targets),
                     segment_ids=seg)
        total, count = total + loss.item() * live, count + live
    return total / count


def unigram_loss(shards: ShardSet, train_rows: np.ndarray, rows: np.ndarray, masker: Masker, batch: int = 64) -> float:
    """Cross-entropy of the training rows' add-one token frequencies on the same held-out targets."""
    counts = np.ones(shards.vocab_size)
    for s in range(0, len(train_rows), 8192):
        counts += np.bincount(shards.take(train_rows[s : s + 8192]).ravel(), minlength=shards.vocab_size)
    logp = np.log(counts / counts.sum())
    targets = np.concatenate([masker(rows[s : s + batch], index=s).targets.ravel() for s in range(0, len(rows), batch)])
    return float(-logp[targets[targets != IGNORE]].mean())


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", required=True, help="an mlm shard set built with pack.segments=true")
    ap.add_argument("--budget", default="2e6tok", help="token budget of each run (default 2e6tok)")
    ap.add_argument("--heldout", type=int, default=512, help="rows held out, spread evenly over the set")
    ap.add_argument("--model", default="tiny", help="model preset; its vocabulary is set to the shards'")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(1)
    shards = ShardSet(args.shards)
    if "segment_ids" not in shards.columns:
        sys.exit(f"{args.shards}: no segment_ids column; build the shards with pack.segments=true")
    held = split(shards, args.heldout, WORK / "train-shards")
    model = yaml.safe_load((PRESET_DIR / f"{args.model}.yaml").read_text())
    model_yaml = WORK / "model.yaml"
    model_yaml.write_text(yaml.safe_dump({**model, "vocab_size": shards.vocab_size}))
    loads = [load_average()]
    runs, cores = run_both(args, model_yaml)
    loads.append(load_average())

    specials = special_token_ids(shards.tokenizer_file)
    masker = Masker(specials["[MASK]"], shards.vocab_size, fraction=0.15, mode="exact", seed=1234)
    rows, segments = shards.take(held), shards.take(held, column="segment_ids")
    boundaries = float((segments.max(axis=1) + 1).mean())
    for side in runs.values():
        model = load_pretrained(side["final"], kind="mlm").eval()
        side["across"] = heldout_loss(model, rows, None, masker)
        side["within"] = heldout_loss(model, rows, segments, masker)
    unigram = unigram_loss(shards, np.setdiff1d(np.arange(len(shards)), held), rows, masker)

    pinning = f"pinned to cores {cores[0]} and {cores[1]}" if cores else "not pinned (one core available)"
    lines = [
        "# Packing: MLM with and without cross-document attention (CPU, both runs at the same time)", "",
        f"Command: `PYTHONPATH=. .venv/bin/python benchmarks/document_mask.py --shards {args.shards} "
        f"--budget {args.budget} --heldout {args.heldout} --model {args.model} --seed {args.seed}`", "",
        f"Machine: {os.cpu_count()}-core {platform.machine()} VM, CPU, fp32, torch {torch.__version__}, Python "
        f"{platform.python_version()}; shared with other jobs. Both runs start together, one thread each, "
        f"{pinning}. Load average (1/5/15 min) before / after: {' | '.join(loads)} (the two runs add about 2).", "",
        f"Data: `{args.shards}` (content hash {shards.manifest['content_hash'][:12]}), {len(shards) - len(held):,} "
        f"training rows of {shards.seq_len} tokens, vocab {shards.vocab_size:,}; {len(held)} held-out rows spread "
        f"evenly over the set, {boundaries:.2f} documents per held-out row on average. Model: the `{args.model}` "
        f"preset with the shards' vocabulary, `configs/train/tiny.yaml` recipe, seed {args.seed}, budget "
        f"{args.budget} each. Held-out: exactly round(0.15 x {shards.seq_len}) masked positions per row, 80/10/10, "
        "seed 1234, the same for every model and column.", "",
        "| setting | tokens | held-out MLM loss, attention as trained | held-out loss, the other attention "
        "| tokens/s | train time (s) | process CPU / wall |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, side in runs.items():
        trained, other = ("within", "across") if SETTINGS[name] == "true" else ("across", "within")
        lines.append(f"| {name} | {side['tokens']:,} | **{side[trained]:.3f}** | {side[other]:.3f} | "
                     f"{side['tokens'] / side['train_s']:,.0f} | {side['train_s']:.0f} | "
                     f"{side['cpu_s'] / side['wall_s']:.2f} |")
    lines += ["", f"For scale: unigram frequencies of the training rows score {unigram:.3f} on the same targets; a "
              f"uniform guess ln V = {math.log(shards.vocab_size):.3f}.", ""]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
