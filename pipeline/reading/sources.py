"""One work unit -> documents: open its files through storage, cut records, decode, and say why each
record that is not a document was dropped.

Every record read is either a Doc or a Drop "read/<rule>" (web input: pipeline.reading.web): invalid_json,
missing_field, undecodable (bytes that are not UTF-8 under policy "drop"; a JSON string holding a lone
surrogate such as "\ud83d"), binary, too_long (over `source.max_doc_bytes`; never held in memory, compressed
or not), truncated (the last record of a truncated compressed file). A file that cannot be read, or breaks off
(corrupt data, a gzip member without its trailer, an incomplete zstd frame: Beam's own readers lose that tail
silently), is reported in the unit's file records with its error, and the records before the break are kept.
A file whose size or modification time differs from what the planning saw is failed the same way: not
read at all when the change is seen before its read, read only up to its planned size when it changes
during the read.
"""

import itertools
import json
from dataclasses import dataclass

from configs import setting
from pipeline.document import Doc, Drop
from pipeline.files import storage
from pipeline.reading import embedded, records, web
from pipeline.reading.inputs import Unit, doc_id, doc_name

TEXT_MODES = ("file", "block", "line")
ENCODING_POLICIES = ("replace", "latin-1", "drop")


@dataclass(frozen=True)
class SourceConfig:
    """`source.*` in the corpus config."""

    text_mode: str = setting("plain text as documents: block (blank-line separated) | file (one per file) | "
                             "line (one per line)", "block")
    text_field: str = setting("JSON Lines key / Parquet column / HF dataset column holding the text", "text")
    encoding_errors: str = setting("bytes that are not UTF-8: replace (U+FFFD) | latin-1 | drop", "replace")
    max_doc_bytes: int = setting("larger records are dropped as read/too_long", 8_000_000)
    max_binary_frac: float = setting("control characters above this fraction: dropped as read/binary", 0.05)
    docstrings_max_mb: float = setting("embedded docstrings input: MB of .py files to scan (0: all installed)",
                                       0.0)
    hf_max_docs: int = setting("hf: inputs: stop after this many rows (0: all)", 0)
    follow_symlinks: bool = setting("read links that lead out of an input folder (else skipped and counted)",
                                    False)

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


