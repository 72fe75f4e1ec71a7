"""A fine-tuning protocol: one set of hyper-parameters for every task; presets in configs/glue/."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import configs
from configs import setting


@dataclass
class Protocol:
    """The defaults are cramming's GLUE-sane; a preset (configs/glue/) lists what it changes."""

    name: str = setting("protocol name, reported with the results; empty: the config file's name", "sane")
    lr: float = setting("peak learning rate (AdamW)", 4e-5)
    betas: tuple[float, float] = setting("AdamW betas", (0.9, 0.98))
    eps: float = setting("AdamW epsilon", 1e-6)
    weight_decay: float = setting("AdamW weight decay, on every parameter but the 1-D ones (biases, norms)", 0.0)
    batch_size: int = setting("training examples per optimizer step", 16)
    epochs: int = setting("passes over each task's training set", 5)
    schedule: str = setting("learning rate after warm-up: cosine or linear, decaying to 0", "cosine")
    warmup: float = setting("warm-up, a fraction of this task's optimizer steps (epochs x batches per epoch)",
                            0.1)
    dropout: float = setting("dropout of the fine-tuned model (replaces the checkpoint's)", 0.1)
    max_length: int = setting("tokens per example; longer ones are truncated", 128)
    pad_multiple: int = setting("each batch is padded to its longest example, rounded up to this", 8)
    grad_clip: float | None = setting("max global gradient norm; null: no clipping", None)
    seeds: list[int] = setting("fine-tuning seeds; every task runs once per seed",
                               default_factory=lambda: [0, 1, 2, 3, 4])
    max_train_examples: int | None = setting("per task, a subset drawn with a fixed seed (marked in the table); "
                                             "null: all", None)
    max_eval_examples: int | None = setting("per dev set, a subset drawn with a fixed seed; null: all", None)
    eval_batch_size: int = setting("examples per evaluation batch", 128)
    precision: str = setting("bf16 (autocast), fp32, or auto: bf16 on a GPU that has it and on a CPU where a "
                             "matmul probe finds it faster", "auto")

    def __post_init__(self):
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, not {self.precision!r}")
        if self.schedule not in ("cosine", "linear"):
            raise ValueError(f"schedule must be 'cosine' or 'linear', not {self.schedule!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup is a fraction of the task's steps in [0, 1), not {self.warmup}")
        for name in ("batch_size", "epochs", "max_length", "pad_multiple", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if not self.seeds:
            raise ValueError("seeds is empty; give at least one seed")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def is_subset(self) -> bool:
        return self.max_train_examples is not None or self.max_eval_examples is not None


def load(name: str | None = None, overrides=()) -> Protocol:
    """A GLUE preset (configs/glue/<name>.yaml) or YAML path, None for the defaults, then overrides."""
    return configs.load(Protocol, "glue", name, overrides)
