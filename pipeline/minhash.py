"""MinHash signatures of word n-gram shingles, signed in batches with numpy (no Beam here).

A document's words are the runs of word characters (`\\w+`) of its lowercased text; its shingles are the
word n-grams joined by one space, each hashed to 32 bits with xxh3. The permutations are datasketch's
(2.0.0), so a signature equals `datasketch.MinHash(num_perm, seed, scheme, hashfunc=<the shingle hash>)`
fed the same shingles, bit for bit:

- "affine32" (datasketch's default): the hash is pre-mixed with the 32-bit MurmurHash3 finalizer, then
  permuted by `a*h + b mod 2^32` with odd `a` (a bijection, so no added collisions).
- "mersenne" (datasketch's "legacy", the universal hash datatrove also uses): `(a*h + b) mod (2^61-1)`,
  computed in uint64 as datasketch does (the product wraps mod 2^64 first), truncated to 32 bits.

Signing many documents at once is the point: the shingle hashes of a whole batch go through the
permutations in bounded chunks and are reduced per document with `np.minimum.reduceat`, instead of one
numpy call per shingle (datasketch's `update`) or per document.
"""

import re

import numpy as np
import xxhash

SCHEMES = ("affine32", "mersenne")
_MERSENNE = np.uint64((1 << 61) - 1)
_MASK32 = np.uint64((1 << 32) - 1)
_WORD = re.compile(r"\w+")
CHUNK_ROWS = 8192  # shingles permuted at once: CHUNK_ROWS x num_perm x 8 bytes of scratch (7 MB at 112)


def words(text: str) -> list[str]:
    """The words MinHash sees: runs of word characters of the lowercased text."""
    return _WORD.findall(text.lower())


def shingle_hash(shingle: str) -> int:
    """The 32-bit hash of one shingle (also the `hashfunc` that makes datasketch agree with us)."""
    return xxhash.xxh3_64_intdigest(shingle.encode()) & 0xFFFFFFFF


def shingle_hashes(ws: list[str], n: int) -> np.ndarray:
    """Hashes (uint32, repeats kept) of the word n-grams of `ws`; a text shorter than n is one shingle."""
    h = xxhash.xxh3_64_intdigest
    if len(ws) <= n:
        grams = [" ".join(ws)] if ws else []
    else:
        grams = [" ".join(ws[i : i + n]) for i in range(len(ws) - n + 1)]
    return (np.fromiter((h(g.encode()) for g in grams), np.uint64, len(grams)) & _MASK32).astype(np.uint32)


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
        """Per-segment minimum over all permutations of the uint32 hashes `h` (segments begin at `starts`)."""
        if self.scheme == "mersenne":
            p = (h.astype(np.uint64)[:, None] * self.a + self.b) % _MERSENNE & _MASK32
            return np.minimum.reduceat(p, starts, axis=0).astype(np.uint32)
        p = _fmix32(h)[:, None] * self.a + self.b
        return np.minimum.reduceat(p, starts, axis=0)

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


def band_keys(sig: np.ndarray, bands: int, rows: int) -> list[bytes]:
    """One key per band: the band's index (2 bytes) and its `rows` signature values."""
    return [b.to_bytes(2, "big") + sig[b * rows : (b + 1) * rows].tobytes() for b in range(bands)]
