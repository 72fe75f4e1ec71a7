"""Decontamination speed and memory: cramkit's check (pipeline.cleaning.decontam) beside datatrove's n-gram
decontamination on the same corpus and the same evaluation examples, word 13-grams both, one process each.

The corpus is the one benchmarks/decontam_acceptance.py builds (29,683 prose paragraphs, 300 of them
carrying a GLUE dev example; run it first), so the figures also say how many of those each system finds
and how many clean paragraphs it flags. The evaluation sets: every GLUE file available under --glue
(--splits train,dev,test: all of them), read by pipeline.cleaning.evalsets.

cramkit: build the index (read the files, normalize, n-grams), then `Matcher.apply` on the paragraphs
after the pipeline's `cramming` normalizer (the scan's input to the check; the normalizer is not timed),
in batches of 512 as the scan does. datatrove 0.10.1 (its venv from benchmarks/corpus_pipeline.py
--setup): benchmarks/datatrove_decontam.py, `NGramsDecontIndexer.compute_hashes` then
`NGramsDecontFilter.filter` per document on the raw paragraphs (its own normalization and word
tokenizer are part of its filter). Times are CPU seconds of the process (the machine is shared).

    python benchmarks/decontam.py [--glue DIR] [--splits train,dev,test] [--no-datatrove] [--scale 400000]
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = ROOT / "benchmarks" / "work" / "decontam_acceptance"
DT_PYTHON = ROOT / "benchmarks" / "work" / "datatrove-venv" / "bin" / "python"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cramkit_child(corpus: Path, glue: str, splits: tuple, ngram: int) -> dict:
    from pipeline.cleaning import decontam  # noqa: F401
    from pipeline.cleaning.normalize import cramming
    from pipeline.document import Doc
    from pipeline.files import storage  # noqa: F401 -- storage: Beam's file systems, loaded in every worker

    base = rss_mb()
    start = time.process_time()
    cfg = decontam.DecontamConfig(glue_dir=glue, splits=splits, ngram=ngram)
    matcher = decontam.Matcher(decontam.load(cfg, "cramming"))
    index_s, index_rss = time.process_time() - start, rss_mb()
    docs = [Doc(i, str(i), cramming(json.loads(line)["text"])) for i, line in enumerate(corpus.open())]
    start, flagged = time.process_time(), []
    for lo in range(0, len(docs), 512):
        _, dropped, _ = matcher.apply(docs[lo: lo + 512])
        flagged += [d.id for d, _ in dropped]
    return {"index_s": index_s, "check_s": time.process_time() - start, "keys": len(matcher.ix.keys),
            "examples": sum(s["examples"] for s in matcher.ix.meta["sets"]), "chars": sum(len(d.text) for d in docs),
            "flagged": flagged, "import_rss_mb": base, "index_rss_mb": index_rss, "peak_rss_mb": rss_mb()}


def scale_child(corpus: Path, pairs: int) -> dict:
    """The index of `pairs` examples of two prose sentences each (a stand-in for QQP's test set): build
    seconds, the peak RSS it adds to the texts held, the arrays the workers load."""
    import re

    from pipeline.cleaning import decontam, evalsets  # noqa: F401
    from pipeline.files import storage  # noqa: F401

    sents = [s.replace("\n", " ") for line in corpus.open() for s in re.split(r"(?<=[.!?])\s+", json.loads(line)["text"])
             if 3 <= len(s.split()) <= 40]
    examples = [evalsets.Example(i, (sents[2 * i % len(sents)], sents[(2 * i + 1) % len(sents)])) for i in range(pairs)]
    words = sum(len(t.split()) for e in examples for t in e.texts)
    del sents
    base, start = rss_mb(), time.process_time()
    ix = decontam.build([evalsets.EvalSplit("pairs", "test", "-", examples)], decontam.DecontamConfig(paths=("-",)),
                        "cramming")
    return {"pairs": pairs, "words": words, "build_s": time.process_time() - start, "added_mb": rss_mb() - base,
            "keys": len(ix.keys), "arrays_mb": sum(v.nbytes for v in vars(ix).values() if hasattr(v, "nbytes")) / 1e6}


def run_child(cmd) -> dict:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--glue", default=str(ROOT / ".." / "shared" / "data" / "glue"))
    ap.add_argument("--splits", default="train,dev,test")
    ap.add_argument("--ngram", type=int, default=13)
    ap.add_argument("--no-datatrove", action="store_true")
    ap.add_argument("--scale", type=int, default=400_000,
                    help="also index this many pairs of prose sentences, for memory at QQP-test scale (0: no)")
    ap.add_argument("--child", choices=("check", "scale"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    corpus, splits = WORK / "corpus" / "docs.jsonl", tuple(args.splits.split(","))
    if args.child:
        print(json.dumps(cramkit_child(corpus, args.glue, splits, args.ngram) if args.child == "check"
                         else scale_child(corpus, args.scale)))
        return
    if not corpus.is_file():
        raise SystemExit(f"{corpus} missing: run benchmarks/decontam_acceptance.py first")
    plan = {int(k): v for k, v in json.loads((WORK / "plan.json").read_text()).items()}
    load = os.getloadavg()
    ck = run_child([sys.executable, __file__, "--child", "check", "--glue", args.glue, "--splits", args.splits,
                    "--ngram", str(args.ngram)])
    systems = {"cramkit (pipeline.cleaning.decontam)": ck}
    if not args.no_datatrove:
        if not DT_PYTHON.is_file():
            raise SystemExit("datatrove's venv is missing: python benchmarks/corpus_pipeline.py --setup")
        from pipeline.cleaning import evalsets

        evals = WORK / "evals.jsonl"
        sets = evalsets.glue_folder(args.glue, splits)
        evals.write_text("".join(json.dumps({"task": s.task, "texts": list(e.texts)}) + "\n"
                                 for s in sets for e in s.examples))
        systems["datatrove 0.10.1 NGramsDecontFilter"] = run_child(
            [str(DT_PYTHON), str(ROOT / "benchmarks" / "datatrove_decontam.py"), str(evals), str(corpus), str(WORK),
             "--ngram", str(args.ngram)])
    lines = ["# Decontamination speed and memory", "",
             f"Command: `python benchmarks/decontam.py {' '.join(sys.argv[1:])}`  ",
             f"Machine: 2-core x86_64 VM ({platform.processor() or platform.machine()}), shared with other jobs "
             f"(load average at start {load[0]:.1f}); CPU seconds of one process each.  ",
             f"Evaluation sets: every {'/'.join(splits)} file under {Path(args.glue).name}/ ({ck['examples']:,} "
             f"examples); corpus: {corpus.relative_to(ROOT)} ({ck['chars'] / 1e6:.1f} MB after normalizing, "
             f"{len(plan)} paragraphs carrying a GLUE dev example).", "",
             "| system | index CPU s | keys | check CPU s | MB/s per core | carriers flagged | clean flagged | peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in systems.items():
        flagged = set(r["flagged"])
        lines.append(f"| {name} | {r['index_s']:.2f} | {r['keys']:,} | {r['check_s']:.2f} | "
                     f"{r['chars'] / 1e6 / r['check_s']:.1f} | {len(flagged & set(plan))} of {len(plan)} | "
                     f"{len(flagged - set(plan))} | {r['peak_rss_mb']:.0f} |")
    kinds = sorted({p["kind"] for p in plan.values()})
    lines += ["", "Carriers flagged by how they carry the example, and by the example's length in words:", "",
              "| system | " + " | ".join(kinds) + " | < 6 words | 6-12 words | >= 13 words |",
              "|---|" + "---:|" * (len(kinds) + 3)]
    for name, r in systems.items():
        flagged = set(r["flagged"])

        def share(ids, flagged=flagged):
            return f"{sum(i in flagged for i in ids)} of {len(ids)}"

        by_kind = [share([i for i, p in plan.items() if p["kind"] == k]) for k in kinds]
        by_len = [share([i for i, p in plan.items() if lo <= p["words"] < hi]) for lo, hi in ((0, 6), (6, 13), (13, 10**9))]
        lines.append(f"| {name} | " + " | ".join(by_kind + by_len) + " |")
    if len(systems) == 2:
        dt = systems["datatrove 0.10.1 NGramsDecontFilter"]
        lines += ["", f"Check speed, cramkit / datatrove: **{dt['check_s'] / ck['check_s']:.1f}x**."]
    lines += ["", f"cramkit's memory: {ck['import_rss_mb']:.0f} MB after imports (Beam's file systems included), "
              f"{ck['index_rss_mb']:.0f} MB with the "
              f"index of {ck['examples']:,} examples built (peak), {ck['peak_rss_mb']:.0f} MB after reading the whole "
              "corpus into memory for the timing (the pipeline holds one batch)."]
    if args.scale:
        sc = run_child([sys.executable, __file__, "--child", "scale", "--scale", str(args.scale)])
        lines += ["", f"At scale: {sc['pairs']:,} pairs of prose sentences ({sc['words'] / 1e6:.1f}M words; sentences "
                  f"repeat, so {sc['keys']:,} keys) indexed in {sc['build_s']:.1f} CPU s, adding {sc['added_mb']:.0f} MB "
                  f"of peak RSS to the texts held (the launcher, once); the arrays the workers load: "
                  f"{sc['arrays_mb']:.0f} MB."]
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "benchmarks" / "results" / "decontam.md").write_text(text)


if __name__ == "__main__":
    main()
