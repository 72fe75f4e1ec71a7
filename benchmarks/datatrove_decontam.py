"""The datatrove side of benchmarks/decontam.py; runs inside datatrove's own venv (no cramkit imports).

Builds datatrove's n-gram decontamination index from the evaluation examples cramkit read (EVALS: JSON
Lines {"task", "texts"}) with its own index-building code, `NGramsDecontIndexer.compute_hashes` (a pair:
query = first text, label = second, with query and overlapping n-grams; a single text: the label), and
writes it in its index format; then runs `NGramsDecontFilter.filter` over the corpus (JSON Lines
{"text"}), one process. The indexer's `run` cannot be used offline: after the given documents it always
loads lighteval's task registry (lighteval is not installed, and its tasks download from the Hub).
Prints one JSON line: index and check seconds (CPU), flagged line numbers, peak RSS.

    <datatrove venv>/bin/python benchmarks/datatrove_decontam.py EVALS CORPUS WORK [--ngram 13]
"""

import argparse
import json
import resource
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from datatrove.data import Document
from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
from datatrove.utils.hashing import create_hash_func
from datatrove.utils.word_tokenizers import load_word_tokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("evals", type=Path)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("work", type=Path)
    ap.add_argument("--ngram", type=int, default=13)
    args = ap.parse_args()
    config = NGramsDecontConfig(n_grams=args.ngram, find_query_ngrams=True, find_overlap_ngrams=True)
    start = time.process_time()
    indexer = SimpleNamespace(config=config, tokenizer=load_word_tokenizer("en"),
                              hash_func=create_hash_func(config.hash_config))
    hashes: dict = {}
    for line in args.evals.open():
        ex = json.loads(line)
        texts = ex["texts"]
        query, label = (texts[0], texts[1]) if len(texts) > 1 else (None, texts[0])
        hashes.setdefault(ex["task"], set()).update(NGramsDecontIndexer.compute_hashes(indexer, label, query))
    index = args.work / "datatrove_index"
    index.mkdir(parents=True, exist_ok=True)
    for task, values in hashes.items():
        np.array(sorted(values), dtype=config.hash_config.np_descr).tofile(index / f"{task}.index.hashes")
    index_s = time.process_time() - start
    docs = [json.loads(line)["text"] for line in args.corpus.open()]
    filt = NGramsDecontFilter(str(index), config=config)
    filt.load_index_hashes()
    start = time.process_time()
    flagged = [i for i, text in enumerate(docs) if filt.filter(Document(text=text, id=str(i))) is not True]
    check_s = time.process_time() - start
    print(json.dumps({"index_s": index_s, "check_s": check_s, "keys": sum(map(len, hashes.values())),
                      "chars": sum(map(len, docs)), "flagged": flagged,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
