"""Micro-batches for training: shard rows -> masking -> (pinned) tensors, prepared ahead in a thread.

The reader state is recorded with each micro-batch, so a checkpoint stores the position right after the
last micro-batch the model consumed, not after what the thread already prefetched.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer.masking import Masker

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def special_token_ids(tokenizer_file: Path) -> dict[str, int]:
    """Ids of the BERT special tokens in a tokenizers JSON file (read as JSON: no tokenizers import)."""
    try:
        spec = json.loads(Path(tokenizer_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{tokenizer_file}: cannot read the tokenizer ({e}); rebuild the shard set") from e
    ids = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    vocab = (spec.get("model") or {}).get("vocab")
    if isinstance(vocab, dict):
        ids = {**{t: vocab[t] for t in SPECIAL_TOKENS if t in vocab}, **ids}
    if "[MASK]" not in ids:
        raise ValueError(f"{tokenizer_file}: no [MASK] token; MLM training needs one (rebuild the shard set "
                         "with a cramkit tokenizer)")
    return {t: ids[t] for t in SPECIAL_TOKENS if t in ids}


@dataclass
class MicroBatch:
    index: int
    input_ids: torch.Tensor
    positions: torch.Tensor
    targets: torch.Tensor
    attention_mask: torch.Tensor | None
    reader_state: dict

    def to(self, device: torch.device) -> MicroBatch:
        def move(t):
            return None if t is None else t.to(device, non_blocking=True)
        return MicroBatch(self.index, move(self.input_ids), move(self.positions), move(self.targets),
                          move(self.attention_mask), self.reader_state)


class Prefetcher:
    """Iterates MicroBatch objects numbered from `start_index`, `depth` ahead in a daemon thread.
    With `pad_id` (shards packed with padding) the attention mask is `rows != pad_id`.

    `stall_seconds` is the time the consumer waited for data: the loader's share of the run time.
    """

    def __init__(self, batches, masker: Masker, start_index: int, pin: bool, depth: int = 4,
                 pad_id: int | None = None):
        self.batches, self.masker, self.pin, self.pad_id = batches, masker, pin, pad_id
        self.index = start_index
        self.stall_seconds = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
        self._thread.start()

    def _make(self, index: int) -> MicroBatch:
        rows = next(self.batches)
        attention = (rows != self.pad_id).astype(np.int64) if self.pad_id is not None else None
        masked = self.masker(rows, index, attention)
        tensors = [torch.from_numpy(masked.input_ids), torch.from_numpy(masked.positions),
                   torch.from_numpy(masked.targets), None if attention is None else torch.from_numpy(attention)]
        if self.pin:
            tensors = [None if t is None else t.pin_memory() for t in tensors]
        return MicroBatch(index, *tensors, reader_state=self.batches.state_dict())

    def _run(self) -> None:
        index = self.index
        while not self._stop.is_set():
            try:
                item = self._make(index)
            except BaseException as e:  # handed to the consumer, raised there
                item = e
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return
            index += 1

    def __iter__(self):
        return self

    def __next__(self) -> MicroBatch:
        t0 = time.perf_counter()
        item = self._queue.get()
        self.stall_seconds += time.perf_counter() - t0
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
