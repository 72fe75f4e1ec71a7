"""GLUE fine-tuning speed, side by side: cramkit (glueval loop, `tiny` crammed model, per-batch padding to a
multiple of 8, fused AdamW) vs Hugging Face run_glue.py's defaults (BertForSequenceClassification of the
same width/depth/vocab, every example padded to max_length 128, torch AdamW). Same RTE examples, batch 16,
fp32 on CPU; one run, interleaved repeats, reported as ratios.

    PYTHONPATH=. .venv/bin/python benchmarks/glue_finetune.py [--examples 320] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import platform
import tempfile
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import BertConfig, BertForSequenceClassification

from glueval import data, finetune, protocol
from glueval.encode import collate, encode
from glueval.tasks import TASKS
from model.config import ModelConfig
from model.heads import SequenceClassifier

OUT = Path(__file__).resolve().parent / "results" / "glue_finetune.md"
CPU = torch.device("cpu")


def hf_model(cfg: ModelConfig) -> BertForSequenceClassification:
    return BertForSequenceClassification(BertConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size, max_position_embeddings=128,
        num_labels=2, attn_implementation="sdpa"))


def hf_train(model, enc, p: protocol.Protocol, pad_id: int) -> float:
    """run_glue defaults: pad_to_max_length (static 128), AdamW, linear decay; seconds for one epoch."""
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, betas=p.betas, eps=p.eps, weight_decay=0.0)
    order = torch.randperm(len(enc), generator=torch.Generator().manual_seed(0)).tolist()
    model.train()
    t0 = time.perf_counter()
    for b in range(math.ceil(len(enc) / p.batch_size)):
        batch = collate(enc, order[b * p.batch_size:(b + 1) * p.batch_size], pad_id, 128)  # width 128
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    token_type_ids=batch["token_type_ids"], labels=batch["labels"])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
    return time.perf_counter() - t0


@torch.inference_mode()
def hf_eval(model, enc, pad_id: int) -> float:
    model.eval()
    t0 = time.perf_counter()
    for b in range(0, len(enc), 128):
        batch = collate(enc, range(b, min(b + 128, len(enc))), pad_id, 128)
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              token_type_ids=batch["token_type_ids"])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--glue-dir", type=Path,
                    default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "glue")
    ap.add_argument("--examples", type=int, default=320, help="RTE training examples per epoch")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    td = data.load_tsv(TASKS["rte"], args.glue_dir)
    with tempfile.TemporaryDirectory() as tmp:
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.train_from_iterator(td.train.text_a + td.train.text_b, trainers.WordPieceTrainer(
            vocab_size=16000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
        tok.save(str(Path(tmp) / "tokenizer.json"))
    pad_id = tok.token_to_id("[PAD]")
    p = protocol.load("sane", ["epochs=1", "seeds=[0]"])
    train = encode(tok, data.subset(td.train, args.examples), 128, regression=False)
    dev = encode(tok, td.dev["dev"], 128, regression=False)
    cfg = ModelConfig.preset("tiny", dropout=0.1, vocab_size=32768)  # the vocabulary of the figures recorded
    times = {k: [] for k in ("cramkit train", "hf train", "cramkit eval", "hf eval")}
    for _ in range(args.repeats):  # interleaved; best of N each: the machine is shared and noisy
        torch.manual_seed(0)
        ours = SequenceClassifier(cfg, 2)
        times["cramkit train"].append(finetune.train(ours, train, p, 0, pad_id, CPU, False, "cramkit")["train_seconds"])
        t0 = time.perf_counter()
        finetune.predict(ours, dev, p, pad_id, CPU, False)
        times["cramkit eval"].append(time.perf_counter() - t0)
        torch.manual_seed(0)
        theirs = hf_model(cfg)
        times["hf train"].append(hf_train(theirs, train, p, pad_id))
        times["hf eval"].append(hf_eval(theirs, dev, pad_id))
    best = {k: min(v) for k, v in times.items()}
    n = {"train": len(train), "eval": len(dev)}
    rate = {k: n[k.split()[1]] / v for k, v in best.items()}
    params = {"cramkit": sum(q.numel() for q in ours.parameters()), "hf": sum(q.numel() for q in theirs.parameters())}
    cmd = (f"PYTHONPATH=. .venv/bin/python benchmarks/glue_finetune.py --examples {args.examples} "
           f"--repeats {args.repeats} --threads {args.threads}")
    text = "\n".join([
        "# GLUE fine-tuning speed: cramkit vs Hugging Face run_glue defaults", "",
        f"RTE, {len(train)} training examples (one epoch, batch 16) and the {len(dev)} dev examples; mean "
        f"example length {train.lengths().mean():.0f} tokens, max length 128; fp32, {args.threads} CPU threads.",
        f"cramkit: `tiny` preset ({cfg.num_layers} layers x {cfg.hidden_size}, crammed arch, {params['cramkit']:,} "
        "parameters), glueval.finetune (padding per batch to a multiple of 8, fused AdamW, eval sorted by length).",
        f"Peer: `transformers.BertForSequenceClassification` of the same layers/hidden/heads/FFN/vocab "
        f"({params['hf']:,} parameters, sdpa attention), run_glue's default `pad_to_max_length` (128), torch AdamW.", "",
        "| phase | cramkit examples/s | HF examples/s | ratio |", "|---|---|---|---|",
        *(f"| {ph} | {rate['cramkit ' + ph]:.1f} | {rate['hf ' + ph]:.1f} | "
          f"**{rate['cramkit ' + ph] / rate['hf ' + ph]:.2f}x** |" for ph in ("train", "eval")), "",
        f"Best of {args.repeats} interleaved repeats per phase, same process. The models differ as the "
        "architectures do (crammed: GLU FFN, no biases, no token types); the ratio is the whole stack's.", "",
        f"Command: `{cmd}`  ", f"Machine: 2-core x86_64 VM, CPU ({platform.machine()}), shared with other jobs.", ""])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
