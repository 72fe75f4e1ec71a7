"""The corpus config: every stage's dataclass, composed, and read the way every config is (`configs`).

Each stage module owns its settings next to its code (sources.SourceConfig, web.WebConfig,
webclean.WebCleanConfig, normalize.NormalizeConfig, dedup.DedupConfig, filters.FilterConfig,
decontam.DecontamConfig, quality.QualityConfig, output.OutputConfig, tokenize.TokenizerConfig,
pack.PackConfig, order.OrderConfig/ShardConfig); this module only composes them.
"""

from dataclasses import asdict, dataclass

import configs
from configs import setting
from pipeline.cleaning.decontam import DecontamConfig
from pipeline.cleaning.filters import FilterConfig
from pipeline.cleaning.normalize import NormalizeConfig
from pipeline.cleaning.quality import QualityConfig
from pipeline.cleaning.webclean import WebCleanConfig
from pipeline.duplicates.dedup import DedupConfig
from pipeline.graph.output import OutputConfig
from pipeline.reading.sources import SourceConfig
from pipeline.reading.web import WebConfig
from pipeline.tokens import shards
from pipeline.tokens.order import OrderConfig, ShardConfig
from pipeline.tokens.pack import PackConfig
from pipeline.tokens.tokenize import OBJECTIVES, TokenizerConfig


@dataclass(frozen=True)
class CorpusConfig:
    """All settings of `python -m pipeline`: what the rows are for and how long, then one section per stage."""

    objective: str = setting("mlm (BERT-style: [SEP]-ended documents) | clm (GPT-style: <|endoftext|>)", "mlm")
    seq_len: int = setting("tokens per row", 128)
    source: SourceConfig = setting("reading inputs", default_factory=SourceConfig)
    web: WebConfig = setting("web pages (.warc, .wet, .html) to text", default_factory=WebConfig)
    webclean: WebCleanConfig = setting("web cleaning rules, all off by default (on in --config web)",
                                       default_factory=WebCleanConfig)
    normalize: NormalizeConfig = setting("text normalization, before dedup", default_factory=NormalizeConfig)
    dedup: DedupConfig = setting("exact and MinHash near-duplicate removal", default_factory=DedupConfig)
    filters: FilterConfig = setting("quality filters: length, compression, repetition, language; 0 turns a "
                                    "bound off", default_factory=FilterConfig)
    decontam: DecontamConfig = setting("evaluation text removed from the corpus; on when glue_dir, hub or paths "
                                       "names some", default_factory=DecontamConfig)
    quality: QualityConfig = setting("model-based quality selection; on when reference or model is set",
                                     default_factory=QualityConfig)
    output: OutputConfig = setting("clean documents written by --until clean (or earlier)",
                                   default_factory=OutputConfig)
    tokenizer: TokenizerConfig = setting("the tokenizer, trained on the clean documents or given",
                                         default_factory=TokenizerConfig)
    pack: PackConfig = setting("documents packed into rows of seq_len tokens", default_factory=PackConfig)
    order: OrderConfig = setting("the order of the rows (a curriculum)", default_factory=OrderConfig)
    shards: ShardConfig = setting("the shard files", default_factory=ShardConfig)

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
