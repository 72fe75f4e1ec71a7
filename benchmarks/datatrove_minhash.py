"""The datatrove side of benchmarks/corpus_pipeline.py; runs inside datatrove's own venv (no cramkit imports).

read JSONL -> MinHash dedup in datatrove's four steps (signatures, buckets, clusters, filter; word 5-grams,
14 buckets x 8 hashes) -> the filters cramkit's default config runs (words 20..100,000; zstd-3 ratio in
[0.10, 0.90] from 500 chars; Gopher repetition with the same thresholds) -> JSONL. Prints one JSON line:
seconds per step; writes the ids it removed as near-duplicates to WORK/removed_ids.txt.

    <datatrove venv>/bin/python benchmarks/datatrove_minhash.py CORPUS_DIR WORK_DIR [--workers 2] [--no-filters]
"""

import argparse
import gzip
import json
import time
from pathlib import Path

import zstandard
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.filters import GopherRepetitionFilter, LambdaFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter


def length_ok(doc):
    return 20 <= len(doc.text.split()) <= 100_000


def compression_ok(doc):
    raw = doc.text.encode()
    if len(doc.text) < 500:
        return True
    return 0.10 <= len(zstandard.ZstdCompressor(level=3).compress(raw)) / len(raw) <= 0.90


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", type=Path)
    ap.add_argument("work", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-filters", action="store_true")
    args = ap.parse_args()
    work = args.work.resolve()
    config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
    tasks = len(list(args.corpus.glob("*.jsonl")))

    def read():
        return JsonlReader(str(args.corpus.resolve()), text_key="text", id_key="id")

    def run(name, steps, n_tasks):
        start = time.perf_counter()
        LocalPipelineExecutor(pipeline=steps, tasks=n_tasks, workers=min(args.workers, n_tasks),
                              logging_dir=str(work / "logs" / name)).run()
        return time.perf_counter() - start

    filters = [] if args.no_filters else [LambdaFilter(length_ok), LambdaFilter(compression_ok),
                                            GopherRepetitionFilter()]
    seconds = {
        "signatures": run("sigs", [read(), MinhashDedupSignature(str(work / "sigs"), config=config)], tasks),
        "buckets": run("buckets", [MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)],
                       config.num_buckets),
        "clusters": run("clusters", [MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=config)], 1),
        "filter": run("filter", [read(),
                                 MinhashDedupFilter(str(work / "remove"),
                                                    exclusion_writer=JsonlWriter(str(work / "removed"))),
                                 *filters, JsonlWriter(str(work / "kept"))], tasks),
    }
    removed = [json.loads(line)["id"] for f in sorted((work / "removed").glob("*.jsonl.gz"))
               for line in gzip.open(f, "rt")]
    (work / "removed_ids.txt").write_text("".join(i + "\n" for i in removed))
    kept = sum(1 for f in (work / "kept").glob("*.jsonl.gz") for _ in gzip.open(f, "rt"))
    print(json.dumps({"seconds": seconds, "removed": len(removed), "kept": kept}))


if __name__ == "__main__":
    main()
