"""pipeline/files/storage.py on local disk and on a real S3-compatible server (moto, on loopback): round
trips, random access (Arrow IPC too), input matching (globs, folders, hidden and special files), clear
errors."""

import gzip
import io
import os
import socket
import threading

import pyarrow as pa
import pytest

from pipeline.files import storage
from pipeline.files.storage import StorageError

DATA = bytes(range(256)) * 12_000  # 3 MB


def check_round_trips(base: str):
    storage.write_bytes(storage.join(base, "deep", "er", "a.bin"), DATA)
    storage.write_text(storage.join(base, "b.txt"), "héllo\n")
    with storage.create(storage.join(base, "c.bin")) as f:
        f.write(b"x" * 10)
        f.write(b"y" * 5)
    assert storage.read_bytes(storage.join(base, "deep", "er", "a.bin")) == DATA
    assert storage.read_text(storage.join(base, "b.txt")) == "héllo\n"
    assert storage.size(storage.join(base, "c.bin")) == 15
    assert storage.exists(storage.join(base, "c.bin")) and not storage.exists(storage.join(base, "nope"))
    assert storage.exists(storage.join(base, "deep")) == storage.is_local(base), "a prefix is not a file"
    assert storage.list_files(base) == [(storage.join(base, "b.txt"), 7), (storage.join(base, "c.bin"), 15),
                                        (storage.join(base, "deep", "er", "a.bin"), len(DATA))]
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(storage.join(base, "nope"))
    with pytest.raises(FileNotFoundError):
        storage.size(storage.join(base, "nope"))


def check_random_access(base: str):
    path = storage.join(base, "r.bin")
    storage.write_bytes(path, DATA)
    with storage.open_read(path) as f:
        assert f.seekable()
        f.seek(-10, io.SEEK_END)
        assert f.read(10) == DATA[-10:] and f.tell() == len(DATA)
        f.seek(1_234_567)
        assert f.read(5) == DATA[1_234_567:1_234_572]
        f.seek(100, io.SEEK_CUR)
        assert f.read(3) == DATA[1_234_672:1_234_675]
        f.seek(0)
        assert f.read() == DATA


def check_arrow_ipc(base: str):
    """Write an Arrow IPC file through create(), read one record batch at random through open_read()."""
    table = pa.table({"id": pa.array(range(50_000), pa.int64()), "text": [f"row {i}" * 3 for i in range(50_000)]})
    path = storage.join(base, "rows.arrow")
    sink = pa.PythonFile(storage.create(path), mode="w")
    with pa.ipc.new_file(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=5_000):
            writer.write_batch(batch)
    sink.close()
    with storage.open_read(path) as f:
        reader = pa.ipc.open_file(pa.PythonFile(f, mode="r"))
        assert reader.num_record_batches == 10
        batch = reader.get_batch(7)
    assert batch.column(0)[0].as_py() == 35_000 and batch.column(1)[4_999].as_py() == "row 39999" * 3


def check_no_decompression(base: str):
    raw = gzip.compress(b"compressed text\n")
    storage.write_bytes(storage.join(base, "z.txt.gz"), raw)
    assert storage.read_bytes(storage.join(base, "z.txt.gz")) == raw


# ---- local ----

def test_local_round_trips_random_access_and_arrow(tmp_path):
    base = str(tmp_path / "out")
    check_round_trips(base)
    check_random_access(base)
    check_arrow_ipc(base)
    check_no_decompression(base)


def test_relative_local_paths_come_back_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage.write_text("data/a.jsonl", "{}\n")
    assert sizes(storage.match_inputs("data")) == ([(str(tmp_path / "data" / "a.jsonl"), 3)], [])
    assert storage.list_files("data") == [(str(tmp_path / "data" / "a.jsonl"), 3)]


