"""`--input` specs -> numbered files -> work units, in the launcher, before the pipeline starts.

Specs (repeatable): a file, a folder (every file below it), a glob (`data/**/*.jsonl.zst`), each local
or on any storage Beam's FileSystems knows (`s3://`, `gs://`, `hdfs://`); `hf:NAME[:CONFIG][@SPLIT]`, a
Hugging Face dataset streamed with `datasets`; the embedded sources (pipeline.reading.embedded): `sotu`, the
State of the Union addresses shipped with cramkit (plain text files), and `docstrings`, the docstrings of
the installed Python, the default. Files inside hidden folders and hidden files are skipped, as are FIFOs,
sockets, devices and symlinks that leave the input tree (pipeline.files.walk has the policy); each is counted
under its reason in stats.json ("skipped/<reason>").

File kinds by name (after a `.gz` or `.zst` suffix): `.jsonl`/`.ndjson`/`.json` are JSON Lines, `.parquet`
is Parquet, `.warc`, `.wet`/`.warc.wet` and `.html`/`.htm` are web input (pipeline.reading.web), all else
plain text.

Every file gets a number `file_no` in the order of (kind, path relative to the inputs' common folder),
and every document an integer id `file_no << 40 | offset` (the byte offset in the decompressed file; the
row in Parquet and HF datasets; the line in a Python file) and a name "<kind>:<relative path>:<offset>"
(bytes of a file name that are not UTF-8 written as `\\xNN`).
"Keep the lowest id" means the same document on every runner, with any number of workers.

A work unit is one file, a byte range of a large uncompressed text or JSON Lines file or of a
`.warc.gz`/`.wet.gz` file (`split_bytes`; other compressed files and `source.text_mode=file` are read
whole), a group of Python files, or an HF dataset. Units are numbered in id order, so a unit's documents
follow the previous unit's. Each file carries the size and modification time seen here: the reader fails a
file that no longer has them.
"""

import os
from typing import NamedTuple

from pipeline.files import storage
from pipeline.reading import embedded

OFFSET_BITS = 40  # an id is file_no << OFFSET_BITS | offset: 1 TB per file, 8M files
_JSONL = (".jsonl", ".ndjson", ".json")


class InputError(Exception):
    """A bad --input spec, found before the pipeline starts."""


class File(NamedTuple):
    file_no: int
    rel: str  # the path part of the document names
    path: str  # what to open (hf: "name|config|split")
    size: int = 0  # bytes, as planned
    mtime: float | None = None  # modification time as planned (None: not a file of storage)


class Unit(NamedTuple):
    """One element of reading work: files (several for docstrings), or a byte range [start, stop) of one."""

    index: int
    kind: str  # text | jsonl | parquet | hf | docstrings | warc | wet | html
    files: tuple  # (File, ...)
    start: int = 0
    stop: int = -1  # -1: to the end of the file
    size: int = 0  # bytes of input (0 when unknown), for progress and stats

    @property
    def first_id(self) -> int:
        return self.files[0].file_no << OFFSET_BITS | self.start


class Inputs(NamedTuple):
    units: list  # [Unit] in id order
    skipped: list  # [(path, reason)]
    bytes: int  # input bytes of all units


def doc_id(file_no: int, offset: int) -> int:
    return file_no << OFFSET_BITS | offset


def doc_name(kind: str, rel: str, offset: int) -> str:
    return f"{kind}:{rel}:{offset:012d}"


def file_kind(path: str) -> str:
    name = path.lower().removesuffix(".gz").removesuffix(".zst")
    if name.endswith(_JSONL):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".wet", ".warc.wet")):
        return "wet"
    if name.endswith(".warc"):
        return "warc"
    if name.endswith((".html", ".htm")):
        return "html"
    return "text"


