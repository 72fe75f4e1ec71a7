"""Where a run writes: its lock, its staging folder, the move into place at the end, and the clean-document files.

A run holds the lock `.<name>.lock` beside `--output` from start to end (pipeline.files.lock), and builds its
output in a staging folder `.<name>.tmp` beside it, marked as cramkit's by a `.cramkit` file. The
finished output gets its record, also `.cramkit` (pipeline.files.record): the list of the files cramkit wrote
there. On a local disk the finished folder is renamed into place, so a killed run never leaves output that
looks complete. Object stores have no rename: there the record goes in first, then each file is moved in (a
server-side copy), manifest.json last, the completion marker (a reader refuses a folder without it).

`--output` is a folder. A file there, or a link to a file or to nothing, is refused; a link to a folder
writes that folder (the link stays). An output in the folder of an input is refused: the next run would
read it back (`storage.match_inputs` skips a folder holding `.cramkit` below an input's folder).

An existing output is refused unless `--overwrite`, and then only one whose record lists every file in
it (a legacy output without a record, or one holding anything else, is refused, not deleted). The
replaced output's files go when the new one is in place, and only those its record lists: anything added
meanwhile stays (locally in `.<name>.old`) and is reported. A staging or `.<name>.old` folder is removed
only when it carries cramkit's marker or record and nothing else; anything else by that name is an
error, never deleted.

Clean documents (`--until clean` or earlier) go to `docs-NNNNN-of-MMMMM.jsonl.zst` (one JSON object
{"id", "text"} per line, zstd; "id" is the document's name; a web page adds its "url" and crawl "date";
with quality scores on, every document carries its "quality") or `.parquet` (columns id, text, url, date,
[quality]; url and date null but for web pages): one file per work unit that kept a document, in id order.
"""

import json
import os
import sys
from dataclasses import dataclass

import zstandard

from configs import setting
from pipeline.cleaning import quality
from pipeline.duplicates.dedup import losers_of
from pipeline.files import lock, record, storage
from pipeline.graph import docstore, progress
from pipeline.reading import embedded

FORMATS = ("jsonl.zst", "parquet")
RECORD = record.RECORD  # in an output: the record of its files; in a staging folder: STAGING_NOTE
STAGING_NOTE = "cramkit staging folder\n"
MANIFEST = "manifest.json"  # the completion marker of a shard set, moved in last and deleted first
DOC_FIELDS = ("id", "text", "url", "date")  # a clean document; url and date only for web pages


@dataclass(frozen=True)
class OutputConfig:
    """`output.*` in the corpus config (the clean documents of `--until clean`)."""

    format: str = setting("jsonl.zst | parquet", "jsonl.zst")
    zstd_level: int = setting("zstd level of jsonl.zst files (1..22)", 3)

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"output.format={self.format!r}: choose one of {', '.join(FORMATS)}")
        if not 1 <= self.zstd_level <= 22:
            raise ValueError(f"output.zstd_level={self.zstd_level}: must be in 1..22")


OutputError = record.FolderError  # the output folder cannot be used; the message says what to do


@dataclass(frozen=True)
class Folders:
    out: str  # --output (a link resolved to the folder it names)
    tmp: str  # the staging folder
    final: str  # where the final files are written (tmp/out)
    stage: str  # intermediate files (tmp/stage)
    replaces: record.Record | None  # the record of the previous output: what publish deletes
    held: lock.Lock  # the output's lock, released by publish or discard


def _sibling(out: str, suffix: str) -> str:
    parent, _, name = out.rstrip("/").rpartition("/")
    return f"{parent}/.{name}.{suffix}" if parent else f".{name}.{suffix}"


def _names(folder: str) -> list[str]:
    """Names of the files below a folder, relative to it."""
    prefix = folder.rstrip("/") + "/"
    return [p[len(prefix):] for p, _ in storage.list_files(folder)]


def _entries(folder: str, what: str) -> list[str]:
    """What a folder holds: locally every entry (files, folders, links); on an object store the files
    below it, relative to it. [] when it does not exist; OutputError when it is not a folder."""
    return record.entries(folder, what) if storage.is_local(folder) else _names(folder)


