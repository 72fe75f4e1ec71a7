"""The GPU machine has torch, pyarrow, tokenizers and transformers but not Beam, `datasets` or matplotlib:
the trainer, the model and the shard reader must import and train without them."""

import importlib
import os
import shutil
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


@pytest.mark.slow
def test_a_wheel_finds_its_presets_from_another_directory(tmp_path):
    """`pip install .` (not editable): the presets ship as package data and every job lists them from any cwd."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "train.py", "glue.py", "pipeline", "model", "trainer", "glueval",
                 "configs"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", src],
                   check=True, capture_output=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("cramkit-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", tmp_path / "site", wheel], check=True,
                   capture_output=True, cwd=tmp_path)
    code = """
import glueval.protocol, model.config, pipeline.config, trainer.config
assert model.config.CONFIG_DIR.parent.name == "site", model.config.CONFIG_DIR
for folder in (pipeline.config.PRESET_DIR, model.config.PRESET_DIR, trainer.config.PRESET_DIR,
               glueval.protocol.PRESET_DIR):
    print(folder.name, *sorted(p.stem for p in folder.glob("*.yaml")))
"""
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split("\n")[:4] == [" ".join([kind, *sorted(p.stem for p in (ROOT / "configs" / kind).glob(
        "*.yaml"))]) for kind in ("corpus", "model", "train", "glue")]
    listed = subprocess.run([sys.executable, "-m", "train", "--help"], cwd=tmp_path, env=env, capture_output=True,
                            text=True)
    assert listed.returncode == 0 and "crammed-bert" in listed.stdout.split("presets (--config")[1]
