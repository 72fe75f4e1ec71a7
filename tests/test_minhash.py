"""MinHash signing: bit-for-bit equal to datasketch for both schemes, shingles, exact Jaccard, band keys."""

import os
import random
import re
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash

from pipeline.duplicates import minhash
from pipeline.duplicates.dedup import DedupConfig

SHARED = Path(os.environ.get("CRAMKIT_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
DATASKETCH_SCHEME = {"affine32": "affine32", "mersenne": "legacy"}


def grams(ws, n=5):
    ws = [w.decode() for w in ws]
    return [" ".join(ws[i : i + n]) for i in range(len(ws) - n + 1)] if len(ws) > n else [" ".join(ws)]


def real_words(limit):
    path = SHARED / "text" / "nltk_gutenberg" / "austen-emma.txt"
    if not path.is_file():
        rng = random.Random(7)
        return [f"w{rng.randrange(3000)}".encode() for _ in range(limit)]
    return minhash.words(path.read_text(encoding="utf-8", errors="replace"))[:limit]


@pytest.mark.parametrize("scheme", minhash.SCHEMES)
@pytest.mark.parametrize("num_perm,seed", [(112, 1), (64, 42)])
def test_signatures_equal_datasketch(scheme, num_perm, seed):
    ws = real_words(30000)
    # short, ordinary, and longer-than-one-chunk documents in one batch
    docs = [ws[:5], ws[100:400], ws[400:2400], ws[:minhash.CHUNK_ROWS + 3000], ws[7:19]]
    sigs = minhash.MinHasher(num_perm, seed, scheme).sign([minhash.shingle_hashes(d, 5) for d in docs])
    assert sigs.shape == (len(docs), num_perm) and sigs.dtype == np.uint32
    for doc, sig in zip(docs, sigs, strict=True):
        ref = MinHash(num_perm=num_perm, seed=seed, scheme=DATASKETCH_SCHEME[scheme], hashfunc=minhash.shingle_hash)
        ref.update_batch(grams(doc))
        assert np.array_equal(sig, ref.hashvalues.astype(np.uint32))


def test_batch_signing_does_not_depend_on_batch_composition():
    ws = real_words(6000)
    hasher = minhash.MinHasher()
    docs = [minhash.shingle_hashes(ws[i : i + 700], 5) for i in range(0, 5600, 700)]
    together = hasher.sign(docs)
    alone = np.vstack([hasher.sign([d]) for d in docs])
    assert np.array_equal(together, alone)


def test_words_and_shingles():
    assert minhash.words("The cat's  HAT,\r\nis-red. 42_x") == [b"the", b"cat", b"s", b"hat", b"is", b"red", b"42_x"]
    assert minhash.words("Crème BRÛLÉE, naïve—café") == ["crème".encode(), "brûlée".encode(), "naïve".encode(),
                                                         "café".encode()]
    ws = b"a b c d e f g".split()
    h = minhash.shingle_hashes(ws, 5)
    assert list(h) == [minhash.shingle_hash(g) for g in ["a b c d e", "b c d e f", "c d e f g"]]
    assert list(minhash.shingle_hashes([b"x", b"y"], 5)) == [minhash.shingle_hash("x y")]
    assert len(minhash.shingle_hashes([], 5)) == 0
    # punctuation and case do not change the shingle set
    assert np.array_equal(minhash.shingle_set("One, two; THREE four five six.", 5),
                          minhash.shingle_set("one two three four five six", 5))


def test_ascii_fast_path_equals_the_regex():
    ascii_text = (bytes(range(128)).decode() + " The Quick, brown_fox (jumped) 3 TIMES; DON'T stop!\t"
                  + b" ".join(real_words(3000)).decode())
    assert ascii_text.isascii()
    assert minhash.words(ascii_text) == [w.encode() for w in re.findall(r"\w+", ascii_text.lower())]


def test_exact_jaccard_matches_python_sets():
    rng = random.Random(3)
    for _ in range(20):
        a = {rng.randrange(500) for _ in range(rng.randrange(1, 200))}
        b = {rng.randrange(500) for _ in range(rng.randrange(1, 200))}
        arr = lambda s: np.array(sorted(s), dtype=np.uint32)  # noqa: E731
        assert minhash.jaccard(arr(a), arr(b)) == pytest.approx(len(a & b) / len(a | b))
    empty = np.array([], dtype=np.uint32)
    assert minhash.jaccard(empty, empty) == 1.0


@pytest.mark.parametrize("scheme", minhash.SCHEMES)
def test_equal_slots_estimate_jaccard(scheme):
    """The share of equal signature values estimates the shingle Jaccard (std ~0.05 at 112 perms)."""
    ws = real_words(12000)
    hasher = minhash.MinHasher(scheme=scheme)
    errors = []
    for keep in (0.3, 0.6, 0.9):
        rng = random.Random(int(keep * 10))
        a = ws[:1500]
        b = [w if rng.random() < keep ** 0.2 else b"zz" + w for w in a]  # per-word edits
        sa, sb = minhash.shingle_set(b" ".join(a).decode(), 5), minhash.shingle_set(b" ".join(b).decode(), 5)
        sig = hasher.sign([sa, sb])
        errors.append(abs((sig[0] == sig[1]).mean() - minhash.jaccard(sa, sb)))
    assert max(errors) < 0.15 and np.mean(errors) < 0.08


def test_band_hashes():
    sigs = np.arange(2 * 112, dtype=np.uint32).reshape(2, 112)
    keys = minhash.band_hashes(sigs, 14, 8)
    assert keys.shape == (2, 14) and keys.dtype == np.uint64 and len(set(keys.ravel().tolist())) == 28
    # equal values in different bands are different keys; a changed value changes only its band
    zeros = minhash.band_hashes(np.zeros((1, 16), np.uint32), 2, 8)
    assert zeros[0, 0] != zeros[0, 1]
    changed = sigs.copy()
    changed[0, 17] += 1
    assert (minhash.band_hashes(changed, 14, 8) != keys).sum() == 1
    assert (minhash.band_hashes(changed, 14, 8)[0] != keys[0]).tolist().index(True) == 2


def test_lsh_probability_of_the_default_bands():
    assert minhash.lsh_probability(0.8, 14, 8) == pytest.approx(0.924, abs=1e-3)
    assert minhash.lsh_probability(0.6, 14, 8) == pytest.approx(0.211, abs=1e-3)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="scheme"):
        minhash.MinHasher(scheme="sha1")
    with pytest.raises(ValueError, match="empty shingle set"):
        minhash.MinHasher().sign([np.array([], np.uint32)])
    with pytest.raises(ValueError, match=r"dedup.num_perm=100.*bands \* dedup.rows = 112"):
        DedupConfig(num_perm=100)
    with pytest.raises(ValueError, match="dedup.jaccard_threshold"):
        DedupConfig(jaccard_threshold=1.5)
    with pytest.raises(ValueError, match="dedup.scheme"):
        DedupConfig(scheme="legacy")
