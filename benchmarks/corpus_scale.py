"""Corpus pipeline at scale: wall time, MB/s and peak memory of `python -m pipeline` against input size,
beside datatrove on the same input, and the slope of peak RSS over input size.

Input, generated from the real text of ../shared/data/text: its documents (paragraph runs of 300-1,500
words, as in benchmarks/neardup_corpus.py) in a seeded shuffled order, copied round after round until
the size is reached; every copy, the first included, has 25-40% of the words of each paragraph (a fresh
rate and draw per copy and paragraph) replaced by words of the corpus vocabulary. Word-5-gram Jaccard
between two copies, or a copy and its original, stays far below the near-dup threshold (0.8; the
report gives the measured maximum on a sample of pairs, and generation stops if it reaches 0.5), so
neither exact nor near dedup removes the copies. JSON Lines files of ~16 MB ({"id", "text"} per line)
under benchmarks/work/scale/<MB>mb/corpus, reused while the generator's settings are unchanged.

For each size, each under benchmarks/procmem.py (peak RSS summed over all processes of the run):
- cramkit: `python -m pipeline --input GEN --output OUT --overwrite` (default config, FnApiRunner,
  1 worker; --until passes through), with its per-stage seconds from OUT/stats.json;
- datatrove 0.10.1 (benchmarks/datatrove_minhash.py in its own venv, LocalPipelineExecutor, 2 workers,
  one task per file): read -> MinHash dedup (signatures, buckets, clusters, filter; word 5-grams, 14x8,
  as cramkit) -> the filters of cramkit's default config -> JSON Lines; on sizes up to
  --datatrove-max-mb (it reads ~0.2-0.3 MB/s here: hours at 2 GB).
Then per system the least-squares line of peak RSS over input MB, and from it the largest input a
24 GiB machine handles.

    python benchmarks/corpus_pipeline.py --setup               # once: datatrove's venv
    python benchmarks/corpus_scale.py --sizes 40,400,2000      # writes benchmarks/results/corpus_scale.md
    python benchmarks/corpus_scale.py --sizes 5,20             # a quick end-to-end check
"""

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import neardup_corpus  # noqa: E402
import procmem  # noqa: E402

from pipeline.duplicates import minhash  # noqa: E402

WORK = ROOT / "benchmarks" / "work" / "scale"
DT_PYTHON = ROOT / "benchmarks" / "work" / "datatrove-venv" / "bin" / "python"
RESULTS = ROOT / "benchmarks" / "results" / "corpus_scale.md"
EDIT = (0.25, 0.40)  # share of each paragraph's words replaced, drawn per copy and paragraph
FILE_MB = 16
MACHINE_GIB = 24


# ---- input ----

def edit(text: str, rng: random.Random, vocab: list[str]) -> str:
    paragraphs = []
    for para in text.split("\n\n"):
        words = para.split(" ")
        for i in rng.sample(range(len(words)), round(rng.uniform(*EDIT) * len(words))):
            words[i] = rng.choice(vocab)
        paragraphs.append(" ".join(words))
    return "\n\n".join(paragraphs)


def source(src: Path, seed: int) -> tuple[list[str], list[str]]:
    """The base documents in a seeded shuffled order, and the vocabulary the edits draw from."""
    rng = random.Random(seed)
    base = neardup_corpus.base_documents(src, rng)
    if not base:
        raise SystemExit(f"no .txt documents under {src}: pass --src a folder of English text")
    rng.shuffle(base)
    return base, sorted({w for doc in base for w in doc.split() if w.isalpha()})


def jaccard_sample(base: list[str], vocab: list[str], pairs: int, seed: int) -> dict:
    """Word-5-gram Jaccard of `pairs` copy pairs and copy/original pairs of random base documents."""
    rng = random.Random(seed + 1)
    between, to_original = [], []
    for text in rng.sample(base, min(pairs, len(base))):
        a, b = edit(text, rng, vocab), edit(text, rng, vocab)
        sa, sb, so = (minhash.shingle_set(t, 5) for t in (a, b, text))
        between.append(minhash.jaccard(sa, sb))
        to_original.append(minhash.jaccard(sa, so))
    return {"pairs": len(between), "copies_max": max(between), "copies_mean": float(np.mean(between)),
            "original_max": max(to_original), "original_mean": float(np.mean(to_original))}


