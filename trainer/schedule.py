"""Schedules driven by the budget progress p in [0, 1]: the learning-rate multiplier, the batch ramp and
the masking rate."""

from __future__ import annotations

import math

LR_SCHEDULES = ("triangle2", "one-cycle")
MASK_SCHEDULES = ("constant", "linear")


def lr_multiplier(p: float, kind: str = "triangle2") -> float:
    """Multiplier of the peak learning rate at progress p.

    triangle2 (cramming's budget-triangle2): min(0.25 + p, 4 - 4p), 0.25 at the start, 1 at p = 0.75,
    0 at the end. one-cycle: linear 0 -> 1 up to p = 0.5, then linear 1 -> 0.
    """
    if kind == "triangle2":
        return max(0.0, min(0.25 + p, 4.0 - 4.0 * p))
    if kind == "one-cycle":
        return max(0.0, min(2.0 * p, 2.0 - 2.0 * p))
    raise ValueError(f"lr schedule {kind!r}: choose one of {LR_SCHEDULES}")


def batch_size(p: float, micro_batch: int, target: int, ramp: float) -> int:
    """Sequences per optimizer step at progress p: grows linearly in p, in whole micro-batches, from one
    micro-batch to `target` at p = ramp (cramming: micro * (floor(p * target / ramp / micro) + 1)).
    ramp = 0 means the full batch from the start."""
    if target < micro_batch or target % micro_batch:
        raise ValueError(f"batch_size={target} must be a multiple of micro_batch={micro_batch} and >= it")
    if ramp <= 0:
        return target
    return min(target, micro_batch * (math.floor(p * target / ramp / micro_batch) + 1))


def mask_rate(p: float, kind: str, fraction: float, start: float, end: float) -> float:
    """Share of positions masked at progress p: constant = `fraction` throughout; linear = from `start` at
    p = 0 to `end` at p = 1 (Ankner et al., "Dynamic Masking Rate Schedules for MLM Pretraining": 30% -> 15%)."""
    if kind == "constant":
        return fraction
    if kind == "linear":
        return start + (end - start) * min(1.0, max(0.0, p))
    raise ValueError(f"mask schedule {kind!r}: choose one of {MASK_SCHEDULES}")
