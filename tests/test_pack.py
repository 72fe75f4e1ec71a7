"""Packing, ordering and the ToShards chain on real text: round trip, orders, cap, determinism."""

import json
import os
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
import xxhash
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import pack
from pipeline import tokenize as T
from pipeline.config import CorpusConfig
from pipeline.document import Doc, EmptyCorpus
from pipeline.shards import ShardSet
from pipeline.tokenize import TokenizedDoc

SHARED = Path(os.environ.get("CRAMKIT_SHARED_DATA", Path(__file__).resolve().parents[1] / "../shared/data"))
SEQ, GROUP_TOKENS = 32, 8_000


def tdoc(id_, ids):
    return TokenizedDoc(id_, np.array(ids, dtype=np.uint32), len(ids) * 4)


def test_pack_across_documents_drops_only_the_tail():
    docs = [tdoc("b", [5, 6, 7, 3]), tdoc("a", [8, 9, 3]), tdoc("c", [10, 11, 12, 13, 3])]
    rows, mask, tail = pack.pack(docs, 4, 0, True, np.uint16)
    assert mask is None and tail == 0 + (12 % 4)
    np.testing.assert_array_equal(rows.ravel(), [8, 9, 3, 5, 6, 7, 3, 10, 11, 12, 13, 3])  # sorted by id
    rows, _, tail = pack.pack(docs, 5, 0, True, np.uint16)
    assert rows.shape == (2, 5) and tail == 2 and rows.dtype == np.uint16


def test_pack_within_documents_pads_and_masks():
    docs = [tdoc("a", [8, 9, 3]), tdoc("b", [5, 6, 7, 14, 15, 3])]
    rows, mask, tail = pack.pack(docs, 4, 0, False, np.uint16)
    np.testing.assert_array_equal(rows, [[8, 9, 3, 0], [5, 6, 7, 14], [15, 3, 0, 0]])
    np.testing.assert_array_equal(mask, rows != 0)
    assert tail == 0


def test_sort_keys_per_order():
    rows = np.array([[1, 7, 7], [7, 7, 7], [1, 2, 3]], dtype=np.uint16)
    key = lambda name, **kw: pack.sort_keys(rows, None, 2, pack.OrderConfig(name=name, **kw), 7, logp)  # noqa: E731
    logp = pack.unigram_logp(np.bincount(rows.ravel(), minlength=8))
    primary, tie = key("sentence-length")
    np.testing.assert_array_equal(primary, [-2, -3, 0])
    np.testing.assert_array_equal(tie, (2 << 40) + np.arange(3))
    primary, _ = key("unigram")
    assert np.argmin(primary) == 1  # the row of the most frequent token is the most likely
    reverse, _ = key("unigram", reverse=True)
    np.testing.assert_array_equal(reverse, -primary)
    padded = np.array([[7, 7, 0, 0], [1, 2, 3, 0]], dtype=np.uint16)
    primary, _ = pack.sort_keys(padded, (padded != 0).astype(np.uint8), 0, pack.OrderConfig(name="unigram"),
                                7, logp)
    np.testing.assert_allclose(primary, [-logp[7], -logp[[1, 2, 3]].mean()])  # padding not counted
    a, _ = key("random", seed=1)
    b, _ = key("random", seed=2)
    assert len(set(a)) == 3 and not np.array_equal(a, b)


def test_boundaries_split_the_sample_evenly():
    sample = [(0, (float(k), 0)) for k in range(100)]
    assert pack.boundaries(sample, total=1000, rows_per_shard=250) == [(25.0, 0), (50.0, 0), (75.0, 0)]
    assert pack.boundaries(sample, total=10, rows_per_shard=250) == []


def test_configs_reject_bad_values():
    with pytest.raises(ValueError, match="order.name"):
        pack.OrderConfig(name="alphabetical")
    with pytest.raises(ValueError, match="pack.seq_len"):
        pack.PackConfig(seq_len=0)


