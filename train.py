"""Budget-limited masked-language-model pretraining (`make cram`).

    python train.py                                   # tiny model, shards from `make corpus`, 5 min
    python train.py --config crammed-bert --budget 24h --shards out/corpus micro_batch=512
    python train.py --resume                          # continue runs/<name> from its newest checkpoint

The schedule follows the progress p = budget spent / budget, checked after every micro-batch; the run
stops at p = 1. Start-up, compilation and checkpoint writes count against a time budget; opening the
shards and checking their sha256 do not.
Writes runs/<name>/: config.yaml, metrics.jsonl, train.png, checkpoints/ckpt-N/ and final/ (the model
folder `make glue` reads; transformers loads a crammed one too; README.md is its model card).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

import configs
from model import tokenizer
from model.config import ModelConfig
from model.decay import weight_decay_groups
from model.flops import train_flops_per_token
from model.heads import MaskedLM
from model.io import CheckpointError, save_pretrained
from pipeline.shards import MANIFEST, ShardError, ShardSet
from trainer import checkpoint, data, metrics
from trainer.batches import epoch_batches, epoch_order, passes
from trainer.budget import Budget, Meter
from trainer.config import TrainConfig, load
from trainer.data import Prefetcher
from trainer.device import OutOfMemory, Precision, out_of_memory_message, peak_flops, pick_device
from trainer.heldout import HeldOut, TrainRows, heldout_indices, unigram_entropy
from trainer.masking import Masker
from trainer.schedule import batch_size, lr_multiplier


class NonFiniteLoss(RuntimeError):
    pass


def open_shards(cfg: TrainConfig, mcfg: ModelConfig) -> ShardSet:
    """The shard set, checked against the model before anything is built."""
    if not Path(cfg.shards).is_dir():
        raise ShardError(f"{cfg.shards}: no shard folder; build one with `make corpus` or pass --shards DIR")
    shards = ShardSet(cfg.shards)
    if (objective := shards.manifest.get("objective", "mlm")) != "mlm":
        raise ShardError(f"{cfg.shards}: shards for objective {objective!r}, and train.py pretrains masked LMs only; "
                         "build them with objective=mlm, or see examples/tiny_gpt.py for a causal LM on them")
    if cfg.document_mask and "segment_ids" not in shards.columns:
        raise ShardError(f"{cfg.shards}: document_mask=true needs a segment_ids column, and these shards have "
                         f"{', '.join(shards.columns)}; rebuild them with pack.segments=true or set document_mask=false")
    tokenizer.check_fits(shards.vocab_size, mcfg.vocab_size, Path(cfg.shards) / MANIFEST,
                         f"pick a model with vocab_size >= {shards.vocab_size} (not {cfg.model!r}) or rebuild "
                         "the shards with a smaller tokenizer")
    if shards.seq_len > mcfg.max_seq_len:
        raise ShardError(f"{cfg.shards}: rows of {shards.seq_len} tokens, but model {cfg.model!r} has "
                         f"max_seq_len {mcfg.max_seq_len}; rebuild the shards with seq_len <= "
                         f"{mcfg.max_seq_len} or use a model with longer positions")
    return shards


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on every parameter but norms and biases (cramming's rule, by rank)."""
    return torch.optim.AdamW(weight_decay_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas),
                             eps=cfg.eps, fused=True if device.type == "cuda" else None)


def prepare_run_dir(cfg: TrainConfig, resume: bool, overwrite: bool) -> Path:
    run = Path(cfg.out) / cfg.name
    ours = ("checkpoints", "final", "metrics.jsonl", "train.png", "config.yaml", "tensorboard")
    present = [n for n in ours if (run / n).exists()]
    if present and not resume:
        if not overwrite:
            raise ValueError(f"{run}: a run is already there ({', '.join(present)}); pass --resume to continue "
                             "it, --overwrite to start over, or name=<other> for a new run")
        for n in present:
            path = run / n
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    run.mkdir(parents=True, exist_ok=True)
    return run


