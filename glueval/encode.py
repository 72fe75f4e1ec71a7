"""Text to model inputs: `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`, truncated longest-first, padded per batch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from glueval.data import Split
from model import tokenizer
from model.tokenizer import TokenizerError

SPECIALS = ("[PAD]", "[CLS]", "[SEP]")  # what the GLUE inputs are built with


def load_tokenizer(checkpoint: str | Path, model_vocab_size: int) -> Tokenizer:
    """The checkpoint's tokenizer.json, checked against the model's vocabulary and the special tokens."""
    path = Path(checkpoint) / "tokenizer.json"
    if not path.is_file():
        raise TokenizerError(f"{checkpoint}: no tokenizer.json in the checkpoint; a pretrained checkpoint "
                             "must carry the tokenizer it was trained with (model.io.save_pretrained(..., "
                             "tokenizer_file=...))")
    tok = tokenizer.load(path)
    tokenizer.check_fits(tokenizer.vocab_size(tok), model_vocab_size, path,
                         "evaluate the checkpoint folder train.py wrote, with its own tokenizer.json")
    missing = [t for t in SPECIALS if tok.token_to_id(t) is None]
    if missing:
        raise TokenizerError(f"{path}: special token(s) {missing} missing; GLUE inputs need {SPECIALS}")
    tok.no_padding()
    tok.no_truncation()
    return tok


def _fit(la: int, lb: int, budget: int) -> tuple[int, int]:
    """Lengths after longest-first truncation of a pair to `budget` tokens, as HF tokenizers' `longest_first`
    does it (an odd last token stays with the longer text, with B on a tie)."""
    if la + lb <= budget:
        return la, lb
    half = budget // 2
    if la <= half:
        return la, budget - la
    if lb <= half:
        return budget - lb, lb
    return (budget - half, half) if la > lb else (half, budget - half)


@dataclass
class Encoded:
    """Token ids and segment ids of every example of a split, plus its labels as a tensor."""

    ids: list[np.ndarray]
    types: list[np.ndarray]
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.ids)

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))


def encode(tok: Tokenizer, split: Split, max_length: int, regression: bool) -> Encoded:
    """Encode a split; pairs as `[CLS] A [SEP] B [SEP]` (segment 0 up to the first [SEP], 1 after)."""
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    a_ids = [e.ids for e in tok.encode_batch(split.text_a, add_special_tokens=False)]
    b_ids = ([e.ids for e in tok.encode_batch(split.text_b, add_special_tokens=False)]
             if split.text_b is not None else None)
    ids, types = [], []
    for i, a in enumerate(a_ids):
        if b_ids is None:
            row = [cls, *a[: max_length - 2], sep]
            seg = np.zeros(len(row), dtype=np.int64)
        else:
            b = b_ids[i]
            la, lb = _fit(len(a), len(b), max_length - 3)
            row = [cls, *a[:la], sep, *b[:lb], sep]
            seg = np.zeros(len(row), dtype=np.int64)
            seg[la + 2:] = 1
        ids.append(np.asarray(row, dtype=np.int64))
        types.append(seg)
    labels = torch.tensor(split.labels, dtype=torch.float32 if regression else torch.long)
    return Encoded(ids, types, labels)


def collate(enc: Encoded, index, pad_id: int, pad_multiple: int) -> dict[str, torch.Tensor]:
    """A padded batch of the examples at `index`, its width the longest row rounded up to `pad_multiple`."""
    index = list(index)
    width = max(len(enc.ids[i]) for i in index)
    width = -(-width // pad_multiple) * pad_multiple
    input_ids = torch.full((len(index), width), pad_id, dtype=torch.long)
    token_type_ids = torch.zeros((len(index), width), dtype=torch.long)
    attention_mask = torch.zeros((len(index), width), dtype=torch.long)
    for r, i in enumerate(index):
        n = len(enc.ids[i])
        input_ids[r, :n] = torch.from_numpy(enc.ids[i])
        token_type_ids[r, :n] = torch.from_numpy(enc.types[i])
        attention_mask[r, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
            "labels": enc.labels[index]}
