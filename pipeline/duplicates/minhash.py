"""MinHash signatures of word n-gram shingles, signed in batches with numpy (no Beam here).

A document's words are the runs of word characters (`\\w+`) of its lowercased text; its shingles are
its word n-grams, each hashed to 32 bits (xxh3 per word, folded per n-gram; see `shingle_hash`). The
permutations are datasketch's (2.0.0), so a signature equals
`datasketch.MinHash(num_perm, seed, scheme, hashfunc=shingle_hash)` fed the same shingles, bit for bit:

- "affine32" (datasketch's default): the hash is pre-mixed with the 32-bit MurmurHash3 finalizer, then
  permuted by `a*h + b mod 2^32` with odd `a` (a bijection, so no added collisions).
- "mersenne" (datasketch's "legacy", the universal hash datatrove also uses): `(a*h + b) mod (2^61-1)`,
  computed in uint64 as datasketch does (the product wraps mod 2^64 first), truncated to 32 bits.

Signing many documents at once is the point: the shingle hashes of a whole batch go through the
permutations in bounded chunks and are reduced per document with `np.minimum.reduceat`, instead of one
numpy call per shingle (datasketch's `update`) or per document (`update_batch`).
"""

import re

import numpy as np
import xxhash

SCHEMES = ("affine32", "mersenne")
_MERSENNE = np.uint64((1 << 61) - 1)
_MASK32 = np.uint64((1 << 32) - 1)
_FOLD = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it is a bijection mod 2^64
_WORD = re.compile(r"\w+")
_ASCII_WORD_CHARS = bytes(c for c in range(128) if re.fullmatch(r"\w", chr(c)))
# lowercase letters; every ASCII byte that is not a word character becomes a space
_ASCII_WORDS = bytes((c | 0x20) if 65 <= c <= 90 else c if c in _ASCII_WORD_CHARS else 32 for c in range(256))
CHUNK_ROWS = 8192  # shingles permuted at once: CHUNK_ROWS x num_perm x 8 bytes of scratch (7 MB at 112)


def words(text: str) -> list[bytes]:
    """The words MinHash sees, UTF-8 encoded: runs of word characters (`\\w+`) of the lowercased text.
    ASCII text (all of it after the cramming normalizer) takes a byte-table path ~2x faster than the regex."""
    if text.isascii():
        return text.encode().translate(_ASCII_WORDS).split()
    return [w.encode() for w in _WORD.findall(text.lower())]


def _mix_words(acc, following):
    """Fold word hashes left to right (uint64 wrap-around), then avalanche (MurmurHash3 fmix64)."""
    for h in following:
        acc = (acc * _FOLD) ^ h
    acc ^= acc >> np.uint64(33)
    acc *= np.uint64(0xFF51AFD7ED558CCD)
    return acc ^ (acc >> np.uint64(33))


def shingle_hash(shingle: str) -> int:
    """The 32-bit hash of one shingle, words joined by single spaces (also the `hashfunc` that makes
    datasketch agree with us): xxh3 of each word, folded in order and avalanched."""
    hs = [np.uint64(xxhash.xxh3_64_intdigest(w)) for w in shingle.encode().split(b" ")]
    with np.errstate(over="ignore"):
        return int(_mix_words(hs[0], hs[1:]) & _MASK32)


def shingle_hashes(ws: list[bytes], n: int) -> np.ndarray:
    """Hashes (uint32, repeats kept) of the word n-grams of `ws`; a text shorter than n is one shingle.

    Each word is hashed once and the n-grams are folded with numpy, which is ~2.5x faster than hashing
    every joined n-gram string."""
    words_h = np.fromiter(map(xxhash.xxh3_64_intdigest, ws), np.uint64, len(ws))
    k = max(len(ws) - n + 1, min(len(ws), 1))  # number of shingles
    width = min(n, len(ws))
    acc = words_h[:k].copy()
    return (_mix_words(acc, (words_h[i : i + k] for i in range(1, width))) & _MASK32).astype(np.uint32)


