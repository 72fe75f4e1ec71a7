"""Quality scores: how much a document looks like trusted reference text, by two models of it.

Training (one step, after the scan; deterministic, on bounded samples):
- the reference (`quality.reference=PATH[,PATH...]`) is read through the pipeline's own reader and
  normalized and filtered like the input, at most `sample_chars` characters, the same share from each of
  its work units. A hash of each document's id holds out `holdout` of them for calibration;
- (a) a fastText classifier (DCLM's recipe): reference documents (positives) against as many documents
  sampled from the input (negatives: the scan's tokenizer sample), word unigrams and bigrams, one thread
  and a fixed seed; small: `ft_dim` floats per word and per bigram hash bucket (`ft_bucket`), ~4 MB;
- (b) a word bigram language model of the reference (CCNet-style perplexity; pipeline.cleaning.wordlm):
  interpolated Kneser-Ney with absolute discount `lm_discount` over the `lm_vocab` most common words
  (the rarer ones share one unknown word, which then costs its probability divided among the word types
  it stands for) and at most `lm_bigrams` stored bigrams (the most frequent; the others back off). A batch of documents is
  scored at once, vectorized: word ids and bigram keys are looked up with searchsorted in sorted tables.
Both read the text lowercased, its words split at whitespace.

Three signals per document: the classifier's log-odds of "reference"; the language model's mean
log-probability per word (low for keyword listings, markup, foreign text); its mean pointwise mutual
information of each word with the one before, log P(w | prev) - log P(w) (near zero for word salad,
even salad of the reference's own words, whose perplexity alone looks ordinary). Each is measured
against the held-out reference documents as a robust z-score, (value - their median) / their spread
(interquartile range / 1.349), and the quality is the lowest of the three: a document must look like
the reference under every signal. 0 is typical reference text; -3 is three spreads below it on the
signal where the document fits worst. (On a mix of book prose and junk the language model's two
signals separate every kind; the classifier, trained against an input that is half good prose, adds
little there: BENCHMARKS.md, "Quality scores".)

Outputs: `quality/classifier.ftz`, `quality/lm.npz` and `quality/calibration.json` in the output
folder; `quality.model=DIR` loads them from an earlier output instead of training. The scorers' hash
(sha256 over the three files) goes to stats.json and the shard manifest with the cut.

The cut: `quality.threshold` (a fixed score) or `quality.keep_fraction` (a global quantile of the
scores, estimated from a sample of about `score_sample` of them chosen by a hash of the document id, so
it is the same on any worker count). Documents below it are dropped as "filter/quality"; every clean
record carries its score as "quality".
"""

import hashlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from configs import setting
from pipeline.cleaning.filters import Filters
from pipeline.cleaning.normalize import PRESETS
from pipeline.cleaning.wordlm import BigramLM
from pipeline.document import Doc
from pipeline.duplicates import minhash
from pipeline.duplicates.dedup import losers_of
from pipeline.files import storage
from pipeline.graph import docstore, progress
from pipeline.graph.plan import STAGES, sample_hash
from pipeline.graph.stats import Tally
from pipeline.reading.inputs import expand
from pipeline.reading.sources import Reader

DROP_REASON = "filter/quality"
FILES = ("classifier.ftz", "lm.npz", "calibration.json")
SCORE = np.dtype([("id", "<i8"), ("chars", "<u4"), ("score", "<f4")])
LABELS = ("__label__reference", "__label__input")
_BATCH = 256  # documents normalized and filtered together


