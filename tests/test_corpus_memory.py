"""Bounded memory: the corpus pipeline's peak RSS (summed over every process of the run) must not grow
with its input. Two runs of held-out-style prose (the real text, a quarter to two fifths of each
paragraph's words replaced, as benchmarks/corpus_scale.py makes it) of 4 and 40 MB; the tokenizer's
sample and the shard size are capped low so that the fixed costs are reached in both, leaving what
grows with the input. Files are read in ranges of 4 MB, so work units are the same size in both: the
design keeps every process's share to one unit or one partition. The goal for the default config, measured at 40 and 400 MB, is <= 1 MB per MB
(BENCHMARKS.md); this checks the same slope on a scale a test can afford."""

import json
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus_scale  # noqa: E402
import procmem  # noqa: E402

SLOPE = 1.0  # MB of peak RSS per MB of input


def prose(folder: Path, mb: float, base: list[str], vocab: list[str]) -> Path:
    rng = random.Random(int(mb))
    folder.mkdir()
    written, i = 0, 0
    with open(folder / "prose.jsonl", "w") as f:
        while written < mb * 1e6:
            line = json.dumps({"text": corpus_scale.edit(base[i % len(base)], rng, vocab)}) + "\n"
            f.write(line)
            written += len(line)
            i += 1
    return folder


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_input(shared_text, tmp_path):
    base, vocab = corpus_scale.source(shared_text, seed=1)
    peaks = {}
    for mb in (4, 40):
        inputs = prose(tmp_path / f"in{mb}", mb, base, vocab)
        cmd = [sys.executable, "-m", "pipeline", "--input", str(inputs), "--output", str(tmp_path / f"out{mb}"),
               "--split-mb", "4", "tokenizer.sample_chars=2000000", "shards.rows_per_shard=20000"]
        with open(tmp_path / f"log{mb}.txt", "w") as log:
            usage = procmem.run(cmd, stdout=log, stderr=log, cwd=ROOT)
        assert usage.returncode == 0, (tmp_path / f"log{mb}.txt").read_text()[-2000:]
        stats = json.loads((tmp_path / f"out{mb}" / "stats.json").read_text())
        assert stats["documents"]["kept"] > 0.9 * stats["documents"]["read"] - stats["dropped"].get(
            "filter/too_few_words", {"docs": 0})["docs"]  # the copies survive dedup: the work is real
        peaks[mb] = usage.peak_rss_mb
    slope = (peaks[40] - peaks[4]) / 36
    assert slope <= SLOPE, f"peak RSS {peaks} MB: {slope:.2f} MB per MB of input"
