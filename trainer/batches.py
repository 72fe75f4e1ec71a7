"""Rows of a shard set in epoch order, cut into resumable batches (numpy only: any trainer can read
cramkit shards with pyarrow, numpy and this module).

`Batches` is the general iterator; `epoch_batches` is the order train.py's `shuffle` setting names.
"""

from __future__ import annotations

import numpy as np

SHUFFLE = ("later", "never", "always")


class Batches:
    """Epoch after epoch of rows, as written or in a seeded permutation per epoch
    (`numpy.random.default_rng([seed, epoch])`), cut into batches that run on across epoch ends. With
    shuffle, the first `stored_epochs` epochs still keep the stored order (a curriculum read once as
    written, then shuffled). Each batch is an input_ids array, or with `columns` a dict {column: array}.
    `ds` is anything with `len`, `take(indices, column)` and `manifest` (a ShardSet or a view of one).
    `state_dict()` after k batches + `load_state_dict()` on a fresh iterator gives batch k+1 exactly; the
    position is in rows, so the batch size may change between the two."""

    def __init__(self, ds, batch_size: int, shuffle: bool = False, seed: int = 0, stored_epochs: int = 0,
                 columns: tuple[str, ...] | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be positive")
        self.ds, self.batch_size, self.shuffle, self.seed = ds, batch_size, shuffle, seed
        self.stored_epochs, self.columns = stored_epochs, columns
        self.epoch, self.position = 0, 0
        self._order_epoch, self._order = None, None

    def _epoch_order(self) -> np.ndarray | None:
        if not self.shuffle or self.epoch < self.stored_epochs:
            return None
        if self._order_epoch != self.epoch:
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.ds))
            self._order_epoch = self.epoch
        return self._order

    def __iter__(self):
        return self

    def __next__(self):
        n, parts, need = len(self.ds), [], self.batch_size
        columns = self.columns or ("input_ids",)
        while need:
            stop = min(n, self.position + need)
            order = self._epoch_order()
            idx = np.arange(self.position, stop) if order is None else order[self.position : stop]
            parts.append({c: self.ds.take(idx, c) for c in columns})
            need -= stop - self.position
            self.position = stop
            if self.position == n:
                self.epoch, self.position = self.epoch + 1, 0
        out = {c: parts[0][c] if len(parts) == 1 else np.concatenate([p[c] for p in parts]) for c in columns}
        return out if self.columns else out["input_ids"]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "batch_size": self.batch_size,
                "shuffle": self.shuffle, "seed": self.seed, "stored_epochs": self.stored_epochs,
                "rows": len(self.ds), "content_hash": self.ds.manifest.get("content_hash")}

    def load_state_dict(self, state: dict) -> None:
        for key in ("shuffle", "seed", "stored_epochs", "rows", "content_hash"):
            mine = self.state_dict()[key]
            theirs = state.get(key, 0 if key == "stored_epochs" else None)
            if theirs != mine:
                raise ValueError(f"cannot resume: state has {key}={theirs!r}, this iterator "
                                 f"{mine!r} (a different shard set or order)")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def epoch_batches(rows, micro_batch: int, shuffle: str, seed: int, document_mask: bool = False) -> Batches:
    """Endless micro-batches of `rows` (a ShardSet, or the training rows of one: trainer.heldout.TrainRows)
    as a dict of the input_ids and, in a padded set, attention_mask columns (with `document_mask` also
    segment_ids), in the order the `shuffle` setting names: later = epoch 1 as stored (a curriculum), then a
    seeded permutation per epoch; never = as stored every epoch; always = a permutation from epoch 1."""
    if shuffle not in SHUFFLE:
        raise ValueError(f"shuffle={shuffle!r}: choose one of {SHUFFLE}")
    columns = tuple(c for c in ("input_ids", "attention_mask") if c in rows.columns)
    columns += ("segment_ids",) if document_mask else ()
    return Batches(rows, micro_batch, shuffle=shuffle != "never", seed=seed,
                   stored_epochs=1 if shuffle == "later" else 0, columns=columns)


def epoch_order(shuffle: str, epoch: int) -> str:
    """How epoch `epoch` (from 0) orders the rows under the `shuffle` setting, in words."""
    permuted = shuffle == "always" or (shuffle == "later" and epoch >= 1)
    return "a new seeded permutation" if permuted else "the stored order"


def passes(reader_state: dict) -> float:
    """Passes over the data so far (1.25: a quarter into the second epoch)."""
    return reader_state["epoch"] + reader_state["position"] / reader_state["rows"]
