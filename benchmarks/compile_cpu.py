"""train.py's loop compiled (torch.compile, inductor) against eager on a CPU, side by side.

Both runs at once, one thread each and pinned to a core each (benchmarks/side_by_side.py), so the machine's
other load slows them alike: the `desktop` preset (model: 4 layers x 256, crammed blocks, vocabulary 8192,
rows of 128; micro-batch 32, no ramp) on synthetic shards (random ids: neither the loader's work nor the
model's depends on the text), bf16 autocast where the CPU has bf16 instructions (else fp32), the same token
budget. Tokens/s: the median of train.py's 5-second log windows after the first (which holds start-up and
compilation); start-up: the elapsed seconds at the end of that first window.

    PYTHONPATH=. .venv/bin/python benchmarks/compile_cpu.py [--tokens 6e5]

Writes benchmarks/results/compile_cpu.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_throughput as gt  # noqa: E402
from side_by_side import run_pinned  # noqa: E402

from trainer.device import cpu_has_bf16  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "compile_cpu.md"


def summary(run: Path, usage: dict) -> dict:
    logged = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    steady = logged[1:-1] or logged
    return {"tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady), "windows": len(steady),
            "start_s": logged[0]["elapsed_s"], "elapsed_s": logged[-1]["elapsed_s"], "tokens": logged[-1]["tokens"],
            "loss": logged[-1]["loss"], "cpu_s": usage["cpu_s"], "wall_s": usage["wall_s"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", default="6e5", help="token budget of each run")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    precision = "bf16" if cpu_has_bf16() else "fp32"
    budget = f"{float(args.tokens):.0f}tok"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shards = gt.synthetic_shards(gt.ModelConfig.preset("desktop", vocab_size=8192), tmp / "shards", rows=8192)
        common = [sys.executable, str(ROOT / "train.py"), "--config", "desktop", "--shards", str(shards),
                  "--budget", budget, f"out={tmp / 'runs'}", "threads=1", f"precision={precision}", "heldout_rows=0",
                  "log_every=5", "checkpoint_every=10h", "verify=false"]
        cmds = {mode: [*common, f"name={mode}", f"compile={'true' if mode == 'compiled' else 'false'}"]
                for mode in ("eager", "compiled")}
        load = os.getloadavg()
        usage, cores = run_pinned(cmds, tmp, ROOT)
        for mode, u in usage.items():
            if u["returncode"]:
                raise SystemExit(f"{mode}: train.py failed:\n{(tmp / f'{mode}.log').read_text()[-3000:]}")
        results = {mode: summary(tmp / "runs" / mode, usage[mode]) for mode in cmds}
    load_after = os.getloadavg()
    eager, compiled = results["eager"], results["compiled"]
    rows = [f"| {mode} | {r['tokens_per_s']:,.0f} | {r['windows']} | {r['start_s']:.0f} | {r['elapsed_s']:.0f} | "
            f"{r['cpu_s']:.0f} | {r['loss']:.3f} |" for mode, r in results.items()]
    text = "\n".join([
        "# torch.compile on a CPU: train.py compiled vs eager", "",
        f"The desktop preset, {budget} each, {precision}, one thread each, run at the same time"
        f"{' pinned to cores ' + ', '.join(map(str, cores)) if cores else ''}; synthetic shards.", "",
        "| mode | tokens/s (median window) | windows | start-up + first window (s) | run (s) | CPU (s) | last loss |",
        "|---|---:|---:|---:|---:|---:|---:|", *rows, "",
        f"**compiled / eager: {compiled['tokens_per_s'] / eager['tokens_per_s']:.2f}x** tokens/s (same run).", "",
        f"Command: `PYTHONPATH=. python benchmarks/compile_cpu.py {' '.join(argv if argv is not None else sys.argv[1:])}`"
        f"  ", f"Machine: {os.cpu_count()}-core {platform.machine()}, torch {torch.__version__}; load average "
        f"{load[0]:.2f} before, {load_after[0]:.2f} after.", ""])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
