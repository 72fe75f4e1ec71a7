"""Web input side by side: cramkit's WARC -> clean documents against datatrove's on the same WARC file,
and the two WARC readers cramkit could use (warcio, FastWARC) on their own.

Input: a `.warc.gz` made by concatenating the real crawls of ../shared/data/web (a WARC file is a sequence
of records, so gzip-per-record files concatenate into a valid one) `--copies` times.

- cramkit: `python -m pipeline --config web --until clean` with the C4 and FineWeb rules and PII redaction
  of the `web` preset, language ID, quality filters and dedup off (`filters.enabled=false
  filters.langid_model=null dedup.exact=false dedup.near=false`), one worker.
- datatrove: WarcReader -> Trafilatura -> FineWebQualityFilter -> C4QualityFilter -> PIIFormatter ->
  JsonlWriter, one task (its venv: benchmarks/corpus_pipeline.py --setup). Its Trafilatura step is set to
  extract what cramkit's does: no precision bias (cramkit's `web.favor=balanced`), no cross-document
  deduplication (its default drops the repeated copies of this input; cramkit's dedup is off here) and a
  30 s timeout per page (its default, 1 s, drops pages on a loaded machine). The filters keep their
  defaults, which add C4's "at least 5 sentences" rule cramkit does not have.
Each runs as a child process: wall seconds and peak RSS (of it and its workers), MB/s of WARC input.

    python benchmarks/web_pipeline.py [--copies 5,40] [--rounds 2]   # writes benchmarks/results/web_pipeline.md
"""

import argparse
import gzip
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from corpus_pipeline import DT_PYTHON, WORK, child  # noqa: E402

WEB = ROOT / ".." / "shared" / "data" / "web"
CRAWLS = ("sample-0001.warc.gz", "cc-excerpt.warc.gz", "whirlwind.warc.gz")
RESULTS = ROOT / "benchmarks" / "results" / "web_pipeline.md"
DATATROVE = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter
from datatrove.pipeline.formatters import PIIFormatter
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.writers import JsonlWriter

src, out = sys.argv[1], sys.argv[2]
extract = Trafilatura(favour_precision=False, deduplicate=False, timeout=30)
LocalPipelineExecutor(pipeline=[WarcReader(src, glob_pattern="*.warc.gz"), extract, FineWebQualityFilter(),
                                C4QualityFilter(), PIIFormatter(), JsonlWriter(out + "/docs")],
                      tasks=1, workers=1, logging_dir=out + "/logs").run()
