"""Bytes of one input file -> raw records: decompress (.gz, .zst), split into lines, blank-line blocks or
whole files without holding an over-long record, decode by policy, tell binary from text.

Decompression hands out at most CHUNK bytes at a time, so a small file that expands to gigabytes of one
line costs no more memory than the record cap; a zstd frame may ask for a window (history the decoder
must keep) only up to the larger of 8 MiB (every level up to 19) and that cap, else the file fails.

A large uncompressed file can be read as byte ranges by several workers (`range_start`): a record belongs
to the range in which it starts, and its offset is its byte offset in the file, so a split read gives
the same records as a whole one. No Beam here: pipeline.reading.sources turns records into documents and
drops.
"""

import re
import zlib
from typing import NamedTuple

try:
    from compression import zstd  # Python 3.14
except ImportError:
    from backports import zstd

CHUNK = 1 << 20
ZSTD_WINDOW = 1 << 23  # the largest window of zstd's levels 1-19
TOO_LONG, BROKEN = "too_long", "truncated"
_SPACE = b" \t\n\r\x0b\x0c"
_NONSPACE = re.compile(b"[^" + re.escape(_SPACE) + b"]")


class BrokenFile(Exception):
    """A file that breaks off or is corrupt; the message says where and how."""


class Record(NamedTuple):
    """One raw record: its byte offset, its bytes (empty when dropped), why it is dropped (None: kept)
    and its size in bytes (of the skipped record too)."""

    offset: int
    data: bytes
    problem: str | None
    size: int


def raw_chunks(f, stop: int | None = None):
    """The bytes of an open file from its position, in chunks, up to `stop` bytes (None: to the end)."""
    while stop is None or stop > 0:
        chunk = f.read(CHUNK if stop is None else min(CHUNK, stop))
        if not chunk:
            return
        if stop is not None:
            stop -= len(chunk)
        yield chunk


def _frames(chunks, new, error, kind: str, truncated: str, padding: bytes = b""):
    """Decompress every frame (gzip member, zstd frame) with a fresh `new()` decompressor each, CHUNK
    bytes out at a time; raise BrokenFile on corrupt data (`error`) or when the last frame is incomplete."""
    d, fed = new(), False
    for chunk in chunks:
        while chunk or fed:
            try:
                out = d.decompress(chunk, CHUNK)
            except error as e:
                raise BrokenFile(f"corrupt {kind} data ({e})") from e
            fed = True
            if out:
                yield out
            if d.eof:
                chunk = d.unused_data.lstrip(padding)  # the next frame
                d, fed = new(), False
            elif len(out) == CHUNK:  # more may follow from the input taken so far
                chunk = getattr(d, "unconsumed_tail", b"")  # zlib hands back what it did not take
            else:
                break
    if fed and not d.eof:
        raise BrokenFile(f"truncated {kind} file: {truncated}")


def _gunzip(chunks):
    return _frames(chunks, lambda: zlib.decompressobj(31), zlib.error, "gzip",
                   "the last member has no end-of-stream trailer", padding=b"\0")  # zero padding is allowed


def _unzstd(chunks, window: int = ZSTD_WINDOW):
    options = {zstd.DecompressionParameter.window_log_max: window.bit_length() - 1}
    try:
        yield from _frames(chunks, lambda: zstd.ZstdDecompressor(options=options), zstd.ZstdError, "zstd",
                           "the last frame is incomplete")
    except BrokenFile as e:
        if "too much memory" not in str(e):
            raise
        raise BrokenFile(f"its zstd frames need a window over {window >> 20} MiB (written by zstd --long or "
                         "--ultra); raise source.max_doc_bytes to the window's size to read it") from e


def compression(name: str) -> str | None:
    """"gz", "zst" or None, by the file name's suffix."""
    return "gz" if name.endswith(".gz") else "zst" if name.endswith(".zst") else None


def decompressed(chunks, kind: str | None, cap: int = 0):
    """The decompressed chunks of a stream compressed with `kind` (see `compression`), with a zstd window
    of at most max(ZSTD_WINDOW, cap)."""
    if kind == "zst":
        return _unzstd(chunks, max(ZSTD_WINDOW, 1 << (cap - 1).bit_length()))
    return _gunzip(chunks) if kind == "gz" else chunks


