"""The datatrove side of benchmarks/quality_speed.py; runs inside datatrove's own venv (no cramkit imports).

Reads JSON Lines texts, runs datatrove's FastTextClassifierFilter (the given fastText model, keeping
label `reference` at probability >= 0.5) over every document, one process, and prints one JSON line:
the best of `--repeats` passes in seconds, the documents kept and the megabytes (UTF-8) scored.

    <datatrove venv>/bin/python benchmarks/datatrove_fasttext.py CORPUS.jsonl MODEL.ftz [--repeats 3]
"""

import argparse
import json
import time

from datatrove.data import Document
from datatrove.pipeline.filters import FastTextClassifierFilter


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("model")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with open(args.corpus, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    filt = FastTextClassifierFilter(args.model, keep_labels=[("reference", 0.5)])
    filt.filter(Document(text=texts[0], id="0"))  # loads the model
    best, kept = float("inf"), 0
    for _ in range(args.repeats):
        docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]  # the filter empties dropped texts
        start = time.perf_counter()
        kept = sum(1 for d in docs if filt.filter(d) is True)
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"seconds": best, "kept": kept, "docs": len(docs),
                      "mb": sum(len(t.encode("utf-8")) for t in texts) / 1e6}))


if __name__ == "__main__":
    main()
