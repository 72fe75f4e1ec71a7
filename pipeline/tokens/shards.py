"""The shard set: the contract between the corpus pipeline and every trainer (numpy + pyarrow only).

A shard set is one folder:

    shard-000000.arrow ...  Arrow IPC *stream* files (what `datasets` writes), one record batch each,
                            column `input_ids`: fixed_size_list<uint16>[seq_len] (uint32 when the vocab
                            exceeds 65535), plus `attention_mask`: fixed_size_list<uint8>[seq_len] when
                            rows were packed without crossing documents (padded). Names sort in read order.
    tokenizer.json          the tokenizer that made the ids
    manifest.json           written last: the completion marker (see `write_manifest`)

Any tool loads a shard with `pyarrow.ipc.open_stream` or `datasets.Dataset.from_file`; `ShardSet` adds
the manifest checks (file names inside the folder and sizes always; sha256 of the shards and the tokenizer
with `verify`; token ids below vocab_size when a shard is first mapped) and memory-mapped random access;
`trainer.batches` reads it in a resumable, deterministic batch order.
"""

import hashlib
import json
import os
import platform
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePath

import numpy as np
import pyarrow as pa

from pipeline.document import EmptyCorpus

FORMAT = "cramkit-shards"
FORMAT_VERSION = 2  # 2: "objective", packing.document_end/pad as {token, id}, optional segment_ids
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
SHARD_NAME = "shard-{:06d}.arrow"
COLUMN_DTYPES = {"attention_mask": np.dtype(np.uint8), "segment_ids": np.dtype(np.uint16)}  # input_ids: by vocab


class ShardError(Exception):
    """A shard set that cannot be used as it is; the message names the file and what to do."""


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """uint16 while every id fits, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256(path: Path, progress=None) -> str:
    """Hex sha256 of a file, read into one reused buffer; `progress(n)` after each n bytes."""
    h, buf = hashlib.sha256(), bytearray(1 << 23)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            if progress is not None:
                progress(n)
    return h.hexdigest()


def _fixed_list(rows: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(rows).ravel()), rows.shape[1])


class _Hashing:
    """A binary sink that counts and hashes what passes through it."""

    def __init__(self, f):
        self.f, self.size, self.sha = f, 0, hashlib.sha256()

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self):
        pass

    @property
    def closed(self) -> bool:
        return False


def write_stream(f, rows: np.ndarray, attention_mask: np.ndarray | None = None,
                 segment_ids: np.ndarray | None = None) -> dict:
    """Write one shard to a binary file object as an Arrow stream (one record batch); its manifest entry
    without the file name: rows, bytes, sha256. `rows` [n, seq_len] uint16/uint32; `attention_mask` the
    same shape (uint8) for padded rows; `segment_ids` the same shape (uint16), each token's document
    number within its row."""
    if rows.ndim != 2 or rows.dtype not in (np.uint16, np.uint32) or len(rows) == 0:
        raise ValueError(f"rows must be a non-empty uint16/uint32 [n, seq_len] array, got {rows.dtype} {rows.shape}")
    columns = {"input_ids": _fixed_list(rows)}
    if attention_mask is not None:
        if attention_mask.shape != rows.shape:
            raise ValueError(f"attention_mask {attention_mask.shape} != rows {rows.shape}")
        columns["attention_mask"] = _fixed_list(attention_mask.astype(np.uint8, copy=False))
    if segment_ids is not None:
        if segment_ids.shape != rows.shape:
            raise ValueError(f"segment_ids {segment_ids.shape} != rows {rows.shape}")
        columns["segment_ids"] = _fixed_list(segment_ids.astype(np.uint16, copy=False))
    table = pa.table(columns)
    sink = _Hashing(f)
    with pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), table.schema) as writer:
        writer.write_table(table, max_chunksize=len(rows))
    return {"rows": int(len(rows)), "bytes": sink.size, "sha256": sink.sha.hexdigest()}


def write_shard(path, rows: np.ndarray, attention_mask: np.ndarray | None = None,
                segment_ids: np.ndarray | None = None) -> dict:
    """Write one shard to a local file, atomically (temp + rename); its manifest entry."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as f:
        entry = write_stream(f, rows, attention_mask, segment_ids)
    os.replace(tmp, path)
    return {"file": path.name, **entry}


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def config_hash(config: dict) -> str:
    """sha256 of the config as canonical JSON: the same settings give the same hash on any machine."""
    return hashlib.sha256(_canonical(config)).hexdigest()


