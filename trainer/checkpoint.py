"""Resumable training checkpoints, written atomically: a folder is built under a temporary name and
renamed into place, so `ckpt-NNNNNNNN/` is either complete or absent.

A checkpoint holds model.safetensors (clean names, as model.io writes them), optimizer.safetensors (AdamW
moments and steps by parameter name, plus the torch RNG states) and state.json (step, budget spent, reader
position, config). No pickle is ever written or read. This is the training state --resume reads; a
finished model folder (config.json, tokenizer) is read by model.io, for GLUE and export alike.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from model.io import WEIGHTS, clean_state_dict, load_into, read_weights

PREFIX = "ckpt-"
TMP = ".tmp-"


class ResumeError(ValueError):
    """A checkpoint that cannot continue this run; the message says why and what to do."""


class DiskFull(RuntimeError):
    """The disk filled up while a checkpoint or the final model was written; the message is one line."""


def nbytes(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _out_of_space(err: Exception) -> bool:
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    code = re.search(r"os error (\d+)", str(err)) if isinstance(err, SafetensorError) else None
    return bool(code) and int(code[1]) in (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def disk_full_error(path: Path, needed: int):
    """Turn a full disk met inside the block (OSError ENOSPC or EDQUOT, or safetensors' error wrapping
    one) into DiskFull naming `path` and the `needed` bytes."""
    try:
        yield
    except (OSError, SafetensorError) as e:
        if not _out_of_space(e):
            raise
        free = shutil.disk_usage(path.parent).free
        raise DiskFull(f"no space left on the device writing {path}: it needs about {needed / 2**20:,.1f} MiB, "
                       f"{free / 2**20:,.1f} MiB are free; free some and continue with --resume") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _names(model: nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in model.named_parameters()}


def optimizer_tensors(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    names, out = _names(model), {}
    for param, state in optimizer.state.items():
        for key, value in state.items():
            out[f"opt.{names[id(param)]}.{key}"] = value.detach().cpu().contiguous()
    out["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng.cuda.{i}"] = s
    return out


def folders(step: int) -> tuple[str, ...]:
    """The folders that saving checkpoint `step` may make in the checkpoints folder (listed first in the
    run folder's record)."""
    name = f"{PREFIX}{step:08d}"
    return name, f"{TMP}{name}", f"{TMP}old-{name}"


def save(folder: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict,
         keep: int = 2) -> Path:
    """Write checkpoint `step` under folder and keep the newest `keep`; returns its path. On a full disk
    the temporary folder is removed and DiskFull raised."""
    final = folder / f"{PREFIX}{step:08d}"
    tmp = folder / f"{TMP}{final.name}"
    weights, moments = clean_state_dict(model), optimizer_tensors(model, optimizer)
    try:
        with disk_full_error(final, nbytes(weights) + nbytes(moments)):
            folder.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            save_file(weights, str(tmp / WEIGHTS))
            save_file(moments, str(tmp / "optimizer.safetensors"))
            (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=1) + "\n")
            for f in tmp.iterdir():
                with open(f, "rb") as handle:
                    os.fsync(handle.fileno())
            _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = folder / f"{TMP}old-{final.name}"
    if final.exists():  # the same step again (the run ended inside an accumulation): move it aside first
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(folder)
    shutil.rmtree(old, ignore_errors=True)
    for stale in complete(folder)[:-keep]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def complete(folder: Path) -> list[Path]:
    """Finished checkpoints under folder, oldest first (temporary folders are not among them)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
                  and (p / "state.json").is_file())


def latest(folder: Path) -> Path | None:
    """The newest finished checkpoint, removing leftovers of an interrupted write."""
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(TMP):
                shutil.rmtree(p, ignore_errors=True)
    found = complete(folder)
    return found[-1] if found else None


def read_state(path: Path) -> dict:
    try:
        return json.loads((path / "state.json").read_text())
    except (OSError, ValueError) as e:
        raise ResumeError(f"{path / 'state.json'}: unreadable ({e}); delete {path} to resume from the one "
                          "before it") from e


def load(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore model, optimizer and RNG states from checkpoint `path`; returns its state.json."""
    state = read_state(path)
    try:
        load_into(model, read_weights(path), with_head=True, source=path / WEIGHTS)  # as every model is read
        tensors = load_file(str(path / "optimizer.safetensors"))
    except (SafetensorError, OSError, ValueError) as e:  # CheckpointError is a ValueError
        raise ResumeError(f"{e}; delete {path} to resume from the one before it") from e
    names = _names(model)
    current = optimizer.state_dict()
    per_param: dict[int, dict] = {}
    for group_index, group in enumerate(optimizer.param_groups):
        for param, pid in zip(group["params"], current["param_groups"][group_index]["params"], strict=True):
            prefix = f"opt.{names[id(param)]}."
            entry = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if entry:
                per_param[pid] = entry
    optimizer.load_state_dict({"state": per_param, "param_groups": current["param_groups"]})
    torch.set_rng_state(tensors["rng.cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    return state
