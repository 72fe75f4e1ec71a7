"""Shards for other pretraining: a causal-LM objective with a byte-level BPE tokenizer, an existing
tokenizer.json used as is, and document boundaries as a segment_ids column."""

import json

import numpy as np
import pyarrow as pa
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from pipeline.__main__ import main
from pipeline.tokens.shards import ShardSet


@pytest.fixture(scope="module")
def prose(tmp_path_factory, shared_text):
    """Paragraph documents of 15 inaugural addresses as JSON Lines."""
    texts = []
    for path in sorted((shared_text / "nltk_inaugural").iterdir())[:15]:
        raw = path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
        texts += [" ".join(p.split()) for p in raw.split("\n\n") if len(p.split()) >= 20]
    folder = tmp_path_factory.mktemp("prose")
    (folder / "paras.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return folder, texts


def build(inputs, out, *overrides):
    assert main(["--input", str(inputs), "--output", str(out), "--created", "0", "dedup.near=false",
                 "shards.rows_per_shard=200", *overrides]) == 0
    return ShardSet(out, verify=True)


@pytest.mark.slow
def test_clm_shards_with_bpe_join_documents_by_eos(prose, tmp_path):
    inputs, texts = prose
    ds = build(inputs, tmp_path / "clm", "objective=clm", "seq_len=512", "tokenizer.kind=bpe",
               "tokenizer.vocab_size=2000", "normalize.preset=cased", "order.name=none",
               "tokenizer.compression_cutoff=0")
    m = ds.manifest
    assert m["objective"] == "clm" and m["seq_len"] == 512 and m["format_version"] == 2
    assert m["packing"]["document_end"] == {"token": "<|endoftext|>", "id": 2}
    assert m["tokenizer"]["special_tokens"] == {"<|pad|>": 0, "<|unk|>": 1, "<|endoftext|>": 2}
    datasets = pytest.importorskip("datasets")
    first = datasets.Dataset.from_file(str(ds.path / m["shards"][0]["file"]))
    assert len(first[0]["input_ids"]) == 512
    tok = Tokenizer.from_file(str(ds.tokenizer_file))
    assert tok.token_to_id("[CLS]") is None and tok.token_to_id("[SEP]") is None
    stream = ds.take(np.arange(len(ds))).ravel()
    pieces = tok.decode(stream.tolist(), skip_special_tokens=False).split("<|endoftext|>")
    assert pieces[0] == texts[0] and pieces[1] == texts[1]  # cased text, documents joined by EOS
    assert (stream == 2).sum() == len(pieces) - 1 >= len(texts) * 0.5


@pytest.mark.slow
def test_an_existing_tokenizer_is_used_as_is(prose, tmp_path):
    inputs, texts = prose
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=1500, special_tokens=["<unk>", "</s>", "<pad>"],
                                                       show_progress=False))
    path = tmp_path / "mine.json"
    tok.save(str(path))
    ds = build(inputs, tmp_path / "mine", "objective=clm", "seq_len=64", f"tokenizer.path={path}",
               "pack.document_end=</s>", "order.name=none", "normalize.preset=none", "filters.enabled=false",
               "tokenizer.compression_cutoff=0")
    assert ds.tokenizer_file.read_bytes() == path.read_bytes()
    assert ds.manifest["packing"]["document_end"] == {"token": "</s>", "id": 1}
    expected = [tok.encode(t).ids + [1] for t in texts[:3]]
    np.testing.assert_array_equal(ds.take(np.arange(len(ds))).ravel()[: sum(map(len, expected))],
                                  np.concatenate(expected))
    # without a document-end token of its own, the command stops before the pipeline and says what to set
    out = tmp_path / "none"
    assert main(["--input", str(inputs), "--output", str(out), "objective=clm", f"tokenizer.path={path}"]) == 2
    assert not out.exists()


@pytest.mark.slow
def test_segment_ids_count_documents_within_each_row(prose, tmp_path):
    inputs, _ = prose
    ds = build(inputs, tmp_path / "seg", "seq_len=64", "pack.segments=true", "tokenizer.vocab_size=2000",
               "order.name=random")
    assert ds.manifest["columns"] == ["input_ids", "segment_ids"]
    rows = ds.take(np.arange(len(ds)))
    seg = ds.take(np.arange(len(ds)), column="segment_ids")
    ends = rows == ds.manifest["packing"]["document_end"]["id"]
    assert np.all(seg[:, 0] == 0)
    np.testing.assert_array_equal(seg[:, 1:], np.cumsum(ends[:, :-1], axis=1))  # a new document after each end
    assert seg.max() > 1
    table = pa.ipc.open_stream(pa.memory_map(str(ds.path / ds.manifest["shards"][0]["file"]))).read_all()
    assert table.schema.field("segment_ids").type == pa.list_(pa.uint16(), 64)
