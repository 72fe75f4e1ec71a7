"""One config mechanism for the four jobs: presets list only changes, overrides and coercion follow one rule,
errors share their wording, and --show-config prints a file that loads back to the same config."""

import dataclasses
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

import configs
from glueval.protocol import Protocol
from model.config import ModelConfig
from pipeline.config import CorpusConfig
from trainer.config import TrainConfig

SCHEMAS = {"corpus": CorpusConfig, "model": ModelConfig, "train": TrainConfig, "glue": Protocol}


def _flat(values: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in values.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


@pytest.mark.parametrize("kind", SCHEMAS)
def test_every_preset_lists_only_what_it_changes(kind):
    defaults = _flat(json_plain(SCHEMAS[kind]()))
    for name in configs.presets(kind):
        _, values = configs.read(kind, name)
        loaded = _flat(json_plain(configs.load(SCHEMAS[kind], kind, name)))
        for key in _flat(values):
            assert loaded[key] != defaults[key], f"configs/{kind}/{name}.yaml repeats the default {key}"


def json_plain(cfg) -> dict:
    return yaml.safe_load(configs.show(cfg))


@pytest.mark.parametrize("kind", SCHEMAS)
def test_show_config_output_loads_back_to_the_same_config(kind, tmp_path):
    for name in configs.presets(kind):
        cfg = configs.load(SCHEMAS[kind], kind, name)
        path = tmp_path / f"{name}.yaml"
        path.write_text(configs.show(cfg))
        assert configs.load(SCHEMAS[kind], kind, path) == cfg


@pytest.mark.parametrize("kind", SCHEMAS)
def test_unknown_keys_bad_values_and_names_read_the_same_in_every_job(kind):
    with pytest.raises(configs.ConfigError, match=f"^colour: unknown key; the {kind} config has "):
        configs.load(SCHEMAS[kind], kind, None, ["colour=red"])
    with pytest.raises(configs.ConfigError, match=f"^'nope': no such {kind} config; presets: "):
        configs.load(SCHEMAS[kind], kind, "nope")
    with pytest.raises(configs.ConfigError, match="^'colour': settings are written key=value"):
        configs.load(SCHEMAS[kind], kind, None, ["colour"])
    key = {"corpus": "seq_len", "model": "hidden_size", "train": "micro_batch", "glue": "epochs"}[kind]
    with pytest.raises(configs.ConfigError, match=f"^{key}='many': expected an integer$"):
        configs.load(SCHEMAS[kind], kind, None, [f"{key}=many"])


def test_the_coercion_rule():
    assert configs.coerce("x", 3, float) == 3.0 and isinstance(configs.coerce("x", 3, float), float)
    assert configs.coerce("x", "1e-3", float) == 1e-3  # YAML 1.1 reads an exponent without a dot as text
    assert configs.coerce("x", [1, 2], tuple[float, float]) == (1.0, 2.0)
    assert configs.coerce("x", (1, 2), list[int]) == [1, 2]
    assert configs.coerce("x", True, str) == "true" and configs.coerce("x", 30, str) == "30"
    assert configs.coerce("x", None, int | None) is None and configs.coerce("x", 5, int | None) == 5
    for value, hint, wanted in [("0.5", float, "a number"), (2.0, int, "an integer"), (True, int, "an integer"),
                                ("yes", bool, "true or false"), (1, bool, "true or false"),
                                (None, str, "a string")]:
        with pytest.raises(configs.ConfigError, match=f": expected {wanted}$"):
            configs.coerce("x", value, hint)
    with pytest.raises(configs.ConfigError, match=r"x=\[1\]: expected a list of 2"):
        configs.coerce("x", [1], tuple[float, float])


def test_overrides_nest_come_last_and_name_the_run():
    cfg = configs.load(CorpusConfig, "corpus", "desktop", ["dedup.bands=7", "dedup.num_perm=56"])
    assert (cfg.dedup.bands, cfg.tokenizer.vocab_size) == (7, 8192)
    assert configs.load(CorpusConfig, "corpus", "desktop", {"tokenizer.vocab_size": 512}).tokenizer.vocab_size == 512
    with pytest.raises(configs.ConfigError, match="order.name.x: name is not a section"):
        configs.load(CorpusConfig, "corpus", "desktop", ["order.name.x=1"])
    assert configs.load(TrainConfig, "train", "desktop").name == "desktop"  # a run is named after its file
    assert configs.load(TrainConfig, "train", "desktop", ["name=mine"]).name == "mine"
    assert configs.load(Protocol, "glue", "demo", ["lr=1e-4"]).lr == 1e-4


def test_defaults_are_the_papers_recipe():
    assert configs.load(ModelConfig, "model", "crammed-bert") == ModelConfig()
    assert dataclasses.replace(configs.load(TrainConfig, "train", "crammed-bert"), name="") == TrainConfig()
    assert configs.load(Protocol, "glue", "sane") == Protocol()


def test_one_definition_of_the_config_folder():
    grep = subprocess.run(["git", "grep", "--untracked", "-nE", r"CONFIG_DIR\s*=", "--", "*.py"], cwd=ROOT,
                          capture_output=True, text=True)
    if grep.returncode > 1:
        pytest.skip(f"git grep cannot search {ROOT}: {grep.stderr.strip()}")
    found = grep.stdout.splitlines()
    assert len(found) == 1 and found[0].startswith("configs/__init__.py:"), found


def test_every_command_shows_its_config():
    for argv, expected in [(["-m", "pipeline", "--config", "demo", "--show-config"], "docstrings_max_mb: 20.0"),
                           (["train.py", "--config", "tiny", "--show-config", "lr=1e-4"], "lr: 0.0001"),
                           (["glue.py", "--config", "bert-base", "--show-config"], "batch_size: 32")]:
        proc = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and expected in proc.stdout, proc.stderr[-2000:]


def test_a_name_that_yaml_reads_as_a_value_stays_the_name():
    for text, name in [("name=false", "false"), ("name=2024", "2024"), ("name=", "tiny")]:
        assert configs.load(TrainConfig, "train", "tiny", [text]).name == name
