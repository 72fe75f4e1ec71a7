"""One pretraining run inside its budget, once train.py has opened and checked the data: set-up (model,
optimizer, loader, metrics log), then the loop: step, log, evaluate and checkpoint on the wall clock until
the budget is spent, and the final model folder."""

from __future__ import annotations

import functools
import math
import os
import signal
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from model import tokenizer
from model.config import ModelConfig
from model.decay import weight_decay_groups
from model.flops import train_flops_per_token
from model.heads import MaskedLM
from model.io import save_pretrained
from pipeline.files import record
from pipeline.tokens.shards import ShardSet
from trainer import checkpoint, metrics
from trainer.batches import epoch_batches, epoch_order, passes
from trainer.budget import Meter
from trainer.config import TrainConfig
from trainer.data import MaskPlan, Prefetcher
from trainer.device import OutOfMemory, Precision, out_of_memory_message, peak_flops, pick_device
from trainer.heldout import HeldOut, TrainRows, heldout_indices, unigram_entropy
from trainer.masking import Masker
from trainer.schedule import batch_size, lr_multiplier, mask_rate


class NonFiniteLoss(RuntimeError):
    """The loss or the gradient norm went NaN or infinite; the message names the checkpoint kept."""


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


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on every parameter but norms and biases (cramming's rule, by rank)."""
    return torch.optim.AdamW(weight_decay_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas),
                             eps=cfg.eps, fused=True if device.type == "cuda" else None)


class Window:
    """What the loop adds up between two log records; the loss sums stay on the device until `Run.log`."""

    def __init__(self, device: torch.device, meter: Meter, stall: float, start: float):
        self.loss = torch.zeros((), device=device)
        self.bad = torch.zeros((), dtype=torch.bool, device=device)  # a non-finite gradient norm
        self.micro, self.real = 0, 0  # micro-batches, real tokens (padding excluded)
        self.tokens, self.flops = meter.tokens, meter.flops  # the meter at its start
        self.stall, self.start = stall, start  # the loader and the clock at its start


