"""Exact and near dedup through Beam: real near-duplicates removed, unrelated kept, lowest id kept,
huge buckets, transitive chains, the Jaccard check, and identical results on 1 and 2 workers."""

import json
import os
import random
import time
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import minhash
from pipeline.dedup import DedupConfig, ExactDedup, NearDedup, _star_edges
from pipeline.document import Doc

SHARED = Path(os.environ.get("CRAMKIT_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
INAUGURAL = SHARED / "text" / "nltk_inaugural"


def run(docs, cfg, tmp_path, stages=("exact", "near"), workers=1):
    """Run the stages in order; return (kept ids, sorted drops, counters)."""
    mode = "multi_processing" if workers > 1 else "in_memory"
    opts = PipelineOptions(runner="FnApiRunner", direct_num_workers=workers, direct_running_mode=mode)
    out = tmp_path / f"run{time.monotonic_ns()}"
    with beam.Pipeline(options=opts) as p:
        kept = p | beam.Create(docs)
        drops = []
        for stage in stages:
            kept, dropped = kept | stage >> (ExactDedup if stage == "exact" else NearDedup)(cfg)
            drops.append(dropped)
        kept | "KeptJson" >> beam.Map(lambda d: json.dumps(d.id)) | "Kept" >> beam.io.WriteToText(str(out / "kept"))
        (drops | beam.Flatten() | "DropJson" >> beam.Map(lambda d: json.dumps(list(d)))
         | "Dropped" >> beam.io.WriteToText(str(out / "dropped")))
    read = lambda prefix: [json.loads(line) for f in sorted(out.glob(prefix + "*")) for line in f.open()]  # noqa: E731
    counters = {c.key.metric.name: c.committed for c in p.result.metrics().query()["counters"]}
    return sorted(read("kept")), sorted(tuple(d) for d in read("dropped")), counters


def random_text(rng, n, vocab=4000):
    return " ".join(f"w{int(rng.paretovariate(1.1)) % vocab}" for _ in range(n))


def edit_words(text, k, rng):
    ws = text.split()
    for i in rng.sample(range(len(ws)), k):
        ws[i] = "edited" + ws[i]
    return " ".join(ws)


def real_docs():
    if not INAUGURAL.is_dir():
        pytest.skip(f"real text not found at {INAUGURAL}")
    return {f.stem: f.read_text(encoding="utf-8", errors="replace") for f in sorted(INAUGURAL.glob("*.txt"))}


def near_variants(text, rng):
    """Edited copies of one document, as the acceptance describes them."""
    sentences = text.replace("\r\n", "\n").split(". ")
    mid = len(sentences) // 2
    return {
        "words": edit_words(text, 3, rng),
        "added": ". ".join(sentences[:mid] + ["We add here one sentence that was never in the original text"]
                           + sentences[mid:]),
        "removed": ". ".join(sentences[:mid] + sentences[mid + 1 :]),
        "header": "Address delivered before the assembled crowd, as printed in the evening paper\n\n"
                  + text.split("\n", 1)[1],
    }


def jac(a, b):
    return minhash.jaccard(minhash.shingle_set(a, 5), minhash.shingle_set(b, 5))


def test_exact_keeps_the_lowest_id(tmp_path):
    docs = [Doc("s:3", "same text"), Doc("s:1", "same text"), Doc("s:2", "other text"), Doc("s:0", "same text"),
            Doc("s:4", "Same text")]
    kept, drops, counters = run(docs, DedupConfig(), tmp_path, stages=("exact",))
    assert kept == ["s:0", "s:2", "s:4"]
    assert drops == [("s:1", "dedup/exact", 9), ("s:3", "dedup/exact", 9)]
    assert counters["dedup/exact"] == 2


def test_near_removes_edited_copies_of_real_documents_and_keeps_the_rest(tmp_path):
    texts = real_docs()
    rng = random.Random(5)
    originals = sorted(name for name, t in texts.items() if len(t.split()) >= 800)[:12]
    docs = [Doc(f"a:{name}", texts[name]) for name in texts]
    expected_drops = set()
    for name in originals:
        for kind, variant in near_variants(texts[name], rng).items():
            assert jac(variant, texts[name]) >= 0.8, (name, kind)
            docs.append(Doc(f"b:{name}:{kind}", variant))
            expected_drops.add(f"b:{name}:{kind}")
    # a copy with a lower id than its original wins; the original is the one dropped
    docs.append(Doc("0:first", edit_words(texts[originals[0]], 2, rng)))
    expected_drops.add(f"a:{originals[0]}")
    kept, drops, counters = run(docs, DedupConfig(), tmp_path)
    assert {d[0] for d in drops} == expected_drops
    assert {d[1] for d in drops} == {"dedup/near"}
    assert len(kept) + len(drops) == len(docs) == len(set(kept) | {d[0] for d in drops})
    assert counters["dedup/near"] == len(expected_drops)


def test_unrelated_and_partly_overlapping_documents_are_kept(tmp_path):
    rng = random.Random(11)
    boiler = random_text(rng, 60)
    docs = [Doc(f"r:{i:03d}", random_text(rng, 300)) for i in range(150)]
    # share a 60-word boilerplate block with ~300 own words: Jaccard ~0.1, not near-duplicates
    docs += [Doc(f"p:{i:03d}", boiler + " " + random_text(rng, 300)) for i in range(30)]
    kept, drops, _ = run(docs, DedupConfig(), tmp_path)
    assert drops == [] and len(kept) == len(docs)


@pytest.mark.slow
def test_huge_identical_bucket(tmp_path):
    rng = random.Random(2)
    boiler = random_text(rng, 80)
    n = 4000
    ids = [f"b:{i:05d}" for i in range(n)]
    rng.shuffle(ids)
    docs = [Doc(i, boiler) for i in ids] + [Doc(f"u:{i:03d}", random_text(rng, 200)) for i in range(50)]
    start = time.monotonic()
    kept, drops, counters = run(docs, DedupConfig(), tmp_path, stages=("near",))
    assert time.monotonic() - start < 120
    assert kept == ["b:00000"] + [f"u:{i:03d}" for i in range(50)]
    assert len(drops) == n - 1 and counters["dedup/near"] == n - 1


def chain(rng, length, words=400):
    """Documents where each is a near-duplicate of the next, while the ends are far apart."""
    ws = random_text(rng, words).split()
    out = []
    for _ in range(length):
        out.append(" ".join(ws))
        for i in rng.sample(range(words), 3):
            ws[i] = f"c{rng.randrange(10**6)}"
    return out


def test_transitive_chain_resolves_to_the_lowest_id(tmp_path):
    rng = random.Random(8)
    texts = chain(rng, 48)
    assert jac(texts[0], texts[-1]) < 0.3 and min(jac(a, b) for a, b in zip(texts, texts[1:], strict=False)) > 0.85
    ids = [f"c:{i:03d}" for i in range(len(texts))]
    rng.shuffle(ids)  # the lowest id sits somewhere in the middle of the chain
    docs = [Doc(i, t) for i, t in zip(ids, texts, strict=True)]
    docs += [Doc(f"z:{i}", random_text(rng, 300)) for i in range(5)]
    kept, drops, counters = run(docs, DedupConfig(), tmp_path, stages=("near",))
    assert kept == ["c:000"] + [f"z:{i}" for i in range(5)]
    assert counters.get("near_cc_unconverged", 0) == 0
    # with no rounds the stars are not merged: more than one member survives, never none, and it is counted
    kept0, _, counters0 = run(docs, DedupConfig(max_cc_rounds=0), tmp_path, stages=("near",))
    chain_kept = [k for k in kept0 if k.startswith("c:")]
    assert "c:000" in chain_kept and len(chain_kept) > 1 and counters0["near_cc_unconverged"] > 0


def test_jaccard_check_rejects_false_candidates(tmp_path):
    """28 bands of 1 row make every pair sharing any minimum a candidate; only true near-dups survive the check."""
    rng = random.Random(4)
    base = random_text(rng, 200)
    half = " ".join(base.split()[:100]) + " " + random_text(rng, 100)  # Jaccard ~0.3 to base
    close = edit_words(base, 1, rng)  # Jaccard ~0.95 to base
    docs = [Doc("a", base), Doc("b", half), Doc("c", close)]
    loose = dict(num_perm=28, bands=28, rows=1)
    kept, drops, counters = run(docs, DedupConfig(**loose), tmp_path, stages=("near",))
    assert kept == ["a", "b"] and [d[0] for d in drops] == ["c"]
    assert counters["near_pairs_rejected"] >= 1
    kept, _, _ = run(docs, DedupConfig(**loose, jaccard_check=False), tmp_path, stages=("near",))
    assert kept == ["a"]


def test_bucket_members_link_to_the_lowest_anchors():
    """With 2 anchors a false-positive bucket minimum ("a") cannot cut "b" and "c" apart: c -> b is checked too."""
    bucket = (b"key", ["c", "a", "d", "b"])
    assert sorted(_star_edges(bucket, 1)) == [("b", "a"), ("c", "a"), ("d", "a")]
    assert sorted(_star_edges(bucket, 2)) == [("b", "a"), ("c", "a"), ("c", "b"), ("d", "a"), ("d", "b")]


def test_short_documents_are_left_to_exact_dedup(tmp_path):
    docs = [Doc("a", "one two three four five six"), Doc("b", "one two three four five six seven")]
    kept, drops, counters = run(docs, DedupConfig(min_words=10), tmp_path, stages=("near",))
    assert kept == ["a", "b"] and counters["near_too_short"] == 2


def test_disabled_stages_pass_everything(tmp_path):
    docs = [Doc("a", "x " * 50), Doc("b", "x " * 50)]
    kept, drops, _ = run(docs, DedupConfig(exact=False, near=False), tmp_path)
    assert kept == ["a", "b"] and drops == []


@pytest.mark.slow
def test_one_and_two_workers_give_identical_results(tmp_path):
    rng = random.Random(9)
    texts = chain(rng, 12) + [random_text(rng, 250) for _ in range(40)]
    texts += [texts[3]] * 5 + [edit_words(texts[20], 2, rng) for _ in range(4)]
    ids = [f"d:{i:04d}" for i in range(len(texts))]
    rng.shuffle(ids)
    docs = [Doc(i, t) for i, t in zip(ids, texts, strict=True)]
    one = run(docs, DedupConfig(batch_size=7), tmp_path, workers=1)
    two = run(docs, DedupConfig(batch_size=7), tmp_path, workers=2)
    assert one[:2] == two[:2]
    assert len(one[1]) >= 15 and {d[1] for d in one[1]} == {"dedup/exact", "dedup/near"}
