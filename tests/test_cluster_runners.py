"""The setup the pipeline's cluster tests stand on, proved with a tiny Beam pipeline: PortableRunner
through a separate job service to an external worker pool whose workers have a private /tmp, reading
and writing only through FileSystems on a local S3-compatible server."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import apache_beam as beam
import pytest
import servers
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.files import storage


def probe(source: str, launcher_file: str, dest: str) -> str:
    """Runs on a worker: read `source`, look for the launcher's file, leave one in this /tmp, write
    what it saw to `dest`."""
    own = os.path.join(tempfile.gettempdir(), f"worker-{uuid.uuid4().hex}")
    with open(own, "w") as f:
        f.write("worker only")
    seen = {"text": storage.read_text(source).upper(), "sees_launcher_file": os.path.exists(launcher_file),
            "tmp": sorted(os.listdir(tempfile.gettempdir())), "own_file": own, "pid": os.getpid(),
            "mount_ns": os.readlink("/proc/self/ns/mnt"), "storage_module": storage.__file__}
    storage.write_text(dest, json.dumps(seen))
    return dest


def test_external_workers_share_no_disk_and_use_s3(portable_cluster, s3_server, s3_bucket, tmp_path):
    launcher_file = tempfile.NamedTemporaryFile(dir="/tmp", prefix="launcher-", delete=False).name
    try:
        source, dest = f"{s3_bucket}/in/words.txt", f"{s3_bucket}/out/seen.json"
        storage.write_text(source, "hello from the bucket\n")
        options = PipelineOptions([*portable_cluster.options, *s3_server.options])
        with beam.Pipeline(options=options) as p:
            _ = p | beam.Create([source]) | beam.Map(probe, launcher_file, dest)
        seen = json.loads(storage.read_text(dest))
    finally:
        os.unlink(launcher_file)
    assert seen["text"] == "HELLO FROM THE BUCKET\n"
    assert seen["sees_launcher_file"] is False
    assert os.path.basename(launcher_file) not in seen["tmp"] and os.path.basename(seen["own_file"]) in seen["tmp"]
    assert not os.path.exists(seen["own_file"])
    assert seen["mount_ns"] != os.readlink("/proc/self/ns/mnt") and seen["pid"] != os.getpid()
    assert seen["storage_module"] == storage.__file__
    assert not (tmp_path / "s3:").exists() and not os.path.exists("s3:")


def write_pid(i: int, dest: str) -> int:
    storage.write_text(f"{dest}/{i}.txt", str(os.getpid()))
    return i


def test_local_worker_processes_get_the_s3_options(s3_server, s3_bucket, monkeypatch):
    """FnApiRunner in multi_processing mode through storage.fnapi_runner: the worker processes reach
    the S3 server with the launcher's endpoint and credentials."""
    monkeypatch.setenv("PYTHONPATH", os.path.dirname(__file__))  # the workers unpickle write_pid from here
    options = PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing", *s3_server.options])
    with beam.Pipeline(runner=storage.fnapi_runner(options), options=options) as p:
        _ = p | beam.Create(list(range(6))) | beam.Map(write_pid, f"{s3_bucket}/out")
    files = storage.list_files(f"{s3_bucket}/out")
    assert [path.rsplit("/", 1)[1] for path, _ in files] == [f"{i}.txt" for i in range(6)]
    pids = {int(storage.read_text(path)) for path, _ in files}
    assert os.getpid() not in pids


def test_a_checkout_under_tmp_is_kept_in_the_workers_private_tmp(monkeypatch):
    """A clone that lives under /tmp (its venv with it): the workers' private /tmp still holds it at the
    same path, and nothing else of the launcher's /tmp."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not available")
    top = Path(tempfile.mkdtemp(prefix="clone-", dir=servers.TMP))
    stage = Path(tempfile.mkdtemp(prefix="private-tmp-", dir=servers.TMP))
    try:
        (top / "repo" / ".venv" / "bin").mkdir(parents=True)
        (top / "repo" / ".venv" / "bin" / "python").symlink_to(Path(sys.executable).resolve())
        (top / "launcher-only").write_text("the launcher's")
        monkeypatch.setattr(servers, "ROOT", top / "repo")
        kept = servers._kept_in_private_tmp()
        assert top / "repo" in kept
        python = top / "repo" / ".venv" / "bin" / "python"
        script = (f"{servers._private_tmp(stage)} && [ ! -e {top / 'launcher-only'} ] && [ ! -e {stage} ] && "
                  f"exec {python} -c 'import os, sys; print(sorted(os.listdir(\"/tmp\")), sys.prefix)'")
        done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                              capture_output=True, text=True, timeout=60)
        if "permission denied" in done.stderr.lower() or "operation not permitted" in done.stderr.lower():
            pytest.skip(f"mounts in a private namespace are refused here: {done.stderr.strip()}")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(str(sorted({p.relative_to(servers.TMP).parts[0] for p in kept})))
    finally:
        shutil.rmtree(top)
        stage.rmdir()
