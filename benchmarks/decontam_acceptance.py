"""Decontamination on a corpus of prose in which some documents carry one GLUE dev example: how many of
them `python -m pipeline --until clean decontam.glue_dir=GLUE` removes, per way of carrying it, and how
many clean documents it removes that the same run without decontamination keeps.

The corpus: every blank-line paragraph of the prose folder, one document each (JSON Lines); `--docs` of
them (at least 30 words) get one dev example of a task folder in GLUE (pair tasks: both sentences), put
after a sentence of theirs, in one of four ways, as many of each:
  detokenized   PTB clitics and brackets joined back ("do n't" -> "don't", "-LRB- x -RRB-" -> "(x)") and
                every sentence capitalised
  verbatim      as in the file
  wrapped       hard-wrapped over lines of 40 characters
  window        16 consecutive words of an example of more than 16 words

`--per-task` draws the task first, every task folder equally often, then one of its examples (by default
every dev example is equally likely, so the larger sets dominate). `--ptb-task N` adds a task in SST-2's
style that the index has never seen otherwise: N sentences of the train splits of STS-B and RTE,
Penn-Treebank-tokenized and lowercased ("it 's a charming journey ."), written as SST-2/dev.tsv into a copy
of GLUE under --work (the other task folders linked), which both runs then use.

    python benchmarks/decontam_acceptance.py [--text DIR] [--glue DIR] [--docs 300] [--workers 1] [--seed 0]
                                             [--per-task] [--ptb-task 872]

Prints the figures (and writes them to benchmarks/results/decontam_acceptance.md).
"""

import argparse
import json
import platform
import random
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.cleaning import evalsets  # noqa: E402

KINDS = ("detokenized", "verbatim", "wrapped", "window")


def ptb(text: str) -> str:
    """Penn-Treebank-style tokens: clitics, punctuation, brackets and quotes split off as SST-2 writes them."""
    text = re.sub(r'(^|[\s(\[])"', r"\1 `` ", text)
    text = text.replace('"', " '' ").replace("(", " -LRB- ").replace(")", " -RRB- ").replace("--", " -- ")
    text = re.sub(r"\b(ca|wo)n't\b", r"\1 n't", text, flags=re.I)
    text = re.sub(r"(\w)(n't)\b", r"\1 \2", text, flags=re.I)
    text = re.sub(r"(\w)('s|'re|'ll|'ve|'d|'m)\b", r"\1 \2", text, flags=re.I)
    text = re.sub(r"([,;:!?%$&]|\.\.\.)", r" \1 ", text)
    text = re.sub(r"\.(\W*)$", r" . \1", text.strip())  # the final stop only: abbreviations keep theirs
    return " ".join(text.split())


