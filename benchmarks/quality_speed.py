"""Scoring speed of cramkit's quality scores beside datatrove's fastText filter, on the same documents,
one process each (MB/s of UTF-8 text per core).

1. The mix of benchmarks/quality_mix.py (prose, word salad, keyword listings, raw web pages) goes through
   `python -m pipeline --until clean quality.reference=...`, which trains the scorers; its clean records
   (normalized text, what the score step reads) are the benchmark corpus.
2. cramkit: `quality.Scorer.score` (fastText classifier + bigram language model + calibration) over the
   corpus in batches of 256 documents, best of `--repeats` passes.
3. datatrove 0.10.1: `FastTextClassifierFilter` with the same fastText model over the same texts, one
   document at a time as its pipeline calls it, best of `--repeats` (benchmarks/datatrove_fasttext.py, in
   datatrove's venv: `python benchmarks/corpus_pipeline.py --setup` creates it).

    python benchmarks/quality_speed.py --text DATA/text --web DATA/web [--docs 3000]
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
from quality_mix import make_mix, run  # noqa: E402

GOOD = "austen-emma,austen-persuasion,melville-moby_dick,chesterton-brown,chesterton-thursday,whitman-leaves"
REFERENCE = "austen-sense,chesterton-ball,shakespeare-hamlet,milton-paradise"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", type=Path, required=True)
    ap.add_argument("--web", type=Path, required=True)
    ap.add_argument("--docs", type=int, default=3000, help="good documents in the mix (as many junk)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=Path, default=WORK / "quality_speed")
    ap.add_argument("--results", type=Path, help="append the figures to this markdown file")
    args = ap.parse_args()
    import zstandard

    from pipeline import quality

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
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        for i in range(0, len(texts), 256):
            scorer.score(texts[i:i + 256])
        best = min(best, time.perf_counter() - start)
    ours = mb / best
    lines = [f"command: python benchmarks/quality_speed.py {' '.join(sys.argv[1:])}",
             f"corpus: {len(texts):,} documents, {mb:.1f} MB; load before: {load:.1f}",
             f"cramkit quality scores (classifier + language model + calibration), one process: {ours:.1f} MB/s"]
    print("\n".join(lines), flush=True)
    if not DT_PYTHON.is_file():
        print(f"datatrove's venv is missing ({DT_PYTHON}): run benchmarks/corpus_pipeline.py --setup")
        return 0
    out = subprocess.run([str(DT_PYTHON), str(ROOT / "benchmarks" / "datatrove_fasttext.py"), str(corpus),
                          str(args.work / "out" / "quality" / quality.FILES[0]), "--repeats", str(args.repeats)],
                         check=True, capture_output=True, text=True).stdout
    dt = json.loads(out.strip().splitlines()[-1])
    theirs = dt["mb"] / dt["seconds"]
    lines += [f"datatrove FastTextClassifierFilter (the same classifier alone), one process: {theirs:.1f} MB/s",
              f"ratio: {ours / theirs:.2f}x; load after: {os.getloadavg()[0]:.1f}"]
    print("\n".join(lines[-2:]))
    if args.results:
        with open(args.results, "a") as f:
            f.write("\n".join(["```", *lines, "```", ""]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
