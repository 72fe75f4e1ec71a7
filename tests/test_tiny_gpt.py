"""examples/tiny_gpt.py: a causal LM on clm shards the pipeline builds, with no cramkit import; its loss
falls in a few steps, it reports a held-out loss and a unigram baseline and prints decoded samples."""

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import paragraphs

from pipeline.__main__ import main as pipeline

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tiny_gpt.py"


@pytest.fixture(scope="module")
def clm_shards(tmp_path_factory, shared_text):
    root = tmp_path_factory.mktemp("gpt")
    texts = paragraphs(shared_text, 250, min_words=20)
    (root / "in").mkdir()
    (root / "in" / "paras.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    assert pipeline(["--input", str(root / "in"), "--output", str(root / "clm"), "objective=clm", "seq_len=128",
                     "tokenizer.kind=bpe", "tokenizer.vocab_size=1000", "normalize.preset=cased",
                     "tokenizer.compression_cutoff=0", "pack.segments=true", "dedup.near=false"]) == 0
    return root / "clm"


def run(shards: Path, *args: str) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--shards", str(shards), "--threads", "1", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout


def test_imports_nothing_of_cramkit():
    tree = ast.parse(EXAMPLE.read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules <= {"argparse", "json", "time", "pathlib", "numpy", "pyarrow", "torch", "tokenizers"}


@pytest.mark.parametrize("mask", [[], ["--document-mask"]])
def test_loss_falls_and_samples_are_decoded(clm_shards, mask):
    result, out = run(clm_shards, "--steps", "40", "--samples", "2", "--eval-rows", "16", *mask)
    assert result["steps"] == 40 and result["tokens"] == 40 * 8 * 127
    assert result["last_train_loss"] < result["first_train_loss"] - 0.5
    assert result["heldout_loss"] < result["heldout_loss_init"] - 0.5
    assert 0 < result["unigram_loss"] < result["heldout_loss_init"]  # init is about ln(vocab) = 6.9
    samples = [line for line in out.splitlines() if line.startswith("sample: ")]
    assert len(samples) == 2 and all(len(s) > 20 for s in samples)


def test_document_mask_hides_other_documents(clm_shards):
    spec = importlib.util.spec_from_file_location("tiny_gpt", EXAMPLE)
    tiny_gpt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny_gpt)
    model = tiny_gpt.TinyGPT(50, 16, 32, 2, 4).eval()
    ids = torch.randint(0, 50, (1, 16))
    other = ids.clone()
    other[0, :6] = (other[0, :6] + 1) % 50  # another first document
    segments = (torch.arange(16) >= 6).long()[None]
    with torch.no_grad():
        assert torch.allclose(model(ids, segments)[0, 6:], model(other, segments)[0, 6:], atol=1e-5)
        assert not torch.allclose(model(ids)[0, 6:], model(other)[0, 6:], atol=1e-3)  # causal only: it sees them
        assert torch.allclose(model(ids)[0, :6], model(ids, segments)[0, :6], atol=1e-5)  # first document: causal


def test_refuses_mlm_shards_and_a_missing_segment_column(tmp_path, clm_shards):
    manifest = json.loads((clm_shards / "manifest.json").read_text())
    for name, change, args in (("mlm", {"objective": "mlm"}, []),
                               ("noseg", {"columns": ["input_ids"]}, ["--document-mask"])):
        folder = shutil.copytree(clm_shards, tmp_path / name)
        (folder / "manifest.json").write_text(json.dumps({**manifest, **change}))
        proc = subprocess.run([sys.executable, str(EXAMPLE), "--shards", str(folder), *args], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 1, proc.stderr
        assert {"mlm": "objective 'mlm'; build shards with objective=clm",
                "noseg": "--document-mask needs segment_ids; rebuild with pack.segments=true"}[name] in proc.stderr