def generate(mb: float, src: Path, seed: int, base: list[str], vocab: list[str]) -> dict:
    """Write ~mb MB of edited copies as JSON Lines under WORK/<mb>mb/corpus (reused if already there)."""
    folder = WORK / f"{mb:g}mb"
    meta_path, corpus = folder / "meta.json", folder / "corpus"
    settings = {"mb": mb, "src": str(src.resolve()), "seed": seed, "edit": list(EDIT), "file_mb": FILE_MB}
    if meta_path.is_file() and (meta := json.loads(meta_path.read_text()))["settings"] == settings:
        return meta
    shutil.rmtree(folder, ignore_errors=True)
    corpus.mkdir(parents=True)
    rng = random.Random(seed + 2)
    target, written, docs, files, out = mb * 1e6, 0, 0, 0, None
    while written < target:
        copy, i = divmod(docs, len(base))
        if out is None or out.tell() >= FILE_MB * 1e6:
            if out:
                out.close()
            out = (corpus / f"part-{files:05d}.jsonl").open("w", encoding="utf-8")
            files += 1
        line = json.dumps({"id": f"c{copy:04d}-d{i:05d}", "text": edit(base[i], rng, vocab)}) + "\n"
        out.write(line)
        written += len(line.encode())
        docs += 1
    out.close()
    meta = {"settings": settings, "documents": docs, "files": files, "bytes": written}
    meta_path.write_text(json.dumps(meta, indent=1))
    return meta


# ---- runs ----

def measured(cmd: list[str], log: Path) -> procmem.Usage:
    with open(log, "w") as out:
        usage = procmem.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    if usage.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise SystemExit(f"{' '.join(map(str, cmd))} exited {usage.returncode}; {log}:\n{tail}")
    return usage


def cramkit(corpus: Path, work: Path, until: str) -> dict:
    out = work / "cramkit_out"
    cmd = [sys.executable, "-m", "pipeline", "--input", str(corpus), "--output", str(out), "--overwrite"]
    if until != "shards":
        cmd += ["--until", until]
    usage = measured(cmd, work / "cramkit.log")
    stats = json.loads((out / "stats.json").read_text())
    stages = {name: s["seconds"] for name, s in stats["stages"].items() if "seconds" in s}
    return {"usage": usage, "stages": stages, "kept": stats["documents"]["kept"],
            "dropped": {k: v["docs"] for k, v in sorted(stats["dropped"].items())},
            "command": " ".join(["python", *cmd[1:]])}


def datatrove(corpus: Path, work: Path) -> dict:
    out = work / "datatrove_out"
    shutil.rmtree(out, ignore_errors=True)
    log = work / "datatrove.log"
    usage = measured([str(DT_PYTHON), str(ROOT / "benchmarks" / "datatrove_minhash.py"), str(corpus), str(out)], log)
    result = json.loads(log.read_text().strip().splitlines()[-1])
    return {"usage": usage, "stages": result["seconds"], "kept": result["kept"],
            "dropped": {"minhash dedup": result["removed"]}}


# ---- report ----

def fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares (slope, intercept) of peak RSS MB over input MB; None with fewer than 2 sizes."""
    if len({x for x, _ in points}) < 2:
        return None
    slope, intercept = np.polyfit([x for x, _ in points], [y for _, y in points], 1)
    return float(slope), float(intercept)


def capacity(line) -> str:
    if line is None:
        return "n/a (one size)"
    slope, intercept = line
    if slope <= 0:
        return "not limited by this slope (RSS did not grow)"
    return f"{(MACHINE_GIB * 1024 - intercept) / slope / 1000:.1f} GB"


def report(sizes_meta, runs, jac, load_start) -> str:
    load_end = os.getloadavg()
    lines = ["# Corpus pipeline at scale", "",
             f"Command: `python benchmarks/corpus_scale.py {' '.join(sys.argv[1:])}`  ",
             f"Machine: {os.cpu_count()}-core {platform.machine()} ({platform.processor() or 'CPU'}), CPU only, "
             f"shared with other jobs; load average {load_start[0]:.1f} / {load_start[1]:.1f} / {load_start[2]:.1f} "
             f"(1/5/15 min) at start, {load_end[0]:.1f} / {load_end[1]:.1f} / {load_end[2]:.1f} at the end. "
             "Timings are noisy under that load.", "",
             f"Input: edited copies of ../shared/data/text ({EDIT[0]:.0%}-{EDIT[1]:.0%} of each paragraph's words "
             f"replaced per copy), JSON Lines in {FILE_MB} MB files. Word-5-gram Jaccard on {jac['pairs']} sampled pairs: "
             f"copy vs copy max {jac['copies_max']:.3f} (mean {jac['copies_mean']:.3f}), copy vs original max "
             f"{jac['original_max']:.3f} (mean {jac['original_mean']:.3f}); near dedup needs 0.8.", "",
             "Peak RSS is summed over every process of the run (benchmarks/procmem.py, sampled every 0.1 s; "
             "shared pages count once per process).", "",
             "| system | input MB | docs | wall s | MB/s | peak RSS MB | kept | dropped | seconds per stage |",
             "|---|---|---|---|---|---|---|---|---|"]
    for mb, meta in sizes_meta.items():
        in_mb = meta["bytes"] / 1e6
        for system, run in runs[mb].items():
            u = run["usage"]
            stages = ", ".join(f"{k} {v:.1f}" for k, v in run["stages"].items())
            dropped = ", ".join(f"{k} {v}" for k, v in run["dropped"].items()) or "0"
            lines.append(f"| {system} | {in_mb:.1f} | {meta['documents']} | {u.wall_s:.1f} | {in_mb / u.wall_s:.2f} | "
                         f"{u.peak_rss_mb:.0f} | {run['kept']} | {dropped} | {stages} |")
    lines += ["", "| system | slope of peak RSS (MB per input MB) | intercept MB | largest input on a "
              f"{MACHINE_GIB} GiB machine by that line |", "|---|---|---|---|"]
    for system in dict.fromkeys(name for by_system in runs.values() for name in by_system):
        line = fit([(sizes_meta[mb]["bytes"] / 1e6, runs[mb][system]["usage"].peak_rss_mb)
                    for mb in runs if system in runs[mb]])
        slope = "n/a" if line is None else f"{line[0]:.3f}"
        intercept = "n/a" if line is None else f"{line[1]:.0f}"
        lines.append(f"| {system} | {slope} | {intercept} | {capacity(line)} |")
    first = next(iter(runs.values()))
    lines += ["", f"cramkit command: `{first['cramkit']['command']}` (GEN and OUT under benchmarks/work/scale/).", "",
              "What differs: cramkit also normalizes, runs exact dedup, verifies MinHash candidate pairs by exact "
              "Jaccard, and (at --until shards, the default) trains a tokenizer, tokenizes, packs and orders rows "
              "into Arrow shards, on FnApiRunner with 1 worker; datatrove runs MinHash dedup without "
              "verification, then the same filters, on 2 worker processes, and writes gzipped JSON Lines.", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="40,400", help="comma list of input sizes in MB (e.g. 40,400,2000)")
    ap.add_argument("--src", type=Path, default=ROOT / ".." / "shared" / "data" / "text")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--until", default="shards", help="cramkit's --until (default shards: the whole pipeline)")
    ap.add_argument("--no-datatrove", action="store_true")
    ap.add_argument("--datatrove-max-mb", type=float, default=400,
                    help="run datatrove only on sizes up to this (default 400: it reads ~0.2-0.3 MB/s on 2 cores)")
    ap.add_argument("--jaccard-pairs", type=int, default=200)
    ap.add_argument("--out", type=Path, default=RESULTS, help="the report (markdown)")
    args = ap.parse_args()
    if not args.src.is_dir():
        raise SystemExit(f"--src {args.src} not found (the real text lives in ../shared/data/text)")
    if not args.no_datatrove and not DT_PYTHON.is_file():
        raise SystemExit("datatrove's venv is missing: python benchmarks/corpus_pipeline.py --setup "
                         "(or pass --no-datatrove)")
    load_start = os.getloadavg()
    base, vocab = source(args.src, args.seed)
    jac = jaccard_sample(base, vocab, args.jaccard_pairs, args.seed)
    print(f"Jaccard sample: {json.dumps(jac)}", flush=True)
    if jac["copies_max"] >= 0.5 or jac["original_max"] >= 0.5:
        raise SystemExit("edited copies are too similar: near dedup could remove them; raise EDIT")
    sizes_meta, runs = {}, {}
    for mb in sorted(float(s) for s in args.sizes.split(",")):
        meta = sizes_meta[mb] = generate(mb, args.src, args.seed, base, vocab)
        corpus, work = WORK / f"{mb:g}mb" / "corpus", WORK / f"{mb:g}mb"
        print(f"[{mb:g} MB] {meta['documents']} documents in {meta['files']} files; cramkit ...", flush=True)
        runs[mb] = {"cramkit": cramkit(corpus, work, args.until)}
        if not args.no_datatrove and mb <= args.datatrove_max_mb:
            print(f"[{mb:g} MB] datatrove ...", flush=True)
            runs[mb]["datatrove"] = datatrove(corpus, work)
    text = report(sizes_meta, runs, jac, load_start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