def ptb_task(glue: Path, work: Path, n: int, rng: random.Random) -> Path:
    """A copy of `glue` (the task folders linked) with SST-2/dev.tsv: `n` train sentences of STS-B and RTE,
    tokenized and lowercased."""
    sents = {s for task in ("stsb", "rte") for split in evalsets.glue_folder(str(glue), ("train",))
             if split.task == task for e in split.examples for t in e.texts
             for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", t) if 3 <= len(s.split()) <= 50}
    out = work / "glue"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    for task in glue.iterdir():
        if task.name != "SST-2":
            (out / task.name).symlink_to(task.resolve())
    (out / "SST-2").mkdir()
    picked = rng.sample(sorted(sents), n)
    (out / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{ptb(s).lower()} \t1\n" for s in picked))
    return out


def detokenize(text: str) -> str:
    text = re.sub(r" (n't|'t|'s|'re|'ll|'ve|'d|'m)\b", r"\1", text)
    text = re.sub(r"-LRB- ?", "(", text, flags=re.I)
    text = re.sub(r" ?-RRB-", ")", text, flags=re.I)
    text = text.replace("`` ", '"').replace(" ''", '"')
    text = re.sub(r" ([.,;:!?%])", r"\1", text)
    text = re.sub(r"\bi\b", "I", text)
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def carry(kind: str, text: str, rng: random.Random) -> str:
    if kind == "detokenized":
        return detokenize(text)
    if kind == "wrapped":
        return textwrap.fill(text, 40)
    if kind == "window":
        ws = text.split()
        start = rng.randrange(len(ws) - 16 + 1)
        return " ".join(ws[start: start + 16])
    return text


def build(text_dir: Path, glue: Path, n: int, work: Path, seed: int, per_task: bool = False) -> dict:
    rng = random.Random(seed)
    paras = []
    for f in sorted(text_dir.rglob("*.txt")):
        raw = f.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
        paras += [b.strip() for b in re.split(r"\n\s*\n", raw) if b.strip()]
    sets = evalsets.glue_folder(str(glue), ("dev",))
    examples = [(s.task, s.split, e.index, " ".join(e.texts)) for s in sets for e in s.examples]
    long = [e for e in examples if len(e[3].split()) > 16]
    hosts = rng.sample([i for i, p in enumerate(paras) if len(p.split()) >= 30], n)
    plan = {}
    for j, i in enumerate(hosts):
        kind = KINDS[j % len(KINDS)]
        pool = long if kind == "window" else examples
        if per_task:
            task = rng.choice(sorted({e[0] for e in pool}))
            pool = [e for e in pool if e[0] == task]
        task, split, index, text = rng.choice(pool)
        p = paras[i]
        stops = [m.end() for m in re.finditer(r"[.!?]\s", p)]
        cut = rng.choice(stops) if stops else len(p)
        paras[i] = p[:cut] + carry(kind, text, rng) + " " + p[cut:]
        plan[i] = {"kind": kind, "task": task, "split": split, "example": index, "words": len(text.split())}
    src = work / "corpus"
    src.mkdir(parents=True, exist_ok=True)
    names, at = {}, 0
    with open(src / "docs.jsonl", "w") as f:
        for i, p in enumerate(paras):
            line = json.dumps({"text": p}) + "\n"
            names[f"jsonl:docs.jsonl:{at:012d}"] = i
            f.write(line)
            at += len(line.encode())
    (work / "plan.json").write_text(json.dumps(plan))  # line number -> what it carries (benchmarks/decontam.py)
    return {"src": src, "names": names, "plan": plan, "docs": len(paras)}


def run(src: Path, out: Path, workers: int, *overrides) -> tuple[set, dict, float]:
    subprocess.run(["rm", "-rf", str(out)], check=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "--input", str(src), "--output", str(out), "--until", "clean",
                    "--workers", str(workers), *overrides], check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    kept = {json.loads(line)["id"] for f in sorted(out.glob("docs-*"))
            for line in zstandard.ZstdDecompressor().stream_reader(f.open("rb")).read().decode().splitlines()}
    return kept, json.loads((out / "stats.json").read_text()), wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", type=Path, default=ROOT / ".." / "shared" / "data" / "text")
    ap.add_argument("--glue", type=Path, default=ROOT / ".." / "shared" / "data" / "glue")
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-task", action="store_true", help="every task folder equally often")
    ap.add_argument("--ptb-task", type=int, default=0, metavar="N", help="add an SST-2-style task of N sentences")
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "decontam_acceptance")
    args = ap.parse_args()
    if args.ptb_task:
        args.glue = ptb_task(args.glue, args.work, args.ptb_task, random.Random(args.seed))
    built = build(args.text, args.glue, args.docs, args.work, args.seed, args.per_task)
    names, plan = built["names"], built["plan"]
    base, base_stats, base_wall = run(built["src"], args.work / "base", args.workers)
    dec, stats, wall = run(built["src"], args.work / "decontam", args.workers, f"decontam.glue_dir={args.glue}")
    base_ids, dec_ids = {names[n] for n in base}, {names[n] for n in dec}
    found = args.work / "decontam" / "contamination.jsonl"
    matched = {names[json.loads(line)["id"]] for line in found.read_text().splitlines()} if found.exists() else set()
    lines = ["# Decontamination acceptance check", "",
             f"Command: `python benchmarks/decontam_acceptance.py {' '.join(sys.argv[1:])}`  ",
             f"Machine: 2-core x86_64 VM ({platform.processor() or platform.machine()}), shared with other jobs.  ",
             f"Corpus: {built['docs']:,} prose paragraphs of {args.text.name}/, {len(plan)} carrying one dev example "
             f"of {args.glue}'s task folders ({', '.join(sorted({p['task'] for p in plan.values()}))}).  ",
             f"Runs: `python -m pipeline --until clean` ({base_wall:.0f} s) and the same with "
             f"`decontam.glue_dir=GLUE` ({wall:.0f} s), {args.workers} worker(s).", "",
             "| carried as | documents | removed | removed % | matched by decontam |", "|---|---:|---:|---:|---:|"]
    for kind in (*KINDS, "all"):
        ids = [i for i, p in plan.items() if kind in ("all", p["kind"])]
        gone = sum(i not in dec_ids for i in ids)
        lines.append(f"| {kind} | {len(ids)} | {gone} | {100 * gone / len(ids):.1f} | {sum(i in matched for i in ids)} |")
    clean = {i for i in base_ids if i not in plan}
    lost = sorted(clean - dec_ids)
    new_reasons = sorted(set(stats["dropped"]) - set(base_stats["dropped"]))
    lines += ["", f"Clean documents the run without decontamination keeps: {len(clean):,}; the decontaminating run "
              f"removes {len(lost)} of them ({100 * len(lost) / max(len(clean), 1):.3f} %).  ",
              f"Drop reasons only the decontaminating run has: {', '.join(new_reasons)}."]
    missed = [p for i, p in plan.items() if i in dec_ids]
    if missed:
        lines += ["", "Kept although carrying an example (kind, task, words of the example):",
                  *(f"- {p['kind']} {p['task']}/{p['split']} #{p['example']}, {p['words']} words" for p in missed)]
    report = stats.get("contamination", {})
    lines += ["", f"Contamination report: {report.get('documents', 0)} documents matched, "
              f"{report.get('records', 0)} records."]
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "decontam_acceptance.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
