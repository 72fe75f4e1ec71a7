"""Evaluation sets as text: the GLUE task table with its official file layouts, and the readers that turn
a GLUE folder, the Hub's `nyu-mll/glue` or any other evaluation file into examples.

The GLUE table lives here, below the GLUE evaluator (glueval imports it), so the corpus pipeline can
check a corpus against the same files glue.py scores on. No Beam and no `datasets` at import time.

An `Example` is one row of one split: its 0-based row number in the file (GLUE's `idx`) and its texts
(one per text column: a pair task has two). Rows of a GLUE file that lack a text column are counted as
malformed, never dropped silently.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import NamedTuple

HF_DATASET = "nyu-mll/glue"


@dataclass(frozen=True)
class Task:
    """One GLUE task.

    `labels` are the label strings of the official TSV files, in the order of the Hugging Face
    `ClassLabel` ids (so both layouts map to the same integers); `None` means regression (STS-B).
    `tsv_columns` names the text columns and the label column of the official TSV header; for a file
    without header (CoLA's train and dev) they are integer positions. `dev` maps each scored dev set to
    its (TSV file, HF split) pair, `test` each unlabelled test set; MNLI has two of each.
    """

    name: str  # CLI key and HF config name
    title: str  # display name, also the official folder name
    tsv_columns: tuple  # (text_a, text_b or None, label)
    hf_columns: tuple  # (text_a, text_b or None)
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    dev: dict
    test: dict = field(default_factory=lambda: {"test": ("test.tsv", "test")})
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

    def files(self, split: str) -> dict:
        """{split name: (TSV file, HF split)} of "train", "dev" or "test" (MNLI: dev_matched, ...)."""
        if split == "train":
            return {"train": ("train.tsv", "train")} if self.dev else {}
        sets = self.dev if split == "dev" else self.test
        return {split if len(sets) == 1 else f"{split}_{k}": v for k, v in sets.items()}


_DEV = {"dev": ("dev.tsv", "validation")}
_MNLI = {"m": ("dev_matched.tsv", "validation_matched"), "mm": ("dev_mismatched.tsv", "validation_mismatched")}

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
             ("entailment", "neutral", "contradiction"), ("accuracy",), _MNLI,
             test={"m": ("test_matched.tsv", "test_matched"), "mm": ("test_mismatched.tsv", "test_mismatched")}),
        Task("qnli", "QNLI", ("question", "sentence", "label"), ("question", "sentence"),
             ("entailment", "not_entailment"), ("accuracy",), _DEV),
        Task("rte", "RTE", ("sentence1", "sentence2", "label"), ("sentence1", "sentence2"),
             ("entailment", "not_entailment"), ("accuracy",), _DEV),
        Task("wnli", "WNLI", ("sentence1", "sentence2", "label"), ("sentence1", "sentence2"), ("0", "1"),
             ("accuracy",), _DEV, in_average=False),
    )
}
# GLUE's diagnostic set (AX): test only, unlabelled, never fine-tuned on. The official download puts it in
# diagnostic/diagnostic.tsv; the benchmark's submission format calls it AX.tsv.
AX = Task("ax", "diagnostic", ("sentence1", "sentence2", None), ("premise", "hypothesis"), None, (), {},
          test={"test": ("diagnostic.tsv", "test")})
AX_FILES = ("diagnostic/diagnostic.tsv", "diagnostic/AX.tsv", "AX/AX.tsv", "AX.tsv")
SPLITS = ("train", "dev", "test")


class EvalSetError(ValueError):
    """An evaluation set that cannot be found or read; the message names it and what to do."""


class Example(NamedTuple):
    index: int  # 0-based row number in its split (GLUE: the `idx` of the HF split)
    texts: tuple  # one string per text column


@dataclass
class EvalSplit:
    """The examples of one split of one task, and the rows that could not be used."""

    task: str
    split: str
    source: str
    examples: list = field(default_factory=list)
    malformed: int = 0  # rows without the text columns


def tsv_lines(text: str) -> list[str]:
    """The lines of a GLUE TSV file's text (decoded with utf-8-sig): split on "\\n" only (quoting is off
    and texts hold other line-break characters), a trailing "\\r" removed, no final empty line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def read_text(path: str) -> str:
    """A local or remote file's text (.gz / .zst decompressed), UTF-8 with an optional BOM."""
    from pipeline.files import storage
    from pipeline.reading import records

    try:
        data = b"".join(records.decompressed([storage.read_bytes(path)], records.compression(path)))
        return data.decode("utf-8-sig")
    except (OSError, records.BrokenFile) as e:
        raise EvalSetError(f"{path}: cannot read ({e})") from e
    except UnicodeDecodeError as e:
        raise EvalSetError(f"{path}: not UTF-8 ({e})") from e


def read_glue_tsv(task: Task, split: str, path: str) -> EvalSplit:
    """The texts of one official GLUE file, train, dev or test: by header names (the task's TSV and HF
    column names; test files have no label column), else by CoLA's positions (no header)."""
    lines = tsv_lines(read_text(path))
    out = EvalSplit(task.name, split, path)
    names = [c for c in (*task.tsv_columns[:2], *task.hf_columns) if isinstance(c, str)]
    header = lines[0].split("\t") if lines else []
    if any(n in header for n in names):
        cols = list(dict.fromkeys(header.index(n) for n in names if n in header))
        rows = lines[1:]
    elif isinstance(task.tsv_columns[0], int):
        cols, rows = [task.tsv_columns[0]], lines
    else:
        raise EvalSetError(f"{path}: no text column ({', '.join(names)}) in its header {header[:6]}; is this "
                           f"the {task.title} file of the official GLUE download?")
    need = max(cols) + 1
    for i, line in enumerate(rows):
        fields = line.split("\t")
        if len(fields) < need:
            out.malformed += 1
            continue
        out.examples.append(Example(i, tuple(fields[c] for c in cols)))
    return out


