"""The data a run trains on: the shard set checked against its manifest, and micro-batches (rows in epoch
order from `trainer.batches` -> masking at the rate the mask plan gives -> pinned tensors) prepared ahead in
a thread.

The reader state is recorded with each micro-batch, so a checkpoint stores the position right after the
last micro-batch the model consumed, not after what the thread already prefetched.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from pipeline.tokens.shards import ShardSet
from trainer.budget import Meter
from trainer.masking import Masker


def verify(shards: ShardSet, enabled: bool) -> None:
    """sha256 of every shard and of the tokenizer against the manifest, with a progress bar in bytes/s
    (ShardError on the first file that differs); with `enabled` false, a line saying it was skipped."""
    if not enabled:
        print(f"verify=false: the sha256 of {shards.path}'s shards and tokenizer are not checked", file=sys.stderr)
        return
    start = time.perf_counter()
    with tqdm(total=shards.nbytes, unit="B", unit_scale=True, unit_divisor=1024, desc="verify sha256",
              dynamic_ncols=True, leave=False) as bar:
        shards.verify(progress=bar.update)
    seconds = time.perf_counter() - start
    print(f"verified the sha256 of {len(shards.manifest['shards'])} shards and the tokenizer against "
          f"{shards.path / 'manifest.json'}: {shards.nbytes / 2**20:,.1f} MiB in {seconds:.1f} s "
          f"({shards.nbytes / 2**20 / max(seconds, 1e-9):,.0f} MiB/s)", file=sys.stderr)


class MaskPlan:
    """The masking rate of each micro-batch in order, decided when the loader masks it (ahead of the loop):
    `rate` of the progress the budget will show just before that micro-batch. For a token or FLOP budget
    that progress is exact (the plan adds up each micro-batch's tokens and FLOPs as the meter will), so a
    resumed run masks as the uninterrupted one did; a time budget reads the running clock.
    `flops_per_token(decoded)`: the training FLOPs per position when `decoded` positions per row go
    through the decoder (the encoder runs on every position, the sparse decoder on those only)."""

    def __init__(self, meter: Meter, rate: Callable[[float], float], flops_per_token: Callable[[int], float]):
        self.meter, self.rate, self.flops_per_token = meter, rate, flops_per_token
        self.tokens, self.flops = meter.tokens, meter.flops

    def fraction(self) -> float:
        """The rate of the next micro-batch."""
        return self.rate(self.meter.progress_at(self.tokens, self.flops))

    def spend(self, tokens: int, decoded: int) -> float:
        """The FLOPs of the micro-batch just masked (`tokens` positions, `decoded` per row); the next one
        is planned after them."""
        flops = tokens * self.flops_per_token(decoded)
        self.tokens += tokens
        self.flops += flops
        return flops


@dataclass
class MicroBatch:
    """One micro-batch; `tokens` counts its real tokens (padding excluded), `flops` its training FLOPs and
    `mask_fraction` the masking rate it was masked at (both from the mask plan)."""

    index: int
    input_ids: torch.Tensor
    positions: torch.Tensor
    targets: torch.Tensor
    attention_mask: torch.Tensor | None
    tokens: int
    reader_state: dict
    segment_ids: torch.Tensor | None = None  # the document of each token (document_mask=true)
    flops: float = 0.0
    mask_fraction: float = 0.0

    def to(self, device: torch.device) -> MicroBatch:
        def move(t):
            return None if t is None else t.to(device, non_blocking=True)
        return MicroBatch(self.index, move(self.input_ids), move(self.positions), move(self.targets),
                          move(self.attention_mask), self.tokens, self.reader_state, move(self.segment_ids),
                          self.flops, self.mask_fraction)


class Prefetcher:
    """Iterates MicroBatch objects numbered from `start_index`, `depth` ahead in a daemon thread, from
    `batches` of {column: rows} (see `trainer.batches.epoch_batches`); a padded set's attention mask is its
    stored `attention_mask` column, and a `segment_ids` column becomes the model's segment ids.

    Each micro-batch is masked at the rate `plan` gives (without a plan: the masker's own, FLOPs not counted).
    `stall_seconds` is the time the consumer waited for data: the loader's share of the run time.
    """

    def __init__(self, batches, masker: Masker, start_index: int, pin: bool, depth: int = 4,
                 plan: MaskPlan | None = None):
        self.batches, self.masker, self.pin, self.plan = batches, masker, pin, plan
        self.index = start_index
        self.stall_seconds = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
        self._thread.start()

    def _make(self, index: int) -> MicroBatch:
        batch = next(self.batches)
        rows, attention = batch["input_ids"], batch.get("attention_mask")
        attention = None if attention is None else attention != 0
        segments = batch.get("segment_ids")
        fraction = self.masker.fraction if self.plan is None else self.plan.fraction()
        masked = self.masker(rows, index, attention, fraction)
        flops = 0.0 if self.plan is None else self.plan.spend(rows.size, masked.positions.shape[1])
        tensors = [torch.from_numpy(masked.input_ids), torch.from_numpy(masked.positions),
                   torch.from_numpy(masked.targets), None if attention is None else torch.from_numpy(attention),
                   None if segments is None else torch.from_numpy(segments.astype(np.int32))]
        if self.pin:
            tensors = [None if t is None else t.pin_memory() for t in tensors]
        tokens = rows.size if attention is None else int(np.count_nonzero(attention))
        return MicroBatch(index, *tensors[:4], tokens=tokens, reader_state=self.batches.state_dict(),
                          segment_ids=tensors[4], flops=flops, mask_fraction=fraction)

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
