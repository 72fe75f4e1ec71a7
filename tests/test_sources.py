"""Sources: input expansion, decompression that notices truncation, record cutting, decoding policies,
and every kind of bad input counted under its reason (read through the DoFn itself, no pipeline)."""

import gzip
import json
import random
import zlib

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pipeline import embedded, records, sources
from pipeline.document import DROPPED, Doc, Drop
from pipeline.records import BrokenFile
from pipeline.sources import SourceConfig, Unit


def read_unit(unit: Unit, **cfg):
    """(docs, drops, file record) of one unit."""
    fn = sources.ReadUnits(SourceConfig(**cfg))
    fn.setup()
    docs, drops, files = [], [], []
    for out in fn.process(unit):
        if isinstance(out, beam.pvalue.TaggedOutput):
            (drops if out.tag == DROPPED else files).append(out.value)
        else:
            docs.append(out)
    assert len(files) == 1
    assert files[0]["records"] == len(docs) + len(drops)
    return docs, drops, files[0]


def read_path(path, **cfg):
    return read_unit(sources.expand([str(path)], SourceConfig(**cfg))[0], **cfg)


# ---- expansion ----

def test_missing_path_is_an_error_naming_it(tmp_path):
    with pytest.raises(sources.InputError, match="nope.txt: no such file"):
        sources.expand([str(tmp_path / "nope.txt")], SourceConfig())
    (tmp_path / "empty").mkdir()
    with pytest.raises(sources.InputError, match="holds no files"):
        sources.expand([str(tmp_path / "empty")], SourceConfig())
    with pytest.raises(sources.InputError, match="matches no file"):
        sources.expand([str(tmp_path / "*.jsonl")], SourceConfig())


