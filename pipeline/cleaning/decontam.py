"""Decontamination: find evaluation text (GLUE dev and test sets, any other evaluation file) in the corpus,
then drop the documents that hold it (`decontam.mode=drop`, reason "decontam/<task>") or cut the matched
spans out and keep the rest (`span`). It runs in the scan right after the filters, so dedup, the
tokenizer and the shards never see contaminated text.

Matching, the same steps for evaluation and corpus text:
- evaluation text first goes through the corpus normalizer (`normalize.preset`): the scan sees
  normalized text;
- lowercase; Penn Treebank clitics read as their own words whether tokenized or not ("don't", "do n't" and
  MRPC's "don 't" all read "do nt", "It's" and "it 's" both "it s", with ', ’ or an HTML entity for the
  apostrophe); PTB brackets (-LRB- ... -RSB-) read as the bracket, HTML entities (&amp; &#39; ...) are
  blanked. Every step keeps the length, so character offsets stay those of the document;
- words are runs of letters and digits: case, punctuation, quotes, tokenization and line wrapping fold
  away. (A normalizer that deletes non-ASCII, like `cramming`, turns "don’t" into "dont" first: that
  one word does not match "do n't".) Tokens are the whitespace-separated pieces: a word, "it's", or
  punctuation standing alone as tokenized text writes it (" , ", " -- ").

Policies:
- an example contributes the `ngram`-word n-grams of its words (a pair's two texts in order, so n-grams
  across them find a pair copied as one passage);
- tokenized text (SST-2, MRPC) holds fewer than n words in n tokens, so a window of it may hold no
  n-gram: an example also contributes every run of fewer than n words (TOKENS_MIN at least) that spans n
  tokens, and it matches where it spans n tokens in the document too (the punctuation standing alone
  there as well), so the same words in prose, with fewer tokens, are no match;
- each of its texts shorter than `ngram` words but of at least `min_words` (2) is matched as a whole: its
  entire word sequence must occur, and stand apart: texts of 6 words or more (ALONE) set off by
  punctuation or the document's edge (not a word) right before or right after it; of 4 or 5 words on
  both sides, so "I want to go" inside "said I want to go." is no match; of 2 or 3 words (below SENTENCE)
  as a sentence of its own, a stop (. ! ?), a blank line or the document's edge on both sides, quotes and
  brackets aside, so "Cynthia chewed." is found in "It rained. Cynthia chewed. Then" but not in "then
  Cynthia chewed the bread" nor in '"Cynthia chewed," he said'. A short pair is matched as one text too.
  Texts of fewer than 6 words made only of the evaluation sets' 100 most frequent words (each seen 100
  times at least: COMMON) are common speech ("Who's there?", "I don't know."), not evidence, and are not
  checked; nor are texts below `min_words` (an example with nothing to check counts in "examples", not
  in "checkable");
- an n-gram (or whole short text) found in more than `max_examples` distinct examples is boilerplate
  ("according to the", legal notices) and ignored;
- one match makes a document contaminated. A document matched by several tasks is dropped under the
  task of its first match.

The index is built once, by the launcher (`load` then `save` into the staging folder); each worker loads it
(`Matcher.load`). Memory is the evaluation sets' (vocabulary, keys, their word ids), never the corpus':
corpus words outside the evaluation vocabulary map to 0 and a window holding a 0 cannot match. A batch
of documents becomes one array of word ids; a polynomial rolling hash of every window (one numpy pass
per window length), a bitmap prefilter, a binary search in the sorted keys and an exact comparison of
the word ids find the matches, and only the documents with a match are tokenized again for offsets.

Every match goes to contamination.jsonl in the output, in document order: {"id": document name, "task",
"split", "example": its row number in the split, "start", "end": characters in the normalized document,
"text": the matched text}. The report (stats.json "contamination", the summary table, report.png and the
shard manifest's counts) gives per task and split the examples, how many could be checked, how many
were found in the corpus and in how many documents (pipeline.cleaning.contamination). Importing this
module needs no Beam.
"""

from __future__ import annotations

import io
import json
import re
from array import array
from dataclasses import asdict, dataclass
from itertools import repeat

import numpy as np

from configs import setting
from pipeline.cleaning import evalsets
from pipeline.cleaning.normalize import PRESETS
from pipeline.document import Doc
from pipeline.duplicates.minhash import mix64

