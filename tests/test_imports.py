"""The GPU machine has torch, pyarrow, tokenizers and transformers but not Beam, `datasets` or matplotlib:
the trainer, the model and the shard reader must import and train without them."""

import importlib
import subprocess
import sys

import pytest
from conftest import ROOT
from test_train_loop import SMALL, make_shards, tokens

BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("apache_beam", "datasets", "datasketch", "fasttext", "matplotlib", "rich"):
            raise ImportError(f"{name} is blocked: not on the GPU machine")
sys.meta_path.insert(0, Block())
"""


def test_trainer_model_and_reader_import_without_beam_or_datasets():
    code = BLOCK + """
import train, model.bert, model.io, pipeline.shards, trainer.data, trainer.checkpoint
sys.argv = ["train.py", "--help"]
try:
    train.main()
except SystemExit as e:
    assert e.code == 0, e.code
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Budget-limited" in proc.stdout


def test_the_block_works():
    proc = subprocess.run([sys.executable, "-c", BLOCK + "import apache_beam"], capture_output=True, text=True)
    assert proc.returncode != 0 and "blocked" in proc.stderr


def test_train_runs_without_beam_datasets_or_matplotlib(tmp_path):
    shards = make_shards(tmp_path / "corpus")
    args = ["--shards", str(shards), "--budget", tokens(8), "--name", "lean", f"out={tmp_path}", *SMALL]
    code = BLOCK + f"import train; sys.exit(train.main({args!r}))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no plot (matplotlib missing)" in proc.stderr
    assert (tmp_path / "lean" / "final" / "model.safetensors").is_file()


def test_console_scripts_are_the_repository_commands():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"cramkit-corpus": "pipeline.__main__:main", "cramkit-cram": "train:main",
                       "cramkit-glue": "glue:main"}
    for target in scripts.values():
        module, func = target.split(":")
        with pytest.raises(SystemExit) as exit_:
            getattr(importlib.import_module(module), func)(["--help"])
        assert exit_.value.code == 0
