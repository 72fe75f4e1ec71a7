"""Resumable training checkpoints, written atomically: a folder is built under a temporary name and
renamed into place, so `ckpt-NNNNNNNN/` is either complete or absent.

A checkpoint holds model.safetensors (clean names, as model.io writes them), optimizer.safetensors (AdamW
moments and steps by parameter name, plus the torch RNG states) and state.json (step, budget spent, reader
position, config, and the sha256 of the two tensor files and of state.json's own other fields). No pickle
is ever written or read. This is the training state --resume reads (`resumable`: the newest checkpoint whose
sha256s hold; a damaged one is moved aside as damaged-ckpt-NNNNNNNN/, never loaded); a finished model folder
(config.json, tokenizer) is read by model.io, for GLUE and export alike.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from model.io import WEIGHTS, clean_state_dict, load_into, read_weights, sha256
from pipeline.files import record
from pipeline.tokens import shards

PREFIX = "ckpt-"
TMP = ".tmp-"
DAMAGED = "damaged-"
OPTIMIZER = "optimizer.safetensors"
STATE = "state.json"


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
            save_file(moments, str(tmp / OPTIMIZER))
            state = json.loads(json.dumps({**state, "step": step}))  # as --resume will read it back
            digests = {name: sha256(tmp / name) for name in (WEIGHTS, OPTIMIZER)} | {STATE: _digest(state)}
            (tmp / STATE).write_text(json.dumps({**state, "sha256": digests}, indent=1) + "\n")
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


def _digest(state: dict) -> str:
    """The sha256 of state.json's fields but "sha256", as canonical JSON (the shard manifest's config hash)."""
    return shards.config_hash({k: v for k, v in state.items() if k != "sha256"})


def complete(folder: Path) -> list[Path]:
    """Finished checkpoints under folder, oldest first (temporary and damaged folders are not among them)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
                  and (p / STATE).is_file())


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
        state = json.loads((path / STATE).read_text())
    except (OSError, ValueError) as e:
        raise ResumeError(f"{path / STATE}: unreadable ({e})") from e
    if not isinstance(state, dict):
        raise ResumeError(f"{path / STATE}: a JSON {type(state).__name__}, not an object")
    return state


def verify(path: Path) -> dict:
    """The state.json of checkpoint `path` once the sha256 of its tensor files and of its own fields match
    those it records; ResumeError saying what differs. A checkpoint of a cramkit that recorded no sha256
    is read as it is (its tensors are still checked as every model's are, by `load`)."""
    state = read_state(path)
    digests = state.get("sha256")
    if digests is None:
        return state
    if not isinstance(digests, dict):
        raise ResumeError(f"{path / STATE}: field 'sha256' is not an object")
    if digests.get(STATE) != _digest(state):
        raise ResumeError(f"{path / STATE}: its fields differ from the sha256 it records (edited or corrupt)")
    for name in (WEIGHTS, OPTIMIZER):
        if not (path / name).is_file():
            raise ResumeError(f"{path / name}: missing")
        if sha256(path / name) != digests.get(name):
            raise ResumeError(f"{path / name}: sha256 differs from the one recorded in {STATE} (modified or corrupt)")
    return state


def resumable(folder: Path) -> tuple[Path | None, dict | None]:
    """The newest checkpoint under folder that `verify` finds intact, and its state ((None, None) when there
    is no checkpoint). Each damaged one newer than it is moved aside to damaged-ckpt-NNNNNNNN/ (kept to look
    at, never loaded or rotated) with a line on stderr naming it and why, and the one used instead.
    ResumeError when every checkpoint is damaged."""
    latest(folder)  # removes leftovers of an interrupted write
    damaged = []
    found = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX)) if folder.is_dir() else []
    for path in reversed(found):  # state.json missing is damage too
        try:
            state = verify(path)
        except ResumeError as err:
            aside = folder / f"{DAMAGED}{path.name}"
            shutil.rmtree(aside, ignore_errors=True)
            with record.writing(folder.parent, "run", f"{folder.name}/{aside.name}"):  # still cramkit's
                os.replace(path, aside)
            damaged.append(aside.name)
            print(f"checkpoint {path.name} is damaged, not used: {err}; moved to {aside}", file=sys.stderr)
            continue
        if "sha256" not in state:
            print(f"checkpoint {path.name} records no sha256 (written by an earlier cramkit): not verified",
                  file=sys.stderr)
        if damaged:
            print(f"resuming from {path.name}, the newest intact checkpoint", file=sys.stderr)
        return path, state
    if damaged:
        raise ResumeError(f"{folder}: no intact checkpoint to resume (the damaged ones are kept as "
                          f"{', '.join(damaged)}); start over with --overwrite")
    return None, None


def load(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore model, optimizer and RNG states from checkpoint `path`; returns its state.json."""
    state = read_state(path)
    try:
        load_into(model, read_weights(path), with_head=True, source=path / WEIGHTS)  # as every model is read
        tensors = load_file(str(path / OPTIMIZER))
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
