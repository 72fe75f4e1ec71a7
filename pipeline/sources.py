"""Inputs -> documents: expand `--input` specs into work units, then read each unit in a Beam DoFn.

Specs (`--input`, repeatable):
- a file, a folder (all files under it, recursively) or a glob (`data/**/*.jsonl.zst`);
- `hf:NAME[:CONFIG][@SPLIT]`: a Hugging Face dataset, streamed with `datasets.load_dataset`;
- `docstrings`: the docstrings of the installed Python (pipeline.embedded); the default.

File kinds by name (after a `.gz` or `.zst` suffix): `.jsonl`/`.ndjson`/`.json` are JSON Lines (one
object per line, text in `source.text_field`), `.parquet` is Parquet (column `source.text_field`), all
else is plain text, cut into documents per file, per blank-line-separated block or per line
(`source.text_mode`).

Ids are "<kind>:<path relative to the inputs' common folder>:<offset>" with the offset zero-padded:
the byte offset in the (decompressed) file, the row in Parquet and HF datasets, the line in a Python
file for docstrings. They sort the same on every runner.

Nothing is lost silently. Every record read is either a document or a Drop "read/<rule>":
invalid_json, missing_field, undecodable (policy "drop"), binary, too_long (over `source.max_doc_bytes`;
such a line is skipped without being held in memory), truncated (the last record of a truncated
compressed file). A file that cannot be read, or breaks off (corrupt data, a gzip member without its
trailer, an incomplete zstd frame: Beam's own readers lose that tail silently), is reported with its
error in the file records, and the records before the break are kept.
"""

import glob
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.document import DROPPED, Doc, Drop
from pipeline.records import BrokenFile, byte_chunks, decode, lines, looks_binary, records
from pipeline.stats import timed

FILES = "files"  # tag of the per-unit file records
TEXT_MODES = ("file", "block", "line")
ENCODING_POLICIES = ("replace", "latin-1", "drop")
_JSONL = (".jsonl", ".ndjson", ".json")


@dataclass(frozen=True)
class SourceConfig:
    """`source.*` in the corpus config."""

    text_mode: str = "block"  # plain text: one document per file | block (blank-line separated) | line
    text_field: str = "text"  # JSON Lines key / Parquet column / HF dataset column holding the text
    encoding_errors: str = "replace"  # bytes that are not UTF-8: replace (U+FFFD) | latin-1 | drop
    max_doc_bytes: int = 8_000_000  # larger records are dropped as read/too_long
    max_binary_frac: float = 0.05  # control characters above this fraction: read/binary
    docstrings_max_mb: float = 0.0  # embedded source: MB of .py files to scan (0 = all installed)
    hf_max_docs: int = 0  # HF datasets: stop after this many rows (0 = all)

    def __post_init__(self):
        if self.text_mode not in TEXT_MODES:
            raise ValueError(f"source.text_mode={self.text_mode!r}: choose one of {', '.join(TEXT_MODES)}")
        if self.encoding_errors not in ENCODING_POLICIES:
            raise ValueError(f"source.encoding_errors={self.encoding_errors!r}: choose one of "
                             f"{', '.join(ENCODING_POLICIES)}")
        if not self.text_field:
            raise ValueError("source.text_field: must not be empty")
        if self.max_doc_bytes < 1:
            raise ValueError(f"source.max_doc_bytes={self.max_doc_bytes}: must be a positive integer")
        if not 0 <= self.max_binary_frac <= 1:
            raise ValueError(f"source.max_binary_frac={self.max_binary_frac}: must be in [0, 1]")
        if self.docstrings_max_mb < 0 or self.hf_max_docs < 0:
            raise ValueError("source.docstrings_max_mb and source.hf_max_docs must be >= 0 (0 = no cap)")


class Unit(NamedTuple):
    """One element of reading work: a file, a group of Python files, or an HF dataset."""

    kind: str  # text | jsonl | parquet | hf | docstrings
    rel: str  # the id's path part
    paths: tuple  # files to open (docstrings: several; hf: (name, config, split))
    size: int  # bytes on disk (0 when unknown), for progress and stats


class InputError(Exception):
    """A bad --input spec, found before the pipeline starts."""


# ---- expanding specs into units (runs in the launcher, before the pipeline) -----------------------

def file_kind(path: str) -> str:
    name = path.lower().removesuffix(".gz").removesuffix(".zst")
    if name.endswith(_JSONL):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    return "text"


