"""GLUE evaluator: fine-tune a pretrained checkpoint on each GLUE task and report dev scores.

    python glue.py CHECKPOINT [--tasks rte,cola] [--seeds 0,1,2] [--glue-dir DIR] [--init both] [key=value ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from glueval import protocol, report, tasks
from glueval.checkpoint import INITS
from glueval.data import GlueDataError
from glueval.encode import TokenizerError
from glueval.hf_backend import BackendUnavailable
from glueval.run import BACKENDS, evaluate
from model.io import CheckpointError

EPILOG = """\
protocol keys (override with key=value; defaults from --config):
  lr, betas, eps, weight_decay, batch_size, epochs, schedule (cosine|linear), warmup (fraction of the
  task's own steps), dropout, max_length, pad_multiple, grad_clip, seeds, eval_batch_size,
  max_train_examples / max_eval_examples (a fixed-seed subset per task, for quick runs; marked in the table)

tasks: cola, sst2, mrpc, stsb, qqp, mnli (scored matched and mismatched), qnli, rte, wnli (reported,
  left out of the averages); all; or available (the task folders present in --glue-dir).

data: --glue-dir DIR reads the official GLUE download layout (DIR/CoLA/train.tsv, DIR/MNLI/dev_matched.tsv,
  ...). Without it the Hugging Face dataset nyu-mll/glue is loaded through `datasets` (needs the Hub, or
  HF_HUB_OFFLINE=1 with a cached copy). Malformed rows are skipped, counted per file and reported.

outputs in --out: results.json (everything, per seed), results.md (the table), results.png (bar chart),
  predictions.jsonl (every run's dev predictions with the gold labels, to re-check the metrics).

examples:
  python glue.py runs/cram/final --glue-dir ../glue_data --tasks rte,mrpc,stsb,cola --init both
  python glue.py runs/cram/final --tasks rte --seeds 0 epochs=1 max_train_examples=500
  python glue.py runs/cram/final --config bert-base     # BERT-base baseline protocol of the paper
  python glue.py runs/cram/final --tasks rte --backend hf   # the same protocol through transformers' Trainer

The table also goes into the checkpoint's model card (README.md written by train.py), if it has one.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="glue.py", description=__doc__.splitlines()[0], epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path,
                    help="pretrained checkpoint folder (model.safetensors, config.json, tokenizer.json)")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="protocol overrides, e.g. epochs=3")
    ap.add_argument("--tasks", default="all",
                    help="comma list of tasks, 'all' (default) or 'available' (the task folders in --glue-dir)")
    ap.add_argument("--seeds", default=None,
                    help="comma list of fine-tuning seeds, e.g. 0,1,2 (default: the config's, sane: 0-4)")
    ap.add_argument("--glue-dir", type=Path, default=os.environ.get("GLUE_DIR") or None,
                    help="folder in the official GLUE layout (default: $GLUE_DIR; else the HF Hub)")
    ap.add_argument("--init", choices=[*INITS, "both"], default="pretrained",
                    help="pretrained weights, random weights (the no-pretraining baseline, same architecture), "
                         "or both side by side (default: pretrained)")
    ap.add_argument("--backend", choices=BACKENDS, default="cramkit",
                    help="cramkit: glueval's own fine-tuning loop (default); hf: transformers' Trainer on the "
                         "folder loaded with AutoModelForSequenceClassification (a crammed export; same protocol)")
    ap.add_argument("--config", default="sane",
                    help="protocol: a name under configs/glue/ (sane, bert-base) or a YAML path (default: sane)")
    ap.add_argument("--out", type=Path, default=Path("runs/glue"), help="output folder (default: runs/glue)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch (default: the cores this process may use)")
    return ap.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        overrides = list(args.overrides) + ([f"seeds=[{args.seeds}]"] if args.seeds else [])
        proto = protocol.load(args.config, overrides)
        chosen = tasks.resolve(args.tasks, args.glue_dir)
        device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                              else "cpu" if args.device == "auto" else args.device)
        if device.type == "cpu":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            torch.set_num_threads(args.threads or cores or 1)
        inits = list(INITS) if args.init == "both" else [args.init]
        out = args.out

        def save(results: dict) -> None:  # after each run: the numbers so far (table and chart at the end)
            out.mkdir(parents=True, exist_ok=True)
            report.write_json(report.summarize(results), out)

        results = evaluate(args.checkpoint, chosen, proto, args.glue_dir, inits, device, on_update=save,
                           log=lambda s: print(s, file=sys.stderr), backend=args.backend)
    except (protocol.ProtocolError, tasks.UnknownTaskError, GlueDataError, TokenizerError, CheckpointError,
            BackendUnavailable) as e:
        print(f"glue.py: error: {e}", file=sys.stderr)
        return 2
    paths = report.write_all(results, out)
    print(paths["markdown"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    if card := report.update_card(results):
        print(f"updated the model card {card}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
