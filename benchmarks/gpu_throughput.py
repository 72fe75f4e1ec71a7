"""Pretraining throughput and MFU of the full-size crammed-bert on one GPU: bf16 autocast, torch.compile
(fullgraph, static shapes), fused AdamW, sparse MLM head on 25% of the tokens, synthetic batches already on
the device (so this is the model's speed, not the loader's). One measurement per micro-batch size.

MFU = tokens/s x model.flops.train_flops_per_token / peak; the default peak is the H100 SXM / H200 dense
bf16 figure, 989.4 TFLOP/s (pass --peak-tflops for another card, e.g. 756 for H100 PCIe, 312 for A100).

    .venv/bin/python benchmarks/gpu_throughput.py                          # on a GPU: the sweep
    .venv/bin/python benchmarks/gpu_throughput.py --device cpu --tiny      # smoke run anywhere

Each measurement is one function (measure_model_step); add other measurements (e.g. the full training
loop with the real data loader) as functions of the same shape and a row in MEASUREMENTS.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from model.config import ModelConfig  # noqa: E402
from model.flops import train_flops_per_token  # noqa: E402
from model.heads import MaskedLM  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "gpu_throughput.md"
H100_BF16_DENSE_TFLOPS = 989.4
MASKED = 0.25


@dataclass
class Setting:
    cfg: ModelConfig
    device: torch.device
    dtype: torch.dtype  # autocast dtype; float32 = no autocast
    compile: bool
    steps: int
    warmup: int
    peak_tflops: float
    loop_budget: str = "90s"  # the loop measurement: wall-clock of each train.py run (compile included)
    shards: str | None = None  # the loop measurement: a shard folder; None = synthetic rows


@dataclass
class Result:
    name: str
    micro_batch: int
    tokens_per_s: float | None = None
    step_ms: float | None = None
    mfu: float | None = None
    peak_mem_gib: float | None = None
    note: str = ""


def synthetic_batch(cfg: ModelConfig, micro_batch: int, device: torch.device, seed: int = 0):
    """Random ids and, per row, a fixed count of masked positions (static shapes)."""
    g = torch.Generator(device=device).manual_seed(seed)
    k = round(MASKED * cfg.max_seq_len)
    ids = torch.randint(1, cfg.vocab_size, (micro_batch, cfg.max_seq_len), device=device, generator=g)
    positions = torch.rand(micro_batch, cfg.max_seq_len, device=device, generator=g).argsort(dim=1)[:, :k]
    targets = torch.randint(0, cfg.vocab_size, (micro_batch, k), device=device, generator=g)
    return ids, positions, targets


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_model_step(s: Setting, micro_batch: int) -> Result:
    """Forward + backward + AdamW on one synthetic micro-batch, repeated; tokens/s and MFU."""
    model = MaskedLM(s.cfg).to(s.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-12, weight_decay=0.01,
                                  fused=s.device.type == "cuda")
    run = torch.compile(model, fullgraph=True, dynamic=False) if s.compile else model
    batch = synthetic_batch(s.cfg, micro_batch, s.device)

    def step():
        with torch.autocast(s.device.type, dtype=s.dtype, enabled=s.dtype != torch.float32):
            loss = run(*batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if s.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(s.device)
    for _ in range(s.warmup):  # includes compilation
        step()
    sync(s.device)
    start = time.perf_counter()
    for _ in range(s.steps):
        step()
    sync(s.device)
    seconds = (time.perf_counter() - start) / s.steps
    tokens_per_s = micro_batch * s.cfg.max_seq_len / seconds
    mfu = tokens_per_s * train_flops_per_token(s.cfg, MASKED) / (s.peak_tflops * 1e12)
    memory = torch.cuda.max_memory_allocated(s.device) / 2**30 if s.device.type == "cuda" else None
    return Result("model step", micro_batch, tokens_per_s, seconds * 1e3, mfu, memory)


def synthetic_shards(cfg: ModelConfig, folder: Path, rows: int = 65536) -> Path:
    """Random ids in a real shard set (WordLevel tokenizer with the BERT specials): the loader's work does
    not depend on the text."""
    import numpy as np
    from tokenizers import Tokenizer, models

    from pipeline.tokens.shards import dtype_for_vocab, write_manifest, write_shard

    folder.mkdir(parents=True, exist_ok=True)
    names = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(names + [f"w{i}" for i in range(len(names), cfg.vocab_size)])}
    Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")).save(str(folder / "tokenizer.json"))
    ids = np.random.default_rng(0).integers(len(names), cfg.vocab_size, (rows, cfg.max_seq_len))
    ids = ids.astype(dtype_for_vocab(cfg.vocab_size))
    shards = [write_shard(folder / f"shard-{i:06d}.arrow", ids[s : s + 16384])
              for i, s in enumerate(range(0, rows, 16384))]
    write_manifest(folder, seq_len=cfg.max_seq_len, vocab_size=cfg.vocab_size, shards=shards,
                   config={"synthetic": True}, order={}, packing={}, counts={}, tokens={})
    return folder


def measure_training_loop(s: Setting, micro_batch: int) -> Result:
    """train.py end to end for s.loop_budget: shard reader, masking thread, pinned copies, bf16 compiled
    model, accumulation to the full 8192-row batch (no ramp), clipping, fused AdamW, logging. Tokens/s and
    MFU are the medians of its 5-second log windows after the first (compile) one; the note gives the
    time the loop waited for data. Precision as --dtype says (train.py's `precision` setting)."""
    import json
    import statistics
    import tempfile

    import yaml

    import train

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_yaml = tmp / "model.yaml"
        model_yaml.write_text(yaml.safe_dump(s.cfg.to_dict()))
        shards = s.shards or str(synthetic_shards(s.cfg, tmp / "shards"))
        batch = max(micro_batch, 8192 // micro_batch * micro_batch)
        if s.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(s.device)
        cfg = train.load("crammed-bert", {
            "model": str(model_yaml), "shards": shards, "budget": s.loop_budget, "out": str(tmp / "runs"),
            "name": "loop", "micro_batch": micro_batch, "batch_size": batch, "batch_ramp": 0.0,
            "device": s.device.type, "compile": "true" if s.compile else "false", "checkpoint_every": "24h",
            "log_every": 5.0, "peak_tflops": s.peak_tflops,
            "precision": "bf16" if s.dtype == torch.bfloat16 else "fp32"})
        if train.train(cfg) != 0:
            raise RuntimeError("train.py did not finish")
        records = [json.loads(x) for x in (tmp / "runs" / "loop" / "metrics.jsonl").read_text().splitlines()]
    steady = records[1:-1] or records
    tokens_per_s = statistics.median(r["tokens_per_s"] for r in steady)
    stall = sum(r["stall_s"] for r in records) / records[-1]["elapsed_s"]
    memory = torch.cuda.max_memory_allocated(s.device) / 2**30 if s.device.type == "cuda" else None
    mfu = tokens_per_s * train_flops_per_token(s.cfg, MASKED) / (s.peak_tflops * 1e12)
    return Result("training loop", micro_batch, tokens_per_s, micro_batch * s.cfg.max_seq_len / tokens_per_s * 1e3,
                  mfu, memory, note=f"loader stall {100 * stall:.1f}% of {records[-1]['elapsed_s']:.0f} s; "
                  f"{len(steady)} windows")


MEASUREMENTS = {"model": measure_model_step, "loop": measure_training_loop}


def guarded(measure, s: Setting, micro_batch: int) -> Result:
    """A measurement, with out-of-memory reported as a row instead of ending the sweep."""
    try:
        return measure(s, micro_batch)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return Result(measure.__name__, micro_batch, note="out of memory")


def report(s: Setting, results: list[Result], command: str) -> str:
    rows = ["| measurement | micro-batch | tokens/s | step (ms) | MFU | peak memory (GiB) | note |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append(f"| {r.name} | {r.micro_batch} | " + " | ".join([
            f"{r.tokens_per_s:,.0f}" if r.tokens_per_s else "-", f"{r.step_ms:.1f}" if r.step_ms else "-",
            f"{100 * r.mfu:.1f}%" if r.mfu is not None else "-",
            f"{r.peak_mem_gib:.1f}" if r.peak_mem_gib is not None else "-", r.note]) + " |")
    device = torch.cuda.get_device_name(s.device) if s.device.type == "cuda" else f"CPU ({platform.machine()})"
    c = s.cfg
    return "\n".join([
        "# Pretraining throughput on one GPU: crammed-bert",
        "",
        f"Model: {c.num_layers} layers x {c.hidden_size} hidden, vocab {c.vocab_size}, seq {c.max_seq_len}, "
        f"sparse MLM head on {MASKED:.0%} of the tokens; {train_flops_per_token(c, MASKED) / 1e9:.4f} "
        f"GFLOP/token (model.flops). Precision: {'bf16 autocast' if s.dtype == torch.bfloat16 else str(s.dtype)}; "
        f"torch.compile: {s.compile}; AdamW{' (fused)' if s.device.type == 'cuda' else ''}; "
        f"{s.steps} timed steps after {s.warmup} warm-up. MFU against {s.peak_tflops} TFLOP/s.",
        "",
        *rows,
        "",
        f"Command: `{command}`  ",
        f"Device: {device}, torch {torch.__version__}.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="the tiny-2 preset and small batches (smoke run)")
    parser.add_argument("--preset", default="crammed-bert")
    parser.add_argument("--micro-batches", default=None, help="comma-separated sweep (default 128,256,512; "
                        "2,4 with --tiny)")
    parser.add_argument("--measure", default="model", choices=sorted(MEASUREMENTS),
                        help="model: the model step on a fixed device batch; loop: the full train.py loop")
    parser.add_argument("--loop-budget", default="90s", help="loop: train.py budget per micro-batch size")
    parser.add_argument("--shards", default=None, help="loop: a shard folder (default: synthetic rows)")
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default=None,
                        help="default bf16 on a GPU, fp32 on CPU (CPU bf16 matmuls are very slow)")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 20; 2 with --tiny)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 5; 1 with --tiny)")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_DENSE_TFLOPS)
    parser.add_argument("--out", type=Path, default=None, help=f"report file (default {OUT}; none with --tiny)")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    cfg = ModelConfig.preset("tiny-2" if args.tiny else args.preset)
    cfg = cfg if cfg.vocab_size else cfg.replace(vocab_size=32768)  # unset: the default corpus tokenizer's
    sweep = [int(b) for b in (args.micro_batches or ("2,4" if args.tiny else "128,256,512")).split(",")]
    s = Setting(cfg, device, dtype, not args.no_compile, args.steps or (2 if args.tiny else 20),
                args.warmup if args.warmup is not None else (1 if args.tiny else 5), args.peak_tflops,
                args.loop_budget, args.shards)
    measure = MEASUREMENTS[args.measure]
    results = []
    for micro_batch in tqdm(sweep, desc=f"{args.measure}: micro-batch sweep"):
        results.append(guarded(measure, s, micro_batch))
        tqdm.write(f"micro-batch {micro_batch}: {results[-1]}")
    text = report(s, results, "python benchmarks/gpu_throughput.py " + " ".join(sys.argv[1:]))
    print(text)
    out = args.out or (None if args.tiny else OUT)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


if __name__ == "__main__":
    main()
