"""The tokenizer: train (or load) one, then the ids the packer needs from it.

Objectives (`objective` in the corpus config) fix the special tokens, which a trained tokenizer pins at
ids 0, 1, ... in this order, the document-end token every document is packed with, and the templates:
- mlm (BERT-style, the default): [PAD] [UNK] [CLS] [SEP] [MASK]; a document ends with [SEP]; a single
  text is `A [SEP]`, a pair `[CLS] A [SEP] B [SEP]`;
- clm (GPT-style): <|pad|> <|unk|> <|endoftext|>; documents are joined by <|endoftext|>, no [CLS]; a single
  text is `A <|endoftext|>`.

Kinds (`tokenizer.kind`):
- wordpiece: the cramming normalizer (the same steps as `pipeline.cleaning.normalize`'s "cramming" preset),
  the Whitespace pre-tokenizer and a WordPiece model with `##` continuations. Learned here, not by
  `tokenizers.trainers.WordPieceTrainer`: that trainer breaks ties between equally frequent pairs by ids
  it hands out in hash-map order, so two runs on the same text give different ids, and shards must be
  byte-identical on a rerun. `learn_vocab` runs the same algorithm (BPE merges over word counts with `##`
  on non-initial characters, ties to the smallest pair of ids) with the `##` alphabet sorted.
- bpe: byte-level BPE (GPT-2 style: no normalizer, every byte in the alphabet, so nothing is ever
  unknown), trained by `tokenizers.trainers.BpeTrainer`, whose output is the same on every run (a test
  trains it in fresh interpreters with different hash seeds and compares).
Or `tokenizer.path`: any existing tokenizer.json, used as is; the packer then takes the document-end and
pad tokens from it (`pack.document_end`, `pack.pad`; by default the objective's).

The sample a tokenizer learns from is bounded in characters: the clean documents (after dedup) of the
scan's tokenizer sample, taken in the order of their sample hash (pipeline.graph.plan) until `sample_chars`,
so it is the same on every runner. The encoding stage itself is pipeline.tokens.encode; reading a tokenizer
file, the special tokens and the check against a model's vocabulary are model.tokenizer, shared with the
trainer, GLUE and export.
"""

import functools
import heapq
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from configs import setting
from model import tokenizer
from model.tokenizer import SPECIAL_TOKENS
from pipeline.document import EmptyCorpus
from pipeline.duplicates.dedup import losers_of
from pipeline.files import storage
from pipeline.graph import docstore
from pipeline.graph.plan import sample_hash
from pipeline.tokens import shards


@dataclass(frozen=True)
class Objective:
    specials: tuple  # pinned at ids 0.. in a trained tokenizer
    pad: str
    unk: str
    document_end: str
    single: str  # post-processor templates
    pair: str


OBJECTIVES = {
    "mlm": Objective(SPECIAL_TOKENS, "[PAD]", "[UNK]", "[SEP]",
                     "$A [SEP]", "[CLS] $A [SEP] $B [SEP]"),
    "clm": Objective(("<|pad|>", "<|unk|>", "<|endoftext|>"), "<|pad|>", "<|unk|>", "<|endoftext|>",
                     "$A <|endoftext|>", "$A <|endoftext|> $B <|endoftext|>"),
}
KINDS = ("wordpiece", "bpe")
PREFIX = "##"
PRINTABLE_ASCII = "".join(map(chr, range(33, 127)))  # what the normalizer leaves, minus whitespace
DROP_REASON = "tokenize/compression"
_WORDS = re.compile(r"\w+|[^\w\s]+", re.ASCII)


@dataclass(frozen=True)
class TokenizerConfig:
    """`tokenizer.*` in the corpus config."""

    kind: str = setting("wordpiece | bpe (byte-level)", "wordpiece")
    path: str | None = setting("an existing tokenizer.json to use instead of training one; null: train one",
                               None)
    vocab_size: int = setting("tokens in the trained vocabulary", 32768)
    min_frequency: int = setting("a pair seen fewer times is never merged", 2)
    sample_chars: int = setting("characters of clean documents to train on (sampled by id hash)", 25_000_000)
    compression_cutoff: float = setting("drop documents with tokens >= cutoff x chars; 0 turns it off", 0.25)
    batch_size: int = setting("documents per encode_batch", 1024)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"tokenizer.kind={self.kind!r}: choose one of {', '.join(KINDS)}")
        if self.path is None and self.vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"tokenizer.vocab_size={self.vocab_size}: must exceed the {len(SPECIAL_TOKENS)} "
                             "special tokens")
        for field in ("sample_chars", "batch_size"):
            if getattr(self, field) < 1:
                raise ValueError(f"tokenizer.{field}={getattr(self, field)}: must be a positive integer")
        if not 0 <= self.compression_cutoff:
            raise ValueError(f"tokenizer.compression_cutoff={self.compression_cutoff}: must be >= 0")


def cramming_normalizer() -> normalizers.Normalizer:
    """NFD -> lowercase -> strip accents -> delete non-ASCII -> collapse runs of spaces."""
    return normalizers.Sequence([
        normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents(),
        normalizers.Replace(Regex(r"[^\x00-\x7F]+"), ""), normalizers.Replace(Regex(" {2,}"), " "),
    ])


