"""Build a benchmark corpus with known near-duplicates from real text.

Base documents are runs of blank-line-separated paragraphs (300-1,500 words) of every .txt file under
--src (UTF-8, else latin-1; CRLF folded). A random third of them (by default) get injected copies: 1%, 2%,
5% and 10% of the words replaced, one sentence added, one sentence removed. Every document gets a random
stable id, so which member of a group is lowest is not tied to being the original.

Writes OUT/corpus/part-NNNNN.jsonl ({"id", "text"} per line; also readable as plain JSON Lines by any
tool) and OUT/copies.jsonl ({"copy", "source", "kind"} per injected copy). The full ground truth (every
pair with word-5-gram Jaccard >= 0.8, injected or natural) is computed by `benchmarks/corpus_pipeline.py`.

    python benchmarks/neardup_corpus.py --src ../shared/data/text --out benchmarks/work/neardup
"""

import argparse
import json
import random
import re
from pathlib import Path

EDIT_RATES = {"edit1": 0.01, "edit2": 0.02, "edit5": 0.05, "edit10": 0.10}
KINDS = (*EDIT_RATES, "sentence_added", "sentence_removed")


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def base_documents(src: Path, rng: random.Random) -> list[str]:
    docs = []
    for path in sorted(src.rglob("*.txt")):
        want, current = rng.randint(300, 1500), []
        for para in re.split(r"\n\s*\n", read_text(path)):
            if para.strip():
                current.append(para.strip())
            if sum(len(p.split()) for p in current) >= want:
                docs.append("\n\n".join(current))
                want, current = rng.randint(300, 1500), []
        if sum(len(p.split()) for p in current) >= 50:
            docs.append("\n\n".join(current))
    return docs


def edit(text: str, kind: str, rng: random.Random, vocab: list[str]) -> str:
    if kind in EDIT_RATES:
        words = text.split(" ")
        for i in rng.sample(range(len(words)), max(1, round(EDIT_RATES[kind] * len(words)))):
            words[i] = rng.choice(vocab)
        return " ".join(words)
    sentences = re.split(r"(?<=[.!?])\s+", text)
    at = rng.randrange(len(sentences))
    if kind == "sentence_added":
        sentences.insert(at, " ".join(rng.choice(vocab) for _ in range(rng.randint(8, 25))).capitalize() + ".")
    elif len(sentences) > 1:
        del sentences[at]
    return " ".join(sentences)


def build(src: Path, out: Path, copy_fraction: float = 1 / 3, seed: int = 0, files: int = 8) -> dict:
    """Write the corpus; return its summary (documents, bytes, copies per kind)."""
    rng = random.Random(seed)
    base = base_documents(src, rng)
    if not base:
        raise SystemExit(f"no .txt documents of 50+ words under {src}: pass --src a folder of English text")
    vocab = sorted({w for doc in base[:200] for w in doc.split() if w.isalpha()})
    docs, copies = [], []
    ids = set()

    def new_id():
        while (i := f"d{rng.getrandbits(48):012x}") in ids:
            pass
        ids.add(i)
        return i

    for text in base:
        source = new_id()
        docs.append((source, text))
        if rng.random() < copy_fraction:
            for kind in KINDS:
                copy = new_id()
                docs.append((copy, edit(text, kind, rng, vocab)))
                copies.append({"copy": copy, "source": source, "kind": kind})
    rng.shuffle(docs)
    (out / "corpus").mkdir(parents=True, exist_ok=True)
    for old in (out / "corpus").glob("part-*.jsonl"):
        old.unlink()
    handles = [(out / "corpus" / f"part-{i:05d}.jsonl").open("w", encoding="utf-8") for i in range(files)]
    for n, (doc_id, text) in enumerate(docs):
        handles[n % files].write(json.dumps({"id": doc_id, "text": text}) + "\n")
    for h in handles:
        h.close()
    with (out / "copies.jsonl").open("w") as f:
        f.writelines(json.dumps(c) + "\n" for c in copies)
    return {"documents": len(docs), "base": len(base), "copies": len(copies),
            "mb": sum(len(t.encode()) for _, t in docs) / 1e6}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=Path("../shared/data/text"), help="folder of .txt files")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/work/neardup"), help="output folder")
    ap.add_argument("--copy-fraction", type=float, default=1 / 3, help="share of base documents copied")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not args.src.is_dir():
        raise SystemExit(f"--src {args.src} is not a folder")
    print(json.dumps(build(args.src, args.out, args.copy_fraction, args.seed)))


if __name__ == "__main__":
    main()