def shingle_set(text: str, n: int) -> np.ndarray:
    """The sorted, distinct shingle hashes of a text: the set the exact Jaccard check compares."""
    return np.unique(shingle_hashes(words(text), n))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted, distinct hash arrays (1.0 for two empty sets)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def lsh_probability(j: float, bands: int, rows: int) -> float:
    """Chance that two sets with Jaccard `j` share at least one band: 1 - (1 - j^rows)^bands."""
    return 1.0 - (1.0 - j**rows) ** bands


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


class MinHasher:
    """Seeded permutations (drawn exactly as datasketch draws them) and batch signing."""

    def __init__(self, num_perm: int = 112, seed: int = 1, scheme: str = "affine32"):
        if scheme not in SCHEMES:
            raise ValueError(f"MinHash scheme must be one of {SCHEMES}, got {scheme!r}")
        if num_perm < 1:
            raise ValueError(f"num_perm must be positive, got {num_perm}")
        self.num_perm, self.seed, self.scheme = num_perm, seed, scheme
        gen = np.random.RandomState(seed)
        if scheme == "mersenne":
            ab = [(gen.randint(1, _MERSENNE, dtype=np.uint64), gen.randint(0, _MERSENNE, dtype=np.uint64))
                  for _ in range(num_perm)]
            self.a, self.b = np.array(ab, dtype=np.uint64).T
        else:
            self.a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
            self.b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)

    def _permute_min(self, h: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Per-segment minimum over all permutations of the uint32 hashes `h` (segments begin at `starts`).

        Laid out permutations x shingles and updated in place: ~20x faster than shingles x permutations."""
        if self.scheme == "mersenne":
            p = np.multiply(self.a[:, None], h.astype(np.uint64)[None, :])
            p += self.b[:, None]
            p %= _MERSENNE
            p &= _MASK32
        else:
            p = np.multiply(self.a[:, None], _fmix32(h)[None, :])
            p += self.b[:, None]
        return np.minimum.reduceat(p, starts, axis=1).T.astype(np.uint32)

    def sign(self, hash_arrays: list[np.ndarray]) -> np.ndarray:
        """Signatures (uint32, one row per array) of a batch of non-empty shingle-hash arrays."""
        sigs = np.empty((len(hash_arrays), self.num_perm), dtype=np.uint32)
        lengths = np.fromiter((len(h) for h in hash_arrays), np.int64, len(hash_arrays))
        if len(hash_arrays) and lengths.min() == 0:
            raise ValueError("cannot sign an empty shingle set (filter short documents first)")
        doc = 0
        while doc < len(hash_arrays):
            # A chunk is whole documents up to CHUNK_ROWS shingles; a longer document is folded alone.
            end = doc + max(1, int(np.searchsorted(np.cumsum(lengths[doc:]), CHUNK_ROWS, side="right")))
            if end == doc + 1 and lengths[doc] > CHUNK_ROWS:
                h = hash_arrays[doc]
                parts = [self._permute_min(h[i : i + CHUNK_ROWS], np.zeros(1, np.int64))
                         for i in range(0, len(h), CHUNK_ROWS)]
                sigs[doc] = np.min(np.concatenate(parts), axis=0)
            else:
                starts = np.concatenate(([0], np.cumsum(lengths[doc : end - 1])))
                sigs[doc:end] = self._permute_min(np.concatenate(hash_arrays[doc:end]), starts)
            doc = end
        return sigs


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 of uint64 values: a bijection that spreads any input over 64 bits."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def band_hashes(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """[n, bands] uint64: each band's `rows` signature values folded into one 64-bit key. Two documents
    share a key where they share the band (a 64-bit collision aside, ~n^2 / 2^64)."""
    out = np.empty((len(sigs), bands), dtype=np.uint64)
    for b in range(bands):
        h = np.full(len(sigs), b, dtype=np.uint64)
        for r in range(rows):
            h = mix64(h ^ sigs[:, b * rows + r].astype(np.uint64))
        out[:, b] = h
    return out
