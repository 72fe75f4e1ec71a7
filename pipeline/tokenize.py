"""The tokenizer: train (or load) a WordPiece tokenizer, then encode documents in batches, dropping those
the tokenizer compresses badly (tokens >= cutoff x characters, cramming's "trash" filter).

The tokenizer is an HF `tokenizers` pipeline: the cramming normalizer (the same steps as
`pipeline.normalize`'s "cramming" preset), the Whitespace pre-tokenizer, a WordPiece model with `##`
continuations, and a post-processor that makes a single text `A [SEP]` and a pair `[CLS] A [SEP] B [SEP]`.
Special tokens have pinned ids: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4.

Why the vocabulary is learned here and not by `tokenizers.trainers.WordPieceTrainer`: that trainer breaks
ties between equally frequent pairs by ids it hands out in hash-map order, so two runs on the same text
give different ids (and, at the vocabulary cut, different tokens); shards must be byte-identical on a
rerun. `learn_vocab` runs the same algorithm (WordPieceTrainer is BPE merges over word counts with `##`
on non-initial characters, ties to the smallest pair of ids) with the `##` alphabet sorted, so it is a
function of the text.
The learned vocabulary goes into the HF WordPiece model, which does all encoding.

Beam steps: `TrainTokenizer` (a fixed-size sample of documents, the ones with the smallest hash of id, so
it does not depend on arrival order) and `Tokenize` (batched `encode_batch` in a DoFn).
"""

import heapq
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import xxhash
import zstandard
from apache_beam.metrics import Metrics
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from pipeline.document import DROPPED, Doc, Drop, EmptyCorpus
from pipeline.stats import SECONDS

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # pinned: ids 0..4 in this order
PREFIX = "##"
PRINTABLE_ASCII = "".join(map(chr, range(33, 127)))  # what the normalizer leaves, minus whitespace
DROP_REASON = "tokenize/compression"
NAMESPACE = "cramkit"
_WORDS = re.compile(r"\w+|[^\w\s]+", re.ASCII)
STATS = "stats"  # tag of the side output with (chars, tokens, zstd ratio) of every encoded document
DOCS = "docs"  # tag of the side output with the kept documents as Doc


@dataclass(frozen=True)
class TokenizerConfig:
    """`tokenizer.*` in the corpus config."""

    path: str | None = None  # an existing tokenizer.json to use instead of training one
    vocab_size: int = 32768
    min_frequency: int = 2  # a pair seen fewer times is never merged
    sample_docs: int = 50_000  # documents to train on: those with the smallest xxh64 of their id
    compression_cutoff: float = 0.25  # drop documents with tokens >= cutoff x chars; 0 turns it off
    batch_size: int = 1024  # documents per encode_batch

    def __post_init__(self):
        if self.path is None and self.vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"tokenizer.vocab_size={self.vocab_size}: must exceed the {len(SPECIAL_TOKENS)} "
                             "special tokens")
        for field in ("sample_docs", "batch_size"):
            if getattr(self, field) < 1:
                raise ValueError(f"tokenizer.{field}={getattr(self, field)}: must be a positive integer")
        if not 0 <= self.compression_cutoff:
            raise ValueError(f"tokenizer.compression_cutoff={self.compression_cutoff}: must be >= 0")


class TokenizedDoc(NamedTuple):
    """A kept document as token ids (ending with [SEP]) and its length in characters."""

    id: str
    ids: np.ndarray
    chars: int


def cramming_normalizer() -> normalizers.Normalizer:
    """NFD -> lowercase -> strip accents -> delete non-ASCII -> collapse runs of spaces."""
    return normalizers.Sequence([
        normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents(),
        normalizers.Replace(Regex(r"[^\x00-\x7F]+"), ""), normalizers.Replace(Regex(" {2,}"), " "),
    ])


def build_tokenizer(vocab: dict[str, int]) -> Tokenizer:
    """The full cramkit tokenizer around a WordPiece vocabulary (token -> id, specials at 0..4)."""
    for i, token in enumerate(SPECIAL_TOKENS):
        if vocab.get(token) != i:
            raise ValueError(f"vocabulary must map {token} to {i}, got {vocab.get(token)}")
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix=PREFIX))
    tok.normalizer = cramming_normalizer()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="$A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.decoder = decoders.WordPiece(prefix=PREFIX)
    tok.add_special_tokens(list(SPECIAL_TOKENS))
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


def learn_vocab(counts: dict[str, int], vocab_size: int, min_frequency: int = 2,
                alphabet: str = "") -> dict[str, int]:
    """WordPiece vocabulary by BPE merges over word counts, deterministically: specials, the sorted
    alphabet (characters of the words and of `alphabet`, then the same with `##`), then merged tokens
    in merge order. The most frequent pair is merged first; ties go to the pair of smallest
    (left, right) ids, as in WordPieceTrainer, whose only nondeterminism is the order of the `##`
    alphabet."""
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
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


