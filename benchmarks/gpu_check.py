"""The GPU measurements, under 10 minutes (`make gpu-check`): run it once on the GPU machine, paste the tables.

1. Synthetic shards (random ids, a WordLevel tokenizer with the BERT specials), written by
   `pipeline.tokens.shards` without Beam.
2. One batch, three ways: the MLM loss of the same crammed-bert weights on the same batch in fp32, in bf16
   autocast and bf16 autocast + torch.compile, with each one's forward+backward time. The bf16 losses
   must agree with fp32 to 2% (a broken cast or a compile bug shows here first).
3. Throughput: crammed-bert forward + backward + fused AdamW, bf16, compiled, at micro-batch
   128/256/512: tokens/s, MFU and peak memory (benchmarks/gpu_throughput.py's measurement).
4. The real loop: train.py for a short time budget on the synthetic shards with the batch ramp
   (micro-batch 256, ramp to 4096 over the first 60%): tokens/s, MFU, loader stall, and how many graphs
   torch.compile built (torch._dynamo counters; 1 means no recompile as the ramp grows the batch).

Needs only torch, pyarrow, tokenizers, safetensors, pyyaml, tqdm. Writes benchmarks/results/gpu_check.md.
Without --dry-run it refuses, in one line, where no CUDA device is visible.

    make gpu-check                                 # on the GPU machine: python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --dry-run       # anywhere, seconds: tiny-2, small batches, no inductor
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_throughput as gt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "gpu_check.md"


def loss_three_ways(cfg, device: torch.device, micro_batch: int, backend: str) -> list[tuple[str, float, float]]:
    """(name, loss, forward+backward ms) for fp32, bf16 autocast, and bf16 autocast compiled."""
    from model.heads import MaskedLM

    torch.manual_seed(0)
    model = MaskedLM(cfg).to(device)
    batch = gt.synthetic_batch(cfg, micro_batch, device)
    compiled = torch.compile(model, dynamic=False, backend=backend)
    out = []
    for name, run, dtype in (("fp32", model, None), ("bf16", model, torch.bfloat16),
                             (f"bf16 + compile ({backend})", compiled, torch.bfloat16)):
        times = []
        for _ in range(3):  # the first includes compilation; report the last
            gt.sync(device)
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = run(*batch)
            loss.backward()
            gt.sync(device)
            times.append(time.perf_counter() - t0)
            model.zero_grad(set_to_none=True)
        out.append((name, float(loss), times[-1] * 1e3))
    return out


def training_loop(cfg, device: torch.device, micro_batch: int, batch: int, budget: str, compile_: bool,
                  peak: float, folder: Path) -> dict:
    """train.py with the batch ramp on synthetic shards; its log, the loader stall and the graph count."""
    import yaml
    from torch._dynamo.utils import counters

    import train

    model_yaml = folder / "model.yaml"
    model_yaml.write_text(yaml.safe_dump(cfg.to_dict()))
    shards = gt.synthetic_shards(cfg, folder / "shards", rows=max(8 * batch, 4096))
    counters.clear()
    run_cfg = train.load("crammed-bert", {
        "model": str(model_yaml), "shards": str(shards), "budget": budget, "out": str(folder / "runs"),
        "name": "loop", "micro_batch": micro_batch, "batch_size": batch, "batch_ramp": 0.6,
        "device": device.type, "compile": "true" if compile_ else "false", "checkpoint_every": "24h",
        "log_every": 5.0, "peak_tflops": peak, "heldout_rows": 0})
    start = time.perf_counter()
    if train.train(run_cfg) != 0:
        raise RuntimeError("train.py did not finish")
    records = [json.loads(x) for x in (folder / "runs" / "loop" / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "loss" in r]
    steady = logged[1:] or logged
    return {"wall_s": time.perf_counter() - start, "tokens": logged[-1]["tokens"], "steps": logged[-1]["step"],
            "tokens_per_s": sorted(r["tokens_per_s"] for r in steady)[len(steady) // 2],
            "mfu": max((r.get("mfu", 0.0) for r in steady), default=0.0),
            "batch_sizes": sorted({r["batch_size"] for r in logged}),
            "stall_share": sum(r["stall_s"] for r in logged) / logged[-1]["elapsed_s"],
            "graphs": counters["stats"]["unique_graphs"], "frames": counters["frames"]["total"],
            "last_loss": logged[-1]["loss"]}


def report(lines: list[str], device: torch.device, command: str) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.machine()})"
    return "\n".join(["# GPU check", "", f"Device: {name}; torch {torch.__version__}. Command: `{command}`", "",
                      *lines, ""])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="tiny-2 on any device in seconds (the test runs this)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--peak-tflops", type=float, default=gt.H100_BF16_DENSE_TFLOPS)
    ap.add_argument("--loop-budget", default=None, help="train.py budget of part 4 (default 120s; dry run 8192tok)")
    ap.add_argument("--out", type=Path, default=None, help=f"report (default {OUT}; dry run: printed only)")
    args = ap.parse_args(argv)
    device, dry = torch.device(args.device), args.dry_run
    if not dry and (device.type != "cuda" or not torch.cuda.is_available()):
        print(f"gpu_check: no CUDA device is visible (device {args.device}, torch {torch.__version__}); run it on "
              "a GPU machine, or with --dry-run for the CPU smoke run", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cfg = gt.ModelConfig.preset("tiny-2") if dry else gt.ModelConfig.preset("crammed-bert", vocab_size=32768)
    sweep = (2, 4) if dry else (128, 256, 512)
    backend = "eager" if dry else "inductor"  # the dry run traces with dynamo but generates no kernels
    t0, lines = time.perf_counter(), []

    rows = loss_three_ways(cfg, device, sweep[0], backend)
    ref = rows[0][1]
    lines += ["## One batch, three ways", "", f"crammed-bert MLM loss on one synthetic batch of {sweep[0]} rows "
              "(same weights); forward+backward time after two warm-up calls.", "",
              "| precision | loss | vs fp32 | ms |", "|---|---:|---:|---:|"]
    lines += [f"| {n} | {loss:.4f} | {100 * (loss - ref) / ref:+.2f}% | {ms:.1f} |" for n, loss, ms in rows]
    agree = all(abs(loss - ref) <= 0.02 * abs(ref) for _, loss, _ in rows)
    lines += ["", f"bf16 losses within 2% of fp32: **{'yes' if agree else 'NO'}**", ""]
    print("\n".join(lines[-8:]), file=sys.stderr)

    s = gt.Setting(cfg, device, torch.bfloat16, not dry, steps=2 if dry else 10, warmup=1 if dry else 3,
                   peak_tflops=args.peak_tflops)
    lines += ["## Throughput (model step)", "", "bf16 autocast, torch.compile (not in a dry run), fused AdamW, "
              f"synthetic batches on the device; MFU against {args.peak_tflops} TFLOP/s.", "",
              "| micro-batch | tokens/s | step (ms) | MFU | peak memory (GiB) | note |", "|---:|---:|---:|---:|---:|---|"]
    for mb in sweep:
        r = gt.guarded(gt.measure_model_step, s, mb)
        lines.append(f"| {mb} | " + " | ".join([
            f"{r.tokens_per_s:,.0f}" if r.tokens_per_s else "-", f"{r.step_ms:.1f}" if r.step_ms else "-",
            f"{100 * r.mfu:.1f}%" if r.mfu is not None else "-",
            f"{r.peak_mem_gib:.1f}" if r.peak_mem_gib is not None else "-", r.note]) + " |")
        print(lines[-1], file=sys.stderr)
    lines.append("")

    with tempfile.TemporaryDirectory() as tmp:
        loop = training_loop(cfg, device, sweep[-1] // 2 if not dry else 2, 8 * sweep[-1] if not dry else 16,
                             args.loop_budget or ("8192tok" if dry else "120s"), not dry, args.peak_tflops, Path(tmp))
    lines += ["## train.py with the batch ramp", "",
              f"{loop['tokens']:,} tokens in {loop['steps']} optimizer steps ({loop['wall_s']:.0f} s wall, compile "
              f"included); batch sizes seen {loop['batch_sizes'][0]} .. {loop['batch_sizes'][-1]}; median "
              f"{loop['tokens_per_s']:,.0f} tokens/s, best window MFU {100 * loop['mfu']:.1f}%; loader stall "
              f"{100 * loop['stall_share']:.1f}% of the run; torch.compile graphs {loop['graphs']} (frames "
              f"{loop['frames']}; 1 graph = no recompile while the batch grew); last loss {loop['last_loss']:.3f}.",
              "", f"Total time of this check: {time.perf_counter() - t0:.0f} s."]
    text = report(lines, device, "python benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(text)
    out = args.out or (None if dry else OUT)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
