"""Run a command and measure its wall time and the peak of the RSS summed over the command and every
process it starts (workers, pools, grandchildren), sampled from /proc every --interval seconds.

A process counts while it descends from the command or stays in the command's session (the command
runs in a new session, so daemonized grandchildren whose parent died still count). The sum adds each
process's resident set, so pages shared between processes (fork's copy-on-write, shared libraries)
count once per process: an upper bound of the memory the run needs, the figure to compare against a
machine's RAM. A peak shorter than the interval can be missed. Linux only.

    python benchmarks/procmem.py [--interval 0.1] -- CMD ARGS...   # prints one JSON line at the end

From Python: `procmem.run(cmd, stdout=..., cwd=...)` -> Usage(returncode, wall_s, peak_rss_mb, samples).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Usage:
    returncode: int
    wall_s: float
    peak_rss_mb: float
    samples: int


def _processes() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, session id, resident bytes) for every process readable now."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{name}/statm") as f:
                resident = int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp session ...
        out[int(name)] = (int(fields[1]), int(fields[3]), resident)
    return out


def tree_rss(root: int) -> int:
    """Bytes resident in `root`, its descendants and the processes of its session."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    members, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in procs and pid not in members:
            members.add(pid)
            todo.extend(children.get(pid, ()))
    members.update(pid for pid, (_, sid, _) in procs.items() if sid == root)
    return sum(procs[pid][2] for pid in members)


def run(cmd: list[str], interval: float = 0.1, **popen_kwargs) -> Usage:
    """Run `cmd` (Popen keyword arguments pass through) to completion, sampling every `interval` s."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, start_new_session=True, **popen_kwargs)
    peak, samples = 0, 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        samples += 1
        try:
            proc.wait(interval)
        except subprocess.TimeoutExpired:
            pass
    return Usage(proc.returncode, time.perf_counter() - start, peak / 2**20, samples)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between samples")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given (python benchmarks/procmem.py -- CMD ARGS...)")
    usage = run(cmd, args.interval)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(usage).items()}))
    return usage.returncode


if __name__ == "__main__":
    sys.exit(main())
