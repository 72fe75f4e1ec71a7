"""A fine-tuning protocol: one set of hyper-parameters for every task, read from configs/glue/*.yaml."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from model.config import CONFIG_DIR

PRESET_DIR = CONFIG_DIR / "glue"


class ProtocolError(ValueError):
    """A config file or override that does not describe a protocol."""


@dataclass
class Protocol:
    """Defaults are cramming's GLUE-sane (configs/glue/sane.yaml spells them out)."""

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
        for name in ("lr", "eps", "weight_decay", "warmup", "dropout"):
            setattr(self, name, float(getattr(self, name)))
        for name in ("batch_size", "epochs", "max_length", "pad_multiple", "eval_batch_size"):
            setattr(self, name, int(getattr(self, name)))
        self.betas = tuple(float(b) for b in self.betas)
        self.seeds = [int(s) for s in self.seeds]
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ProtocolError(f"precision must be auto, fp32 or bf16, not {self.precision!r}")
        if self.schedule not in ("cosine", "linear"):
            raise ProtocolError(f"schedule must be 'cosine' or 'linear', not {self.schedule!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ProtocolError(f"warmup is a fraction of the task's steps in [0, 1), not {self.warmup}")
        for name in ("batch_size", "epochs", "max_length", "pad_multiple", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ProtocolError(f"{name} must be >= 1, not {getattr(self, name)}")
        if not self.seeds:
            raise ProtocolError("seeds is empty; give at least one seed")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def is_subset(self) -> bool:
        return self.max_train_examples is not None or self.max_eval_examples is not None


def _parse_overrides(overrides: list[str]) -> dict:
    out = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ProtocolError(f"override {item!r} is not key=value (e.g. epochs=3)")
        out[key.strip()] = yaml.safe_load(value)
    return out


def load(config: str | Path | None = None, overrides: list[str] = ()) -> Protocol:
    """A protocol from a YAML file (a path, or a name under configs/glue/) plus key=value overrides."""
    values: dict = {}
    if config is not None:
        path = Path(config)
        if not path.exists() and (PRESET_DIR / f"{config}.yaml").exists():
            path = PRESET_DIR / f"{config}.yaml"
        if not path.is_file():
            names = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
            raise ProtocolError(f"{config}: no such config file or name (names: {names})")
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ProtocolError(f"{path}: expected a mapping of protocol keys")
        values.setdefault("name", path.stem)
    values.update(_parse_overrides(list(overrides)))
    known = {f.name for f in fields(Protocol)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ProtocolError(f"unknown protocol key(s) {unknown}; known: {', '.join(sorted(known))}")
    try:
        return Protocol(**values)
    except (TypeError, ValueError) as e:
        if isinstance(e, ProtocolError):
            raise
        raise ProtocolError(f"bad protocol value: {e}") from e
