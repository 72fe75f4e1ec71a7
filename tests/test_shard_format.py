"""docs/shard-format.md matches the code: its code blocks, run as written, read shard sets the pipeline
built; its manifest table lists exactly the fields real manifests have, with their types; its column
table gives the Arrow types the shards have; hashes, sizes and rows are what it says."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import paragraphs

from pipeline.__main__ import main
from pipeline.tokens.shards import COLUMN_DTYPES, FORMAT_VERSION, ShardSet

DOC = Path(__file__).resolve().parent.parent / "docs" / "shard-format.md"
TYPES = {"string": str, "integer": int, "boolean": bool, "object": dict, "list of strings": list,
         "integer or null": (int, type(None)), "object or null": (dict, type(None))}


def section(title: str) -> str:
    """The text of the document's section `## title`, up to the next one."""
    text = DOC.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def table(title: str) -> dict[str, list[str]]:
    """The first table of a section: {first cell without backticks: the other cells}."""
    rows = {}
    for line in section(title).splitlines():
        if m := re.match(r"\| `([^`]+)` \|(.*)\|$", line):
            rows[m[1]] = [c.strip().strip("`") for c in re.split(r"(?<!\\)\|", m[2])]
    return rows


def python_blocks(title: str, folder: Path) -> str:
    """The section's python code, reading `folder` where the document reads out/corpus."""
    code = "\n".join(re.findall(r"```python\n(.*?)```", section(title), re.S))
    return code.replace("out/corpus", str(folder))


@pytest.fixture(scope="module")
def built(tmp_path_factory, shared_text):
    """Two shard sets from real prose: clm + byte-level BPE + segment_ids in several shards, and mlm rows
    padded per document (attention_mask) with segment_ids."""
    root = tmp_path_factory.mktemp("format")
    texts = paragraphs(shared_text, 200, min_words=20)
    (root / "in").mkdir()
    (root / "in" / "paras.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    common = ["dedup.near=false", "tokenizer.vocab_size=800", "tokenizer.compression_cutoff=0", "pack.segments=true"]
    sets = {"clm": ["objective=clm", "seq_len=128", "tokenizer.kind=bpe", "normalize.preset=cased",
                    "shards.rows_per_shard=100"],
            "padded": ["seq_len=48", "pack.cross_documents=false", "order.name=random"]}
    for name, overrides in sets.items():
        assert main(["--input", str(root / "in"), "--output", str(root / name), "--created", "0", *common,
                     *overrides]) == 0
    return {name: root / name for name in sets}


@pytest.mark.parametrize("name", ["clm", "padded"])
def test_the_documents_pyarrow_reader_reads_what_cramkit_reads(built, name):
    scope = {}
    exec(python_blocks("Reading it with pyarrow alone", built[name]), scope)
    manifest, columns = scope["manifest"], scope["columns"]
    ds = ShardSet(built[name], verify=True)
    assert list(columns) == manifest["columns"] == list(ds.columns)
    for column, rows in columns.items():
        np.testing.assert_array_equal(rows, ds.take(np.arange(len(ds)), column=column))
    assert scope["KNOWN_VERSION"] == FORMAT_VERSION
    assert f"version {FORMAT_VERSION}" in DOC.read_text().splitlines()[0]
    if name == "clm":
        assert len(manifest["shards"]) > 1


def test_the_documents_reader_refuses_newer_versions_and_altered_shards(built, tmp_path):
    scope = {}
    code = python_blocks("Reading it with pyarrow alone", built["clm"])
    exec(code[: code.index("\nmanifest, columns =")], scope)  # the functions only
    copy = shutil.copytree(built["clm"], tmp_path / "copy")
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ValueError, match=f"knows cramkit-shards up to version {FORMAT_VERSION}"):
        scope["read_shard_set"](copy)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    shard = copy / manifest["shards"][1]["file"]
    data = bytearray(shard.read_bytes())
    data[-100] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="size or sha256 differs"):
        scope["read_shard_set"](copy)


def _lookup(manifest: dict, dotted: str) -> list:
    """The values at a documented path (`shards[].file`: one per shard)."""
    values = [manifest]
    for part in dotted.split("."):
        listed = part.endswith("[]")
        values = [v[part.removesuffix("[]")] for v in values]
        if listed:
            values = [x for v in values for x in v]
    return values


@pytest.mark.parametrize("name", ["clm", "padded"])
def test_the_manifest_has_exactly_the_documented_fields_with_their_types(built, name):
    fields = table("manifest.json")
    manifest = json.loads((built[name] / "manifest.json").read_text())
    assert set(manifest) == {f.split(".")[0].removesuffix("[]") for f in fields}  # nothing undocumented
    for field, (kind, meaning) in fields.items():
        values = _lookup(manifest, field)
        assert values and all(isinstance(v, TYPES[kind]) for v in values), (field, kind, values)
        assert meaning
    parents = {".".join(f.split(".")[:i]) for f in fields for i in range(1, f.count(".") + 1)}
    for parent in parents:  # an object whose fields are documented has no others
        children = {f[len(parent) + 1 :].split(".")[0] for f in fields if f.startswith(parent + ".")}
        for value in _lookup(manifest, parent):
            assert set(value) == children, (parent, set(value) ^ children)
    assert manifest["format"] == "cramkit-shards" and manifest["format_version"] == FORMAT_VERSION
    assert manifest["seq_len"] == manifest["packing"]["seq_len"]
    assert manifest["rows"] == sum(s["rows"] for s in manifest["shards"])
    assert manifest["dtype"] == ("uint16" if manifest["vocab_size"] <= 65536 else "uint32")
    assert manifest["objective"] == manifest["config"]["objective"]


