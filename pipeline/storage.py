"""Every file the pipeline touches, through Beam's FileSystems (local paths, gs://, s3://, hdfs://).

(Interim version, to be replaced by the storage layer with its S3 tests.)
"""

import os
import stat

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


class StorageError(Exception):
    """A path that cannot be used; the message names it and what to do."""


def configure(options) -> None:
    FileSystems.set_options(options)


def check(path: str) -> None:
    try:
        FileSystems.get_filesystem(path)
    except ValueError as e:
        raise StorageError(f"{path}: no filesystem for this scheme ({e})") from e


def is_local(path: str) -> bool:
    return "://" not in path


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base, *parts) if parts else base


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def size(path: str) -> int:
    return FileSystems.match([path])[0].metadata_list[0].size_in_bytes


def open_read(path: str):
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def create(path: str):
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def write_bytes(path: str, data: bytes) -> None:
    with create(path) as f:
        f.write(data)


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def list_files(folder: str) -> list[tuple[str, int]]:
    pattern = join(folder, "**") if not is_local(folder) else os.path.join(folder, "**")
    found = FileSystems.match([pattern])[0].metadata_list
    return sorted((m.path, m.size_in_bytes) for m in found)


def delete_tree(path: str) -> None:
    if exists(path):
        FileSystems.delete([path])


def rename_tree(src: str, dst: str) -> None:
    if not is_local(src):
        raise StorageError(f"{src}: folders on object stores cannot be renamed")
    os.replace(src, dst)


def _skip_reason(path: str, root: str) -> str | None:
    rel = os.path.relpath(path, root) if is_local(path) else path[len(root):]
    if any(part.startswith(".") for part in rel.replace("\\", "/").split("/") if part not in ("", ".")):
        return "hidden"
    if is_local(path):
        mode = os.stat(path).st_mode
        if stat.S_ISFIFO(mode):
            return "fifo"
        if stat.S_ISSOCK(mode):
            return "socket"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            return "device"
    return None


def match_inputs(spec: str) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """(files [(path, size)], skipped [(path, reason)]) of a file, folder or glob."""
    glob = any(c in spec for c in "*?[")
    if glob:
        root = spec[: min(spec.find(c) for c in "*?[" if c in spec)].rsplit("/", 1)[0]
        pattern = spec
    elif is_local(spec) and os.path.isdir(spec):
        root, pattern = spec, os.path.join(spec, "**")
    else:
        root, pattern = os.path.dirname(spec), spec
    try:
        found = FileSystems.match([pattern])[0].metadata_list
    except Exception as e:  # noqa: BLE001 -- Beam raises BeamIOError and others
        raise StorageError(f"--input {spec}: cannot list it ({e})") from e
    files, skipped = [], []
    for m in sorted(found, key=lambda m: m.path):
        if is_local(m.path) and os.path.isdir(m.path):
            continue
        reason = _skip_reason(m.path, root)
        (skipped.append((m.path, reason)) if reason else files.append((m.path, m.size_in_bytes)))
    if not files and not skipped:
        raise StorageError(f"--input {spec}: no such file or folder, or the pattern matches no file")
    return files, skipped