def library_versions() -> dict:
    """Versions of what decides the bytes of a shard set."""
    versions = {"python": platform.python_version(), "numpy": np.__version__, "pyarrow": pa.__version__}
    for name in ("tokenizers", "apache_beam"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = module.__version__
    return versions


def manifest(*, seq_len: int, vocab_size: int, shards: list[dict], config: dict, order: dict, packing: dict,
             counts: dict, tokens: dict, tokenizer_sha256: str, created: str, columns=("input_ids",),
             special_tokens: dict | None = None, objective: str = "mlm", quality: dict | None = None) -> str:
    """The text of manifest.json. Everything but "created" is covered by "content_hash", so the same
    input and config give the same manifest apart from that timestamp. `special_tokens` maps token -> id
    for readers that mask or pad; `quality` the quality scorers' hash and cut (None: scores were off).
    Refuses a shard set without rows (EmptyCorpus)."""
    rows = sum(s["rows"] for s in shards)
    if rows == 0:
        raise EmptyCorpus("no rows to write: every document was filtered away or was shorter than one row. "
                          "Check the drop counts in the summary; loosen the filters or add text.")
    body = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "objective": objective,
        "seq_len": seq_len, "vocab_size": vocab_size, "dtype": dtype_for_vocab(vocab_size).name,
        "columns": list(columns), "rows": rows,
        "tokenizer": {"file": TOKENIZER, "sha256": tokenizer_sha256, "special_tokens": special_tokens or {}},
        "config": config, "config_hash": config_hash(config),
        "order": order, "packing": packing, "counts": counts, "tokens": tokens,
        "shards": shards, "versions": library_versions(),
    }
    body["quality"] = quality
    body["content_hash"] = config_hash(body)
    body["created"] = created
    return json.dumps(body, indent=1, sort_keys=True) + "\n"