@pytest.fixture
def local_tree(tmp_path):
    """data/ with files at two depths, hidden files and folders, a FIFO, a socket and a link to a device."""
    root = tmp_path / "data"
    for rel in ("a.jsonl", "b.txt", "sub/c.jsonl", "sub/deep/d.jsonl", ".hidden.jsonl", ".git/HEAD",
                "sub/.cache/e.jsonl"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    os.mkfifo(root / "pipe.jsonl")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sub" / "sock"))
    (root / "null.jsonl").symlink_to("/dev/null")
    yield root
    sock.close()


def sizes(found):
    """match_inputs' (files, skipped) with each file as (path, size), its modification time left out."""
    files, skipped = found
    assert all(isinstance(mtime, float | int) for _, _, mtime in files)
    return [(path, size) for path, size, _ in files], skipped


def match_quickly(spec, follow_symlinks=False):
    """match_inputs in a thread (opening a FIFO would block it forever), modification times left out."""
    out = {}
    thread = threading.Thread(target=lambda: out.update(result=sizes(storage.match_inputs(spec, follow_symlinks))),
                              daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), f"match_inputs({spec!r}) blocked (opened a FIFO?)"
    return out["result"]


def test_local_folder_skips_hidden_and_special_files(local_tree):
    files, skipped = match_quickly(str(local_tree))
    r = str(local_tree)
    assert files == [(f"{r}/a.jsonl", 7), (f"{r}/b.txt", 5), (f"{r}/sub/c.jsonl", 11), (f"{r}/sub/deep/d.jsonl", 16)]
    assert skipped == [(f"{r}/.git/HEAD", "hidden"), (f"{r}/.hidden.jsonl", "hidden"),
                       (f"{r}/null.jsonl", "symlink_outside"), (f"{r}/pipe.jsonl", "fifo"),
                       (f"{r}/sub/.cache/e.jsonl", "hidden"), (f"{r}/sub/sock", "socket")]
    assert match_quickly(r + "/") == (files, skipped)
    followed = match_quickly(r, follow_symlinks=True)
    assert followed == (files, [(p, "device" if p.endswith("null.jsonl") else why) for p, why in skipped])


def test_local_globs(local_tree):
    r = str(local_tree)
    names = lambda spec: [p.removeprefix(r + "/") for p, _ in match_quickly(spec)[0]]  # noqa: E731
    assert names(f"{r}/*.jsonl") == ["a.jsonl"], "* stays within one folder"
    assert names(f"{r}/**/*.jsonl") == ["a.jsonl", "sub/c.jsonl", "sub/deep/d.jsonl"], "**/ also matches no folder"
    assert names(f"{r}/**.jsonl") == ["a.jsonl", "sub/c.jsonl", "sub/deep/d.jsonl"]
    assert names(f"{r}/sub/**/d.jsonl") == ["sub/deep/d.jsonl"]
    assert names(f"{r}/s?b/c.jsonl") == ["sub/c.jsonl"]
    assert match_quickly(f"{r}/**/*.jsonl")[1] == [(f"{r}/.hidden.jsonl", "hidden"), (f"{r}/null.jsonl", "symlink_outside"),
                                                    (f"{r}/pipe.jsonl", "fifo"), (f"{r}/sub/.cache/e.jsonl", "hidden")]


def test_local_named_files(local_tree):
    r = str(local_tree)
    assert match_quickly(f"{r}/.git/HEAD") == ([(f"{r}/.git/HEAD", 9)], []), "a named hidden file is read"
    assert match_quickly(f"{r}/.git") == ([(f"{r}/.git/HEAD", 9)], []), "below a named hidden folder too"
    assert match_quickly(f"{r}/pipe.jsonl") == ([], [(f"{r}/pipe.jsonl", "fifo")])
    for spec in (f"{r}/missing", f"{r}/*.parquet", f"{r}/missing/**"):
        with pytest.raises(StorageError, match="no such file or folder, or the pattern matches no file"):
            storage.match_inputs(spec)


def test_local_delete_and_rename_tree(tmp_path):
    src, dst = tmp_path / "staging", tmp_path / "final"
    storage.write_text(str(src / "a" / "x.txt"), "x")
    storage.rename_tree(str(src), str(dst))
    assert not src.exists() and (dst / "a" / "x.txt").read_text() == "x"
    storage.delete_tree(str(dst / "a" / "x.txt"))
    assert (dst / "a").is_dir() and not (dst / "a" / "x.txt").exists()
    storage.delete_tree(str(dst))
    storage.delete_tree(str(dst))  # nothing there: no error
    assert not dst.exists()
    with pytest.raises(StorageError, match="only on local disk"):
        storage.rename_tree(str(src), "s3://bucket/final")


# ---- errors: schemes, extras, URL-like local paths ----

def test_unknown_scheme_and_url_like_paths_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError, match=r"foo://x/y: unknown storage scheme foo://"):
        storage.check("foo://x/y")
    with pytest.raises(StorageError, match=r"file:///data: unknown storage scheme file://"):
        storage.match_inputs("file:///data")
    for path in ("s3:/bucket/out", "s3:bucket/out", "gs:/b/x"):
        with pytest.raises(StorageError, match="looks like a URL without '//'"):
            storage.write_text(path + "/manifest.json", "{}")
        with pytest.raises(StorageError, match="looks like a URL"):
            storage.create(path + "/x.bin")
    with pytest.raises(StorageError, match="needs a bucket"):
        storage.check("s3:///x")
    assert os.listdir(tmp_path) == [], "nothing may be written to a local folder named after a URL"


