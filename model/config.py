"""ModelConfig: every size and switch of a model, with presets read from configs/model/<name>.yaml."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

# The presets of every job (configs/corpus, model, train, glue), found beside the packages: the repository's
# folder in a checkout or an editable install, the copy a wheel installs as package data (pyproject.toml).
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
PRESET_DIR = CONFIG_DIR / "model"
ARCHS = ("crammed", "bert")
POOLS = ("first", "mean")


def describe_presets(folder: Path, width: int = 13) -> str:
    """One line per YAML preset in `folder` (model, train or GLUE configs): its name and the first line of
    its leading comment, for --help texts."""
    lines = []
    for path in sorted(folder.glob("*.yaml")):
        first = next((ln.lstrip("# ").strip() for ln in path.read_text().splitlines() if ln.startswith("#")), "")
        lines.append(f"  {path.stem:<{width}} {first}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ModelConfig:
    """A BERT-style encoder. `arch` picks the block design:

    - "crammed": pre-LN, no bias in any linear, GELU-gated FFN (intermediate split in halves), fixed
      sinusoid positions times one learnable scale, embedding and final LayerNorm, tied decoder only.
    - "bert": post-LN, biases, GELU FFN, learned positions, MLM transform (dense+GELU+LN) and decoder bias.

    Token types are embedded iff type_vocab_size > 0. The classifier head is first token (or mean of the
    unpadded tokens, pool="mean") -> Linear(hidden, head_dim) -> tanh -> dropout -> Linear(head_dim, labels).
    """

    arch: str
    vocab_size: int
    max_seq_len: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    dropout: float = 0.0
    pad_token_id: int = 0
    type_vocab_size: int = 0
    norm_eps: float = 1e-12
    init_std: float = 0.02
    head_dim: int = 1024
    pool: str = "first"

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"ModelConfig.{f.name} must be an integer, got {value!r}")
            if f.type == "float" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise ValueError(f"ModelConfig.{f.name} must be a number, got {value!r}")
            if f.type == "str" and not isinstance(value, str):
                raise ValueError(f"ModelConfig.{f.name} must be a string, got {value!r}")
        if self.arch not in ARCHS:
            raise ValueError(f"ModelConfig.arch must be one of {ARCHS}, got {self.arch!r}")
        if self.pool not in POOLS:
            raise ValueError(f"ModelConfig.pool must be one of {POOLS}, got {self.pool!r}")
        for name in ("vocab_size", "max_seq_len", "hidden_size", "num_layers", "num_heads",
                     "intermediate_size", "head_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"ModelConfig.hidden_size ({self.hidden_size}) must be divisible by "
                             f"num_heads ({self.num_heads})")
        if self.arch == "crammed" and self.intermediate_size % 2:
            raise ValueError(f"ModelConfig.intermediate_size ({self.intermediate_size}) must be even: "
                             "the crammed FFN splits it into value and gate halves")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"ModelConfig.pad_token_id ({self.pad_token_id}) must be in [0, vocab_size="
                             f"{self.vocab_size})")
        if self.type_vocab_size < 0:
            raise ValueError(f"ModelConfig.type_vocab_size must be >= 0, got {self.type_vocab_size}")
        if self.norm_eps <= 0 or self.init_std <= 0:
            raise ValueError("ModelConfig.norm_eps and ModelConfig.init_std must be > 0")

    @property
    def crammed(self) -> bool:
        return self.arch == "crammed"

    @classmethod
    def preset(cls, name: str, **overrides) -> ModelConfig:
        """A preset by name (configs/model/<name>.yaml) or a path to a YAML file, with field overrides."""
        path = Path(name)
        if path.suffix not in (".yaml", ".yml"):
            path = PRESET_DIR / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
            raise ValueError(f"unknown model preset {name!r}; known presets: {known} (in {PRESET_DIR}), "
                             "or pass a path to a .yaml file")
        values = yaml.safe_load(path.read_text())
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of ModelConfig fields, got {type(values).__name__}")
        return cls.from_dict({**values, **overrides}, source=str(path))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "ModelConfig") -> ModelConfig:
        """Build from a mapping (read from `source`); a bad, unknown or missing field is a ValueError naming it."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{source}: unknown ModelConfig field(s) {unknown}; known fields: {sorted(names)}")
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [n for n in required if n not in values]
        if missing:
            raise ValueError(f"{source}: missing ModelConfig field(s) {missing}")
        try:
            return cls(**values)
        except ValueError as err:
            if source == "ModelConfig":
                raise
            raise ValueError(f"{source}: {err}") from None

    def replace(self, **overrides) -> ModelConfig:
        return self.from_dict({**self.to_dict(), **overrides})