def train_tokenizer(texts, vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """Train the cramkit tokenizer on texts; the same texts (in any order) give the same tokenizer.
    Every printable ASCII character is in the vocabulary (alone and as `##`), so normalized text
    outside the sample never becomes [UNK] (words over 100 characters still do)."""
    counts = word_counts(texts)
    if not counts:
        raise EmptyCorpus("no text to train the tokenizer on: every document was filtered away before "
                         "tokenization; check the drop counts or give tokenizer.path")
    return build_tokenizer(learn_vocab(counts, vocab_size, min_frequency, PRINTABLE_ASCII))


def load_tokenizer(path) -> Tokenizer:
    """An existing tokenizer.json; it must have [PAD] and [SEP] (rows end documents with [SEP])."""
    path = Path(path)
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:
        raise ValueError(f"{path}: not a tokenizers JSON file ({e}); give a tokenizer.json path") from e
    for token in ("[PAD]", "[SEP]"):
        if tok.token_to_id(token) is None:
            raise ValueError(f"{path}: has no {token} token; cramkit pads with [PAD] and ends documents "
                             "with [SEP]")
    return tok


def special_ids(tok: Tokenizer) -> dict[str, int]:
    """Ids the packer and the orderings need: pad, sep and the "." token."""
    return {"pad": tok.token_to_id("[PAD]"), "sep": tok.token_to_id("[SEP]"), "dot": tok.token_to_id(".")}


def encode(tok: Tokenizer, texts: list[str]) -> list[np.ndarray]:
    """Token ids of each text, [SEP]-terminated (the single-text template), as uint32 arrays."""
    return [np.array(e.ids, dtype=np.uint32) for e in tok.encode_batch(texts, add_special_tokens=True)]


def compression_keep(tokens: int, chars: int, cutoff: float) -> bool:
    """Cramming's rule: keep a document while tokens < cutoff x characters (cutoff 0: keep all)."""
    return cutoff <= 0 or tokens < cutoff * chars


def tokenizer_sha(tokenizer_json: str) -> str:
    return xxhash.xxh3_128_hexdigest(tokenizer_json.encode())


class TrainTokenizer(beam.PTransform):
    """PCollection[Doc] -> singleton PCollection[str]: the tokenizer as JSON, trained on the
    `sample_docs` documents with the smallest xxh64(id) (or read from `cfg.path`)."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg

    def expand(self, docs):
        cfg = self.cfg
        if cfg.path:
            text = load_tokenizer(cfg.path).to_str()
            return docs.pipeline | "ExistingTokenizer" >> beam.Create([text])
        return (docs
                | "HashId" >> beam.Map(lambda d: (xxhash.xxh64_intdigest(d.id.encode()), d.id, d.text))
                | "Sample" >> beam.combiners.Top.Smallest(cfg.sample_docs)
                | "Train" >> beam.Map(lambda sample: train_tokenizer(
                    [t for _, _, t in sample], cfg.vocab_size, cfg.min_frequency).to_str()))


class _EncodeFn(beam.DoFn):
    def __init__(self, cutoff: float):
        self.cutoff = cutoff
        self._tok, self._key = None, None
        self._dropped = Metrics.counter(NAMESPACE, DROP_REASON)

    def process(self, batch: list[Doc], tokenizer_json: str):
        start = time.perf_counter()
        if self._key != tokenizer_sha(tokenizer_json):
            self._tok, self._key = Tokenizer.from_str(tokenizer_json), tokenizer_sha(tokenizer_json)
        batch = sorted(batch)
        cctx = zstandard.ZstdCompressor(level=3)
        out = []
        for doc, ids in zip(batch, encode(self._tok, [d.text for d in batch]), strict=True):
            chars, raw = len(doc.text), doc.text.encode()
            ratio = len(cctx.compress(raw)) / len(raw) if raw else 0.0
            out.append(beam.pvalue.TaggedOutput(STATS, (chars, len(ids), ratio)))
            if compression_keep(len(ids), chars, self.cutoff):
                out += [TokenizedDoc(doc.id, ids, chars), beam.pvalue.TaggedOutput(DOCS, doc)]
            else:
                self._dropped.inc()
                out.append(beam.pvalue.TaggedOutput(DROPPED, Drop(doc.id, DROP_REASON, chars)))
        out.append(beam.pvalue.TaggedOutput(SECONDS, ("tokenize", time.perf_counter() - start)))
        yield from out


class Tokenize(beam.PTransform):
    """PCollection[Doc] -> (PCollection[TokenizedDoc], PCollection[Drop]), encoding in batches of
    `batch_size`. Also set by expand: `docs` (the kept documents as Doc, for the stage counts),
    `stats` ((chars, tokens, zstd ratio) of every encoded document, for the report) and `seconds`."""

    def __init__(self, cfg: TokenizerConfig, tokenizer_json):
        super().__init__()
        self.cfg, self.tokenizer_json = cfg, tokenizer_json
        self.docs = self.stats = self.seconds = None

    def expand(self, docs):
        n = self.cfg.batch_size
        out = (docs
               | "Batch" >> beam.BatchElements(min_batch_size=n, max_batch_size=n)
               | "Encode" >> beam.ParDo(_EncodeFn(self.cfg.compression_cutoff),
                                        beam.pvalue.AsSingleton(self.tokenizer_json))
               .with_outputs(DROPPED, STATS, DOCS, SECONDS, main="kept"))
        self.docs, self.stats, self.seconds = out[DOCS], out[STATS], out[SECONDS]
        return out.kept, out[DROPPED]