"""


def readers(path: Path, repeat: int = 3) -> dict:
    """MB/s of compressed WARC per reader: every record iterated and its payload read (best of `repeat`)."""
    from warcio.archiveiterator import ArchiveIterator

    data, out = path.read_bytes(), {}
    runs = {"warcio 1.8.1 (content_stream: dechunked, decoded)":
            lambda: [r.content_stream().read() for r in ArchiveIterator(io.BytesIO(data))]}
    try:
        from fastwarc.warc import ArchiveIterator as FastIterator

        runs["FastWARC 2.0.0 (payload as stored)"] = lambda: [r.reader.read() for r in FastIterator(io.BytesIO(data),
                                                                                                  parse_http=True)]
    except ImportError:
        print("FastWARC is not installed (pip install fastwarc==2.0.0): its row is left out")
    for name, fn in runs.items():
        best = min(_timed(fn) for _ in range(repeat))
        out[name] = len(data) / best / 1e6
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _warc(copies: int) -> tuple[Path, float, int, float]:
    """The input of `copies` copies: (path, MB, response records, MB uncompressed)."""
    src = WORK / "web" / f"in-{copies}"
    src.mkdir(parents=True, exist_ok=True)
    warc = src / "crawl.warc.gz"
    warc.write_bytes(b"".join((WEB / c).read_bytes() for c in CRAWLS) * copies)
    raw = gzip.decompress(warc.read_bytes())
    return warc, warc.stat().st_size / 1e6, raw.count(b"\r\nWARC-Type: response\r\n"), len(raw) / 1e6


def cramkit(warc: Path) -> tuple[float, float, dict]:
    out = WORK / "web" / "cramkit"
    wall, rss = child([sys.executable, "-m", "pipeline", "--input", str(warc.parent), "--output", str(out), "--until",
                       "clean", "--config", "web", "filters.enabled=false", "filters.langid_model=null",
                       "dedup.exact=false", "dedup.near=false"], WORK / "web" / "cramkit.log", clean=out)
    return wall, rss, json.loads((out / "stats.json").read_text())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", default="5,40", help="input sizes in copies of the crawls; datatrove runs the last")
    ap.add_argument("--no-datatrove", action="store_true")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved runs of both at the largest size (fastest counts)")
    args = ap.parse_args()
    if not all((WEB / c).is_file() for c in CRAWLS):
        raise SystemExit(f"{WEB}: the real crawls {', '.join(CRAWLS)} are needed")
    sizes = [int(c) for c in args.copies.split(",")]
    if not args.no_datatrove and not DT_PYTHON.is_file():
        raise SystemExit("datatrove's venv is missing: run benchmarks/corpus_pipeline.py --setup, or --no-datatrove")
    scale = []
    for copies in sizes[:-1]:
        warc, mb, responses, raw = _warc(copies)
        wall, rss, _ = cramkit(warc)
        scale.append((copies, mb, raw, responses, wall, rss))
    warc, mb, responses, raw = _warc(sizes[-1])
    script = WORK / "web" / "datatrove_web.py"
    script.write_text(DATATROVE)
    dt_out = WORK / "web" / "datatrove"
    ours, theirs = [], []
    for _ in range(args.rounds):  # interleaved: both see the same load; the fastest round of each counts
        ours.append(cramkit(warc))
        if not args.no_datatrove:
            theirs.append(child([str(DT_PYTHON), str(script), str(warc.parent), str(dt_out)],
                                WORK / "web" / "datatrove.log", clean=dt_out))
    wall, rss, stats = min(ours, key=lambda r: r[0])
    scale.append((sizes[-1], mb, raw, responses, wall, rss))
    rows = [("cramkit `--config web`", wall, rss, stats["documents"]["kept"])]
    if theirs:
        wall, rss = min(theirs)
        kept = sum(1 for p in (dt_out / "docs").glob("*.jsonl.gz") for _ in gzip.open(p))
        rows.append(("datatrove WarcReader + Trafilatura + FineWeb + C4 + PII", wall, rss, kept))
        steps = json.loads((dt_out / "logs" / "stats.json").read_text())
        dt_drops = ", ".join(f"{s['name'].split(':')[-1].strip()} {k} {v}" for s in steps
                             for k, v in s.get("stats", {}).items() if k.startswith("dropped") and v)
    speeds = readers(warc)
    load = os.getloadavg()
    lines = ["# Web input benchmark", "",
             f"Command: `python benchmarks/web_pipeline.py {' '.join(sys.argv[1:])}`  ",
             f"Machine: 2-core x86_64 VM ({platform.machine()}), CPU only, shared with other jobs; load average "
             f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}.  ",
             f"Input: one .warc.gz of {mb:.1f} MB, {responses} response records (the crawls of the shared web "
             f"samples, {sizes[-1]} copies). One worker each, {args.rounds} interleaved rounds, the fastest of each.", "",
             "| system | seconds | MB/s | peak RSS MB | documents kept |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {w:.1f} | {mb / w:.2f} | {r:.0f} | {k:,} |" for n, w, r, k in rows]
    if len(rows) == 2:
        lines += ["", f"**cramkit / datatrove: throughput {rows[1][1] / rows[0][1]:.2f}x, peak memory "
                      f"{rows[0][2] / rows[1][2]:.2f}x**"]
    if theirs:
        lines += ["", f"datatrove drops by step: {dt_drops}"]
    lines += ["", "cramkit drops by reason: " + ", ".join(f"{r} {d['docs']:,}" for r, d in stats["dropped"].items()),
              "", "WARC readers alone (every record iterated, its payload read; best of 3):", "",
              "| reader | MB/s of .warc.gz |", "|---|---|"]
    lines += [f"| {n} | {v:.1f} |" for n, v in speeds.items()]
    lines += ["", "cramkit by input size (peak RSS of all its processes):", "",
              "| copies | MB .warc.gz | MB uncompressed | responses | seconds | MB/s | peak RSS MB |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {c} | {mb:.1f} | {raw:.1f} | {r} | {w:.1f} | {mb / w:.2f} | {rss:.0f} |" for c, mb, raw, r, w, rss in scale]
    if len(scale) > 1:
        (_, mb0, raw0, _, _, rss0), (_, mb1, raw1, _, _, rss1) = scale[0], scale[-1]
        lines += ["", f"Peak RSS grows {(rss1 - rss0) / (mb1 - mb0):.2f} MB per MB of .warc.gz, "
                      f"{(rss1 - rss0) / (raw1 - raw0):.2f} MB per uncompressed MB, between {raw0:.1f} and {raw1:.1f} "
                      "uncompressed MB."]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
