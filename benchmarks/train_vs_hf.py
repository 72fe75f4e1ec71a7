"""MLM pretraining side by side on this machine: cramkit's train.py vs a Hugging Face BertForMaskedLM +
Trainer baseline (run_mlm-style: DataCollatorForLanguageModeling at 15%, linear schedule with warm-up).

Same shard rows, same model width and depth (4 layers x 256, 4 heads, vocab of the shards), same
wall-clock budget, and both at the same time: two child processes started together, each on one thread
(torch.set_num_threads(1), OMP/MKL_NUM_THREADS=1) and pinned to its own core when 2+ cores are available,
so that whatever else the machine runs slows both sides alike. Reported: tokens/s, each process's wall and
CPU time, the load average before/after, and the MLM loss on a held-out slice of the shards that neither
side trains on, with one fixed masking for both (exactly round(0.15 * seq_len) positions per row,
80/10/10, seed 1234).

    PYTHONPATH=. .venv/bin/python benchmarks/train_vs_hf.py --shards out/corpus --minutes 5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.io import load_pretrained
from pipeline.tokens.shards import ShardSet, write_manifest, write_shard
from trainer.config import load
from trainer.masking import Masker

sys.path.insert(0, str(Path(__file__).resolve().parent))
import side_by_side  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "train_vs_hf.md"
WORK = ROOT / "benchmarks" / "work" / "train_vs_hf"
TRAIN = WORK / "train-shards"


def split(shards: ShardSet, heldout: int, folder: Path) -> np.ndarray:
    """Write all rows but the last `heldout` as a training shard set; return the held-out rows."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    n = len(shards) - heldout
    entries = [write_shard(folder / f"shard-{i:06d}.arrow", shards.take(np.arange(s, min(n, s + 4096))))
               for i, s in enumerate(range(0, n, 4096))]
    shutil.copyfile(shards.tokenizer_file, folder / "tokenizer.json")
    write_manifest(folder, seq_len=shards.seq_len, vocab_size=shards.vocab_size, shards=entries,
                   config={"split_of": str(shards.path), "heldout": heldout}, order={}, packing={},
                   counts={}, tokens={"total": n * shards.seq_len})
    return shards.take(np.arange(n, len(shards)))


def heldout_loss(logits_at, rows: np.ndarray, masker: Masker, batch: int = 32) -> float:
    """Mean cross-entropy over the fixed masked positions; logits_at(ids, positions) -> [B, k, V]."""
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(rows), batch):
            m = masker(rows[s : s + batch], index=s)
            logits = logits_at(torch.from_numpy(m.input_ids), torch.from_numpy(m.positions))
            targets = torch.from_numpy(m.targets)
            total += F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum").item()
            count += targets.numel()
    return total / count


