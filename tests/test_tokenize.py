"""Tokenizer training (deterministic, equal to HF's WordPieceTrainer), the pinned special tokens and
templates, the normalizer, and the tokenizer-compression filter as a Beam stage."""

import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import staged
from tokenizers import Tokenizer, trainers

from model import tokenizer as model_tokenizer
from pipeline.cleaning.normalize import cramming
from pipeline.tokens import tokenize as T
from pipeline.tokens.encode import Encoder, lengths_file, tokens_file

SHARED = Path(os.environ.get("CRAMKIT_SHARED_DATA", Path(__file__).resolve().parents[1] / "../shared/data"))


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


@pytest.fixture(scope="module")
def inaugural():
    folder = SHARED / "text" / "nltk_inaugural"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (set CRAMKIT_SHARED_DATA)")
    return [read_text(p) for p in sorted(folder.iterdir())]


def test_learned_vocab_equals_hf_wordpiece_trainer(inaugural):
    """Same algorithm as WordPieceTrainer: the same tokens up to HF's own tie-breaking, which varies
    from run to run (four HF runs on this text differed from each other by up to 8 of 3000 tokens)."""
    texts = inaugural[:30]
    mine = T.learn_vocab(T.word_counts(texts), 3000, min_frequency=2)
    hf = T.build_tokenizer({t: i for i, t in enumerate(T.SPECIAL_TOKENS)})
    hf.train_from_iterator(texts, trainers.WordPieceTrainer(
        vocab_size=3000, min_frequency=2, special_tokens=list(T.SPECIAL_TOKENS),
        continuing_subword_prefix="##", show_progress=False))
    assert len(set(mine) ^ set(hf.get_vocab())) <= 12
    assert len(mine) == 3000 and mine == T.learn_vocab(T.word_counts(texts[::-1]), 3000, min_frequency=2)


def test_training_is_deterministic_and_specials_pinned(inaugural):
    texts = inaugural[:20]
    a = T.train_tokenizer(texts, 1500)
    shuffled = texts[:]
    random.Random(1).shuffle(shuffled)
    b = T.train_tokenizer(shuffled, 1500)
    assert a.to_str() == b.to_str()
    assert [a.token_to_id(t) for t in T.SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert a.get_vocab_size() == 1500
    unseen = "zq~|{} x^y 7`8"  # characters that are rare or absent in the training text
    assert "[UNK]" not in a.encode(unseen).tokens
    assert a.decode(a.encode(unseen).ids).replace(" ", "") == unseen.replace(" ", "")


def test_templates_and_decode(inaugural):
    tok = T.train_tokenizer(inaugural[:20], 1500)
    single = tok.encode("The people of the United States.")
    assert single.tokens[-1] == "[SEP]" and "[CLS]" not in single.tokens
    pair = tok.encode("Fellow citizens.", "We the people.")
    assert pair.tokens[0] == "[CLS]" and pair.tokens.count("[SEP]") == 2
    assert pair.tokens[pair.tokens.index("[SEP]") + 1] == "we"
    assert tok.decode(single.ids) == "the people of the united states."


def test_normalizer_steps():
    norm = T.cramming_normalizer()
    assert norm.normalize_str("Ça  Va?  Déjà vu") == "ca va? deja vu"
    assert norm.normalize_str("naïve ☃ café — Ω") == "naive cafe "  # non-ASCII deleted, spaces collapsed
    assert norm.normalize_str("line\nbreak\ttab") == "line\nbreak\ttab"


def test_normalizer_matches_pipeline_normalize(inaugural):
    """The tokenizer's HF normalizer and the pipeline's cramming preset are the same function."""
    normalize = pytest.importorskip("pipeline.cleaning.normalize")
    norm = T.cramming_normalizer()
    rng = random.Random(0)
    texts = inaugural[:5] + ["İstanbul ǅ ß ﬁ Ω Σσς ÅÆØ ĳ \u212a e\u0301 ᾈ Ⅻ ⓐ Ａ 𝐀 \u00a0x  y\t\tz\r\n ``q''"]
    texts += ["".join(chr(rng.randrange(0, 0x3000)) for _ in range(30)) for _ in range(2000)]
    for text in texts:
        assert norm.normalize_str(text) == normalize.cramming(text), repr(text[:80])


def test_compression_rule_is_strict_at_the_cutoff():
    assert T.compression_keep(24, 100, 0.25)
    assert not T.compression_keep(25, 100, 0.25)
    assert T.compression_keep(1000, 10, 0)


def test_load_tokenizer_and_packing_ids_name_what_is_missing(tmp_path, inaugural):
    tok = Tokenizer.from_str(T.train_tokenizer(inaugural[:3], 300).to_str().replace('"[SEP]"', '"[XSEP]"'))
    with pytest.raises(ValueError, match=r"no '\[SEP\]' token.*pack.document_end"):
        T.packing_ids(tok, "mlm")
    assert T.packing_ids(tok, "mlm", document_end="[XSEP]")["end"] == 3
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ValueError, match="junk.json"):
        model_tokenizer.load(tmp_path / "junk.json")


