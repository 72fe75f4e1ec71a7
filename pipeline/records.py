"""Bytes of one input file -> raw records: decompress (.gz, .zst), split into lines, blank-line
blocks or whole files without holding an over-long record, decode by policy, tell binary from text.

No Beam here: pipeline.sources turns these records into documents and drops.
"""

import zlib

import zstandard

_CHUNK = 1 << 20


class BrokenFile(Exception):
    """A file that breaks off or is corrupt; the message says where and how."""


def _raw_chunks(path: str):
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def _frames(chunks, new, error, kind: str, truncated: str, padding: bytes = b""):
    """Decompress every frame (gzip member, zstd frame) with a fresh `new()` decompressor each; raise
    BrokenFile on corrupt data (`error`) or when the last frame is incomplete."""
    d, fed = new(), False
    for chunk in chunks:
        while chunk:
            try:
                out = d.decompress(chunk)
            except error as e:
                raise BrokenFile(f"corrupt {kind} data ({e})") from e
            fed = True
            if out:
                yield out
            if not d.eof:
                break
            chunk = d.unused_data.lstrip(padding)  # the next frame
            d, fed = new(), False
    if fed and not d.eof:
        raise BrokenFile(f"truncated {kind} file: {truncated}")


def _gunzip(chunks):
    return _frames(chunks, lambda: zlib.decompressobj(31), zlib.error, "gzip",
                   "the last member has no end-of-stream trailer", padding=b"\0")  # zero padding is allowed


def _unzstd(chunks):
    return _frames(chunks, zstandard.ZstdDecompressor().decompressobj, zstandard.ZstdError, "zstd",
                   "the last frame is incomplete")


def byte_chunks(path: str):
    """The decompressed bytes of a file, in chunks; compression by suffix (.gz, .zst)."""
    chunks = _raw_chunks(path)
    if path.endswith(".gz"):
        return _gunzip(chunks)
    if path.endswith(".zst"):
        return _unzstd(chunks)
    return chunks


TOO_LONG, BROKEN = "too_long", "truncated"


def lines(chunks, cap: int):
    """(offset, line bytes without "\\n" or "\\r\\n", problem) for each line; problem is None, TOO_LONG
    (the line is not returned nor held) or BROKEN (the partial last line before the stream broke off,
    after which the BrokenFile is re-raised)."""
    buf, start, pos, skipping = bytearray(), 0, 0, False
    try:
        for chunk in chunks:
            i = 0
            while True:
                nl = chunk.find(b"\n", i)
                piece = chunk[i:] if nl < 0 else chunk[i:nl]
                if not skipping:
                    buf += piece
                    if len(buf) > cap:
                        skipping = True
                        buf.clear()
                if nl < 0:
                    pos += len(chunk) - i
                    break
                pos += nl - i + 1
                if skipping:
                    yield start, b"", TOO_LONG
                else:
                    yield start, bytes(buf.removesuffix(b"\r")), None
                buf.clear()
                skipping, start, i = False, pos, nl + 1
    except BrokenFile:
        if buf or skipping:
            yield start, b"", BROKEN
        raise
    if skipping:
        yield start, b"", TOO_LONG
    elif buf:
        yield start, bytes(buf.removesuffix(b"\r")), None


def records(chunks, mode: str, cap: int):
    """(offset, bytes, problem) per document of plain text in `mode` (file | block | line)."""
    if mode == "line":
        for offset, line, problem in lines(chunks, cap):
            if problem or line.strip():
                yield offset, line, problem
        return
    parts, start, size, problem = [], None, 0, None
    try:
        for offset, line, issue in lines(chunks, cap):
            if issue is None and not line.strip() and mode == "block":
                if start is not None:
                    yield start, b"\n".join(parts), problem
                parts, start, size, problem = [], None, 0, None
                continue
            if start is None:
                start = offset
            if issue == BROKEN:
                yield start, b"", BROKEN
                parts, start = [], None
                continue
            size += len(line) + 1
            if issue or size > cap:
                problem, parts = TOO_LONG, []
            else:
                parts.append(line)
    except BrokenFile:
        if start is not None:
            yield start, b"", BROKEN
        raise
    if start is not None:
        yield start, b"\n".join(parts), problem


def decode(data: bytes, policy: str) -> tuple[str | None, bool]:
    """(text, repaired): UTF-8, else by policy: replace (U+FFFD), latin-1, drop (text None)."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        if policy == "drop":
            return None, False
        return data.decode("utf-8", "replace") if policy == "replace" else data.decode("latin-1"), True


_CONTROL = set(range(0, 32)) - {9, 10, 12, 13} | set(range(127, 160))
_CONTROL_TABLE = dict.fromkeys(_CONTROL, None)


def looks_binary(text: str, max_frac: float) -> bool:
    """NUL bytes, or more than `max_frac` control characters (C0 other than whitespace, DEL, C1)."""
    if "\0" in text:
        return True
    bad = len(text) - len(text.translate(_CONTROL_TABLE))
    return bad > max_frac * max(len(text), 1)
