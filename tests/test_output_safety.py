"""`--output` never deletes what cramkit did not write: a file there is refused; `--overwrite` removes only
the files an output's record (.cramkit) lists and refuses anything else; an output inside an input is
refused, and an old output moved into an input folder is skipped and counted; a second run on a live
output refuses, a dead run's lock is taken over; a symlink as --output writes to the folder it names.
Every refusal is one line."""

import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import ROOT

from pipeline.__main__ import main
from pipeline.files import lock
from pipeline.graph import output

DOC = ("We the people of this small test file hold that a document must have words enough to pass the "
       "length filter, and so this one goes on for a while longer than that.\n\n")


@pytest.fixture
def inp(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text(DOC * 3)
    return folder


def cli(capsys, *args) -> tuple[int, str]:
    code = main([*map(str, args)])
    return code, capsys.readouterr().err


def refused(code: int, err: str) -> str:
    """The one error line of a refusal (exit 2, no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def tree(folder) -> dict:
    """{relative path: bytes, or None for a folder} of everything below `folder`."""
    return {str(p.relative_to(folder)): p.readlink() if p.is_symlink() else None if p.is_dir() else p.read_bytes()
            for p in sorted(folder.rglob("*"))}


def test_a_file_at_output_is_never_replaced(tmp_path, inp, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    before = tree(tmp_path)
    for target, spec in ((notes, inp), (inp / "a.txt", inp / "a.txt"), (notes, notes)):
        for extra in ([], ["--overwrite"]):
            line = refused(*cli(capsys, "--input", spec, "--output", target, "--until", "read", *extra))
            assert str(target) in line
            assert tree(tmp_path) == before  # nothing written, nothing deleted


def test_overwrite_removes_only_the_files_the_record_lists(tmp_path, inp, capsys):
    out = tmp_path / "out"
    assert cli(capsys, "--input", inp, "--output", out, "--until", "read")[0] == 0
    record = json.loads((out / ".cramkit").read_text())
    assert sorted(record["files"]) == sorted(p.name for p in out.iterdir() if p.name != ".cramkit")
    for planted in ("shard-backup/my.arrow", "docs-2024-of-june/notes.txt", "shard-000000.arrow.d/",
                    "empty-folder/", "stats.json.bak"):
        path = out / planted
        path.parent.mkdir(exist_ok=True)
        path.mkdir() if planted.endswith("/") else path.write_text("mine")
        before = tree(tmp_path)
        line = refused(*cli(capsys, "--input", inp, "--output", out, "--until", "read", "--overwrite"))
        assert planted.split("/")[0] in line and "did not write" in line
        assert tree(tmp_path) == before
        path.rmdir() if planted.endswith("/") else path.unlink()
        if path.parent != out:
            path.parent.rmdir()
    assert cli(capsys, "--input", inp, "--output", out, "--until", "read", "--overwrite")[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]  # no .out.old, .out.tmp, .out.lock


def test_files_named_like_cramkits_without_its_record_are_kept(tmp_path, inp, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("stats.json", "manifest.json", "docs-00000-of-00001.jsonl.zst", "shard-000000.arrow"):
        (out / name).write_text("mine")
    before = tree(tmp_path)
    line = refused(*cli(capsys, "--input", inp, "--output", out, "--until", "read", "--overwrite"))
    assert ".cramkit" in line and tree(tmp_path) == before
    victim = tmp_path / "victim.txt"  # a record naming a path outside the folder is no record of cramkit's
    victim.write_text("mine")
    (out / ".cramkit").write_text(json.dumps({"written_by": "cramkit", "files": ["../victim.txt", "stats.json"]}))
    before = tree(tmp_path)
    refused(*cli(capsys, "--input", inp, "--output", out, "--until", "read", "--overwrite"))
    assert tree(tmp_path) == before


def test_a_file_added_during_the_run_is_kept(tmp_path, inp, capsys):
    out = tmp_path / "out"
    assert cli(capsys, "--input", inp, "--output", out, "--until", "read")[0] == 0
    folders = output.prepare(str(out), overwrite=True)
    (out / "added-meanwhile.txt").write_text("mine")
    (tmp_path / ".out.tmp" / "out").mkdir()
    (tmp_path / ".out.tmp" / "out" / "stats.json").write_text("{}")
    (tmp_path / ".out.tmp" / "out" / "docs-00000-of-00001.jsonl.zst").write_text("x")
    output.publish(folders)
    assert "added-meanwhile.txt" in capsys.readouterr().err
    assert (tmp_path / ".out.old" / "added-meanwhile.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / ".out.old").iterdir()) == ["added-meanwhile.txt"]
    assert sorted(p.name for p in out.iterdir()) == [".cramkit", "docs-00000-of-00001.jsonl.zst", "stats.json"]
    line = refused(*cli(capsys, "--input", inp, "--output", out, "--until", "read", "--overwrite"))
    assert ".out.old" in line and (tmp_path / ".out.old" / "added-meanwhile.txt").is_file()


def test_an_output_inside_an_input_is_refused(tmp_path, inp, capsys):
    for spec, target in ((inp, inp / "out"), (inp, inp), (f"{inp}/**/*.txt", inp / "sub" / "out"),
                         (f"{inp}/*/*.zst", inp / "out"),
                         (tmp_path, inp / "out")):
        before = tree(tmp_path)
        line = refused(*cli(capsys, "--input", spec, "--output", target, "--until", "read"))
        assert "inside" in line and tree(tmp_path) == before
    # a glob that does not reach the output's files leaves it be
    assert cli(capsys, "--input", f"{inp}/*.txt", "--output", inp / "out", "--until", "read")[0] == 0


def test_an_old_output_in_an_input_folder_is_skipped_and_counted(tmp_path, inp, capsys):
    first = tmp_path / "first"
    assert cli(capsys, "--input", inp, "--output", first, "--until", "clean")[0] == 0
    docs = json.loads((first / "stats.json").read_text())["documents"]
    first.rename(inp / "old-run")
    n_files = len(list((inp / "old-run").iterdir()))
    assert cli(capsys, "--input", inp, "--output", tmp_path / "second", "--until", "clean")[0] == 0
    stats = json.loads((tmp_path / "second" / "stats.json").read_text())
    assert stats["documents"]["read"] == docs["read"]  # a.txt only
    assert stats["files"]["skipped"] == {"cramkit_output": n_files}
    # named, an output is read: its documents file is an input like any other
    assert cli(capsys, "--input", inp / "old-run" / "docs-00000-of-00001.jsonl.zst", "--output",
               tmp_path / "third", "--until", "read")[0] == 0
    assert json.loads((tmp_path / "third" / "stats.json").read_text())["documents"]["read"] == docs["kept"]


def test_a_live_runs_output_is_refused_and_a_dead_runs_lock_taken_over(tmp_path, inp, capsys):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pipeline.graph import output\n"
         "output.prepare(sys.argv[1], False)\nprint('ready', flush=True)\ntime.sleep(300)", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        staging = tree(tmp_path / ".out.tmp")
        for extra in ([], ["--overwrite"]):
            line = refused(*cli(capsys, "--input", inp, "--output", out, "--until", "read", *extra))
            assert "another run" in line and f"pid {holder.pid}" in line
            assert tree(tmp_path / ".out.tmp") == staging  # the live run's staging folder is untouched
    finally:
        holder.kill()
        holder.wait()
    code, err = cli(capsys, "--input", inp, "--output", out, "--until", "read")
    assert code == 0 and f"pid {holder.pid}" in err and "no longer running" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    (tmp_path / ".out.lock").write_text("my notes")  # a file of that name cramkit did not write is kept
    line = refused(*cli(capsys, "--input", inp, "--output", out, "--until", "read", "--overwrite"))
    assert ".out.lock" in line and (tmp_path / ".out.lock").read_text() == "my notes"


def test_a_symlink_output_writes_the_folder_it_names(tmp_path, inp, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    link = tmp_path / "out"
    link.symlink_to(disk / "corpus", target_is_directory=True)
    before = tree(tmp_path)
    line = refused(*cli(capsys, "--input", inp, "--output", link, "--until", "read"))  # a link to nothing
    assert str(link) in line and tree(tmp_path) == before
    (disk / "corpus").mkdir()
    for extra in ([], ["--overwrite"]):
        assert cli(capsys, "--input", inp, "--output", link, "--until", "read", *extra)[0] == 0
        assert link.is_symlink() and link.readlink() == disk / "corpus"
        assert (disk / "corpus" / "stats.json").is_file()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["disk", "in", "out"]
        assert sorted(p.name for p in disk.iterdir()) == ["corpus"]
    notes = disk / "notes.txt"
    notes.write_text("mine")
    link.unlink()
    link.symlink_to(notes)  # a link to a file: refused like the file
    refused(*cli(capsys, "--input", inp, "--output", link, "--until", "read", "--overwrite"))
    assert notes.read_text() == "mine"


def test_on_an_object_store_overwrite_removes_only_what_the_record_lists(tmp_path, inp, capsys, s3_server,
                                                                         s3_bucket):
    from pipeline.files import storage

    out, opts = f"{s3_bucket}/out", s3_server.options
    assert cli(capsys, "--input", inp, "--output", out, "--until", "read", *opts)[0] == 0
    record = json.loads(storage.read_text(f"{out}/.cramkit"))
    names = sorted(p.rsplit("/", 1)[1] for p, _ in storage.list_files(out))
    assert names == sorted([".cramkit", *record["files"]]) and "stats.json" in names
    assert not storage.list_files(f"{s3_bucket}/.out.tmp") and not storage.exists(f"{s3_bucket}/.out.lock")
    storage.write_text(f"{out}/shard-backup/my.arrow", "mine")
    line = refused(*cli(capsys, "--input", inp, "--output", out, "--until", "read", "--overwrite", *opts))
    assert "shard-backup/my.arrow" in line and storage.read_text(f"{out}/shard-backup/my.arrow") == "mine"
    storage.delete_file(f"{out}/shard-backup/my.arrow")
    assert cli(capsys, "--input", inp, "--output", out, "--until", "clean", "--overwrite", *opts)[0] == 0
    record = json.loads(storage.read_text(f"{out}/.cramkit"))
    assert sorted(p.rsplit("/", 1)[1] for p, _ in storage.list_files(out)) == sorted([".cramkit", *record["files"]])
    assert any(n.startswith("docs-") for n in record["files"])
    # a lock object of a live run refuses; one of a dead process on this host is taken over
    for pid, code in ((os.getpid(), 2), (dead_pid(), 0)):
        storage.write_text(f"{s3_bucket}/.out.lock", lock.SIGNATURE + json.dumps(
            {"pid": pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00Z"}))
        got, err = cli(capsys, "--input", inp, "--output", out, "--until", "read", "--overwrite", *opts)
        assert got == code and f"pid {pid}" in err
        assert ("another run" in refused(got, err)) if code else "no longer running" in err
    assert not storage.exists(f"{s3_bucket}/.out.lock")
    storage.write_text(f"{s3_bucket}/file", "mine")  # an object at --output
    refused(*cli(capsys, "--input", inp, "--output", f"{s3_bucket}/file", "--until", "read", *opts))
    assert storage.read_text(f"{s3_bucket}/file") == "mine"
