"""The Beam runner of a run (--runner): created before any input is read, so that a name Beam does not know
is one line saying what to pass, and a job server that cannot start for want of its jar is one line too."""

from __future__ import annotations

import re

from pipeline.files import storage

CHOICES = ("FnApiRunner (the default, local), PortableRunner, FlinkRunner, SparkRunner, DataflowRunner, or a "
           "runner class's full path, package.module.ClassName")
JAR_OPTIONS = ("flink_job_server_jar", "spark_job_server_jar")


class RunnerError(ValueError):
    """A runner that cannot run this pipeline; the message says what to pass instead."""


def create(name: str, options):
    """The runner `name` for `options` (FnApiRunner: storage.fnapi_runner, whose worker processes get the
    options); RunnerError for a name Beam cannot resolve, for Beam's DaskRunner, for PortableRunner without
    a job service, and for a job server jar option that names a local file that is not there."""
    from apache_beam.runners.runner import create_runner

    if name == "FnApiRunner":
        return storage.fnapi_runner(options)
    if name.rsplit(".", 1)[-1] == "DaskRunner":
        raise RunnerError(f"--runner {name}: Beam's DaskRunner (2.77) duplicates a singleton side input's elements and "
                          f"recomputes stages concurrently, which breaks this pipeline; pass {CHOICES}")
    values = options.get_all_options()
    if name.rsplit(".", 1)[-1] == "PortableRunner" and not values.get("job_endpoint"):
        raise RunnerError(f"--runner {name} needs --job_endpoint=HOST:PORT of a running Beam job service (with "
                          "--environment_type and --environment_config for its workers); for Flink or Spark pass "
                          "--runner FlinkRunner or SparkRunner")
    for option in JAR_OPTIONS:
        jar = values.get(option)
        if jar and "://" not in jar and not storage.exists(jar):
            raise RunnerError(f"--{option}={jar}: no such file; pass the path of a downloaded "
                              f"beam-runners-{option.split('_')[0]}-<version>-job-server jar")
    try:
        return create_runner(name)
    except (ValueError, ImportError, AttributeError) as err:
        why = "not a runner Beam knows" if isinstance(err, ValueError) else f"cannot be imported ({err})"
        raise RunnerError(f"--runner {name}: {why}; pass {CHOICES}") from None


def start_failure(error: BaseException, runner: str) -> str | None:
    """One line for a runner whose job server jar could not be downloaded (None for any other error): which
    option takes a local copy."""
    seen = error
    while seen is not None:
        found = re.search(r"Unable to fetch remote job server jar at (\S+?): ", str(seen))
        if found:
            option = "spark_job_server_jar" if "spark" in found[1].lower() else "flink_job_server_jar"
            return (f"--runner {runner}: Beam could not download its job server jar {found[1]}; download it "
                    f"where the network reaches it and pass --{option}=PATH, or pass --job_endpoint=HOST:PORT "
                    "of a job server already running")
        seen = seen.__cause__ or seen.__context__
    return None
