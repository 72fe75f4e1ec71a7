"""train.py and glue.py never delete or overwrite what cramkit did not write. A run folder and a GLUE output
hold cramkit's record (.cramkit) of the files written there; `train.py --overwrite` deletes only those and
refuses a folder holding anything else; a folder without the record, or a file, at the run folder's path or
at `glue.py --out` is refused; a second run in a live run folder is refused. Every refusal is one line."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT
from test_glue_run import sst2_checkpoint, sst2_dir  # noqa: F401 -- fixtures
from test_train_loop import SMALL, make_shards, tokens

import glue
import train
from pipeline.files import lock, record


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("shards") / "corpus")


def tree(folder) -> dict:
    """{relative path: bytes, link target, or None for a folder} of everything below `folder`."""
    return {str(p.relative_to(folder)): p.readlink() if p.is_symlink() else None if p.is_dir() else p.read_bytes()
            for p in sorted(folder.rglob("*"))}


def refused(code: int, err: str, status: int = 1) -> str:
    """The one error line of a refusal (no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == status and len(lines) == 1 and "error: " in lines[0], err
    return lines[0]


def cram(shards, out, *extra, name="r") -> list[str]:
    return [*SMALL, "--shards", str(shards), "--budget", tokens(2), f"out={out}", f"name={name}", *extra]


def files_below(folder) -> set:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != ".cramkit"}