@dataclass(frozen=True)
class QualityConfig:
    """`quality.*` in the corpus config. Off unless `reference` or `model` is set."""

    reference: str = setting("PATH[,PATH...]: files, folders or globs of trusted text (any --input format)", "")
    model: str = setting("an earlier output's quality/ folder: reuse its models instead of training", "")
    keep_fraction: float = setting("keep this fraction of the documents, the best-scoring ones", 1.0)
    threshold: float | None = setting("or: keep documents scoring at least this (keep_fraction stays 1)", None)
    sample_chars: int = setting("reference characters read, and input characters sampled, for training",
                                20_000_000)
    holdout: float = setting("fraction of reference documents (by id hash) held out to calibrate the scores",
                             0.1)
    score_sample: int = setting("scores sampled to place the keep_fraction cut", 100_000)
    seed: int = setting("seeds the held-out split and fastText's training (its row order and own seed)", 1)
    ft_dim: int = setting("fastText: vector size", 8)
    ft_bucket: int = setting("fastText: hash buckets of the bigrams", 100_000)
    ft_epoch: int = setting("fastText: epochs", 5)
    ft_lr: float = setting("fastText: learning rate", 0.1)
    lm_vocab: int = setting("language model: words kept (the rest are one unknown word)", 50_000)
    lm_bigrams: int = setting("language model: bigrams stored, the most frequent", 2_000_000)
    lm_discount: float = setting("language model: Kneser-Ney absolute discount", 0.75)

    def __post_init__(self):
        def bad(field, why):
            raise ValueError(f"quality.{field}={getattr(self, field)!r}: {why}")

        if not 0 < self.keep_fraction <= 1:
            bad("keep_fraction", "must be in (0, 1]")
        if self.threshold is not None and self.keep_fraction != 1:
            bad("threshold", "set quality.threshold or quality.keep_fraction, not both")
        if self.reference and self.model:
            bad("model", "set quality.reference (train) or quality.model (reuse), not both")
        if not 0 < self.holdout < 1:
            bad("holdout", "must be in (0, 1)")
        for field in ("sample_chars", "score_sample", "ft_dim", "ft_bucket", "ft_epoch", "lm_vocab", "lm_bigrams"):
            if getattr(self, field) < 1:
                bad(field, "must be a positive integer")
        if self.ft_bucket * self.ft_dim < 32_768:
            bad("ft_bucket", "ft_bucket x ft_dim must be at least 32768 (see _TRAIN)")
        if not 0 < self.lm_discount < 1:
            bad("lm_discount", "must be in (0, 1)")

    @property
    def enabled(self) -> bool:
        return bool(self.reference or self.model)

    @property
    def references(self) -> list[str]:
        return [p.strip() for p in self.reference.split(",") if p.strip()]


def line(text: str) -> str:
    """What both models read: the text lowercased, on one line (fastText reads one line per document);
    its words are the whitespace-separated tokens."""
    return text.lower().replace("\n", " ")


# ---- (a) the fastText classifier -------------------------------------------------------------------

def train_classifier(positives: list[str], negatives: list[str], cfg: QualityConfig, folder: str):
    """A fastText classifier of reference (positives) against input (negatives), saved in
    `folder` (a local temporary folder) as classifier.ftz; the model."""
    import fasttext

    n = min(len(positives), len(negatives))
    if n == 0:
        raise ValueError("quality: the classifier needs reference documents and input documents; one side is "
                         "empty after normalizing and filtering (check quality.reference and the input)")
    rows = [(LABELS[0], d) for d in positives[:n]] + [(LABELS[1], d) for d in negatives[:n]]
    order = np.argsort(minhash.mix64(np.arange(len(rows), dtype=np.uint64) + np.uint64(cfg.seed)), kind="stable")
    path = os.path.join(folder, "train.txt")
    with open(path, "w", encoding="utf-8") as f:
        for i in order:
            f.write(f"{rows[i][0]} {rows[i][1]}\n")
    target = os.path.join(folder, FILES[0])
    settings = {"dim": cfg.ft_dim, "epoch": cfg.ft_epoch, "lr": cfg.ft_lr, "wordNgrams": 2, "minCount": 1,
                "bucket": cfg.ft_bucket, "thread": 1, "seed": cfg.seed, "verbose": 0}
    done = subprocess.run([sys.executable, "-c", _TRAIN, path, target, json.dumps(settings)],
                          capture_output=True, text=True)
    os.remove(path)
    if done.returncode:
        raise RuntimeError(f"quality: fastText training failed: {done.stderr.strip().splitlines()[-1:]}")
    return fasttext.load_model(target)


