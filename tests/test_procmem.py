"""benchmarks/procmem.py: the peak RSS summed over a command, its children and a daemonized grandchild."""

import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import procmem  # noqa: E402

# The parent holds 100 MB, two children 150 MB each, and a double-forked grandchild (its parent exits,
# so it is re-parented away from the tree and counted through the session) 200 MB, all at once.
SCRIPT = textwrap.dedent("""
    import os, subprocess, sys, time
    hold = b"p" * (100 << 20)
    code = "import time; x = b'c' * ({mb} << 20); time.sleep(3)"
    kids = [subprocess.Popen([sys.executable, "-c", code.format(mb=150)]) for _ in range(2)]
    if os.fork() == 0:
        if os.fork() == 0:
            x = b"g" * (200 << 20)
            time.sleep(3)
        os._exit(0)
    for k in kids:
        k.wait()
    time.sleep(0.5)
""")


def test_peak_rss_sums_children_and_daemonized_grandchildren():
    usage = procmem.run([sys.executable, "-c", SCRIPT], interval=0.1)
    assert usage.returncode == 0 and usage.samples >= 10
    assert 600 < usage.peak_rss_mb < 900, usage  # 100 + 2 x 150 + 200 MB, plus four interpreters
    assert 3 < usage.wall_s < 60


def test_cli_passes_the_exit_code(capsys):
    assert procmem.main(["--", sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert '"returncode": 3' in capsys.readouterr().out
