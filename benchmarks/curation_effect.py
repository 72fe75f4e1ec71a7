"""Does curation help? The same raw mix of prose and web crawl made into shards two ways, then crammed and
scored the same way.

- plain:   `python -m pipeline --config desktop` (heuristics only: dedup, filters, tokenizer filter);
- curated: the same plus decontamination against the GLUE files and learned quality scores
           (`quality.reference`, `quality.keep_fraction`).

Both use one tokenizer (the plain corpus's, through `tokenizer.path`), so their held-out losses are in the
same units. Each shard set trains `train.py --config desktop` to the same token budget, one thread each, the
two side by side (a token budget makes the result independent of the machine's load), then
- the held-out MLM loss on clean prose that neither corpus contains (train.py's fixed held-out task);
- GLUE (`glue.py --config demo`, 3 seeds) on four tasks; random init once (the same model for both).
The table goes to benchmarks/results/curation_effect.md; work files to benchmarks/work/curation/.

    PYTHONPATH=. .venv/bin/python benchmarks/curation_effect.py --prose DIR --web DIR --heldout DIR \\
        --reference PATH[,PATH...] --glue-dir GLUE --tokens 15e6

--prose, --web: folders whose files make the raw mix (copied, so a folder may repeat across flags);
--heldout: clean prose kept out of the mix for the loss; --reference: the trusted text the quality scores
learn from (kept out of the mix too).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model import io as model_io  # noqa: E402
from model import tokenizer  # noqa: E402
from pipeline.tokens.shards import ShardSet  # noqa: E402
from trainer.device import autocast  # noqa: E402
from trainer.heldout import HeldOut, heldout_indices, unigram_entropy  # noqa: E402

WORK = ROOT / "benchmarks" / "work" / "curation"
OUT = ROOT / "benchmarks" / "results" / "curation_effect.md"
TASKS = "cola,mrpc,stsb,rte"


def run(*jobs: tuple[list, Path]) -> float:
    """Run commands side by side, each with its output in its log; the seconds until all ended. A failure
    shows its log's tail."""
    t0, procs = time.perf_counter(), []
    for args, log in jobs:
        with open(log, "w") as out:
            procs.append(subprocess.Popen([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT))
    for proc, (args, log) in zip(procs, jobs, strict=True):
        if proc.wait():
            raise SystemExit(f"{args[1]} failed ({proc.returncode}):\n{log.read_text()[-3000:]}")
    return time.perf_counter() - t0


def copy_tree(folders: list[str], dest: Path, leave_out: set) -> int:
    """Every file under `folders` but those in `leave_out` copied into `dest` (one subfolder per source
    folder); bytes copied."""
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    for i, folder in enumerate(folders):
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and path.resolve() not in leave_out:
                target = dest / f"{i}-{Path(folder).name}" / path.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                total += path.stat().st_size
    return total


def corpus(name: str, raw: Path, extra: list[str]) -> dict:
    """The shard set `name` of the raw mix (kept from an earlier run of this script when complete)."""
    out = WORK / name
    if not (out / "manifest.json").is_file():
        run(([sys.executable, "-m", "pipeline", "--config", "desktop", "--input", raw, "--output", out,
              "--overwrite", *extra], WORK / f"{name}.corpus.log"))
    stats = json.loads((out / "stats.json").read_text())
    return {"seconds": stats["wall_seconds"], "documents": stats["documents"], "dropped": stats["dropped"],
            "contamination": stats.get("contamination"), "rows": len(ShardSet(out))}


def heldout_loss(final: Path, heldout: Path, rows: int) -> tuple[float, float]:
    """train.py's held-out task on `rows` rows of another shard set: (loss, unigram entropy) in nats."""
    model = model_io.load_pretrained(final, "mlm")
    shards = ShardSet(heldout)
    specials = tokenizer.special_ids(shards.tokenizer_file)
    task = HeldOut(shards, heldout_indices(len(shards), min(rows, len(shards))), specials["[MASK]"],
                   tuple(specials.values()), 64)
    cpu = torch.device("cpu")
    return task.loss(model, cpu, lambda: autocast(cpu, "bf16")), unigram_entropy(shards)


def glue(name: str, glue_dir: str, examples: int, init: str) -> tuple[list, Path]:
    """The glue.py job of run `name` (one thread: two run side by side); it resumes an interrupted one."""
    return ([sys.executable, "glue.py", WORK / "runs" / name / "final", "--config", "demo", "--init", init,
             "--tasks", TASKS, "--seeds", "0,1,2", "--glue-dir", glue_dir, "--out", WORK / f"glue-{name}",
             "--threads", "1", f"max_train_examples={examples}"], WORK / f"{name}.glue.log")


def cram(name: str, tokens: float) -> tuple[list, Path]:
    """The train.py job of run `name` (one thread: two run side by side)."""
    return ([sys.executable, "train.py", "--config", "desktop", "--shards", WORK / name, "--name", name,
             "--budget", f"{tokens:.0f}tok", f"out={WORK / 'runs'}", "--overwrite", "threads=1"],
            WORK / f"{name}.train.log")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prose", action="append", required=True, help="folder of prose for the raw mix")
    ap.add_argument("--web", action="append", default=[], help="folder of web crawl files for the raw mix")
    ap.add_argument("--heldout", required=True, help="clean prose for the held-out loss (not in the mix)")
    ap.add_argument("--reference", required=True,
                    help="trusted text the quality scores learn from: PATH[,PATH...], left out of the mix")
    ap.add_argument("--glue-dir", required=True, help="GLUE in the official layout (decontamination and scores)")
    ap.add_argument("--tokens", default="15e6", help="token budget of each cram")
    ap.add_argument("--keep", type=float, default=0.7, help="quality.keep_fraction of the curated corpus")
    ap.add_argument("--examples", type=int, default=2000, help="GLUE training examples per task")
    ap.add_argument("--heldout-rows", type=int, default=2048)
    args = ap.parse_args(argv)

    WORK.mkdir(parents=True, exist_ok=True)
    raw = WORK / "raw"
    shutil.rmtree(raw, ignore_errors=True)
    reference = {Path(p).resolve() for p in args.reference.split(",")}
    raw_bytes = copy_tree(args.prose + args.web, raw, reference)
    results = {"raw_bytes": raw_bytes, "tokens": float(args.tokens), "keep_fraction": args.keep, "runs": {}}
    built = {"plain": corpus("plain", raw, [])}
    tok = WORK / "plain" / "tokenizer.json"  # one tokenizer: held-out losses in the same units
    built["curated"] = corpus("curated", raw, [f"tokenizer.path={tok}", f"decontam.glue_dir={args.glue_dir}",
                                               f"quality.reference={args.reference}",
                                               f"quality.keep_fraction={args.keep}"])
    if not (WORK / "heldout" / "manifest.json").is_file():
        run(([sys.executable, "-m", "pipeline", "--config", "desktop", "--input", args.heldout, "--output",
              WORK / "heldout", "--overwrite", f"tokenizer.path={tok}", "dedup.near=false"], WORK / "heldout.log"))
    names = ("plain", "curated")
    run(*(cram(n, float(args.tokens)) for n in names if not (WORK / "runs" / n / "final").is_dir()))
    # one tokenizer and one architecture: random init is the same model for both, fine-tuned once (with plain)
    run(glue("plain", args.glue_dir, args.examples, "both"), glue("curated", args.glue_dir, args.examples, "pretrained"))
    for name in names:
        loss, entropy = heldout_loss(WORK / "runs" / name / "final", WORK / "heldout", args.heldout_rows)
        scores = json.loads((WORK / f"glue-{name}" / "results.json").read_text())
        results["runs"][name] = {"corpus": built[name], "heldout_loss": loss, "heldout_entropy": entropy,
                                 "glue": scores["averages"]}
        print(f"{name}: held-out {loss:.3f} (unigram {entropy:.3f})", flush=True)
    (WORK / "results.json").write_text(json.dumps(results, indent=1, default=str))
    OUT.write_text(table(results))
    return 0


def table(results: dict) -> str:
    lines = ["# Does curation help? (desktop presets, one token budget)", "",
             f"Raw mix {results['raw_bytes'] / 1e6:.1f} MB; {results['tokens'] / 1e6:.1f}M tokens per cram; "
             f"curated = decontamination + quality scores (keep_fraction {results['keep_fraction']}). GLUE: "
             f"{TASKS}, `--config demo`, 3 seeds, leaderboard-style per-task mean of the medians.", "",
             "| corpus | documents kept | shard rows | held-out loss | unigram entropy | GLUE pretrained | "
             "GLUE random init | gain |", "|---|---:|---:|---:|---:|---:|---:|---:|"]  # random init: one model
    rnd = results["runs"]["plain"]["glue"]["random"]["leaderboard"]["value"]
    for name, r in results["runs"].items():
        pre = r["glue"]["pretrained"]["leaderboard"]["value"]
        lines.append(f"| {name} | {r['corpus']['documents']['kept']:,} | {r['corpus']['rows']:,} | "
                     f"{r['heldout_loss']:.3f} | {r['heldout_entropy']:.3f} | {pre:.1f} | {rnd:.1f} | "
                     f"{pre - rnd:+.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
