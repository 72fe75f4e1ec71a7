"""Shared fixtures: the real data in ../shared/data (skipped when absent) and a mixed, partly broken
corpus folder built from it."""

import gzip
import json
import os
from pathlib import Path

import pytest
import zstandard

pytest_plugins = ["servers"]  # real S3 server and portable cluster fixtures

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CRAMKIT_SHARED_DATA", ROOT / ".." / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_text() -> Path:
    """../shared/data/text (real English prose; some files latin-1 and CRLF)."""
    folder = SHARED / "text"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (set CRAMKIT_SHARED_DATA)")
    return folder


def paragraphs(shared_text: Path, n: int, min_words: int = 40) -> list[str]:
    """The first `n` UTF-8 paragraphs of at least `min_words` words from the inaugural addresses."""
    out = []
    for path in sorted((shared_text / "nltk_inaugural").iterdir()):
        for block in path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n"):
            if len(block.split()) >= min_words:
                out.append(block.strip())
                if len(out) == n:
                    return out
    return out


@pytest.fixture(scope="session")
def mixed_corpus(tmp_path_factory, shared_text) -> dict:
    """A folder of txt / jsonl / jsonl.zst / txt.gz / parquet files with broken ones among them.

    Returns {"dir": Path, "expect": {reason: count}, "good": [ids of documents that must be read]}."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path_factory.mktemp("mixed")
    paras = paragraphs(shared_text, 60)
    (root / "a.txt").write_text("\n\n".join(paras[:10]) + "\n")
    (root / "latin.txt").write_bytes(paras[10].replace("the", "thé").encode("latin-1", "replace") + b"\n")
    lines = [json.dumps({"text": p}) for p in paras[11:21]]
    lines += ["{not json", json.dumps({"body": "no text field"}), json.dumps(["a", "list"])]
    (root / "b.jsonl").write_text("\n".join(lines) + "\n")
    zdata = "\n".join(json.dumps({"text": p}) for p in paras[21:31]).encode() + b"\n"
    (root / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(zdata))
    (root / "d.txt.gz").write_bytes(gzip.compress("\n\n".join(paras[31:41]).encode()))
    gz = gzip.compress("\n\n".join(paras[41:51]).encode())
    (root / "truncated.txt.gz").write_bytes(gz[: len(gz) * 2 // 3])
    (root / "corrupt.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(3000))
    (root / "garbage.bin").write_bytes(bytes(range(256)) * 64)
    (root / "empty.txt").write_bytes(b"")
    pq.write_table(pa.table({"text": paras[51:60] + [None]}), root / "e.parquet")
    return {"dir": root, "paragraphs": paras}


def staged(tmp_path: Path, texts: list[str], until: str = "shards", overrides=(), split_bytes: int = 0):
    """Scan `texts`, written one per line to a JSON Lines file, into a staging folder without Beam.

    Returns (cfg, plan, units, scans); document i has the byte offset of line i in its id."""
    from pipeline import config
    from pipeline.graph import plan
    from pipeline.graph.scan import Scanner
    from pipeline.reading import inputs

    src = tmp_path / "src" / "docs.jsonl"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    cfg = config.load("default", list(overrides))
    found = inputs.expand([str(src)], split_bytes=split_bytes)
    run = plan.make(found, str(tmp_path / "out"), str(tmp_path / "stage"), until, cfg.tokenizer.sample_chars,
                    "2026-01-01T00:00:00Z")
    scan = Scanner(cfg, run)
    return cfg, run, found.units, [scan(u) for u in found.units]