def _files(spec: str) -> list[Path]:
    if any(c in spec for c in "*?["):
        found = [Path(p) for p in glob.glob(spec, recursive=True) if os.path.isfile(p)]
        if not found:
            raise InputError(f"--input {spec}: the pattern matches no file")
        return found
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
        if not found:
            raise InputError(f"--input {spec}: the folder holds no files (empty input)")
        return found
    raise InputError(f"--input {spec}: no such file or folder (use a file, a folder, a glob, "
                     "hf:NAME[:CONFIG][@SPLIT] or docstrings)")


def _hf_unit(spec: str) -> Unit:
    body, _, split = spec.removeprefix("hf:").partition("@")
    name, _, config = body.partition(":")
    if not name:
        raise InputError(f"--input {spec}: name the dataset, as hf:NAME[:CONFIG][@SPLIT]")
    split = split or "train"
    return Unit("hf", f"{name}/{config or 'default'}/{split}", (name, config or None, split), 0)


def check_hf(spec: str) -> None:
    """Fail fast, before the pipeline, when an hf: dataset cannot be opened (offline, unknown name)."""
    name, config, split = _hf_unit(spec).paths
    local = (f"download it where the Hub is reachable (e.g. `datasets.load_dataset({name!r}).to_parquet(...)` "
             "or its .parquet/.jsonl files) and pass the files: --input path/to/files")
    if os.environ.get("HF_HUB_OFFLINE") != "1":
        import socket
        from urllib.parse import urlparse

        from huggingface_hub import constants

        url = urlparse(constants.ENDPOINT)
        try:
            socket.create_connection((url.hostname, url.port or 443), timeout=5).close()
        except OSError as e:
            raise InputError(f"--input {spec}: cannot reach the Hugging Face Hub to stream dataset {name!r} "
                             f"({e}). Offline: {local}; a dataset already in the local cache works with "
                             "HF_HUB_OFFLINE=1") from e
    from datasets import load_dataset

    try:
        load_dataset(name, config, split=split, streaming=True)
    except Exception as e:  # noqa: BLE001 -- the datasets library raises many kinds; all mean "cannot open"
        raise InputError(f"--input {spec}: cannot open dataset {name!r} (config {config}, split {split}): "
                         f"{type(e).__name__}: {e}. Check the name, or {local}") from e


def expand(specs: list[str], cfg: SourceConfig) -> list[Unit]:
    """`--input` specs -> work units sorted by id prefix. Raises InputError naming a bad spec."""
    from pipeline import embedded

    units, files = [], []
    for spec in specs:
        if spec == "docstrings":
            units += embedded.units(cfg.docstrings_max_mb)
        elif spec.startswith("hf:"):
            units.append(_hf_unit(spec))
        else:
            files += [p.resolve() for p in _files(spec)]
    if files:
        files = sorted(set(files))
        root = Path(os.path.commonpath([p.parent for p in files]))
        units += [Unit(file_kind(p.name), p.relative_to(root).as_posix(), (str(p),), p.stat().st_size)
                  for p in files]
    return sorted(units, key=lambda u: (u.kind, u.rel))


# ---- byte streams --------------------------------------------------------------------------------

# ---- the reading DoFn ----------------------------------------------------------------------------

def _doc_id(kind, rel, offset):
    return f"{kind}:{rel}:{offset:012d}"


