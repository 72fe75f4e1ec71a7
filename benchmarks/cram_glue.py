"""Desktop crams scored on GLUE: runs of a train.py setting at a token budget, each run's held-out loss and
its GLUE gain over random init, in one table (and a plot of both against tokens, beside each run's held-out
loss during training).

For each run: train.py --config desktop on the same shards and seed, then glue.py --config demo (3 seeds) on
the tasks given; random init (the same architecture, the same fine-tuning seeds) is scored once, with the
first run. Finished crams and GLUE runs are kept, so an interrupted benchmark continues where it stopped
(train.py --resume, glue.py's own results.json). Hours on a CPU: start it in the background.

    # how long a desktop cram must be before GLUE moves, and the masking-rate schedule at 15M tokens
    PYTHONPATH=. nice -n 10 python benchmarks/cram_glue.py --shards out/prose --glue-dir GLUE_DIR \\
        --runs constant@4e6,constant@15e6,linear@15e6,constant@45e6 --tasks cola,mrpc,stsb,rte

Writes benchmarks/results/cram_glue.md (and cram_glue.png); runs under benchmarks/work/cram_glue/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work" / "cram_glue"
OUT = ROOT / "benchmarks" / "results" / "cram_glue.md"
SETTINGS = {"constant": ["mask_schedule=constant"],
            "linear": ["mask_schedule=linear", "mask_start=0.30", "mask_end=0.15"]}


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    if subprocess.run(cmd, cwd=ROOT).returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}")


def cram(setting: str, tokens: float, args) -> Path:
    """The desktop cram of `setting` at `tokens` (kept when finished, resumed when interrupted)."""
    name = f"{setting}-{tokens / 1e6:g}Mtok"
    folder = WORK / "runs" / name
    if not (folder / "final" / "config.json").is_file():
        run([sys.executable, "train.py", "--config", "desktop", "--shards", args.shards, "--budget",
             f"{tokens:.0f}tok", "--name", name, f"out={WORK / 'runs'}", f"seed={args.seed}", *SETTINGS[setting],
             *(["--resume"] if (folder / "checkpoints").is_dir() else ["--overwrite"])])
    return folder


def glue(folder: Path, init: str, args) -> dict:
    out = WORK / "glue" / folder.name
    run([sys.executable, "glue.py", str(folder / "final"), "--config", "demo", "--out", str(out), "--init", init,
         "--tasks", args.tasks, *(["--glue-dir", args.glue_dir] if args.glue_dir else []), *args.glue_overrides])
    return json.loads((out / "results.json").read_text())


def scores(results: dict, init: str) -> tuple[float, float, dict]:
    """Cramming's mean, its seed spread, and the first metric's median per task."""
    mean = results["averages"][init]["cramming"]
    tasks = {t: next(iter(next(iter(e["median"][init].values())).values())) for t, e in results["tasks"].items()}
    return mean["value"], mean.get("spread", float("nan")), tasks


def plot(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for r in rows:
        axes[0].plot([t / 1e6 for t, _ in r["curve"]], [h for _, h in r["curve"]],
                     linestyle="-" if r["setting"] == rows[0]["setting"] else "--",
                     label=f"{r['setting']} {r['tokens'] / 1e6:g}M")
    for setting in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == setting]
        tokens = [r["tokens"] / 1e6 for r in mine]
        axes[1].plot(tokens, [r["heldout"] for r in mine], "o-", label=setting)
        axes[2].plot(tokens, [r["gain"] for r in mine], "o-", label=setting)
    for ax in axes[:2]:
        ax.axhline(rows[0]["entropy"], color="gray", linestyle="--", label="unigram entropy")
    axes[0].set(ylim=(None, rows[0]["entropy"] + 0.3), xlabel="tokens seen (M)",
                ylabel="held-out MLM loss during training (nats)")
    axes[1].set(xscale="log", xlabel="pretraining budget (M tokens)", ylabel="held-out MLM loss at the end (nats)")
    axes[2].axhline(0.0, color="gray", linestyle="--")
    axes[2].set(xscale="log", xlabel="pretraining budget (M tokens)", ylabel="GLUE gain over random init (cramming mean)")
    budgets = sorted({r["tokens"] / 1e6 for r in rows})
    for ax in axes[1:]:
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.minorticks_off()
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", required=True, help="a shard folder built with `python -m pipeline --config desktop`")
    ap.add_argument("--runs", default="constant@15e6,linear@15e6",
                    help=f"comma list of SETTING@TOKENS, a setting one of {', '.join(SETTINGS)}")
    ap.add_argument("--glue-dir", default=None, help="GLUE in the official layout (default: glue.py's)")
    ap.add_argument("--tasks", default="sst2,qnli,stsb,mrpc")
    ap.add_argument("--seed", type=int, default=0, help="pretraining seed")
    ap.add_argument("glue_overrides", nargs="*", metavar="key=value", help="glue.py protocol overrides")
    args = ap.parse_args(argv)
    runs = [(setting, float(tokens)) for setting, _, tokens in (r.partition("@") for r in args.runs.split(","))]
    if unknown := sorted({s for s, _ in runs} - set(SETTINGS)):
        ap.error(f"unknown settings {unknown}; known: {', '.join(SETTINGS)}")
    rows, random = [], None
    for setting, tokens in sorted(runs, key=lambda r: (r[1], r[0])):
        folder = cram(setting, tokens, args)
        results = glue(folder, "pretrained" if random else "both", args)
        random = random or scores(results, "random")
        held = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines() if "heldout_loss" in x]
        mean, spread, tasks = scores(results, "pretrained")
        rows.append({"setting": setting, "tokens": tokens, "heldout": held[-1]["heldout_loss"],
                     "curve": [(h["tokens"], h["heldout_loss"]) for h in held],
                     "entropy": held[-1]["unigram_entropy"], "mean": mean, "spread": spread,
                     "gain": mean - random[0], "tasks": tasks})
    names = list(rows[0]["tasks"])
    lines = ["# Desktop crams scored on GLUE (CPU)", "",
             f"train.py --config desktop, seed {args.seed}, shards {args.shards}; glue.py --config demo "
             f"(3 seeds, medians; the first metric of each task) on {args.tasks}. Random init: cramming mean "
             f"{random[0]:.1f} (seed spread {random[1]:.1f}).", "",
             "| setting | tokens | held-out loss (unigram entropy) | cramming mean (seed spread) | gain over random | "
             + " | ".join(names) + " |", "|---|---:|---:|---:|---:|" + "---:|" * len(names)]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['tokens'] / 1e6:.1f}M | {r['heldout']:.3f} ({r['entropy']:.3f}) | "
                     f"{r['mean']:.1f} ({r['spread']:.1f}) | {r['gain']:+.1f} | "
                     + " | ".join(f"{r['tasks'][t]:.1f} ({random[2][t]:.1f})" for t in names) + " |")
    lines += ["", "Task cells: pretrained (random init).", "",
              f"Machine: {os.cpu_count()} cores; command: `python benchmarks/cram_glue.py "
              f"{' '.join(argv if argv is not None else sys.argv[1:])}`", ""]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    plot(rows, OUT.with_suffix(".png"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
