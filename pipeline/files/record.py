"""The record of what cramkit wrote in a folder (`.cramkit`): all that cramkit ever deletes there.

Every folder cramkit writes (a corpus output, a training run's folder, a GLUE output) holds the record,
JSON {"written_by": "cramkit", "kind": KIND, "files": [...], "units": [...]}: "files" are the paths of the
files cramkit wrote there ('/'-separated, relative to the folder), "units" the folders it is writing as a
whole at the moment (a checkpoint, the final model folder); once written, a unit's files are listed one
by one, so a file someone adds to it later is told apart. A writer lists a path before writing it
(`claim`, `writing`), so a killed run leaves nothing unlisted behind; the record is replaced atomically.

A folder is cramkit's only when it holds a valid record of the expected kind; replacing it deletes the
files and units the record lists, and is refused when anything else is there (`owned`). A record that
names a path outside its folder is no record. This module works on local disks and imports no Beam
(the trainer and the GLUE evaluator use it on machines without Beam); pipeline.graph.output reads the same
record on object stores through pipeline.files.storage.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

RECORD = ".cramkit"
_NEXT = RECORD + ".tmp"  # the next record, renamed over RECORD
KINDS = {"corpus": "a corpus output", "run": "a training run folder", "glue": "a GLUE output"}


class FolderError(Exception):
    """A folder cramkit would write cannot be used; the message (one line) says what to do."""


def is_local(path) -> bool:
    """A local path, not `scheme://...` (Beam's rule, without importing Beam)."""
    return re.match(r"[a-zA-Z][-a-zA-Z0-9+.]*://", str(path).strip()) is None


def _plain(name) -> bool:
    parts = name.split("/") if isinstance(name, str) else [""]
    return name not in (RECORD, _NEXT) and all(p not in ("", ".", "..") and not set(p) & set("\\\0") for p in parts)


def _parents(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


@dataclass(frozen=True)
class Record:
    kind: str
    files: tuple[str, ...] = ()
    units: tuple[str, ...] = ()

    def text(self) -> str:
        return json.dumps({"written_by": "cramkit", "kind": self.kind, "files": sorted(self.files),
                           "units": sorted(self.units)}, indent=1) + "\n"

    def owns(self, name: str) -> bool:
        """Whether the file `name` is listed, or lies in a listed unit."""
        return name in self.files or any(name.startswith(u + "/") for u in self.units)


def parse(text: str) -> Record | None:
    """The record in `text`, or None when it is not a valid record."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("written_by") != "cramkit" or data.get("kind") not in KINDS:
        return None
    files, units = data.get("files"), data.get("units", [])
    if not all(isinstance(x, list) and all(map(_plain, x)) for x in (files, units)):
        return None
    return Record(data["kind"], tuple(files), tuple(units))


def read(folder: Path) -> Record | None:
    """The record in the local `folder`, or None when it holds no valid one."""
    try:
        return parse((Path(folder) / RECORD).read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, UnicodeDecodeError):
        return None


def _write(folder: Path, rec: Record) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _NEXT).write_text(rec.text(), encoding="utf-8")
    os.replace(folder / _NEXT, folder / RECORD)


def resolve(path, what: str) -> Path:
    """The local folder `path` names (a link to a folder: that folder); FolderError when it is the root
    folder, a file, or a link to a file or to nothing."""
    folder = Path(os.path.abspath(path or "/"))
    if folder.parent == folder:
        raise FolderError(f"{what} {path or '/'}: is the root folder; choose a folder of its own")
    if folder.is_symlink():
        target = Path(os.path.realpath(folder))
        if not target.is_dir():
            raise FolderError(f"{what} {path}: is a link to {'a file' if target.exists() else 'nothing'} "
                              f"({target}); name a folder, or a link to one")
        return target
    if folder.exists() and not folder.is_dir():
        raise FolderError(f"{what} {path}: is a file; cramkit writes a folder and never replaces a file, "
                          f"so choose another {what}")
    return folder


def entries(folder: Path, what: str) -> list[str]:
    """The names in the local `folder` (files, folders, links); [] when it does not exist; FolderError
    when it is not a folder."""
    if os.path.isdir(folder) and not os.path.islink(folder):
        return sorted(os.listdir(folder))
    if os.path.lexists(folder):
        raise FolderError(f"{what} {folder}: exists and is not a folder cramkit made, so it will not be used "
                          "or deleted; move it away or choose another folder")
    return []


def _unlisted(folder: Path, rec: Record) -> list[str]:
    """What in `folder` the record does not account for: files and folders it does not list (nor lead
    to), links and special files."""
    files, units = set(rec.files), set(rec.units)
    leading = {p for name in (*files, *units) for p in _parents(name)}
    found = []

    def visit(rel: str) -> None:
        for name in sorted(os.listdir(folder / rel)):
            path = f"{rel}/{name}" if rel else name
            mode = os.lstat(folder / path).st_mode
            if stat.S_ISREG(mode) and (path in files or path in (RECORD, _NEXT)):
                continue
            if stat.S_ISDIR(mode) and path in units:
                continue
            if stat.S_ISDIR(mode) and path in leading:
                visit(path)
            else:
                found.append(path)

    visit("")
    return found


def holds_others(folder, what: str, names: list[str]) -> FolderError:
    return FolderError(f"{what} {folder}: holds {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}, "
                       "which cramkit did not write, so it will not be deleted; move them away or choose "
                       "another folder")


def not_ours(folder, what: str, kind: str) -> FolderError:
    return FolderError(f"{what} {folder}: holds files cramkit did not write (it is not {KINDS[kind]}: no valid "
                       f"{RECORD} record of the files cramkit wrote there), so nothing in it is used or deleted; "
                       "move it away or choose another folder")


def mine(folder: Path, what: str, kind: str) -> Record | None:
    """The record of a local `folder` cramkit wrote as `kind` (None when the folder is absent or empty);
    FolderError for any other folder."""
    names = entries(folder, what)
    if not names:
        return None
    rec = read(folder) if RECORD in names else None
    if rec is None or rec.kind != kind:
        raise not_ours(folder, what, kind)
    return rec


def owned(folder: Path, what: str, kind: str) -> Record | None:
    """What replacing the local `folder` deletes: its record, when it accounts for everything there (None
    for an absent or empty folder); FolderError when the folder holds anything else, or no record."""
    rec = mine(folder, what, kind)
    if rec is not None and (foreign := _unlisted(Path(folder), rec)):
        raise holds_others(folder, what, foreign)
    return rec


def present(folder: Path, rec: Record | None) -> list[str]:
    """The files and units of the record that exist."""
    return [] if rec is None else [n for n in (*rec.files, *rec.units) if os.path.lexists(Path(folder, n))]


def remove(folder: Path, rec: Record, first: tuple = ()) -> list[str]:
    """Delete the files (those in `first` first) and units the record lists, the record, and then the
    folders left empty that led to them, and the folder itself; the names left in it."""
    folder = Path(folder)
    for name in sorted(rec.files, key=lambda n: n not in first):
        path = folder / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
    for unit in rec.units:
        if (folder / unit).is_dir() and not (folder / unit).is_symlink():
            shutil.rmtree(folder / unit)
    for name in (RECORD, _NEXT):
        (folder / name).unlink(missing_ok=True)
    leading = {p for name in (*rec.files, *rec.units) for p in _parents(name)}
    for sub in sorted(leading, key=lambda p: -p.count("/")):
        with contextlib.suppress(OSError):  # absent, or holds what someone added meanwhile
            os.rmdir(folder / sub)
    if not os.path.isdir(folder):
        return []
    try:
        os.rmdir(folder)
    except OSError:
        return sorted(os.listdir(folder))
    return []


def claim(folder: Path, kind: str, files=(), units=(), settled=()) -> None:
    """List `files` and `units` in the record of `folder` (made if absent) before they are written;
    `settled`: units written in full, listed from now on by their files (and no longer as units), with
    the listed files that no longer exist (a checkpoint replaced by a newer one) dropped."""
    folder = Path(folder)
    rec = read(folder) or Record(kind)
    keep = set(rec.files)
    for unit in settled:
        for root, _, names in os.walk(folder / unit):
            keep |= {Path(root, n).relative_to(folder).as_posix() for n in names
                     if stat.S_ISREG(os.lstat(Path(root, n)).st_mode)}
    if settled:
        keep = {n for n in keep if os.path.lexists(folder / n)}
    _write(folder, Record(kind, tuple(sorted(keep | set(files))),
                          tuple(sorted((set(rec.units) - set(settled)) | set(units)))))


@contextlib.contextmanager
def writing(folder: Path, kind: str, *units: str):
    """Listed as units of `folder`'s record while the block writes them, the folders `units` are listed
    by their files afterwards (also after an error: what was written is cramkit's)."""
    claim(folder, kind, units=units)
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk: the units stay listed whole, the error is the block's
            claim(folder, kind, settled=units)
        raise
    claim(folder, kind, settled=units)
