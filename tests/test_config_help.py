"""Every setting explained once: each config field carries a one-line help, and the three commands' --help
list every field with it and its default; --show-config prints the help as YAML comments and loads back."""

import dataclasses
import re

import pytest
import yaml

import configs
import glue
import train
from glueval.protocol import Protocol
from model.config import ModelConfig
from pipeline import __main__ as corpus_cli
from pipeline.config import CorpusConfig
from trainer.config import TrainConfig

ROW = re.compile(r"^  (\S+)\s+(.+?)(?: \(default: (.*)\))?$")
MAX_HELP = 160


def fields(schema, prefix=""):
    """(dotted key, field, default) of every field of `schema`, sections and their fields, walked here
    rather than through configs so the check does not rest on the code it checks."""
    for f in dataclasses.fields(schema):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        yield f"{prefix}{f.name}", f, default
        if dataclasses.is_dataclass(default):
            yield from fields(type(default), f"{prefix}{f.name}.")


def plain(value):
    return [plain(v) for v in value] if isinstance(value, list | tuple) else value


def help_text(argv_main, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        argv_main(["--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


COMMANDS = {"pipeline": (corpus_cli.parse, (CorpusConfig,)),
            "train.py": (train.main, (TrainConfig, ModelConfig)),
            "glue.py": (glue.parse_args, (Protocol,))}


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_every_setting_with_its_help_and_default(command, capsys):
    entry, schemas = COMMANDS[command]
    rows = {}
    for line in help_text(entry, capsys).splitlines():
        if (m := ROW.match(line)) and (m[1] not in rows):
            rows[m[1]] = m[2], m[3]
    for schema in schemas:
        for key, f, default in fields(schema):
            help_ = f.metadata.get("help", "")
            assert help_.strip() and "\n" not in help_ and len(help_) <= MAX_HELP, f"{command}: {key}: {help_!r}"
            section = dataclasses.is_dataclass(default)
            shown = rows.get(f"{key}.*" if section else key)
            assert shown is not None, f"{command} --help does not list {key}"
            assert shown[0] == help_, f"{command} --help: {key}"
            if not section:  # the default, written as key=value reads it
                assert yaml.safe_load(shown[1]) == plain(default), f"{command} --help: {key}: {shown[1]!r}"


def test_a_field_without_help_is_refused():
    @dataclasses.dataclass
    class Section:
        told: int = configs.setting("explained", 1)
        untold: int = 2

    @dataclasses.dataclass
    class Schema:
        section: Section = configs.setting("a section", default_factory=Section)

    @dataclasses.dataclass
    class TwoLines:
        x: int = configs.setting("first line\nsecond line", 1)

    for call in (configs.settings, configs.listing, lambda s: configs.show(s())):
        with pytest.raises(configs.ConfigError, match=r"Section\.untold: declare it with configs.setting"):
            call(Schema)
        with pytest.raises(configs.ConfigError, match=r"TwoLines\.x: .*one line"):
            call(TwoLines)


def test_listing_rows_are_the_schema_in_order():
    rows = configs.settings(CorpusConfig)
    assert [r.key for r in rows] == [key for key, _, _ in fields(CorpusConfig)]
    by_key = {r.key: r for r in rows}
    assert by_key["dedup"].section and not by_key["dedup.bands"].section
    assert by_key["dedup.bands"].value == 14 and by_key["filters.languages"].value == ("en",)


@pytest.mark.parametrize("schema, kind, overrides", [
    (CorpusConfig, "corpus", ["dedup.bands=7", "dedup.num_perm=56", "webclean.blocked=a #b: c.txt",
                              "quality.threshold=-2.5", "decontam.paths=[x.txt, 'y.jsonl#q']", "filters.languages=[en, de]"]),
    (TrainConfig, "train", ["name='run: #1'", "betas=[0.8, 0.9]", "lr=1e-4"]),
    (ModelConfig, "model", ["hidden_size=64", "num_heads=2", "pool=mean"]),
    (Protocol, "glue", ["grad_clip=1.0", "seeds=[3]", "max_train_examples=10", 'name="two\\nlines é"']),
])
def test_show_config_comments_every_setting_and_loads_back(schema, kind, overrides, tmp_path):
    cfg = configs.load(schema, kind, None, overrides)
    text = configs.show(cfg)
    lines = text.splitlines()
    assert len(lines) == len(list(fields(schema)))
    for line, (key, f, _) in zip(lines, fields(schema), strict=True):
        assert line.lstrip().startswith(f"{key.rpartition('.')[2]}:") and line.endswith(f"  # {f.metadata['help']}")
    path = tmp_path / "shown.yaml"
    path.write_text(text)
    assert configs.load(schema, kind, path) == cfg


@pytest.mark.parametrize("main, argv, schema, kind", [
    (corpus_cli.main, ["--config", "demo", "dedup.bands=7", "dedup.num_perm=56"], CorpusConfig, "corpus"),
    (train.main, ["--config", "desktop", "lr=2e-4"], TrainConfig, "train"),
    (glue.main, ["--config", "demo", "epochs=2"], Protocol, "glue"),
])
def test_each_commands_show_config_loads_back(main, argv, schema, kind, capsys, tmp_path):
    assert main([*argv, "--show-config"]) == 0
    path = tmp_path / "shown.yaml"
    path.write_text(capsys.readouterr().out)
    name, overrides = argv[1], argv[2:]
    assert configs.load(schema, kind, path) == configs.load(schema, kind, name, overrides)
