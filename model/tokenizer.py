"""The tokenizer as every job reads it: the BERT special tokens, reading a tokenizers JSON file, the ids of
its special tokens, and the one check that it fits a model's embedding.

The corpus pipeline trains tokenizers (pipeline.tokens.tokenize) and records one beside the shards; the
trainer, GLUE and export read it through here. `tokenizers` is imported only to parse a file, so `special_ids`
(plain JSON) works without it.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # mlm's, pinned at ids 0.. when trained
HF_NAMES = dict(zip(("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"), SPECIAL_TOKENS,
                    strict=True))  # transformers' names for them (tokenizer_config.json)


class TokenizerError(ValueError):
    """A tokenizer that cannot be read, lacks a token the job needs, or has more ids than the model."""


def parse(text: str, source: str | Path):
    """A tokenizers.Tokenizer from the JSON text of `source` (named in the error)."""
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_str(text)
    except Exception as err:  # tokenizers raises a bare Exception on a malformed file
        raise TokenizerError(f"{source}: not a readable tokenizers JSON file ({err})") from err


def load(path: str | Path):
    """The tokenizers.Tokenizer in a local tokenizer.json."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TokenizerError(f"{path}: cannot read the tokenizer ({err})") from err
    return parse(text, path)


def vocab_size(tok) -> int:
    """Every id the tokenizer can emit, added (special) tokens included: the rows an embedding needs."""
    return tok.get_vocab_size(with_added_tokens=True)


def check_fits(size: int, rows: int, source: str | Path, remedy: str) -> None:
    """Token ids 0..size-1 index an embedding of `rows` rows: more ids than rows would index out of range."""
    if size > rows:
        raise TokenizerError(f"{source}: the tokenizer has {size} tokens but the model's embedding has {rows} rows "
                             f"(vocab_size); the tokenizer does not belong to this model: {remedy}")


def fit_vocab(cfg, size: int, source: str | Path, remedy: str):
    """Model config `cfg` (model.config.ModelConfig) for token ids 0..size-1 of `source`, and a note or None:
    an unset vocab_size takes `size`; a pinned one smaller is refused (check_fits); a pinned one larger is
    kept, and the note says how many embedding rows (and parameters) no token id reaches."""
    if cfg.vocab_size is None:
        return cfg.replace(vocab_size=size), None
    check_fits(size, cfg.vocab_size, source, remedy)
    if cfg.vocab_size == size:
        return cfg, None
    from model.flops import param_count

    unused = param_count(cfg) - param_count(cfg.replace(vocab_size=size))
    return cfg, (f"note: the model pins vocab_size {cfg.vocab_size:,} and {source} has {size:,} tokens: "
                 f"{cfg.vocab_size - size:,} embedding rows ({unused:,} parameters) are never used; leave "
                 "vocab_size unset to take the tokenizer's")


def special_ids(path: str | Path) -> dict[str, int]:
    """Ids of the BERT special tokens in a tokenizers JSON file, read as JSON; MLM training needs [MASK]."""
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise TokenizerError(f"{path}: cannot read the tokenizer ({err}); rebuild the shard set") from err
    ids = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    vocab = (spec.get("model") or {}).get("vocab")
    if isinstance(vocab, dict):
        ids = {**{t: vocab[t] for t in SPECIAL_TOKENS if t in vocab}, **ids}
    if "[MASK]" not in ids:
        raise TokenizerError(f"{path}: no [MASK] token; MLM training needs one (rebuild the shard set with a "
                             "cramkit tokenizer)")
    return {t: ids[t] for t in SPECIAL_TOKENS if t in ids}
