"""GLUE data from the official TSV download layout or the Hugging Face `nyu-mll/glue` datasets.

Both sources become the same internal form, a `Split` of parallel lists (text_a, text_b, label) with
labels as the HF `ClassLabel` ids (floats for STS-B). Rows that cannot be used are counted per file by
reason and reported, never dropped silently.
"""

from __future__ import annotations

import os
import random
import socket
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from glueval.tasks import Task
from pipeline.cleaning.evalsets import HF_DATASET, tsv_lines

_EXAMPLES_KEPT = 3  # line numbers remembered per malformed-row reason, for the report


class GlueDataError(RuntimeError):
    """GLUE data that cannot be found or read; the message names the file and what to do."""


@dataclass
class Split:
    """One split of one task in the internal form."""

    source: str  # the file or HF split it came from
    text_a: list[str] = field(default_factory=list)
    text_b: list[str] | None = None
    labels: list = field(default_factory=list)
    rows: int = 0  # data rows seen in the source, usable or not
    malformed: Counter = field(default_factory=Counter)  # reason -> count
    malformed_lines: dict = field(default_factory=dict)  # reason -> first few line numbers
    subset_of: int | None = None  # size before `subset`, when it was cut

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, a: str, b: str | None, label) -> None:
        self.text_a.append(a)
        if self.text_b is not None:
            self.text_b.append(b)
        self.labels.append(label)

    def reject(self, reason: str, line: int) -> None:
        self.malformed[reason] += 1
        lines = self.malformed_lines.setdefault(reason, [])
        if len(lines) < _EXAMPLES_KEPT:
            lines.append(line)

    def summary(self) -> dict:
        """Counts for results.json and the report."""
        out = {"source": self.source, "rows": self.rows, "used": len(self),
               "malformed": dict(self.malformed), "malformed_lines": dict(self.malformed_lines)}
        if self.subset_of is not None:
            out["subset_of"] = self.subset_of
        return out


@dataclass
class TaskData:
    """A task's training split and its scored dev splits (MNLI: "m" and "mm")."""

    task: Task
    train: Split
    dev: dict[str, Split]

    def summary(self) -> dict:
        """Per-file row counts and malformed rows, keyed by split ("train", "dev" or MNLI's "m"/"mm")."""
        return {"train": self.train.summary(), **{k: v.summary() for k, v in self.dev.items()}}


def _new_split(task: Task, source: str) -> Split:
    return Split(source=source, text_b=[] if task.is_pair else None)


def _parse_label(task: Task, raw: str):
    """The label id (or STS-B score) of a TSV label field, or None when it is not a valid label."""
    raw = raw.strip()
    if task.is_regression:
        try:
            score = float(raw)
        except ValueError:
            return None
        return score if 0.0 <= score <= 5.0 else None
    return task.labels.index(raw) if raw in task.labels else None


def read_tsv(task: Task, path: str | Path) -> Split:
    """Read one official GLUE TSV file: tab-separated, quoting off, UTF-8 (a BOM is dropped)."""
    path = Path(path)
    if not path.is_file():
        raise GlueDataError(
            f"{path}: file not found; --glue-dir must hold the official GLUE layout "
            f"(<glue-dir>/{task.title}/train.tsv, {', '.join(f for f, _ in task.dev.values())})")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise GlueDataError(f"{path}: not UTF-8 ({e}); GLUE files are UTF-8, re-download them") from e
    lines = tsv_lines(text)
    split = _new_split(task, str(path))
    a_col, b_col, label_col = task.tsv_columns
    first = 0
    if task.has_header:
        if not lines:
            raise GlueDataError(f"{path}: empty file; expected a header with {task.tsv_columns}")
        header = lines[0].split("\t")
        missing = [c for c in task.tsv_columns if c is not None and c not in header]
        if missing:
            raise GlueDataError(f"{path}: header lacks column(s) {missing} (has {header}); "
                                f"is this the {task.title} file of the official GLUE download?")
        a_col, label_col = header.index(a_col), header.index(label_col)
        b_col = header.index(b_col) if b_col is not None else None
        width, first = len(header), 1
    else:
        width = 4  # CoLA: source, label, original mark, sentence
    for i, line in enumerate(lines[first:], start=first + 1):
        split.rows += 1
        cols = line.split("\t")
        if len(cols) != width:
            split.reject(f"{len(cols)} columns, expected {width}", i)
            continue
        label = _parse_label(task, cols[label_col])
        if label is None:
            split.reject("unknown label" if not task.is_regression else "score not a number in [0, 5]", i)
            continue
        split.add(cols[a_col], cols[b_col] if b_col is not None else None, label)
    return split


def load_tsv(task: Task, glue_dir: str | Path) -> TaskData:
    """A task from a folder in the official GLUE layout (`<glue_dir>/RTE/train.tsv`, ...)."""
    folder = Path(glue_dir) / task.title
    if not folder.is_dir():
        raise GlueDataError(f"{folder}: no {task.title} folder in --glue-dir {glue_dir}; "
                            f"drop {task.name} from --tasks or add the official files")
    return TaskData(task, read_tsv(task, folder / "train.tsv"),
                    {k: read_tsv(task, folder / f) for k, (f, _) in task.dev.items()})


