"""Corpus pipeline benchmark: cramkit's dedup stages (`python -m pipeline --until exact/near`, filters
off) and `--until clean` side by side with datatrove in one run, with near-dup precision and recall
against ground truth.

Corpora (built under --work by benchmarks/neardup_corpus.py):
- text: the real documents of ../shared/data/text (paragraph runs of 300-1,500 words), no copies added;
- neardup: the same plus, for a third of them, copies with 1/2/5/10% of words replaced and a sentence
  added or removed (known pairs).

Ground truth: every pair with exact word-5-gram Jaccard >= 0.8 (candidates from a loose 28x4 LSH with
its own seed, which finds a 0.8 pair with probability 1 - 4e-7, then checked exactly). A truth component
of k documents should lose k-1 of them: a system's first k-1 drops there are correct, any drop outside
it is not; precision = correct / dropped, recall = correct / sum(k-1). Per copy kind: the share of copies
dropped or left as the only survivor of their truth group.

Each system runs as a child process (wall time and peak RSS of the child and its workers); datatrove runs
from its own venv (created by --setup) so its dependencies never touch ours.

    python benchmarks/corpus_pipeline.py --setup      # once: venv + datatrove under benchmarks/work
    python benchmarks/corpus_pipeline.py              # writes benchmarks/results/corpus_pipeline.md
"""

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import neardup_corpus  # noqa: E402

from pipeline.duplicates import minhash  # noqa: E402

WORK = ROOT / "benchmarks" / "work"
DT_VENV = WORK / "datatrove-venv"
DT_PYTHON = DT_VENV / "bin" / "python"
RESULTS = ROOT / "benchmarks" / "results" / "corpus_pipeline.md"


def child(cmd, log, clean: Path | None = None):
    """Run a command (after removing `clean`); return (wall seconds, peak RSS MB of it and its reaped children)."""
    if clean is not None and clean.exists():
        subprocess.run(["rm", "-rf", str(clean)], check=True)
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed; see {log}")
    return wall, usage.ru_maxrss / 1024


# ---- cramkit: `python -m pipeline --until ...` per stage set (filters off, text as read) ----

STAGE_SETS = {  # name -> pipeline arguments
    "read": ["--until", "read"],
    "read+exact": ["--until", "exact", "dedup.near=false"],
    "read+near": ["--until", "near", "dedup.exact=false"],
    "read+exact+near": ["--until", "near"],
}


def names_to_ids(corpus: Path) -> dict[str, str]:
    """The pipeline's document names ("jsonl:<file>:<byte offset>") -> the corpus's own ids."""
    out = {}
    for path in sorted(corpus.glob("*.jsonl")):
        at = 0
        with open(path, "rb") as f:
            for line in f:
                out[f"jsonl:{path.name}:{at:012d}"] = json.loads(line)["id"]
                at += len(line)
    return out


def kept_names(out: Path) -> set[str]:
    import zstandard

    names = set()
    for f in sorted(out.glob("docs-*.jsonl.zst")):
        with f.open("rb") as raw, io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw), "utf-8") as lines:
            names.update(json.loads(line)["id"] for line in lines)
    return names


def cramkit_runs(corpus: Path, work: Path, repeats: int) -> dict:
    """Each stage set `repeats` times; the fastest run counts (the machine is shared and noisy)."""
    ids = names_to_ids(corpus)
    runs = {}
    work.mkdir(parents=True, exist_ok=True)
    for name, extra in STAGE_SETS.items():
        out = work / name.replace("+", "_")
        cmd = [sys.executable, "-m", "pipeline", "--input", str(corpus), "--output", str(out), *extra,
               "filters.enabled=false", "normalize.preset=none"]
        wall, rss = min(child(cmd, work / f"{out.name}_log.txt", clean=out) for _ in range(repeats))
        dropped = [{"id": ids[n]} for n in sorted(set(ids) - kept_names(out))]
        runs[name] = {"seconds": wall, "rss_mb": rss, "dropped": dropped}
    return runs


def cli_run(corpus: Path, work: Path, repeats: int) -> dict | None:
    """`python -m pipeline --input CORPUS --output OUT --until clean`, where the CLI exists."""
    if not (ROOT / "pipeline" / "__main__.py").is_file():
        return None
    out = work / "cli"
    cmd = [sys.executable, "-m", "pipeline", "--input", str(corpus), "--output", str(out), "--until", "clean"]
    wall, rss = min(child(cmd, work / "cli_log.txt", clean=out) for _ in range(repeats))
    stats = json.loads((out / "stats.json").read_text()) if (out / "stats.json").is_file() else {}
    return {"seconds": wall, "rss_mb": rss, "stats": stats, "command": " ".join(cmd[1:])}


