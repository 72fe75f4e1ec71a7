"""glue.py on model folders that lie or carry code: a config.json claiming sizes its weights do not have,
pickled weights only, Python files that are not cramkit's own. Each is one line before anything is built,
loaded or run."""

import json
import shutil
import sys

import pytest
import torch

import glue
from glueval import hf_backend
from model.config import ModelConfig
from model.heads import MaskedLM
from model.io import CODE_FILES, save_pretrained
from pipeline.tokens.tokenize import train_tokenizer

WORDS = "the cat sat on a mat while dogs ran past an old red barn near one green hill".split()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A crammed tiny-2 model folder as train.py writes it (weights, config.json, tokenizer, code files), and
    a GLUE folder with a few SST-2 rows."""
    tmp = tmp_path_factory.mktemp("trust")
    train_tokenizer([" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))], 200).save(str(tmp / "tok.json"))
    torch.manual_seed(0)
    ckpt = save_pretrained(MaskedLM(ModelConfig.preset("tiny-2", vocab_size=200)), tmp / "ckpt",
                           tokenizer_file=tmp / "tok.json")
    (tmp / "glue" / "SST-2").mkdir(parents=True)
    for split in ("train", "dev"):
        rows = [f"{' '.join(WORDS[i:i + 5])}\t{i % 2}" for i in range(12)]
        (tmp / "glue" / "SST-2" / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return tmp, ckpt


def copy(ckpt, tmp_path):
    return shutil.copytree(ckpt, tmp_path / "ckpt")


def glue_main(ckpt, tmp, tmp_path, *extra) -> list:
    return [str(ckpt), "--glue-dir", str(tmp / "glue"), "--tasks", "sst2", "--seeds", "0", "--threads", "1",
            "--out", str(tmp_path / "out"), "epochs=1", *extra]


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("glue.py: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("field,value", [("num_layers", 10**9), ("hidden_size", 10**9), ("vocab_size", 10**12),
                                         ("intermediate_size", 10**9), ("max_seq_len", 10**9), ("head_dim", 10**9),
                                         ("max_seq_len", 10**6), ("head_dim", 10**6),
                                         ("num_layers", 3), ("vocab_size", 199), ("type_vocab_size", 2),
                                         ("num_layers", -5), ("hidden_size", 0), ("vocab_size", "big"),
                                         ("num_layers", 1e9)])
@pytest.mark.parametrize("init", ["pretrained", "random"])
def test_a_config_claiming_other_sizes_than_the_weights_is_one_line(folder, tmp_path, capsys, field, value, init):
    tmp, ckpt = folder
    ckpt = copy(ckpt, tmp_path)
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, field: value}))
    assert glue.main(glue_main(ckpt, tmp, tmp_path, "--init", init)) == 2
    line = one_error(capsys)
    assert field in line and str(ckpt / "config.json") in line, line
    assert not (tmp_path / "out").exists()


def test_pickled_weights_alone_are_refused_in_one_line_naming_safetensors(folder, tmp_path, capsys):
    tmp, ckpt = folder
    ckpt = copy(ckpt, tmp_path)
    (ckpt / "model.safetensors").rename(ckpt / "pytorch_model.bin")
    assert glue.main(glue_main(ckpt, tmp, tmp_path)) == 2
    line = one_error(capsys)
    assert "model.safetensors is missing" in line and "pytorch_model.bin" in line and "pickle" in line, line
    assert "safetensors" in line.split("missing", 1)[1]


def plant(ckpt, name: str, text: str) -> None:
    """A Python file in the folder that leaves a mark when it is imported."""
    (ckpt / name).write_text((ckpt / name).read_text() + text if (ckpt / name).is_file() else text)


MARK = "\nimport pathlib; pathlib.Path(__file__).resolve().parents[0].joinpath('RAN').touch()\n"


@pytest.mark.parametrize("case", ["edited modeling file", "extra module in auto_map", "module from the hub",
                                  "tokenizer auto_map", "stray python file"])
def test_backend_hf_runs_no_code_of_the_folder_without_consent(folder, tmp_path, capsys, monkeypatch, case):
    pytest.importorskip("transformers")
    tmp, ckpt = folder
    ckpt = copy(ckpt, tmp_path)
    config = json.loads((ckpt / "config.json").read_text())
    if case == "edited modeling file":
        plant(ckpt, "modeling_crammed.py", MARK)
    elif case == "extra module in auto_map":
        plant(ckpt, "evil.py", MARK)
        config["auto_map"]["AutoModelForSequenceClassification"] = "evil.Model"
    elif case == "module from the hub":
        config["auto_map"]["AutoConfig"] = "someone/repo--configuration_crammed.CrammedConfig"
    elif case == "tokenizer auto_map":
        plant(ckpt, "tokenization_x.py", MARK)
        settings = json.loads((ckpt / "tokenizer_config.json").read_text())
        (ckpt / "tokenizer_config.json").write_text(json.dumps({**settings, "auto_map": {
            "AutoTokenizer": [None, "tokenization_x.Fast"]}}))
    else:
        plant(ckpt, "helpers.py", MARK)
    (ckpt / "config.json").write_text(json.dumps(config))
    imported = set(sys.modules)
    assert glue.main(glue_main(ckpt, tmp, tmp_path, "--backend", "hf")) == 2
    line = one_error(capsys)
    assert "--trust-remote-code" in line and "not cramkit's own" in line and str(ckpt) in line, line
    assert not (ckpt / "RAN").exists() and not (tmp_path / "out").exists()
    assert not [m for m in set(sys.modules) - imported if m.startswith("transformers_modules")]


def test_backend_hf_runs_cramkits_own_code_and_foreign_code_only_with_consent(folder, tmp_path):
    pytest.importorskip("transformers")
    _, ckpt = folder
    assert hf_backend.code_consent(ckpt, trust=False) is True  # byte for byte the shipped files
    ckpt = copy(ckpt, tmp_path)
    assert sorted(p.name for p in ckpt.glob("*.py")) == sorted(CODE_FILES)
    plant(ckpt, "bert.py", "\n# one more line\n")
    with pytest.raises(hf_backend.UntrustedCode, match="bert.py"):
        hf_backend.code_consent(ckpt, trust=False)
    assert hf_backend.code_consent(ckpt, trust=True) is True
    for name in CODE_FILES:  # no code at all: transformers' own classes only
        (ckpt / name).unlink()
    config = json.loads((ckpt / "config.json").read_text())
    del config["auto_map"]
    (ckpt / "config.json").write_text(json.dumps(config))
    assert hf_backend.code_consent(ckpt, trust=False) is False
