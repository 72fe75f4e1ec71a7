"""Which parameters take weight decay: the one rule for pretraining and fine-tuning."""

from __future__ import annotations

from torch import nn


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups of the trainable parameters: none on 1-D parameters (every norm's weight and
    bias, every bias), `weight_decay` on the rest (matrices, embeddings, the position-scale scalar), which
    is cramming's split. By rank, not by name, so no head's norm can slip through. One group without decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if weight_decay == 0:
        return [{"params": params, "weight_decay": 0.0}]
    return [{"params": [p for p in params if p.ndim != 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim == 1], "weight_decay": 0.0}]