def datatrove_run(corpus: Path, work: Path, filters: bool) -> dict:
    out = work / ("datatrove" if filters else "datatrove_dedup_only")
    if out.exists():
        subprocess.run(["rm", "-rf", str(out)], check=True)
    cmd = [str(DT_PYTHON), str(ROOT / "benchmarks" / "datatrove_minhash.py"), str(corpus), str(out)]
    wall, rss = child(cmd + ([] if filters else ["--no-filters"]), work / f"{out.name}_log.txt")
    result = json.loads((work / f"{out.name}_log.txt").read_text().strip().splitlines()[-1])
    result.update(seconds_total=wall, rss_mb=rss, removed_ids=(out / "removed_ids.txt").read_text().split())
    return result


# ---- ground truth and scoring ----

def load_corpus(corpus: Path) -> dict[str, str]:
    return {d["id"]: d["text"] for f in sorted(corpus.glob("*.jsonl")) for d in map(json.loads, f.open())}


def true_pairs(texts: dict[str, str], threshold=0.8) -> dict[tuple[str, str], float]:
    """All pairs with word-5-gram Jaccard >= threshold: loose 28x4 LSH candidates, checked exactly."""
    ids = sorted(texts)
    sets = {i: minhash.shingle_set(texts[i], 5) for i in ids}
    usable = [i for i in ids if len(sets[i])]
    sigs = minhash.MinHasher(112, seed=12345).sign([sets[i] for i in usable])
    buckets = defaultdict(list)
    for i, keys in zip(usable, minhash.band_hashes(sigs, 28, 4), strict=True):
        for b, key in enumerate(keys.tolist()):
            buckets[(b, key)].append(i)
    candidates = {(a, b) for members in buckets.values() if len(members) > 1
                  for n, a in enumerate(members) for b in members[n + 1:]}
    pairs = {}
    for a, b in candidates:
        j = minhash.jaccard(sets[a], sets[b])
        if j >= threshold:
            pairs[tuple(sorted((a, b)))] = j
    return pairs


def components(pairs) -> dict[str, int]:
    parent = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    return {x: hash(find(x)) for x in list(parent)}


def backed(dropped: set[str], pairs: dict, all_ids: set[str]) -> float:
    """Share of removed documents with a true near-duplicate among the kept ones (1.0 when none removed)."""
    kept = all_ids - dropped
    partners = defaultdict(set)
    for a, b in pairs:
        partners[a].add(b)
        partners[b].add(a)
    return sum(bool(partners[d] & kept) for d in dropped) / len(dropped) if dropped else 1.0


def score(dropped: set[str], comp: dict[str, int]) -> dict:
    sizes = Counter(comp.values())
    dropped_in = Counter()
    correct = 0
    for doc in sorted(dropped):
        c = comp.get(doc)
        if c is not None and dropped_in[c] < sizes[c] - 1:
            correct += 1
        if c is not None:
            dropped_in[c] += 1
    should = sum(k - 1 for k in sizes.values())
    return {"dropped": len(dropped), "correct": correct, "should": should,
            "precision": correct / len(dropped) if dropped else 1.0, "recall": correct / should if should else 1.0}


def per_kind(copies, texts, comp: dict[str, int], dropped_sets: dict[str, set[str]]) -> dict:
    """Per copy kind: a copy in a truth group is resolved if it was dropped or is the group's only
    survivor; a copy in no group (Jaccard < 0.8 to everything) counts only when dropped."""
    members = defaultdict(set)
    for doc, c in comp.items():
        members[c].add(doc)
    rows = defaultdict(lambda: {"pairs": 0, "jaccard": [], **{name: 0 for name in dropped_sets}})
    for c in copies:
        row = rows[c["kind"]]
        row["pairs"] += 1
        row["jaccard"].append(minhash.jaccard(minhash.shingle_set(texts[c["copy"]], 5),
                                              minhash.shingle_set(texts[c["source"]], 5)))
        others = members[comp[c["copy"]]] - {c["copy"]} if c["copy"] in comp else set()
        for name, dropped in dropped_sets.items():
            row[name] += c["copy"] in dropped or bool(others) and not (others - dropped)
    return rows


# ---- microbenchmark: batch signing vs datasketch update_batch, same shingles and hash ----