def _canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@pytest.mark.parametrize("name", ["clm", "padded"])
def test_sizes_rows_and_hashes_are_as_documented(built, name):
    folder = built[name]
    manifest = json.loads((folder / "manifest.json").read_text())
    names = sorted(p.name for p in folder.iterdir())
    shards = [s["file"] for s in manifest["shards"]]
    assert shards == [f"shard-{i:06d}.arrow" for i in range(len(shards))]
    assert names == sorted([*shards, ".cramkit", "manifest.json", "report.png", "stats.json", "tokenizer.json"])
    assert json.loads((folder / ".cramkit").read_text())["files"] == sorted(n for n in names if n != ".cramkit")
    for shard in manifest["shards"]:
        data = (folder / shard["file"]).read_bytes()
        assert len(data) == shard["bytes"] and hashlib.sha256(data).hexdigest() == shard["sha256"]
        assert pa.ipc.open_stream(data).read_all().num_rows == shard["rows"]
    tokenizer = (folder / manifest["tokenizer"]["file"]).read_bytes()
    assert hashlib.sha256(tokenizer).hexdigest() == manifest["tokenizer"]["sha256"]
    assert hashlib.sha256(_canonical(manifest["config"])).hexdigest() == manifest["config_hash"]
    rest = {k: v for k, v in manifest.items() if k not in ("content_hash", "created")}
    assert hashlib.sha256(_canonical(rest)).hexdigest() == manifest["content_hash"]


def _arrow_type(documented: str, seq_len: int, dtype: str) -> pa.DataType:
    """`fixed_size_list<uint16>[seq_len]` as written in the column table -> the pyarrow type."""
    m = re.fullmatch(r"fixed_size_list<(\w+)>\[seq_len\]", documented.split("`")[0].strip())
    assert m, documented
    value = dtype if "vocab_size" in documented else m[1]  # input_ids: the manifest's dtype
    return pa.list_(pa.from_numpy_dtype(np.dtype(value)), seq_len)


@pytest.mark.parametrize("name", ["clm", "padded"])
def test_columns_have_the_documented_types_and_meaning(built, name):
    documented = table("Columns")
    assert list(documented) == ["input_ids", *COLUMN_DTYPES]
    for column, dtype in COLUMN_DTYPES.items():  # the writer's dtypes, as the document names them
        assert _arrow_type(documented[column][0], 8, "-").value_type == pa.from_numpy_dtype(dtype), column
    manifest = json.loads((built[name] / "manifest.json").read_text())
    seq_len, packing = manifest["seq_len"], manifest["packing"]
    assert manifest["columns"] == ["input_ids", "segment_ids"] if name == "clm" else list(documented)
    for shard in manifest["shards"]:
        table_ = pa.ipc.open_stream(pa.memory_map(str(built[name] / shard["file"]))).read_all()
        assert table_.column_names == manifest["columns"]
        for column in table_.column_names:
            assert table_.schema.field(column).type == _arrow_type(documented[column][0], seq_len, manifest["dtype"])
            assert table_.column(column).null_count == 0
    ds = ShardSet(built[name])
    ids, seg = ds.take(np.arange(len(ds))), ds.take(np.arange(len(ds)), column="segment_ids")
    assert ids.max() < manifest["vocab_size"]
    ends = ids == packing["document_end"]["id"]
    if name == "clm":  # 0 where the row starts, one more after each document end
        assert np.all(seg[:, 0] == 0) and seg.max() > 0
        np.testing.assert_array_equal(seg[:, 1:], np.cumsum(ends[:, :-1], axis=1))
        assert manifest["tokenizer"]["special_tokens"] == {"<|pad|>": 0, "<|unk|>": 1, "<|endoftext|>": 2}
    else:  # one document per row, padded after its end
        mask = ds.take(np.arange(len(ds)), column="attention_mask")
        assert not seg.any() and not mask.all() and set(np.unique(mask)) == {0, 1}
        assert np.all(ids[mask == 0] == packing["pad"]["id"])
        assert manifest["tokens"]["padding"] == int((mask == 0).sum())
        assert manifest["tokens"]["written"] == int(mask.sum())


def test_the_documents_datasets_and_torch_readers(built):
    pytest.importorskip("datasets")
    scope = {}
    exec(python_blocks("Reading it with pyarrow alone", built["clm"]), scope)
    exec(python_blocks("Reading it with `datasets`", built["clm"]), scope)
    ds = ShardSet(built["clm"])
    assert len(scope["dataset"]) == len(ds)
    np.testing.assert_array_equal(scope["batch"]["input_ids"].numpy(), ds.take(np.arange(8)))
    np.testing.assert_array_equal(scope["batch"]["segment_ids"].numpy(), ds.take(np.arange(8), column="segment_ids"))
    exec(python_blocks("Reading it with torch, without cramkit", built["clm"]), scope)
    assert scope["inputs"].shape == scope["targets"].shape == (8, ds.seq_len - 1)
    assert scope["attn_mask"].shape == (8, 1, ds.seq_len - 1, ds.seq_len - 1)
    assert not scope["attn_mask"][:, 0].triu(1).any()  # causal
