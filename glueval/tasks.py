"""The GLUE task table: where each task's text and labels live in both layouts, and how it is scored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class UnknownTaskError(ValueError):
    """A task name that is not in the GLUE table."""


@dataclass(frozen=True)
class Task:
    """One GLUE task.

    `labels` are the label strings of the official TSV files, in the order of the Hugging Face
    `ClassLabel` ids (so both layouts map to the same integers); `None` means regression (STS-B).
    `tsv_columns` names the text columns and the label column of the official TSV header; for a file
    without header (CoLA) they are integer positions. `dev` maps each scored dev set to its
    (TSV file, HF split) pair; MNLI has two.
    """

    name: str  # CLI key and HF config name
    title: str  # display name, also the official folder name
    tsv_columns: tuple  # (text_a, text_b or None, label)
    hf_columns: tuple  # (text_a, text_b or None)
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    dev: dict
    has_header: bool = True
    in_average: bool = True

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def is_pair(self) -> bool:
        return self.hf_columns[1] is not None


_DEV = {"dev": ("dev.tsv", "validation")}

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("cola", "CoLA", (3, None, 1), ("sentence", None), ("0", "1"), ("mcc",), _DEV, has_header=False),
        Task("sst2", "SST-2", ("sentence", None, "label"), ("sentence", None), ("0", "1"), ("accuracy",), _DEV),
        Task("mrpc", "MRPC", ("#1 String", "#2 String", "Quality"), ("sentence1", "sentence2"), ("0", "1"),
             ("f1", "accuracy"), _DEV),
        Task("stsb", "STS-B", ("sentence1", "sentence2", "score"), ("sentence1", "sentence2"), None,
             ("pearson", "spearman"), _DEV),
        Task("qqp", "QQP", ("question1", "question2", "is_duplicate"), ("question1", "question2"), ("0", "1"),
             ("f1", "accuracy"), _DEV),
        Task("mnli", "MNLI", ("sentence1", "sentence2", "gold_label"), ("premise", "hypothesis"),
             ("entailment", "neutral", "contradiction"), ("accuracy",),
             {"m": ("dev_matched.tsv", "validation_matched"),
              "mm": ("dev_mismatched.tsv", "validation_mismatched")}),
        Task("qnli", "QNLI", ("question", "sentence", "label"), ("question", "sentence"),
             ("entailment", "not_entailment"), ("accuracy",), _DEV),
        Task("rte", "RTE", ("sentence1", "sentence2", "label"), ("sentence1", "sentence2"),
             ("entailment", "not_entailment"), ("accuracy",), _DEV),
        Task("wnli", "WNLI", ("sentence1", "sentence2", "label"), ("sentence1", "sentence2"), ("0", "1"),
             ("accuracy",), _DEV, in_average=False),
    )
}

# Spellings accepted on the command line besides the keys: the official titles and common aliases.
_ALIASES = {t.title.lower(): t.name for t in TASKS.values()} | {"sts-b": "stsb", "sst-2": "sst2"}


def resolve(names: str | list[str] | None, glue_dir: str | Path | None = None) -> list[Task]:
    """Tasks from a comma list or list of names (case-insensitive). `None`/`all` = every task;
    `available` = the tasks whose folder is in `glue_dir` (the official layout)."""
    if names is None:
        return list(TASKS.values())
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    wanted = [n.strip().lower() for n in names]
    if wanted == ["all"]:
        return list(TASKS.values())
    if wanted == ["available"]:
        if glue_dir is None:
            raise UnknownTaskError("--tasks available needs --glue-dir (it picks the task folders found there)")
        found = [t for t in TASKS.values() if (Path(glue_dir) / t.title).is_dir()]
        if not found:
            raise UnknownTaskError(f"{glue_dir}: no GLUE task folders ({', '.join(t.title for t in TASKS.values())})")
        return found
    out = []
    for n in wanted:
        key = _ALIASES.get(n, n)
        if key not in TASKS:
            raise UnknownTaskError(f"unknown GLUE task {n!r}; choose from {', '.join(TASKS)} (or 'all', 'available')")
        if TASKS[key] not in out:
            out.append(TASKS[key])
    return out


def score_names(task: Task) -> list[tuple[str, str]]:
    """(dev set, metric) pairs a task reports, e.g. MNLI -> [("m", "accuracy"), ("mm", "accuracy")]."""
    return [(dev, m) for dev in task.dev for m in task.metrics]