def signing_ratio(texts: list[str]) -> dict:
    """MB/s of: our batch signing; datasketch update_batch per document; datasketch update per shingle."""
    from datasketch import MinHash

    def mb_s(sign_all, docs):
        start = time.perf_counter()
        sign_all(docs)
        return sum(len(t.encode()) for t in docs) / 1e6 / (time.perf_counter() - start)

    def ours(docs):
        minhash.MinHasher().sign([minhash.shingle_hashes(minhash.words(t), 5) for t in docs])

    def datasketch(docs, per_shingle=False):
        for t in docs:
            ws = [w.decode() for w in minhash.words(t)]
            grams = [" ".join(ws[i:i + 5]) for i in range(max(1, len(ws) - 4))]
            m = MinHash(num_perm=112, seed=1, hashfunc=minhash.shingle_hash)
            if per_shingle:
                for g in grams:
                    m.update(g)
            else:
                m.update_batch(grams)

    return {"mb": sum(len(t.encode()) for t in texts) / 1e6, "ours": mb_s(ours, texts),
            "update_batch": mb_s(datasketch, texts),
            "update": mb_s(lambda d: datasketch(d, per_shingle=True), texts[:30])}


# ---- report ----

def fmt(x, digits=2):
    return f"{x:.{digits}f}"