class Stop:
    """Remembers the first SIGINT/SIGTERM; the loop checkpoints at the next optimizer step and exits."""

    def __init__(self):
        self.signum = 0
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum, frame):
        self.signum = signum
        for s, old in self._old.items():  # a second signal acts at once
            signal.signal(s, old)

    def restore(self):
        for s, old in self._old.items():
            signal.signal(s, old)


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> int:
    mcfg = ModelConfig.preset(cfg.model)
    shards = open_shards(cfg, mcfg)  # data preparation: outside the budget
    run = prepare_run_dir(cfg, resume, overwrite)
    latest = checkpoint.latest(run / "checkpoints") if resume else None
    saved = checkpoint.read_state(latest) if latest else None
    if saved:
        conflicts = cfg.resume_conflicts(saved["config"])
        if conflicts or saved["model"] != mcfg.to_dict():
            detail = "; ".join(f"{k}: checkpoint {saved['config'].get(k)!r}, now {getattr(cfg, k, None)!r}"
                               for k in conflicts) or "the model config differs"
            raise checkpoint.ResumeError(f"{latest}: written by another configuration ({detail}); resume with "
                                         "the same settings, or start a new run (name=<other>)")
        if saved.get("finished") and (run / "final" / "config.json").is_file():
            losses = [r["loss"] for r in metrics.read(run / "metrics.jsonl") if "loss" in r]
            last = f", last loss {losses[-1]:.3f}" if losses else ""
            print(f"{run}: the run is finished ({saved['spent']['tokens']:,} tokens, {saved['step']} optimizer "
                  f"steps{last}); nothing to resume. The model is in {run / 'final'}", file=sys.stderr)
            return 0
    elif resume:
        print(f"--resume: no checkpoint in {run / 'checkpoints'}, starting from the beginning", file=sys.stderr)
    data.verify(shards, cfg.verify)  # data preparation: outside the budget
    (run / "config.yaml").write_text(yaml.safe_dump({"train": cfg.to_dict(), "model": mcfg.to_dict()}))

    specials = tokenizer.special_ids(shards.tokenizer_file)
    masker = Masker(specials["[MASK]"], shards.vocab_size, cfg.mask_fraction, cfg.mask_mode,
                    tuple(specials.values()), cfg.seed)
    seq_len = shards.seq_len
    masked = masker.count(seq_len) / seq_len if cfg.mask_mode == "exact" else cfg.mask_fraction
    budget = Budget.parse(cfg.budget)
    meter = Meter(budget, train_flops_per_token(mcfg, masked, seq_len), saved and saved["spent"])
    held = heldout_indices(len(shards), min(cfg.heldout_rows, len(shards) // 10))
    train_rows = TrainRows(shards, held)
    heldout = HeldOut(shards, held, specials["[MASK]"], tuple(specials.values()), cfg.micro_batch,
                      cfg.document_mask) if len(held) else None
    entropy = unigram_entropy(shards)

    meter.start()  # start-up and compilation are inside the budget
    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    precision = Precision(cfg.precision, device, saved and saved.get("precision"))
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(cfg.seed)
    model = MaskedLM(mcfg).to(device).train()
    optimizer = build_optimizer(model, cfg, device)
    step, micro_index = 0, 0
    reader = epoch_batches(train_rows, cfg.micro_batch, cfg.shuffle, cfg.seed, cfg.document_mask)
    if saved:
        checkpoint.load(latest, model, optimizer)
        step, micro_index = saved["step"], saved["micro_index"]
        reader.load_state_dict(saved["reader"])
        print(f"resumed from {latest} at {100 * meter.progress():.1f}% of the budget", file=sys.stderr)
    reader_state = reader.state_dict()
    compiled = cfg.compile == "true" or (cfg.compile == "auto" and cuda)
    forward = torch.compile(model, dynamic=False) if compiled else model
    loader = Prefetcher(reader, masker, micro_index, pin=cuda, depth=cfg.prefetch)
    peak = peak_flops(cfg.peak_tflops, device)
    log = metrics.MetricsLog(run / "metrics.jsonl", run / "tensorboard" if cfg.tensorboard else None,
                             resume_at=(step, meter.tokens))  # drops what a killed run logged after its checkpoint
    logged = [r for r in metrics.read(run / "metrics.jsonl") if "loss" in r][-1:]

    # running sums on the device, read only when logging
    loss_sum, bad = torch.zeros((), device=device), torch.zeros((), dtype=torch.bool, device=device)
    window = {"micro": 0, "tokens": meter.tokens, "real": 0, "time": time.perf_counter(), "stall": 0.0}
    p_start, t_start = meter.progress(), time.perf_counter()
    last_checkpoint, last_log = time.perf_counter(), 0.0
    held_logged = [r for r in metrics.read(run / "metrics.jsonl") if "heldout_loss" in r][-1:]
    current = {"loss": logged[0]["loss"] if logged else float("nan"), "lr": 0.0, "batch_size": cfg.micro_batch,
               "tokens_per_s": 0.0, "mfu": "n/a", "epoch": reader_state["epoch"], "warned": False,
               "heldout": held_logged[0]["heldout_loss"] if held_logged else float("nan")}
    one_pass = len(train_rows) * shards.seq_len  # tokens
    last_eval = time.perf_counter()

    def warn_repeats(tokens_per_s: float | None = None) -> None:
        """Once: say so when the budget reads the data more than once (a time budget: at a measured rate)."""
        end = meter.tokens_at_end(tokens_per_s)
        if current["warned"] or end is None or end <= one_pass:
            return
        current["warned"] = True
        rate = f" at {tokens_per_s:,.0f} tokens/s" if tokens_per_s else ""
        tqdm.write(f"warning: the budget {cfg.budget} reads about {end / one_pass:.1f} passes over the "
                   f"{len(shards):,} rows of {cfg.shards}{rate}; rows repeat, from epoch 2 in "
                   f"{epoch_order(cfg.shuffle, 1)} each epoch (shuffle={cfg.shuffle})", file=sys.stderr)

    def write_log() -> dict:
        """Sync once: average loss of the window, throughput, MFU; raise on a non-finite loss."""
        nonlocal loss_sum, bad
        now = time.perf_counter()
        loss = loss_sum.item() / max(1, window["micro"])
        if bad.item() or not math.isfinite(loss):
            raise NonFiniteLoss(f"non-finite loss or gradient before optimizer step {step}; the last good "
                                f"checkpoint is kept in {run / 'checkpoints'}. Lower lr or grad_clip, or "
                                "check the shards")
        seconds = max(now - window["time"], 1e-9)
        positions_s, tok_s = (meter.tokens - window["tokens"]) / seconds, window["real"] / seconds
        record = {"step": step, "tokens": meter.tokens, "progress": round(meter.progress(), 6),
                  "epoch": round(passes(reader_state), 4), "loss": loss, "lr": current["lr"],
                  "batch_size": current["batch_size"], "tokens_per_s": tok_s, "elapsed_s": round(meter.elapsed(), 2),
                  "stall_s": round(loader.stall_seconds - window["stall"], 3),
                  "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}
        if peak:  # padding is computed too: MFU counts every position
            record["mfu"] = positions_s * meter.flops_per_token / peak
            current["mfu"] = f"{100 * record['mfu']:.1f}%"
        log.write(record)
        current.update(loss=loss, tokens_per_s=tok_s)
        warn_repeats(positions_s)
        loss_sum, bad = torch.zeros_like(loss_sum), torch.zeros_like(bad)
        window.update(micro=0, tokens=meter.tokens, real=0, time=now, stall=loader.stall_seconds)
        return record

    def evaluate() -> None:  # on the clock too; a metrics record of its own
        nonlocal last_eval
        if heldout is not None:
            current["heldout"] = heldout.loss(model, device, precision.autocast)
            log.write({"step": step, "tokens": meter.tokens, "elapsed_s": round(meter.elapsed(), 2),
                       "heldout_loss": current["heldout"], "unigram_entropy": entropy})
        last_eval = time.perf_counter()

    def save_checkpoint() -> None:  # on the clock: a time budget is the user's wall-clock time
        if window["micro"]:
            write_log()
        state = {"micro_index": micro_index, "spent": meter.state_dict(), "reader": reader_state,
                 "finished": meter.progress() >= 1.0, "precision": precision.name,
                 "config": cfg.to_dict(), "model": mcfg.to_dict()}
        checkpoint.save(run / "checkpoints", step, model, optimizer, state, keep=cfg.keep_checkpoints)

    def time_left() -> str:
        p = meter.progress()
        if budget.kind == "seconds":
            left = budget.amount - meter.elapsed()
        elif p > p_start:
            left = (time.perf_counter() - t_start) / (p - p_start) * (1 - p)
        else:
            return "?"
        return time.strftime("%H:%M:%S", time.gmtime(max(0.0, left)))

    print(metrics.header(cfg, mcfg, device, str(precision), compiled, len(shards), len(held), seq_len, entropy,
                         budget, meter.flops_per_token), file=sys.stderr)
    if not saved:
        evaluate()  # the untrained model: about ln(vocab)
    stop = Stop()
    bar = tqdm(total=1000, initial=int(1000 * meter.progress()), desc=cfg.name, unit="‰", dynamic_ncols=True,
               bar_format="{desc} {percentage:3.0f}%|{bar}|{postfix}")
    status = 0
    warn_repeats()
    try:
        while meter.progress() < 1.0:
            p = meter.progress()
            current["batch_size"] = batch_size(p, cfg.micro_batch, cfg.batch_size, cfg.batch_ramp)
            accumulate = current["batch_size"] // cfg.micro_batch
            current["lr"] = cfg.lr * lr_multiplier(p, cfg.schedule)
            for group in optimizer.param_groups:
                group["lr"] = current["lr"]
            for i in range(accumulate):
                batch = next(loader).to(device)
                with precision.autocast():
                    loss = forward(batch.input_ids, batch.positions, batch.targets, batch.attention_mask,
                                   batch.segment_ids)
                (loss / accumulate).backward()
                loss_sum += loss.detach()
                window["micro"] += 1
                window["real"] += batch.tokens
                meter.add_tokens(batch.input_ids.numel())
                micro_index, last_reader = batch.index + 1, batch.reader_state
                if meter.progress() >= 1.0 and i < accumulate - 1:
                    break  # the budget ends inside this step: its partial gradient is dropped (as cramming)
            else:
                if cfg.grad_clip > 0:
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip, foreach=True)
                    bad |= ~torch.isfinite(norm)
                optimizer.step()
                step += 1
            optimizer.zero_grad(set_to_none=True)
            reader_state = last_reader
            if reader_state["epoch"] > current["epoch"]:
                current["epoch"] = epoch = reader_state["epoch"]
                tqdm.write(f"epoch {epoch + 1} begins after {epoch * one_pass:,} tokens: rows in "
                           f"{epoch_order(cfg.shuffle, epoch)}", file=sys.stderr)
            now = time.perf_counter()
            if now - last_log >= cfg.log_every:
                write_log()
                last_log = now
            bar.n = int(1000 * meter.progress())
            bar.set_postfix_str(f"loss {current['loss']:.3f} held-out {current['heldout']:.3f} (unigram "
                                f"{entropy:.3f}) lr {current['lr']:.2e} bs {current['batch_size']} "
                                f"epoch {passes(reader_state):.2f} tok/s {current['tokens_per_s']:,.0f} "
                                f"MFU {current['mfu']} left {time_left()}", refresh=False)
            bar.update(0)
            if stop.signum:
                save_checkpoint()
                bar.close()
                print(f"\nstopped by signal {stop.signum}: checkpoint written to {run / 'checkpoints'}; "
                      "continue with --resume", file=sys.stderr)
                status = 128 + stop.signum
                break
            if now - last_eval >= cfg.eval_seconds and meter.progress() < 1.0:
                evaluate()
            if now - last_checkpoint >= cfg.checkpoint_seconds and meter.progress() < 1.0:
                save_checkpoint()
                last_checkpoint = time.perf_counter()
        else:
            if meter.tokens == 0:
                raise ValueError(f"the budget {cfg.budget} was used up by start-up (model build, compilation) "
                                 "before the first micro-batch; give a larger budget")
            save_checkpoint()  # also checks the loss of the last window
            evaluate()
            bar.n = 1000
            bar.close()
            card = {"data": shards.manifest.get("content_hash"), "shards": str(cfg.shards), "budget": cfg.budget,
                    "tokens": meter.tokens, "steps": step, "minutes": round(meter.elapsed() / 60, 1),
                    "device": str(device), "loss": current["loss"], "unigram_entropy": entropy}
            if heldout is not None:
                card["heldout_loss"] = current["heldout"]
            with checkpoint.disk_full_error(run / "final", checkpoint.nbytes(model.state_dict())):
                final = save_pretrained(model, run / "final", tokenizer_file=shards.tokenizer_file, card=card)
            png = metrics.plot(run / "metrics.jsonl", run / "train.png")
            print(f"done: {meter.tokens:,} tokens, {step} optimizer steps, {meter.elapsed() / 60:.1f} min, "
                  f"last loss {current['loss']:.3f}; model in {final}, "
                  f"{f'plot in {png}' if png else 'no plot (matplotlib missing)'}\n"
                  f"{metrics.verdict(current['heldout'], entropy)}", file=sys.stderr)
    except torch.OutOfMemoryError:
        raise OutOfMemory(out_of_memory_message(device, cfg.micro_batch, cfg.batch_size, step)) from None
    finally:
        bar.close()
        loader.close()
        log.close()
        stop.restore()
    return status


def build_parser() -> argparse.ArgumentParser:
    fields = "\n".join(f"  {f.name:<17} {f.metadata['help']} (default: {f.default if f.default is not dataclasses.MISSING else f.default_factory()})"
                       for f in dataclasses.fields(TrainConfig))
    ap = argparse.ArgumentParser(
        prog="train.py", description="Budget-limited BERT (MLM) pretraining on a cramkit shard set.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"settings (key=value; built-in defaults shown, the --config file and then key=value "
               f"override them):\n{fields}\n\n"
               f"presets (--config NAME, configs/train/NAME.yaml):\n{configs.describe('train')}\n\n"
               "Output: <out>/<name>/{config.yaml, metrics.jsonl, train.png, checkpoints/, final/}.\n")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="change any setting listed below")
    ap.add_argument("--config", default="tiny", help="configs/train/<name>.yaml or a YAML path (default: tiny)")
    ap.add_argument("--shards", help="shard folder (setting `shards`)")
    ap.add_argument("--model", help="model preset or YAML path (setting `model`)")
    ap.add_argument("--budget", help="24h, 90m, 2e9tok or 1.5e18flop (setting `budget`)")
    ap.add_argument("--name", help="run name: output goes to <out>/<name> (setting `name`)")
    ap.add_argument("--resume", action="store_true", help="continue from the newest checkpoint of the run")
    ap.add_argument("--overwrite", action="store_true", help="delete the run's earlier output and start over")
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
            ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"error: no space left on the device ({e}); free some and continue with --resume", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
