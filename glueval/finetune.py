"""Fine-tune one model on one task with one seed, and predict its dev sets.

The learning-rate schedule is computed from the task's own step count (cramming's evaluator reused the
first task's warm-up length for every later task; this one does not).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from glueval.encode import Encoded, collate
from glueval.protocol import Protocol
from model.decay import weight_decay_groups
from trainer.device import autocast


def lr_lambda(total_steps: int, warmup: float, schedule: str):
    """Multiplier of the peak lr at optimizer step `step` (HF's warm-up-then-decay formulas)."""
    warm = int(round(warmup * total_steps))

    def f(step: int) -> float:
        if step < warm:
            return step / max(1, warm)
        progress = (step - warm) / max(1, total_steps - warm)
        if schedule == "cosine":
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
        return max(0.0, 1.0 - progress)

    return f


def make_optimizer(model: torch.nn.Module, p: Protocol) -> torch.optim.Optimizer:
    groups = weight_decay_groups(model, p.weight_decay)
    # fused: the same AdamW update in one kernel per step (on CPU ~6x faster than the per-tensor loop)
    return torch.optim.AdamW(groups, lr=p.lr, betas=p.betas, eps=p.eps, fused=True)


def _forward(model, batch: dict, device: torch.device) -> torch.Tensor:
    return model(batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                 token_type_ids=batch["token_type_ids"].to(device))


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, regression: bool) -> torch.Tensor:
    """Cross-entropy for classes; MSE on the single squeezed output for regression (STS-B)."""
    logits = logits.float()
    if regression:
        return torch.nn.functional.mse_loss(logits.squeeze(-1), labels)
    return torch.nn.functional.cross_entropy(logits, labels)


def train_step(model, opt: torch.optim.Optimizer, batch: dict, device: torch.device, regression: bool,
               p: Protocol) -> torch.Tensor:
    """One optimizer step on one collated batch; returns the loss."""
    with autocast(device, p.precision):
        logits = _forward(model, batch, device)
    loss = loss_fn(logits, batch["labels"].to(device), regression)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if p.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip)
    opt.step()
    return loss


def train(model, data: Encoded, p: Protocol, seed: int, pad_id: int, device: torch.device,
          regression: bool, desc: str = "") -> dict:
    """Fine-tune `model` in place: shuffled batches, AdamW, warm-up + decay over this task's steps."""
    gen = torch.Generator().manual_seed(seed)
    per_epoch = math.ceil(len(data) / p.batch_size)
    total = per_epoch * p.epochs
    opt = make_optimizer(model, p)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, p.warmup, p.schedule))
    model.train()
    start, last_loss = time.perf_counter(), float("nan")
    with tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True, mininterval=1.0) as bar:
        for epoch in range(p.epochs):
            order = torch.randperm(len(data), generator=gen).tolist()
            for b in range(per_epoch):
                batch = collate(data, order[b * p.batch_size:(b + 1) * p.batch_size], pad_id, p.pad_multiple)
                loss = train_step(model, opt, batch, device, regression, p)
                sched.step()
                last_loss = loss.item()
                bar.update(1)
                bar.set_postfix(epoch=f"{epoch + 1}/{p.epochs}", loss=f"{last_loss:.3f}")
    return {"steps": total, "warmup_steps": int(round(p.warmup * total)), "final_loss": last_loss,
            "train_seconds": time.perf_counter() - start}


@torch.inference_mode()
def predict(model, data: Encoded, p: Protocol, pad_id: int, device: torch.device, regression: bool) -> np.ndarray:
    """Class ids (or scores for regression) for every example, in the split's order."""
    model.eval()
    order = np.argsort(data.lengths(), kind="stable")  # similar lengths together: less padding
    out = np.empty(len(data), dtype=np.float64 if regression else np.int64)
    for b in range(0, len(order), p.eval_batch_size):
        idx = order[b:b + p.eval_batch_size]
        with autocast(device, p.precision):
            logits = _forward(model, collate(data, idx.tolist(), pad_id, p.pad_multiple), device).float()
        out[idx] = (logits.squeeze(-1) if regression else logits.argmax(-1)).cpu().numpy()
    return out
