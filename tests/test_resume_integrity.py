"""train.py --resume on checkpoints that were damaged on disk, and on the same shard folder spelled another
way; train.py on manifests that are JSON but not a shard set's. A damaged checkpoint is never loaded: the
newest intact one is, and the run says so."""

import json
import os
import shutil
from pathlib import Path

import pytest
from test_train_hardening import copy_set, edit_manifest, error_lines, small_shards  # noqa: F401 (a fixture)
from test_train_loop import SMALL, tokens

import train
from pipeline.files import record
from trainer import checkpoint


@pytest.fixture(scope="module")
def finished(small_shards, tmp_path_factory):  # noqa: F811
    """A run with a checkpoint after each of its optimizer steps, all kept, its final/ removed (as if killed
    after the last checkpoint)."""
    out = tmp_path_factory.mktemp("runs")
    args = [*SMALL, "--shards", str(small_shards), "--budget", tokens(12), "checkpoint_every=0s",
            "keep_checkpoints=100", f"out={out}", "name=r"]
    assert train.main(args) == 0
    shutil.rmtree(out / "r" / "final")
    return out, args


def fresh_copy(finished, tmp_path):
    out, args = finished
    shutil.copytree(out / "r", tmp_path / "r")
    args = [a if not a.startswith("out=") else f"out={tmp_path}" for a in args]
    return tmp_path / "r" / "checkpoints", args


def loaded(monkeypatch) -> list[Path]:
    """The checkpoints whose tensors the run loads, in order."""
    seen, load = [], checkpoint.load
    monkeypatch.setattr(checkpoint, "load", lambda path, *a: seen.append(path) or load(path, *a))
    return seen


def overwrite(path: Path, offset_from_end: int, data: bytes) -> None:
    """Bytes overwritten in place: the file keeps its size (and its safetensors header stays valid)."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size - offset_from_end)
        f.write(data)
    assert path.stat().st_size == size


def damage(ckpt: Path, how: str) -> None:
    if how == "weights":
        overwrite(ckpt / "model.safetensors", 1000, b"\x7f" * 8)
    elif how == "optimizer":
        overwrite(ckpt / "optimizer.safetensors", 3000, b"\x00" * 16)
    elif how == "state step":  # still valid JSON, one digit changed
        text = (ckpt / "state.json").read_text()
        (ckpt / "state.json").write_text(text.replace('"micro_index": ', '"micro_index": 1', 1))
    elif how == "state bytes":
        overwrite(ckpt / "state.json", 40, b"#" * 10)
    elif how == "missing optimizer":
        (ckpt / "optimizer.safetensors").unlink()
    elif how == "missing state":
        (ckpt / "state.json").unlink()


@pytest.mark.parametrize("how", ["weights", "optimizer", "state step", "state bytes", "missing optimizer",
                                 "missing state"])
def test_a_damaged_checkpoint_is_never_loaded_the_newest_intact_one_is(finished, tmp_path, capsys, monkeypatch,
                                                                        how):
    folder, args = fresh_copy(finished, tmp_path)
    names = [p.name for p in checkpoint.complete(folder)]
    assert len(names) >= 3
    damage(folder / names[-1], how)
    damage(folder / names[-2], "weights")
    capsys.readouterr()
    seen = loaded(monkeypatch)
    assert train.main([*args, "--resume"]) == 0
    err = capsys.readouterr().err
    assert seen == [folder / names[-3]]
    for name in names[-2:]:  # kept aside; the resumed run wrote its steps again
        assert f"checkpoint {name} is damaged, not used" in err and (folder / f"damaged-{name}").is_dir()
        assert checkpoint.verify(folder / name)["step"] == int(name.split("-")[1])
    assert f"resuming from {names[-3]}, the newest intact checkpoint" in err
    assert f"resumed from {folder / names[-3]}" in err and "Traceback" not in err
    assert (tmp_path / "r" / "final" / "model.safetensors").is_file()
    assert record.owned(tmp_path / "r", "run folder", "run")  # what was moved aside is still listed as cramkit's


def test_every_checkpoint_damaged_is_one_line_and_nothing_trained(finished, tmp_path, capsys, monkeypatch):
    folder, args = fresh_copy(finished, tmp_path)
    for path in checkpoint.complete(folder):
        damage(path, "weights")
    capsys.readouterr()
    seen = loaded(monkeypatch)
    assert train.main([*args, "--resume"]) == 1
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "no intact checkpoint to resume" in err[0] and "--overwrite" in err[0], err
    assert seen == [] and not (tmp_path / "r" / "final").exists()
    assert not checkpoint.complete(folder)


def test_checkpoints_record_the_sha256_of_what_they_hold(finished, tmp_path, capsys):
    folder, _ = fresh_copy(finished, tmp_path)
    newest = checkpoint.complete(folder)[-1]
    state = json.loads((newest / "state.json").read_text())
    assert set(state["sha256"]) == {"model.safetensors", "optimizer.safetensors", "state.json"}
    assert checkpoint.verify(newest) == state
    del state["sha256"]  # as an earlier cramkit wrote it: read, and said to be unverified
    (newest / "state.json").write_text(json.dumps(state))
    assert checkpoint.resumable(folder) == (newest, state)
    assert f"checkpoint {newest.name} records no sha256" in capsys.readouterr().err


def test_resume_with_the_shard_folder_spelled_another_way(small_shards, tmp_path, capsys, monkeypatch):  # noqa: F811
    shards = copy_set(small_shards, tmp_path)
    (tmp_path / "link").symlink_to(shards)
    common = [*SMALL, "--budget", tokens(6), "checkpoint_every=0s", f"out={tmp_path}", "name=s"]
    assert train.main([*common, "--shards", str(shards), "budget=" + tokens(3)]) == 0
    shutil.rmtree(tmp_path / "s" / "final")
    monkeypatch.chdir(tmp_path)
    for spelling in ["corpus", "./corpus/", f"../{tmp_path.name}/corpus", "link"]:
        capsys.readouterr()
        assert train.main([*common, "--shards", spelling, "--resume"]) == 0, spelling
        err = capsys.readouterr().err
        assert "written by another configuration" not in err and "resumed from" in err, err
        shutil.rmtree(tmp_path / "s" / "final")
        assert os.path.isdir(tmp_path / "s" / "checkpoints")
    other = copy_set(small_shards, tmp_path / "other")  # another folder, though the same bytes: refused
    assert train.main([*common, "--shards", str(other), "--resume"]) == 1
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "written by another configuration (shards:" in err[0]


@pytest.mark.parametrize("manifest,message", [
    ([{"format": "cramkit-shards"}], "a JSON list, not the object of a cramkit shard manifest"),
    ("manifest", "a JSON str, not the object"), (7, "a JSON int, not the object"),
    (None, "lists no shards (an empty shard set)")])
def test_a_manifest_that_is_not_a_shard_sets_is_one_line(small_shards, tmp_path, capsys, manifest,  # noqa: F811
                                                         message):
    shards = copy_set(small_shards, tmp_path)
    if manifest is None:
        edit_manifest(shards, lambda m: m.update(shards=[], rows=0))
    else:
        (shards / "manifest.json").write_text(json.dumps(manifest))
    assert train.main([*SMALL, "--shards", str(shards), "--budget", tokens(2), f"out={tmp_path}"]) == 1
    captured = capsys.readouterr()
    err = error_lines(captured.err)
    assert len(err) == 1 and message in err[0] and str(shards / "manifest.json") in err[0], captured.err
    assert "Traceback" not in captured.err and "rows sum to" not in err[0]