def hf_spec(spec: str) -> tuple[str, str | None, str]:
    """hf:NAME[:CONFIG][@SPLIT] -> (name, config, split)."""
    body, _, split = spec.removeprefix("hf:").partition("@")
    name, _, config = body.partition(":")
    if not name:
        raise InputError(f"--input {spec}: name the dataset, as hf:NAME[:CONFIG][@SPLIT]")
    return name, config or None, split or "train"


def check_hf(spec: str) -> None:
    """Fail fast, before the pipeline, when an hf: dataset cannot be opened (offline, unknown name)."""
    name, config, split = hf_spec(spec)
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


def _common_root(paths: list[str]) -> str:
    """The longest folder prefix shared by the paths (URLs too), ending without a separator."""
    folders = [p.rsplit("/", 1)[0] if "/" in p else "" for p in paths]
    root = os.path.commonprefix(folders)
    if not all(f == root or f.startswith(root + "/") for f in folders):
        root = root.rsplit("/", 1)[0] if "/" in root else ""
    return root


def printable(path: str) -> str:
    """A path as valid UTF-8 (as names, stats and Beam's coders need it): bytes of a local name that are
    not UTF-8 (held by Python as surrogates) as `\\xNN`."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def expand(specs: list[str], text_mode: str = "block", docstrings_max_mb: float = 0.0,
           split_bytes: int = 0, follow_symlinks: bool = False) -> Inputs:
    """`--input` specs -> Inputs. Raises InputError (or storage.StorageError) naming a bad spec."""
    entries, skipped = [], []  # (kind, rel, path, size, mtime)
    found: dict[str, tuple[int, float]] = {}
    for spec in specs:
        if spec == "sotu":
            try:
                entries += [("text", rel, str(path), size, mtime) for rel, path, size, mtime in embedded.speeches()]
            except LookupError as e:
                raise InputError(f"--input sotu: {e}") from None
        elif spec == "docstrings":
            entries += [("docstrings", rel, str(path), size, None)
                        for rel, path, size in embedded.files(docstrings_max_mb)]
        elif spec.startswith("hf:"):
            name, config, split = hf_spec(spec)
            rel, path = f"{name}/{config or 'default'}/{split}", f"{name}|{config or ''}|{split}"
            entries.append(("hf", rel, path, 0, None))
        else:
            files, skips = storage.match_inputs(spec, follow_symlinks)
            found.update((path, (size, mtime)) for path, size, mtime in files)
            skipped += [(printable(path), reason) for path, reason in skips]
    if found:
        paths = sorted(found)
        root = _common_root(paths)
        entries += [(file_kind(p), printable(p[len(root):].lstrip("/") if root else p), p, *found[p])
                    for p in paths]
    entries.sort(key=lambda e: (e[0], e[1]))
    units, group = [], []  # group: docstrings files waiting to fill a unit
    for file_no, (kind, rel, path, size, mtime) in enumerate(entries):
        f = File(file_no, rel, path, size, mtime)
        if kind == "docstrings":
            group.append((f, size))
            if sum(s for _, s in group) >= embedded.UNIT_BYTES or file_no + 1 == len(entries) \
                    or entries[file_no + 1][0] != "docstrings":
                units.append(Unit(0, kind, tuple(g for g, _ in group), size=sum(s for _, s in group)))
                group = []
            continue
        splittable = ((kind == "jsonl" or (kind == "text" and text_mode != "file")) and not path.endswith((".gz", ".zst"))
                      or kind in ("warc", "wet") and path.endswith(".gz"))  # at gzip members (pipeline.reading.web)
        if split_bytes and splittable and size > split_bytes:
            for start in range(0, size, split_bytes):
                stop = min(start + split_bytes, size)
                units.append(Unit(0, kind, (f,), start, -1 if stop == size else stop, stop - start))
        else:
            units.append(Unit(0, kind, (f,), size=size))
    units = [u._replace(index=i) for i, u in enumerate(sorted(units, key=lambda u: u.first_id))]
    return Inputs(units, sorted(skipped), sum(u.size for u in units))
