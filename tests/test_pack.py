"""Packing, ordering and the shard stages on real text: rows across work units, orders, cap, determinism."""

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from model import tokenizer as model_tokenizer
from pipeline.__main__ import main
from pipeline.config import CorpusConfig
from pipeline.tokens import order, pack
from pipeline.tokens import tokenize as T
from pipeline.tokens.encode import lengths_file, tokens_file
from pipeline.tokens.shards import ShardSet

SHARED = Path(os.environ.get("CRAMKIT_SHARED_DATA", Path(__file__).resolve().parents[1] / "../shared/data"))
SEQ = 32


class FakePlan:
    """Just where the encode stage leaves token files."""

    def __init__(self, root: Path):
        self.root = root

    def unit_file(self, unit, name):
        (self.root / f"u{unit:06d}").mkdir(parents=True, exist_ok=True)
        return str(self.root / f"u{unit:06d}" / name)


def encoded(tmp_path, docs_per_unit):
    """Write token and length files as the encode stage does; [(tokens, docs)] per unit."""
    plan = FakePlan(tmp_path)
    for u, docs in enumerate(docs_per_unit):
        flat = np.array([t for d in docs for t in d], dtype=np.uint16)
        flat.tofile(tokens_file(plan, u))
        np.array([len(d) for d in docs], dtype=np.uint32).tofile(lengths_file(plan, u))
    return plan


def rows_of(layout, plan, units):
    return [(first, rows, lens) for u in range(units) for first, rows, lens, _ in layout.chunks(plan, u, np.dtype(np.uint16), 0)]


def test_rows_cross_units_and_drop_only_the_stream_tail(tmp_path):
    units = [[[5, 6, 7, 3], [8, 3]], [[9, 3]], [], [[10, 11, 12, 13, 14, 3]]]  # 6 + 2 + 0 + 6 tokens
    plan = encoded(tmp_path, units)
    tokens = [sum(map(len, u)) for u in units]
    layout = pack.Layout(4, pack.PackConfig(), tokens, [0] * 4, [len(u) for u in units])
    assert (layout.rows, layout.tail) == (3, 2)
    got = rows_of(layout, plan, len(units))
    assert [(first, r.tolist()) for first, r, _ in got] == [
        (0, [[5, 6, 7, 3], [8, 3, 9, 3]]),  # unit 0's second row runs on into unit 1
        (2, [[10, 11, 12, 13]])]  # units 1 and 2 start no row; [14, 3] is the tail
    assert all(lens is None for _, _, lens in got)


def test_rows_within_documents_pad_and_give_lengths(tmp_path):
    units = [[[8, 9, 3]], [[5, 6, 7, 14, 15, 3]]]
    plan = encoded(tmp_path, units)
    layout = pack.Layout(4, pack.PackConfig(cross_documents=False), [3, 6], [1, 2], [1, 1])
    got = rows_of(layout, plan, 2)
    assert [(first, r.tolist(), lens.tolist()) for first, r, lens in got] == [
        (0, [[8, 9, 3, 0]], [3]), (1, [[5, 6, 7, 14], [15, 3, 0, 0]], [4, 2])]
    assert (layout.rows, layout.tail) == (3, 0)


def test_sort_keys_per_order():
    rows = np.array([[1, 7, 7], [7, 7, 7], [1, 2, 3]], dtype=np.uint16)
    logp = order.unigram_logp(np.bincount(rows.ravel(), minlength=8))
    key = lambda name, **kw: order.sort_keys(rows, None, 5, order.OrderConfig(name=name, **kw), 7, logp)  # noqa: E731
    primary, tie = key("sentence-length")
    np.testing.assert_array_equal(primary, [-2, -3, 0])
    np.testing.assert_array_equal(tie, [5, 6, 7])
    primary, _ = key("unigram")
    assert np.argmin(primary) == 1  # the row of the most frequent token is the most likely
    reverse, _ = key("unigram", reverse=True)
    np.testing.assert_array_equal(reverse, -primary)
    padded = np.array([[7, 7, 0, 0], [1, 2, 3, 0]], dtype=np.uint16)
    primary, _ = order.sort_keys(padded, np.array([2, 3]), 0, order.OrderConfig(name="unigram"), 7, logp)
    np.testing.assert_allclose(primary, [-logp[7], -logp[[1, 2, 3]].mean()])  # padding not counted
    a, _ = key("random", seed=1)
    b, _ = key("random", seed=2)
    assert len(set(a)) == 3 and not np.array_equal(a, b)
    assert np.array_equal(key("random", seed=1)[0], a)


