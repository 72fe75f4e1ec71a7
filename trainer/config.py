"""TrainConfig: every setting of a pretraining run, its defaults cramming's recipe; read the way every config
is (`configs`). Fields that only change how a run is observed may differ on --resume; the rest may not."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import configs
from configs import setting
from trainer.batches import SHUFFLE
from trainer.budget import Budget, seconds
from trainer.masking import MODES
from trainer.schedule import LR_SCHEDULES, MASK_SCHEDULES

RESUMABLE = {"name", "out", "checkpoint_every", "keep_checkpoints", "log_every", "tensorboard", "threads",
             "compile", "peak_tflops", "prefetch", "verify", "micro_batch", "precision", "eval_every"}
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class TrainConfig:
    model: str = setting("model preset (configs/model/<name>.yaml) or a path to one", "crammed-bert")
    shards: str = setting("shard folder written by `make corpus`", "out/corpus")
    budget: str = setting("time (24h, 90m, 45s), tokens (2e9tok) or FLOPs (1.5e18flop)", "24h")
    name: str = setting("run folder <out>/<name>; empty: the config file's name", "")
    out: str = setting("parent folder of run folders", "runs")
    seed: int = setting("model init, masking and shuffle seed", 0)
    micro_batch: int = setting("sequences per forward/backward; set it to saturate the GPU (may change on "
                               "--resume)", 512)
    batch_size: int = setting("sequences per optimizer step at the end of the ramp", 8192)
    batch_ramp: float = setting("progress at which batch_size is reached (0: no ramp)", 0.6)
    lr: float = setting("peak learning rate (AdamW)", 1e-3)
    betas: list[float] = setting("AdamW betas", default_factory=lambda: [0.9, 0.98])
    eps: float = setting("AdamW epsilon", 1e-12)
    weight_decay: float = setting("AdamW weight decay; none on 1-D parameters (norms, biases)", 0.01)
    grad_clip: float = setting("global L2 norm; 0 turns it off", 0.5)
    schedule: str = setting("triangle2 (cramming) or one-cycle", "triangle2")
    mask_fraction: float = setting("share of positions predicted (mask_schedule=constant)", 0.25)
    mask_schedule: str = setting("constant (mask_fraction throughout) or linear (mask_start at the start to "
                                 "mask_end at the end of the budget)", "constant")
    mask_start: float = setting("masking rate at the start of a linear mask_schedule", 0.30)
    mask_end: float = setting("masking rate at the end of a linear mask_schedule", 0.15)
    mask_mode: str = setting("exact (round(fraction * seq) per row) or bernoulli", "exact")
    shuffle: str = setting("row order per epoch: later (epoch 1 as stored, e.g. a curriculum, then seeded "
                           "permutations), never (as stored), always (permuted from epoch 1)", "later")
    document_mask: bool = setting("attention only within each document of a packed row (needs shards built "
                                  "with pack.segments=true); false: across documents, as cramming", False)
    verify: bool = setting("check the sha256 of every shard and the tokenizer before training", True)
    device: str = setting("auto: cuda if available, else cpu", "auto")
    compile: str = setting("auto: on for cuda; true / false", "auto")
    precision: str = setting("autocast: bf16 or fp32; auto: bf16 on cuda, and on a cpu where a start-up "
                             "matmul probe finds it faster", "auto")
    heldout_rows: int = setting("shard rows kept out of training for the held-out loss (at most a tenth); "
                                "0: none", 512)
    eval_every: str = setting("wall-clock between held-out evaluations (also at the start and the end)", "5m")
    checkpoint_every: str = setting("wall-clock between checkpoints; 0s: after every optimizer step", "30m")
    keep_checkpoints: int = setting("newest checkpoints kept", 2)
    log_every: float = setting("seconds between log lines (the only host syncs in the loop)", 10.0)
    tensorboard: bool = setting("also log to runs/<name>/tensorboard (needs tensorboard)", False)
    threads: int = setting("torch CPU threads; 0 leaves torch's default", 0)
    peak_tflops: float = setting("device peak for MFU; 0: known GPUs by exact name, none on CPU", 0.0)
    prefetch: int = setting("micro-batches prepared ahead", 4)

    def __post_init__(self):
        for parsed in ("budget_limit", "checkpoint_seconds", "eval_seconds"):  # parsed once, here
            getattr(self, parsed)
        if self.schedule not in LR_SCHEDULES:
            raise ValueError(f"train config: schedule={self.schedule!r}, choose one of {LR_SCHEDULES}")
        if self.shuffle not in SHUFFLE:
            raise ValueError(f"train config: shuffle={self.shuffle!r}, choose one of {SHUFFLE} (the order per "
                             "epoch; the former true is always, false is never)")
        if self.mask_mode not in MODES:
            raise ValueError(f"train config: mask_mode={self.mask_mode!r}, choose one of {MODES}")
        if self.mask_schedule not in MASK_SCHEDULES:
            raise ValueError(f"train config: mask_schedule={self.mask_schedule!r}, choose one of {MASK_SCHEDULES}")
        for key in ("mask_fraction", "mask_start", "mask_end"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ValueError(f"train config: {key}={getattr(self, key)} must be in (0, 1)")
        if self.micro_batch < 1 or self.batch_size < self.micro_batch or self.batch_size % self.micro_batch:
            raise ValueError(f"train config: batch_size={self.batch_size} must be a positive multiple of "
                             f"micro_batch={self.micro_batch}")
        if not 0.0 <= self.batch_ramp <= 1.0:
            raise ValueError(f"train config: batch_ramp={self.batch_ramp} must be in [0, 1]")
        if len(self.betas) != 2:
            raise ValueError(f"train config: betas={self.betas} must be two numbers")
        if self.compile not in ("auto", "true", "false"):
            raise ValueError(f"train config: compile={self.compile!r}, choose auto, true or false")
        if self.precision not in PRECISIONS:
            raise ValueError(f"train config: precision={self.precision!r}, choose one of {PRECISIONS}")
        if self.heldout_rows < 0:
            raise ValueError(f"train config: heldout_rows={self.heldout_rows} must be >= 0")

    @functools.cached_property
    def budget_limit(self) -> Budget:
        return Budget.parse(self.budget)

    @functools.cached_property
    def checkpoint_seconds(self) -> float:
        return seconds("checkpoint_every", self.checkpoint_every)

    @functools.cached_property
    def eval_seconds(self) -> float:
        return seconds("eval_every", self.eval_every)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def resume_conflicts(self, saved: dict) -> list[str]:
        """Fields that differ from a checkpoint's config and would change the training itself (the shard
        folder compared as the folder it names: relative to here or absolute, through links)."""
        mine, saved = self.to_dict(), dict(saved)
        if isinstance(saved.get("shards"), str) and Path(saved["shards"]).resolve() == Path(self.shards).resolve():
            saved["shards"] = mine["shards"]
        return sorted(k for k in set(mine) | set(saved)
                      if k not in RESUMABLE and mine.get(k) != saved.get(k))


def load(name: str, overrides=()) -> TrainConfig:
    """A train preset (configs/train/<name>.yaml) or YAML path, then overrides; the run's name is the file's
    unless set."""
    return configs.load(TrainConfig, "train", name, overrides)