def test_expand_kinds_and_relative_ids(tmp_path):
    for name in ("x/a.txt", "x/b.jsonl.zst", "y/c.parquet", "y/d.ndjson.gz", "y/e.md"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    units = sources.expand([str(tmp_path / "x"), str(tmp_path / "y" / "*")], SourceConfig())
    got = {(u.kind, u.rel) for u in units}
    assert got == {("text", "x/a.txt"), ("jsonl", "x/b.jsonl.zst"), ("parquet", "y/c.parquet"),
                   ("jsonl", "y/d.ndjson.gz"), ("text", "y/e.md")}
    assert units == sorted(units, key=lambda u: (u.kind, u.rel))
    hf = sources.expand(["hf:allenai/c4:en@validation"], SourceConfig())[0]
    assert hf.kind == "hf" and hf.paths == ("allenai/c4", "en", "validation")


# ---- byte streams ----

TEXT = b"".join(b"line %d of a test file\n" % i for i in range(20000))


def test_gzip_multi_member_and_truncation():
    two = gzip.compress(TEXT) + gzip.compress(TEXT)
    assert b"".join(records._gunzip(iter([two[i:i + 999] for i in range(0, len(two), 999)]))) == TEXT * 2
    cut = gzip.compress(TEXT)[:-4]  # the trailer (size) is missing: zlib alone would not say so
    with pytest.raises(BrokenFile, match="truncated gzip"):
        b"".join(records._gunzip(iter([cut])))
    with pytest.raises(BrokenFile, match="corrupt gzip"):
        b"".join(records._gunzip(iter([b"\x1f\x8b\x08\x00" + b"\xff" * 100])))


def test_zstd_multi_frame_and_truncation():
    c = zstandard.ZstdCompressor()
    two = c.compress(TEXT) + c.compress(TEXT[:100])
    assert b"".join(records._unzstd(iter([two[i:i + 777] for i in range(0, len(two), 777)]))) == TEXT + TEXT[:100]
    with pytest.raises(BrokenFile, match="truncated zstd"):
        b"".join(records._unzstd(iter([c.compress(TEXT)[:-10]])))
    with pytest.raises(BrokenFile, match="corrupt zstd"):
        b"".join(records._unzstd(iter([b"\x28\xb5\x2f\xfd" + bytes(range(256)) * 8])))


def test_lines_offsets_crlf_and_cap():
    data = b"ab\r\n\ncde\n" + b"x" * 50 + b"\nlast"
    chunks = [data[i:i + 3] for i in range(0, len(data), 3)]
    got = list(records.lines(iter(chunks), cap=10))
    assert got == [(0, b"ab", None), (4, b"", None), (5, b"cde", None), (9, b"", records.TOO_LONG),
                   (60, b"last", None)]
    for offset, line, _ in got:
        if line:
            assert data[offset:].startswith(line)


def test_records_modes():
    data = b"para one\nstill one\n\n\n  \npara two\n"
    assert [r[1] for r in records.records(iter([data]), "block", 100)] == [b"para one\nstill one", b"para two"]
    assert [r[1] for r in records.records(iter([data]), "line", 100)] == [b"para one", b"still one", b"para two"]
    assert [r[0] for r in records.records(iter([data]), "file", 100)] == [0]
    assert list(records.records(iter([data]), "file", 10)) == [(0, b"", records.TOO_LONG)]


def test_decode_policies_and_binary():
    latin = "café".encode("latin-1")
    assert records.decode(latin, "replace") == ("caf\ufffd", True)
    assert records.decode(latin, "latin-1") == ("café", True)
    assert records.decode(latin, "drop") == (None, False)
    assert records.decode("café".encode(), "drop") == ("café", False)
    assert records.looks_binary("a\0b", 0.05)
    assert records.looks_binary(bytes(range(256)).decode("latin-1"), 0.05)
    assert not records.looks_binary("plain text,\ttabs and\nnewlines\x0c", 0.05)
    assert not records.looks_binary("na\ufffdve", 0.05)  # a repaired short text is still text


# ---- reading files through the DoFn ----

def reasons(drops):
    return sorted(d.reason for d in drops)


def test_jsonl_bad_lines_counted(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "first"}\n{broken\n{"body": "x"}\n["list"]\n\n{"text": 5}\n'
                     b'{"content": "other field"}\n')
    docs, drops, info = read_path(path)
    assert [d.text for d in docs] == ["first"]
    assert docs[0].id == "jsonl:d.jsonl:000000000000"
    assert reasons(drops) == ["read/invalid_json", "read/missing_field", "read/missing_field",
                              "read/missing_field", "read/missing_field"]
    assert info["error"] is None
    docs, drops, _ = read_path(path, text_field="content")
    assert [d.text for d in docs] == ["other field"]


def test_non_utf8_policies(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("naïve café\n\nplain ascii\n".encode("latin-1"))
    docs, drops, info = read_path(path, encoding_errors="latin-1")
    assert [d.text for d in docs] == ["naïve café", "plain ascii"] and info["repaired"] == 1
    docs, drops, info = read_path(path, encoding_errors="replace")
    assert docs[0].text == "na\ufffdve caf\ufffd" and info["repaired"] == 1
    docs, drops, info = read_path(path, encoding_errors="drop")
    assert [d.text for d in docs] == ["plain ascii"] and reasons(drops) == ["read/undecodable"]


def test_a_50mb_line_is_dropped_without_holding_it(tmp_path):
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as fh:
        fh.write(b'{"text": "before"}\n{"text": "')
        fh.write(b"x" * 50_000_000)
        fh.write(b'"}\n{"text": "after"}\n')
    docs, drops, _ = read_path(path, max_doc_bytes=1_000_000)
    assert [d.text for d in docs] == ["before", "after"]
    assert drops == [Drop("jsonl:big.jsonl:000000000019", "read/too_long", 0)]


def test_truncated_gz_keeps_the_good_part_and_names_the_error(tmp_path):
    blocks = [f"block {i} " + "word " * 50 for i in range(400)]
    gz = gzip.compress("\n\n".join(blocks).encode())
    path = tmp_path / "t.txt.gz"
    path.write_bytes(gz[: len(gz) // 2])
    docs, drops, info = read_path(path)
    assert "truncated gzip" in info["error"]
    assert 0 < len(docs) < 400 and reasons(drops) == ["read/truncated"]
    assert [d.text for d in docs] == blocks[: len(docs)]


def test_corrupt_zstd_and_binary_garbage(tmp_path):
    (tmp_path / "c.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd" + bytes(range(256)) * 8)
    docs, drops, info = read_path(tmp_path / "c.jsonl.zst")
    assert docs == [] and "zstd" in info["error"]
    (tmp_path / "g.bin").write_bytes(random.Random(0).randbytes(20000).replace(b"\n", b"\n\n"))
    docs, drops, info = read_path(tmp_path / "g.bin")
    assert docs == [] and drops and set(reasons(drops)) == {"read/binary"} and info["error"] is None


def test_parquet(tmp_path):
    pq.write_table(pa.table({"text": ["one", None, "three"], "n": [1, 2, 3]}), tmp_path / "p.parquet")
    docs, drops, _ = read_path(tmp_path / "p.parquet")
    assert docs == [Doc("parquet:p.parquet:000000000000", "one"), Doc("parquet:p.parquet:000000000002", "three")]
    assert reasons(drops) == ["read/missing_field"]
    _, _, info = read_path(tmp_path / "p.parquet", text_field="body")
    assert "no column 'body'" in info["error"] and "source.text_field" in info["error"]


def test_unreadable_file_is_reported_not_raised(tmp_path):
    path = tmp_path / "gone.txt"
    path.write_text("x")
    unit = sources.expand([str(path)], SourceConfig())[0]
    path.unlink()
    docs, drops, info = read_unit(unit)
    assert docs == [] and "FileNotFoundError" in info["error"]


def test_zlib_is_not_enough():
    """Why the reader checks gzip itself: a plain decompressobj says nothing about a missing trailer."""
    d = zlib.decompressobj(31)
    assert d.decompress(gzip.compress(TEXT)[:-4]) == TEXT and not d.eof


# ---- embedded docstrings ----

def test_docstrings_from_source():
    src = b'"""Module doc."""\nclass A:\n    """Class doc.\n\n    More."""\n    def f(self):\n        """F doc."""\n'
    assert embedded.docstrings(src) == [(0, "Module doc."), (2, "Class doc.\n\nMore."), (6, "F doc.")]
    with pytest.raises(SyntaxError):
        embedded.docstrings(b"print 'python 2'\n")


def test_embedded_units_capped_and_readable():
    units = embedded.units(max_mb=0.3)
    assert units and sum(u.size for u in units) < 0.3e6 + 2e6
    assert units == embedded.units(max_mb=0.3)  # same sample every time
    docs, drops, info = read_unit(units[0])
    assert docs and all(d.id.startswith("docstrings:") for d in docs)
    assert len({d.id for d in docs}) == len(docs)
    assert sum(len(d.text) for d in docs) > 1000


def test_hf_offline_fails_fast_naming_the_dataset(monkeypatch):
    import socket
    import time

    def refuse(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    with pytest.raises(sources.InputError, match=r"'wikitext'.*--input path/to/files"):
        sources.check_hf("hf:wikitext:wikitext-2-raw-v1")
    assert time.perf_counter() - start < 5


def test_jsonl_objects_in_mixed_corpus(mixed_corpus):
    docs, drops, info = read_path(mixed_corpus["dir"] / "b.jsonl")
    assert len(docs) == 10 and len(drops) == 3
    assert json.loads(json.dumps(docs[0].text)) == mixed_corpus["paragraphs"][11]
