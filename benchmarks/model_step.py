"""One MLM training step (forward + backward + AdamW, CPU), fp32 and bf16 autocast, side by side in one run:

- cramkit      MaskedLM, the `tiny` preset: crammed-bert's design at 4 layers x 256 hidden, 4 heads,
               vocab 32768, seq 128, sparse head on 25% of the tokens (32 per row)
- cramkit-dense the same model, loss over logits at every position (shows the sparse head's share)
- hf           transformers.BertForMaskedLM, same layers / hidden / heads / FFN 1024 / vocab / batch, SDPA
- "bf16" rows: cramkit and hf again (own weights and optimizer) under torch.autocast(cpu, bfloat16), what
               train.py's precision=bf16 (and precision=auto where its probe finds bf16 faster) runs

Dropout is 0 for all three (cramming pretrains without it). Steps are interleaved round by round so that
load from other jobs hits each alike; the median step time is reported, with the ratio to hf.
FLOPs/token: cramkit from model.flops, hf counted by torch's FLOP counter on one step.

    .venv/bin/python benchmarks/model_step.py [--rounds 5] [--batch 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from model.config import ModelConfig  # noqa: E402
from model.flops import train_flops_per_token  # noqa: E402
from model.heads import MaskedLM  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "model_step.md"
SEQ, MASKED = 128, 0.25


def make_batch(cfg: ModelConfig, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    k = int(SEQ * MASKED)
    ids = torch.randint(1, cfg.vocab_size, (batch, SEQ), generator=g)
    positions = torch.stack([torch.randperm(SEQ, generator=g)[:k] for _ in range(batch)])
    targets = torch.randint(0, cfg.vocab_size, (batch, k), generator=g)
    labels = torch.full_like(ids, -100).scatter(1, positions, targets)
    return {"ids": ids, "positions": positions, "targets": targets, "labels": labels}


def steps(cfg: ModelConfig) -> dict[str, tuple[torch.nn.Module, callable, bool]]:
    """name -> (module, loss function of a batch, bf16 autocast)."""
    from transformers import BertConfig, BertForMaskedLM

    def hf_model():
        return BertForMaskedLM(BertConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size, max_position_embeddings=SEQ,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation="sdpa"))

    sparse, dense, sparse16, hf, hf16 = MaskedLM(cfg), MaskedLM(cfg), MaskedLM(cfg), hf_model(), hf_model()
    return {
        "cramkit": (sparse, lambda b: sparse(b["ids"], b["positions"], b["targets"]), False),
        "cramkit bf16": (sparse16, lambda b: sparse16(b["ids"], b["positions"], b["targets"]), True),
        "cramkit-dense": (dense, lambda b: F.cross_entropy(dense.logits(b["ids"]).flatten(0, 1),
                                                           b["labels"].flatten(), ignore_index=-100), False),
        "hf": (hf, lambda b: hf(input_ids=b["ids"], labels=b["labels"]).loss, False),
        "hf bf16": (hf16, lambda b: hf16(input_ids=b["ids"], labels=b["labels"]).loss, True),
    }


def train_step(model: torch.nn.Module, loss_fn, bf16: bool, optimizer: torch.optim.Optimizer, batch) -> float:
    """Seconds for one forward + backward + AdamW step."""
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = loss_fn(batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def counted_flops(model: torch.nn.Module, loss_fn, batch) -> int:
    """Matmul FLOPs of one forward + backward, counted op by op (attention through the math kernel)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        loss_fn(batch).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def bf16_flags() -> str:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    return ", ".join(f for f in ("avx512_bf16", "amx_bf16") if f in text.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny", max_seq_len=SEQ, vocab_size=32768)
    batch = make_batch(cfg, args.batch)
    runs = steps(cfg)
    optimizers = {n: torch.optim.AdamW(m.parameters(), lr=1e-4) for n, (m, _, _) in runs.items()}
    flops = {"cramkit": train_flops_per_token(cfg, MASKED), "cramkit-dense": train_flops_per_token(cfg, 1.0),
             "hf": counted_flops(*runs["hf"][:2], batch) / (args.batch * SEQ)}
    flops.update({"cramkit bf16": flops["cramkit"], "hf bf16": flops["hf"]})
    times = {n: [] for n in runs}
    for r in tqdm(range(args.warmup + args.rounds), desc="rounds (one step of each)"):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in order:
            seconds = train_step(*runs[name], optimizers[name], batch)
            if r >= args.warmup:
                times[name].append(seconds)

    tokens = args.batch * SEQ
    rate = {n: tokens / statistics.median(t) for n, t in times.items()}
    rows = ["| model | precision | median step (s) | tokens/s | vs hf fp32 | train GFLOP/token | achieved GFLOP/s |",
            "|---|---|---|---|---|---|---|"]
    for name, (_, _, bf16) in runs.items():
        rows.append(f"| {name.split()[0]} | {'bf16 autocast' if bf16 else 'fp32'} | "
                    f"{statistics.median(times[name]):.3f} | {rate[name]:,.0f} | {rate[name] / rate['hf']:.2f}x | "
                    f"{flops[name] / 1e9:.4f} | {rate[name] * flops[name] / 1e9:.1f} |")
    load = os.getloadavg()
    command = " ".join(["PYTHONHASHSEED=0 .venv/bin/python benchmarks/model_step.py", *sys.argv[1:]])
    text = "\n".join([
        "# Model training step: cramkit MaskedLM vs transformers BertForMaskedLM, fp32 and bf16",
        "",
        f"One step = forward + backward + AdamW, {args.threads} threads, batch {args.batch} x seq {SEQ} "
        f"({tokens} tokens), {cfg.num_layers} layers x {cfg.hidden_size} hidden, {cfg.num_heads} heads, FFN "
        f"{cfg.intermediate_size}, vocab {cfg.vocab_size}; dropout 0 for all. cramkit = the `tiny` preset "
        "(crammed-bert design) with the sparse head on 25% of the tokens; cramkit-dense = the same model with "
        "the loss over logits at every position; hf = `BertForMaskedLM` (SDPA attention, post-LN, biases, "
        "GELU FFN, head transform, dense head). bf16 rows: the same model with its own weights and optimizer "
        "under `torch.autocast(\"cpu\", dtype=torch.bfloat16)` (matmuls in bf16, weights and AdamW in fp32). "
        f"Median of {args.rounds} interleaved rounds after {args.warmup} warm-up.",
        "",
        *rows,
        "",
        f"**Ratio: cramkit trains {rate['cramkit'] / rate['hf']:.2f}x the tokens/s of HF BertForMaskedLM** "
        f"(same run); the dense-head variant is {rate['cramkit-dense'] / rate['hf']:.2f}x.",
        "",
        f"**bf16 autocast vs fp32 on this CPU: cramkit {rate['cramkit bf16'] / rate['cramkit']:.2f}x "
        f"({rate['cramkit bf16']:,.0f} vs {rate['cramkit']:,.0f} tokens/s), hf "
        f"{rate['hf bf16'] / rate['hf']:.2f}x** (same run). CPU: {cpu_name()}; bf16 matmul units "
        f"(avx512_bf16 / amx_bf16): {bf16_flags() or 'none'}.",
        "",
        "GFLOP/token counts matmuls only: cramkit from `model.flops.train_flops_per_token` (checked against "
        "torch's FLOP counter in tests), hf counted by `torch.utils.flop_counter` on one step. Part of the "
        "speed-up is less work (sparse head, gated FFN of the crammed design), the rest is faster work "
        "(achieved GFLOP/s).",
        "",
        f"Command: `{command}`  ",
        f"Machine: 2-core x86_64 VM, CPU ({platform.machine()}, torch {torch.__version__}), shared with other jobs "
        f"(load averages 1/5/15 min {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end; absolute rates move with "
        "it, the ratios less).",
        "",
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