def test_boundaries_split_the_sample_evenly_and_partition_by_them():
    sample = [(np.arange(100, dtype=np.float64), np.zeros(100, np.uint64))]
    bounds = order.boundaries(sample, total_rows=1000, rows_per_shard=250)
    assert bounds == [(25.0, 0), (50.0, 0), (75.0, 0)]
    assert order.boundaries(sample, total_rows=10, rows_per_shard=250) == []
    parts = order.partition(np.array([0.0, 25.0, 49.0, 50.0, 99.0]), np.zeros(5, np.uint64), bounds)
    np.testing.assert_array_equal(parts, [0, 1, 1, 2, 3])
    ties = order.partition(np.array([25.0, 25.0]), np.array([0, 7], np.uint64), [(25.0, 3)])
    np.testing.assert_array_equal(ties, [0, 1])  # equal primaries are cut by row index


def test_configs_reject_bad_values():
    with pytest.raises(ValueError, match="order.name"):
        order.OrderConfig(name="alphabetical")
    with pytest.raises(ValueError, match="seq_len"):
        CorpusConfig(seq_len=0)
    with pytest.raises(ValueError, match="objective"):
        CorpusConfig(objective="t5")


# ---- the whole chain on real text ------------------------------------------------------------------

def read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A JSON Lines file of the paragraphs of 12 inaugural addresses (plus one junk document), a
    tokenizer file, and the texts in file order."""
    folder = SHARED / "text" / "nltk_inaugural"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (set CRAMKIT_SHARED_DATA)")
    texts = []
    for path in sorted(folder.iterdir())[:12]:
        texts += [" ".join(p.split()) for p in read_text(path).replace("\r\n", "\n").split("\n\n") if p.strip()]
    texts.append(" ".join(np.random.default_rng(0).choice(list("qxz0123456789#%&"), 3000)))
    root = tmp_path_factory.mktemp("corpus")
    (root / "in").mkdir()
    (root / "in" / "paras.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    tok_file = root / "tokenizer.json"
    T.train_tokenizer(texts[:-1], 3000).save(str(tok_file))
    return root / "in", tok_file, texts


def build(inputs, out, tok_file=None, order_name="none", cross=True, max_rows=0, cutoff=0.3, *extra):
    args = ["--input", str(inputs), "--output", str(out), "--created", "0", "filters.enabled=false",
            "dedup.near=false", f"tokenizer.compression_cutoff={cutoff}", "tokenizer.vocab_size=3000",
            f"seq_len={SEQ}", f"pack.cross_documents={str(cross).lower()}", f"order.name={order_name}",
            f"order.max_rows={max_rows}", "shards.rows_per_shard=700", "shards.key_sample=500", *extra]
    if tok_file:
        args.append(f"tokenizer.path={tok_file}")
    status = main(args)
    return ShardSet(out, verify=True) if status == 0 else status


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    inputs, tok_file, _ = corpus
    root = tmp_path_factory.mktemp("sets")
    return {name: build(inputs, root / name, tok_file, name) for name in order.ORDERS}


def expected_stream(texts, tok_file, cutoff=0.3):
    """The kept documents' token ids in file order, as one stream, its tail of < SEQ tokens dropped."""
    tok = model_tokenizer.load(tok_file)
    kept = []
    for text in texts:
        ids = T.encode(tok, [T.cramming_normalizer().normalize_str(text)], tok.token_to_id("[SEP]"))[0]
        if T.compression_keep(len(ids), len(text), cutoff):
            kept.append(ids)
    stream = np.concatenate(kept)
    return stream[: len(stream) // SEQ * SEQ]


def all_rows(ds):
    return ds.take(np.arange(len(ds)))


@pytest.mark.slow
def test_order_none_round_trips_the_token_stream(corpus, built):
    _, tok_file, texts = corpus
    ds = built["none"]
    np.testing.assert_array_equal(all_rows(ds).ravel(), expected_stream(texts, tok_file))
    m = ds.manifest
    assert m["tokens"]["kept"] == m["tokens"]["packed"] + m["tokens"]["pack_tail"]
    assert m["tokens"]["written"] == len(ds) * SEQ and 0 <= m["tokens"]["pack_tail"] < SEQ
    assert m["tokens"]["encoded"] > m["tokens"]["kept"]  # the junk document was dropped
    assert len(m["shards"]) >= 2 and m["order"]["name"] == "none" and m["created"] == "1970-01-01T00:00:00Z"
    assert m["tokenizer"]["special_tokens"] == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    assert (ds.path / "report.png").stat().st_size > 10_000


@pytest.mark.slow
def test_rows_decode_to_the_normalized_documents(corpus, built):
    _, tok_file, texts = corpus
    tok = model_tokenizer.load(tok_file)
    text = tok.decode(all_rows(built["none"])[:150].ravel().tolist(), skip_special_tokens=False)
    pieces = [p.replace(" ", "") for p in text.split("[SEP]")[1:-1]]  # whole documents only
    normalized = {T.cramming_normalizer().normalize_str(t).replace(" ", "") for t in texts}
    assert len(pieces) > 5 and all(p in normalized for p in pieces)


@pytest.mark.slow
def test_other_orders_permute_the_same_rows(built):
    base = sorted(map(bytes, all_rows(built["none"])))
    for name in ("random", "sentence-length", "unigram"):
        rows = all_rows(built[name])
        assert sorted(map(bytes, rows)) == base, name
        assert not np.array_equal(rows, all_rows(built["none"])), name


@pytest.mark.slow
def test_sentence_length_order_is_non_increasing_across_shards(corpus, built):
    ds = built["sentence-length"]
    dot = model_tokenizer.load(corpus[1]).token_to_id(".")
    dots = (all_rows(ds) == dot).sum(axis=1)
    assert len(ds.manifest["shards"]) >= 2 and dots[0] > dots[-1]
    assert np.all(np.diff(dots) <= 0)


@pytest.mark.slow
def test_unigram_order_puts_likely_rows_first(built):
    ds = built["unigram"]
    rows = all_rows(ds)
    logp = order.unigram_logp(np.bincount(rows.ravel(), minlength=ds.vocab_size))
    mean = logp[rows].mean(axis=1)
    assert np.all(np.diff(mean) <= 1e-12)


@pytest.mark.slow
def test_shards_load_with_datasets_and_pyarrow(built):
    ds = built["sentence-length"]
    first = ds.path / ds.manifest["shards"][0]["file"]
    datasets = pytest.importorskip("datasets")
    d = datasets.Dataset.from_file(str(first))
    assert d[0]["input_ids"] == ds[0].tolist()
    table = pa.ipc.open_stream(pa.memory_map(str(first))).read_all()
    assert table.schema.field("input_ids").type == pa.list_(pa.uint16(), SEQ)


@pytest.mark.slow
def test_rerun_split_and_workers_are_byte_identical_and_cap_takes_the_order_prefix(corpus, tmp_path, capsys):
    inputs, _, _ = corpus
    runs = {"a": (), "split": ("--split-mb", "0.03"), "two": ("--workers", "2", "--split-mb", "0.05")}
    sets = {name: build(inputs, tmp_path / name, None, "sentence-length", True, 500, 0.3, *extra)
            for name, extra in runs.items()}
    a = sets["a"]
    names = sorted(p.name for p in a.path.iterdir())
    assert "tokenizer.json" in names and "manifest.json" in names
    for name in names:
        if name != "stats.json":
            for other in ("split", "two"):
                assert (a.path / name).read_bytes() == (sets[other].path / name).read_bytes(), (name, other)
    split_stats = json.loads((tmp_path / "split" / "stats.json").read_text())
    assert split_stats["files"]["count"] == 1 and "5 input units" in capsys.readouterr().err  # it did split
    assert len(a) == 500
    dots = (all_rows(a) == model_tokenizer.load(a.tokenizer_file).token_to_id(".")).sum(axis=1)
    assert np.all(np.diff(dots) <= 0)
    assert a.manifest["tokens"]["capped"] == a.manifest["tokens"]["packed"] - 500 * SEQ


@pytest.mark.slow
def test_within_document_packing_writes_an_attention_mask(corpus, tmp_path):
    inputs, tok_file, _ = corpus
    ds = build(inputs, tmp_path / "doc", tok_file, "none", False)
    rows, mask = all_rows(ds), ds.take(np.arange(len(ds)), column="attention_mask")
    np.testing.assert_array_equal(mask, rows != 0)
    assert np.all(mask[:, 0] == 1)
    ends = rows[np.arange(len(rows)), mask.sum(axis=1) - 1]
    sep = model_tokenizer.load(tok_file).token_to_id("[SEP]")
    assert (ends == sep).sum() >= 50  # every document's last row ends with its [SEP]
    assert (rows == sep).sum() == (ends == sep).sum()  # and no row holds two documents
    assert ds.manifest["tokens"]["padding"] == int((mask == 0).sum())


def test_everything_filtered_away_is_an_error(corpus, tmp_path, capsys):
    inputs, tok_file, _ = corpus
    assert build(inputs, tmp_path / "none", tok_file, "none", True, 0, 0.01) == 2
    err = capsys.readouterr().err
    assert "error: every document was filtered away" in err and "tokenize/compression" in err
    assert not (tmp_path / "none").exists() and not (tmp_path / ".none.tmp").exists()
