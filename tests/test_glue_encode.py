"""Model inputs: identical to HF tokenizers' pair template + longest-first truncation; per-batch padding."""

import json
import random

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from tokenizers.processors import TemplateProcessing

from glueval import data
from glueval.encode import TokenizerError, collate, encode, load_tokenizer

WORDS = ("the a film story was great awful dull witty charming bleak and of to is it actors plot ending music "
         "scenes long short funny sad people love hate watch again never always unbelievably").split()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A folder holding only a tokenizer.json (enough for the encoder)."""
    rng = random.Random(0)
    folder = tmp_path_factory.mktemp("tok")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    texts = [" ".join(rng.choices(WORDS, k=12)) for _ in range(300)]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(
        vocab_size=120, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tok.save(str(folder / "tokenizer.json"))
    return folder


def _pairs(n: int, seed: int) -> data.Split:
    rng = random.Random(seed)
    split = data.Split(source="x", text_b=[])
    for _ in range(n):
        la = rng.randint(1, 40)
        lb = la if rng.random() < 0.2 else rng.randint(1, 40)  # some ties
        split.add(" ".join(rng.choices(WORDS, k=la)), " ".join(rng.choices(WORDS, k=lb)), rng.randint(0, 1))
    return split


@pytest.mark.parametrize("max_length", [8, 9, 16, 17, 33, 128])
def test_pairs_match_hf_template_and_longest_first(ckpt, max_length):
    tok = load_tokenizer(ckpt, 10_000)
    ref = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    ref.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                            special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    ref.enable_truncation(max_length, strategy="longest_first")
    split = _pairs(300, max_length)
    enc = encode(tok, split, max_length, regression=False)
    expect = ref.encode_batch(list(zip(split.text_a, split.text_b, strict=True)))
    assert [e.ids for e in expect] == [x.tolist() for x in enc.ids]
    assert [e.type_ids for e in expect] == [x.tolist() for x in enc.types]
    single = data.Split(source="y")
    for a in split.text_a:
        single.add(a, None, 0)
    enc1 = encode(tok, single, max_length, regression=False)
    assert [e.ids for e in ref.encode_batch(single.text_a)] == [x.tolist() for x in enc1.ids]
    assert all(not x.any() for x in enc1.types)


def test_collate_pads_each_batch_to_a_multiple_of_8(ckpt):
    tok = load_tokenizer(ckpt, 10_000)
    pad = tok.token_to_id("[PAD]")
    split = _pairs(50, 1)
    enc = encode(tok, split, 128, regression=False)
    lengths = enc.lengths()
    for idx in ([0], [3, 7, 9], list(range(50))):
        batch = collate(enc, idx, pad, 8)
        width = max(lengths[i] for i in idx)
        assert batch["input_ids"].shape == (len(idx), -(-width // 8) * 8)
        for r, i in enumerate(idx):
            n = lengths[i]
            assert batch["input_ids"][r, :n].tolist() == enc.ids[i].tolist()
            assert (batch["input_ids"][r, n:] == pad).all() and batch["attention_mask"][r].sum() == n
            assert batch["token_type_ids"][r, :n].tolist() == enc.types[i].tolist()
        assert batch["labels"].tolist() == [split.labels[i] for i in idx]
    stsb = data.Split(source="z", text_b=["b"], text_a=["a"], labels=[3.4])
    assert collate(encode(tok, stsb, 16, regression=True), [0], pad, 8)["labels"].dtype.is_floating_point


def test_tokenizer_errors(ckpt, tmp_path):
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        load_tokenizer(tmp_path, 100)
    size = Tokenizer.from_file(str(ckpt / "tokenizer.json")).get_vocab_size()
    with pytest.raises(TokenizerError, match=f"tokenizer has {size} tokens but the model's embedding has 64 rows"):
        load_tokenizer(ckpt, 64)
    spec = json.loads((ckpt / "tokenizer.json").read_text())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] != "[SEP]"]
    del spec["model"]["vocab"]["[SEP]"]
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(TokenizerError, match=r"special token\(s\) \['\[SEP\]'\] missing"):
        load_tokenizer(tmp_path, 10_000)
