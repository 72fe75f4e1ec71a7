"""The ablation behind the `desktop` presets: settings of train.py compared two ways on a CPU.

- loss: each setting trained to the same token budget (`--tokens`), one thread per run, and scored by its
  held-out MLM loss at the end (train.py's own held-out evaluation: fixed rows, every target [MASK]ed).
  A token budget makes the loss independent of the machine's load, so settings compare fairly on a shared
  machine, and `--jobs 2` runs two at once.
- speed: each setting trained for `--seconds` of wall-clock with the threads it would have (all cores);
  tokens/s from train.py's log, with the load average before and after, and the process's CPU seconds.

From both: the tokens a 30-minute budget gives at that speed. Results accumulate in
benchmarks/work/desktop/results.json (rerun with --only to add or redo settings) and the table is
rewritten to benchmarks/results/desktop_ablation.md each time.

    PYTHONPATH=. .venv/bin/python benchmarks/desktop_ablation.py --shards 'S-{vocab}' --measure loss --tokens 1.5e6 --jobs 2
    PYTHONPATH=. .venv/bin/python benchmarks/desktop_ablation.py --shards 'S-{vocab}' --measure speed --seconds 120

where S-8192 and S-4096 are shard sets of the same text with those vocabularies.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work" / "desktop"
OUT = ROOT / "benchmarks" / "results" / "desktop_ablation.md"


def shape(layers: int, hidden: int, heads: int, ffn: int, vocab: int = 8192) -> dict:
    return {"arch": "crammed", "vocab_size": vocab, "max_seq_len": 128, "hidden_size": hidden, "num_layers": layers,
            "num_heads": heads, "intermediate_size": ffn, "dropout": 0.0, "pad_token_id": 0, "type_vocab_size": 0,
            "norm_eps": 1e-12, "init_std": 0.02, "head_dim": hidden, "pool": "first"}


# name -> (model shape, train.py settings on top of configs/train/tiny.yaml); A is the reference and every
# other setting changes one thing of it.
BASE = {"micro_batch": 32, "batch_size": 32, "batch_ramp": 0.0, "lr": 2e-3, "precision": "bf16", "shuffle": True}
MINI = shape(4, 256, 4, 1024)  # BERT-Mini's depth and width (Turc et al. 2019), crammed blocks
SETTINGS = {
    "A_4x256_b32_lr2e-3": (MINI, BASE),
    "B_ramp_to_128": (MINI, {**BASE, "batch_size": 128, "batch_ramp": 0.6}),
    "C_lr1e-3": (MINI, {**BASE, "lr": 1e-3}),
    "D_lr4e-3": (MINI, {**BASE, "lr": 4e-3}),
    "E_2x256": (shape(2, 256, 4, 1024), BASE),
    "F_vocab4096": (shape(4, 256, 4, 1024, vocab=4096), BASE),
    "G_mask15": (MINI, {**BASE, "mask_fraction": 0.15}),
    "H_mask40": (MINI, {**BASE, "mask_fraction": 0.4}),
    "I_4x128": (shape(4, 128, 2, 512), BASE),
    "J_6x192": (shape(6, 192, 3, 768), BASE),
    "K_one_cycle": (MINI, {**BASE, "schedule": "one-cycle"}),
    "L_micro16": (MINI, {**BASE, "micro_batch": 16, "batch_size": 16}),
    "M_fp32": (MINI, {**BASE, "precision": "fp32"}),
}


def model_file(name: str, spec: dict) -> Path:
    path = WORK / "models" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    return path


def train(name: str, shards: str, budget: str, threads: int, extra: dict) -> dict:
    """One train.py run; its last held-out record and its throughput, CPU time and load."""
    spec, settings = SETTINGS[name]
    run = f"{name}-{budget}"
    shards = shards.format(vocab=spec["vocab_size"])
    args = [sys.executable, str(ROOT / "train.py"), "--config", "tiny", "--shards", shards, "--budget", budget,
            "--name", run, "--overwrite", f"out={WORK / 'runs'}", f"model={model_file(name, spec)}",
            f"threads={threads}", "checkpoint_every=10h", "eval_every=3m", "log_every=5"]
    args += [f"{k}={v}" for k, v in {**settings, **extra}.items()]
    log = WORK / "runs" / f"{run}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    load_before, t0 = os.getloadavg(), time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own CPU time
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{name}: train.py failed:\n{log.read_text()[-3000:]}")
    records = [json.loads(x) for x in (WORK / "runs" / run / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in records if "loss" in r]
    held = [r for r in records if "heldout_loss" in r]
    last = train_recs[-1]
    return {"tokens": last["tokens"], "steps": last["step"], "elapsed_s": last["elapsed_s"],
            "tokens_per_s": last["tokens"] / last["elapsed_s"], "wall_s": time.perf_counter() - t0,
            "window_tokens_per_s": sorted(r["tokens_per_s"] for r in train_recs[1:] or train_recs)[
                len(train_recs[1:] or train_recs) // 2],
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "heldout_loss": held[-1]["heldout_loss"], "unigram_entropy": held[-1]["unigram_entropy"],
            "heldout_curve": [(r["tokens"], round(r["heldout_loss"], 4)) for r in held],
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
            "threads": threads, "budget": budget, "settings": {**settings, **extra}, "model": spec}


def table(results: dict) -> str:
    lines = ["# Desktop ablation (CPU)", "",
             "Loss: the held-out MLM loss (nats; fixed held-out rows, every target [MASK]) after the same token "
             "budget, one thread per run; tok/CPU-s: its tokens per CPU second of the whole process (start-up and "
             "held-out evaluations included), a load-independent speed. Speed: the median tokens/s of the 5-s log "
             "windows of a timed run with all cores; load = 1-minute load average before -> after (2 cores; other "
             "jobs shared the machine). 30-min tokens = speed x 1800 s.",
             "",
             "| setting | shape (L x H, FFN, vocab) | settings | tokens | steps | held-out loss | unigram entropy "
             "| below entropy | tok/CPU-s | tokens/s | load | 30-min tokens |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for name in sorted(results):
        speed = results[name].get("speed")
        for loss in results[name].get("loss", {}).values() or [None]:
            m = (loss or speed)["model"]
            settings = ", ".join(f"{k}={v}" for k, v in (loss or speed)["settings"].items())
            cells = [name, f"{m['num_layers']} x {m['hidden_size']}, {m['intermediate_size']}, {m['vocab_size']}",
                     settings]
            if loss:
                cells += [f"{loss['tokens']:,}", str(loss["steps"]), f"{loss['heldout_loss']:.3f}",
                          f"{loss['unigram_entropy']:.3f}", f"{loss['unigram_entropy'] - loss['heldout_loss']:+.3f}",
                          f"{loss['tokens'] / loss['cpu_s']:,.0f}"]
            else:
                cells += ["–"] * 6
            if speed:
                rate = speed["window_tokens_per_s"]
                cells += [f"{rate:,.0f}", f"{speed['load_before'][0]} -> {speed['load_after'][0]}",
                          f"{rate * 1800 / 1e6:.1f}M"]
            else:
                cells += ["–"] * 3
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", required=True,
                    help="shard folder; {vocab} in it is replaced by the setting's vocabulary size")
    ap.add_argument("--measure", choices=("loss", "speed"), required=True)
    ap.add_argument("--tokens", default="3e6", help="token budget of the loss runs")
    ap.add_argument("--seconds", type=int, default=120, help="wall-clock of the speed runs")
    ap.add_argument("--only", default="", help="comma list of settings (default: all)")
    ap.add_argument("--jobs", type=int, default=1, help="loss runs at once (one thread each)")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(SETTINGS)
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown:
        ap.error(f"unknown settings {unknown}; known: {', '.join(SETTINGS)}")
    store = WORK / "results.json"
    WORK.mkdir(parents=True, exist_ok=True)

    lock = threading.Lock()

    def one(name: str) -> None:
        if args.measure == "loss":
            result = train(name, args.shards, f"{float(args.tokens):.0f}tok", 1, {})
        else:
            result = train(name, args.shards, f"{args.seconds}s", os.cpu_count() or 1, {})
        with lock:
            results = json.loads(store.read_text()) if store.is_file() else {}
            if args.measure == "loss":
                results.setdefault(name, {}).setdefault("loss", {})[result["budget"]] = result
            else:
                results.setdefault(name, {})["speed"] = result
            store.write_text(json.dumps(results, indent=1))
            OUT.write_text(table(results))
        print(f"{name}: {args.measure} " + (f"held-out {result['heldout_loss']:.3f}" if args.measure == "loss"
                                            else f"{result['tokens_per_s']:,.0f} tokens/s") +
              f" (load {result['load_before'][0]} -> {result['load_after'][0]})", flush=True)

    jobs = args.jobs if args.measure == "loss" else 1
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
