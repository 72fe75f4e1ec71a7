"""Quality filters: one small rule per signal, each with its drop reason "filter/<rule>".

Rules, in the order they run (the first that fails names the drop; 0 turns a bound off):
- length: characters and words, min and max ("too_few_chars", "too_many_chars", "too_few_words",
  "too_many_words");
- zstd compression ratio (compressed / raw bytes, level 3) of documents with at least
  `compression_min_chars` characters: below the floor is very repetitive text ("compressible"), above
  the ceiling is noise ("incompressible");
- Gopher-style repetition (Rae et al. 2021): duplicate-line fraction ("dup_lines"), characters in
  duplicate lines ("dup_line_chars"), duplicate-paragraph fraction ("dup_paragraphs"), the character
  share of the most common word 2/3/4-gram ("top_ngram"), the character share of words covered by
  repeated 5..10-grams ("dup_ngrams");
- language: fastText lid.176 when `langid_model` is set ("language"), in batches (pipeline.cleaning.langid).
"""

import re
from dataclasses import dataclass

import numpy as np
import zstandard

from configs import setting

_WORD = re.compile(r"\S+")
_PARAGRAPHS = re.compile(r"\n{2,}")


@dataclass(frozen=True)
class FilterConfig:
    """`filters.*` in the corpus config. Fractions are of the document; 0 turns a bound off."""

    enabled: bool = setting("run the filter stage", True)
    min_chars: int = setting("drop documents of fewer characters (too_few_chars)", 0)
    max_chars: int = setting("drop documents of more characters (too_many_chars)", 0)
    min_words: int = setting("drop documents of fewer words (too_few_words)", 20)
    max_words: int = setting("drop documents of more words (too_many_words)", 100_000)
    compression_floor: float = setting("zstd ratio below this: repetitive (compressible)", 0.10)
    compression_ceiling: float = setting("zstd ratio above this: noise (incompressible)", 0.90)
    compression_min_chars: int = setting("shorter documents skip the compression rule (they compress badly "
                                         "whatever they hold)", 500)
    dup_line_frac: float = setting("drop above this share of lines that repeat another (dup_lines)", 0.30)
    dup_line_char_frac: float = setting("drop above this share of characters in repeated lines (dup_line_chars)",
                                        0.20)
    dup_paragraph_frac: float = setting("drop above this share of paragraphs that repeat another "
                                        "(dup_paragraphs)", 0.30)
    top_ngram_frac: tuple = setting("most common 2-, 3-, 4-gram: drop above these character shares (top_ngram)",
                                    (0.20, 0.18, 0.16))
    dup_ngram_frac: tuple = setting("repeated 5- .. 10-grams: drop above these character shares (dup_ngrams)",
                                    (0.15, 0.14, 0.13, 0.12, 0.11, 0.10))
    langid_model: str | None = setting("fastText lid.176.ftz for language ID (`make langid` fetches it); null: "
                                       "no language rule", None)
    languages: tuple = setting("languages kept by language ID", ("en",))
    langid_threshold: float = setting("language ID: keep a document whose language scores at least this", 0.65)
    batch_size: int = setting("documents per language-ID call", 256)

    def __post_init__(self):
        def bad(field, why):
            raise ValueError(f"filters.{field}={getattr(self, field)!r}: {why}")

        for field in ("min_chars", "max_chars", "min_words", "max_words", "compression_min_chars"):
            if getattr(self, field) < 0:
                bad(field, "must be >= 0 (0 turns the bound off)")
        for field in ("compression_floor", "compression_ceiling", "dup_line_frac", "dup_line_char_frac",
                      "dup_paragraph_frac", "langid_threshold"):
            if not 0 <= getattr(self, field) <= 1:
                bad(field, "must be a fraction in [0, 1]")
        if len(self.top_ngram_frac) != 3:
            bad("top_ngram_frac", "needs 3 fractions (2-, 3-, 4-grams)")
        if len(self.dup_ngram_frac) != 6:
            bad("dup_ngram_frac", "needs 6 fractions (5- .. 10-grams)")
        if self.batch_size < 1:
            bad("batch_size", "must be a positive integer")


# ---- pure rules: text -> reason or None ----------------------------------------------------------

def length_rule(text: str, words: list[str], cfg: FilterConfig) -> str | None:
    n, w = len(text), len(words)
    if n < cfg.min_chars:
        return "too_few_chars"
    if cfg.max_chars and n > cfg.max_chars:
        return "too_many_chars"
    if w < cfg.min_words:
        return "too_few_words"
    if cfg.max_words and w > cfg.max_words:
        return "too_many_words"
    return None


_ZSTD = zstandard.ZstdCompressor(level=3)


def compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return len(_ZSTD.compress(raw)) / max(len(raw), 1)


def compression_rule(text: str, cfg: FilterConfig) -> str | None:
    if len(text) < max(cfg.compression_min_chars, 1):
        return None
    ratio = compression_ratio(text)
    if ratio < cfg.compression_floor:
        return "compressible"
    if cfg.compression_ceiling and ratio > cfg.compression_ceiling:
        return "incompressible"
    return None


