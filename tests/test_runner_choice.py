"""--runner names Beam cannot use, and a job server whose jar cannot be downloaded: one line that says what to
pass, before (or instead of) a traceback, and no output or staging folder left behind."""

import pytest
from servers import free_port

from pipeline.__main__ import main


@pytest.fixture
def small_input(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.txt").write_text("A few words of text that make up one small document for the pipeline.\n")
    return source


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("runner,says", [
    (["--runner", "NoSuchRunner"], "not a runner Beam knows"),
    (["--runner", "DaskRunner"], "DaskRunner (2.77) duplicates a singleton side input's elements"),
    (["--runner", "apache_beam.runners.dask.dask_runner.DaskRunner"], "duplicates a singleton side input"),
    (["--runner", "no_such_package.runners.FastRunner"], "cannot be imported (No module named 'no_such_package')"),
    (["--runner", "apache_beam.runners.NoSuchRunner"], "cannot be imported"),
    (["--runner=PortableRunner"], "needs --job_endpoint=HOST:PORT"),
    (["--runner", "FlinkRunner", "--flink_job_server_jar=/no/such/beam-flink.jar"], "no such file"),
    (["--runner", "SparkRunner", "--spark_job_server_jar=relative/beam-spark.jar"], "no such file")])
def test_a_runner_beam_cannot_use_is_one_line_before_anything_is_read(small_input, tmp_path, capsys, runner, says):
    out = tmp_path / "out"
    assert main(["--input", str(small_input), "--output", str(out), *runner]) == 2
    line = one_error(capsys)
    assert says in line, line
    assert "pass" in line  # what to pass instead
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


@pytest.mark.parametrize("runner", ["FlinkRunner", "SparkRunner"])
def test_a_job_server_jar_that_cannot_be_downloaded_is_one_line(small_input, tmp_path, capsys, runner):
    kind = runner.removesuffix("Runner").lower()
    url = f"http://127.0.0.1:{free_port()}/beam-runners-{kind}-job-server.jar"  # nothing listens there
    out = tmp_path / "out"
    assert main(["--input", str(small_input), "--output", str(out), "--runner", runner,
                 f"--{kind}_job_server_jar={url}", f"--jar_cache_dir={tmp_path / 'jars'}"]) == 2
    line = one_error(capsys)
    assert f"could not download its job server jar {url}" in line and f"--{kind}_job_server_jar=PATH" in line, line
    assert "--job_endpoint=HOST:PORT" in line
    assert not out.exists() and not list(tmp_path.glob(".out*"))
