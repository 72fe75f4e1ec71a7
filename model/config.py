"""ModelConfig: every size and switch of a model, with presets read from configs/model/<name>.yaml."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import configs
from configs import setting

ARCHS = ("crammed", "bert")
POOLS = ("first", "mean")


@dataclass(frozen=True)
class ModelConfig:
    """A BERT-style encoder. `arch` picks the block design:

    - "crammed": pre-LN, no bias in any linear, GELU-gated FFN (intermediate split in halves), fixed
      sinusoid positions times one learnable scale, embedding and final LayerNorm, tied decoder only.
    - "bert": post-LN, biases, GELU FFN, learned positions, MLM transform (dense+GELU+LN) and decoder bias.

    Token types are embedded iff type_vocab_size > 0. The classifier head is first token (or mean of the
    unpadded tokens, pool="mean") -> Linear(hidden, head_dim) -> tanh -> dropout -> Linear(head_dim, labels).
    The defaults are cramming's crammed-bert; a preset (configs/model/) lists what it changes.
    `vocab_size` None (unset) takes the shard set's vocabulary when train.py builds the model; a preset that
    pins one keeps it (model.tokenizer.fit_vocab).
    """

    arch: str = setting("block design: crammed (pre-LN, no biases, gated FFN, sinusoid positions) or bert "
                        "(post-LN, biases, learned positions)", "crammed")
    vocab_size: int | None = setting("token embedding rows; null: the shards' tokenizer vocabulary, a number "
                                     "pins it", None)
    max_seq_len: int = setting("longest input in tokens (the position table); the shards' seq_len must fit",
                               128)
    hidden_size: int = setting("width of each token's vector", 768)
    num_layers: int = setting("transformer blocks", 16)
    num_heads: int = setting("attention heads; must divide hidden_size", 12)
    intermediate_size: int = setting("FFN inner width (crammed: even, split into value and gate halves)", 3072)
    dropout: float = setting("dropout probability of embeddings, attention, FFN and classifier head", 0.0)
    pad_token_id: int = setting("id of the padding token (its embedding row stays zero)", 0)
    type_vocab_size: int = setting("token-type (segment A/B) embeddings; 0: none", 0)
    norm_eps: float = setting("LayerNorm epsilon", 1e-12)
    init_std: float = setting("standard deviation of the normal weight initialization", 0.02)
    head_dim: int = setting("hidden width of the classifier head", 1024)
    pool: str = setting("classifier input: first (the first token) or mean (of the unpadded tokens)", "first")

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"ModelConfig.arch must be one of {ARCHS}, got {self.arch!r}")
        if self.pool not in POOLS:
            raise ValueError(f"ModelConfig.pool must be one of {POOLS}, got {self.pool!r}")
        for name in ("vocab_size", "max_seq_len", "hidden_size", "num_layers", "num_heads",
                     "intermediate_size", "head_dim"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"ModelConfig.hidden_size ({self.hidden_size}) must be divisible by "
                             f"num_heads ({self.num_heads})")
        if self.arch == "crammed" and self.intermediate_size % 2:
            raise ValueError(f"ModelConfig.intermediate_size ({self.intermediate_size}) must be even: "
                             "the crammed FFN splits it into value and gate halves")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.pad_token_id < 0 or (self.vocab_size is not None and self.pad_token_id >= self.vocab_size):
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
        return configs.load(cls, "model", name, overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "ModelConfig") -> ModelConfig:
        """Build from a complete mapping (a checkpoint's config.json, read from `source`); a bad, unknown or
        missing field is a ConfigError naming it."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in values]
        if missing and set(values) <= set(names):  # an unknown key is named first, by build
            raise configs.ConfigError(f"{source}: missing ModelConfig field(s) {missing}")
        try:
            return configs.build(cls, values, "ModelConfig")
        except configs.ConfigError as err:
            raise configs.ConfigError(f"{source}: {err}") from None

    def replace(self, **overrides) -> ModelConfig:
        return self.from_dict({**self.to_dict(), **overrides})
