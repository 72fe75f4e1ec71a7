"""The GPU machine has torch, pyarrow, tokenizers and transformers but not Beam, `datasets` or matplotlib:
the trainer, the model and the shard reader must import and train without them."""

import importlib
import os
import shutil
import subprocess
import sys

import numpy as np
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
import train, model.bert, model.io, pipeline.tokens.shards, trainer.data, trainer.checkpoint
sys.argv = ["train.py", "--help"]
try:
    train.main()
except SystemExit as e:
    assert e.code == 0, e.code
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Budget-limited" in proc.stdout


def test_another_trainer_reads_shards_in_batches_without_torch(tmp_path):
    """pipeline.tokens.shards and trainer.batches need numpy and pyarrow alone: the resumable order serves any
    trainer."""
    from test_shards import make_set

    out, rows = make_set(tmp_path)
    code = BLOCK.replace('"rich")', '"rich", "torch", "tqdm")') + f"""
import numpy as np
from pipeline.tokens.shards import ShardSet
from trainer.batches import Batches
it = Batches(ShardSet({str(out)!r}), 40)
first, second = next(it), next(it)
again = Batches(ShardSet({str(out)!r}), 20)
again.load_state_dict(it.state_dict())
np.save({str(tmp_path / "got.npy")!r}, np.concatenate([first, second, next(again)]))
assert "torch" not in sys.modules
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "got.npy"), rows[:100])


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
def test_a_wheel_shows_every_jobs_config_from_another_directory(tmp_path):
    """`pip install .` (not editable): the presets ship as package data, and each console script's
    --show-config prints a preset's values from any working directory."""
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
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True, capture_output=True,
                   cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site)}

    def run(*argv):
        proc = subprocess.run([sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    code = "import configs; print(configs.CONFIG_DIR); print(*(' '.join(configs.presets(k)) for k in " \
           "('corpus', 'model', 'train', 'glue')), sep='\\n')"
    folder, *listed = run("-c", code).splitlines()
    assert folder == str(site / "configs")
    assert listed == [" ".join(sorted(p.stem for p in (ROOT / "configs" / kind).glob("*.yaml")))
                      for kind in ("corpus", "model", "train", "glue")]
    corpus = run(site / "bin" / "cramkit-corpus", "--config", "desktop", "--show-config", "seq_len=64")
    assert "seq_len: 64" in corpus and "vocab_size: 8192" in corpus and "compression_cutoff: 0.3" in corpus
    cram = run(site / "bin" / "cramkit-cram", "--config", "desktop", "--show-config")
    assert "name: desktop" in cram and "shuffle: always" in cram and "#   vocab_size: null" in cram  # the shards'
    glue = run(site / "bin" / "cramkit-glue", "--config", "demo", "--show-config", "epochs=2")
    assert "max_train_examples: 2000" in glue and "epochs: 2" in glue and "lr: 0.0005" in glue


LAYERS = ("configs", "model", "pipeline", "trainer", "glueval", "train", "glue")  # each imports only earlier ones


def test_no_import_circle_and_the_packages_are_layers():
    """Every import (also inside functions) between cramkit's modules: no module imports itself back through
    others, and a package imports only the packages before it in LAYERS."""
    import ast
    import graphlib

    files = [ROOT / "train.py", ROOT / "glue.py", *(p for d in LAYERS[:5] for p in (ROOT / d).rglob("*.py"))]
    names = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p for p in files}

    def ours(name: str) -> str | None:  # the module `name` is, or lives in
        while name and name not in names:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in names.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported |= {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {m for m in map(ours, imported) if m and m != name}
    graphlib.TopologicalSorter(graph).prepare()  # CycleError names the circle
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    upward = sorted(f"{a} -> {b}" for a, bs in graph.items() for b in bs
                    if rank[b.split(".")[0]] > rank[a.split(".")[0]])
    assert not upward, upward
    assert graph["train"] >= {"pipeline.tokens.shards", "trainer.config"} and "model.io" in graph["glueval.run"]


def test_the_pipeline_rooms_list_their_modules():
    """pipeline/ keeps its command, config and records at the top; every other module lives in a room
    (a subpackage) whose __init__ names each of its modules in its docstring and imports nothing."""
    import ast
    import re

    top = ROOT / "pipeline"
    assert sorted(p.stem for p in top.glob("*.py")) == ["__init__", "__main__", "config", "document"]
    rooms = sorted(p.parent for p in top.glob("*/__init__.py"))
    assert [r.name for r in rooms] == ["cleaning", "duplicates", "files", "graph", "reading", "tokens"]
    for room in rooms:
        init = ast.parse((room / "__init__.py").read_text())
        assert len(init.body) == 1 and ast.get_docstring(init), f"{room.name}/__init__.py: a docstring alone"
        named = set(re.findall(r"\b(\w+)\.py\b", ast.get_docstring(init)))
        modules = {p.stem for p in room.glob("*.py")} - {"__init__"}
        assert modules <= named, f"{room.name}/__init__.py does not name {sorted(modules - named)}"
        assert not [p for p in room.iterdir() if p.is_dir() and p.name != "__pycache__"]
    told = ast.get_docstring(ast.parse((top / "__init__.py").read_text()))
    assert all(f"{room.name}/" in told for room in rooms), "pipeline/__init__.py names every room"