class Run:
    """`Run(...).train()`: 0 once the budget is spent and the model written, 128 + the signal number when
    SIGINT/SIGTERM stopped it (after a checkpoint). `latest`/`saved`: the checkpoint to resume and its
    state.json, None to start from the beginning."""

    def __init__(self, cfg: TrainConfig, mcfg: ModelConfig, shards: ShardSet, folder: Path,
                 latest: Path | None = None, saved: dict | None = None):
        self.cfg, self.mcfg, self.shards, self.folder, self.saved = cfg, mcfg, shards, folder, saved
        specials = tokenizer.special_ids(shards.tokenizer_file)
        seq_len, scheduled = shards.seq_len, cfg.mask_schedule != "constant"
        # a changing rate pads the masked positions to multiples of 8: a few shapes for torch.compile
        self.masker = Masker(specials["[MASK]"], shards.vocab_size, cfg.mask_fraction, cfg.mask_mode,
                             tuple(specials.values()), cfg.seed, pad_to=8 if scheduled else 1)
        self.mask_rate = functools.partial(mask_rate, kind=cfg.mask_schedule, fraction=cfg.mask_fraction,
                                           start=cfg.mask_start, end=cfg.mask_end)
        self.mask_fraction = self.mask_rate(0.0)  # of the newest micro-batch, for the log

        def per_token(decoded: int) -> float:  # training FLOPs per position, `decoded` positions of a row decoded
            return train_flops_per_token(mcfg, decoded / seq_len, seq_len)

        middle = self.mask_rate(0.5)  # the mean rate of a linear schedule
        self.budget = cfg.budget_limit
        self.meter = Meter(self.budget, per_token(self.masker.width(seq_len, middle) if cfg.mask_mode == "exact"
                                                  else middle * seq_len), saved and saved["spent"])
        self.held = heldout_indices(len(shards), min(cfg.heldout_rows, len(shards) // 10))
        train_rows = TrainRows(shards, self.held)
        self.heldout = HeldOut(shards, self.held, specials["[MASK]"], tuple(specials.values()), cfg.micro_batch,
                               cfg.document_mask) if len(self.held) else None
        self.entropy = unigram_entropy(shards)
        self.one_pass = len(train_rows) * seq_len  # tokens

        self.meter.start()  # start-up and compilation are inside the budget
        self.device = pick_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.precision = Precision(cfg.precision, self.device, saved and saved.get("precision"))
        cuda = self.device.type == "cuda"
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        torch.manual_seed(cfg.seed)
        self.model = MaskedLM(mcfg).to(self.device).train()
        self.optimizer = build_optimizer(self.model, cfg, self.device)
        self.steps, self.micro_index = 0, 0  # optimizer steps taken, micro-batches read
        reader = epoch_batches(train_rows, cfg.micro_batch, cfg.shuffle, cfg.seed, cfg.document_mask)
        if saved:
            checkpoint.load(latest, self.model, self.optimizer)
            self.steps, self.micro_index = saved["step"], saved["micro_index"]
            reader.load_state_dict(saved["reader"])
            print(f"resumed from {latest} at {100 * self.meter.progress():.1f}% of the budget", file=sys.stderr)
        self.reader_state = reader.state_dict()  # after the last micro-batch the model consumed
        self.compiled = cfg.compile == "true" or (cfg.compile == "auto" and cuda)
        if self.compiled and scheduled and cfg.mask_mode == "exact":  # one graph per width of the masked positions
            widths = {self.masker.width(seq_len, self.mask_rate(i / 1000)) for i in range(1001)}
            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, len(widths))
        self.forward = torch.compile(self.model, dynamic=False) if self.compiled else self.model
        self.loader = Prefetcher(reader, self.masker, self.micro_index, pin=cuda, depth=cfg.prefetch,
                                 plan=MaskPlan(self.meter, self.mask_rate, per_token))
        self.peak = peak_flops(cfg.peak_tflops, self.device)
        record.claim(folder, "run", files=["metrics.jsonl", ".tmp-metrics.jsonl"])  # the log, and its rewrite
        with record.writing(folder, "run", *(["tensorboard"] if cfg.tensorboard else [])):
            self.metrics_log = metrics.MetricsLog(  # drops what a killed run logged after its checkpoint
                folder / "metrics.jsonl", folder / "tensorboard" if cfg.tensorboard else None,
                resume_at=(self.steps, self.meter.tokens))

        logged = {k: r[k] for r in metrics.read(folder / "metrics.jsonl") for k in ("loss", "heldout_loss") if k in r}
        self.loss, self.heldout_loss = logged.get("loss", math.nan), logged.get("heldout_loss", math.nan)  # newest
        self.lr, self.batch_size, self.tokens_per_s, self.mfu = 0.0, cfg.micro_batch, 0.0, "n/a"
        self.epoch, self.warned = self.reader_state["epoch"], False
        self.window = Window(self.device, self.meter, self.loader.stall_seconds, time.perf_counter())
        self.p_start, self.t_start = self.meter.progress(), time.perf_counter()
        self.last_log, self.last_eval, self.last_checkpoint = 0.0, time.perf_counter(), time.perf_counter()

    def train(self) -> int:
        """The loop: a step, then a log record, a held-out evaluation and a checkpoint each when its time has
        come, until the budget is spent or a signal arrives."""
        cfg = self.cfg
        print(metrics.header(cfg, self.mcfg, self.device, str(self.precision), self.compiled, len(self.shards),
                             len(self.held), self.shards.seq_len, self.entropy, self.budget,
                             self.meter.flops_per_token), file=sys.stderr)
        if not self.saved:
            self.evaluate()  # the untrained model: about ln(vocab)
        stop = Stop()
        self.bar = tqdm(total=1000, initial=int(1000 * self.meter.progress()), desc=cfg.name, unit="‰",
                        dynamic_ncols=True, bar_format="{desc} {percentage:3.0f}%|{bar}|{postfix}")
        self.warn_repeats()
        try:
            while self.meter.progress() < 1.0:
                self.step()
                now = time.perf_counter()
                if now - self.last_log >= cfg.log_every:
                    self.log()
                    self.last_log = now
                self.show()
                if stop.signum:
                    self.save_checkpoint()
                    self.bar.close()
                    print(f"\nstopped by signal {stop.signum}: checkpoint written to {self.folder / 'checkpoints'}; "
                          "continue with --resume", file=sys.stderr)
                    return 128 + stop.signum
                if now - self.last_eval >= cfg.eval_seconds and self.meter.progress() < 1.0:
                    self.evaluate()
                if now - self.last_checkpoint >= cfg.checkpoint_seconds and self.meter.progress() < 1.0:
                    self.save_checkpoint()
            self.finish()
            return 0
        except torch.OutOfMemoryError:
            message = out_of_memory_message(self.device, cfg.micro_batch, cfg.batch_size, self.steps)
            raise OutOfMemory(message) from None
        finally:
            self.bar.close()
            self.loader.close()
            self.metrics_log.close()
            stop.restore()

    def step(self) -> None:
        """One optimizer step at the batch size and learning rate of the progress so far; when the budget
        ends inside it, its partial gradient is dropped (as cramming)."""
        cfg, p = self.cfg, self.meter.progress()
        self.batch_size = batch_size(p, cfg.micro_batch, cfg.batch_size, cfg.batch_ramp)
        accumulate = self.batch_size // cfg.micro_batch
        self.lr = cfg.lr * lr_multiplier(p, cfg.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        for i in range(accumulate):
            batch = next(self.loader).to(self.device)
            with self.precision.autocast():
                loss = self.forward(batch.input_ids, batch.positions, batch.targets, batch.attention_mask,
                                    batch.segment_ids)
            (loss / accumulate).backward()
            self.window.loss += loss.detach()
            self.window.micro += 1
            self.window.real += batch.tokens
            self.meter.add(batch.input_ids.numel(), batch.flops)
            self.micro_index, self.reader_state = batch.index + 1, batch.reader_state
            self.mask_fraction = batch.mask_fraction
            if self.meter.progress() >= 1.0 and i < accumulate - 1:
                break
        else:
            if cfg.grad_clip > 0:
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip, foreach=True)
                self.window.bad |= ~torch.isfinite(norm)
            self.optimizer.step()
            self.steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        if self.reader_state["epoch"] > self.epoch:
            self.epoch = self.reader_state["epoch"]
            tqdm.write(f"epoch {self.epoch + 1} begins after {self.epoch * self.one_pass:,} tokens: rows in "
                       f"{epoch_order(cfg.shuffle, self.epoch)}", file=sys.stderr)

    def log(self) -> None:
        """Sync once: the window's average loss, throughput and MFU as a metrics record; NonFiniteLoss on a
        non-finite loss or gradient."""
        now, window = time.perf_counter(), self.window
        loss = window.loss.item() / max(1, window.micro)
        if window.bad.item() or not math.isfinite(loss):
            raise NonFiniteLoss(f"non-finite loss or gradient before optimizer step {self.steps}; the last good "
                                f"checkpoint is kept in {self.folder / 'checkpoints'}. Lower lr or grad_clip, or "
                                "check the shards")
        seconds = max(now - window.start, 1e-9)
        positions_s, self.tokens_per_s = (self.meter.tokens - window.tokens) / seconds, window.real / seconds
        record = {"step": self.steps, "tokens": self.meter.tokens, "progress": round(self.meter.progress(), 6),
                  "epoch": round(passes(self.reader_state), 4), "loss": loss, "lr": self.lr,
                  "batch_size": self.batch_size, "mask_fraction": round(self.mask_fraction, 6),
                  "tokens_per_s": self.tokens_per_s,
                  "elapsed_s": round(self.meter.elapsed(), 2),
                  "stall_s": round(self.loader.stall_seconds - window.stall, 3),
                  "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}
        if self.peak:  # padding is computed too: MFU counts every position, and every decoded one
            record["mfu"] = (self.meter.flops - window.flops) / seconds / self.peak
            self.mfu = f"{100 * record['mfu']:.1f}%"
        self.metrics_log.write(record)
        self.loss = loss
        self.warn_repeats(positions_s)
        self.window = Window(self.device, self.meter, self.loader.stall_seconds, now)

    def evaluate(self) -> None:
        """The held-out loss, a metrics record of its own (on the clock too)."""
        if self.heldout is not None:
            self.heldout_loss = self.heldout.loss(self.model, self.device, self.precision.autocast)
            self.metrics_log.write({"step": self.steps, "tokens": self.meter.tokens,
                                    "elapsed_s": round(self.meter.elapsed(), 2), "heldout_loss": self.heldout_loss,
                                    "unigram_entropy": self.entropy})
        self.last_eval = time.perf_counter()

    def save_checkpoint(self) -> None:
        """The training state after the last optimizer step (on the clock: a time budget is the user's
        wall-clock time); logs the open window first."""
        if self.window.micro:
            self.log()
        state = {"micro_index": self.micro_index, "spent": self.meter.state_dict(), "reader": self.reader_state,
                 "finished": self.meter.progress() >= 1.0, "precision": self.precision.name,
                 "config": self.cfg.to_dict(), "model": self.mcfg.to_dict()}
        with record.writing(self.folder, "run", *(f"checkpoints/{n}" for n in checkpoint.folders(self.steps))):
            checkpoint.save(self.folder / "checkpoints", self.steps, self.model, self.optimizer, state,
                            keep=self.cfg.keep_checkpoints)
        self.last_checkpoint = time.perf_counter()

    def finish(self) -> None:
        """The budget is spent: a last checkpoint and evaluation, the model folder, the plot and the verdict."""
        if self.meter.tokens == 0:
            raise ValueError(f"the budget {self.cfg.budget} was used up by start-up (model build, compilation) "
                             "before the first micro-batch; give a larger budget")
        self.save_checkpoint()  # also checks the loss of the last window
        self.evaluate()
        self.bar.n = 1000
        self.bar.close()
        card = {"data": self.shards.manifest.get("content_hash"), "shards": str(self.cfg.shards),
                "budget": self.cfg.budget, "tokens": self.meter.tokens, "steps": self.steps,
                "minutes": round(self.meter.elapsed() / 60, 1), "device": str(self.device), "loss": self.loss,
                "unigram_entropy": self.entropy}
        if self.heldout is not None:
            card["heldout_loss"] = self.heldout_loss
        needed = checkpoint.nbytes(self.model.state_dict())
        with record.writing(self.folder, "run", "final"), checkpoint.disk_full_error(self.folder / "final", needed):
            final = save_pretrained(self.model, self.folder / "final", tokenizer_file=self.shards.tokenizer_file,
                                    card=card)
        record.claim(self.folder, "run", files=["train.png"])
        png = metrics.plot(self.folder / "metrics.jsonl", self.folder / "train.png")
        print(f"done: {self.meter.tokens:,} tokens, {self.steps} optimizer steps, {self.meter.elapsed() / 60:.1f} "
              f"min, last loss {self.loss:.3f}; model in {final}, "
              f"{f'plot in {png}' if png else 'no plot (matplotlib missing)'}\n"
              f"{metrics.verdict(self.heldout_loss, self.entropy)}", file=sys.stderr)

    def show(self) -> None:
        """The progress bar and its line of figures."""
        self.bar.n = int(1000 * self.meter.progress())
        self.bar.set_postfix_str(f"loss {self.loss:.3f} held-out {self.heldout_loss:.3f} (unigram "
                                 f"{self.entropy:.3f}) lr {self.lr:.2e} bs {self.batch_size} "
                                 f"epoch {passes(self.reader_state):.2f} tok/s {self.tokens_per_s:,.0f} "
                                 f"MFU {self.mfu} left {self.time_left()}", refresh=False)
        self.bar.update(0)

    def time_left(self) -> str:
        p = self.meter.progress()
        if self.budget.kind == "seconds":
            left = self.budget.amount - self.meter.elapsed()
        elif p > self.p_start:
            left = (time.perf_counter() - self.t_start) / (p - self.p_start) * (1 - p)
        else:
            return "?"
        return time.strftime("%H:%M:%S", time.gmtime(max(0.0, left)))

    def warn_repeats(self, tokens_per_s: float | None = None) -> None:
        """Once: say so when the budget reads the data more than once (a time budget: at a measured rate)."""
        end = self.meter.tokens_at_end(tokens_per_s)
        if self.warned or end is None or end <= self.one_pass:
            return
        self.warned = True
        rate = f" at {tokens_per_s:,.0f} tokens/s" if tokens_per_s else ""
        tqdm.write(f"warning: the budget {self.cfg.budget} reads about {end / self.one_pass:.1f} passes over the "
                   f"{len(self.shards):,} rows of {self.cfg.shards}{rate}; rows repeat, from epoch 2 in "
                   f"{epoch_order(self.cfg.shuffle, 1)} each epoch (shuffle={self.cfg.shuffle})", file=sys.stderr)
