"""Where a run writes: its staging folder, the move into place at the end, and the clean-document files.

A run's intermediate files live in a staging folder `.<name>.tmp` beside `--output`, marked as
cramkit's by a `.cramkit` file. On a local disk the final files are built in it too and the finished
folder is renamed into place, so a killed run never leaves output that looks complete. Object stores
have no atomic rename: there the final files are written under `--output` directly and manifest.json,
written last, is the completion marker (a reader refuses a folder without it).

An existing output is refused unless `--overwrite`, and then only a folder cramkit wrote (it holds
stats.json or manifest.json) and nothing else (every name is one cramkit writes) is replaced. A staging
or `.<name>.old` folder is removed only when it carries cramkit's marker; anything else by that name is
an error, never deleted.

Clean documents (`--until clean` or earlier) go to `docs-NNNNN-of-MMMMM.jsonl.zst` (one JSON object
{"id", "text"} per line, zstd; "id" is the document's name) or `.parquet` (columns id, text): one file
per work unit that kept a document, in id order.
"""

import fnmatch
import json
from dataclasses import dataclass

import zstandard

from pipeline import docstore, progress, storage
from pipeline.dedup import losers_of

FORMATS = ("jsonl.zst", "parquet")
MARKERS = ("stats.json", "manifest.json")  # a folder holding one of these was written by cramkit
OWN = (*MARKERS, "tokenizer.json", "report.png", "shard-*.arrow", "docs-*-of-*.*", "contamination.jsonl")
STAGING_MARKER = ".cramkit"


@dataclass(frozen=True)
class OutputConfig:
    """`output.*` in the corpus config (the clean documents of `--until clean`)."""

    format: str = "jsonl.zst"  # jsonl.zst | parquet
    zstd_level: int = 3

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"output.format={self.format!r}: choose one of {', '.join(FORMATS)}")
        if not 1 <= self.zstd_level <= 22:
            raise ValueError(f"output.zstd_level={self.zstd_level}: must be in 1..22")


class OutputError(Exception):
    """The output folder cannot be used; the message says what to do."""


@dataclass(frozen=True)
class Folders:
    out: str  # --output
    tmp: str  # the staging folder
    final: str  # where the final files are written (tmp/out locally, out on an object store)
    stage: str  # intermediate files (tmp/stage)


def _sibling(out: str, suffix: str) -> str:
    parent, _, name = out.rstrip("/").rpartition("/")
    return f"{parent}/.{name}.{suffix}" if parent else f".{name}.{suffix}"


def _names(folder: str) -> list[str]:
    """Names of the files below a folder, relative to it."""
    prefix = folder.rstrip("/") + "/"
    return [p[len(prefix):] for p, _ in storage.list_files(folder)]


def _check_ours(folder: str, what: str, markers=MARKERS, own=OWN) -> None:
    names = _names(folder)
    if not any(m in names for m in markers):
        raise OutputError(f"{what} {folder}: holds files cramkit did not write (no {' or '.join(markers)}), "
                          "so it will not be deleted; move it away or choose another folder")
    foreign = sorted(n for n in names if not any(fnmatch.fnmatch(n, p) for p in own))
    if foreign:
        raise OutputError(f"{what} {folder}: holds {', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}, "
                          "which cramkit did not write, so it will not be deleted; move them away or choose "
                          "another folder")


def prepare(out: str, overwrite: bool) -> Folders:
    """Check `--output` and the folders beside it, and create a fresh, marked staging folder."""
    out = out.rstrip("/")
    storage.check(out)
    tmp = _sibling(out, "tmp")
    if _names(tmp):
        if not storage.exists(storage.join(tmp, STAGING_MARKER)):
            raise OutputError(f"{tmp}: exists and was not made by cramkit (no {STAGING_MARKER} marker), so it "
                              "will not be deleted; move it away or choose another --output")
        storage.delete_tree(tmp)  # a killed run's staging folder
    if storage.is_local(out):
        old = _sibling(out, "old")
        if _names(old):
            _check_ours(old, "leftover folder")
            storage.delete_tree(old)
    if _names(out):
        if not overwrite:
            raise OutputError(f"--output {out}: exists and is not empty; pass --overwrite to replace a previous "
                              "run's output, or choose another folder")
        _check_ours(out, "--output")
        if not storage.is_local(out):  # written in place: the old completion marker goes first
            storage.delete_tree(storage.join(out, "manifest.json"))
            storage.delete_tree(out)
    storage.write_bytes(storage.join(tmp, STAGING_MARKER), b"cramkit staging folder\n")
    final = storage.join(tmp, "out") if storage.is_local(out) else out
    return Folders(out, tmp, final, storage.join(tmp, "stage"))


def publish(folders: Folders) -> None:
    """Put the finished output in place (local: rename, replacing a previous output) and remove staging."""
    storage.delete_tree(folders.stage)
    if storage.is_local(folders.out):
        if storage.exists(folders.out):
            old = _sibling(folders.out, "old")
            storage.rename_tree(folders.out, old)
            storage.rename_tree(folders.final, folders.out)
            storage.delete_tree(old)
        else:
            storage.rename_tree(folders.final, folders.out)
    storage.delete_tree(folders.tmp)


def discard(folders: Folders) -> None:
    """Remove what a failed run wrote: the staging folder (and, on an object store, nothing was published:
    there is no manifest)."""
    storage.delete_tree(folders.tmp)


def write_docs(scan, cfg: OutputConfig, plan, decisions) -> dict | None:
    """A unit's clean documents (its docstore less the dedup losers) as one file, streamed batch by
    batch; its output record {file, docs, bytes}, or None when it kept nothing."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    gone = losers_of(scan.unit, decisions)
    name = f"docs-{scan.unit:05d}-of-{plan.units:05d}.{cfg.format}"
    path, docs, fh, sink = storage.join(plan.out, name), 0, None, None
    for ids, names, texts in docstore.batches(plan.unit_file(scan.unit, "docs.arrow"), scan.docs):
        live = np.flatnonzero(~np.isin(ids, gone))
        if not len(live):
            continue
        names, texts = [names[i] for i in live], [texts[i] for i in live]
        if sink is None:  # opened at the first kept document: object stores cannot hold an empty file
            fh = storage.create(path)
            sink = (pq.ParquetWriter(pa.PythonFile(fh, mode="w"), pa.schema([("id", pa.string()), ("text", pa.string())]),
                                     compression="zstd") if cfg.format == "parquet"
                    else zstandard.ZstdCompressor(level=cfg.zstd_level).stream_writer(fh, closefd=False))
        docs += len(names)
        if cfg.format == "parquet":
            sink.write_table(pa.table({"id": names, "text": texts}))
        else:
            sink.write("".join(json.dumps({"id": n, "text": t}, ensure_ascii=False) + "\n"
                               for n, t in zip(names, texts, strict=True)).encode("utf-8"))
    progress.advance("write docs", plan.units)
    if sink is None:
        return None
    sink.close()
    fh.close()
    return {"file": name, "docs": docs, "bytes": storage.size(path)}
