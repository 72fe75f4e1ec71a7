"""MLM masking of token rows: which positions are predicted, and what the model sees there.

"exact" (cramming v2): exactly round(fraction * seq_len) positions per row, chosen uniformly; of those
the first round(0.8 k) become [MASK], the next round(0.1 k) a uniformly random id, the rest stay. With
`pad_to` > 1 the positions are padded to a multiple of it with further (unmasked) positions whose target is
ignored, so a masking rate that changes during a run yields a few shapes rather than one per k.
"bernoulli" (BERT, cramming v1): each non-special position independently with probability `fraction`,
then 80/10/10 per position; rows are padded to a common k (a multiple of 8) with ignored targets (-100).

Each micro-batch is masked with its own generator, numpy's PCG64 seeded by (seed, micro-batch index),
so the masks of a run depend on nothing but the seed and the position in the run (exact resume).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("exact", "bernoulli")
IGNORE = -100


@dataclass
class Masked:
    """input_ids [B, S] with the corruptions applied; positions/targets [B, k] int64. All C-contiguous,
    so a pinned copy to the GPU needs no temporary."""

    input_ids: np.ndarray
    positions: np.ndarray
    targets: np.ndarray


class Masker:
    def __init__(self, mask_id: int, vocab_size: int, fraction: float = 0.25, mode: str = "exact",
                 special_ids: tuple[int, ...] = (), seed: int = 0, pad_to: int = 1):
        if mode not in MODES:
            raise ValueError(f"masking mode {mode!r}: choose one of {MODES}")
        _check(fraction)
        self.mask_id, self.vocab_size, self.fraction, self.mode = mask_id, vocab_size, fraction, mode
        self.special_ids = np.array(sorted(special_ids), dtype=np.int64)
        self.seed, self.pad_to = seed, pad_to

    def count(self, seq_len: int, fraction: float | None = None) -> int:
        """Predicted positions per row in exact mode (at `fraction`, default the masker's own)."""
        return max(1, round((self.fraction if fraction is None else fraction) * seq_len))

    def width(self, seq_len: int, fraction: float | None = None) -> int:
        """Positions per row in exact mode: the count, padded to a multiple of `pad_to`."""
        return min(seq_len, -(-self.count(seq_len, fraction) // self.pad_to) * self.pad_to)

    def __call__(self, rows: np.ndarray, index: int, attention_mask: np.ndarray | None = None,
                 fraction: float | None = None) -> Masked:
        """Mask micro-batch `index` at `fraction` (default the masker's own)."""
        fraction = self.fraction if fraction is None else _check(fraction)
        rng = np.random.default_rng([self.seed, index])
        ids = rows.astype(np.int64)
        if self.mode == "exact":
            positions, targets = self._exact(ids, rng, fraction)
        else:
            positions, targets = self._bernoulli(ids, rng, attention_mask, fraction)
        if attention_mask is not None:  # padding is never a target
            pad = np.take_along_axis(attention_mask, positions, axis=1) == 0
            targets[pad] = IGNORE
        return Masked(self._corrupt(ids, positions, targets, rng, fraction), positions, targets)

    def _exact(self, ids: np.ndarray, rng: np.random.Generator, fraction: float):
        k, width = self.count(ids.shape[1], fraction), self.width(ids.shape[1], fraction)
        positions = np.ascontiguousarray(np.argsort(rng.random(ids.shape), axis=1, kind="stable")[:, :width])
        targets = np.take_along_axis(ids, positions, axis=1)
        targets[:, k:] = IGNORE  # the padding to `pad_to`: decoded, not predicted
        return positions, targets

    def _bernoulli(self, ids: np.ndarray, rng: np.random.Generator, attention_mask, fraction: float):
        chosen = rng.random(ids.shape) < fraction
        chosen &= ~np.isin(ids, self.special_ids)
        if attention_mask is not None:
            chosen &= attention_mask.astype(bool)
        per_row = chosen.sum(axis=1)
        k = max(8, -(-int(per_row.max()) // 8) * 8)
        # chosen positions first (in order), then the rest as ignored filler
        order = np.ascontiguousarray(np.argsort(~chosen, axis=1, kind="stable")[:, :k])
        targets = np.take_along_axis(ids, order, axis=1)
        targets[np.arange(k)[None, :] >= per_row[:, None]] = IGNORE
        return order, targets

    def _corrupt(self, ids, positions, targets, rng, fraction: float):
        """80% [MASK], 10% random id, 10% unchanged among the real targets of each row."""
        out = ids.copy()
        rows = np.arange(ids.shape[0])[:, None]
        if self.mode == "exact":
            k = self.count(ids.shape[1], fraction)
            n_mask, n_random = round(0.8 * k), round(0.1 * k)
            kind = np.full(positions.shape[1], 2)  # beyond k: padding, ignored
            kind[:n_mask], kind[n_mask:n_mask + n_random] = 0, 1
            kind = np.broadcast_to(kind, positions.shape)
        else:
            u = rng.random(positions.shape)
            kind = np.where(u < 0.8, 0, np.where(u < 0.9, 1, 2))
        live = targets != IGNORE
        random_ids = rng.integers(0, self.vocab_size, size=positions.shape)
        values = np.where(kind == 0, self.mask_id, np.where(kind == 1, random_ids, targets))
        out[rows, positions] = np.where(live, values, out[rows, positions])
        return out


def _check(fraction: float) -> float:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"mask fraction {fraction}: must be in (0, 1)")
    return fraction
