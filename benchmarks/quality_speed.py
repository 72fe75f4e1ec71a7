"""Scoring speed of cramkit's quality scores beside datatrove's fastText filter, on the same documents,
one process each (MB/s of UTF-8 text per core).

1. The mix of benchmarks/quality_mix.py (prose, word salad, keyword listings, raw web pages) goes through
   `python -m pipeline --until clean quality.reference=...`, which trains the scorers; its clean records
   (normalized text, what the score step reads) are the benchmark corpus.
2. cramkit: `quality.Scorer.score` (fastText classifier + bigram language model + calibration) over the
   corpus in batches of 256 documents.
3. datatrove 0.10.1: `FastTextClassifierFilter` with the same fastText model over the same texts, one
   document at a time as its pipeline calls it (benchmarks/datatrove_fasttext.py, in datatrove's venv:
   `python benchmarks/corpus_pipeline.py --setup` creates it).
Rounds alternate one pass of each (`--repeats`); medians and the median of the rounds' ratios are reported.

    python benchmarks/quality_speed.py [--text DATA/text --web DATA/web] [--docs 3000]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from corpus_pipeline import DT_PYTHON, WORK  # noqa: E402
from quality_mix import DATA, make_mix, run  # noqa: E402

GOOD = "austen-emma,austen-persuasion,melville-moby_dick,chesterton-brown,chesterton-thursday,whitman-leaves"
REFERENCE = "austen-sense,chesterton-ball,shakespeare-hamlet,milton-paradise"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", type=Path, default=DATA / "text", help="a folder holding nltk_gutenberg/")
    ap.add_argument("--web", type=Path, default=DATA / "web", help="a folder of Common Crawl WARC / WET files")
    ap.add_argument("--docs", type=int, default=3000, help="good documents in the mix (as many junk)")
    ap.add_argument("--repeats", type=int, default=5, help="rounds")
    ap.add_argument("--work", type=Path, default=WORK / "quality_speed")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "quality_speed.md",
                    help="append the figures to this markdown file")
    args = ap.parse_args()
    import zstandard

    from pipeline.cleaning import quality

    books = args.text / "nltk_gutenberg"
    make_mix([books / f"{b}.txt" for b in GOOD.split(",")], args.web, args.work / "in", args.docs)
    run(args.work / "in", args.work / "out",
        "quality.reference=" + ",".join(str(books / f"{b}.txt") for b in REFERENCE.split(",")))
    texts = [json.loads(line)["text"] for f in sorted((args.work / "out").glob("docs-*.jsonl.zst"))
             for line in zstandard.ZstdDecompressor().stream_reader(f.open("rb")).read().decode().splitlines()]
    corpus = args.work / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6

    scorer, load = quality.Scorer.load(str(args.work / "out" / "quality")), os.getloadavg()[0]

    def ours() -> float:
        start = time.perf_counter()
        for i in range(0, len(texts), 256):
            scorer.score(texts[i:i + 256])
        return mb / (time.perf_counter() - start)

    def theirs() -> float:
        out = subprocess.run([str(DT_PYTHON), str(ROOT / "benchmarks" / "datatrove_fasttext.py"), str(corpus),
                              str(args.work / "out" / "quality" / quality.FILES[0]), "--repeats", "1"],
                             check=True, capture_output=True, text=True).stdout
        dt = json.loads(out.strip().splitlines()[-1])
        return dt["mb"] / dt["seconds"]

    have_peer = DT_PYTHON.is_file()
    rounds = [(ours(), theirs() if have_peer else float("nan")) for _ in range(args.repeats)]  # interleaved
    mine, peer = (sorted(r[i] for r in rounds)[len(rounds) // 2] for i in (0, 1))
    lines = [f"command: python benchmarks/quality_speed.py {' '.join(sys.argv[1:])}",
             f"corpus: {len(texts):,} documents, {mb:.1f} MB; load before: {load:.1f}, after: {os.getloadavg()[0]:.1f}",
             f"rounds (cramkit, datatrove MB/s): {[(round(a, 1), round(b, 1)) for a, b in rounds]}",
             f"cramkit quality scores (classifier + language model + calibration), one process, median: {mine:.1f} MB/s"]
    if have_peer:
        ratio = sorted(a / b for a, b in rounds)[len(rounds) // 2]
        lines += [f"datatrove FastTextClassifierFilter (the same classifier alone), one process, median: {peer:.1f} MB/s",
                  f"ratio (median of the rounds' ratios): {ratio:.2f}x"]
    else:
        lines.append(f"datatrove's venv is missing ({DT_PYTHON}): run benchmarks/corpus_pipeline.py --setup")
    print("\n".join(lines))
    if args.results:
        with open(args.results, "a") as f:
            f.write("\n".join(["```", *lines, "```", ""]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
