"""`glue.py --backend hf`: one fine-tuning run through transformers, as a transformers user would do it on an
exported crammed model folder: AutoTokenizer, AutoModelForSequenceClassification (trust_remote_code), a
`Trainer` whose TrainingArguments carry the protocol, and DataCollatorWithPadding.

The protocol maps one to one: lr, betas, eps, weight decay (transformers exempts biases and LayerNorms; cramkit
every tensor below 2 dimensions: the two differ only on the position scale), batch size, epochs, cosine or
linear decay after the same number of warm-up steps (the fraction rounded as glueval.finetune rounds it),
dropout (through the config), max length (truncation longest-first), padding per batch to pad_multiple,
gradient clipping, seed (head init and shuffling; the order differs from cramkit's loop, so runs agree
within seed noise, not bit for bit), bf16 autocast on CUDA and fp32 elsewhere. The data subsets and the
metrics are the caller's, shared with cramkit's loop.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from glueval.data import Split
from glueval.protocol import Protocol
from glueval.tasks import Task

NEEDS = "glue.py --backend hf needs transformers (>= 5) and accelerate: pip install -e '.[test]'"


class BackendUnavailable(RuntimeError):
    """transformers' Trainer cannot run in this environment."""


def check_installed() -> None:
    """Fail before any training when transformers' Trainer cannot run here."""
    try:
        import accelerate  # noqa: F401  (the Trainer needs it)
        import transformers
    except ImportError as err:
        raise BackendUnavailable(f"{NEEDS} ({err})") from None
    if int(transformers.__version__.split(".")[0]) < 5:
        raise BackendUnavailable(f"{NEEDS} (found transformers {transformers.__version__})")


def encode(tokenizer, split: Split, max_length: int, regression: bool) -> list[dict]:
    """One dict per example (input_ids, token_type_ids, attention_mask, labels), unpadded."""
    texts = (split.text_a,) if split.text_b is None else (split.text_a, split.text_b)
    enc = tokenizer(*texts, truncation=True, max_length=max_length)
    labels = np.asarray(split.labels, dtype=np.float32 if regression else np.int64)
    return [{**{k: v[i] for k, v in enc.items()}, "labels": labels[i]} for i in range(len(split))]


def training_arguments(p: Protocol, seed: int, n_train: int, device: torch.device, out_dir: str):
    """TrainingArguments carrying the protocol (see the module docstring)."""
    from transformers import TrainingArguments

    total = math.ceil(n_train / p.batch_size) * p.epochs
    return TrainingArguments(
        output_dir=out_dir, learning_rate=p.lr, adam_beta1=p.betas[0], adam_beta2=p.betas[1],
        adam_epsilon=p.eps, weight_decay=p.weight_decay, per_device_train_batch_size=p.batch_size,
        per_device_eval_batch_size=p.eval_batch_size, num_train_epochs=p.epochs, lr_scheduler_type=p.schedule,
        warmup_steps=int(round(p.warmup * total)), max_grad_norm=p.grad_clip or 0.0, seed=seed, data_seed=seed,
        use_cpu=device.type == "cpu", bf16=p.precision == "bf16", save_strategy="no", eval_strategy="no",
        logging_strategy="steps", logging_steps=1, report_to="none", disable_tqdm=True)


def finetune(ckpt: str | Path, task: Task, train: Split, dev: dict[str, Split], p: Protocol, seed: int,
             init: str, device: torch.device) -> tuple[dict, dict[str, np.ndarray]]:
    """Fine-tune on `train` and predict each dev split; returns glueval.finetune's run record (steps,
    warmup_steps, final_loss, train_seconds, eval_seconds) and the predictions (class ids, or scores)."""
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        set_seed,
    )

    tokenizer = AutoTokenizer.from_pretrained(ckpt, trust_remote_code=True)
    regression = task.is_regression
    train_set = encode(tokenizer, train, p.max_length, regression)
    set_seed(seed)  # the fresh head (and for init="random", every weight) draws from it
    if init == "pretrained":
        model = AutoModelForSequenceClassification.from_pretrained(
            ckpt, trust_remote_code=True, num_labels=task.num_labels, dropout=p.dropout)
    elif init == "random":
        config = AutoConfig.from_pretrained(ckpt, trust_remote_code=True, num_labels=task.num_labels,
                                            dropout=p.dropout)
        model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=True)
    else:
        raise ValueError(f"init must be 'pretrained' or 'random', not {init!r}")
    with tempfile.TemporaryDirectory() as tmp:
        args = training_arguments(p, seed, len(train_set), device, tmp)
        trainer = Trainer(model=model, args=args, train_dataset=train_set,
                          data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=p.pad_multiple))
        trainer.remove_callback(PrinterCallback)  # the losses stay in trainer.state.log_history
        start = time.perf_counter()
        out = trainer.train()
        info = {"steps": out.global_step, "warmup_steps": args.warmup_steps,
                "final_loss": next(r["loss"] for r in reversed(trainer.state.log_history) if "loss" in r),
                "train_seconds": time.perf_counter() - start}
        start = time.perf_counter()
        preds = {}
        for name, split in dev.items():
            logits = trainer.predict(encode(tokenizer, split, p.max_length, regression)).predictions
            preds[name] = logits[:, 0].astype(np.float64) if regression else logits.argmax(-1)
        info["eval_seconds"] = time.perf_counter() - start
    return info, preds