def hf_trainer(micro: int, steps: int, seconds: float, out: Path):
    """The HF baseline's Trainer on the training split, stopped by max_steps or after `seconds` of training."""
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        DataCollatorForLanguageModeling,
        PreTrainedTokenizerFast,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    shards = ShardSet(TRAIN)
    tok = PreTrainedTokenizerFast(tokenizer_file=str(shards.tokenizer_file), pad_token="[PAD]",
                                  unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    cfg = BertConfig(vocab_size=shards.vocab_size, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=1024, max_position_embeddings=shards.seq_len, type_vocab_size=2,
                     hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(shards)

        def __getitem__(self, i):
            return {"input_ids": torch.from_numpy(shards[i].astype(np.int64))}

    class Deadline(TrainerCallback):
        def __init__(self, seconds):
            self.seconds, self.start = seconds, None

        def on_train_begin(self, args, state, control, **kw):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if time.perf_counter() - self.start >= self.seconds:
                control.should_training_stop = True

    torch.manual_seed(0)
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=micro, learning_rate=5e-4,
                             weight_decay=0.01, adam_beta2=0.98, adam_epsilon=1e-6, max_steps=steps,
                             warmup_steps=max(1, steps // 16), lr_scheduler_type="linear", use_cpu=True,
                             report_to=[], save_strategy="no", logging_steps=50, disable_tqdm=True,
                             dataloader_num_workers=0, seed=0)
    return Trainer(model=BertForMaskedLM(cfg), args=args, train_dataset=Rows(),
                   data_collator=DataCollatorForLanguageModeling(tok, mlm_probability=0.15),
                   callbacks=[Deadline(seconds)])


def hf_steps(minutes: float, micro: int) -> int:
    """HF's linear schedule length from a short untimed probe on one thread, like the run; 20% spare so that
    the deadline, not max_steps, ends the run (the probe's rate includes its start-up)."""
    probe = hf_trainer(micro, 4, 1e9, WORK / "hf-probe").train()
    return max(1, int(1.2 * minutes * 60 * probe.metrics["train_steps_per_second"]))


def run_hf(minutes: float, micro: int, steps: int) -> None:
    """The HF side's child process: train until the deadline; save the model and the figures in WORK/hf."""
    torch.set_num_threads(1)
    hf = hf_trainer(micro, steps, minutes * 60, WORK / "hf")
    result = hf.train()
    hf.save_model(str(WORK / "hf" / "final"))
    (WORK / "hf" / "result.json").write_text(json.dumps({
        "steps": hf.state.global_step, "train_s": result.metrics["train_runtime"],
        "train_loss": result.training_loss}))


def run_both(args: argparse.Namespace, steps: int) -> tuple[dict, dict, list[int]]:
    """Start train.py and the HF side together, one thread each, pinned to cores of their own when there are
    2+; wait for both. Each side's dict holds its process's wall time and CPU time (user + system, from
    its resource usage). Also returns the cores used (empty: not pinned)."""
    cmds = {
        "cramkit": [sys.executable, str(ROOT / "train.py"), "--config", "tiny", "--shards", str(TRAIN),
                    "--budget", f"{args.minutes}m", f"out={WORK / 'runs'}", "name=cramkit", "--overwrite",
                    f"micro_batch={args.micro_batch}", f"batch_size={args.batch}", "checkpoint_every=1h",
                    "log_every=15", "threads=1"],
        "hf": [sys.executable, __file__, "--minutes", str(args.minutes), "--micro-batch", str(args.micro_batch),
               "--hf-steps", str(steps)],
    }
    usage, cores = side_by_side.run_pinned(cmds, WORK, ROOT)
    for name, side in usage.items():
        if side["returncode"]:
            sys.exit(f"{name} side failed (exit {side['returncode']}); see {WORK / f'{name}.log'}")

    run = WORK / "runs" / "cramkit"
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    ours = {**usage["cramkit"], "tokens": last["tokens"], "train_s": last["elapsed_s"],
            "train_loss": last["loss"], "final": run / "final"}
    hf = json.loads((WORK / "hf" / "result.json").read_text())
    peer = {**usage["hf"], **hf, "tokens": hf["steps"] * args.micro_batch * ShardSet(TRAIN).seq_len}
    return ours, peer, cores


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", default="out/corpus")
    ap.add_argument("--minutes", type=float, default=5.0, help="wall-clock budget of each side (run together)")
    ap.add_argument("--heldout", type=int, default=256, help="rows at the end kept for evaluation")
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64, help="cramkit's final batch (ramped)")
    ap.add_argument("--hf-steps", type=int, help=argparse.SUPPRESS)  # internal: be the HF side's child
    args = ap.parse_args()
    if args.hf_steps:
        run_hf(args.minutes, args.micro_batch, args.hf_steps)
        return

    loads = [load_average()]
    torch.set_num_threads(1)  # the probe and the evaluation, like each side
    shards = ShardSet(args.shards)
    heldout = split(shards, args.heldout, TRAIN)
    masker = Masker(_mask_id(shards), shards.vocab_size, fraction=0.15, mode="exact", seed=1234)
    ours, peer, cores = run_both(args, hf_steps(args.minutes, args.micro_batch))
    loads.append(load_average())

    from transformers import BertForMaskedLM

    model = load_pretrained(ours["final"], kind="mlm")
    hf_model = BertForMaskedLM.from_pretrained(WORK / "hf" / "final").eval()
    ours["heldout"] = heldout_loss(lambda ids, pos: model.predict(
        model.encoder(ids).gather(1, pos.unsqueeze(-1).expand(-1, -1, model.cfg.hidden_size))), heldout, masker)
    peer["heldout"] = heldout_loss(lambda ids, pos: hf_model(input_ids=ids).logits.gather(
        1, pos.unsqueeze(-1).expand(-1, -1, shards.vocab_size)), heldout, masker)
    for side in (ours, peer):
        side["tok_s"] = side["tokens"] / side["train_s"]

    uniform = math.log(shards.vocab_size)
    pinning = f"pinned to cores {cores[0]} and {cores[1]}" if cores else "not pinned (one core available)"
    lines = [
        "# Pretraining: cramkit train.py vs HF BertForMaskedLM + Trainer (CPU, run at the same time)", "",
        f"Command: `PYTHONPATH=. .venv/bin/python benchmarks/train_vs_hf.py --shards {args.shards} "
        f"--minutes {args.minutes:g} --heldout {args.heldout} --micro-batch {args.micro_batch} --batch {args.batch}`",
        "",
        f"Machine: {os.cpu_count()}-core {platform.machine()} VM, CPU, fp32, torch {torch.__version__}, "
        f"Python {platform.python_version()}; shared with other jobs. Both sides run at the same time as two "
        "child processes started together, one thread each (torch.set_num_threads(1), OMP/MKL_NUM_THREADS=1), "
        f"{pinning}. Load average (1/5/15 min) before / after: {' | '.join(loads)} (the two sides add about 2).",
        "",
        f"Data: {len(shards) - args.heldout} training rows of {shards.seq_len} tokens from `{args.shards}`, "
        f"vocab {shards.vocab_size} (uniform loss ln V = {uniform:.2f}); held-out: the last {args.heldout} rows, "
        "masked once for both (exactly round(0.15 x seq) positions per row, 80/10/10, seed 1234).", "",
        "Shape: 4 layers x 256 hidden, 4 heads, FFN 1024 for both; cramkit = crammed block (pre-LN, gated "
        f"FFN, no biases, sparse MLM head, 25% exact masking, triangle2 LR {load('tiny').lr:g}, batch ramp "
        f"{args.micro_batch} -> {args.batch}); HF = post-LN BERT with dense MLM head, 15% masking, lr 5e-4 "
        "linear with warm-up (schedule sized by an untimed 4-step probe on one thread before both start), "
        f"batch {args.micro_batch}, dropout 0.1 (BERT's default).", "",
        f"Budget: {args.minutes:g} min wall-clock each, at the same time (cramkit's includes its start-up; HF's "
        "Trainer run stops at the deadline by callback). Process wall and CPU time cover each child from start "
        "to exit (imports, model saving included); CPU / wall near 1.0: the side had a whole core all along.",
        "",
        "| | tokens trained | train time (s) | tokens/s | process wall (s) | process CPU (s) | CPU / wall "
        "| held-out MLM loss | train loss (cramkit: last 15 s; HF: run mean) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, side in (("cramkit", ours), ("HF BertForMaskedLM + Trainer", peer)):
        lines.append(f"| {name} | {side['tokens']:,} | {side['train_s']:.0f} | {side['tok_s']:,.0f} | "
                     f"{side['wall_s']:.0f} | {side['cpu_s']:.0f} | {side['cpu_s'] / side['wall_s']:.2f} | "
                     f"{side['heldout']:.3f} | {side['train_loss']:.3f} |")
    lines += ["", f"**tokens/s ratio cramkit / HF: {ours['tok_s'] / peer['tok_s']:.2f}x**; held-out loss "
              f"difference (HF - cramkit): {peer['heldout'] - ours['heldout']:+.3f} nats.", ""]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


def _mask_id(shards: ShardSet) -> int:
    from model.tokenizer import special_ids

    return special_ids(shards.tokenizer_file)["[MASK]"]


if __name__ == "__main__":
    main()
