"""Where a run writes: a staging folder moved into place at the end, and the clean-document files.

A run builds its whole output in `.<name>.tmp` next to `--output` and renames it into place when the
pipeline has finished, so a killed run never leaves output that looks complete. An existing output is
refused unless `--overwrite`, and then only a folder cramkit wrote (it holds stats.json or
manifest.json) and nothing else (every name is one cramkit writes) is replaced; a folder holding
anything more is never deleted.

Clean documents go to `docs-NNNNN-of-MMMMM.jsonl.zst` (one JSON object {"id", "text"} per line, zstd)
or `.parquet` (columns id, text). M is ceil(characters / (file_mb * 1e6)), from the data and config
only; a document goes to file xxh64(id) mod M and each file is sorted by id, so the bytes never depend
on the runner or the number of workers.
"""

import fnmatch
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import apache_beam as beam
import xxhash
import zstandard

FORMATS = ("jsonl.zst", "parquet")
MARKERS = ("stats.json", "manifest.json")  # a folder holding one of these was written by cramkit
OWN = (*MARKERS, "tokenizer.json", "report.png", "shard-*.arrow", "docs-*-of-*.*", ".tmp-summary.json")


@dataclass(frozen=True)
class OutputConfig:
    """`output.*` in the corpus config (the clean documents of `--until clean`)."""

    format: str = "jsonl.zst"  # jsonl.zst | parquet
    file_mb: float = 128.0  # target characters per file, in millions
    zstd_level: int = 3

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"output.format={self.format!r}: choose one of {', '.join(FORMATS)}")
        if self.file_mb <= 0:
            raise ValueError(f"output.file_mb={self.file_mb}: must be > 0")
        if not 1 <= self.zstd_level <= 22:
            raise ValueError(f"output.zstd_level={self.zstd_level}: must be in 1..22")


class OutputError(Exception):
    """The output folder cannot be used; the message says what to do."""


def staging(out: Path, overwrite: bool) -> Path:
    """Check `out` and return a fresh staging folder next to it."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"--output {out}: exists and is not a folder; choose another path")
        if any(out.iterdir()):
            if not overwrite:
                raise OutputError(f"--output {out}: exists and is not empty; pass --overwrite to replace "
                                  "a previous run's output, or choose another folder")
            if not any((out / m).is_file() for m in MARKERS):
                raise OutputError(f"--output {out}: holds files cramkit did not write (no stats.json or "
                                  "manifest.json), so --overwrite will not delete it; choose another folder")
            foreign = sorted(p.name for p in out.iterdir()
                             if not any(fnmatch.fnmatch(p.name, pattern) for pattern in OWN))
            if foreign:
                raise OutputError(f"--output {out}: holds {', '.join(foreign[:5])}"
                                  f"{' ...' if len(foreign) > 5 else ''}, which cramkit did not write, so "
                                  "--overwrite will not delete it; move them away or choose another folder")
    tmp = out.parent / f".{out.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)  # a killed run's staging folder: only ever written by cramkit
    tmp.mkdir(parents=True)
    return tmp


def publish(tmp: Path, out: Path) -> None:
    """Move the finished staging folder into place, replacing a previous cramkit output."""
    out = Path(out)
    if out.exists():
        old = out.parent / f".{out.name}.old"
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)


def _encode_jsonl(docs, level: int) -> bytes:
    body = "".join(json.dumps({"id": d.id, "text": d.text}, ensure_ascii=False) + "\n" for d in docs)
    return zstandard.ZstdCompressor(level=level).compress(body.encode("utf-8"))


def _write_parquet(path: Path, docs) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": [d.id for d in docs], "text": [d.text for d in docs]})
    pq.write_table(table, path, compression="zstd")


class _WriteFile(beam.DoFn):
    def __init__(self, out_dir: str, cfg: OutputConfig):
        self.out_dir, self.cfg = out_dir, cfg

    def process(self, group, n_files):
        start = time.perf_counter()
        index, docs = group
        docs = sorted(docs, key=lambda d: d.id)
        name = f"docs-{index:05d}-of-{n_files:05d}.{self.cfg.format}"
        path = Path(self.out_dir) / name
        if self.cfg.format == "parquet":
            _write_parquet(path, docs)
        else:
            path.write_bytes(_encode_jsonl(docs, self.cfg.zstd_level))
        yield {"file": name, "docs": len(docs), "bytes": path.stat().st_size,
               "seconds": time.perf_counter() - start}


class WriteDocs(beam.PTransform):
    """PCollection[Doc] -> files in `out_dir`; the output holds one {file, docs, bytes, seconds} each."""

    def __init__(self, out_dir, cfg: OutputConfig = OutputConfig()):
        super().__init__()
        self.out_dir, self.cfg = str(out_dir), cfg

    def expand(self, docs):
        per_file = self.cfg.file_mb * 1e6
        n_files = (docs
                   | "Chars" >> beam.Map(lambda d: len(d.text))
                   | "SumChars" >> beam.CombineGlobally(sum)
                   | "Files" >> beam.Map(lambda chars: max(1, math.ceil(chars / per_file))))
        side = beam.pvalue.AsSingleton(n_files)
        return (docs
                | "ToFile" >> beam.Map(lambda d, n: (xxhash.xxh64_intdigest(d.id.encode()) % n, d), side)
                | "GroupFiles" >> beam.GroupByKey()
                | "Write" >> beam.ParDo(_WriteFile(self.out_dir, self.cfg), side))