# fastText trains on memory it does not fully initialize (on one thread, only the first tenth of its input
# matrix): in a process whose heap has been used, freed blocks hold garbage, and training stops with
# "Encountered NaN" (every time, in a test that first frees blocks full of NaN) or gives another model. So
# it trains in a fresh interpreter, with glibc's mmap threshold held at 128 KB (glibc otherwise raises it
# after large frees): the matrix, at least `ft_bucket` x `ft_dim` floats, is fresh mmap memory, all zeros.
_TRAIN = """
import ctypes, json, sys
try:
    ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
except (OSError, AttributeError):  # not glibc
    pass
import fasttext
fasttext.train_supervised(input=sys.argv[1], **json.loads(sys.argv[3])).save_model(sys.argv[2])
"""


def _load_fasttext(data: bytes):
    import fasttext

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, FILES[0])
        with open(path, "wb") as f:
            f.write(data)
        return fasttext.load_model(path)


def classifier_logodds(model, lines: list[str]) -> np.ndarray:
    """log(p / (1 - p)) of the reference label, p clipped to [1e-6, 1 - 1e-6]."""
    labels, probs = model.predict(lines, k=2)
    p = np.array([pr[list(lab).index(LABELS[0])] if LABELS[0] in lab else 0.0
                  for lab, pr in zip(labels, probs, strict=True)])
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


# ---- the score -------------------------------------------------------------------------------------

class Scorer:
    """Both models and their calibration; `score(texts)` -> float32 quality per text."""

    def __init__(self, classifier, lm: BigramLM, calibration: dict, sha256: str):
        self.classifier, self.lm, self.calibration, self.sha256 = classifier, lm, calibration, sha256

    def signals(self, texts: list[str]) -> np.ndarray:
        """[n, 3]: the three signals of each text (see `signals`)."""
        return signals(self.classifier, self.lm, [line(t) for t in texts])

    def score(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, np.float32)
        c = self.calibration
        z = (self.signals(texts) - np.array(c["median"])) / np.array(c["spread"])
        return np.maximum(z.min(axis=1), -1e6).astype(np.float32)

    @classmethod
    def load(cls, folder: str) -> "Scorer":
        missing = [n for n in FILES if not storage.exists(storage.join(folder, n))]
        if missing:
            raise ValueError(f"quality.model={folder}: no {', '.join(missing)} there; give the quality/ folder "
                             "of an earlier output")
        data = [storage.read_bytes(storage.join(folder, n)) for n in FILES]
        digest = hashlib.sha256(b"".join(hashlib.sha256(d).digest() for d in data)).hexdigest()
        return cls(_load_fasttext(data[0]), BigramLM.load(data[1]), json.loads(data[2]), digest)


def signals(classifier, lm: BigramLM, lines: list[str]) -> np.ndarray:
    """[n, 3]: the classifier's log-odds, the language model's mean log-probability per word and mean PMI."""
    return np.column_stack([classifier_logodds(classifier, lines), lm.measures([x.split() for x in lines])])


def calibrate(classifier, lm: BigramLM, held_out: list[str]) -> dict:
    """Median and spread (IQR / 1.349) of each signal over the held-out reference documents."""
    if len(held_out) < 2:
        raise ValueError("quality: fewer than 2 reference documents held out to calibrate the scores; give "
                         "more reference text or raise quality.holdout")
    s = signals(classifier, lm, held_out)
    q1, med, q3 = np.percentile(s, [25, 50, 75], axis=0)
    spread = np.maximum((q3 - q1) / 1.349, 1e-6)
    return {"signals": ["classifier_logodds", "lm_mean_logprob", "lm_mean_pmi"], "median": med.round(6).tolist(),
            "spread": spread.round(6).tolist(), "held_out_documents": len(held_out)}


def fit(reference: list[tuple[int, str]], negatives: list[str], cfg: QualityConfig, folder: str) -> None:
    """Train both models on the reference documents [(id, text)] and the input sample, calibrate them on
    the held-out reference documents, and write FILES into the local `folder`."""
    ids = np.fromiter((i for i, _ in reference), np.int64, len(reference))
    held = minhash.mix64(ids.astype(np.uint64) ^ np.uint64(cfg.seed)) < np.uint64(int(cfg.holdout * 2.0**64))
    lines = [line(t) for _, t in reference]
    train = [x for x, h in zip(lines, held, strict=True) if not h]
    held_out = [x for x, h in zip(lines, held, strict=True) if h]
    classifier = train_classifier(train, [line(t) for t in negatives], cfg, folder)
    lm = BigramLM.train([x.split() for x in train], cfg)
    lm.save(os.path.join(folder, FILES[1]))
    with open(os.path.join(folder, FILES[2]), "w") as f:
        json.dump(calibrate(classifier, lm, held_out), f, indent=1)