@pytest.mark.parametrize("scheme", sorted(storage.SCHEMES))
def test_missing_extra_names_the_install(scheme, monkeypatch):
    module, extra, beam_extra = storage.SCHEMES[scheme]
    monkeypatch.setattr(storage, "_installed", lambda name: name != module)
    with pytest.raises(StorageError) as e:
        storage.check(f"{scheme}://bucket/x")
    assert str(e.value) == (f"{scheme}://bucket/x: {scheme}:// needs {module}: pip install 'cramkit[{extra}]' "
                            f"(or 'apache-beam[{beam_extra}]')")


def test_schemes_this_install_lacks_are_refused_before_beam_is_asked():
    """The real check, without monkeypatching: every scheme either works here or says what to install."""
    for scheme, (module, extra, _) in storage.SCHEMES.items():
        if storage._installed(module):
            storage.check(f"{scheme}://bucket/x")
        else:
            with pytest.raises(StorageError, match=rf"pip install 'cramkit\[{extra}\]'"):
                storage.match_inputs(f"{scheme}://bucket/x/*.jsonl")


# ---- S3 (moto server on 127.0.0.1) ----

def test_s3_round_trips_random_access_and_arrow(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = f"{s3_bucket}/out"
    check_round_trips(base)
    check_random_access(base)
    check_arrow_ipc(base)
    check_no_decompression(base)
    with pytest.raises(StorageError, match="empty object"):
        storage.write_bytes(f"{base}/empty", b"")
    with pytest.raises(StorageError, match="only on local disk"):
        storage.rename_tree(base, f"{s3_bucket}/final")
    assert os.listdir(tmp_path) == [], "nothing written to a local folder named after the URL"


def test_s3_matching_and_delete(s3_server, s3_bucket):
    bucket = s3_bucket.removeprefix("s3://")
    client = s3_server.client()
    for key in ("in/a.jsonl", "in/b.txt", "in/sub/c.jsonl", "in/sub/deep/d.jsonl", "in/.hidden.jsonl",
                "in/.git/HEAD", "in/sub/.cache/e.jsonl", "in/folder/", "inx/other.jsonl"):
        client.put_object(Bucket=bucket, Key=key, Body=b"" if key.endswith("/") else key.encode())
    r = f"{s3_bucket}/in"
    listed = storage.match_inputs(r)[0]
    assert [storage.stat(path) for path, _, _ in listed] == [(size, mtime) for _, size, mtime in listed], \
        "a file's stat is what the listing says, so the reader sees it unchanged"
    files, skipped = sizes(storage.match_inputs(r))
    assert files == [(f"{r}/a.jsonl", 10), (f"{r}/b.txt", 8), (f"{r}/sub/c.jsonl", 14),
                     (f"{r}/sub/deep/d.jsonl", 19)], "a prefix is a folder: recursive, not inx/, no folder marker"
    assert skipped == [(f"{r}/.git/HEAD", "hidden"), (f"{r}/.hidden.jsonl", "hidden"), (f"{r}/sub/.cache/e.jsonl", "hidden")]
    assert sizes(storage.match_inputs(r + "/")) == (files, skipped)
    names = lambda spec: [p.removeprefix(r + "/") for p, _ in sizes(storage.match_inputs(spec))[0]]  # noqa: E731
    assert names(f"{r}/*.jsonl") == ["a.jsonl"], "* does not cross '/' on S3 either"
    assert names(f"{r}/**/*.jsonl") == ["a.jsonl", "sub/c.jsonl", "sub/deep/d.jsonl"]
    assert sizes(storage.match_inputs(f"{r}/.git/HEAD")) == ([(f"{r}/.git/HEAD", 12)], [])
    with pytest.raises(StorageError, match="no such file or folder, or the pattern matches no file"):
        storage.match_inputs(f"{s3_bucket}/nothing")
    storage.delete_tree(f"{r}/sub")
    assert [p for p, _ in storage.list_files(s3_bucket)] == [
        f"{r}/.git/HEAD", f"{r}/.hidden.jsonl", f"{r}/a.jsonl", f"{r}/b.txt", f"{s3_bucket}/inx/other.jsonl"]
    storage.delete_tree(f"{r}/a.jsonl")
    storage.delete_tree(r)
    storage.delete_tree(f"{s3_bucket}/nothing")  # nothing there: no error
    assert storage.list_files(s3_bucket) == [(f"{s3_bucket}/inx/other.jsonl", 15)]
