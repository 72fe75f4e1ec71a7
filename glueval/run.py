"""The evaluation: every task x init x seed, fine-tuned and scored, collected into one results dict."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from glueval import checkpoint, data, hf_backend, metrics
from glueval.encode import encode, load_tokenizer
from glueval.finetune import predict, train
from glueval.protocol import Protocol
from glueval.tasks import Task

BACKENDS = ("cramkit", "hf")


def _scores(task: Task, dev: dict, preds: dict) -> dict:
    return {k: metrics.score(task, preds[k], dev[k].labels) for k in dev}


def majority_scores(task: Task, train: data.Split, dev: dict) -> dict:
    """Scores of always answering the training majority (STS-B: the mean training score)."""
    answer = metrics.majority_prediction(task, train.labels)
    return _scores(task, dev, {k: np.full(len(s), answer) for k, s in dev.items()})


def evaluate(ckpt: str | Path, tasks: list[Task], p: Protocol, glue_dir: str | Path | None,
             inits: list[str], device: torch.device, on_update: Callable[[dict], None] = lambda r: None,
             log: Callable[[str], None] = print, backend: str = "cramkit") -> dict:
    """Fine-tune and score with cramkit's loop or (backend="hf") transformers' Trainer on the same data;
    `on_update` gets the growing results after each run (to save them). `results["predictions"]` keeps
    every run's dev predictions with the gold labels, for re-checking."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend == "hf":
        hf_backend.check_installed()
    cfg = checkpoint.model_config(ckpt)
    tok = load_tokenizer(ckpt, cfg.vocab_size)
    pad_id = tok.token_to_id("[PAD]")
    results = {"checkpoint": str(ckpt), "protocol": p.to_dict(), "inits": list(inits), "backend": backend,
               "data": str(glue_dir) if glue_dir else f"hf:{data.HF_DATASET}",
               "machine": {"device": str(device), "threads": torch.get_num_threads(),
                           "platform": platform.platform(), "torch": torch.__version__},
               "tasks": {}, "predictions": []}
    for task in tasks:
        td = data.load_task(task, glue_dir)
        for name, split in {"train": td.train, **td.dev}.items():
            if split.malformed:
                log(f"{split.source}: {sum(split.malformed.values())} malformed row(s) skipped: "
                    + "; ".join(f"{r} x{n} (e.g. line {split.malformed_lines[r][0]})"
                                for r, n in split.malformed.items()))
            if len(split) == 0:
                raise data.GlueDataError(f"{split.source}: no usable rows in the {task.title} {name} split")
        entry = {"title": task.title, "metrics": list(task.metrics), "dev_sets": list(task.dev),
                 "data": td.summary(), "runs": {i: {} for i in inits}}
        results["tasks"][task.name] = entry
        train_split = data.subset(td.train, p.max_train_examples)
        dev = {k: data.subset(s, p.max_eval_examples) for k, s in td.dev.items()}
        entry["used"] = {"train": len(train_split), **{k: len(s) for k, s in dev.items()}}
        entry["majority"] = majority_scores(task, train_split, dev)
        train_enc = encode(tok, train_split, p.max_length, task.is_regression)
        dev_enc = {k: encode(tok, s, p.max_length, task.is_regression) for k, s in dev.items()}
        for init in inits:
            for seed in p.seeds:
                desc = f"{task.title} {init} seed {seed}"
                if backend == "hf":
                    info, preds = hf_backend.finetune(ckpt, task, train_split, dev, p, seed, init, device)
                else:
                    torch.manual_seed(seed)
                    model = checkpoint.build(ckpt, task.num_labels, init, p.dropout).to(device)
                    info = train(model, train_enc, p, seed, pad_id, device, task.is_regression, desc)
                    t0 = time.perf_counter()
                    preds = {k: predict(model, e, p, pad_id, device, task.is_regression) for k, e in dev_enc.items()}
                    info["eval_seconds"] = time.perf_counter() - t0
                info["scores"] = _scores(task, dev, preds)
                for k, pred in preds.items():
                    results["predictions"].append({"task": task.name, "dev": k, "init": init, "seed": seed,
                                                   "pred": pred.tolist(), "gold": list(dev[k].labels)})
                entry["runs"][init][str(seed)] = info
                log(f"{desc}: " + ", ".join(f"{k} {m} {v:.1f}" for k, d in info["scores"].items()
                                            for m, v in d.items())
                    + f" ({info['train_seconds']:.0f}s)")
                on_update(results)
    return results