def _utf8(text: str) -> bool:
    """Whether the text can be written as UTF-8 (no lone surrogate, which JSON's "\\ud83d" can make)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unchanged(f) -> None:
    """Raise BrokenFile unless the file still has the size and modification time of the planning."""
    size, mtime = storage.stat(f.path)
    if (size, mtime) != (f.size, f.mtime):
        raise records.BrokenFile(f"changed since the run was planned (size {f.size:,} -> {size:,} bytes, "
                                 f"modified {mtime - f.mtime:+.3f} s later); rerun on files that stay unchanged")


def new_file_record(path: str, kind: str, size: int) -> dict:
    return {"path": path, "kind": kind, "bytes": size, "records": 0, "repaired": 0, "error": None}


class Reader:
    """`read(unit)` yields Docs and Drops; `files` holds one record per file read (see new_file_record),
    with "records" counted and "error" set for a file that failed."""

    def __init__(self, cfg: SourceConfig, web_cfg: web.WebConfig | None = None):
        self.cfg, self.web_cfg = cfg, web_cfg or web.WebConfig()
        self.files: list[dict] = []
        self._web = None

    def read(self, unit: Unit):
        if unit.kind == "docstrings":
            yield from self._docstrings(unit)
            return
        f = unit.files[0]
        info = new_file_record(f.rel, unit.kind, unit.size)
        self.files.append(info)
        try:
            if f.mtime is not None:
                _unchanged(f)
            for out in self._read_file(unit, info):
                info["records"] += 1
                yield out
            if f.mtime is not None:
                _unchanged(f)
        except records.BrokenFile as e:
            info["error"] = str(e)
        except Exception as e:  # noqa: BLE001 -- any failure of one file is reported, the run goes on
            info["error"] = f"{type(e).__name__}: {e}"

    def _read_file(self, unit, info):
        if unit.kind == "hf":
            yield from self._hf(unit, info)
        elif unit.kind == "parquet":
            yield from self._parquet(unit, info)
        elif unit.kind in web.KINDS:
            self._web = self._web or web.WebReader(self.web_cfg, self.cfg.max_doc_bytes)
            yield from self._web.read(unit, info)
        else:
            yield from self._lines(unit, info)

    def _drop(self, name, rule, size=0):
        return Drop(name, f"read/{rule}", size)

    def _text(self, name, data, info):
        """A str from raw bytes, or the Drop that says why not."""
        text, repaired = records.decode(data, self.cfg.encoding_errors)
        if text is None:
            return self._drop(name, "undecodable", len(data))
        info["repaired"] += repaired
        if records.looks_binary(text, self.cfg.max_binary_frac):
            return self._drop(name, "binary", len(text))
        return text

    def _lines(self, unit, info):
        cfg, f = self.cfg, unit.files[0]
        with storage.open_read(f.path) as fh:  # read no further than the planned size
            head = fh.read(min(8192, f.size))
            kind = records.compression(f.path)
            if kind:  # compressed: a whole file
                raw = itertools.chain([head], records.raw_chunks(fh, f.size - len(head)))
                chunks = records.decompressed(raw, kind, cfg.max_doc_bytes)
                first = next(chunks, b"")
                binary = b"\0" in first[:8192]  # as git and `file` decide: every record of such a file is binary
                chunks, base, continues = itertools.chain([first], chunks), 0, False
            else:
                binary = b"\0" in head
                base = records.line_start(fh, unit.start)
                continues = (unit.kind == "text" and cfg.text_mode == "block" and base > 0
                             and not records.after_blank_line(fh, base))
                fh.seek(base)
                chunks = records.raw_chunks(fh, f.size - base)
            if unit.kind == "text":
                recs = records.records(chunks, cfg.text_mode, cfg.max_doc_bytes, base, continues)
            else:
                recs = (r for r in records.lines(chunks, cfg.max_doc_bytes, base)
                        if r.problem or r.data.strip())
            for rec in recs:
                if unit.stop >= 0 and rec.offset >= unit.stop:
                    break
                yield self._record(unit, f, rec, binary, info)

    def _record(self, unit, f, rec, binary, info):
        name = doc_name(unit.kind, f.rel, rec.offset)
        data = rec.data.removeprefix(b"\xef\xbb\xbf") if rec.offset == 0 else rec.data  # a byte-order mark
        if rec.problem or binary:
            return self._drop(name, rec.problem or "binary", rec.size)
        text = self._text(name, data, info)
        if not isinstance(text, str):
            return text
        if unit.kind == "text":
            return Doc(doc_id(f.file_no, rec.offset), name, text)
        return self._json_doc(doc_id(f.file_no, rec.offset), name, text)

    def _json_doc(self, i, name, line):
        try:
            obj = json.loads(line)
        except ValueError:
            return self._drop(name, "invalid_json", len(line))
        text = obj.get(self.cfg.text_field) if isinstance(obj, dict) else None
        if not isinstance(text, str):
            return self._drop(name, "missing_field", len(line))
        if not _utf8(text):
            return self._drop(name, "undecodable", len(line))
        if records.looks_binary(text, self.cfg.max_binary_frac):
            return self._drop(name, "binary", len(text))
        return Doc(i, name, text)

    def _row(self, i, name, value, info):
        if isinstance(value, bytes):
            value = self._text(name, value, info)
            if not isinstance(value, str):
                return value
        if not isinstance(value, str):
            return self._drop(name, "missing_field")
        if not _utf8(value):
            return self._drop(name, "undecodable", len(value))
        if len(value) > self.cfg.max_doc_bytes:
            return self._drop(name, "too_long", len(value))
        if records.looks_binary(value, self.cfg.max_binary_frac):
            return self._drop(name, "binary", len(value))
        return Doc(i, name, value)

    def _parquet(self, unit, info):
        import pyarrow.parquet as pq

        field, f = self.cfg.text_field, unit.files[0]
        with storage.open_read(f.path) as fh:
            pf = pq.ParquetFile(fh)
            if field not in pf.schema_arrow.names:
                raise records.BrokenFile(f"no column {field!r} (columns: {', '.join(pf.schema_arrow.names)}); "
                                         "set source.text_field")
            row = 0
            for batch in pf.iter_batches(columns=[field], batch_size=1024):
                for value in batch.column(0).to_pylist():
                    yield self._row(doc_id(f.file_no, row), doc_name("parquet", f.rel, row), value, info)
                    row += 1

    def _hf(self, unit, info):
        from datasets import load_dataset

        f = unit.files[0]
        name, config, split = f.path.split("|")
        rows = load_dataset(name, config or None, split=split, streaming=True)
        if self.cfg.hf_max_docs:
            rows = itertools.islice(rows, self.cfg.hf_max_docs)
        for i, row in enumerate(rows):
            yield self._row(doc_id(f.file_no, i), doc_name("hf", f.rel, i), row.get(self.cfg.text_field), info)

    def _docstrings(self, unit):
        for f in unit.files:
            info = new_file_record(f.rel, "docstrings", 0)
            self.files.append(info)
            try:
                with storage.open_read(f.path) as fh:
                    source = fh.read()
                info["bytes"] = len(source)
                found = embedded.read(source)
            except (SyntaxError, ValueError, RecursionError, MemoryError, OSError) as e:
                info["error"] = f"{type(e).__name__}: {e}"
                continue
            for line, text, repaired in found:
                info["records"] += 1
                info["repaired"] += repaired
                yield Doc(doc_id(f.file_no, line), doc_name("docstrings", f.rel, line), text)
