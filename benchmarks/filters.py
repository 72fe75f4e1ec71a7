"""Quality filters benchmark: cramkit's `pipeline.cleaning.filters.check` (length, zstd ratio, Gopher
repetition) side by side with datatrove's GopherRepetitionFilter plus the same length and zstd rules, on the
same documents in one run. Reports MB/s (best of --repeat runs each, alternating) and how many documents
each drops.

Documents: blank-line-separated blocks of ../shared/data/text (CRLF -> LF, non-UTF-8 bytes replaced).
datatrove runs in its own venv (benchmarks/corpus_pipeline.py --setup creates it), as a child process
that times only its filter calls.

    python benchmarks/filters.py [--src ../shared/data/text] [--repeat 3]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.cleaning import filters  # noqa: E402

DT_PYTHON = ROOT / "benchmarks" / "work" / "datatrove-venv" / "bin" / "python"
RESULTS = ROOT / "benchmarks" / "results" / "filters.md"

DATATROVE = r"""
import json, sys, time
import zstandard
from datatrove.data import Document
from datatrove.pipeline.filters import GopherRepetitionFilter
texts = [json.loads(line) for line in open(sys.argv[1])]
gopher = GopherRepetitionFilter()
def length_ok(t):
    return 20 <= len(t.split()) <= 100_000
def compression_ok(t):
    if len(t) < 500:
        return True
    raw = t.encode()
    return 0.10 <= len(zstandard.ZstdCompressor(level=3).compress(raw)) / len(raw) <= 0.90
docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
gopher.filter(docs[0])  # load the word tokenizer before timing
start = time.perf_counter()
dropped = 0
for d in docs:
    ok = length_ok(d.text) and compression_ok(d.text)
    if ok:
        r = gopher.filter(d)
        ok = r is True or (isinstance(r, tuple) and r[0])
    dropped += not ok
print(json.dumps({"seconds": time.perf_counter() - start, "dropped": dropped}))
"""


def documents(src: Path) -> list[str]:
    out = []
    for path in sorted(src.rglob("*.txt")):
        text = path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
        out += [b.strip() for b in text.split("\n\n") if b.strip()]
    return out


def run_cramkit(texts, cfg):
    start = time.perf_counter()
    reasons = Counter(filters.check(t, cfg) for t in texts)
    return time.perf_counter() - start, reasons


def run_datatrove(path):
    proc = subprocess.run([str(DT_PYTHON), "-c", DATATROVE, str(path)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"datatrove child failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=ROOT / ".." / "shared" / "data" / "text")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not DT_PYTHON.is_file():
        raise SystemExit(f"{DT_PYTHON} missing: run `python benchmarks/corpus_pipeline.py --setup` first")
    texts = documents(args.src)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    cfg = filters.FilterConfig()
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "texts.jsonl"
        path.write_text("".join(json.dumps(t) + "\n" for t in texts))
        for _ in range(args.repeat):
            ours.append(run_cramkit(texts, cfg))
            theirs.append(run_datatrove(path))
    ours_s = min(s for s, _ in ours)
    theirs_s = min(r["seconds"] for r in theirs)
    reasons = ours[0][1]
    dropped = sum(n for r, n in reasons.items() if r)
    load = os.getloadavg()
    lines = [
        "# Quality filters benchmark", "",
        f"Command: `python benchmarks/filters.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        f"Machine: 2-core x86_64 VM ({platform.machine()}), CPU only, shared with other jobs; load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.  ",
        f"Documents: {len(texts):,} blank-line blocks of ../shared/data/text, {mb:.1f} MB. One thread each, "
        f"best of {args.repeat}.", "",
        "Same rules and thresholds on both sides: words 20..100,000; zstd-3 ratio in [0.10, 0.90] from 500 "
        "chars; Gopher repetition (duplicate lines/paragraphs, top 2-4-grams, duplicated 5-10-grams).", "",
        "| system | seconds | MB/s | dropped |", "|---|---|---|---|",
        f"| cramkit `filters.check` | {ours_s:.2f} | {mb / ours_s:.2f} | {dropped:,} |",
        f"| datatrove GopherRepetitionFilter + same length/zstd rules | {theirs_s:.2f} | {mb / theirs_s:.2f} | "
        f"{theirs[0]['dropped']:,} |", "",
        f"**cramkit / datatrove throughput: {theirs_s / ours_s:.1f}x**", "",
        "cramkit drops by reason: " + ", ".join(f"{r} {n:,}" for r, n in sorted((k, v) for k, v in reasons.items() if k)) + ".",
        "Counts differ where the definitions differ: datatrove splits words with its tokenizer (punctuation "
        "becomes words) and divides n-gram characters by all characters; cramkit splits on whitespace and "
        "divides by word characters.",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
