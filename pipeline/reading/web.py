"""Web input: WARC, WET and HTML files -> documents that keep their URL and crawl date.

- `.warc`, `.warc.gz` (WARC 1.0 and 1.1, read with warcio; a `.gz` file is a stream of gzip members):
  each `response` record with HTTP status 200 and an HTML payload is one document. Its payload (chunked
  transfer and gzip/deflate/brotli content encodings undone) is decoded by the charset of its HTTP
  Content-Type, else the one the page declares (`<meta charset>` or `http-equiv`), else as UTF-8, else by
  detection (charset-normalizer), and then reduced to text by the extractor (`web.extract`). Every other
  record is dropped by reason: "read/warc_<type>" (request, metadata, warcinfo, resource, revisit...
  records), "read/http_status" (not 200), "read/not_html" (PDF, images, feeds...), "read/truncated" (the
  record breaks off before its Content-Length), "read/undecodable" (a payload whose chunked, gzip, deflate
  or brotli encoding is broken), "read/too_long" (over `source.max_doc_bytes`, never read into memory),
  "read/no_text" (the extractor found no text).
- `.wet`, `.warc.wet.gz`: each `conversion` record is a document, its text as is.
- `.html`, `.htm` (and `.gz`): one document per file, its URL from the page's `<link rel="canonical">`
  or `og:url` when it names one.

The URL is the record's WARC-Target-URI (the angle brackets of WARC 1.0's `<uri>` form removed), the date
its WARC-Date. A document's id is its file number and the byte offset of its record in the file (of its
gzip member in a `.warc.gz`). A large `.warc.gz` or `.wet.gz` is read in byte ranges (`--split-mb`) by
several workers: a range starts at its first gzip member that begins a WARC record (`member_start`), and
a record belongs to the range in which its member starts. An uncompressed WARC has no such marker a
reader could trust inside payloads, nor has a whole WARC gzipped as one stream (read through, its ids
from offsets in the decompressed stream), so these are read whole.
"""

import codecs
import gzip
import re
from dataclasses import dataclass

from configs import setting
from pipeline.document import Doc, Drop
from pipeline.files import storage
from pipeline.reading import records
from pipeline.reading.inputs import doc_id, doc_name

KINDS = ("warc", "wet", "html")
EXTRACTORS = ("main", "text")
FAVOR = ("balanced", "precision", "recall")
HTML_TYPES = ("text/html", "application/xhtml+xml")
UNTYPED = ("", "text/plain", "application/octet-stream")  # payloads of these types are HTML if they look it
SNIFF = 1024  # bytes of an untyped payload looked at for an HTML start
META_BYTES = 16384  # bytes of a page searched for its declared charset and canonical URL
_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)
_HTML_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b",
                         re.I | re.S)
_CANONICAL = re.compile(rb"""<link\b(?=[^>]*\brel\s*=\s*["']?canonical\b)[^>]*\bhref\s*=\s*["']([^"'<>\s]+)""",
                        re.I)
_OG_URL = re.compile(rb"""<meta\b(?=[^>]*\bproperty\s*=\s*["']og:url["'])[^>]*\bcontent\s*=\s*["']([^"'<>\s]+)""",
                     re.I)
# Labels that the HTML standard reads as a wider encoding than Python's codec of the same name.
_WIDER = {"iso8859-1": "cp1252", "ascii": "cp1252", "latin-1": "cp1252", "gb2312": "gb18030", "gbk": "gb18030",
          "euc_kr": "cp949", "shift_jis": "cp932", "tis-620": "cp874", "iso8859-9": "cp1254"}


@dataclass(frozen=True)
class WebConfig:
    """`web.*` in the corpus config: how a web page becomes text."""

    extract: str = setting("main: the main content (Trafilatura) | text: all visible text, a line per block",
                           "main")
    favor: str = setting("extract=main: balanced | precision (less boilerplate) | recall (more text)",
                         "balanced")
    tables: bool = setting("extract=main: keep the text of tables", True)
    fallback: bool = setting("extract=main: where little is found, also try readability and jusText (2x "
                             "slower)", False)

    def __post_init__(self):
        if self.extract not in EXTRACTORS:
            raise ValueError(f"web.extract={self.extract!r}: choose one of {', '.join(EXTRACTORS)}")
        if self.favor not in FAVOR:
            raise ValueError(f"web.favor={self.favor!r}: choose one of {', '.join(FAVOR)}")


def plain_url(uri: str | None) -> str:
    """A WARC-Target-URI as a plain URL (WARC 1.0 writes it as `<uri>`)."""
    uri = (uri or "").strip()
    return uri[1:-1].strip() if uri.startswith("<") and uri.endswith(">") else uri


def _codec(label) -> str | None:
    if isinstance(label, bytes):
        label = label.decode("ascii", "ignore")
    try:
        name = codecs.lookup(label.strip().lower()).name if label else None
    except LookupError:
        return None
    return _WIDER.get(name, name)


