"""`glue.py --backend hf`: one fine-tuning run through transformers, as a transformers user would do it on an
exported crammed model folder: AutoTokenizer, AutoModelForSequenceClassification, a `Trainer` whose
TrainingArguments carry the protocol, and DataCollatorWithPadding.

The folder's Python files run (transformers' trust_remote_code) only when they are byte for byte the ones
cramkit ships (model/bert.py, configuration_crammed.py, modeling_crammed.py) or the user passed
--trust-remote-code; otherwise `code_consent` refuses before anything is loaded.

The protocol maps one to one: lr, betas, eps, weight decay (transformers exempts biases and LayerNorms; cramkit
every tensor below 2 dimensions: the two differ only on the position scale), batch size, epochs, cosine or
linear decay after the same number of warm-up steps (the fraction rounded as glueval.finetune rounds it),
dropout (through the config), max length (truncation longest-first), padding per batch to pad_multiple,
gradient clipping, seed (head init and shuffling; the order differs from cramkit's loop, so runs agree
within seed noise, not bit for bit), bf16 autocast on CUDA and fp32 elsewhere. The data subsets and the
metrics are the caller's, shared with cramkit's loop.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from glueval.data import Split
from glueval.protocol import Protocol
from glueval.tasks import Task
from model.io import CODE_DIR, CODE_FILES, sha256

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


class UntrustedCode(RuntimeError):
    """The model folder holds Python code that is not cramkit's own, and the user did not consent to run it."""


def _auto_map_modules(folder: Path) -> set[str]:
    """The modules that the `auto_map` of the folder's JSON files (config.json, tokenizer_config.json, ...)
    point transformers to: "module" for a file of the folder, "repo--module" for one it would download."""
    modules = set()
    for path in folder.glob("*.json"):
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # not JSON that transformers could act on either
        refs = values.get("auto_map") if isinstance(values, dict) else None
        refs = refs.values() if isinstance(refs, dict) else refs if isinstance(refs, list) else [refs]
        for ref in refs:
            modules |= {str(name).rsplit(".", 1)[0] for name in (ref if isinstance(ref, list) else [ref])
                        if name is not None}
    return modules


def code_consent(folder: str | Path, trust: bool) -> bool:
    """transformers' trust_remote_code for `folder`: True when the user consented (`trust`, from
    --trust-remote-code) or when every Python file in the folder is byte for byte one that cramkit ships
    and every auto_map entry names one of them; False when the folder has no code at all. Otherwise
    UntrustedCode, in one line naming what differs, before anything is imported."""
    folder = Path(folder)
    if trust:
        return True
    shipped = {name: sha256(CODE_DIR / name) for name in CODE_FILES}
    files = sorted(folder.glob("*.py"))
    modules = _auto_map_modules(folder)
    if not files and not modules:
        return False
    foreign = [p.name for p in files if p.name not in shipped or not p.is_file() or sha256(p) != shipped[p.name]]
    foreign += sorted(f"auto_map's {m!r}" for m in modules if f"{m}.py" not in shipped or not (folder / f"{m}.py").is_file())
    if foreign:
        raise UntrustedCode(f"{folder}: code that is not cramkit's own ({', '.join(foreign)}: cramkit ships "
                            f"{', '.join(CODE_FILES)}); --backend hf would run it: pass --trust-remote-code only "
                            "if you trust that folder's code, or use the default --backend cramkit, which runs none")
    return True


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
             init: str, device: torch.device, trust_remote_code: bool) -> tuple[dict, dict[str, np.ndarray]]:
    """Fine-tune on `train` and predict each dev split; returns glueval.finetune's run record (steps,
    warmup_steps, final_loss, train_seconds, eval_seconds) and the predictions (class ids, or scores).
    `trust_remote_code`: `code_consent`'s answer for the folder."""
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        set_seed,
    )

    tokenizer = AutoTokenizer.from_pretrained(ckpt, trust_remote_code=trust_remote_code)
    regression = task.is_regression
    train_set = encode(tokenizer, train, p.max_length, regression)
    set_seed(seed)  # the fresh head (and for init="random", every weight) draws from it
    if init == "pretrained":
        model = AutoModelForSequenceClassification.from_pretrained(
            ckpt, trust_remote_code=trust_remote_code, num_labels=task.num_labels, dropout=p.dropout)
    elif init == "random":
        config = AutoConfig.from_pretrained(ckpt, trust_remote_code=trust_remote_code, num_labels=task.num_labels,
                                            dropout=p.dropout)
        model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust_remote_code)
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