def glue_folder(folder: str, splits) -> list[EvalSplit]:
    """Every split file of `splits` found in a folder in the official GLUE layout (any subset of tasks,
    and the diagnostic set as task "ax")."""
    from pipeline.files import storage

    if not storage.exists(folder) and not storage.list_files(folder):
        raise EvalSetError(f"decontam.glue_dir={folder}: no such folder")
    out = []
    for task in TASKS.values():
        for split in splits:
            for name, (file, _) in task.files(split).items():
                path = storage.join(folder, task.title, file)
                if storage.exists(path):
                    out.append(read_glue_tsv(task, name, path))
    if "test" in splits:
        ax = next((p for p in (storage.join(folder, f) for f in AX_FILES) if storage.exists(p)), None)
        if ax:
            out.append(read_glue_tsv(AX, "test", ax))
    if not out:
        raise EvalSetError(f"decontam.glue_dir={folder}: no {'/'.join(splits)} files of the official GLUE layout "
                           f"(e.g. {folder}/RTE/dev.tsv, {folder}/MNLI/dev_matched.tsv)")
    return out


def glue_hub(splits) -> list[EvalSplit]:
    """The `splits` of every GLUE task (and AX) from the Hugging Face Hub; offline, one EvalSetError line."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    hint = ("decontam.hub=true needs the Hugging Face Hub (or HF_HUB_OFFLINE=1 with a cached copy); offline, "
            "pass the official GLUE files with decontam.glue_dir=DIR")
    if not offline:
        import socket
        from urllib.parse import urlparse

        from huggingface_hub import constants

        url = urlparse(constants.ENDPOINT)
        try:
            socket.create_connection((url.hostname, url.port or 443), timeout=5).close()
        except OSError as e:
            raise EvalSetError(f"cannot reach the Hub for {HF_DATASET} ({e}); {hint}") from e
    import datasets

    out = []
    for task in (*TASKS.values(), AX):
        for split in splits:
            for name, (_, hf_split) in task.files(split).items():
                try:
                    ds = datasets.load_dataset(HF_DATASET, task.name, split=hf_split)
                except Exception as e:  # noqa: BLE001 -- every failure means the same to the user
                    raise EvalSetError(f"could not load {HF_DATASET}/{task.name}:{hf_split} "
                                       f"({type(e).__name__}: {e}); {hint}") from e
                out.append(from_dataset(ds, task, name, f"{HF_DATASET}/{task.name}:{hf_split}"))
    return out


def from_dataset(ds, task: Task, split: str, source: str) -> EvalSplit:
    """One `nyu-mll/glue` split (a `datasets.Dataset`) as an EvalSplit; `idx` is the example index."""
    cols = [c for c in task.hf_columns if c is not None]
    missing = [c for c in cols if c not in ds.column_names]
    if missing:
        raise EvalSetError(f"{source}: columns {missing} missing (has {ds.column_names})")
    index = ds["idx"] if "idx" in ds.column_names else range(len(ds))
    texts = zip(*(ds[c] for c in cols), strict=True)
    return EvalSplit(task.name, split, source, [Example(int(i), t) for i, t in zip(index, texts, strict=True)])


def parse_path(spec: str) -> tuple[str, tuple[str, ...]]:
    """"PATH" or "PATH#FIELD[+FIELD...]" -> (path, fields)."""
    path, _, fields = spec.partition("#")
    return path, tuple(f for f in fields.split("+") if f)


def task_name(path: str) -> str:
    """The task name of an evaluation file: its name without folders and extensions."""
    return PurePosixPath(path.replace("\\", "/")).name.split(".")[0]


def eval_file(spec: str) -> EvalSplit:
    """Any evaluation file, split "file", task named after the file: plain text (one example a line),
    JSON Lines (`PATH#FIELD`, a string or a list of strings; `+` joins several fields) or TSV with a
    header (`PATH#COLUMN[+COLUMN]`). Example i is line i (TSV: data row i)."""
    path, fields = parse_path(spec)
    name = path[:-3] if path.endswith(".gz") else path[:-4] if path.endswith(".zst") else path
    kind = "jsonl" if name.endswith((".jsonl", ".ndjson", ".json")) else "tsv" if name.endswith(".tsv") else "text"
    if kind != "text" and not fields:
        raise EvalSetError(f"decontam.paths: {path}: name the {'field' if kind == 'jsonl' else 'column'}(s) that "
                           f"hold the text, e.g. {path}#{'question' if kind == 'jsonl' else 'sentence1+sentence2'}")
    out = EvalSplit(task_name(path), "file", path)
    lines = tsv_lines(read_text(path))
    if kind == "text":
        out.examples = [Example(i, (ln,)) for i, ln in enumerate(lines) if ln.strip()]
    elif kind == "tsv":
        header = lines[0].split("\t") if lines else []
        missing = [f for f in fields if f not in header]
        if missing:
            raise EvalSetError(f"decontam.paths: {path}: no column {missing} in its header {header[:8]}")
        cols = [header.index(f) for f in fields]
        for i, line in enumerate(lines[1:]):
            row = line.split("\t")
            if len(row) < len(header):
                out.malformed += 1
            else:
                out.examples.append(Example(i, tuple(row[c] for c in cols)))
    else:
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                values = [record[f] for f in fields]
            except (ValueError, KeyError, TypeError):
                out.malformed += 1
                continue
            texts = tuple(t for v in values for t in (v if isinstance(v, list) else [v]) if isinstance(t, str))
            if texts:
                out.examples.append(Example(i, texts))
            else:
                out.malformed += 1
    return out