def _duplicates(parts: list[str]) -> tuple[float, float]:
    """(fraction of parts that repeat an earlier one, fraction of their characters)."""
    parts = [p for p in parts if p.strip()]
    if not parts:
        return 0.0, 0.0
    seen, dup, dup_chars = set(), 0, 0
    for p in parts:
        if p in seen:
            dup += 1
            dup_chars += len(p)
        else:
            seen.add(p)
    return dup / len(parts), dup_chars / max(sum(map(len, parts)), 1)


def _ngram_hashes(word_ids: np.ndarray, max_n: int):
    """(n, one int64 per word n-gram) for n = 1..max_n, each from the previous one (polynomial hash,
    wrapping; collisions are negligible at document size)."""
    h = word_ids
    yield 1, h
    for n in range(2, min(max_n, len(word_ids)) + 1):
        h = h[:-1] * np.int64(1_000_003) + word_ids[n - 1:]
        yield n, h


def top_ngram_share(grams: np.ndarray, lengths: np.ndarray, n: int) -> float:
    """Characters of the most common word n-gram (all its occurrences) / characters of all words; among
    equally common n-grams the longest counts, so the answer never depends on hash order."""
    _, first, counts = np.unique(grams, return_index=True, return_counts=True)
    most = counts.max()
    if most < 2:
        return 0.0
    ends = np.concatenate(([0], np.cumsum(lengths)))
    chars = ends[first[counts == most] + n] - ends[first[counts == most]]
    return float(most * chars.max() / ends[-1])


def dup_ngram_share(grams: np.ndarray, lengths: np.ndarray, n: int) -> float:
    """Characters of words covered by an n-gram that repeats an earlier one / characters of all words."""
    _, first = np.unique(grams, return_index=True)
    if len(first) == len(grams):
        return 0.0
    repeat = np.ones(len(grams), bool)
    repeat[first] = False
    cover = np.zeros(len(lengths) + 1, np.int64)
    starts = np.flatnonzero(repeat)
    np.add.at(cover, starts, 1)
    np.add.at(cover, starts + n, -1)
    covered = np.cumsum(cover[:-1]) > 0
    return float(lengths[covered].sum() / lengths.sum())


def repetition_rule(text: str, words: list[str], cfg: FilterConfig) -> str | None:
    lines, line_chars = _duplicates(text.split("\n"))
    if cfg.dup_line_frac and lines > cfg.dup_line_frac:
        return "dup_lines"
    if cfg.dup_line_char_frac and line_chars > cfg.dup_line_char_frac:
        return "dup_line_chars"
    if cfg.dup_paragraph_frac and _duplicates(_PARAGRAPHS.split(text))[0] > cfg.dup_paragraph_frac:
        return "dup_paragraphs"
    if len(words) < 2:
        return None
    # Word ids by Python's string hash: equal words, equal ids, within this process; only equality is used.
    word_ids = np.fromiter(map(hash, words), np.int64, len(words))
    lengths = np.fromiter(map(len, words), np.int64, len(words))
    top = dict(zip((2, 3, 4), cfg.top_ngram_frac, strict=True))
    dup = dict(zip(range(5, 11), cfg.dup_ngram_frac, strict=True))
    floor = min((v for v in dup.values() if v), default=0)
    for n, grams in _ngram_hashes(word_ids, 10):
        if top.get(n) and top_ngram_share(grams, lengths, n) > top[n]:
            return "top_ngram"
        if dup.get(n):
            share = dup_ngram_share(grams, lengths, n)
            if share > dup[n]:
                return "dup_ngrams"
            if share <= floor:  # covered words only shrink as n grows: no longer n-gram can exceed its bound
                break
    return None


def check(text: str, cfg: FilterConfig) -> str | None:
    """The first rule (without language ID) that drops the text, as "filter/<rule>", or None."""
    words = _WORD.findall(text)
    reason = length_rule(text, words, cfg) or compression_rule(text, cfg) or repetition_rule(text, words, cfg)
    return f"filter/{reason}" if reason else None


# ---- a batch of documents ------------------------------------------------------------------------

class Filters:
    """`apply(docs)` -> (kept docs, [(doc, reason)] dropped); language ID runs once per call on the
    documents that passed every other rule."""

    def __init__(self, cfg: FilterConfig):
        self.cfg = cfg
        self.langid = None
        if cfg.enabled and cfg.langid_model:
            from pipeline.cleaning.langid import LangId
            self.langid = LangId(cfg.langid_model)

    def apply(self, docs: list) -> tuple[list, list]:
        if not self.cfg.enabled:
            return docs, []
        kept, dropped = [], []
        for doc in docs:
            reason = check(doc.text, self.cfg)
            (dropped.append((doc, reason)) if reason else kept.append(doc))
        if self.langid and kept:
            langs = self.langid.predict([d.text for d in kept])
            ok = [lang in self.cfg.languages and score >= self.cfg.langid_threshold for lang, score in langs]
            dropped += [(d, "filter/language") for d, good in zip(kept, ok, strict=True) if not good]
            kept = [d for d, good in zip(kept, ok, strict=True) if good]
        return kept, dropped
