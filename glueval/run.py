"""The evaluation: every task x init x seed, fine-tuned and scored, collected into one results dict.

Every task's data is read and encoded before the first fine-tuning step (bad data fails at once). Runs
already in `previous` (a results dict of the same checkpoint, protocol and data, see
`report.read_previous`) are kept, not repeated.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from glueval import data, hf_backend, metrics, report
from glueval.encode import Encoded, collate, encode, load_tokenizer
from glueval.finetune import make_optimizer, predict, train, train_step
from glueval.protocol import Protocol
from glueval.tasks import Task
from model.heads import SequenceClassifier
from model.io import WEIGHTS, load_pretrained, read_config, sha256
from trainer.device import Precision

BACKENDS = ("cramkit", "hf")
INITS = ("pretrained", "random")


def classifier(ckpt: str | Path, num_labels: int, init: str, dropout: float) -> torch.nn.Module:
    """A sequence classifier with a fresh head: the checkpoint's pretrained encoder (model.io.load_pretrained),
    or (init="random") the same architecture with random weights, the no-pretraining baseline. Seed torch
    before calling."""
    if init == "pretrained":
        return load_pretrained(ckpt, kind="classifier", num_labels=num_labels, dropout=dropout)
    if init == "random":
        return SequenceClassifier(read_config(ckpt)[0].replace(dropout=dropout), num_labels)
    raise ValueError(f"init must be one of {INITS}, not {init!r}")


@dataclass
class Prepared:
    """One task's data, cut to the protocol's subset and encoded; `steps` per fine-tuning run."""

    task: Task
    data: data.TaskData
    train: data.Split
    dev: dict[str, data.Split]
    train_enc: Encoded
    dev_enc: dict[str, Encoded]
    steps: int


def _scores(task: Task, dev: dict, preds: dict) -> dict:
    return {k: metrics.score(task, preds[k], dev[k].labels) for k in dev}


def majority_scores(task: Task, train: data.Split, dev: dict) -> dict:
    """Scores of always answering the training majority (STS-B: the mean training score)."""
    answer = metrics.majority_prediction(task, train.labels)
    return _scores(task, dev, {k: np.full(len(s), answer) for k, s in dev.items()})


def prepare(task: Task, p: Protocol, glue_dir: str | Path | None, tok, log: Callable[[str], None]) -> Prepared:
    td = data.load_task(task, glue_dir)
    for name, split in {"train": td.train, **td.dev}.items():
        if split.malformed:
            log(f"{split.source}: {sum(split.malformed.values())} malformed row(s) skipped: "
                + "; ".join(f"{r} x{n} (e.g. line {split.malformed_lines[r][0]})" for r, n in split.malformed.items()))
        if len(split) == 0:
            raise data.GlueDataError(f"{split.source}: no usable rows in the {task.title} {name} split")
    train_split = data.subset(td.train, p.max_train_examples)
    dev = {k: data.subset(s, p.max_eval_examples) for k, s in td.dev.items()}
    train_enc = encode(tok, train_split, p.max_length, task.is_regression)
    return Prepared(task, td, train_split, dev, train_enc,
                    {k: encode(tok, s, p.max_length, task.is_regression) for k, s in dev.items()},
                    p.epochs * math.ceil(len(train_enc) / p.batch_size))


def estimate_seconds(ckpt, prepared: list[Prepared], runs: dict[str, int], p: Protocol, pad_id: int,
                     device: torch.device) -> tuple[float, int]:
    """(seconds, optimizer steps) of the runs still to do: per task, steps x the median of 3 timed training
    steps on one of that task's batches (after one untimed step on it: a CPU's first step at a new shape
    pays the kernels' set-up, which a run pays once per shape), plus its dev sets at a third of a step per
    example."""
    total, steps = 0.0, 0
    for prep in prepared:
        if not runs.get(prep.task.name):
            continue
        torch.manual_seed(0)
        model = classifier(ckpt, prep.task.num_labels, "random", p.dropout).to(device)
        opt = make_optimizer(model, p)
        order = torch.randperm(len(prep.train_enc), generator=torch.Generator().manual_seed(0)).tolist()
        times = []
        batch = collate(prep.train_enc, order[:p.batch_size], pad_id, p.pad_multiple)
        for _ in range(4):
            t0 = time.perf_counter()
            train_step(model, opt, batch, device, prep.task.is_regression, p)
            times.append(time.perf_counter() - t0)
        step = float(np.median(times[1:]))
        dev_examples = sum(len(e) for e in prep.dev_enc.values())
        per_run = prep.steps * step + dev_examples * step / p.batch_size / 3
        total += runs[prep.task.name] * per_run
        steps += runs[prep.task.name] * prep.steps
    return total, steps


def evaluate(ckpt: str | Path, tasks: list[Task], p: Protocol, glue_dir: str | Path | None,
             inits: list[str], device: torch.device, on_update: Callable[[dict], None] = lambda r: None,
             log: Callable[[str], None] = print, previous: dict | None = None,
             announce: Callable[[list[Prepared], dict[str, int], int], None] = lambda *a: None,
             backend: str = "cramkit", trust_remote_code: bool = False) -> dict:
    """Fine-tune and score with cramkit's loop or (backend="hf") transformers' Trainer on the same data;
    `on_update` gets the growing results after each run (to save them).
    `announce(prepared, runs_left_per_task, pad_id)` is called once, after the data is read and before the
    first run (glue.py prints the time estimate there).
    `results["predictions"]` keeps every run's dev predictions with the gold labels, for re-checking.
    `trust_remote_code`: the user's consent to run the folder's own Python code with backend="hf" (without
    it, only code byte for byte cramkit's runs: hf_backend.code_consent)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend == "hf":
        hf_backend.check_installed()
        trust_remote_code = hf_backend.code_consent(ckpt, trust_remote_code)
    precision = Precision(p.precision, device)
    log(f"precision: {precision}")
    p = replace(p, precision=precision.name)  # auto resolved once: what every run uses, as recorded
    cfg = read_config(ckpt)[0]
    tok = load_tokenizer(ckpt, cfg.vocab_size)
    pad_id = tok.token_to_id("[PAD]")
    results = {"checkpoint": str(ckpt), "checkpoint_sha256": sha256(Path(ckpt) / WEIGHTS), "protocol": p.to_dict(),
               "inits": list(inits), "backend": backend, "data": str(glue_dir) if glue_dir else f"hf:{data.HF_DATASET}",
               "machine": {"device": str(device), "threads": torch.get_num_threads(),
                           "platform": platform.platform(), "torch": torch.__version__},
               "tasks": {}, "predictions": []}
    prepared = [prepare(task, p, glue_dir, tok, log) for task in tasks]
    why = previous and report.comparable(previous, results)
    if why:
        log(f"the earlier results in the output folder come from {why}: none of their runs is reused, they "
            "will be replaced")
    done = previous if previous and not why else {"tasks": {}, "predictions": []}
    runs_left = {}
    for prep in prepared:
        task = prep.task
        kept = done["tasks"].get(task.name, {}).get("runs", {})
        entry = {"title": task.title, "metrics": list(task.metrics), "dev_sets": list(task.dev),
                 "data": prep.data.summary(),
                 "runs": {i: {str(s): kept[i][str(s)] for s in p.seeds if str(s) in kept.get(i, {})} for i in inits},
                 "used": {"train": len(prep.train), **{k: len(s) for k, s in prep.dev.items()}},
                 "majority": majority_scores(task, prep.train, prep.dev)}
        results["tasks"][task.name] = entry
        results["predictions"] += [r for r in done["predictions"] if r["task"] == task.name
                                   and str(r["seed"]) in entry["runs"].get(r["init"], {})]
        runs_left[task.name] = sum(len(p.seeds) - len(entry["runs"][i]) for i in inits)
    announce(prepared, runs_left, pad_id)
    for prep in prepared:
        task, entry = prep.task, results["tasks"][prep.task.name]
        for init in inits:
            for seed in p.seeds:
                if str(seed) in entry["runs"][init]:
                    continue
                desc = f"{task.title} {init} seed {seed}"
                if backend == "hf":
                    info, preds = hf_backend.finetune(ckpt, task, prep.train, prep.dev, p, seed, init, device,
                                                        trust_remote_code)
                else:
                    torch.manual_seed(seed)
                    model = classifier(ckpt, task.num_labels, init, p.dropout).to(device)
                    info = train(model, prep.train_enc, p, seed, pad_id, device, task.is_regression, desc)
                    t0 = time.perf_counter()
                    preds = {k: predict(model, e, p, pad_id, device, task.is_regression)
                             for k, e in prep.dev_enc.items()}
                    info["eval_seconds"] = time.perf_counter() - t0
                info["scores"] = _scores(task, prep.dev, preds)
                for k, pred in preds.items():
                    results["predictions"].append({"task": task.name, "dev": k, "init": init, "seed": seed,
                                                   "pred": pred.tolist(), "gold": list(prep.dev[k].labels)})
                entry["runs"][init][str(seed)] = info
                log(f"{desc}: " + ", ".join(f"{k} {m} {v:.1f}" for k, d in info["scores"].items()
                                            for m, v in d.items())
                    + f" ({info['train_seconds']:.0f}s)")
                on_update(results)
    return results
