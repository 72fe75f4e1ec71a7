"""`python -m model`: parameter counts and training FLOPs per token of each preset (or the ones named)."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

import configs
from model.config import ModelConfig
from model.flops import param_count, train_flops_per_token


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m model", description=__doc__)
    parser.add_argument("presets", nargs="*", help="preset names or YAML paths (default: every preset in "
                        f"{configs.CONFIG_DIR / 'model'})")
    parser.add_argument("--masked-fraction", type=float, default=0.25,
                        help="fraction of tokens the sparse MLM head predicts (default 0.25; 1.0 = dense head)")
    parser.add_argument("--seq-len", type=int, default=None, help="sequence length (default: the preset's)")
    parser.add_argument("--vocab-size", type=int, default=32768, help="vocabulary of the presets that take the "
                        "shards' (default 32768, the default corpus tokenizer's; marked * in the table)")
    parser.add_argument("--show-config", action="store_true", help="print each preset's every field as YAML")
    args = parser.parse_args(argv)
    names = args.presets or configs.presets("model")
    if args.show_config:
        print("".join(f"# {name}\n{configs.show(ModelConfig.preset(name))}" for name in names), end="")
        return
    table = Table(title=f"MaskedLM size and training cost (masked fraction {args.masked_fraction})")
    for column in ("preset", "arch", "layers x hidden (heads)", "FFN", "vocab", "seq",
                   "params", "non-embedding", "train GFLOP/token"):
        table.add_column(column, justify="left" if column in ("preset", "arch") else "right", overflow="fold")
    for name in names:
        cfg = ModelConfig.preset(name)
        vocab = str(cfg.vocab_size) if cfg.vocab_size else f"{args.vocab_size}*"
        cfg = cfg if cfg.vocab_size else cfg.replace(vocab_size=args.vocab_size)
        seq = args.seq_len or cfg.max_seq_len
        table.add_row(name, cfg.arch, f"{cfg.num_layers} x {cfg.hidden_size} ({cfg.num_heads})",
                      str(cfg.intermediate_size), vocab, str(seq),
                      f"{param_count(cfg):,}", f"{param_count(cfg, non_embedding=True):,}",
                      f"{train_flops_per_token(cfg, args.masked_fraction, seq) / 1e9:.4f}")
    Console().print(table)


if __name__ == "__main__":
    main()