def test_clm_bpe_tokenizer_pins_specials_and_round_trips_bytes(inaugural):
    tok = T.train_tokenizer(inaugural[:10], 1000, kind="bpe", objective="clm")
    assert [tok.token_to_id(t) for t in ("<|pad|>", "<|unk|>", "<|endoftext|>")] == [0, 1, 2]
    text = "Fellow-Citizens: naïve café — 42 % ünïcödé"
    ids = tok.encode(text, add_special_tokens=False).ids
    assert tok.decode(ids) == text  # byte-level: nothing is unknown
    assert tok.encode("a b").ids[-1] == 2 and tok.get_vocab_size() == 1000


def test_bpe_training_is_the_same_in_fresh_interpreters(tmp_path, inaugural):
    import subprocess
    import sys

    (tmp_path / "texts.json").write_text(__import__("json").dumps(inaugural[:20]))
    code = ("import json, sys; from pipeline.tokens import tokenize as T; "
            "print(T.train_tokenizer(json.load(open(sys.argv[1])), 2000, kind='bpe', objective='clm').to_str())")
    runs = {subprocess.run([sys.executable, "-c", code, str(tmp_path / "texts.json")], capture_output=True, text=True,
                           env={**__import__("os").environ, "PYTHONHASHSEED": seed}, check=True).stdout
            for seed in ("1", "2", "3")}
    assert len(runs) == 1


def test_encode_stage_drops_badly_compressed_documents(inaugural, tmp_path):
    prose = [" ".join(t.split()[:300]) for t in inaugural[:6]]
    junk = " ".join(np.random.default_rng(0).choice(list("qxz0123456789#%&"), 4000))
    cfg, plan, _, scans = staged(tmp_path, prose + [junk],
                                 overrides=["filters.enabled=false", "tokenizer.compression_cutoff=0.3"])
    tok = T.train_tokenizer(inaugural[:20], 2000)
    expected = T.encode(tok, [cramming(p) for p in prose], tok.token_to_id("[SEP]"))
    assert all(len(ids) < 0.3 * len(p) for p, ids in zip(prose, expected, strict=True))
    enc = Encoder(cfg, plan, T.Vocab.of(tok.to_str(), cfg))(scans[0], [])
    assert (enc.docs, enc.tokens) == (6, sum(map(len, expected)))
    assert enc.tally.dropped == {"tokenize/compression": [1, len(cramming(junk))]}
    tokens = np.fromfile(tokens_file(plan, 0), np.uint16)
    np.testing.assert_array_equal(tokens, np.concatenate(expected))
    np.testing.assert_array_equal(np.fromfile(lengths_file(plan, 0), np.uint32), [len(e) for e in expected])
    assert all(e[-1] == tok.token_to_id("[SEP]") for e in expected)
    assert sum(enc.hists["doc_chars"]) == 7 and enc.counts.sum() == enc.tokens


def test_vocab_record_pickles_as_json_and_parses_once_per_process(inaugural):
    from pipeline import config

    cfg = config.load("default", ["pack.cross_documents=false"])
    tok = T.train_tokenizer(inaugural[:20], 2000)
    vocab = T.Vocab.of(tok.to_str(), cfg)
    ids = T.packing_ids(tok, "mlm")
    assert (vocab.size, vocab.end, vocab.pad, vocab.dot) == (tok.get_vocab_size(), ids["end"], ids["pad"], ids["dot"])
    assert vocab.specials == {t: i for i, t in enumerate(("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"))}
    state = pickle.dumps(vocab)
    assert b"tokenizers" not in state and len(state) < len(vocab.json) + 500  # the JSON, not the parsed object
    again = pickle.loads(state)
    assert again == vocab and "tokenizer" not in again.__dict__
    assert again.tokenizer is again.tokenizer  # parsed at first use, then kept
    assert again.tokenizer.encode("We the people.").ids == tok.encode("We the people.").ids