def _templates(tok: Tokenizer, objective: Objective) -> None:
    used = sorted({t for t in (objective.single + " " + objective.pair).split() if not t.startswith("$")})
    tok.post_processor = processors.TemplateProcessing(
        single=objective.single, pair=objective.pair, special_tokens=[(t, tok.token_to_id(t)) for t in used])


def build_tokenizer(vocab: dict[str, int], objective: Objective = OBJECTIVES["mlm"]) -> Tokenizer:
    """The cramkit WordPiece tokenizer around a vocabulary (token -> id, the objective's specials first)."""
    for i, token in enumerate(objective.specials):
        if vocab.get(token) != i:
            raise ValueError(f"vocabulary must map {token} to {i}, got {vocab.get(token)}")
    tok = Tokenizer(models.WordPiece(vocab, unk_token=objective.unk, continuing_subword_prefix=PREFIX))
    tok.normalizer = cramming_normalizer()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    _templates(tok, objective)
    tok.decoder = decoders.WordPiece(prefix=PREFIX)
    tok.add_special_tokens(list(objective.specials))
    return tok


def word_counts(texts) -> Counter:
    """How often each word occurs in the normalized texts. Words are split as the Whitespace
    pre-tokenizer splits them (`\\w+|[^\\w\\s]+`; the normalized text is ASCII, where Python's ASCII
    classes equal the tokenizer's), which is 5x faster than calling it from Python."""
    normalizer = cramming_normalizer()
    counts = Counter()
    for text in texts:
        counts.update(_WORDS.findall(normalizer.normalize_str(text)))
    return counts