# ---- the whole chain on real text ------------------------------------------------------------------

def read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Paragraph documents of 12 inaugural addresses (plus one junk document), and a tokenizer file."""
    folder = SHARED / "text" / "nltk_inaugural"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (set CRAMKIT_SHARED_DATA)")
    docs = []
    for path in sorted(folder.iterdir())[:12]:
        for i, para in enumerate(read_text(path).replace("\r\n", "\n").split("\n\n")):
            if para.strip():
                docs.append(Doc(f"inaugural:{path.name}:{i:06d}", " ".join(para.split())))
    junk = Doc("junk:x:000000", " ".join(np.random.default_rng(0).choice(list("qxz0123456789#%&"), 3000)))
    tok_file = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    T.train_tokenizer([d.text for d in docs], 3000).save(str(tok_file))
    return docs + [junk], tok_file


def build(docs, out, tok_file=None, order="none", cross=True, max_rows=0, vocab=3000, cutoff=0.3):
    tok_cfg = T.TokenizerConfig(path=str(tok_file) if tok_file else None, vocab_size=vocab,
                                compression_cutoff=cutoff, batch_size=64)
    cfg = CorpusConfig(tokenizer=tok_cfg, pack=pack.PackConfig(seq_len=SEQ, group_tokens=GROUP_TOKENS, cross_documents=cross),
                       order=pack.OrderConfig(name=order, max_rows=max_rows),
                       shards=pack.ShardConfig(rows_per_shard=700, key_sample=500))
    stage = pack.ToShards(out, cfg)
    out.mkdir(parents=True)
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        stage_out = p | beam.Create(docs) | stage
    del stage_out
    pack.finish(out, cfg, {"dropped": {"x/y": {"docs": 3, "chars": 9}}, "stages": {"x": {"seconds": 1.5}}})
    return ShardSet(out, verify=True)


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    docs, tok_file = corpus
    root = tmp_path_factory.mktemp("sets")
    return {order: build(docs, root / order, tok_file, order) for order in pack.ORDERS}


def expected_stream(docs, tok_file, cutoff=0.3):
    """The kept documents' token streams, concatenated per pack group (ids sorted), tails dropped;
    and the number of groups."""
    tok = T.load_tokenizer(tok_file)
    kept = []
    for d in sorted(docs):
        ids = T.encode(tok, [d.text])[0]
        if T.compression_keep(len(ids), len(d.text), cutoff):
            kept.append((d.id, ids))
    n = -(-sum(len(ids) for _, ids in kept) // GROUP_TOKENS)
    groups = {g: [] for g in range(n)}
    for id_, ids in kept:
        groups[xxhash.xxh64_intdigest(id_.encode()) % n].append(ids)
    parts = []
    for g in range(n):
        stream = np.concatenate(groups[g])
        parts.append(stream[: len(stream) // SEQ * SEQ])
    return np.concatenate(parts), n


def all_rows(ds):
    return ds.take(np.arange(len(ds)))


@pytest.mark.slow
def test_order_none_round_trips_the_token_stream(corpus, built):
    docs, tok_file = corpus
    ds = built["none"]
    stream, groups = expected_stream(docs, tok_file)
    np.testing.assert_array_equal(all_rows(ds).ravel(), stream)
    m = ds.manifest
    assert m["packing"]["groups"] == groups >= 3
    assert m["tokens"]["kept"] == m["tokens"]["packed"] + m["tokens"]["pack_tail"]
    assert m["tokens"]["written"] == len(ds) * SEQ and 0 < m["tokens"]["pack_tail"] < groups * SEQ
    assert m["tokens"]["encoded"] > m["tokens"]["kept"]  # the junk document was dropped
    assert len(m["shards"]) >= 2 and m["order"]["name"] == "none"
    assert m["tokenizer"]["special_tokens"] == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    assert (ds.path / "report.png").stat().st_size > 10_000
    assert not (ds.path / pack.SUMMARY).exists()


@pytest.mark.slow
def test_rows_decode_to_the_normalized_documents(corpus, built):
    docs, tok_file = corpus
    tok = T.load_tokenizer(tok_file)
    ds = built["none"]
    text = tok.decode(all_rows(ds)[:150].ravel().tolist(), skip_special_tokens=False)
    pieces = [p.replace(" ", "") for p in text.split("[SEP]")[1:-1]]  # whole documents only
    normalized = {T.cramming_normalizer().normalize_str(d.text).replace(" ", "") for d in docs}
    assert len(pieces) > 5 and all(p in normalized for p in pieces)


@pytest.mark.slow
def test_other_orders_permute_the_same_rows(built):
    base = sorted(map(bytes, all_rows(built["none"])))
    for order in ("random", "sentence-length", "unigram"):
        rows = all_rows(built[order])
        assert sorted(map(bytes, rows)) == base, order
        assert not np.array_equal(rows, all_rows(built["none"])), order


@pytest.mark.slow
def test_sentence_length_order_is_non_increasing_across_shards(corpus, built):
    ds = built["sentence-length"]
    dot = T.load_tokenizer(corpus[1]).token_to_id(".")
    dots = (all_rows(ds) == dot).sum(axis=1)
    assert len(ds.manifest["shards"]) >= 2 and dots[0] > dots[-1]
    assert np.all(np.diff(dots) <= 0)


@pytest.mark.slow
def test_unigram_order_puts_likely_rows_first(built):
    ds = built["unigram"]
    rows = all_rows(ds)
    logp = pack.unigram_logp(np.bincount(rows.ravel(), minlength=ds.vocab_size))
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
def test_rerun_is_byte_identical_and_cap_takes_the_order_prefix(corpus, built, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    docs, _ = corpus
    a = build(docs, tmp_path / "a", order="sentence-length", max_rows=500)  # tokenizer trained in-pipeline
    b = build(docs[::-1], tmp_path / "b", order="sentence-length", max_rows=500)
    names = sorted(p.name for p in a.path.iterdir())
    assert names == sorted(p.name for p in b.path.iterdir()) and "tokenizer.json" in names
    for name in names:
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes(), name
    assert len(a) == 500
    dots = (all_rows(a) == T.load_tokenizer(a.tokenizer_file).token_to_id(".")).sum(axis=1)
    assert np.all(np.diff(dots) <= 0)
    assert a.manifest["tokens"]["capped"] == a.manifest["tokens"]["packed"] - 500 * SEQ


@pytest.mark.slow
def test_within_document_packing_writes_an_attention_mask(corpus, tmp_path):
    docs, tok_file = corpus
    ds = build(docs[:60], tmp_path / "doc", tok_file, cross=False)
    rows, mask = all_rows(ds), ds.take(np.arange(len(ds)), column="attention_mask")
    np.testing.assert_array_equal(mask, rows != 0)
    assert np.all(mask[:, 0] == 1)
    ends = rows[np.arange(len(rows)), mask.sum(axis=1) - 1]
    sep = T.load_tokenizer(tok_file).token_to_id("[SEP]")
    assert (ends == sep).sum() >= 50  # every document's last row ends with its [SEP]
    assert (rows == sep).sum() == (ends == sep).sum()  # and no row holds two documents
    assert ds.manifest["tokens"]["padding"] == int((mask == 0).sum())


def test_everything_filtered_away_is_an_error(corpus, tmp_path):
    docs, tok_file = corpus
    with pytest.raises(EmptyCorpus, match="filtered away"):
        build(docs[:20], tmp_path / "none", tok_file, cutoff=0.01)
    assert not (tmp_path / "none" / "manifest.json").exists()
    assert json.loads((tmp_path / "none" / pack.SUMMARY).read_text())["shards"] == []
    with pytest.raises(EmptyCorpus, match="every document was filtered away"):  # training on nothing
        build([], tmp_path / "train", vocab=100)
