"""The corpus config: every stage's dataclass, composed, and read the way every config is (`configs`).

Each stage module owns its settings next to its code (sources.SourceConfig, web.WebConfig,
webclean.WebCleanConfig, normalize.NormalizeConfig, dedup.DedupConfig, filters.FilterConfig,
decontam.DecontamConfig, quality.QualityConfig, output.OutputConfig, tokenize.TokenizerConfig,
pack.PackConfig, order.OrderConfig/ShardConfig); this module only composes them.
"""

from dataclasses import asdict, dataclass, field

import configs
from pipeline import shards
from pipeline.decontam import DecontamConfig
from pipeline.dedup import DedupConfig
from pipeline.filters import FilterConfig
from pipeline.normalize import NormalizeConfig
from pipeline.order import OrderConfig, ShardConfig
from pipeline.output import OutputConfig
from pipeline.pack import PackConfig
from pipeline.quality import QualityConfig
from pipeline.sources import SourceConfig
from pipeline.tokenize import OBJECTIVES, TokenizerConfig
from pipeline.web import WebConfig
from pipeline.webclean import WebCleanConfig


@dataclass(frozen=True)
class CorpusConfig:
    """All settings of `python -m pipeline`: what the rows are for and how long, then one section per stage."""

    objective: str = "mlm"  # mlm (BERT-style: [SEP]-ended documents) | clm (GPT-style: <|endoftext|>)
    seq_len: int = 128  # tokens per row
    source: SourceConfig = field(default_factory=SourceConfig)
    web: WebConfig = field(default_factory=WebConfig)
    webclean: WebCleanConfig = field(default_factory=WebCleanConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    pack: PackConfig = field(default_factory=PackConfig)
    order: OrderConfig = field(default_factory=OrderConfig)
    shards: ShardConfig = field(default_factory=ShardConfig)

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective={self.objective!r}: choose one of {', '.join(OBJECTIVES)}")
        if not 1 <= self.seq_len < 1 << 16:
            raise ValueError(f"seq_len={self.seq_len}: must be in 1..65535")

    def to_dict(self) -> dict:
        return asdict(self)

    def hash(self) -> str:
        """Stable hash of every setting (the same one the shard manifest records)."""
        return shards.config_hash(self.to_dict())


def load(name: str | None = None, overrides=()) -> CorpusConfig:
    """A corpus preset (configs/corpus/<name>.yaml) or YAML path, None for the defaults, then overrides."""
    return configs.load(CorpusConfig, "corpus", name, overrides)
