"""A word bigram language model of a reference text: interpolated Kneser-Ney over a bounded vocabulary and
a bounded set of stored bigrams, trained and scored vectorized (word ids and bigram keys are looked up with
searchsorted in sorted tables). pipeline.cleaning.quality reads its mean log-probability and mean PMI per
document."""

from __future__ import annotations

import itertools
import tempfile
from collections import Counter

import numpy as np

from pipeline.files import storage


class BigramLM:
    """Interpolated Kneser-Ney word bigrams. Word ids: 0 = document start, 1 = unknown, 2.. = vocab. An
    unknown word costs the unknown word's probability spread over the word types it stood for in
    training (`log_unknown_types`), so text made of words the reference never used scores low."""

    def __init__(self, vocab: list[str], keys: np.ndarray, logp: np.ndarray, log_backoff: np.ndarray,
                 log_unigram: np.ndarray, log_unknown_types: float, log_frequency: np.ndarray):
        self.vocab, self.keys, self.logp, self.log_frequency = vocab, keys, logp, log_frequency
        self.log_backoff, self.log_unigram, self.log_unknown_types = log_backoff, log_unigram, log_unknown_types
        self.size = len(vocab) + 2
        # Word ids by Python's string hash (this process's): a sorted table of the vocabulary's hashes.
        hashes = np.fromiter(map(hash, vocab), np.int64, len(vocab))
        self.order = np.argsort(hashes, kind="stable")
        self.hashes = hashes[self.order]

    @classmethod
    def train(cls, docs: list[list[str]], cfg) -> BigramLM:
        counts = Counter(w for doc in docs for w in doc)
        vocab = sorted((w for w, c in counts.items() if c >= 2), key=lambda w: (-counts[w], w))[: cfg.lm_vocab]
        unknown_types = max(len(counts) - len(vocab), 1)
        lm = cls(vocab, np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0), np.zeros(0), 0.0, np.zeros(0))
        v, d = lm.size, cfg.lm_discount
        keys, c = np.unique(lm._bigram_keys(docs)[0], return_counts=True)
        prev, cur = keys // v, keys % v
        history = np.bincount(prev, weights=c, minlength=v)  # c(v)
        followers = np.bincount(prev, minlength=v)  # N1+(v, .)
        cont = np.bincount(cur, minlength=v).astype(np.float64)  # N1+(., w)
        cont[0] = 0.0  # the document start is never predicted
        unigram = 0.99 * cont / max(cont.sum(), 1) + 0.01 / (v - 1)  # KN continuation, a little uniform
        unigram[0] = 1.0
        frequency = np.bincount(cur, weights=c, minlength=v) + 0.5  # plain word frequencies, for the PMI
        frequency = frequency / frequency.sum()
        backoff = np.where(history > 0, d * followers / np.maximum(history, 1), 1.0)
        prob = (c - d) / history[prev] + backoff[prev] * unigram[cur]
        if len(keys) > cfg.lm_bigrams:  # keep the most frequent bigrams, ties by key
            top = np.sort(np.lexsort((keys, -c))[: cfg.lm_bigrams])
            keys, prob = keys[top], prob[top]
        return cls(vocab, keys, np.log(prob).astype(np.float32), np.log(backoff).astype(np.float32),
                   np.log(unigram).astype(np.float32), float(np.log(unknown_types)),
                   np.log(frequency).astype(np.float32))

    def _bigram_keys(self, docs: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """The bigram keys prev * size + cur of all documents, one per word, and each document's word count."""
        lengths = np.fromiter(map(len, docs), np.int64, len(docs))
        h = np.fromiter(map(hash, itertools.chain.from_iterable(docs)), np.int64, int(lengths.sum()))
        h, inverse = np.unique(h, return_inverse=True)  # sorted, distinct: a fast lookup
        at = np.minimum(np.searchsorted(self.hashes, h), max(len(self.hashes) - 1, 0))
        found = self.hashes[at] == h if len(self.hashes) else np.zeros(len(h), bool)
        ids = np.where(found, self.order[at] + 2 if len(self.hashes) else 0, 1)[inverse]
        starts = np.cumsum(lengths) - lengths  # index of each document's first word
        prev = np.empty_like(ids)
        prev[1:] = ids[:-1]
        prev[starts[lengths > 0]] = 0
        return prev * self.size + ids, lengths

    def measures(self, docs: list[list[str]]) -> np.ndarray:
        """[n, 2] per document: the mean log-probability per word, and the mean pointwise mutual
        information of each word with the one before (log P(w | prev) - log P(w)), which word salad
        made of the reference's own words lacks (-inf for a document without words)."""
        keys, lengths = self._bigram_keys(docs)
        keys, inverse = np.unique(keys, return_inverse=True)  # sorted, distinct: a fast lookup
        prev, cur = keys // self.size, keys % self.size
        lp = self.log_backoff[prev] + self.log_unigram[cur]
        if len(self.keys):
            at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            lp = np.where(self.keys[at] == keys, self.logp[at], lp)
        lp, cur = lp[inverse], cur[inverse]
        doc = np.repeat(np.arange(len(docs)), lengths)
        out = np.stack([np.bincount(doc, weights=lp - np.where(cur == 1, self.log_unknown_types, 0.0),
                                    minlength=len(docs)),
                        np.bincount(doc, weights=lp - self.log_frequency[cur], minlength=len(docs))], axis=1)
        return np.where(lengths[:, None] > 0, out / np.maximum(lengths, 1)[:, None], -np.inf)

    def save(self, path: str) -> None:
        with tempfile.TemporaryFile() as f:
            np.savez_compressed(f, vocab=np.array("\n".join(self.vocab)), keys=self.keys, logp=self.logp,
                                log_backoff=self.log_backoff, log_unigram=self.log_unigram,
                                log_unknown_types=np.float64(self.log_unknown_types), log_frequency=self.log_frequency)
            f.seek(0)
            storage.write_bytes(path, f.read())

    @classmethod
    def load(cls, data: bytes) -> BigramLM:
        import io

        z = np.load(io.BytesIO(data))
        vocab = str(z["vocab"]).split("\n") if str(z["vocab"]) else []
        return cls(vocab, z["keys"], z["logp"], z["log_backoff"], z["log_unigram"], float(z["log_unknown_types"]),
                   z["log_frequency"])
