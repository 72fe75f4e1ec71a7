"""The corpus config: every stage's dataclass, composed; loaded from YAML, then `key=value` overrides.

Each stage module owns its settings next to its code (sources.SourceConfig, normalize.NormalizeConfig,
dedup.DedupConfig, filters.FilterConfig, output.OutputConfig, tokenize.TokenizerConfig,
pack.PackConfig, order.OrderConfig/ShardConfig); this module only composes them. Values are type-checked
against the dataclass fields, and an error names the dotted key (`dedup.bands`) and what it wants.
"""

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from model.config import CONFIG_DIR
from pipeline import shards
from pipeline.dedup import DedupConfig
from pipeline.filters import FilterConfig
from pipeline.normalize import NormalizeConfig
from pipeline.order import OrderConfig, ShardConfig
from pipeline.output import OutputConfig
from pipeline.pack import PackConfig
from pipeline.sources import SourceConfig
from pipeline.tokenize import OBJECTIVES, TokenizerConfig

PRESET_DIR = CONFIG_DIR / "corpus"


@dataclass(frozen=True)
class CorpusConfig:
    """All settings of `python -m pipeline`: what the rows are for and how long, then one section per stage."""

    objective: str = "mlm"  # mlm (BERT-style: [SEP]-ended documents) | clm (GPT-style: <|endoftext|>)
    seq_len: int = 128  # tokens per row
    source: SourceConfig = field(default_factory=SourceConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
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


class ConfigError(ValueError):
    """A bad config file, key or value; the message names it."""


def _check(key: str, value, hint):
    """`value` as the field type `hint` wants (tuples from lists, ints as floats), or ConfigError."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(key, value, arg)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if hint is tuple or origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}={value!r}: expected a list")
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}: expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}={value!r}: expected an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}={value!r}: expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}={value!r}: expected a string")
        return value
    raise ConfigError(f"{key}: unsupported field type {hint}")


def _build(cls, values: dict, prefix: str):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"{dotted}: unknown key; {prefix.rstrip('.') or 'the config'} has "
                              f"{', '.join(names)}")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"{dotted}: expected a mapping of {hints[key].__name__} settings")
            kwargs[key] = _build(hints[key], value, f"{dotted}.")
        else:
            kwargs[key] = _check(dotted, value, hints[key])
    try:
        return cls(**kwargs)
    except ValueError as e:  # the stage's own range checks; their messages name the key
        raise ConfigError(str(e)) from e


def parse_override(text: str) -> tuple[list[str], object]:
    """"dedup.bands=20" -> (["dedup", "bands"], 20); the value is read as YAML (numbers, lists, null)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"{text!r}: overrides are key=value with a dotted key, e.g. dedup.bands=20")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"{key}={raw!r}: not a valid value ({e})") from e
    return key.split("."), value


def resolve(name_or_path: str) -> Path:
    """A config name (configs/corpus/<name>.yaml) or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return PRESET_DIR / f"{name_or_path}.yaml"


def load(name_or_path: str | None = None, overrides: list[str] = ()) -> CorpusConfig:
    """The config from YAML (None: the defaults) with `key=value` overrides applied in order."""
    values: dict = {}
    if name_or_path:
        path = resolve(name_or_path)
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
            raise ConfigError(f"--config {name_or_path}: no such file ({path}); known configs: {known}")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from e
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (source, dedup, ...)")
    for text in overrides:
        keys, value = parse_override(text)
        node = values
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{text}: {k} is not a section")
        node[keys[-1]] = value
    return _build(CorpusConfig, values, "")