MODES = ("drop", "span")
INDEX, META = "decontam.npz", "decontam.json"
SENTENCE = 4  # whole texts of fewer words must stand as a sentence
ALONE = 6  # whole texts of fewer words must be set off on both sides
COMMON = 100  # whole texts below ALONE words need a word outside the 100 most frequent (seen 100 times)
TOKENS_MIN = 8  # the fewest words of a window matched for the n tokens it spans
GRAM, WHOLE, SPAN = 1, 2, 4  # how an example holds a key: an n-gram, a whole short text, n tokens in fewer words
CHUNK = 1 << 20  # word windows hashed at once (bounds the scan's arrays for very long documents)
_P = np.uint64(0x100000001B3)  # multiplier of the rolling hash (odd; the FNV prime)
_LEN = np.uint64(0x9E3779B97F4A7C15)  # mixes the window length into a key

_APOS = r"(?:['’]|&#0*39;|&#x0*27;|&apos;|&rsquo;|&#0*8217;|&#x0*2019;)"
_BLANK = re.compile(rf"(?=[n&-])(?:n ?{_APOS}t\b|-[lr][rsc]b-|&(?:#\d+|#x[0-9a-f]+|[a-z][a-z0-9]*);)")  # lookahead: 2x faster
_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r"\S+")  # a whitespace-separated token: a word, "it's", a lone "," or "--"
_QUOTES = "\"'`()[]{}"  # quotes and brackets around a sentence
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")


def _blank(m: re.Match) -> str:
    """n't (any apostrophe) -> "nt" at its end, so "don't" and "do n't" both read "do nt"; a PTB bracket -> the
    bracket; an entity -> spaces."""
    text = m.group()
    if text[0] == "n":
        return " " * (len(text) - 2) + "nt"
    return "(    " if text[:2] == "-l" else "    )" if text[:2] == "-r" else " " * len(text)


@dataclass(frozen=True)
class DecontamConfig:
    """`decontam.*` in the corpus config. On when any evaluation text is named (glue_dir, hub, paths)."""

    glue_dir: str = setting("a folder in the official GLUE layout: every task folder and AX found there", "")
    hub: bool = setting("GLUE from the Hugging Face Hub (nyu-mll/glue)", False)
    paths: tuple[str, ...] = setting("other evaluation files: PATH (an example a line), PATH#FIELD (JSON Lines), "
                                     "PATH#COLUMN+COLUMN (TSV)", ())
    splits: tuple[str, ...] = setting("GLUE splits checked: any of train, dev, test", ("dev", "test"))
    ngram: int = setting("words per n-gram", 13)
    min_words: int = setting("shorter evaluation texts are matched whole from this many words, below not at all",
                             2)
    max_examples: int = setting("an n-gram in more distinct examples is boilerplate, ignored", 10)
    mode: str = setting("drop: drop the document | span: cut the matched text, keep the rest", "drop")

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"decontam.mode={self.mode!r}: choose one of {', '.join(MODES)}")
        bad = [s for s in self.splits if s not in evalsets.SPLITS]
        if bad or not self.splits:
            raise ValueError(f"decontam.splits={list(self.splits)}: choose from {', '.join(evalsets.SPLITS)}")
        if not 1 <= self.ngram <= 64:
            raise ValueError(f"decontam.ngram={self.ngram}: must be in 1..64")
        if not 1 <= self.min_words <= self.ngram:
            raise ValueError(f"decontam.min_words={self.min_words}: must be in 1..decontam.ngram ({self.ngram})")
        if self.max_examples < 1:
            raise ValueError(f"decontam.max_examples={self.max_examples}: must be >= 1")

    @property
    def enabled(self) -> bool:
        return bool(self.glue_dir or self.hub or self.paths)


def match_text(text: str) -> str:
    """`text` as matching sees it (see the module docstring), of the same length."""
    low = text.lower()
    if len(low) != len(text):  # a few characters lowercase to two; keep those as they are
        low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return _BLANK.sub(_blank, low)


def words(text: str) -> list[str]:
    return _WORD.findall(match_text(text))


def _rolling(ids: np.ndarray, lengths):
    """(L, hash of every window of L ids) for each L in `lengths`, ascending."""
    ids = ids.astype(np.uint64)
    h = ids.copy()
    with np.errstate(over="ignore"):
        for L in range(1, max(lengths) + 1):
            if L > 1:  # in place: one array of hashes however long the input
                h = h[:-1]
                h *= _P
                h += ids[L - 1:]
            if L in lengths:
                yield L, h


