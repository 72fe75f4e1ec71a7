"""A fine-tuning protocol: one set of hyper-parameters for every task; presets in configs/glue/."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import configs


@dataclass
class Protocol:
    """The defaults are cramming's GLUE-sane; a preset (configs/glue/) lists what it changes."""

    name: str = "sane"
    lr: float = 4e-5
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.0  # when > 0, on every parameter but the 1-D ones (biases, norms)
    batch_size: int = 16
    epochs: int = 5
    schedule: str = "cosine"  # cosine | linear: decay to 0 after warm-up
    warmup: float = 0.1  # fraction of THIS task's optimizer steps (epochs * batches per epoch)
    dropout: float = 0.1
    max_length: int = 128
    pad_multiple: int = 8  # dynamic padding per batch, rounded up to this
    grad_clip: float | None = None  # max grad norm; None = no clipping
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    max_train_examples: int | None = None  # per task, drawn with a fixed seed; reported in the table
    max_eval_examples: int | None = None  # per dev set, idem
    eval_batch_size: int = 128
    precision: str = "auto"  # bf16 autocast | fp32 | auto: trainer.device.Precision's choice for the device

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
