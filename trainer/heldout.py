"""The held-out evaluation of train.py, and the unigram entropy it is read against.

- Held-out rows: `heldout_rows` shard rows spread evenly over the shard order (row floor((j + 0.5) n / k)
  for j < k), so a curriculum order (sentence-length) is sampled from end to end; they are never trained
  on (`TrainRows` is the rest). At most a tenth of the rows is held out.
- Held-out loss: MLM cross-entropy in nats on those rows with a fixed task, the same for every run and
  setting: exactly round(0.15 x seq_len) positions per row (BERT's rate, whatever the run's own
  mask_fraction or mask_schedule), drawn once from a fixed seed, and every one of them replaced by [MASK]. So the model
  sees nothing of a target, and the best predictor that ignores the context scores exactly the
  unigram entropy below.
- Unigram entropy: H = -sum_t p(t) ln p(t) of the token frequencies p over the shard rows (padding
  excluded): the loss of the best context-free guess of a masked token. A model whose held-out loss is
  below H uses the context.
"""

from __future__ import annotations

import numpy as np
import torch

from trainer.masking import IGNORE, Masker

HELDOUT_MASK_FRACTION = 0.15
HELDOUT_SEED = 0
ENTROPY_MAX_ROWS = 1 << 20  # above this, the entropy is counted on this many rows spread evenly


def heldout_indices(rows: int, count: int) -> np.ndarray:
    """`count` distinct row indices spread evenly over [0, rows) (count <= rows)."""
    return ((np.arange(count) + 0.5) * rows / count).astype(np.int64)


class TrainRows:
    """A shard set without some of its rows, seen through the interface `trainer.batches.Batches` reads
    (`len`, `take`, `manifest`, `columns`): row i here is row `index[i]` of the shard set."""

    def __init__(self, shards, exclude: np.ndarray):
        keep = np.ones(len(shards), dtype=bool)
        keep[exclude] = False
        self.shards, self.index = shards, np.flatnonzero(keep)
        self.manifest, self.columns = shards.manifest, shards.columns

    def __len__(self) -> int:
        return len(self.index)

    def take(self, indices, column: str = "input_ids") -> np.ndarray:
        return self.shards.take(self.index[np.asarray(indices, dtype=np.int64)], column)


def unigram_entropy(shards) -> float:
    """Entropy in nats of the token frequencies over the shard rows (over ENTROPY_MAX_ROWS rows spread
    evenly when there are more); in a padded shard set, only the positions its attention_mask keeps."""
    n = len(shards)
    rows = np.arange(n) if n <= ENTROPY_MAX_ROWS else heldout_indices(n, ENTROPY_MAX_ROWS)
    counts = np.zeros(shards.vocab_size, dtype=np.int64)
    for start in range(0, len(rows), 8192):
        part = rows[start:start + 8192]
        ids = shards.take(part)
        if "attention_mask" in shards.columns:
            ids = ids[shards.take(part, "attention_mask") != 0]
        counts += np.bincount(ids.ravel(), minlength=shards.vocab_size)[:shards.vocab_size]
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


class HeldOut:
    """The fixed held-out task, built once: `loss(model, ...)` is its mean cross-entropy in nats. Row i of
    the shard set is masked by its own generator (seed HELDOUT_SEED, index i), so the task depends on
    neither the batch size nor the run's settings. With `document_mask` the model reads the rows' segment_ids
    (attention within documents, as such a run trains)."""

    def __init__(self, shards, rows: np.ndarray, mask_id: int, special_ids: tuple[int, ...], batch_size: int,
                 document_mask: bool = False):
        masker = Masker(mask_id, shards.vocab_size, HELDOUT_MASK_FRACTION, "exact", special_ids, HELDOUT_SEED)
        padded = "attention_mask" in shards.columns
        masks = shards.take(rows, "attention_mask") != 0 if padded else [None] * len(rows)
        ids, positions, targets = [], [], []
        for i, row, attention in zip(rows.tolist(), shards.take(rows), masks, strict=True):
            masked = masker(row[None], i, None if attention is None else attention[None])
            live = masked.targets != IGNORE
            masked.input_ids[0, masked.positions[0][live[0]]] = mask_id
            ids.append(masked.input_ids[0])
            positions.append(masked.positions[0])
            targets.append(masked.targets[0])
        ids, positions, targets = np.stack(ids), np.stack(positions), np.stack(targets)
        self.batches = []
        for start in range(0, len(rows), batch_size):
            part = slice(start, start + batch_size)
            live = int((targets[part] != IGNORE).sum())
            if live:
                attention = torch.from_numpy(masks[part]) if padded else None
                segments = torch.from_numpy(shards.take(rows[part], "segment_ids").astype(np.int32)) \
                    if document_mask else None
                self.batches.append((torch.from_numpy(ids[part]), torch.from_numpy(positions[part]),
                                     torch.from_numpy(targets[part]), attention, segments, live))
        self.rows = len(rows)
        self.targets = sum(b[-1] for b in self.batches)

    @torch.no_grad()
    def loss(self, model: torch.nn.Module, device: torch.device, autocast) -> float:
        """Mean cross-entropy over every held-out target (model put back in train mode after)."""
        model.eval()
        total = 0.0
        try:
            for ids, positions, targets, attention, segments, live in self.batches:
                with autocast():
                    mean = model(ids.to(device), positions.to(device), targets.to(device),
                                 None if attention is None else attention.to(device),
                                 segment_ids=None if segments is None else segments.to(device))
                total += float(mean) * live
        finally:
            model.train()
        return total / self.targets
