"""Main-content extraction of web pages: quality against hand-cleaned article text, and pages per second.

    python benchmarks/web_extract.py --data DIR [--only NAME ...]
    python benchmarks/web_extract.py --data DIR --scored OUT   # score a pipeline run's clean documents


DIR holds an article-extraction benchmark in the layout of the public ScrapingHub one (`html/<key>.html.gz`
and `ground-truth.json` mapping each key to {"articleBody": ...}). Every page is decoded as the pipeline
decodes it (pipeline.reading.web.decode_html), then each extractor turns it into text. Quality is the mean
over pages of the bag-of-words F1 (lower-cased \\w+ tokens, counted with multiplicity) between the extracted
and the hand-cleaned text; "F1>=0.85" is the share of pages that reach it. Speed is pages per second of
extraction alone, on one core. Resiliparse is the compared peer (`pip install resiliparse==2.0.0`; its
rows are left out without it). With --scored, the clean documents of `python -m pipeline --input DIR/html
--output OUT --until clean` are scored the same way (a page without a document scores 0).
"""

import argparse
import gzip
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.reading import web  # noqa: E402

_TOKEN = re.compile(r"\w+")
RESULTS = Path(__file__).resolve().parent / "results" / "web_extract.md"


def bow_f1(pred: str, true: str) -> float:
    p, t = Counter(_TOKEN.findall(pred.lower())), Counter(_TOKEN.findall(true.lower()))
    if not p or not t:
        return float(p == t)
    tp = sum((p & t).values())
    if not tp:
        return 0.0
    precision, recall = tp / sum(p.values()), tp / sum(t.values())
    return 2 * precision * recall / (precision + recall)


def extractors() -> dict:
    found = {
        "trafilatura (web.extract=main)": web.Extractor(web.WebConfig()),
        "trafilatura fallback=true": web.Extractor(web.WebConfig(fallback=True)),
        "trafilatura favor=precision": web.Extractor(web.WebConfig(favor="precision")),
        "trafilatura favor=recall": web.Extractor(web.WebConfig(favor="recall")),
        "all visible text (web.extract=text)": web.Extractor(web.WebConfig(extract="text")),
    }
    try:
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree
    except ImportError:
        print("resiliparse is not installed (pip install resiliparse==2.0.0): its rows are left out")
        return found
    for main, name in ((True, "resiliparse 2.0.0 main_content"), (False, "resiliparse 2.0.0 all text")):
        found[name] = lambda html, url, main=main: extract_plain_text(HTMLTree.parse(html), main_content=main)
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--only", nargs="*", help="extractor names that contain one of these words")
    ap.add_argument("--scored", type=Path, help="a pipeline output folder (docs-*.jsonl.zst) to score")
    args = ap.parse_args()
    truth = json.loads((args.data / "ground-truth.json").read_text())
    if args.scored:
        import zstandard

        docs = {}
        for path in sorted(args.scored.glob("docs-*.jsonl.zst")):
            for line in zstandard.ZstdDecompressor().stream_reader(path.open("rb")).read().decode().splitlines():
                doc = json.loads(line)
                docs[doc["id"].split(":")[1].rsplit("/", 1)[-1].removesuffix(".html.gz")] = doc["text"]
        f1 = [bow_f1(docs.get(key, ""), truth[key]["articleBody"]) for key in sorted(truth)]
        print(f"{args.scored}: documents for {sum(k in docs for k in truth)} of {len(truth)} pages, mean F1 "
              f"{sum(f1) / len(f1):.3f}, F1>=0.85 for {sum(x >= 0.85 for x in f1) / len(f1):.1%}")
        return
    pages = []
    for key in sorted(truth):
        html, _ = web.decode_html(gzip.decompress((args.data / "html" / f"{key}.html.gz").read_bytes()))
        pages.append((html, truth[key].get("url", ""), truth[key]["articleBody"]))
    load = os.getloadavg()
    lines = ["# Main-content extraction benchmark", "",
             f"Command: `python benchmarks/web_extract.py {' '.join(sys.argv[1:])}`  ",
             f"Machine: 2-core x86_64 VM, CPU only, shared with other jobs; load average {load[0]:.1f} / "
             f"{load[1]:.1f} / {load[2]:.1f}.  ",
             f"Pages: {len(pages)} news and blog pages of the ScrapingHub article-extraction benchmark "
             "(`html/*.html.gz`, `ground-truth.json`), decoded as the pipeline decodes them.", "",
             "| extractor | mean bag-of-words F1 | pages with F1 >= 0.85 | non-empty | pages/s, one core |",
             "|---|---|---|---|---|"]
    for name, fn in extractors().items():
        if args.only and not any(w in name for w in args.only):
            continue
        start, outs = time.process_time(), []
        for html, url, _ in pages:
            outs.append(fn(html, url) or "")
        rate = len(pages) / (time.process_time() - start)
        f1 = [bow_f1(out, true) for out, (_, _, true) in zip(outs, pages, strict=True)]
        lines.append(f"| {name} | {sum(f1) / len(f1):.3f} | {sum(x >= 0.85 for x in f1) / len(f1):.1%} | "
                     f"{sum(bool(o.strip()) for o in outs) / len(outs):.1%} | {rate:.1f} |")
        print(lines[-1], flush=True)
    if not args.only:
        RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