# ---- the pipeline's steps --------------------------------------------------------------------------

class Cut(NamedTuple):
    """The result of the cut step: what write_docs / encode apply and what stats, manifest and report say."""

    threshold: float  # documents scoring below it are dropped (-inf: none)
    keep_fraction: float
    sha256: str  # the scorers' hash
    sample: np.ndarray  # the sampled scores (float32), for the report's histogram

    def record(self) -> dict:
        return {"scorer_sha256": self.sha256, "threshold": None if np.isinf(self.threshold) else self.threshold,
                "keep_fraction": self.keep_fraction, "sampled_scores": int(len(self.sample))}


def folder(plan) -> str:
    return storage.join(plan.out, "quality")


def scores_file(plan, unit: int) -> str:
    return plan.unit_file(unit, "quality.bin")


def check_model(cfg: QualityConfig) -> None:
    """Fail before the pipeline starts when `quality.model` lacks a model file."""
    missing = [n for n in FILES if not storage.exists(storage.join(cfg.model, n))]
    if missing:
        raise ValueError(f"quality.model={cfg.model}: no {', '.join(missing)} there; give the quality/ folder of "
                         "an earlier output")


def _clean(cfg, docs: list, filters: Filters) -> list:
    fn = PRESETS[cfg.normalize.preset]
    docs = [d._replace(text=fn(d.text)) for d in docs]
    return filters.apply([d for d in docs if d.text.strip()])[0]


def read_reference(cfg) -> list[tuple[int, str]]:
    """The reference documents [(id, text)], read, normalized and filtered like the input: at most
    `sample_chars` characters, the same share from every work unit of the reference."""
    found = expand(cfg.quality.references, cfg.source.text_mode, follow_symlinks=cfg.source.follow_symlinks)
    per_unit, reader = cfg.quality.sample_chars // max(len(found.units), 1), Reader(cfg.source, cfg.web)
    filters = Filters(cfg.filters)
    out = []
    for unit in found.units:
        chars, batch = 0, []
        for doc in reader.read(unit):
            if isinstance(doc, Doc):
                batch.append(doc)
            if len(batch) == _BATCH:
                kept = _clean(cfg, batch, filters)
                out += [(d.id, d.text) for d in kept]
                chars += sum(len(d.text) for d in kept)
                batch = []
                if chars >= per_unit:
                    break
        out += [(d.id, d.text) for d in _clean(cfg, batch, filters)]
    failed = [f"{f['path']}: {f['error']}" for f in reader.files if f["error"]]
    if failed:
        raise ValueError(f"quality.reference: cannot read {failed[0]}")
    return out


def input_sample(cfg, plan, scans: list) -> list[str]:
    """Texts of the input for the classifier's negatives: the scan's tokenizer sample, at most
    `sample_chars` characters, the same share from every unit."""
    per_unit, out = cfg.quality.sample_chars // max(plan.units, 1), []
    for scan in sorted(scans, key=lambda s: s.unit):
        batches = docstore.batches(plan.unit_file(scan.unit, "sample.arrow"), scan.sample)
        chars = 0
        for text in itertools.chain.from_iterable(texts for _, _, texts in batches):  # read lazily
            if chars >= per_unit:
                break
            out.append(text)
            chars += len(text)
    return out


def train(cfg, plan, scans: list) -> tuple[str, Tally]:
    """The training step (one worker): both models trained on the reference and the input sample, or
    copied from `quality.model`, written to the output's quality/ folder; the scorers' hash and a tally."""
    start, dest = time.perf_counter(), folder(plan)
    if cfg.quality.model:
        for name in FILES:
            storage.write_bytes(storage.join(dest, name), storage.read_bytes(storage.join(cfg.quality.model, name)))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            fit(read_reference(cfg), input_sample(cfg, plan, scans), cfg.quality, tmp)
            for name in FILES:
                with open(os.path.join(tmp, name), "rb") as f:
                    storage.write_bytes(storage.join(dest, name), f.read())
    tally = Tally()
    tally.took("quality_train", time.perf_counter() - start)  # the score step's seconds are "quality"
    return Scorer.load(dest).sha256, tally