def lines(chunks, cap: int, base: int = 0):
    """A Record per line (bytes without "\\n" or "\\r\\n"; offsets from `base`). A line over `cap` bytes
    is never held: TOO_LONG, or blank (no data) when all of it is whitespace, as a short one would be; the
    partial last line before the stream broke off is BROKEN, after which the BrokenFile is re-raised."""
    buf, start, pos, skipping, space, size = bytearray(), base, base, False, True, 0
    try:
        for chunk in chunks:
            i, view = 0, memoryview(chunk)  # pieces of the chunk, never copied
            while True:
                nl = chunk.find(b"\n", i)
                end = len(chunk) if nl < 0 else nl
                size += end - i
                if skipping:
                    space = space and not _NONSPACE.search(chunk, i, end)
                elif len(buf) + end - i > cap:
                    skipping, space = True, not _NONSPACE.search(buf) and not _NONSPACE.search(chunk, i, end)
                    buf.clear()
                else:
                    buf += view[i:end]
                if nl < 0:
                    pos += len(chunk) - i
                    break
                pos += nl - i + 1
                if skipping:
                    yield Record(start, b"", None if space else TOO_LONG, size)
                else:
                    yield Record(start, bytes(buf.removesuffix(b"\r")), None, size)
                buf.clear()
                skipping, start, i, size = False, pos, nl + 1, 0
    except BrokenFile:
        if buf or skipping:
            yield Record(start, b"", BROKEN, size)
        raise
    if skipping:
        yield Record(start, b"", None if space else TOO_LONG, size)
    elif buf:
        yield Record(start, bytes(buf.removesuffix(b"\r")), None, size)


def records(chunks, mode: str, cap: int, base: int = 0, continues: bool = False):
    """A Record per document of plain text in `mode` (file | block | line). `continues`: the stream
    starts inside a blank-line block that began earlier (a range of a split file), whose lines are skipped."""
    if mode == "line":
        for rec in lines(chunks, cap, base):
            if rec.problem or rec.data.strip(_SPACE):
                yield rec
        return
    parts, start, size, problem = [], None, 0, None
    try:
        for rec in lines(chunks, cap, base):
            blank = rec.problem is None and not rec.data.strip(_SPACE)
            if continues:
                continues = not blank
                continue
            if blank and mode == "block":
                if start is not None:
                    yield Record(start, b"\n".join(parts), problem, size)
                parts, start, size, problem = [], None, 0, None
                continue
            if start is None:
                start = rec.offset
            size += rec.size + 1
            if rec.problem == BROKEN:
                yield Record(start, b"", BROKEN, size - 1)
                parts, start, size = [], None, 0
                continue
            if rec.problem or size > cap:
                problem, parts = TOO_LONG, []
            elif problem is None:
                parts.append(rec.data)
    except BrokenFile:
        if start is not None:
            yield Record(start, b"", BROKEN, size)
        raise
    if start is not None:
        yield Record(start, b"\n".join(parts) if problem is None else b"", problem, max(size - 1, 0))


def line_start(f, start: int) -> int:
    """The offset of the first line that begins at or after `start` in a seekable file."""
    if start == 0:
        return 0
    f.seek(start - 1)
    pos = start - 1
    for chunk in raw_chunks(f):
        nl = chunk.find(b"\n")
        if nl >= 0:
            return pos + nl + 1
        pos += len(chunk)
    return pos


def after_blank_line(f, offset: int) -> bool:
    """Whether the line that ends just before `offset` (a line start) is blank, or `offset` is 0: then a
    block may begin at `offset`. Reads backwards only until the first non-space byte."""
    pos = offset - 1  # the "\n" that ends the previous line
    while pos > 0:
        step = min(pos, 1 << 16)
        f.seek(pos - step)
        chunk = f.read(step)
        for byte in reversed(chunk):
            if byte == 0x0A:
                return True
            if byte not in _SPACE:
                return False
        pos -= step
    return True


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