def created_now() -> str:
    """The creation time to record: SOURCE_DATE_EPOCH when set (reproducible builds), else now (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))))


def write_manifest(out_dir, **fields) -> Path:
    """Write manifest.json (see `manifest`) into a local shard folder, last and atomically; the tokenizer
    must be there already."""
    out_dir = Path(out_dir)
    tokenizer = out_dir / TOKENIZER
    if not tokenizer.is_file():
        raise ShardError(f"{tokenizer}: missing; the tokenizer must be saved before the manifest")
    text = manifest(tokenizer_sha256=_sha256(tokenizer), created=created_now(), **fields)
    tmp = out_dir / f".tmp-{MANIFEST}"
    tmp.write_text(text)
    os.replace(tmp, out_dir / MANIFEST)
    return out_dir / MANIFEST


def read_manifest(path) -> dict:
    """Load and check a manifest (format and version); errors name the file and what to do."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise ShardError(f"{path}: no manifest; the shard set is incomplete (the pipeline writes the "
                         "manifest last) or this is not a shard folder. Rebuild it with `make corpus`.")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as e:
        raise ShardError(f"{path}: not valid JSON ({e}); rebuild the shard set") from e
    if not isinstance(manifest, dict):
        raise ShardError(f"{path}: a JSON {type(manifest).__name__}, not the object of a cramkit shard manifest; "
                         "rebuild the shard set")
    if manifest.get("format") != FORMAT:
        raise ShardError(f"{path}: not a cramkit shard manifest (format {manifest.get('format')!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ShardError(f"{path}: format_version {version!r} is not a version; rebuild the shard set")
    if version > FORMAT_VERSION:
        raise ShardError(f"{path}: format_version {version} was written by a newer cramkit; this one reads "
                         f"versions 1 to {FORMAT_VERSION}: upgrade cramkit (or rebuild the shard set with this one)")
    for key in ("seq_len", "vocab_size", "dtype", "shards", "rows"):
        if key not in manifest:
            raise ShardError(f"{path}: field {key!r} is missing; rebuild the shard set")
    return manifest


def _inside(folder: Path, name, what: str) -> Path:
    """folder/name for a file name read from the manifest, refused unless it is a relative path that
    stays inside folder: no absolute path, no `..`, no symlink leading out."""
    manifest = folder / MANIFEST
    if not isinstance(name, str) or not name or "\0" in name or PurePath(name).is_absolute() \
            or ".." in PurePath(name).parts:
        raise ShardError(f"{manifest}: {what} {name!r} is not a file name inside the shard folder; a "
                         "manifest may only name files in its own folder (edited or not a cramkit manifest)")
    path = folder / name
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ShardError(f"{manifest}: {what} {name!r} leads outside the shard folder (to {path.resolve()}); "
                         "a manifest may only name files in its own folder")
    return path


def _shard_entries(manifest: dict, path: Path) -> list[dict]:
    entries = manifest["shards"]
    ok = isinstance(entries, list) and all(
        isinstance(e, dict) and isinstance(e.get("rows"), int) and e["rows"] >= 0
        and isinstance(e.get("bytes"), int) and isinstance(e.get("sha256"), str) for e in entries)
    if not ok:
        raise ShardError(f"{path}: field 'shards' must list objects with file, rows, bytes and sha256; "
                         "rebuild the shard set")
    return entries


class ShardSet:
    """A shard set opened for training: `len(ds)` rows, `ds[i]` -> np.ndarray[seq_len], `ds.take(idx)`
    -> [n, seq_len] (`trainer.batches.Batches` reads it in resumable endless batches). Each shard is
    memory-mapped on first use, when its token ids are checked against vocab_size (one vectorised max per
    shard and process); the object pickles small and each DataLoader worker maps the files itself."""

    def __init__(self, path, verify: bool = False):
        """`path`: the shard folder (or its manifest.json); `verify`: run `verify()` now."""
        self.path = Path(path).parent if Path(path).name == MANIFEST else Path(path)
        self.manifest = read_manifest(self.path)
        for key in ("seq_len", "vocab_size"):
            if not isinstance(self.manifest[key], int) or self.manifest[key] < 1:
                raise ShardError(f"{self.path / MANIFEST}: {key} {self.manifest[key]!r} must be a positive "
                                 "integer; rebuild the shard set")
        self.seq_len, self.vocab_size = self.manifest["seq_len"], self.manifest["vocab_size"]
        if self.manifest["dtype"] not in ("uint16", "uint32"):
            raise ShardError(f"{self.path / MANIFEST}: dtype {self.manifest['dtype']!r}, expected uint16 or "
                             "uint32; rebuild the shard set")
        self.dtype = np.dtype(self.manifest["dtype"])
        self.columns = tuple(self.manifest.get("columns", ("input_ids",)))
        known = ("input_ids", *COLUMN_DTYPES)
        if "input_ids" not in self.columns or any(c not in known for c in self.columns):
            raise ShardError(f"{self.path / MANIFEST}: columns {list(self.columns)}: needs input_ids, knows "
                             f"{list(known)}; rebuild the shard set")
        tokenizer = self.manifest.get("tokenizer") or {}
        self.tokenizer_file = _inside(self.path, tokenizer.get("file", TOKENIZER), "tokenizer file")
        if not self.tokenizer_file.is_file():
            raise ShardError(f"{self.tokenizer_file}: the tokenizer listed in the manifest is missing; "
                             "rebuild the shard set")
        entries = _shard_entries(self.manifest, self.path / MANIFEST)
        self._files = [_inside(self.path, s.get("file"), "shard file") for s in entries]
        if not entries:
            raise ShardError(f"{self.path / MANIFEST}: lists no shards (an empty shard set); rebuild it from input "
                             "that keeps at least one document")
        rows = [s["rows"] for s in entries]
        self._starts = np.cumsum([0] + rows)
        if self._starts[-1] != self.manifest["rows"]:
            raise ShardError(f"{self.path / MANIFEST}: shard rows sum to {self._starts[-1]}, manifest says "
                             f"{self.manifest['rows']}; rebuild the shard set")
        for entry, file in zip(entries, self._files, strict=True):
            if not file.is_file():
                raise ShardError(f"{file}: shard listed in the manifest is missing; rebuild the shard set")
            size = file.stat().st_size
            if size != entry["bytes"]:
                raise ShardError(f"{file}: {size} bytes, the manifest says {entry['bytes']} (truncated or "
                                 "replaced); rebuild the shard set")
        self._mapped: list[dict | None] = [None] * len(self._files)  # per shard {column: [rows, seq_len]}
        if verify:
            self.verify()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_mapped"] = [None] * len(self._files)
        return state

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def nbytes(self) -> int:
        """Bytes `verify` reads: every shard and the tokenizer."""
        return sum(s["bytes"] for s in self.manifest["shards"]) + self.tokenizer_file.stat().st_size

    def verify(self, progress=None, threads: int = 4) -> None:
        """Check the sha256 of every shard and of the tokenizer against the manifest, then map every shard
        (which checks its token ids). Raises ShardError naming the first file, in manifest order, that
        differs. Files are hashed `threads` at a time; `progress(n)` is called (under a lock) for every n
        bytes hashed."""
        want = self.manifest.get("tokenizer", {}).get("sha256")
        if not isinstance(want, str):
            raise ShardError(f"{self.path / MANIFEST}: no sha256 recorded for the tokenizer; rebuild the shard set")
        files = [*self._files, self.tokenizer_file]
        expected = [s["sha256"] for s in self.manifest["shards"]] + [want]
        lock = threading.Lock()

        def counted(n: int) -> None:
            with lock:
                progress(n)

        pool = ThreadPoolExecutor(max_workers=max(1, min(threads, len(files))))
        try:
            hashes = pool.map(lambda f: _sha256(f, counted if progress else None), files)
            for file, digest, sha in zip(files, expected, hashes, strict=True):
                if sha != digest:
                    what = "tokenizer" if file == self.tokenizer_file else "shard"
                    raise ShardError(f"{file}: {what} sha256 differs from the manifest (the file was altered, "
                                     "corrupted or swapped); rebuild the shard set")
        finally:
            pool.shutdown(cancel_futures=True)
        for s in range(len(self._files)):
            self._shard(s)

    def _column_dtype(self, column: str) -> np.dtype:
        return self.dtype if column == "input_ids" else COLUMN_DTYPES[column]

    def _shard(self, s: int) -> dict:
        """Shard s's columns as [rows, seq_len] arrays, mapped and checked on first use."""
        if self._mapped[s] is None:
            self._mapped[s] = self._map(s)
        return self._mapped[s]

    def _map(self, s: int) -> dict:
        entry, file = self.manifest["shards"][s], self._files[s]
        try:
            table = pa.ipc.open_stream(pa.memory_map(str(file))).read_all()
        except (pa.ArrowException, OSError) as e:
            raise ShardError(f"{file}: not a readable Arrow stream ({e}); rebuild the shard set") from e
        if table.num_rows != entry["rows"]:
            raise ShardError(f"{file}: {table.num_rows} rows, the manifest says {entry['rows']}")
        arrays = {}
        for c in self.columns:
            want = self._column_dtype(c)
            if c not in table.column_names:
                raise ShardError(f"{file}: column {c!r} is missing")
            col = table.column(c)
            if col.type != pa.list_(pa.from_numpy_dtype(want), self.seq_len):
                raise ShardError(f"{file}: column {c!r} is {col.type}, expected "
                                 f"fixed_size_list<{want.name}>[{self.seq_len}]")
            chunks = [ch.flatten().to_numpy(zero_copy_only=True) for ch in col.chunks]
            flat = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
            arrays[c] = flat.reshape(-1, self.seq_len)
        ids = arrays["input_ids"]
        if ids.size and self.vocab_size <= np.iinfo(ids.dtype).max and (top := int(ids.max())) >= self.vocab_size:
            raise ShardError(f"{file}: token id {top} >= vocab_size {self.vocab_size} of {self.path / MANIFEST}; "
                             "the manifest does not describe these shards (edited or mixed up); rebuild the "
                             "shard set")
        return arrays

    def __getitem__(self, i: int) -> np.ndarray:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} out of range for {n} rows")
        return self.take(np.array([i % n]))[0]

    def take(self, indices, column: str = "input_ids") -> np.ndarray:
        """Rows at `indices` (any order, repeats allowed) as a new array [n, seq_len]."""
        if column not in self.columns:
            raise KeyError(f"{self.path}: no column {column!r}; this shard set has {', '.join(self.columns)}")
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"indices out of range for {len(self)} rows")
        shard = np.searchsorted(self._starts, idx, side="right") - 1
        first, last = (shard[0], shard[-1]) if idx.size else (0, 0)
        if idx.size and first == last and idx[-1] - idx[0] == idx.size - 1 and np.all(np.diff(idx) == 1):
            start = idx[0] - self._starts[first]  # one contiguous run in one shard: a plain copy
            return self._shard(first)[column][start : start + idx.size].copy()
        out = np.empty((idx.size, self.seq_len), dtype=self._column_dtype(column))
        for s in np.unique(shard):
            where = shard == s
            out[where] = self._shard(s)[column][idx[where] - self._starts[s]]
        return out
