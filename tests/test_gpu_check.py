"""benchmarks/gpu_check.py, the script a session runs when it is lent a GPU: its CPU dry run passes every
part (synthetic shards, the loss three ways, the micro-batch sweep, train.py with the batch ramp) with only
the GPU machine's packages importable; `make gpu-check` refuses in one line where no CUDA device is visible."""

import subprocess
import sys

import pytest
import torch
from conftest import ROOT

ONLY_GPU_PACKAGES = """
import importlib.abc, importlib.machinery, sys
class Absent(importlib.abc.Loader):
    def create_module(self, spec):
        raise ImportError(f"{spec.name} is blocked: not on the GPU machine")
    def exec_module(self, module):
        pass
class Block(importlib.abc.MetaPathFinder):  # a spec without origin: torch's probes see no files
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("apache_beam", "datasets", "datasketch", "fasttext", "matplotlib", "rich",
                                  "transformers", "accelerate", "sklearn", "scipy", "zstandard", "xxhash",
                                  "huggingface_hub"):
            return importlib.machinery.ModuleSpec(name, Absent())
sys.meta_path.insert(0, Block())
for name in ("matplotlib", "transformers", "apache_beam"):
    try:
        __import__(name)
        raise SystemExit(f"{name} was importable")
    except ImportError:
        pass
sys.argv = ["gpu_check.py", "--dry-run", "--device", "cpu"]
sys.path.insert(0, "benchmarks")
import gpu_check
sys.exit(gpu_check.main(sys.argv[1:]))
"""


def test_dry_run_passes_every_part_with_only_the_gpu_machines_packages():
    proc = subprocess.run([sys.executable, "-c", ONLY_GPU_PACKAGES], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for text in ("| fp32 |", "| bf16 |", "| bf16 + compile (eager) |", "bf16 losses within 2% of fp32: **yes**",
                 "| 2 |", "| 4 |", "## train.py with the batch ramp", "batch sizes seen 2 .. 16", "loader stall"):
        assert text in out, text


def test_make_gpu_check_refuses_in_one_line_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: make gpu-check would run the measurements")
    script = subprocess.run([sys.executable, "benchmarks/gpu_check.py"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert script.returncode == 2 and script.stdout == ""
    assert script.stderr.splitlines() == [script.stderr.strip()] and "no CUDA device is visible" in script.stderr
    made = subprocess.run(["make", "-s", "gpu-check", f"PYTHON={sys.executable}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert made.returncode != 0 and script.stderr.strip() in made.stderr
