"""GLUE data preparation, side by side: cramkit (glueval read_tsv + encode) vs the Hugging Face path that
run_glue.py takes (datasets' csv builder with quoting off + a fast tokenizer called on text pairs with
truncation). Same files, same WordPiece tokenizer, same max length; one run, reported as a ratio.

    PYTHONPATH=. .venv/bin/python benchmarks/glue_data.py [--glue-dir ../shared/data/glue] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import datasets
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from glueval import data
from glueval.encode import encode
from glueval.tasks import TASKS
from pipeline.tokens.tokenize import train_tokenizer

OUT = Path(__file__).resolve().parent / "results" / "glue_data.md"
NAMES = ("cola", "mrpc", "rte", "stsb")


def ours(glue: Path, tok: Tokenizer) -> int:
    n = 0
    for name in NAMES:
        td = data.load_tsv(TASKS[name], glue)
        n += len(encode(tok, td.train, 128, TASKS[name].is_regression))
    return n


def peer(glue: Path, hf_tok: PreTrainedTokenizerFast) -> int:
    n = 0
    for name in NAMES:
        task = TASKS[name]
        files = str(glue / task.title / "train.tsv")
        kw = {"column_names": ["source", "label", "mark", "sentence"]} if not task.has_header else {}
        ds = datasets.load_dataset("csv", data_files=files, sep="\t", quoting=3, split="train",
                                   download_mode="force_redownload", keep_in_memory=True, **kw)
        a, b, _ = task.tsv_columns
        if not task.has_header:
            a = "sentence"
        ds = ds.map(lambda batch, a=a, b=b: hf_tok(batch[a], batch[b] if b else None, truncation=True,
                                                   max_length=128),
                    batched=True, keep_in_memory=True)
        n += len(ds)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--glue-dir", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "glue")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    datasets.disable_progress_bars()
    texts = []
    for name in NAMES:
        td = data.load_tsv(TASKS[name], args.glue_dir)
        texts += td.train.text_a[:2000] + (td.train.text_b[:2000] if td.train.text_b else [])
    with tempfile.TemporaryDirectory() as tmp:
        tok = train_tokenizer(texts, 8192)  # the tokenizer `make corpus` writes
        tok.save(str(Path(tmp) / "tokenizer.json"))
        from tokenizers.processors import TemplateProcessing

        hf_raw = Tokenizer.from_file(str(Path(tmp) / "tokenizer.json"))
        hf_raw.post_processor = TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
        hf_tok = PreTrainedTokenizerFast(tokenizer_object=hf_raw, pad_token="[PAD]", cls_token="[CLS]",
                                         sep_token="[SEP]", unk_token="[UNK]")
        times = {"cramkit": [], "hf": []}
        rows = {}
        for _ in range(args.repeats):  # interleaved, best of N for each: the machine is shared and noisy
            for label, fn, arg in (("cramkit", ours, tok), ("hf", peer, hf_tok)):
                t0 = time.perf_counter()
                rows[label] = fn(args.glue_dir, arg)
                times[label].append(time.perf_counter() - t0)
    assert rows["cramkit"] == rows["hf"], rows
    best = {k: min(v) for k, v in times.items()}
    cmd = f"PYTHONPATH=. .venv/bin/python benchmarks/glue_data.py --repeats {args.repeats}"
    text = "\n".join([
        "# GLUE data preparation: cramkit vs Hugging Face datasets + fast tokenizer", "",
        f"Read + tokenize the train splits of {', '.join(TASKS[n].title for n in NAMES)} ({rows['cramkit']} rows; "
        "pairs `[CLS] A [SEP] B [SEP]`, max length 128, the same 8192-token cramkit WordPiece).",
        "Peer: `datasets.load_dataset('csv', sep='\\t', quoting=3)` + `PreTrainedTokenizerFast(a, b, truncation=True)` "
        "via `Dataset.map(batched=True)`, as run_glue.py does (cache disabled: in memory, forced re-read).", "",
        f"| path | best of {args.repeats} (s) | rows/s |", "|---|---|---|",
        *(f"| {k} | {best[k]:.2f} | {rows[k] / best[k]:,.0f} |" for k in best), "",
        f"**Ratio: cramkit is {best['hf'] / best['cramkit']:.2f}x the speed of the HF path** (same run).", "",
        f"Command: `{cmd}`  ", f"Machine: 2-core x86_64 VM, CPU ({platform.processor() or platform.machine()}), "
        "shared with other jobs.", ""])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
