"""Quality scores through the real pipeline, on a 50/50 mix of real prose (../shared/data/text) and junk
made here (word salad from the prose's own words, keyword listings) plus raw Common Crawl pages
(../shared/data/web, when present), with other books as the reference: AUC per kind, a score on every
clean record, the keep_fraction and threshold cuts, the same output on 1 and 2 workers and from a
reloaded scorer, the stage accounting, and the same shards on 1 and 2 workers, whose manifest and report
carry the cut."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.__main__ import main
from pipeline.cleaning import quality, wordlm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from conftest import SHARED  # noqa: E402
from quality_mix import aucs, make_mix, read_clean  # noqa: E402

GOOD = ("austen-persuasion", "chesterton-thursday")
REFERENCE = ("austen-emma", "chesterton-brown", "shakespeare-caesar")


@pytest.fixture(scope="module")
def mix(tmp_path_factory, shared_text):
    root = tmp_path_factory.mktemp("quality")
    books = shared_text / "nltk_gutenberg"
    counts = make_mix([books / f"{b}.txt" for b in GOOD], SHARED / "web", root / "in", 150, seed=3)
    reference = "quality.reference=" + ",".join(str(books / f"{b}.txt") for b in REFERENCE)
    return {"root": root, "in": root / "in", "counts": counts, "reference": reference}


def run(mix, name, *overrides, workers=1, until="clean"):
    out = mix["root"] / name
    assert main(["--input", str(mix["in"]), "--output", str(out), "--until", until, "--workers", str(workers),
                 "quality.sample_chars=2000000", *overrides]) == 0
    return out, json.loads((out / "stats.json").read_text())


@pytest.fixture(scope="module")
def everything(mix):
    """keep_fraction=1.0: every document that survives the filters and dedup, scored."""
    return run(mix, "all", mix["reference"], "quality.keep_fraction=1.0")


def test_every_clean_record_scored_and_junk_below_prose(mix, everything):
    out, stats = everything
    rows = read_clean(out)
    assert rows and all(isinstance(q, float) and np.isfinite(q) for _, q in rows)
    assert len(rows) == stats["documents"]["kept"] == stats["stages"]["quality"]["docs"]
    kinds = {k for k, _ in rows}
    assert {"good", "salad", "keywords"} <= kinds
    found = aucs(rows)
    assert found["all"] >= 0.95, found
    for kind in kinds - {"good"}:
        assert found[kind] >= 0.90, (kind, found)
    assert stats["documents"]["balanced"] and "filter/quality" not in stats["dropped"]
    assert stats["quality"]["threshold"] is None and len(stats["quality"]["scorer_sha256"]) == 64
    assert sorted(p.name for p in (out / "quality").iterdir()) == sorted(quality.FILES)


def test_keep_fraction_on_two_workers_and_a_reloaded_scorer(mix, everything):
    out_all, stats_all = everything
    scores = dict((r["id"], r["quality"]) for r in _records(out_all))
    half, stats = run(mix, "half", mix["reference"], "quality.keep_fraction=0.5")
    kept = _records(half)
    # the cut is the median of all the scores (the sample holds every document here)
    assert abs(len(kept) - len(scores) / 2) <= 1
    assert min(r["quality"] for r in kept) >= stats["quality"]["threshold"] - 1e-4  # records round to 4 places
    assert all(scores[r["id"]] == r["quality"] for r in kept)
    assert sum(r["id"].split(":")[1] == "good.jsonl" for r in kept) >= 0.9 * len(kept)
    drop = stats["dropped"]["filter/quality"]
    assert drop["docs"] == len(scores) - len(kept) and stats["documents"]["balanced"]
    assert stats["stages"]["quality"]["docs"] == len(kept) == stats["documents"]["kept"]
    # the scorer saved by the first run, reloaded, on two workers: the same scores, cut and files
    again, stats2 = run(mix, "again", f"quality.model={out_all / 'quality'}", "quality.keep_fraction=0.5",
                        workers=2)
    assert stats2["quality"] == stats["quality"]
    assert stats2["quality"]["scorer_sha256"] == stats_all["quality"]["scorer_sha256"]
    assert _files(again) == _files(half)


def test_threshold_keeps_exactly_the_documents_at_or_above_it(mix, everything):
    scores = sorted(r["quality"] for r in _records(everything[0]))
    threshold = scores[len(scores) // 4] - 0.00005  # half a unit of the records' rounding below one score
    out, stats = run(mix, "threshold", f"quality.model={everything[0] / 'quality'}", f"quality.threshold={threshold}")
    assert sorted(r["quality"] for r in _records(out)) == [s for s in scores if s >= threshold]
    assert stats["quality"]["threshold"] == threshold


def test_shards_on_one_and_two_workers_record_the_cut(mix, everything):
    settings = (f"quality.model={everything[0] / 'quality'}", "quality.keep_fraction=0.6", "tokenizer.vocab_size=2000",
                "tokenizer.compression_cutoff=1.0")
    out, stats = run(mix, "shards", *settings, until="shards")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quality"] == stats["quality"] and stats["quality"]["keep_fraction"] == 0.6
    assert stats["dropped"]["filter/quality"]["docs"] > 0 and stats["documents"]["balanced"]
    assert (out / "report.png").stat().st_size > 0 and (out / "quality").is_dir()
    two, _ = run(mix, "shards2", *settings, until="shards", workers=2)
    assert json.loads((two / "manifest.json").read_text())["content_hash"] == manifest["content_hash"]
    assert {p.name: p.read_bytes() for p in two.glob("shard-*")} == {p.name: p.read_bytes() for p in out.glob("shard-*")}


def test_bad_settings_fail_in_one_line(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("some text\n")
    assert main(["--input", str(src), "--output", str(tmp_path / "o"), f"quality.model={tmp_path}"]) == 2
    assert "quality.model" in capsys.readouterr().err
    assert main(["--input", str(src), "--output", str(tmp_path / "o"), f"quality.reference={tmp_path}/none"]) == 2
    assert "quality.reference" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not both"):
        quality.QualityConfig(reference="x", keep_fraction=0.5, threshold=0.0)


def test_language_model_is_a_distribution():
    """Interpolated Kneser-Ney: for every history, the probabilities of all next words sum to 1."""
    docs = [s.split() for s in ("the cat sat on the mat", "the dog sat on the log", "a cat and a dog",
                                "the mat and the log", "on the cat the dog sat")] * 3
    lm = wordlm.BigramLM.train(docs, quality.QualityConfig(reference="x"))
    v = lm.size
    seen = dict(zip(lm.keys.tolist(), np.exp(lm.logp.astype(np.float64)).tolist(), strict=True))
    for h in range(v):
        total = sum(seen.get(h * v + w, np.exp(lm.log_backoff[h] + lm.log_unigram[w])) for w in range(1, v))
        assert total == pytest.approx(1.0, abs=1e-4)
    good, salad = lm.measures([["the", "cat", "sat", "on", "the", "mat"], ["mat", "the", "on", "sat", "cat", "the"]])
    assert good[0] > salad[0] and good[1] > salad[1]


def _records(out: Path) -> list[dict]:
    import zstandard

    return [json.loads(line) for f in sorted(out.glob("docs-*.jsonl.zst"))
            for line in zstandard.ZstdDecompressor().stream_reader(f.open("rb")).read().decode().splitlines()]


def _files(out: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(out.glob("docs-*"))}


def test_the_classifier_trains_the_same_in_a_used_heap(tmp_path):
    """fastText trains on memory it does not fully initialize: after blocks full of NaN were freed in this
    process, training here must neither fail nor change the model."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(2000)]
    docs = [" ".join(rng.choice(words, 40)) for _ in range(800)]
    cfg = quality.QualityConfig(reference="unused")
    models = []
    for i in range(2):
        junk = [np.full(n, np.nan, dtype=np.float32) for n in (*range(8, 40_000, 97), 800_000, 1 << 20, 2_000_000)]
        del junk
        folder = tmp_path / str(i)
        folder.mkdir()
        model = quality.train_classifier(docs[:400], docs[400:], cfg, str(folder))
        models.append(quality.classifier_logodds(model, docs[:50]))
    assert np.isfinite(models[0]).all() and np.array_equal(models[0], models[1])