def from_hf(task: Task, dataset, source: str) -> Split:
    """Convert one HF `nyu-mll/glue` split (a `datasets.Dataset`) to the internal form."""
    a_col, b_col = task.hf_columns
    missing = [c for c in (a_col, b_col, "label") if c is not None and c not in dataset.column_names]
    if missing:
        raise GlueDataError(f"{source}: columns {missing} missing (has {dataset.column_names}); "
                            f"not a {HF_DATASET}/{task.name} split")
    split = _new_split(task, source)
    text_a, labels = dataset[a_col], dataset["label"]
    text_b = dataset[b_col] if b_col is not None else [None] * len(labels)
    for i, (a, b, label) in enumerate(zip(text_a, text_b, labels, strict=True), start=1):
        split.rows += 1
        if task.is_regression:
            ok = label is not None and 0.0 <= float(label) <= 5.0
        else:
            ok = label is not None and 0 <= int(label) < task.num_labels  # -1 marks unlabelled test rows
        if ok:
            split.add(a, b, float(label) if task.is_regression else int(label))
        else:
            split.reject("unknown label", i)
    return split


def _hub_reachable(timeout: float = 3.0) -> bool:
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


HOW_TO_PASS = ("pass a folder in the official GLUE layout (DIR/CoLA/train.tsv, DIR/RTE/dev.tsv, ...) with --glue-dir DIR; "
               "with make: `make demo GLUE_DIR=DIR` or `make glue GLUE_DIR=DIR`")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def check_reachable(tasks: list[Task], glue_dir: str | Path | None) -> None:
    """Fail in seconds, before any other work, when the tasks' data cannot be had: a file missing under
    `glue_dir`, or (without it) the Hub not answering. HF_HUB_OFFLINE=1 trusts the local cache."""
    if glue_dir is not None:
        folder = Path(glue_dir)
        if not folder.is_dir():
            raise GlueDataError(f"--glue-dir {folder}: no such folder; {HOW_TO_PASS}")
        missing = [f"{t.title}/{name}" for t in tasks for name in ("train.tsv", *(f for f, _ in t.dev.values()))
                   if not (folder / t.title / name).is_file()]
        if missing:
            raise GlueDataError(f"--glue-dir {folder}: missing {', '.join(missing)}; drop those tasks from --tasks "
                                "(--tasks available picks the task folders present) or add the official files")
    elif not _offline() and not _hub_reachable():
        raise GlueDataError(f"no GLUE data: no --glue-dir given and the Hugging Face Hub ({HF_DATASET}) does not "
                            f"answer; {HOW_TO_PASS}")


def load_hub(task: Task) -> TaskData:
    """A task from the Hugging Face Hub (or its local cache when HF_HUB_OFFLINE=1)."""
    import datasets

    hint = (f"pass --glue-dir DIR with the official GLUE TSV layout (DIR/{task.title}/train.tsv), "
            "or set HF_HUB_OFFLINE=1 to use a cached copy")
    if not _offline() and not _hub_reachable():
        raise GlueDataError(f"cannot reach the Hugging Face Hub for {HF_DATASET}/{task.name}; {hint}")
    try:
        ds = datasets.load_dataset(HF_DATASET, task.name)
    except Exception as e:  # any failure here means the same thing to the user
        raise GlueDataError(f"could not load {HF_DATASET}/{task.name} ({type(e).__name__}: {e}); {hint}") from e
    return from_hf_dict(task, ds)


def from_hf_dict(task: Task, ds) -> TaskData:
    """A task from a `datasets.DatasetDict` in the `nyu-mll/glue` layout (train + validation splits)."""
    def get(split: str) -> Split:
        if split not in ds:
            raise GlueDataError(f"{HF_DATASET}/{task.name}: no {split!r} split (has {list(ds)})")
        return from_hf(task, ds[split], f"{HF_DATASET}/{task.name}:{split}")

    return TaskData(task, get("train"), {k: get(s) for k, (_, s) in task.dev.items()})


def load_task(task: Task, glue_dir: str | Path | None) -> TaskData:
    """The one entry point: the official layout under `glue_dir`, else the Hugging Face Hub."""
    return load_tsv(task, glue_dir) if glue_dir else load_hub(task)


def subset(split: Split, n: int | None, seed: int = 0) -> Split:
    """At most `n` rows drawn at random with a fixed seed (order kept); the split itself when n is None."""
    if n is None or n >= len(split):
        return split
    keep = sorted(random.Random(seed).sample(range(len(split)), n))
    out = Split(source=split.source, rows=split.rows, malformed=split.malformed,
                malformed_lines=split.malformed_lines, subset_of=len(split),
                text_b=[] if split.text_b is not None else None)
    for i in keep:
        out.add(split.text_a[i], split.text_b[i] if split.text_b is not None else None, split.labels[i])
    return out