def _ours(folder: str, what: str) -> record.Record | None:
    """The record of `folder`: what cramkit may delete there (None for an empty or absent folder).
    OutputError when it holds anything else, or files but no record of a corpus output."""
    if storage.is_local(folder):
        return record.owned(folder, what, "corpus")
    names = _names(folder)
    if not names:
        return None
    rec = record.parse(storage.read_text(storage.join(folder, RECORD))) if RECORD in names else None
    if rec is None or rec.kind != "corpus":
        raise record.not_ours(folder, what, "corpus")
    if foreign := [n for n in names if n != RECORD and not rec.owns(n)]:
        raise record.holds_others(folder, what, foreign)
    return rec


def _remove(folder: str, rec: record.Record | None) -> list[str]:
    """Delete what the record lists (the manifest first) and the record, then a local folder left empty;
    the names left in it."""
    if storage.is_local(folder):
        return record.remove(folder, rec or record.Record("corpus"), first=(MANIFEST,))
    for name in sorted(rec.files if rec else (), key=lambda n: n != MANIFEST):
        storage.delete_file(storage.join(folder, name))
    storage.delete_file(storage.join(folder, RECORD))
    return []


def _resolve(out: str) -> str:
    """`--output` as the folder to write: refused when it is a file or a link to anything but a folder."""
    if storage.is_local(out):
        return str(record.resolve(out, "--output"))
    if storage.exists(out):
        raise OutputError(f"--output {out}: is a file; cramkit writes a folder and never replaces a file, "
                          "so choose another --output")
    return out


def _real(path: str) -> str:
    return os.path.realpath(path) if storage.is_local(path) else path.rstrip("/")


def check_apart(out: str, specs) -> None:
    """Refuse an output where an input reads (in its folder, or where its glob reaches): the next run
    would read it back."""
    mine = _real(out)
    for spec in specs:
        if spec in embedded.SPECS or spec.startswith("hf:"):
            continue
        root, depth = storage.input_reach(spec)
        root = _real(root).rstrip("/")
        if mine != root and not mine.startswith(root + "/"):
            continue
        if depth is None or mine[len(root):].count("/") + 1 <= depth:  # the output's files lie within reach
            raise OutputError(f"--output {out}: is inside the input {spec}, where a later run would read it "
                              "back; choose an --output outside every --input")


def prepare(out: str, overwrite: bool, inputs=()) -> Folders:
    """Check `--output` (and that it is apart from the `inputs` specs), take its lock, clear what a dead
    run left beside it, and create a fresh, marked staging folder."""
    storage.check(out)
    out = _resolve(out.rstrip("/"))
    check_apart(out, inputs)
    try:
        held = lock.take(out, _sibling(out, "lock"))
    except lock.LockError as e:
        raise OutputError(str(e)) from e
    try:
        folders = _prepare(out, overwrite, held)
    except BaseException:
        held.release()
        raise
    if held.note:
        print(f"note: {held.note}", file=sys.stderr)
    return folders


def _prepare(out: str, overwrite: bool, held: lock.Lock) -> Folders:
    tmp = _sibling(out, "tmp")
    if _entries(tmp, "staging folder"):
        marker = storage.join(tmp, RECORD)
        if not (storage.exists(marker) and storage.read_bytes(marker) == STAGING_NOTE.encode()):
            raise OutputError(f"{tmp}: exists and was not made by cramkit (no {RECORD} marker), so it "
                              "will not be deleted; move it away or choose another --output")
        storage.delete_tree(tmp)  # a dead run's staging folder (a live run would hold the lock)
    if storage.is_local(out):
        old = _sibling(out, "old")
        _remove(old, _ours(old, "leftover folder"))
    replaces = None
    if _entries(out, "--output"):
        if not overwrite:
            raise OutputError(f"--output {out}: exists and is not empty; pass --overwrite to replace a previous "
                              "run's output, or choose another folder")
        replaces = _ours(out, "--output")
    storage.write_text(storage.join(tmp, RECORD), STAGING_NOTE)
    return Folders(out, tmp, storage.join(tmp, "out"), storage.join(tmp, "stage"), replaces, held)