def corpus_section(name, corpus, work, args, lines):
    texts = load_corpus(corpus)
    mb, n = sum(len(t.encode()) for t in texts.values()) / 1e6, len(texts)
    print(f"[{name}] {n} documents, {mb:.1f} MB: ground truth ...", flush=True)
    pairs = true_pairs(texts)
    comp = components(pairs)
    print(f"[{name}] cramkit stages ...", flush=True)
    ck = cramkit_runs(corpus, work / "cramkit", args.repeats)
    cli = cli_run(corpus, work, args.repeats) if not args.no_cli else None
    dt = dt_plain = None
    if not args.no_datatrove:
        print(f"[{name}] datatrove (slow) ...", flush=True)
        dt = datatrove_run(corpus, work, filters=True)
        if args.datatrove_dedup_only:
            dt_plain = datatrove_run(corpus, work, filters=False)
    ours = {d["id"] for d in ck["read+exact+near"]["dropped"]}
    lines += [f"### {name}: {n} documents, {mb:.1f} MB", "",
              f"Ground truth: {len(pairs)} pairs with word-5-gram Jaccard >= 0.8 in "
              f"{len(set(comp.values()))} groups; {sum(k - 1 for k in Counter(comp.values()).values())} "
              "documents should go.", "",
              "| system / stage | wall s | docs/s | MB/s | peak RSS MB | dropped |", "|---|---|---|---|---|---|"]
    read_s = ck["read"]["seconds"]
    for stage, run in ck.items():
        lines.append(f"| cramkit {stage} (FnApiRunner, in_memory) | {fmt(run['seconds'])} | {n / run['seconds']:.0f} | "
                     f"{fmt(mb / run['seconds'])} | {run['rss_mb']:.0f} | {len(run['dropped'])} |")
    for stage in ("read+exact", "read+near", "read+exact+near"):
        extra = ck[stage]["seconds"] - read_s
        speed = f"{n / extra:.0f} | {fmt(mb / extra)}" if extra > 0.2 else "below noise | below noise"
        lines.append(f"| cramkit {stage.removeprefix('read+')} alone (minus read) | {fmt(extra)} | {speed} | | |")
    if cli:
        drops = cli["stats"]["dropped"]
        timed = ", ".join(f"{k} {fmt(v['seconds'], 1)}" for k, v in cli["stats"]["stages"].items() if "seconds" in v)
        lines.append(f"| cramkit end to end `--until clean` ({timed}) | {fmt(cli['seconds'])} | "
                     f"{n / cli['seconds']:.0f} | {fmt(mb / cli['seconds'])} | {cli['rss_mb']:.0f} | "
                     f"{sum(v['docs'] for v in drops.values())} |")
    for label, run in (("datatrove read -> MinHash -> the same filters", dt),
                       ("datatrove read -> MinHash (no filter)", dt_plain)):
        if run:
            s = run["seconds_total"]
            steps = ", ".join(f"{k} {fmt(v, 1)}" for k, v in run["seconds"].items())
            lines.append(f"| {label} ({steps}) | {fmt(s)} | {n / s:.0f} | {fmt(mb / s)} | {run['rss_mb']:.0f} | "
                         f"{len(run['removed_ids'])} |")
    lines.append("")
    if dt:
        base = dt_plain or dt
        lines.append(f"**Dedup, cramkit read+exact+near vs datatrove read+MinHash"
                     f"{'' if dt_plain else ' (+filters)'}: "
                     f"{base['seconds_total'] / ck['read+exact+near']['seconds']:.1f}x faster.**")
        if cli:
            lines.append(f"**End to end, cramkit `--until clean` vs datatrove read -> MinHash -> the same filters: "
                         f"{dt['seconds_total'] / cli['seconds']:.1f}x faster.**")
            lines.append("")
            lines.append("cramkit `--until clean` drops by reason: "
                         + ", ".join(f"{k} {v['docs']}" for k, v in sorted(cli["stats"]["dropped"].items())) + ".")
        lines.append("")
    systems = {"cramkit exact+near": ours}
    if dt:
        systems["datatrove MinHash"] = set(dt["removed_ids"])
    lines += ["| system | dropped as duplicates | correct | should go | precision | recall | removed with a kept "
              "true duplicate |", "|---|---|---|---|---|---|---|"]
    for label, dropped in systems.items():
        s = score(dropped, comp)
        lines.append(f"| {label} | {s['dropped']} | {s['correct']} | {s['should']} | {fmt(s['precision'], 4)} | "
                     f"{fmt(s['recall'], 4)} | {fmt(backed(dropped, pairs, set(texts)), 4)} |")
    lines.append("")
    copies_file = corpus.parent / "copies.jsonl"
    copies = [json.loads(line) for line in copies_file.open()] if copies_file.is_file() else []
    if copies:
        rows = per_kind(copies, texts, comp, systems)
        lines += ["Per injected copy kind: share resolved. A copy with a Jaccard >= 0.8 partner is resolved when it "
                  "is dropped or is the only survivor of its truth group (recall); a copy below 0.8 to everything "
                  "counts only when dropped (what a system merges below the threshold).", "",
                  "| kind | pairs | mean Jaccard | share >= 0.8 | " + " | ".join(systems) + " |",
                  "|---|---|---|---|" + "---|" * len(systems)]
        for kind in neardup_corpus.KINDS:
            row = rows[kind]
            j = np.array(row["jaccard"])
            lines.append(f"| {kind} | {row['pairs']} | {fmt(j.mean())} | {fmt((j >= 0.8).mean())} | "
                         + " | ".join(fmt(row[s] / row["pairs"], 3) for s in systems) + " |")
        lines.append("")
    return texts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=ROOT / ".." / "shared" / "data" / "text")
    ap.add_argument("--setup", action="store_true", help="create datatrove's venv under benchmarks/work")
    ap.add_argument("--corpora", default="text,neardup", help="comma list of: text, neardup")
    ap.add_argument("--no-datatrove", action="store_true")
    ap.add_argument("--datatrove-dedup-only", action="store_true", help="also run datatrove without its filter")
    ap.add_argument("--no-cli", action="store_true", help="skip `python -m pipeline --until clean`")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each cramkit stage set (fastest counts)")
    args = ap.parse_args()
    if args.setup:
        subprocess.run([sys.executable, "-m", "venv", str(DT_VENV)], check=True)
        subprocess.run([str(DT_VENV / "bin" / "pip"), "install", "-q", "datatrove[io,processing]==0.10.1", "spacy",
                        "lxml_html_clean"], check=True)  # the HTML cleaner its Trafilatura imports (web_pipeline.py)
        return
    if not args.no_datatrove and not DT_PYTHON.is_file():
        raise SystemExit(f"datatrove's venv is missing ({DT_VENV}): run with --setup first, or pass --no-datatrove")
    if not args.src.is_dir():
        raise SystemExit(f"--src {args.src} not found (the real text lives in ../shared/data/text)")
    load = os.getloadavg()
    lines = ["# Corpus pipeline benchmark", "",
             f"Command: `{' '.join(['python', 'benchmarks/corpus_pipeline.py', *sys.argv[1:]])}`  ",
             f"Machine: 2-core x86_64 VM ({platform.processor() or platform.machine()}), CPU only, shared with "
             f"other jobs; load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min).  ",
             "cramkit: `python -m pipeline`, Beam FnApiRunner in_memory (one process); datatrove 0.10.1 LocalPipelineExecutor, 2 workers, "
             "one task per input file; both with word 5-grams and 14 bands x 8 rows.", ""]
    for name in args.corpora.split(","):
        work = WORK / f"bench_{name}"
        work.mkdir(parents=True, exist_ok=True)
        built = neardup_corpus.build(args.src, work, copy_fraction=1 / 3 if name == "neardup" else 0.0)
        if name == "text":
            (work / "copies.jsonl").unlink()
        print(f"[{name}] built {built}", flush=True)
        texts = corpus_section(name, work / "corpus", work, args, lines)
    sample = list(texts.values())[:300]
    sr = signing_ratio(sample)
    lines += ["### MinHash signing alone (one thread, in process, same shingles and 32-bit shingle hash)", "",
              f"{sr['mb']:.1f} MB of documents: cramkit batch signing {fmt(sr['ours'])} MB/s; datasketch "
              f"`MinHash.update_batch` once per document {fmt(sr['update_batch'])} MB/s "
              f"(**{sr['ours'] / sr['update_batch']:.1f}x**); datasketch `MinHash.update` per shingle "
              f"{fmt(sr['update'])} MB/s (**{sr['ours'] / sr['update']:.1f}x**).", "",
              f"Load average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}.", ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