def learn_vocab(counts: dict[str, int], vocab_size: int, min_frequency: int = 2, alphabet: str = "",
                specials: tuple = SPECIAL_TOKENS) -> dict[str, int]:
    """WordPiece vocabulary by BPE merges over word counts, deterministically: specials, the sorted
    alphabet (characters of the words and of `alphabet`, then the same with `##`), then merged tokens
    in merge order. The most frequent pair is merged first; ties go to the pair of smallest
    (left, right) ids, as in WordPieceTrainer, whose only nondeterminism is the order of the `##`
    alphabet."""
    vocab = {t: i for i, t in enumerate(specials)}
    words = sorted(counts)
    freq = [counts[w] for w in words]
    alphabet = (sorted(set(alphabet) | {c for w in words for c in w})
                + sorted({PREFIX + c for c in alphabet} | {PREFIX + c for w in words for c in w[1:]}))
    for s in alphabet:
        vocab.setdefault(s, len(vocab))
    names = list(vocab)
    seqs = [[vocab[w[0]]] + [vocab[PREFIX + c] for c in w[1:]] for w in words]
    pairs: dict[tuple[int, int], int] = Counter()
    where: dict[tuple[int, int], set[int]] = {}
    for wi, seq in enumerate(seqs):
        for p in zip(seq, seq[1:], strict=False):
            pairs[p] += freq[wi]
            where.setdefault(p, set()).add(wi)
    heap = [(-c, a, b) for (a, b), c in pairs.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        if pairs.get((a, b), 0) != -neg:
            continue  # stale entry: the count changed since it was pushed
        if -neg < min_frequency:
            break
        right = names[b][len(PREFIX):] if names[b].startswith(PREFIX) else names[b]
        merged = names[a] + right
        if merged not in vocab:
            vocab[merged] = len(vocab)
            names.append(merged)
        new = vocab[merged]
        changed = set()
        for wi in where.pop((a, b), ()):  # the order of words and pushes does not change the result
            seq, f = seqs[wi], freq[wi]
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and seq[i] == a and seq[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            if len(out) == len(seq):
                continue  # the word lost this pair to an earlier merge
            seqs[wi] = out
            delta = Counter(zip(out, out[1:], strict=False))
            delta.subtract(zip(seq, seq[1:], strict=False))
            for p, d in delta.items():
                if d:
                    pairs[p] += d * f
                    changed.add(p)
                    if d > 0:
                        where.setdefault(p, set()).add(wi)
        for p in changed:
            if pairs[p] > 0:
                heapq.heappush(heap, (-pairs[p], *p))
            else:
                pairs.pop(p)
    return vocab


def train_tokenizer(texts, vocab_size: int, min_frequency: int = 2, kind: str = "wordpiece",
                    objective: str = "mlm") -> Tokenizer:
    """Train a cramkit tokenizer on texts; the same texts (in any order) give the same tokenizer.
    WordPiece: every printable ASCII character is in the vocabulary (alone and as `##`), so normalized
    text outside the sample never becomes unknown (words over 100 characters still do)."""
    obj = OBJECTIVES[objective]
    if kind == "bpe":
        texts = list(texts)
        if not any(t.strip() for t in texts):
            counts = None
        else:
            tok = Tokenizer(models.BPE())
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            tok.decoder = decoders.ByteLevel()
            trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                          special_tokens=list(obj.specials),
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
            tok.train_from_iterator(sorted(texts), trainer)
            _templates(tok, obj)
            return tok
    else:
        counts = word_counts(texts)
    if not counts:
        raise EmptyCorpus("no text to train the tokenizer on: every document was filtered away before "
                          "tokenization; check the drop counts or give tokenizer.path")
    return build_tokenizer(learn_vocab(counts, vocab_size, min_frequency, PRINTABLE_ASCII, obj.specials), obj)


def packing_ids(tok: Tokenizer, objective: str, document_end: str | None = None, pad: str | None = None) -> dict:
    """The ids the packer and the orderings need: "end" (appended to every document), "pad" (None when
    the tokenizer has no such token), "dot" (the "." token, None when absent). Raises ValueError naming
    a missing document-end token."""
    obj = OBJECTIVES[objective]
    end_token, pad_token = document_end or obj.document_end, pad or obj.pad
    end = tok.token_to_id(end_token)
    if end is None:
        raise ValueError(f"the tokenizer has no {end_token!r} token to end documents with; set "
                         "pack.document_end to one of its tokens")
    dot = tok.token_to_id(".")
    if dot is None:  # byte-level BPE spells "." as itself; WordPiece too
        dot = tok.token_to_id("Ġ.")
    return {"end": end, "end_token": end_token, "pad": tok.token_to_id(pad_token), "pad_token": pad_token,
            "dot": dot}


@dataclass(frozen=True)
class Vocab:
    """The tokenizer stage's one record, which every later stage receives: the tokenizer JSON, its size
    (token ids 0..size-1) and the packing ids (`packing_ids`). It pickles as these values only (Beam side
    inputs, workers); `tokenizer`, the parsed Tokenizer, is parsed at its first use in each process."""

    json: str
    size: int
    end: int  # appended to every document
    end_token: str
    pad: int | None  # None: the tokenizer has no such token
    pad_token: str
    dot: int | None  # the "." token (the sentence-length order), None when absent
    specials: dict  # the special tokens: content -> id, by id (the manifest's special_tokens)

    @classmethod
    def of(cls, text: str, cfg, source: str = "the corpus tokenizer") -> "Vocab":
        """The record of tokenizer JSON `text` (read from `source`, named in errors) for corpus config
        `cfg` (its objective and pack.*)."""
        tok = tokenizer.parse(text, source)
        specials = {t.content: i for i, t in sorted(tok.get_added_tokens_decoder().items()) if t.special}
        vocab = cls(text, tokenizer.vocab_size(tok), **packing_ids(tok, cfg.objective, cfg.pack.document_end,
                                                                    cfg.pack.pad), specials=specials)
        vocab.__dict__["tokenizer"] = tok
        return vocab

    @functools.cached_property
    def tokenizer(self) -> Tokenizer:
        return tokenizer.parse(self.json, "the corpus tokenizer")

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "tokenizer"}


def encode(tok: Tokenizer, texts: list[str], end: int) -> list[np.ndarray]:
    """Token ids of each text followed by the document-end id `end`, as uint32 arrays."""
    return [np.array(e.ids + [end], dtype=np.uint32) for e in tok.encode_batch(texts, add_special_tokens=False)]


def compression_keep(tokens: int, chars: int, cutoff: float) -> bool:
    """Cramming's rule: keep a document while tokens < cutoff x characters (cutoff 0: keep all)."""
    return cutoff <= 0 or tokens < cutoff * chars


def stage(cfg, plan, scans, decisions) -> Vocab | None:
    """The tokenizer stage of corpus config `cfg`: its record (`train_from_sample`), None when no document
    is left to learn from."""
    text = train_from_sample(cfg.tokenizer, cfg.objective, plan, scans, decisions)
    return None if text is None else Vocab.of(text, cfg)


def train_from_sample(cfg: TokenizerConfig, objective: str, plan, scans, decisions) -> str | None:
    """The tokenizer as JSON, written to the output as tokenizer.json: `cfg.path` as is, or trained on
    the clean documents of the scan's sample in sample-hash order, up to `cfg.sample_chars` characters.
    None when no document is left to learn from."""
    if cfg.path:
        text = storage.read_text(cfg.path)  # as is: the launcher has checked that it loads
    else:
        picked, chars = [], 0  # a max-heap of (-sample hash, text): the smallest hashes, about sample_chars
        for s in scans:
            gone = losers_of(s.unit, decisions)
            for ids, _, texts in docstore.batches(plan.unit_file(s.unit, "sample.arrow"), s.sample):
                keep = ~np.isin(ids, gone)
                for h, t in zip(sample_hash(ids[keep]).tolist(), (t for t, k in zip(texts, keep, strict=True) if k),
                                strict=True):
                    heapq.heappush(picked, (-h, t))
                    chars += len(t)
                    while chars - len(picked[0][1]) >= cfg.sample_chars:
                        chars -= len(heapq.heappop(picked)[1])
        texts = [t for _, t in sorted(picked, reverse=True)]
        if not texts:
            return None
        text = train_tokenizer(texts, cfg.vocab_size, cfg.min_frequency, cfg.kind, objective).to_str()
    storage.write_text(storage.join(plan.out, shards.TOKENIZER), text)
    return text
