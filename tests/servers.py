#!/usr/bin/env python3
"""Real servers for tests, on loopback, started and stopped by pytest fixtures (a pytest plugin:
tests/conftest.py lists it in `pytest_plugins`).

- `s3_server` (session): moto's S3-compatible server on 127.0.0.1 at a free port, in this process;
  `.options` are the Beam pipeline options that point FileSystems at it (endpoint, dummy credentials,
  region). `s3_bucket` (per test): a new empty bucket "s3://NAME", with this process's FileSystems
  configured for the server.
- `portable_cluster` (session): Beam's job service (`local_job_service_main`, its own process) and an
  external worker pool (`worker_pool_main`) whose processes run in another mount namespace with a
  private /tmp (`unshare -m` + tmpfs; skipped where that is not permitted), empty but for what the
  workers run on when it lies under /tmp: this checkout, its venv and its Python, bound in at the same
  paths (a clone under /tmp works as one anywhere else). `.options` run a
  pipeline there: `--runner=PortableRunner --job_endpoint=... --environment_type=EXTERNAL
  --environment_config=...`. The pool starts each worker through this file (`servers.py --id=...
  --provision_endpoint=...`, the contract of Beam's SDK container boot): it fetches the job's pipeline
  options from the provision service, as a cluster's container does, so the workers' FileSystems get
  the S3 options; a bare worker_pool_main starts workers with no options at all. The workers import
  this checkout (cwd and PYTHONPATH are the repository and tests/).
"""

import argparse
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CREDENTIALS = {"s3_access_key_id": "testing", "s3_secret_access_key": "testing", "s3_region_name": "us-east-1"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (another process may still take it: callers retry)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    """Until 127.0.0.1:port accepts connections; RuntimeError if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening on {port}: {tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"not listening on {port} after {timeout:.0f} s: {tail(log)}")


def tail(log: Path, lines: int = 15) -> str:
    return " | ".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.is_file() else "(no log)"


def stop_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group `proc` leads (it was started with start_new_session), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; members may linger a moment
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_alive(proc.pid):
            time.sleep(0.05)
        if not group_alive(proc.pid):
            break


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


# ---- S3: moto's server ----

@dataclass
class S3Server:
    endpoint: str
    options: list[str] = field(default_factory=list)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=CREDENTIALS["s3_access_key_id"],
                            aws_secret_access_key=CREDENTIALS["s3_secret_access_key"],
                            region_name=CREDENTIALS["s3_region_name"])


@pytest.fixture(scope="session")
def s3_server():
    import logging

    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")
    pytest.importorskip("boto3", reason="boto3 is not installed (pip install -e '.[test]')")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    options = [f"--s3_endpoint_url={endpoint}", *(f"--{k}={v}" for k, v in CREDENTIALS.items())]
    try:
        yield S3Server(endpoint, options)
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server):
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    before = FileSystems._pipeline_options
    FileSystems.set_options(PipelineOptions(s3_server.options))
    try:
        yield f"s3://{name}"
    finally:
        FileSystems.set_options(before)


# ---- Beam's portable path: job service + external worker pool in a private mount namespace ----

@dataclass
class PortableCluster:
    job_port: int
    pool_port: int
    logs: Path
    options: list[str] = field(default_factory=list)


TMP = Path("/tmp").resolve()


def _kept_in_private_tmp() -> list[Path]:
    """The folders under /tmp that the workers run on (this checkout, its venv, the Python behind it,
    the import path), outermost only: bound into their private /tmp at the same paths."""
    used = {Path(p).resolve() for p in (ROOT, sys.prefix, sys.base_prefix, Path(sys.executable).resolve().parent,
                                        *sys.path) if p}
    inside = sorted(p for p in used if p.is_relative_to(TMP) and p.is_dir())
    return [p for p in inside if not any(p != q and p.is_relative_to(q) for q in inside)]


def _private_tmp(stage: Path) -> str:
    """Shell commands that give this mount namespace a private /tmp: a new tmpfs, with `_kept_in_private_tmp`
    bound in. The tmpfs is put together at `stage` (an empty folder under /tmp) first, while the folders
    to bind are still visible, then bound over /tmp with them."""
    keep = _kept_in_private_tmp()
    if not keep:
        return f"mount -t tmpfs tmpfs {TMP}"
    steps = [f"mount -t tmpfs tmpfs {shlex.quote(str(stage))}"]
    for path in keep:
        inner = shlex.quote(str(stage / path.relative_to(TMP)))
        steps.append(f"mkdir -p {inner} && mount --bind {shlex.quote(str(path))} {inner}")
    return " && ".join([*steps, f"mount --rbind {shlex.quote(str(stage))} {TMP}"])


def _private_tmp_refusal(stage: Path) -> str | None:
    """Why a process cannot get a private /tmp with what the workers run on here (None when it can)."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return "unshare(1) is not available"
    if TMP in _kept_in_private_tmp():
        return f"this checkout or its Python is {TMP} itself, which the workers' private {TMP} would hide"
    check = f"{_private_tmp(stage)} && [ ! -e {shlex.quote(str(stage))} ] && {shlex.quote(sys.executable)} -c pass"
    try:
        probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", check],
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare -m failed: {e}"
    if probe.returncode != 0:
        return (f"unshare -m + a tmpfs on {TMP} with {[str(p) for p in _kept_in_private_tmp()]} bound in is not "
                f"permitted: {probe.stderr.strip() or probe.returncode}")
    return None


def _loopback_refusal() -> str | None:
    """Beam hands external workers data endpoints at socket.getfqdn(): it must be a loopback address."""
    import ipaddress

    name = socket.getfqdn()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
    except OSError as e:
        return f"this host's name {name!r} does not resolve ({e})"
    if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        return f"Beam would send worker traffic to {name!r} = {sorted(addresses)}, not a loopback address"
    return None


def _popen(cmd, log: Path, env: dict) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                                env=env, start_new_session=True)


