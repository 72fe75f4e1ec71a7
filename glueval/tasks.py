"""The GLUE tasks on the command line: names, aliases and the scores each task reports. The task table
(where each task's text and labels live in both layouts, and how it is scored) is
`pipeline.cleaning.evalsets`."""

from __future__ import annotations

from pathlib import Path

# the task table lives below the evaluator, shared with the corpus pipeline
from pipeline.cleaning.evalsets import TASKS, Task


class UnknownTaskError(ValueError):
    """A task name that is not in the GLUE table."""


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