class ReadUnits(beam.DoFn):
    """Unit -> Docs, Drops ("read/<rule>", tag DROPPED) and one file record (tag FILES) per unit:
    {"path", "kind", "bytes", "records", "repaired", "error", "seconds"}."""

    def __init__(self, cfg: SourceConfig, total_bytes: int = 0):
        self.cfg, self.total_bytes = cfg, total_bytes
        self.counters = {}

    def setup(self):
        self.progress = None
        if self.total_bytes:
            from tqdm import tqdm
            self.progress = tqdm(total=self.total_bytes, unit="B", unit_scale=True, desc="read", leave=False,
                                 mininterval=1.0)

    def teardown(self):
        if self.progress is not None:
            self.progress.close()

    def _drop(self, doc_id, rule, chars=0):
        reason = f"read/{rule}"
        if reason not in self.counters:
            self.counters[reason] = Metrics.counter("cramkit", reason)
        self.counters[reason].inc()
        return beam.pvalue.TaggedOutput(DROPPED, Drop(doc_id, reason, chars))

    def process(self, unit: Unit):
        clock = [0.0]
        info = {"path": unit.rel, "kind": unit.kind, "bytes": unit.size, "records": 0, "repaired": 0,
                "error": None}
        try:
            for out in timed(self._read(unit, info), clock):
                if not isinstance(out, beam.pvalue.TaggedOutput) or out.tag == DROPPED:
                    info["records"] += 1
                yield out
        except BrokenFile as e:
            info["error"] = str(e)
        except Exception as e:  # noqa: BLE001 -- any failure of one file is reported, the run goes on
            info["error"] = f"{type(e).__name__}: {e}"
        if self.progress is not None and unit.size:
            self.progress.update(unit.size)
        info["seconds"] = clock[0]
        yield beam.pvalue.TaggedOutput(FILES, info)

    def _read(self, unit, info):
        if unit.kind == "docstrings":
            from pipeline import embedded
            yield from embedded.read(unit, info)
        elif unit.kind == "hf":
            yield from self._hf(unit, info)
        elif unit.kind == "parquet":
            yield from self._parquet(unit, info)
        else:
            yield from self._lines(unit, info)

    def _text(self, doc_id, data, info):
        """A Doc from raw bytes, or the Drop that says why not."""
        text, repaired = decode(data, self.cfg.encoding_errors)
        if text is None:
            return self._drop(doc_id, "undecodable", len(data))
        info["repaired"] += repaired
        if looks_binary(text, self.cfg.max_binary_frac):
            return self._drop(doc_id, "binary", len(text))
        return text

    def _lines(self, unit, info):
        cfg, path = self.cfg, unit.paths[0]
        chunks = byte_chunks(path)
        first = next(chunks, b"")
        binary = b"\0" in first[:8192]  # as git and `file` decide: every record of such a file is read/binary
        chunks = itertools.chain([first], chunks)
        if unit.kind == "text":
            recs = records(chunks, cfg.text_mode, cfg.max_doc_bytes)
        else:
            recs = ((o, line, p) for o, line, p in lines(chunks, cfg.max_doc_bytes) if p or line.strip())
        for offset, data, problem in recs:
            if offset == 0:
                data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
            doc_id = _doc_id(unit.kind, unit.rel, offset)
            if problem or binary:
                yield self._drop(doc_id, problem or "binary", len(data))
                continue
            text = self._text(doc_id, data, info)
            if not isinstance(text, str):
                yield text
            elif unit.kind == "text":
                yield Doc(doc_id, text)
            else:
                yield self._json_doc(doc_id, text)

    def _json_doc(self, doc_id, line):
        try:
            obj = json.loads(line)
        except ValueError:
            return self._drop(doc_id, "invalid_json", len(line))
        text = obj.get(self.cfg.text_field) if isinstance(obj, dict) else None
        if not isinstance(text, str):
            return self._drop(doc_id, "missing_field", len(line))
        if looks_binary(text, self.cfg.max_binary_frac):
            return self._drop(doc_id, "binary", len(text))
        return Doc(doc_id, text)

    def _row(self, doc_id, value, info):
        if isinstance(value, bytes):
            value = self._text(doc_id, value, info)
            if not isinstance(value, str):
                return value
        if not isinstance(value, str):
            return self._drop(doc_id, "missing_field")
        if len(value) > self.cfg.max_doc_bytes:
            return self._drop(doc_id, "too_long", len(value))
        if looks_binary(value, self.cfg.max_binary_frac):
            return self._drop(doc_id, "binary", len(value))
        return Doc(doc_id, value)

    def _parquet(self, unit, info):
        import pyarrow.parquet as pq

        field = self.cfg.text_field
        pf = pq.ParquetFile(unit.paths[0])
        if field not in pf.schema_arrow.names:
            raise BrokenFile(f"no column {field!r} (columns: {', '.join(pf.schema_arrow.names)}); "
                             "set source.text_field")
        row = 0
        for batch in pf.iter_batches(columns=[field], batch_size=1024):
            for value in batch.column(0).to_pylist():
                yield self._row(_doc_id("parquet", unit.rel, row), value, info)
                row += 1

    def _hf(self, unit, info):
        from datasets import load_dataset

        name, config, split = unit.paths
        rows = load_dataset(name, config, split=split, streaming=True)
        if self.cfg.hf_max_docs:
            rows = itertools.islice(rows, self.cfg.hf_max_docs)
        for i, row in enumerate(rows):
            yield self._row(_doc_id("hf", unit.rel, i), row.get(self.cfg.text_field), info)


class Read(beam.PTransform):
    """PCollection[Unit] -> (docs, drops "read/<rule>"); `.files` (set by expand) holds the file records."""

    def __init__(self, cfg: SourceConfig, total_bytes: int = 0):
        super().__init__()
        self.cfg, self.total_bytes = cfg, total_bytes
        self.files = None

    def expand(self, units):
        out = units | "ReadUnits" >> beam.ParDo(ReadUnits(self.cfg, self.total_bytes)).with_outputs(
            DROPPED, FILES, main="docs")
        self.files = out[FILES]
        return out.docs, out[DROPPED]
