"""A small GPT trained on cramkit `clm` shards, with torch, pyarrow and tokenizers only (no cramkit import):
proof that the shard format (docs/shard-format.md) serves other pretraining.

    python -m pipeline --input text/ --output out/gpt objective=clm seq_len=512 tokenizer.kind=bpe
    python examples/tiny_gpt.py --shards out/gpt --minutes 3          # or --steps 200

It holds out every 20th row (up to --eval-rows), trains on the rest, and reports the held-out loss before
and after next to a unigram baseline (token frequencies of the training rows, add-one smoothed): a loss
below that baseline means the model uses the context. Then it samples a few lines, decoded with the
shard set's tokenizer.json. --document-mask keeps attention within documents (needs a segment_ids column,
`pack.segments=true`). The last line of output is a JSON summary.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn


def read_shards(folder: Path) -> tuple[dict, dict]:
    """(manifest, {column: array [rows, seq_len] in its stored dtype}) of a clm shard set, as
    docs/shard-format.md reads it."""
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest.get("format") != "cramkit-shards" or manifest["format_version"] > 2:
        raise SystemExit(f"{folder}: not a cramkit shard set of format_version <= 2")
    if manifest["objective"] != "clm":
        raise SystemExit(f"{folder}: objective {manifest['objective']!r}; build shards with objective=clm")
    parts = {c: [] for c in manifest["columns"]}
    for shard in manifest["shards"]:
        table = pa.ipc.open_stream(pa.memory_map(str(folder / shard["file"]))).read_all()
        for c in parts:
            parts[c].append(table.column(c).combine_chunks().flatten().to_numpy().reshape(-1, manifest["seq_len"]))
    return manifest, {c: np.concatenate(v) for c, v in parts.items()}


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.norm1, self.norm2 = heads, nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).reshape(b, s, d))
        return x + self.mlp(self.norm2(x))


class TinyGPT(nn.Module):
    """Token + learnt position embeddings, pre-LN blocks, a head tied to the token embedding."""

    def __init__(self, vocab: int, seq_len: int, dim: int, layers: int, heads: int):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, dim), nn.Embedding(seq_len, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, ids: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
        s = ids.shape[1]
        mask = torch.ones(s, s, dtype=torch.bool, device=ids.device).tril()  # causal
        if segments is not None:  # and only within the token's own document
            mask = (mask & (segments[:, :, None] == segments[:, None, :]))[:, None]
        x = self.tokens(ids) + self.positions.weight[:s]
        for block in self.blocks:
            x = block(x, mask)
        return F.linear(self.norm(x), self.tokens.weight)


def loss_on(model: TinyGPT, rows: dict, idx: np.ndarray, use_segments: bool) -> torch.Tensor:
    ids = torch.from_numpy(rows["input_ids"][idx].astype(np.int64))
    segments = torch.from_numpy(rows["segment_ids"][idx][:, :-1].astype(np.int64)) if use_segments else None
    logits = model(ids[:, :-1], segments)
    return F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())


@torch.no_grad()
def heldout_loss(model: TinyGPT, rows: dict, idx: np.ndarray, use_segments: bool, batch: int) -> float:
    model.eval()
    total = sum(loss_on(model, rows, idx[i : i + batch], use_segments).item() * len(idx[i : i + batch])
                for i in range(0, len(idx), batch))
    model.train()
    return total / len(idx)


def unigram_loss(rows: np.ndarray, train_idx: np.ndarray, eval_idx: np.ndarray, vocab: int) -> float:
    """Cross-entropy of the add-one smoothed token frequencies of the training rows on the held-out targets."""
    counts = np.bincount(rows[train_idx].ravel(), minlength=vocab) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[rows[eval_idx][:, 1:]].mean())


@torch.no_grad()
def sample(model: TinyGPT, start: int, length: int, seq_len: int, temperature: float = 0.8, top_k: int = 50) -> list[int]:
    model.eval()
    ids = torch.tensor([[start]])
    for _ in range(length):
        logits = model(ids[:, -seq_len:])[0, -1] / temperature
        top = torch.topk(logits, top_k)
        ids = torch.cat([ids, top.indices[torch.multinomial(F.softmax(top.values, -1), 1)][None]], dim=1)
    return ids[0, 1:].tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=Path, required=True, help="a shard folder built with objective=clm")
    ap.add_argument("--minutes", type=float, default=3.0, help="training time (default 3)")
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps instead (tests)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--context", type=int, default=0, help="train on windows this long (0: whole rows)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--eval-rows", type=int, default=64, help="held-out rows (every 20th row, at most this many)")
    ap.add_argument("--document-mask", action="store_true", help="attention within documents (segment_ids)")
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    manifest, rows = read_shards(args.shards)
    if args.document_mask and "segment_ids" not in rows:
        raise SystemExit(f"{args.shards}: --document-mask needs segment_ids; rebuild with pack.segments=true")
    if args.context:  # cut every row into windows of --context tokens
        rows = {c: a[:, : a.shape[1] // args.context * args.context].reshape(-1, args.context) for c, a in rows.items()}
    seq_len, vocab, n = rows["input_ids"].shape[1], manifest["vocab_size"], len(rows["input_ids"])
    eval_idx = np.arange(0, n, 20)[: args.eval_rows]
    train_idx = np.setdiff1d(np.arange(n), eval_idx)
    model = TinyGPT(vocab, seq_len, args.dim, args.layers, args.heads)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    unigram = unigram_loss(rows["input_ids"], train_idx, eval_idx, vocab)
    start_loss = heldout_loss(model, rows, eval_idx, args.document_mask, args.batch_size)
    print(f"{n:,} rows of {seq_len} tokens, vocab {vocab:,}; {params:,} parameters; held-out {len(eval_idx)} rows: "
          f"loss {start_loss:.3f} at init, unigram baseline {unigram:.3f}", flush=True)
    rng, step, t0, losses = np.random.default_rng(args.seed), 0, time.perf_counter(), []
    while (step < args.steps) if args.steps else (time.perf_counter() - t0 < 60 * args.minutes):
        p = step / args.steps if args.steps else (time.perf_counter() - t0) / (60 * args.minutes)
        for group in opt.param_groups:  # 20 warm-up steps, then linear decay to a tenth
            group["lr"] = args.lr * min(1.0, (step + 1) / 20) * (1 - 0.9 * p)
        loss = loss_on(model, rows, rng.choice(train_idx, args.batch_size), args.document_mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 50 == 0:
            print(f"step {step}: train loss {np.mean(losses[-50:]):.3f}, {time.perf_counter() - t0:.0f} s", flush=True)
    seconds, tokens = time.perf_counter() - t0, step * args.batch_size * (seq_len - 1)
    final = heldout_loss(model, rows, eval_idx, args.document_mask, args.batch_size)
    print(f"{step} steps, {tokens:,} tokens in {seconds:.0f} s ({tokens / seconds:,.0f} tokens/s); held-out loss "
          f"{final:.3f} (at init {start_loss:.3f}; unigram baseline {unigram:.3f})")
    tok = Tokenizer.from_file(str(args.shards / manifest["tokenizer"]["file"]))
    for _ in range(args.samples):
        text = tok.decode(sample(model, manifest["packing"]["document_end"]["id"], 40, seq_len))
        print("sample:", " ".join(text.split()))
    print(json.dumps({"steps": step, "tokens": tokens, "seconds": round(seconds, 1), "heldout_loss_init": start_loss,
                      "heldout_loss": final, "unigram_loss": unigram, "first_train_loss": losses[0] if losses else None,
                      "last_train_loss": float(np.mean(losses[-10:])) if losses else None}))


if __name__ == "__main__":
    main()