def test_overwrite_deletes_only_what_the_run_folders_record_lists(shards, tmp_path, capsys):
    run = tmp_path / "r"
    assert train.main(cram(shards, tmp_path)) == 0
    capsys.readouterr()
    rec = record.owned(run, "run folder", "run")  # everything there is listed, and nothing else
    assert rec.units == () and set(rec.files) == files_below(run)
    assert {"config.yaml", "metrics.jsonl", "final/model.safetensors", "final/config.json"} <= set(rec.files)
    assert any(f.startswith("checkpoints/ckpt-") and f.endswith("/state.json") for f in rec.files)
    ckpt = next((run / "checkpoints").iterdir()).name
    (tmp_path / "elsewhere.txt").write_text("mine")
    for planted, shown in (("final/notes.txt", "final/notes.txt"), (f"checkpoints/{ckpt}/backup.pt", "backup.pt"),
                           ("checkpoints/mine/", "checkpoints/mine"), ("empty/", "empty"),
                           ("tensorboard/events.out", "tensorboard"), ("train.png.bak", "train.png.bak"),
                           ("link", "link")):
        path = run / planted
        path.parent.mkdir(exist_ok=True)
        if planted == "link":
            path.symlink_to(tmp_path / "elsewhere.txt")
        else:
            path.mkdir() if planted.endswith("/") else path.write_text("mine")
        before = tree(tmp_path)
        line = refused(train.main(cram(shards, tmp_path, "--overwrite")), capsys.readouterr().err)
        assert shown in line and "did not write" in line, line
        assert tree(tmp_path) == before  # nothing deleted, nothing written
        assert train.main(cram(shards, tmp_path, "--resume")) == 0  # resuming is no deletion: still works
        assert "the run is finished" in capsys.readouterr().err and tree(tmp_path) == before
        path.rmdir() if planted.endswith("/") else path.unlink()
        if path.parent != run and not any(path.parent.iterdir()):
            path.parent.rmdir()
    assert train.main(cram(shards, tmp_path, "--overwrite")) == 0
    rec = record.owned(run, "run folder", "run")
    assert set(rec.files) == files_below(run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.txt", "r"]  # the lock is gone


def test_a_folder_cramkit_did_not_write_is_never_used_as_a_run_folder(shards, tmp_path, capsys, monkeypatch):
    user = tmp_path / "runs" / "r"
    for name, text in (("final/notes.txt", "mine"), ("checkpoints/old.pt", "mine"), ("config.yaml", "mine: 1")):
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_text(text)
    (tmp_path / "runs" / "file").write_text("mine")
    (tmp_path / "runs" / "to-file").symlink_to(tmp_path / "runs" / "file")
    (tmp_path / "runs" / "glue").mkdir()  # a cramkit folder of another kind
    (tmp_path / "runs" / "glue" / ".cramkit").write_text(record.Record("glue", ("results.json",)).text())
    (tmp_path / "runs" / "glue" / "results.json").write_text("{}")
    monkeypatch.chdir(user)
    before = tree(tmp_path)
    for out, name, why in ((tmp_path / "runs", "r", "did not write"), (".", ".", "did not write"),
                           (tmp_path / "runs", "file", "is a file"), (tmp_path / "runs", "to-file", "link to a file"),
                           (tmp_path / "runs", "glue", "not a training run folder")):
        for extra in ([], ["--overwrite"], ["--resume"]):
            line = refused(train.main(cram(shards, out, *extra, name=name)), capsys.readouterr().err)
            assert why in line, line
            assert tree(tmp_path) == before


def test_a_second_run_in_a_live_run_folder_is_refused(shards, tmp_path, capsys):
    run, path = tmp_path / "r", tmp_path / ".r.lock"
    holder = subprocess.Popen([sys.executable, "-c", f"from pipeline.files import lock; lock.take({str(run)!r}, "
                               f"{str(path)!r}, 'run folder'); print('held', flush=True); input()"],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        line = refused(train.main(cram(shards, tmp_path)), capsys.readouterr().err)
        assert f"pid {holder.pid}" in line and str(path) in line and not run.exists()
    finally:
        holder.communicate("\n")
    assert path.is_file()  # a dead run's lock: taken over, and said so
    assert train.main(cram(shards, tmp_path)) == 0
    assert "took over the lock" in capsys.readouterr().err and not path.exists()


def test_the_record_lists_a_unit_while_it_is_written(tmp_path):
    """A run killed while it writes a checkpoint or the final folder leaves only listed files."""
    folder = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt), record.writing(folder, "run", "final", "checkpoints/.tmp-ckpt-1"):
        (folder / "final").mkdir(parents=True)
        (folder / "final" / "a.bin").write_text("1")
        assert record.owned(folder, "run folder", "run").units == ("checkpoints/.tmp-ckpt-1", "final")
        raise KeyboardInterrupt
    rec = record.owned(folder, "run folder", "run")
    assert rec.files == ("final/a.bin",) and rec.units == ()
    (folder / "final" / "b.bin").write_text("not cramkit's")
    with pytest.raises(record.FolderError, match="final/b.bin"):
        record.owned(folder, "run folder", "run")
    (folder / "final" / "b.bin").unlink()
    with pytest.raises(record.FolderError, match="not a corpus output"):  # a corpus --overwrite leaves it be
        record.owned(folder, "--output", "corpus")
    assert record.remove(folder, rec) == [] and not folder.exists()
    for bad in (["../x"], ["/etc/passwd"], ["a//b"], ["a/./b"], [".cramkit"], "a"):
        text = json.dumps({"written_by": "cramkit", "kind": "run", "files": bad})
        assert record.parse(text) is None, bad


GLUE_ARGS = ["--tasks", "sst2", "--init", "random", "--seeds", "0", "--threads", "1", "epochs=1",
             "max_train_examples=16", "max_eval_examples=16"]


def test_glue_refuses_an_out_folder_it_did_not_write(sst2_dir, sst2_checkpoint, tmp_path, capsys):  # noqa: F811
    base = [str(sst2_checkpoint), "--glue-dir", str(sst2_dir), *GLUE_ARGS]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.json").write_text('{"my": "results"}')
    (mine / "notes.txt").write_text("mine")
    (tmp_path / "file.txt").write_text("mine")
    (tmp_path / "run").mkdir()  # a training run folder is no GLUE output
    (tmp_path / "run" / ".cramkit").write_text(record.Record("run", ("config.yaml",)).text())
    (tmp_path / "run" / "config.yaml").write_text("train: {}")
    before = tree(tmp_path)
    for out, why in ((mine, "did not write"), (tmp_path / "file.txt", "is a file"),
                     (tmp_path / "run", "not a GLUE output")):
        line = refused(glue.main([*base, "--out", str(out)]), capsys.readouterr().err, status=2)
        assert str(out) in line and why in line, line
        assert tree(tmp_path) == before

    out = tmp_path / "out"
    assert glue.main([*base, "--out", str(out)]) == 0
    rec = record.owned(out, "--out", "glue")
    assert set(rec.files) == {"results.json", "predictions.jsonl", "results.md", "results.png"}
    assert set(os.listdir(out)) == {".cramkit", *rec.files}
    (out / "notes.txt").write_text("mine")  # a GLUE output is resumed, and a user's file in it stays
    assert glue.main([*base, "--seeds", "0,1", "--out", str(out)]) == 0
    assert "1 of 2 runs already finished, kept" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    held = lock.take(str(out), str(tmp_path / ".out.lock"), "--out")
    try:
        line = refused(glue.main([*base, "--out", str(out)]), capsys.readouterr().err, status=2)
        assert "another run" in line
    finally:
        held.release()
