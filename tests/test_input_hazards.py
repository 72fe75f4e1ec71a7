"""Inputs as a careless or hostile user gives them: symlinks leading out of the input tree, dangling and
looping; a file that changes after planning; split and whole reads of over-long whitespace lines at
every boundary; a decompression bomb (peak memory measured in a child process); a JSON string holding a
lone surrogate; a file name that is not UTF-8."""

import gzip
import json
import os
import random
import subprocess
import sys
import zlib

import pytest
import zstandard
from conftest import ROOT
from test_sources import read_path, read_unit

from pipeline.reading import inputs, sources

DOC = ("A document in the input folder that has words enough to be a real document of this small test, "
       "and goes on a little longer.\n")


# ---- symlinks ----

@pytest.fixture
def linked(tmp_path):
    """in/ with a real file, links out of the tree (a file and a folder), links within it (a file, a
    folder, the tree's own root), a dangling link and two links that point at each other."""
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "secret.txt").write_text("outside secret\n")
    (outside / "deep" / "more.txt").write_text("more outside\n")
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / "real.txt").write_text(DOC)
    (root / "sub" / "inner.txt").write_text(DOC)
    (root / "secret.txt").symlink_to(outside / "secret.txt")
    (root / "elsewhere").symlink_to(outside)
    (root / "again.txt").symlink_to(root / "real.txt")
    (root / "sub2").symlink_to("sub")
    (root / "sub" / "up").symlink_to("..")
    (root / "gone.txt").symlink_to(tmp_path / "nothing.txt")
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    return root


def test_links_leaving_the_tree_are_skipped_and_every_link_counted(linked):
    found = inputs.expand([str(linked)])
    assert [u.files[0].rel for u in found.units] == ["real.txt", "sub/inner.txt"]
    reasons = {os.path.relpath(p, linked): r for p, r in found.skipped}
    assert reasons == {"secret.txt": "symlink_outside", "elsewhere": "symlink_outside",
                       "again.txt": "symlink_inside", "sub2": "symlink_inside", "sub/up": "symlink_inside",
                       "gone.txt": "symlink_dangling", "loop1": "symlink_loop", "loop2": "symlink_loop"}
    glob = inputs.expand([str(linked / "*.txt")])  # a glob's tree is its fixed part
    assert [u.files[0].rel for u in glob.units] == ["real.txt"]
    assert sorted(r for _, r in glob.skipped) == ["symlink_dangling", "symlink_inside", "symlink_outside"]


def test_follow_symlinks_reads_outside_links_and_still_stops_loops(linked):
    (linked.parent / "outside" / "deep" / "back").symlink_to("..")  # a cycle below a followed link
    found = inputs.expand([str(linked)], follow_symlinks=True)
    assert [u.files[0].rel for u in found.units] == [
        "elsewhere/deep/more.txt", "elsewhere/secret.txt", "real.txt", "secret.txt", "sub/inner.txt"]
    reasons = {os.path.relpath(p, linked): r for p, r in found.skipped}
    assert reasons["elsewhere/deep/back"] == "symlink_loop"
    assert "symlink_outside" not in reasons.values()
    docs, _, _ = read_unit(found.units[3])
    assert docs[0].text == "outside secret"


def test_a_named_link_is_read(linked):
    """Naming a link on the command line is asking for it."""
    found = inputs.expand([str(linked / "secret.txt")])
    assert [u.files[0].path for u in found.units] == [str(linked / "secret.txt")] and not found.skipped


# ---- a file that changes after planning ----

def test_a_file_changed_after_planning_is_failed_by_name(tmp_path):
    path = tmp_path / "a.txt"
    for change in ("grow", "shrink", "rewrite"):
        path.write_text(DOC * 3)
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
        unit = inputs.expand([str(path)], "line").units[0]
        if change == "grow":
            with open(path, "a") as f:
                f.write("appended later\n")
        elif change == "shrink":
            path.write_text(DOC)
        else:  # same size, new contents and time
            path.write_text(DOC.upper() * 3)
        docs, drops, files = read_unit(unit, text_mode="line")
        assert not docs and not drops, change
        assert "a.txt" in files[0]["path"] and "changed since the run was planned" in files[0]["error"], change


