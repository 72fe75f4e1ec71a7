"""Budget-limited masked-language-model pretraining (`make cram`).

    python train.py                                   # tiny model, shards from `make corpus`, 5 min
    python train.py --config crammed-bert --budget 24h --shards out/corpus micro_batch=512
    python train.py --resume                          # continue runs/<name> from its newest checkpoint

The schedule follows the progress p = budget spent / budget, checked after every micro-batch; the run
stops at p = 1. Start-up, compilation and checkpoint writes count against a time budget; opening the
shards and checking their sha256 do not.
Writes runs/<name>/: config.yaml, metrics.jsonl, train.png, checkpoints/ckpt-N/ and final/ (the model
folder `make glue` reads; transformers loads a crammed one too; README.md is its model card), and .cramkit,
the record of those files (pipeline.files.record): all that --overwrite deletes.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

import yaml

import configs
from model import tokenizer
from model.config import ModelConfig
from model.io import CheckpointError
from pipeline.files import lock, record
from pipeline.tokens.shards import MANIFEST, ShardError, ShardSet
from trainer import checkpoint, data, metrics
from trainer.config import TrainConfig, load
from trainer.device import OutOfMemory
from trainer.run import NonFiniteLoss, Run


def open_shards(cfg: TrainConfig, mcfg: ModelConfig) -> tuple[ShardSet, ModelConfig, str | None]:
    """The shard set, checked against the model before anything is built; the model config with its
    vocabulary, the shards' unless the preset pins one; the one-line note on a pin larger than the shards'."""
    if not Path(cfg.shards).is_dir():
        raise ShardError(f"{cfg.shards}: no shard folder; build one with `make corpus` or pass --shards DIR")
    shards = ShardSet(cfg.shards)
    if (objective := shards.manifest.get("objective", "mlm")) != "mlm":
        raise ShardError(f"{cfg.shards}: shards for objective {objective!r}, and train.py pretrains masked LMs only; "
                         "build them with objective=mlm, or see examples/tiny_gpt.py for a causal LM on them")
    if cfg.document_mask and "segment_ids" not in shards.columns:
        raise ShardError(f"{cfg.shards}: document_mask=true needs a segment_ids column, and these shards have "
                         f"{', '.join(shards.columns)}; rebuild them with pack.segments=true or set document_mask=false")
    mcfg, note = tokenizer.fit_vocab(mcfg, shards.vocab_size, Path(cfg.shards) / MANIFEST,
                                     f"pick a model with vocab_size >= {shards.vocab_size} or unset (not "
                                     f"{cfg.model!r}) or rebuild the shards with a smaller tokenizer")
    if shards.seq_len > mcfg.max_seq_len:
        raise ShardError(f"{cfg.shards}: rows of {shards.seq_len} tokens, but model {cfg.model!r} has "
                         f"max_seq_len {mcfg.max_seq_len}; rebuild the shards with seq_len <= "
                         f"{mcfg.max_seq_len} or use a model with longer positions")
    return shards, mcfg, note


def prepare_run_dir(cfg: TrainConfig, resume: bool, overwrite: bool) -> tuple[Path, lock.Lock]:
    """The run folder <out>/<name> and its held lock. It must be new, empty or a training run folder by
    cramkit's record (.cramkit): --resume continues it; --overwrite deletes the files the record lists,
    and refuses when anything else is there."""
    run = record.resolve(Path(cfg.out) / cfg.name, "run folder")
    held = lock.hold(run, "run folder")
    try:
        rec = (record.owned if overwrite and not resume else record.mine)(run, "run folder", "run")
        present = sorted({name.split("/")[0] for name in record.present(run, rec)})
        if present and not resume:
            if not overwrite:
                raise record.FolderError(f"{run}: a run is already there ({', '.join(present)}); pass --resume to "
                                         "continue it, --overwrite to start over, or name=<other> for a new run")
            record.remove(run, rec)
        run.mkdir(parents=True, exist_ok=True)
    except BaseException:
        held.release()
        raise
    return run, held


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> int:
    """Prepare a run outside its budget (the shards opened and verified, its folder, the checkpoint to resume)
    and run it (trainer.run.Run); the exit status."""
    shards, mcfg, note = open_shards(cfg, ModelConfig.preset(cfg.model))  # data preparation: outside the budget
    folder, held = prepare_run_dir(cfg, resume, overwrite)
    if note:
        print(note, file=sys.stderr)
    try:
        return _train(cfg, mcfg, shards, folder, resume)
    finally:
        held.release()


def _train(cfg: TrainConfig, mcfg: ModelConfig, shards: ShardSet, folder: Path, resume: bool) -> int:
    """The run in its held folder: the checkpoint to resume, the shards verified, then Run."""
    latest, saved = checkpoint.resumable(folder / "checkpoints") if resume else (None, None)
    if saved:
        conflicts = cfg.resume_conflicts(saved["config"])
        if conflicts or saved["model"] != mcfg.to_dict():
            detail = "; ".join(f"{k}: checkpoint {saved['config'].get(k)!r}, now {getattr(cfg, k, None)!r}"
                               for k in conflicts) or "the model config differs"
            raise checkpoint.ResumeError(f"{latest}: written by another configuration ({detail}); resume with "
                                         "the same settings, or start a new run (name=<other>)")
        if saved.get("finished") and (folder / "final" / "config.json").is_file():
            losses = [r["loss"] for r in metrics.read(folder / "metrics.jsonl") if "loss" in r]
            last = f", last loss {losses[-1]:.3f}" if losses else ""
            print(f"{folder}: the run is finished ({saved['spent']['tokens']:,} tokens, {saved['step']} optimizer "
                  f"steps{last}); nothing to resume. The model is in {folder / 'final'}", file=sys.stderr)
            return 0
    elif resume:
        print(f"--resume: no checkpoint in {folder / 'checkpoints'}, starting from the beginning", file=sys.stderr)
    data.verify(shards, cfg.verify)  # data preparation: outside the budget
    record.claim(folder, "run", files=["config.yaml"])
    (folder / "config.yaml").write_text(yaml.safe_dump({"train": cfg.to_dict(), "model": mcfg.to_dict()}))
    return Run(cfg, mcfg, shards, folder, latest, saved).train()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="train.py", description="Budget-limited BERT (MLM) pretraining on a cramkit shard set.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"settings (key=value; built-in defaults shown, the --config file and then key=value "
               f"override them):\n{configs.listing(TrainConfig)}\n\n"
               f"presets (--config NAME, configs/train/NAME.yaml):\n{configs.describe('train')}\n\n"
               "model settings (the keys of a model preset or YAML file, chosen with model=NAME|PATH; crammed-bert's\n"
               f"values shown, --show-config prints the chosen model's):\n{configs.listing(ModelConfig)}\n\n"
               f"model presets (model=NAME, configs/model/NAME.yaml):\n{configs.describe('model')}\n\n"
               "Output: <out>/<name>/{config.yaml, metrics.jsonl, train.png, checkpoints/, final/} and .cramkit,\n"
               "the record of the files cramkit wrote there; a folder cramkit did not write is refused.\n")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="change any setting listed below")
    ap.add_argument("--config", default="tiny", help="configs/train/<name>.yaml or a YAML path (default: tiny)")
    ap.add_argument("--shards", help="shard folder (setting `shards`)")
    ap.add_argument("--model", help="model preset or YAML path (setting `model`)")
    ap.add_argument("--budget", help="24h, 90m, 2e9tok or 1.5e18flop (setting `budget`)")
    ap.add_argument("--name", help="run name: output goes to <out>/<name> (setting `name`)")
    ap.add_argument("--resume", action="store_true", help="continue from the newest checkpoint of the run")
    ap.add_argument("--overwrite", action="store_true", help="delete the files the run folder's record (.cramkit) "
                    "lists and start over; refused when anything else is there")
    ap.add_argument("--show-config", action="store_true",
                    help="print every setting (after --config and overrides) and the model's as YAML; run nothing")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_intermixed_args(argv)
    try:
        overrides = configs.parse_overrides(args.overrides)
        overrides.update({k: getattr(args, k) for k in ("shards", "model", "budget", "name") if getattr(args, k)})
        cfg = load(args.config, overrides)
        if args.show_config:
            model = configs.show(ModelConfig.preset(cfg.model)).splitlines()
            print(configs.show(cfg) + f"# model {cfg.model}:\n" + "".join(f"#   {line}\n" for line in model), end="")
            return 0
        return train(cfg, resume=args.resume, overwrite=args.overwrite)
    except (ShardError, CheckpointError, checkpoint.ResumeError, checkpoint.DiskFull, NonFiniteLoss, OutOfMemory,
            record.FolderError, lock.LockError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"error: no space left on the device ({e}); free some and continue with --resume", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
