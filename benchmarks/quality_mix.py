"""Quality scores on a 50/50 mix of good prose and junk: AUC (good vs junk) per kind and overall, and the
share of good documents among those kept at quality.keep_fraction=0.5.

The mix (one JSON Lines file per kind, so a clean record's id names its kind):
- good.jsonl: real prose, documents of about 150+ words cut from the `--good` books at paragraph ends;
- salad.jsonl: word salad, words drawn from the good documents' own words (same vocabulary, same word
  frequencies), as long as a good document;
- keywords.jsonl: keyword listings, 1-3 of the good documents' words per entry, joined by commas, bars,
  dashes or line breaks;
- web.jsonl: raw Common Crawl pages: the HTML pages of the WARC files in `--web`, as tag-stripped text
  (navigation, menus and all, like a WET record) and as raw HTML, and the WET file's pages.
The reference is other books (`--reference`), read by the pipeline itself.

    python benchmarks/quality_mix.py [--text DATA/text --web DATA/web] [--min-words 30] [key=value ...]
"""

import argparse
import gzip
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import zstandard

KINDS = ("good", "salad", "keywords", "web")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SEPARATORS = (", ", " | ", "\n", " - ", "; ")


def good_docs(files: list[Path], min_words: int = 150) -> list[str]:
    """Documents of at least `min_words` words: consecutive paragraphs of each file, joined."""
    out = []
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
        doc = []
        for para in re.split(r"\n\s*\n", text):
            if para.strip():
                doc.append(para.strip())
            if sum(len(p.split()) for p in doc) >= min_words:
                out.append("\n\n".join(doc))
                doc = []
    return out


def salad(rng: random.Random, words: list[str], n: int) -> str:
    return " ".join(rng.choice(words) for _ in range(n))


def keywords(rng: random.Random, words: list[str], n: int) -> str:
    content = [w for w in (w.strip(".,;:!?\"'()[]") for w in words) if len(w) > 3]
    sep = rng.choice(SEPARATORS)
    return sep.join(" ".join(rng.choice(content) for _ in range(rng.randint(1, 3))) for _ in range(n))


def web_pages(web: Path) -> list[str]:
    """Raw Common Crawl pages: each HTML response of the WARC files tag-stripped and raw, and the WET pages."""
    out = []
    for path in sorted(web.glob("*.warc.gz")):
        data = gzip.open(path).read().decode("utf-8", "replace")
        for record in data.split("WARC/1.0\r\n")[1:]:
            if "WARC-Type: response" not in record or "<" not in record:
                continue
            body = record.split("\r\n\r\n", 2)[-1]
            text = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", body)
            text = re.sub(r"\n\s*\n+", "\n", re.sub(r"<[^>]+>", "\n", text)).strip()
            out += [text[:50_000], body[:50_000]]
    for path in sorted(web.glob("*.wet.gz")):
        data = gzip.open(path).read().decode("utf-8", "replace")
        out += [r.split("\r\n\r\n", 1)[-1] for r in data.split("WARC/1.0\r\n")[1:] if "WARC-Type: conversion" in r]
    return [t for t in out if len(t.split()) >= 30]