def publish(folders: Folders) -> None:
    """Put the finished output in place with its record, replacing a previous output (only the files its
    record listed), and remove the staging folder and the lock."""
    out, final = folders.out, folders.final
    storage.delete_tree(folders.stage)
    files = sorted(n for n in _names(final) if n != RECORD)
    listing = record.Record("corpus", tuple(files)).text()
    if storage.is_local(out):
        storage.write_text(storage.join(final, RECORD), listing)
        if os.path.lexists(out):
            old = _sibling(out, "old")
            storage.rename_tree(out, old)
            storage.rename_tree(final, out)
            left = _remove(old, folders.replaces)
            if left:
                print(f"warning: {old}: holds {', '.join(left[:5])}{' ...' if len(left) > 5 else ''}, which "
                      f"cramkit did not write (added while the run went on), so it was not deleted; the new "
                      f"output is in {out}", file=sys.stderr)
        else:
            storage.rename_tree(final, out)
    else:  # every file cramkit writes into `out` is listed by the record there at every moment
        _remove(out, folders.replaces)
        storage.write_text(storage.join(out, RECORD), listing)
        for name in sorted(files, key=lambda n: n == MANIFEST):
            storage.move(storage.join(final, name), storage.join(out, name))
    storage.delete_tree(folders.tmp)
    folders.held.release()


def discard(folders: Folders) -> None:
    """Remove what a failed run wrote (its staging folder; `--output` is untouched) and its lock."""
    storage.delete_tree(folders.tmp)
    folders.held.release()


def write_docs(scan, cfg: OutputConfig, plan, decisions, cut=None) -> dict | None:
    """A unit's clean documents (its docstore less the dedup losers and, given a quality.Cut, the
    documents below it) as one file, streamed batch by batch; its output record {file, docs, bytes}, or
    None when it kept nothing."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    gone = losers_of(scan.unit, decisions)
    scored = None if cut is None else quality.unit_scores(plan, scan.unit)
    name = f"docs-{scan.unit:05d}-of-{plan.units:05d}.{cfg.format}"
    path, docs, fh, sink = storage.join(plan.out, name), 0, None, None
    fields = DOC_FIELDS + (() if cut is None else ("quality",))
    schema = pa.schema([(k, pa.float32() if k == "quality" else pa.string()) for k in fields])
    for ids, *columns in docstore.batches(plan.unit_file(scan.unit, "docs.arrow"), scan.docs, web=True):
        live = ~np.isin(ids, gone)
        if cut is not None:
            scores = quality.lookup(scored, ids)
            live &= scores >= cut.threshold
        live = np.flatnonzero(live)
        if not len(live):
            continue
        rows = [dict(zip(DOC_FIELDS, (c[i] for c in columns), strict=True)) for i in live]
        if cut is not None:
            for row, score in zip(rows, np.round(scores[live], 4).tolist(), strict=True):
                row["quality"] = score
        if sink is None:  # opened at the first kept document: object stores cannot hold an empty file
            fh = storage.create(path)
            sink = (pq.ParquetWriter(pa.PythonFile(fh, mode="w"), schema, compression="zstd")
                    if cfg.format == "parquet"
                    else zstandard.ZstdCompressor(level=cfg.zstd_level).stream_writer(fh, closefd=False))
        docs += len(rows)
        if cfg.format == "parquet":
            sink.write_table(pa.Table.from_pylist([{**r, "url": r["url"] or None, "date": r["date"] or None}
                                                   for r in rows], schema=schema))
        else:
            sink.write("".join(json.dumps({k: v for k, v in r.items() if v or k in ("text", "quality")},
                                          ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))
    progress.advance("write docs", plan.units)
    if sink is None:
        return None
    sink.close()
    fh.close()
    return {"file": name, "docs": docs, "bytes": storage.size(path)}
