"""Run commands at the same time, one thread each, pinned to a core each where there are enough, so the
machine's other load slows them alike; each one's wall and CPU time."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def run_pinned(cmds: dict[str, list[str]], logs: Path, cwd: Path) -> tuple[dict[str, dict], list[int]]:
    """Start every command (stdout and stderr to logs/<name>.log) with OMP/MKL at one thread, pinned to a
    core of its own when there are as many cores; wait for all. Per name: returncode, wall_s (from the
    start to its exit) and cpu_s (user + system, from its resource usage); and the cores used (empty: not
    pinned)."""
    available = sorted(os.sched_getaffinity(0))
    cores = available[: len(cmds)] if len(available) >= len(cmds) > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs, t0 = {}, time.perf_counter()
    for i, (name, cmd) in enumerate(cmds.items()):
        pin = (lambda core=cores[i]: os.sched_setaffinity(0, {core})) if cores else None
        with open(logs / f"{name}.log", "w") as log:
            procs[name] = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           preexec_fn=pin)
    names, usage = {p.pid: name for name, p in procs.items()}, {}
    while len(usage) < len(procs):
        pid, status, ru = os.wait4(-1, 0)
        usage[names[pid]] = {"returncode": os.waitstatus_to_exitcode(status), "wall_s": time.perf_counter() - t0,
                             "cpu_s": ru.ru_utime + ru.ru_stime}
    return {name: usage[name] for name in cmds}, cores