def make_mix(good_files: list[Path], web: Path | None, folder: Path, n_good: int, seed: int = 0,
             min_words: int = 150) -> dict:
    """Write the mix to `folder` (one .jsonl per kind); {kind: documents written}."""
    rng = random.Random(seed)
    good = good_docs(good_files, min_words)
    rng.shuffle(good)
    good = good[:n_good]
    words = [w for doc in good for w in doc.split()]
    lengths = [len(doc.split()) for doc in good]
    pages = web_pages(web) if web and web.is_dir() else []
    n_junk = len(good) - len(pages)
    kinds = {"good": good, "web": pages,
             "salad": [salad(rng, words, rng.choice(lengths)) for _ in range(n_junk // 2)],
             "keywords": [keywords(rng, words, rng.choice(lengths) // 2) for _ in range(n_junk - n_junk // 2)]}
    folder.mkdir(parents=True, exist_ok=True)
    for kind, docs in kinds.items():
        (folder / f"{kind}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    return {k: len(v) for k, v in kinds.items()}


def read_clean(out: Path, field: str = "quality") -> list[tuple[str, object]]:
    """(kind, `field`) of every clean record of an output folder."""
    rows = []
    for f in sorted(out.glob("docs-*.jsonl.zst")):
        for line in zstandard.ZstdDecompressor().stream_reader(f.open("rb")).read().decode().splitlines():
            rec = json.loads(line)
            rows.append((rec["id"].split(":")[1].removesuffix(".jsonl"), rec[field]))
    return rows


def auc(pos, neg) -> float:
    """P(a random positive scores above a random negative), ties counting half."""
    pos, neg = np.asarray(pos, np.float64)[:, None], np.asarray(neg, np.float64)[None, :]
    if not pos.size or not neg.size:
        return float("nan")
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def aucs(rows: list[tuple[str, float]]) -> dict:
    good = [q for k, q in rows if k == "good"]
    out = {k: auc(good, [q for kk, q in rows if kk == k]) for k in KINDS[1:]}
    out["all"] = auc(good, [q for k, q in rows if k != "good"])
    return out


def run(mix: Path, out: Path, *overrides: str, workers: int = 1) -> None:
    subprocess.run([sys.executable, "-m", "pipeline", "--input", str(mix), "--output", str(out), "--until", "clean",
                    "--overwrite", "--workers", str(workers), *overrides], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", type=Path, default=DATA / "text", help="a folder holding nltk_gutenberg/")
    ap.add_argument("--web", type=Path, default=DATA / "web", help="a folder of Common Crawl WARC / WET files")
    ap.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "work" / "quality_mix")
    ap.add_argument("--good", default="austen-emma,melville-moby_dick,chesterton-brown,whitman-leaves",
                    help="Gutenberg books of the good prose (names without .txt)")
    ap.add_argument("--reference", default="austen-sense,chesterton-ball,shakespeare-hamlet,shakespeare-macbeth,"
                                           "milton-paradise,blake-poems", help="Gutenberg books of the reference")
    ap.add_argument("--docs", type=int, default=1000, help="good documents (as many junk)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--min-words", type=int, default=150, help="words per good document, at least")
    ap.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "results" / "quality_mix.md",
                    help="append the figures to this markdown file")
    ap.add_argument("overrides", nargs="*", help="more pipeline overrides for both runs (key=value)")
    args = ap.parse_args()
    args.work = args.work.resolve()
    books, lines = args.text / "nltk_gutenberg", []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"command: python benchmarks/quality_mix.py {' '.join(sys.argv[1:])}")
    say(f"good books: {args.good}; reference books: {args.reference}; load before: {os.getloadavg()[0]:.1f}")
    counts = make_mix([books / f"{b}.txt" for b in args.good.split(",")], args.web, args.work / "in", args.docs,
                      args.seed, args.min_words)
    say(f"mix (documents written): {counts}")
    reference = "quality.reference=" + ",".join(str(books / f"{b}.txt") for b in args.reference.split(","))
    run(args.work / "in", args.work / "all", reference, "quality.keep_fraction=1.0", *args.overrides)
    rows = read_clean(args.work / "all")
    say(f"scored (clean records, after filters and dedup): {({k: sum(1 for kk, _ in rows if kk == k) for k in KINDS})}")
    say(f"AUC good vs junk: {({k: round(v, 4) for k, v in aucs(rows).items()})}")
    from pipeline.cleaning import quality

    texts = read_clean(args.work / "all", "text")
    scorer = quality.Scorer.load(str(args.work / "all" / "quality"))
    signals = scorer.signals([t for _, t in texts])
    z = (signals - scorer.calibration["median"]) / np.array(scorer.calibration["spread"])
    other = {f"{name} alone": signals[:, i] for i, name in enumerate(scorer.calibration["signals"])}
    other |= {"min of the two language-model signals": z[:, 1:].min(1), "mean of the three": z.mean(1)}
    for name, values in other.items():
        per = aucs([(k, v) for (k, _), v in zip(texts, values, strict=True)])
        say(f"  AUC of {name}: {({k: round(v, 4) for k, v in per.items()})}")
    run(args.work / "in", args.work / "half", reference, "quality.keep_fraction=0.5", *args.overrides)
    kept = read_clean(args.work / "half")
    say(f"keep_fraction=0.5: kept {len(kept)} of {len(rows)}; good among them: "
        f"{sum(k == 'good' for k, _ in kept) / max(len(kept), 1):.4f}")
    if args.results:
        with open(args.results, "a") as f:
            f.write("\n".join(["```", *lines, "```", ""]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
