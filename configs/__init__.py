"""The presets of every job (corpus/, model/, train/, glue/: YAML files) and the one way a config is read.

A config is a dataclass, its schema: every key, its type and its default. A preset lists only what it
changes from those defaults; `key=value` overrides come last (dotted keys for nested sections, values read
as YAML). One coercion rule for every job: a value must have its field's type, except that an integer is
taken as a float, a list as a tuple, an exponent written without a dot (`1e-3`, which YAML 1.1 reads as
text) as a float, and a number or true/false as text where a string is wanted. Presets are found beside this
file, so a checkout, an editable install and a wheel read the same ones from any working directory.

Every field is declared with `setting(help, default)`: its one-line help lives beside it, and each job's
--help (`listing`) and --show-config (`show`, the help as YAML comments) are made from it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).resolve().parent
_EXPONENT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")
T = typing.TypeVar("T")


class ConfigError(ValueError):
    """A bad config file, key or value; the message names it."""


def setting(help: str, default=dataclasses.MISSING, *, default_factory=dataclasses.MISSING):
    """A config field and its one-line help (what --help and --show-config print beside it)."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"help": help})


class Setting(typing.NamedTuple):
    """One row of a config's listing: the dotted key, its help, its value (None for a section)."""

    key: str
    help: str
    value: object
    section: bool


def settings(config, prefix: str = "") -> list[Setting]:
    """Every setting of `config` (a config class: its defaults; or a config) in declaration order, a
    section's row before its own settings. A field declared without `setting(help, ...)` is a ConfigError."""
    values = config() if isinstance(config, type) else config
    rows = []
    for f in dataclasses.fields(values):
        value, key = getattr(values, f.name), f"{prefix}{f.name}"
        is_section = dataclasses.is_dataclass(value)
        rows.append(Setting(key, _help(type(values), f), None if is_section else value, is_section))
        if is_section:
            rows += settings(value, f"{key}.")
    return rows


def listing(schema: type, indent: int = 2) -> str:
    """The --help lines of config `schema`: each setting's dotted key, help and default (as YAML, the way
    key=value reads it); a section as `key.*` and its help."""
    rows = settings(schema)
    width = max(len(r.key) + 2 * r.section for r in rows)
    return "\n".join(f"{' ' * indent}{r.key + '.*' if r.section else r.key:<{width}}  {r.help}"
                     + ("" if r.section else f" (default: {_flow(r.value)})") for r in rows)


def presets(kind: str) -> list[str]:
    """The preset names of one job (`corpus`, `model`, `train`, `glue`)."""
    return sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))


def describe(kind: str, width: int = 13) -> str:
    """One line per preset of `kind`, its name and the first line of its leading comment (for --help)."""
    lines = []
    for name in presets(kind):
        text = (CONFIG_DIR / kind / f"{name}.yaml").read_text()
        first = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")), "")
        lines.append(f"  {name:<{width}} {first}")
    return "\n".join(lines)


def resolve(kind: str, name: str | Path) -> Path:
    """A preset's file (configs/<kind>/<name>.yaml), or `name` itself where it ends in .yaml or .yml."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        return path
    found = CONFIG_DIR / kind / f"{name}.yaml"
    if not found.is_file():
        raise ConfigError(f"{name!r}: no such {kind} config; presets: {', '.join(presets(kind))} "
                          f"(in {CONFIG_DIR / kind}), or a path to a .yaml file")
    return found


def read(kind: str, name: str | Path) -> tuple[Path, dict]:
    """The file of a preset or path, and the mapping it holds."""
    path = resolve(kind, name)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of {kind} settings, not {type(values).__name__}")
    return path, values


def parse_overrides(texts: Sequence[str]) -> dict[str, object]:
    """["dedup.bands=20", "lr=1e-3"] -> {"dedup.bands": 20, "lr": "1e-3"}; values are read as YAML, an
    empty one is ""."""
    out = {}
    for text in texts:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{text!r}: settings are written key=value (dotted keys for sections, e.g. "
                              "dedup.bands=20)")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"{key}={raw!r}: not a valid value ({e})") from e
    return out


def load(schema: type[T], kind: str, name: str | Path | None = None,
         overrides: Mapping[str, object] | Sequence[str] = ()) -> T:
    """`schema` from its defaults, the preset or YAML file `name` (None: none) and `overrides` (key=value
    texts, or a mapping of dotted keys to values) in that order. A top-level `name` setting left empty is
    the file's name."""
    path, values = read(kind, name) if name is not None else (None, {})
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    for dotted, value in overrides.items():
        *sections, key = dotted.split(".")
        node = values
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{dotted}: {section} is not a section")
        node[key] = value
    if path is not None and "name" in _names(schema) and values.get("name") in (None, ""):
        values["name"] = path.stem
    return build(schema, values, f"the {kind} config")


def build(schema: type[T], values: Mapping, where: str, prefix: str = "") -> T:
    """`schema(**values)`, each value coerced to its field's type, nested sections built in turn; any bad,
    unknown or out-of-range value is a ConfigError naming the dotted key."""
    hints = typing.get_type_hints(schema)
    names = _names(schema)
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"{dotted}: unknown key; {prefix.rstrip('.') or where} has {', '.join(names)}")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{dotted}: expected a mapping of {key} settings")
            kwargs[key] = build(hints[key], value, where, f"{dotted}.")
        else:
            kwargs[key] = coerce(dotted, value, hints[key])
    try:
        return schema(**kwargs)
    except ValueError as e:  # the schema's own range checks; their messages name the key
        raise ConfigError(str(e)) from None


def coerce(key: str, value, hint):
    """`value` as field type `hint` wants it (the rule in this module's docstring), or ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(key, value, arg)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if hint in (tuple, list) or origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}={value!r}: expected a list")
        kind = origin or hint
        if kind is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
            raise ConfigError(f"{key}={value!r}: expected a list of {len(args)}")
        item = args[0] if args else None
        return kind(coerce(f"{key}[{i}]", v, item) if item else v for i, v in enumerate(value))
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and not isinstance(value, bool):
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
            return float(value)
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, int | float):
            return str(value)
    wanted = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint not in wanted:
        raise ConfigError(f"{key}: unsupported field type {hint}")
    raise ConfigError(f"{key}={value!r}: expected {wanted[hint]}")


def show(cfg) -> str:
    """A config as YAML (what --show-config prints), each setting's help a comment at the end of its line;
    itself a valid config file for its job."""
    lines = [(f"{'  ' * r.key.count('.')}{r.key.rpartition('.')[2]}:" + ("" if r.section else f" {_flow(r.value)}"),
              r.help) for r in settings(cfg)]
    width = min(max(len(text) for text, _ in lines), 40)
    return "".join(f"{text:<{width}}  # {help}\n" for text, help in lines)


def _help(schema: type, f: dataclasses.Field) -> str:
    """The one-line help of field `f`, or ConfigError where it was declared without one."""
    text = f.metadata.get("help", "")
    if not text.strip() or "\n" in text:
        raise ConfigError(f"{schema.__name__}.{f.name}: declare it with configs.setting(help, default), "
                          "its help one line")
    return text


def _flow(value) -> str:
    """`value` as one line of YAML (tuples as lists; JSON, which YAML reads too, where YAML would take two)."""
    plain = json.loads(json.dumps(value))
    text = yaml.safe_dump(plain, default_flow_style=True, width=math.inf).removesuffix("\n...\n").rstrip("\n")
    return json.dumps(plain) if "\n" in text else text


def _names(schema) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)]