def declared_charset(data: bytes) -> str | None:
    """The codec of the charset a page declares in its first META_BYTES bytes, or None."""
    m = _CHARSET.search(data, 0, META_BYTES)
    return _codec(m.group(1)) if m else None


def decode_html(data: bytes, header_charset: str | None = None) -> tuple[str, bool]:
    """(text, repaired) of an HTML payload: by its byte-order mark, else the charset of its HTTP header,
    else the one the page declares, else UTF-8, else the detected one; `repaired` when bytes had to be
    replaced."""
    if data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        codec = "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-16"
    else:
        codec = _codec(header_charset) or declared_charset(data)
    if codec is None:
        try:
            return data.decode("utf-8"), False
        except UnicodeDecodeError:
            from charset_normalizer import from_bytes

            best = from_bytes(data[:65536]).best()
            codec = _codec(best.encoding) if best else None
            codec = codec or "cp1252"
    try:
        return data.decode(codec), False
    except UnicodeDecodeError:
        return data.decode(codec, errors="replace"), True


def page_url(data: bytes) -> str:
    """The URL a page names for itself (<link rel="canonical">, else og:url), or ""."""
    m = _CANONICAL.search(data, 0, META_BYTES) or _OG_URL.search(data, 0, META_BYTES)
    return m.group(1).decode("utf-8", "replace") if m else ""


def looks_html(data: bytes) -> bool:
    return bool(_HTML_START.match(data[:SNIFF]))


_BLOCKS = frozenset("address article aside blockquote br dd div dl dt figcaption figure footer form h1 h2 h3 h4 h5 h6 "
                    "header hr li main nav ol p pre section table td th tr ul".split())
_INVISIBLE = "//script|//style|//noscript|//template|//head|//comment()"


def visible_text(html: str) -> str:
    """All the text a browser would show, one line per block element (`web.extract=text`)."""
    import lxml.etree
    import lxml.html

    try:
        tree = lxml.html.document_fromstring(html.encode("utf-8"), parser=lxml.html.HTMLParser(encoding="utf-8"))
    except (lxml.etree.ParserError, ValueError):
        return ""
    for el in tree.xpath(_INVISIBLE):
        el.drop_tree()
    for el in tree.iter(*_BLOCKS):
        el.tail = "\n" + (el.tail or "")
    lines = (" ".join(line.split()) for line in tree.text_content().split("\n"))
    return "\n".join(line for line in lines if line)


class Extractor:
    """HTML text -> the page's text, by `web.extract`."""

    def __init__(self, cfg: WebConfig):
        import logging

        import trafilatura

        self.cfg, self._t = cfg, trafilatura
        # A page it cannot parse or finds no text in is counted as read/no_text; its log lines would repeat that.
        logging.getLogger("trafilatura").setLevel(logging.CRITICAL)

    def __call__(self, html: str, url: str = "") -> str:
        if self.cfg.extract == "text":
            return visible_text(html)
        return self._t.extract(html, url=url or None, include_comments=False, include_tables=self.cfg.tables,
                               favor_precision=self.cfg.favor == "precision",
                               favor_recall=self.cfg.favor == "recall", fast=not self.cfg.fallback,
                               deduplicate=False) or ""


def whole_gzip(fh) -> bool:
    """Whether a `.gz` WARC is one gzip stream over several records (a whole file gzipped), not a member
    per record: its first member inflates past the end of its first record."""
    import zlib

    d, out = zlib.decompressobj(31), b""
    fh.seek(0)
    while not d.eof and len(out) < 1 << 20:
        chunk = d.unconsumed_tail or fh.read(records.CHUNK)
        if not chunk:
            break
        out += d.decompress(chunk, (1 << 20) - len(out))
    head, _, _ = out.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return bool(length) and len(out) > len(head) + 4 + int(length.group(1)) + 4


def member_start(fh, start: int, stop: int) -> int | None:
    """The offset of the first gzip member at or after `start` (and before `stop`, -1: the end) that
    holds the start of a WARC record, or None. A `.warc.gz` compresses each record as its own member, so
    a range of the file is read from there; a gzip header inside compressed data would also have to
    inflate to "WARC/" to be taken."""
    import zlib

    pos, tail = start, b""
    fh.seek(start)
    while stop < 0 or pos < stop:
        chunk = fh.read(records.CHUNK)
        if not chunk:
            return None
        data, at = tail + chunk, 0
        while (at := data.find(b"\x1f\x8b\x08", at)) >= 0:
            found = pos - len(tail) + at
            if 0 <= stop <= found:
                return None
            try:
                if zlib.decompressobj(31).decompress(data[at:at + 4096], 8).startswith(b"WARC/"):
                    return found
            except zlib.error:
                pass
            at += 1
        pos += len(chunk)
        tail = data[-4096:]
    return None