def _job_service(logs: Path, env: dict) -> subprocess.Popen:
    return _popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                   "--port", "0", "--port_file", str(logs / "job_service.port")], logs / "job_service.log", env)


def _job_service_port(proc: subprocess.Popen, logs: Path) -> int:
    """The port the job service picked (it writes --port_file once it serves), once it accepts connections."""
    port_file, log = logs / "job_service.port", logs / "job_service.log"
    deadline = time.monotonic() + 60
    while not port_file.is_file():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"job service did not start: {tail(log)}")
        time.sleep(0.1)
    port = int(port_file.read_text())
    wait_listening(port, proc, 30, log)
    return port


def _start_worker_pool(logs: Path, env: dict, stage: Path, tries: int = 3) -> tuple[subprocess.Popen, int]:
    log = logs / "worker_pool.log"
    pool = (f"{_private_tmp(stage)} && exec {shlex.quote(sys.executable)} -m "
            f"apache_beam.runners.worker.worker_pool_main --service_port $0 --container_executable "
            f"{shlex.quote(str(Path(__file__).resolve()))}")
    for attempt in range(tries):
        port = free_port()
        proc = _popen(["unshare", "-m", "--propagation", "private", "sh", "-c", pool, str(port)], log, env)
        try:
            wait_listening(port, proc, 60, log)
            return proc, port
        except RuntimeError:
            stop_group(proc)
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def portable_cluster(tmp_path_factory):
    stage = Path(tempfile.mkdtemp(prefix="private-tmp-", dir=TMP))  # stays empty out here
    try:
        yield from _portable_cluster(tmp_path_factory, stage)
    finally:
        stage.rmdir()


def _portable_cluster(tmp_path_factory, stage: Path):
    for refusal in (_private_tmp_refusal(stage), _loopback_refusal()):
        if refusal:
            pytest.skip(f"portable runner with an external worker pool: {refusal}")
    logs = tmp_path_factory.mktemp("portable_cluster")
    venv_bin = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=f"{venv_bin}:{os.environ.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]), PYTHONUNBUFFERED="1")
    procs = []
    try:
        job = _job_service(logs, env)
        procs.append(job)
        pool, pool_port = _start_worker_pool(logs, env, stage)  # while the job service starts
        procs.append(pool)
        job_port = _job_service_port(job, logs)
        yield PortableCluster(job_port, pool_port, logs, [
            "--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
            "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool_port}"])
    finally:
        for proc in reversed(procs):
            stop_group(proc)


def boot(argv: list[str]) -> None:
    """What Beam's SDK container boot does for an external worker, minus artifact staging (the
    workers run this checkout's venv): fetch the job's pipeline options from the provision service,
    then exec sdk_worker_main with them."""
    import grpc
    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc, endpoints_pb2
    from google.protobuf import json_format, text_format

    ap = argparse.ArgumentParser()
    for name in ("id", "provision_endpoint", "control_endpoint", "logging_endpoint", "artifact_endpoint"):
        ap.add_argument(f"--{name}", required=name != "artifact_endpoint")
    args = ap.parse_args(argv)
    with grpc.insecure_channel(args.provision_endpoint) as channel:
        info = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel).GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=[("worker_id", args.id)], timeout=60).info

    def descriptor(url):
        return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))

    env = dict(os.environ, WORKER_ID=args.id, PIPELINE_OPTIONS=json_format.MessageToJson(info.pipeline_options),
               CONTROL_API_SERVICE_DESCRIPTOR=descriptor(args.control_endpoint),
               LOGGING_API_SERVICE_DESCRIPTOR=descriptor(args.logging_endpoint),
               RUNNER_CAPABILITIES=" ".join(info.runner_capabilities),
               SEMI_PERSISTENT_DIRECTORY=tempfile.mkdtemp(prefix="beam-worker-"))
    os.dup2(2, 1)  # the pool pipes the worker's stdout and never reads it: a full pipe would block
    os.execve(sys.executable, [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"], env)


if __name__ == "__main__":
    boot(sys.argv[1:])