def _key(h: np.ndarray, L: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return mix64(h ^ (np.uint64(L) * _LEN))


@dataclass
class Index:
    """The evaluation sets as sorted keys: key i is the word-id sequence flat[starts[i]:starts[i]+lengths[i]],
    found in the examples refs[ref_at[i]:ref_at[i+1]] (numbers into ex_split / ex_index)."""

    vocab: list  # word of id i + 1
    keys: np.ndarray  # uint64, sorted, unique
    lengths: np.ndarray  # uint8
    starts: np.ndarray  # int32
    flat: np.ndarray  # int32 word ids of the evaluation texts
    ref_at: np.ndarray  # int64, len(keys) + 1
    refs: np.ndarray  # int32
    ref_kind: np.ndarray  # uint8: how the example holds the key (GRAM, WHOLE, SPAN bits)
    ex_split: np.ndarray  # int32: the split (position in `meta["sets"]`) of each example
    ex_index: np.ndarray  # int64: its row number in that split
    meta: dict  # {"config": ..., "sets": [{"task", "split", "examples", "checkable", "malformed"}]}


class DecontamError(ValueError):
    """Evaluation text that cannot be had; the message names it."""


def load(cfg: DecontamConfig, preset: str) -> Index:
    """Read every evaluation set `cfg` names and index it (the launcher does this once, before the run)."""
    try:
        sets = evalsets.glue_folder(cfg.glue_dir, cfg.splits) if cfg.glue_dir else []
        sets += evalsets.glue_hub(cfg.splits) if cfg.hub else []
        sets += [evalsets.eval_file(p) for p in cfg.paths]
    except evalsets.EvalSetError as e:
        raise DecontamError(str(e)) from None
    names = [(s.task, s.split) for s in sets]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DecontamError(f"decontam: evaluation sets named twice: {', '.join('/'.join(t) for t in twice)} "
                            "(files of one name in decontam.paths, or a GLUE task given twice); rename the files")
    return build(sets, cfg, preset)


def build(sets: list, cfg: DecontamConfig, preset: str) -> Index:
    """The Index of a list of evalsets.EvalSplit (see the module docstring for the policies)."""
    norm, vocab, n = PRESETS[preset], {}, cfg.ngram
    flat, word_at, token_at, base = array("i"), array("q"), array("q"), 0  # word ids; word and token offsets
    ex_split, ex_index, ex_len = [], [], []  # the words of each example, its texts in order
    whole_start, whole_len, whole_ex = [], [], []  # texts matched whole
    for s_i, split in enumerate(sets):
        for ex in split.examples:
            number, start = len(ex_split), len(flat)
            ex_split.append(s_i)
            ex_index.append(ex.index)
            for text in ex.texts:
                seen, first = match_text(norm(text)), len(flat)
                for m in _WORD.finditer(seen):
                    flat.append(vocab.setdefault(m.group(), len(vocab) + 1))
                    word_at.append(base + m.start())
                token_at.extend(base + m.start() for m in _TOKEN.finditer(seen))
                base += len(seen) + 1
                if cfg.min_words <= len(flat) - first < n:
                    whole_start.append(first), whole_len.append(len(flat) - first), whole_ex.append(number)
            total = len(flat) - start
            if len(ex.texts) > 1 and cfg.min_words <= total < n:  # a short pair, as one text
                whole_start.append(start), whole_len.append(total), whole_ex.append(number)
            ex_len.append(total)
    flat = np.frombuffer(flat, np.int32).copy()
    whole = [np.asarray(a, dtype=np.int64) for a in (whole_start, whole_len, whole_ex)]
    counts = np.bincount(flat)
    top = np.argsort(-counts, kind="stable")[:COMMON]
    common = np.zeros(len(counts), bool)
    common[top[counts[top] >= COMMON]] = True  # the most frequent evaluation words
    ends = np.r_[0, np.cumsum(common[flat])]
    plain = (whole[1] < ALONE) & (ends[whole[0] + whole[1]] - ends[whole[0]] == whole[1])
    whole = [a[~plain] for a in whole]  # short texts of common words only ("who's there?") say nothing
    owner = np.repeat(np.arange(len(ex_len), dtype=np.int32), ex_len)  # the example of every word
    # windows of fewer than n words that span n tokens (lone punctuation between them): each word's first,
    # if inside its example and of TOKENS_MIN words at least
    tokens = np.searchsorted(np.frombuffer(token_at, np.int64), np.frombuffer(word_at, np.int64), "right")  # its token
    last = np.searchsorted(tokens, tokens + n - 1)
    dense_len = last - np.arange(len(flat)) + 1
    inside = last < len(flat)
    inside[inside] &= owner[last[inside]] == owner[inside]
    dense = np.flatnonzero(inside & (dense_len >= TOKENS_MIN) & (dense_len < n))
    dense_len = dense_len[dense]
    del word_at, token_at, tokens, last, inside  # before the keys: the launcher's peak memory
    entries = []  # (keys, starts, lengths, examples, kinds) per window length
    lengths = set(whole[1].tolist()) | set(dense_len.tolist()) | {n}
    for L, h in _rolling(flat, lengths) if len(flat) else ():
        if L < n:  # whole short texts, and windows that span n tokens
            at = dense[dense_len == L]
            pos = np.r_[whole[0][whole[1] == L], at]
            exs = np.r_[whole[2][whole[1] == L], owner[at]]
            kinds = np.r_[np.full(int((whole[1] == L).sum()), WHOLE), np.full(len(at), SPAN)]
        else:  # every n-gram inside one example (across its texts: a pair copied as one passage)
            pos = np.flatnonzero(owner[: len(h)] == owner[L - 1:])
            exs, kinds = owner[pos], np.full(len(pos), GRAM)
        keys = np.concatenate([_key(h[pos[i: i + CHUNK]], L) for i in range(0, len(pos), CHUNK)] or
                              [np.zeros(0, np.uint64)])  # in chunks: mix64's temporaries stay small
        entries.append((keys, pos.astype(np.int32), np.full(len(pos), L, np.uint8), exs.astype(np.int32),
                        kinds.astype(np.uint8)))
    keys, starts, lengths, exs, kinds = (
        np.concatenate([e[i] for e in entries]) if entries else np.zeros(0, t)
        for i, t in enumerate((np.uint64, np.int32, np.uint8, np.int32, np.uint8)))
    entries.clear()
    order = np.lexsort((exs, keys))
    keys, starts, lengths, exs, kinds = keys[order], starts[order], lengths[order], exs[order], kinds[order]
    new_key = np.r_[True, keys[1:] != keys[:-1]][: len(keys)]  # first entry of each key
    new_pair = new_key | np.r_[True, exs[1:] != exs[:-1]][: len(keys)]  # ... of each (key, example)
    pair_at = np.flatnonzero(new_pair)
    pair_kinds = np.bitwise_or.reduceat(kinds, pair_at) if len(pair_at) else kinds  # how the example holds it
    group = np.cumsum(new_key) - 1
    per_key = np.bincount(group[pair_at], minlength=int(new_key.sum()))  # distinct examples of each key
    active = per_key <= cfg.max_examples
    use = active[group[pair_at]]
    refs, ref_kind = exs[pair_at][use].astype(np.int32), pair_kinds[use].astype(np.uint8)
    ref_at = np.r_[0, np.cumsum(per_key[active])].astype(np.int64)
    first = np.flatnonzero(new_key)[active]
    checkable = np.zeros(len(ex_split), bool)
    checkable[refs] = True
    ex_split = np.asarray(ex_split, dtype=np.int32)
    meta = {"config": asdict(cfg), "preset": preset, "sets": [
        {"task": s.task, "split": s.split, "examples": len(s.examples),
         "checkable": int(checkable[ex_split == i].sum()), "malformed": s.malformed} for i, s in enumerate(sets)]}
    return Index(list(vocab), keys[first], lengths[first], starts[first].astype(np.int32), flat, ref_at,
                 refs, ref_kind, ex_split, np.asarray(ex_index, dtype=np.int64), meta)


def save(index: Index, plan) -> None:
    """The index into the run's staging folder, for the workers; its meta beside it, for the report."""
    from pipeline.files import storage

    buf = io.BytesIO()
    arrays = {k: v for k, v in vars(index).items() if isinstance(v, np.ndarray)}
    np.savez(buf, vocab=np.frombuffer("\n".join(index.vocab).encode("utf-8"), np.uint8), **arrays)
    storage.write_bytes(plan.path(INDEX), buf.getvalue())
    storage.write_text(plan.path(META), json.dumps(index.meta))


def describe(index: Index) -> str:
    """One line for the launcher: what the run checks against."""
    sets = index.meta["sets"]
    cfg = index.meta["config"]
    return (f"decontamination ({cfg['mode']}): {sum(s['examples'] for s in sets):,} examples of "
            f"{len({s['task'] for s in sets})} tasks in {len(sets)} splits, "
            f"{sum(s['checkable'] for s in sets):,} checkable; {len(index.keys):,} keys of "
            f"{cfg['min_words']}-{cfg['ngram']} words, {len(index.vocab):,} distinct words")


class Matcher:
    """A worker's view of the index: `apply(docs)` -> (kept docs, [(doc, reason)] dropped, match records)."""

    def __init__(self, index: Index):
        self.ix, cfg = index, index.meta["config"]
        self.span = cfg["mode"] == "span"
        self.get = {w: i for i, w in enumerate(index.vocab, start=1)}.get
        self.lengths = set(np.unique(index.lengths).tolist())
        bits = max(10, int(np.ceil(np.log2(max(len(index.keys), 1) * 16))))
        self.shift = np.uint64(64 - bits)
        mask = np.zeros(1 << bits, bool)
        mask[(index.keys >> self.shift).astype(np.int64)] = True
        self.bitmap = np.packbits(mask, bitorder="little")
        self.names = [(s["task"], s["split"]) for s in index.meta["sets"]]
        self.ngram = cfg["ngram"]

    @classmethod
    def load(cls, plan) -> Matcher:
        from pipeline.files import storage

        with np.load(io.BytesIO(storage.read_bytes(plan.path(INDEX)))) as z:
            arrays = {k: z[k] for k in z.files}
        vocab = arrays.pop("vocab").tobytes().decode("utf-8")
        meta = json.loads(storage.read_text(plan.path(META)))
        return cls(Index(vocab=vocab.split("\n") if vocab else [], meta=meta, **arrays))

    def ids(self, text: str) -> np.ndarray:
        ws = words(text)
        return np.fromiter(map(self.get, ws, repeat(0)), np.int32, len(ws))

    def hits(self, ids: np.ndarray):
        """(positions, key numbers) of every window of `ids` that is a key, in position order."""
        pos, key = [], []
        if not self.lengths:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        reach = max(self.lengths) - 1
        for lo in range(0, max(len(ids), 1), CHUNK):
            part = ids[lo: lo + CHUNK + reach]
            zeros = np.r_[0, np.cumsum(part == 0)]
            for L, h in _rolling(part, self.lengths):
                cand = np.flatnonzero(zeros[L:] == zeros[:-L])  # windows without a word outside the vocabulary
                cand = cand[cand < CHUNK]
                if not len(cand):
                    continue
                k = _key(h[cand], L)
                b = k >> self.shift
                seen = (self.bitmap[(b >> np.uint64(3)).astype(np.int64)] >> (b & np.uint64(7)).astype(np.uint8)) & 1
                cand, k = cand[seen.astype(bool)], k[seen.astype(bool)]
                i = np.minimum(np.searchsorted(self.ix.keys, k), len(self.ix.keys) - 1)
                ok = (self.ix.keys[i] == k) & (self.ix.lengths[i] == L)
                cand, i = cand[ok], i[ok]
                if len(cand):  # the word ids themselves, not only their hash
                    span = np.arange(L)
                    at = self.ix.starts[i].astype(np.int64)[:, None] + span
                    same = (part[cand[:, None] + span] == self.ix.flat[at]).all(axis=1)
                    pos.append(cand[same] + lo)
                    key.append(i[same])
        if not pos:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        pos, key = np.concatenate(pos), np.concatenate(key)
        order = np.lexsort((key, pos))
        return pos[order], key[order]

    def apply(self, docs: list):
        seqs = [self.ids(d.text) for d in docs]
        sizes = np.array([len(s) + 1 for s in seqs], dtype=np.int64)
        at = np.r_[0, np.cumsum(sizes)[:-1]]
        joined = np.zeros(int(sizes.sum()), np.int32)  # a 0 after each document: no window spans two
        for a, s in zip(at, seqs, strict=True):
            joined[a: a + len(s)] = s
        pos, key = self.hits(joined)
        if not len(pos):
            return docs, [], []
        owner = np.searchsorted(at, pos, side="right") - 1
        kept, dropped, records = [], [], []
        hit_docs = set(owner.tolist())
        for d, doc in enumerate(docs):
            if d not in hit_docs:
                kept.append(doc)
                continue
            mine = owner == d
            text, out = self._found(doc, pos[mine] - at[d], key[mine])
            if not out:  # only short texts inside longer sentences
                kept.append(doc)
                continue
            records += out
            reason = f"decontam/{out[0]['task']}"
            if text is None or not _WORD.search(text):  # span mode: nothing but punctuation left
                dropped.append((doc, reason))
            else:
                kept.append(Doc(doc.id, doc.name, text))
        return kept, dropped, records

    def _found(self, doc, pos: np.ndarray, key: np.ndarray):
        """The document's match records (first match first) and its text after the cuts (None: dropped)."""
        ix, seen = self.ix, match_text(doc.text)
        spans = [m.span() for m in _WORD.finditer(seen)]
        per, cuts, tokens = {}, [], None  # example number -> [start, end]; the spans matched; token offsets
        for p, k in zip(pos.tolist(), key.tolist(), strict=True):
            L, at = int(ix.lengths[k]), slice(ix.ref_at[k], ix.ref_at[k + 1])
            s, e = spans[p][0], spans[p + L - 1][1]
            kinds, held = ix.ref_kind[at], GRAM if L == self.ngram else 0
            if L < self.ngram and (kinds & WHOLE).any() and _set_off(seen, s, e, L):
                held |= WHOLE
            if L < self.ngram and (kinds & SPAN).any():  # does it span n tokens here too?
                if tokens is None:
                    tokens = np.array([m.start() for m in _TOKEN.finditer(seen)], dtype=np.int64)
                if np.searchsorted(tokens, spans[p + L - 1][0], "right") - np.searchsorted(tokens, s, "right") >= \
                        self.ngram - 1:
                    held |= SPAN
            exs = ix.refs[at][(kinds & held) > 0]
            if len(exs):
                cuts.append((s, e))
            for ex in exs.tolist():
                lo_hi = per.setdefault(ex, [s, e])
                lo_hi[0], lo_hi[1] = min(lo_hi[0], s), max(lo_hi[1], e)
        records = []
        for ex, (s, e) in sorted(per.items(), key=lambda kv: (kv[1][0], kv[0])):
            task, split = self.names[ix.ex_split[ex]]
            records.append({"id": doc.name, "task": task, "split": split, "example": int(ix.ex_index[ex]),
                            "start": s, "end": e, "text": doc.text[s:e]})
        if not self.span:
            return None, records
        text, last = [], 0
        for s, e in sorted(cuts):
            if e <= last:
                continue
            piece = doc.text[last: max(s, last)]
            text.append(piece)
            last = e
        text.append(doc.text[last:])
        return _join(text), records


def _set_off(text: str, start: int, end: int, words: int) -> bool:
    """Whether the whole short text of `words` words at text[start:end] stands apart: as a sentence (a
    stop, a blank line or the document's edge on both sides, quotes and brackets aside) below SENTENCE words,
    set off on both sides (no word right before it nor right after it) below ALONE, on one side from there."""
    if words < SENTENCE:
        return _stop_before(text, start) and _stop_after(text, end)
    while start > 0 and text[start - 1].isspace():
        start -= 1
    while end < len(text) and text[end].isspace():
        end += 1
    before, after = not (start > 0 and text[start - 1].isalnum()), not (end < len(text) and text[end].isalnum())
    return before and after if words < ALONE else before or after


def _stop_before(text: str, i: int) -> bool:
    """A sentence ends right before text[i:]: a stop, a blank line or the document's start, past spaces,
    quotes and brackets."""
    j = i
    while j > 0 and (text[j - 1].isspace() or text[j - 1] in _QUOTES):
        j -= 1
    return j == 0 or text[j - 1] in ".!?" or _BLANK_LINE.search(text, j, i) is not None


def _stop_after(text: str, i: int) -> bool:
    """The sentence ends at text[i]: a stop, a blank line or the document's end, past spaces, quotes and brackets."""
    j = i
    while j < len(text) and (text[j].isspace() or text[j] in _QUOTES):
        j += 1
    return j == len(text) or text[j] in ".!?" or _BLANK_LINE.search(text, i, j) is not None


def _join(pieces: list[str]) -> str:
    """The pieces left after cutting, a space where two words would otherwise touch."""
    out = pieces[0]
    for piece in pieces[1:]:
        if out and piece and not out[-1].isspace() and not piece[0].isspace():
            out += " "
        out += piece
    return out
