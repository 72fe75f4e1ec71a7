"""GLUE metrics as the benchmark defines them, the majority-class baseline, and the two averages.

Scores are reported x100. A correlation with a constant side (a majority-class or constant prediction) is
undefined; it is reported as 0, the convention scikit-learn uses for MCC.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from glueval.tasks import TASKS, Task


def accuracy(pred, gold) -> float:
    pred, gold = np.asarray(pred), np.asarray(gold)
    return float((pred == gold).mean())


def f1(pred, gold) -> float:
    """F1 of the positive class (label 1: paraphrase / duplicate)."""
    pred, gold = np.asarray(pred) == 1, np.asarray(gold) == 1
    tp = float(np.sum(pred & gold))
    denom = float(pred.sum() + gold.sum())
    return 2 * tp / denom if denom else 0.0


def mcc(pred, gold) -> float:
    """Matthews correlation of binary predictions."""
    pred, gold = np.asarray(pred) == 1, np.asarray(gold) == 1
    tp, tn = float(np.sum(pred & gold)), float(np.sum(~pred & ~gold))
    fp, fn = float(np.sum(pred & ~gold)), float(np.sum(~pred & gold))
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denom if denom else 0.0


def pearson(x, y) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / denom if denom else 0.0


def _ranks(x) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], len(x)] - 1
    ranks = np.empty(len(x))
    ranks[order] = (first[group] + last[group]) / 2 + 1
    return ranks


def spearman(x, y) -> float:
    return pearson(_ranks(x), _ranks(y))


_METRICS = {"accuracy": accuracy, "f1": f1, "mcc": mcc, "pearson": pearson, "spearman": spearman}


def score(task: Task, pred, gold) -> dict[str, float]:
    """Every metric of the task, x100 (pred: class ids, or scores for STS-B)."""
    return {m: 100 * _METRICS[m](pred, gold) for m in task.metrics}


def majority_prediction(task: Task, train_labels) -> float | int:
    """The majority baseline's constant answer: the most frequent training label (STS-B: the mean score)."""
    if task.is_regression:
        return float(np.mean(train_labels))
    counts = Counter(train_labels)
    return min(counts, key=lambda c: (-counts[c], c))


# cramming's GLUE score: the mean of these 9 numbers (WNLI left out, as in BERT and cramming).
CRAMMING_TERMS = [("mnli", "m", "accuracy"), ("mnli", "mm", "accuracy"), ("qqp", "dev", "f1"),
                  ("qnli", "dev", "accuracy"), ("sst2", "dev", "accuracy"), ("cola", "dev", "mcc"),
                  ("stsb", "dev", "pearson"), ("mrpc", "dev", "f1"), ("rte", "dev", "accuracy")]


def cramming_average(scores: dict) -> tuple[float | None, int]:
    """Mean of the 9 numbers present in `scores[task][dev][metric]`; returns (mean, how many were present)."""
    vals = [scores[t][d][m] for t, d, m in CRAMMING_TERMS if m in scores.get(t, {}).get(d, {})]
    return (float(np.mean(vals)) if vals else None), len(vals)


def leaderboard_average(scores: dict) -> tuple[float | None, int]:
    """The GLUE leaderboard convention: each task first averages its own metrics (MRPC/QQP F1 and accuracy,
    STS-B Pearson and Spearman, MNLI matched and mismatched), then the 8 tasks are averaged (WNLI left out).
    Returns (mean, how many of the 8 tasks were present)."""
    per_task = []
    for name, devs in scores.items():
        task = TASKS[name]
        if not task.in_average:
            continue
        vals = [devs[d][m] for d in task.dev for m in task.metrics if m in devs.get(d, {})]
        if len(vals) == len(task.dev) * len(task.metrics):
            per_task.append(float(np.mean(vals)))
    return (float(np.mean(per_task)) if per_task else None), len(per_task)
