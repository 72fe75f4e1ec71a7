"""GLUE evaluator: fine-tune a pretrained checkpoint on each GLUE task and report dev scores.

    python glue.py CHECKPOINT [--tasks rte,cola] [--seeds 0,1,2] [--glue-dir DIR] [--init both] [key=value ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

import configs
from glueval import data, protocol, report, run, tasks
from glueval.data import GlueDataError
from glueval.encode import TokenizerError
from glueval.hf_backend import BackendUnavailable, UntrustedCode
from glueval.run import BACKENDS, INITS
from model.io import CheckpointError, read_config
from pipeline.files import lock, record
from trainer.device import NoDevice, pick_device

EPILOG = """\
protocols (--config NAME, configs/glue/NAME.yaml):
{protocols}

protocol settings (key=value after the checkpoint; built-in defaults shown, the --config file and then
key=value override them; a run's every value: --show-config):
{settings}

tasks: cola, sst2, mrpc, stsb, qqp, mnli (scored matched and mismatched), qnli, rte, wnli (reported,
  left out of the averages); all; or available (the task folders present in --glue-dir).

data: --glue-dir DIR reads the official GLUE download layout (DIR/CoLA/train.tsv, DIR/MNLI/dev_matched.tsv,
  ...). Without it the Hugging Face dataset nyu-mll/glue is loaded through `datasets` (needs the Hub, or
  HF_HUB_OFFLINE=1 with a cached copy). Malformed rows are skipped, counted per file and reported.

outputs in --out: results.json (everything, per seed), results.md (the table), results.png (bar chart),
  predictions.jsonl (every run's dev predictions with the gold labels, to re-check the metrics), and
  .cramkit, the record of the files glue.py wrote there. --out must be new, empty or such an output: any
  other folder (or a file) is refused, nothing in it replaced; a second run on a live --out is refused.
  Each (task, init, seed) run is saved as it finishes; run the same command again after Ctrl-C and the
  finished runs are kept, not repeated (results of another checkpoint, protocol or data are replaced).

time: on a CPU, the time of the runs to do (steps x a measured step per task) is printed before the first;
  the full `sane` protocol takes hours there, `--config demo` minutes.

examples:
  python glue.py runs/cram/final --glue-dir ../glue_data --tasks rte,mrpc,stsb,cola --init both
  python glue.py runs/cram/final --tasks rte --seeds 0 epochs=1 max_train_examples=500
  python glue.py runs/cram/final --config bert-base     # BERT-base baseline protocol of the paper
  python glue.py runs/cram/final --tasks rte --backend hf   # the same protocol through transformers' Trainer
  python glue.py --check-data --glue-dir ../glue_data --tasks available   # is the data there? (seconds)

The table also goes into the checkpoint's model card (README.md written by train.py), if it has one. When
the card's shard folder is at hand and its manifest recorded a contamination report (python -m pipeline
decontam.glue_dir=...), that report is printed after the table: the GLUE examples found in the corpus.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="glue.py", description=__doc__.splitlines()[0],
                                 epilog=EPILOG.format(protocols=configs.describe("glue", 10),
                                                     settings=configs.listing(protocol.Protocol)),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, nargs="?",
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
    ap.add_argument("--trust-remote-code", action="store_true",
                    help="with --backend hf: let transformers run the folder's own Python files even when they "
                         "are not byte for byte the ones cramkit ships (only for a folder whose code you trust)")
    ap.add_argument("--config", default="sane",
                    help="protocol: a name listed below or a YAML path (default: sane)")
    ap.add_argument("--out", type=Path, default=Path("runs/glue"), help="output folder (default: runs/glue)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch (default: the cores this process may use)")
    ap.add_argument("--check-data", action="store_true",
                    help="only check that the tasks' data is reachable (--glue-dir files or the Hub), then exit")
    ap.add_argument("--show-config", action="store_true",
                    help="print every protocol setting (after --config and overrides) as YAML; run nothing")
    args = ap.parse_intermixed_args(argv)
    if args.checkpoint is not None and "=" in args.checkpoint.name and not args.checkpoint.exists():
        args.overrides.insert(0, str(args.checkpoint))  # no checkpoint given (--show-config): a key=value
        args.checkpoint = None
    if args.checkpoint is None and not (args.check_data or args.show_config):
        ap.error("the checkpoint folder is required (or --check-data, --show-config)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out, held = args.out, None
    finished = 0
    try:
        overrides = list(args.overrides) + ([f"seeds=[{args.seeds}]"] if args.seeds else [])
        proto = protocol.load(args.config, overrides)
        if args.show_config:
            print(configs.show(proto), end="")
            return 0
        chosen = tasks.resolve(args.tasks, args.glue_dir)
        if not args.check_data:
            read_config(args.checkpoint)  # the checkpoint folder and its config.json
        data.check_reachable(chosen, args.glue_dir)  # both before any other work
        if args.check_data:
            print(f"GLUE data reachable: {', '.join(t.title for t in chosen)} from "
                  f"{args.glue_dir or 'the Hugging Face Hub'}", file=sys.stderr)
            return 0
        out = record.resolve(out, "--out")
        held = lock.hold(out, "--out")
        record.mine(out, "--out", "glue")  # new, empty, or an earlier GLUE output (its finished runs are kept)
        device = pick_device(args.device)
        if device.type == "cpu":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            torch.set_num_threads(args.threads or cores or 1)
        inits = list(INITS) if args.init == "both" else [args.init]
        previous = report.read_previous(out)

        def save(results: dict) -> None:  # after each run: the numbers so far (table and chart at the end)
            nonlocal finished
            finished += 1
            out.mkdir(parents=True, exist_ok=True)
            report.write_json(report.summarize(results), out)

        def announce(prepared, runs_left, pad_id) -> None:
            todo, total = sum(runs_left.values()), len(chosen) * len(inits) * len(proto.seeds)
            if todo < total:
                print(f"{out / 'results.json'}: {total - todo} of {total} runs already finished, kept; "
                      f"{todo} to do (delete that file to redo them)", file=sys.stderr)
            if todo and device.type == "cpu":
                seconds, steps = run.estimate_seconds(args.checkpoint, prepared, runs_left, proto, pad_id, device)
                print(f"estimated time on this CPU ({torch.get_num_threads()} threads): {todo} fine-tuning runs, "
                      f"{steps:,} steps, about {seconds / 60:.0f} min (a measured step per task)", file=sys.stderr)
                if not proto.is_subset:
                    print("  that is every training example of every task; for a look in minutes use "
                          "--config demo (a few thousand examples per task, 3 seeds)", file=sys.stderr)

        results = run.evaluate(args.checkpoint, chosen, proto, args.glue_dir, inits, device, on_update=save,
                               log=lambda s: print(s, file=sys.stderr), previous=previous, announce=announce,
                               backend=args.backend, trust_remote_code=args.trust_remote_code)
    except (configs.ConfigError, tasks.UnknownTaskError, GlueDataError, TokenizerError, CheckpointError,
            BackendUnavailable, UntrustedCode, NoDevice, record.FolderError, lock.LockError) as e:
        print(f"glue.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: {finished} run(s) finished in this session are saved in {out / 'results.json'}; "
              "run the same command again to continue", file=sys.stderr)
        return 130
    else:
        paths = report.write_all(results, out)
        print(paths["markdown"].read_text())
        if found := report.contamination(args.checkpoint):  # what the pretraining shards recorded about GLUE
            print(found)
        print(f"wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
        if card := report.update_card(results):
            print(f"updated the model card {card}", file=sys.stderr)
        return 0
    finally:
        if held is not None:
            held.release()


if __name__ == "__main__":
    sys.exit(main())