def test_a_file_growing_during_its_read_is_failed_and_read_only_to_its_planned_size(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(DOC * 3)
    unit = inputs.expand([str(path)], "line").units[0]
    reader = sources.Reader(sources.SourceConfig(text_mode="line"))
    out = reader.read(unit)
    first = next(out)
    with open(path, "a") as f:
        f.write("appended during the read\n")
    rest = list(out)
    assert [d.text for d in [first, *rest]] == [DOC.strip()] * 3
    assert "changed since the run was planned" in reader.files[0]["error"]


# ---- split reads ----

def _hostile_text(rng: random.Random, cap: int, jsonl: bool) -> bytes:
    lines = []
    for _ in range(rng.randint(5, 40)):
        what = rng.random()
        if what < 0.35:
            line = json.dumps({"text": f"doc {rng.random()}"}) if jsonl else " ".join(
                rng.choice(["alpha", "beta", "gamma"]) for _ in range(rng.randint(1, 6)))
        elif what < 0.5:
            line = ""
        elif what < 0.65:
            line = rng.choice([" ", "\t", "  \t ", "\x0b", "\x0c"]) * rng.randint(1, 4)
        elif what < 0.85:  # whitespace over the cap: a blank line whatever its length
            line = rng.choice([" ", "\t ", " \r"]) * rng.randint(cap // 2, cap * 2)
        else:
            line = "x" * rng.randint(cap // 2, cap * 2)
        lines.append(line + rng.choice(["\n", "\r\n"]))
    return "".join(lines).encode()


@pytest.mark.parametrize("kind", ["block", "line", "jsonl"])
def test_split_and_whole_reads_agree_at_any_boundaries(tmp_path, kind):
    rng, cap = random.Random(kind), 40
    path = tmp_path / ("t.jsonl" if kind == "jsonl" else "t.txt")
    mode = "line" if kind == "jsonl" else kind
    for trial in range(150):
        data = _hostile_text(rng, cap, kind == "jsonl")
        path.write_bytes(data)
        whole = inputs.expand([str(path)], mode).units[0]
        expect = read_unit(whole, text_mode=mode, max_doc_bytes=cap)[:2]
        cuts = sorted(set(rng.randrange(1, len(data)) for _ in range(rng.randint(1, 6))))
        docs, drops = [], []
        for start, stop in zip([0, *cuts], [*cuts, -1], strict=True):
            d, dr, _ = read_unit(whole._replace(start=start, stop=stop), text_mode=mode, max_doc_bytes=cap)
            docs += d
            drops += dr
        assert (docs, drops) == expect, (trial, cuts, data)


# ---- decompression bombs ----

CHILD = """
import json, resource, sys
from pipeline.reading import inputs, sources

def read(path):
    reader = sources.Reader(sources.SourceConfig(max_doc_bytes=int(sys.argv[3])))
    out = [getattr(x, "reason", "doc") for x in reader.read(inputs.expand([path]).units[0])]
    return out, reader.files[0]["error"]

peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
normal = read(sys.argv[1])
base = peak()
bomb = read(sys.argv[2])
print(json.dumps({"normal": len(normal[0]), "bomb": bomb, "growth": peak() - base}))
"""


def _compressed(path, kind: str, pieces, level: int = 3) -> None:
    """Write the byte pieces to `path`, compressed, without holding the whole."""
    with open(path, "wb") as f:
        c = zlib.compressobj(9, zlib.DEFLATED, 31) if kind == "gz" else \
            zstandard.ZstdCompressor(level=level).compressobj()
        for piece in pieces:
            f.write(c.compress(piece))
        f.write(c.flush())


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_a_decompression_bomb_costs_at_most_max_doc_bytes(tmp_path, kind):
    """200 MB of one line in a few hundred KB: the read drops it as too_long, and peak memory grows by
    at most source.max_doc_bytes over reading an ordinary file compressed the same way."""
    cap = 8_000_000
    rng = random.Random(0)
    normal, bomb = tmp_path / f"normal.jsonl.{kind}", tmp_path / f"bomb.jsonl.{kind}"
    _compressed(normal, kind, (json.dumps({"text": " ".join(str(rng.random()) for _ in range(200))}).encode()
                               + b"\n" for _ in range(3000)))
    _compressed(bomb, kind, [b'{"text": "'] + [b"a" * (1 << 20)] * 200 + [b'"}\n'])
    assert bomb.stat().st_size < 400_000
    proc = subprocess.run([sys.executable, "-c", CHILD, str(normal), str(bomb), str(cap)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert got["normal"] == 3000 and got["bomb"] == [["read/too_long"], None]
    assert got["growth"] <= cap, f"peak memory grew by {got['growth'] / 1e6:.1f} MB"


def test_a_zstd_window_over_the_memory_bound_fails_by_name(tmp_path):
    path = tmp_path / "wide.jsonl.zst"
    _compressed(path, "zst", [b'{"text": "' + b"b" * (1 << 20) + b'"}\n'] * 40, level=22)
    assert zstandard.get_frame_parameters(path.read_bytes()).window_size > 8 << 20
    docs, drops, info = read_path(path)
    assert not docs and not drops
    assert "window" in info["error"] and "source.max_doc_bytes" in info["error"]
    docs, _, info = read_path(path, max_doc_bytes=130_000_000)
    assert len(docs) == 40 and info["error"] is None


def test_gzip_still_reads_multi_member_files(tmp_path):
    path = tmp_path / "m.txt.gz"
    path.write_bytes(gzip.compress(DOC.encode()) + gzip.compress(b"\n" + DOC.encode()))
    docs, _, info = read_path(path)
    assert [d.text for d in docs] == [DOC.strip()] * 2 and info["error"] is None


# ---- strings and names that are not UTF-8 ----

def test_a_lone_surrogate_in_json_is_undecodable_not_fatal(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "half \\ud83d a pair"}\n{"text": "whole \\ud83d\\ude00"}\n'
                    '{"text": "low \\udc00 alone"}\n')
    docs, drops, info = read_path(path)
    assert [d.text for d in docs] == ["fine", "whole \U0001F600"]
    assert [d.reason for d in drops] == ["read/undecodable"] * 2 and info["error"] is None


def test_a_file_name_that_is_not_utf8_is_read_under_an_escaped_name(tmp_path):
    name = os.fsdecode(b"caf\xe9.txt")
    (tmp_path / name).write_text(DOC)
    unit = inputs.expand([str(tmp_path)]).units[0]
    assert unit.files[0].rel == "caf\\xe9.txt"
    docs, _, info = read_unit(unit)
    assert docs[0].name == "text:caf\\xe9.txt:000000000000" and docs[0].text == DOC.strip()
    assert info[0]["path"].encode("utf-8") and info[0]["error"] is None


def test_hostile_inputs_end_to_end(linked, tmp_path):
    """One run: links out of the tree, a lone surrogate under normalize.preset=cased, file and folder
    names that are not UTF-8. Nothing from outside is read, the run ends with the books balanced and
    every skip counted."""
    (linked / "s.jsonl").write_text(json.dumps({"text": DOC}) + '\n{"text": "bad \\ud83d"}\n')
    (linked / os.fsdecode(b"na\xefve.txt")).write_text(DOC.replace("document", "paper"))
    odd = tmp_path / os.fsdecode(b"d\xff")  # a second input whose own name is not UTF-8
    odd.mkdir()
    (odd / "x.txt").write_text(DOC.replace("document", "letter"))
    (odd / os.fsdecode(b".h\xe9")).write_text(DOC)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pipeline", "--input", str(linked), "--input", str(odd),
                           "--output", str(out),
                           "--until", "clean", "normalize.preset=cased", "filters.enabled=false",
                           "dedup.near=false"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["documents"]["balanced"] and stats["dropped"]["read/undecodable"]["docs"] == 1
    assert stats["files"]["skipped"] == {"hidden": 1, "symlink_dangling": 1, "symlink_inside": 3,
                                         "symlink_loop": 2, "symlink_outside": 2}
    assert stats["inputs"][1].endswith("/d\\xff")
    data = b"".join(zstandard.ZstdDecompressor().decompressobj().decompress(p.read_bytes())
                    for p in sorted(out.glob("docs-*.jsonl.zst")))
    names = [json.loads(line)["id"] for line in data.decode().splitlines()]
    assert {"text:in/na\\xefve.txt:000000000000", "text:d\\xff/x.txt:000000000000"} <= set(names)
    assert b"secret" not in data and all("elsewhere" not in n for n in names)