def _payload(rec) -> bytes:
    """A record's payload with its transfer and content encodings undone: by warcio, but brotli by hand
    (warcio 1.8's brotli reader fails with brotli 1.2)."""
    headers = rec.http_headers
    if headers and (headers.get_header("Content-Encoding") or "").strip().lower() == "br" \
            and "chunked" not in (headers.get_header("Transfer-Encoding") or "").lower():
        import brotli

        return brotli.decompress(rec.raw_stream.read())
    return rec.content_stream().read()


class WebReader:
    """`read(unit, info)` yields the Docs and Drops of one WARC, WET or HTML file; `info` is the file's
    record (pipeline.reading.sources.new_file_record), whose "repaired" it counts."""

    def __init__(self, cfg: WebConfig, max_doc_bytes: int):
        self.cfg, self.cap = cfg, max_doc_bytes
        self.extract = Extractor(cfg)

    def read(self, unit, info):
        f = unit.files[0]
        if unit.kind == "html":
            yield self._html_file(f, info)
            return
        from warcio.archiveiterator import ArchiveIterator

        if records.compression(f.path.lower()) == "zst":
            raise records.BrokenFile("a zstd-compressed WARC is not read: decompress it, or gzip it record by record")
        with storage.open_read(f.path) as fh:
            stop, stream = unit.stop, fh
            if f.path.lower().endswith(".gz") and whole_gzip(fh):  # offsets are then in the decompressed stream
                if unit.start:  # the first range reads it all
                    return
                stop, stream = -1, gzip.GzipFile(fileobj=fh)
            base = member_start(fh, unit.start, unit.stop) if unit.start else 0
            if base is None:  # no record starts in this range
                return
            fh.seek(base)
            records_ = ArchiveIterator(stream)
            for rec in records_:
                rule, size, text, url, date = self._record(unit.kind, rec, info)
                offset = records_.get_record_offset()  # in the file (warcio starts at its position); known once read
                if stop >= 0 and offset >= stop:
                    break
                yield (Drop(doc_name(unit.kind, f.rel, offset), f"read/{rule}", size) if rule else
                       self._doc(f, unit.kind, offset, text, url, date))

    def _doc(self, f, kind, offset, text, url="", date=""):
        name = doc_name(kind, f.rel, offset)
        out = self.extract(text, url) if kind != "wet" else text
        if not out.strip():
            return Drop(name, "read/no_text", len(text))
        return Doc(doc_id(f.file_no, offset), name, out, url, date)

    def _record(self, kind, rec, info):
        """(drop rule or None, size, text, url, date) of one WARC record; what is not read of a record
        (a non-HTML or over-long payload) the iterator skips."""
        size = rec.length or 0
        if rec.rec_type != ("conversion" if kind == "wet" else "response"):
            return f"warc_{re.sub(r'[^a-z0-9]+', '_', rec.rec_type.lower())}", size, "", "", ""
        ctype = ""
        if kind == "warc":
            if (rec.http_headers.get_statuscode() if rec.http_headers else None) != "200":
                return "http_status", size, "", "", ""
            ctype = rec.http_headers.get_header("Content-Type") or ""
            if ctype.split(";")[0].strip().lower() not in (*HTML_TYPES, *UNTYPED):
                return "not_html", size, "", "", ""
        if size > self.cap:
            return "too_long", size, "", "", ""
        try:
            payload = _payload(rec)
        except Exception:  # noqa: BLE001 -- a payload that cannot be decoded is counted; the file goes on
            return "undecodable", size, "", "", ""
        if rec.raw_stream.limit:  # fewer bytes than its Content-Length: cut off
            return "truncated", size, "", "", ""
        url = plain_url(rec.rec_headers.get_header("WARC-Target-URI"))
        date = rec.rec_headers.get_header("WARC-Date") or ""
        if kind == "wet":
            text, repaired = records.decode(payload, "replace")
        else:
            if ctype.split(";")[0].strip().lower() in UNTYPED and not looks_html(payload):
                return "not_html", size, "", "", ""
            charset = _HEADER_CHARSET.search(ctype)
            text, repaired = decode_html(payload, charset.group(1) if charset else None)
        info["repaired"] += repaired
        return None, size, text, url, date

    def _html_file(self, f, info):
        name = doc_name("html", f.rel, 0)
        with storage.open_read(f.path) as fh:
            chunks = records.decompressed(records.raw_chunks(fh), records.compression(f.path.lower()))
            data, size = [], 0
            for chunk in chunks:
                size += len(chunk)
                if size > self.cap:
                    return Drop(name, "read/too_long", size)
                data.append(chunk)
        data = b"".join(data)
        html, repaired = decode_html(data)
        info["repaired"] += repaired
        return self._doc(f, "html", 0, html, page_url(data))