class Scoring:
    """The score step (per unit, the scorer loaded once per worker): scores every document the dedup
    decisions keep, writes them (SCORE records, id order) for the cut, and returns (unit, the sampled
    scores, tally). Sampled: documents whose id hash is below `below` (pipeline.graph.plan.sample_hash)."""

    def __init__(self, cfg, plan):
        self.cfg, self.plan, self.scorer = cfg, plan, None

    def __call__(self, scan, decisions, below: int):
        if self.scorer is None:
            self.scorer = Scorer.load(folder(self.plan))
        plan, tally, start = self.plan, Tally(), time.perf_counter()
        gone, parts, sample = losers_of(scan.unit, decisions), [], []
        for ids, _, texts in docstore.batches(plan.unit_file(scan.unit, "docs.arrow"), scan.docs):
            live = np.flatnonzero(~np.isin(ids, gone))
            rec = np.empty(len(live), SCORE)
            rec["id"] = ids[live]
            rec["chars"] = [len(texts[i]) for i in live]
            rec["score"] = self.scorer.score([texts[i] for i in live])
            parts.append(rec)
            sample.append(rec["score"][sample_hash(rec["id"]) < np.uint64(below)])
        rec = np.concatenate(parts) if parts else np.zeros(0, SCORE)
        if len(rec):
            storage.write_bytes(scores_file(plan, scan.unit), rec.tobytes())
        tally.took("quality", time.perf_counter() - start)
        progress.advance("quality scores", plan.units)
        return scan.unit, np.concatenate(sample) if sample else np.zeros(0, np.float32), tally


def sample_below(cfg: QualityConfig, scans: list) -> int:
    """The id-hash bound that samples about `score_sample` of the documents the scan staged."""
    def staged(scan) -> int:  # what the scan's last stage passed on
        stages = [k for k in STAGES if k in scan.tally.out]
        return scan.tally.out[stages[-1]][0] if stages else 0

    return min(int(min(1.0, cfg.score_sample / max(sum(map(staged, scans)), 1)) * 2.0**64), 2**64 - 1)


def cut(cfg: QualityConfig, sha256: str, scored: list) -> Cut:
    """The threshold: `threshold`, or the (1 - keep_fraction) quantile of the sampled scores."""
    sample = np.sort(np.concatenate([s for _, s, _ in sorted(scored, key=lambda x: x[0])] or [np.zeros(0, np.float32)]))
    if cfg.threshold is not None:
        threshold = float(cfg.threshold)
    elif cfg.keep_fraction >= 1 or not len(sample):
        threshold = -np.inf
    else:
        threshold = float(np.quantile(sample.astype(np.float64), 1 - cfg.keep_fraction))
    return Cut(threshold, cfg.keep_fraction, sha256, sample)


def unit_scores(plan, unit: int) -> np.ndarray:
    """A unit's SCORE records (id order; empty when it scored nothing)."""
    path = scores_file(plan, unit)
    return np.frombuffer(storage.read_bytes(path), SCORE) if storage.exists(path) else np.zeros(0, SCORE)


def lookup(records: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The scores of `ids` (NaN for ids without one: dedup losers)."""
    at = np.minimum(np.searchsorted(records["id"], ids), max(len(records) - 1, 0))
    found = records["id"][at] == ids if len(records) else np.zeros(len(ids), bool)
    return np.where(found, records["score"][at] if len(records) else 0, np.nan)


def drops(plan, threshold: float, unit: int) -> Tally:
    """The drop step (per unit): its documents below the cut, counted as "filter/quality"."""
    rec, tally = unit_scores(plan, unit), Tally()
    below = rec["score"] < threshold
    if below.any():
        tally.drop(DROP_REASON, int(rec["chars"][below].sum()), docs=int(below.sum()))
    return tally
