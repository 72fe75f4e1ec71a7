"""`python -m pipeline` end to end on real text: a mixed folder with broken files completes and accounts
for every document; near-duplicates go, unrelated documents stay; reruns and 1 vs 2 workers give the
same bytes; bad paths, empty input and existing outputs are handled before anything is written."""

import json
import random
import subprocess
import sys

import pytest
import zstandard
from conftest import ROOT

DOC = ("We the people of this small test file hold that a document must have words enough to pass the "
       "length filter, and so this one goes on for a while longer than that.\n")


def run(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "pipeline", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return proc


def docs_of(out):
    docs = []
    for path in sorted(out.glob("docs-*.jsonl.zst")):
        data = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
        docs += [json.loads(line) for line in data.decode().splitlines()]
    return docs


def edit(text: str, rng: random.Random, frac: float) -> str:
    words = text.split()
    for i in rng.sample(range(len(words)), max(1, int(frac * len(words)))):
        words[i] = rng.choice(["nation", "people", "river", "law", "bright"])
    return " ".join(words)


@pytest.fixture(scope="module")
def with_copies(mixed_corpus, tmp_path_factory):
    """The mixed corpus plus near-duplicate copies (2% of words changed, a sentence added) of 5 of its
    paragraphs and one exact copy."""
    import shutil

    root = tmp_path_factory.mktemp("copies") / "corpus"
    shutil.copytree(mixed_corpus["dir"], root)
    paras, rng = mixed_corpus["paragraphs"], random.Random(0)
    copies = [edit(p, rng, 0.02) for p in paras[:3]] + [paras[3] + " We shall remember this day."]
    copies += [edit(paras[12], rng, 0.01), paras[4]]
    (root / "copies.jsonl").write_text("".join(json.dumps({"text": c}) + "\n" for c in copies))
    return root


@pytest.fixture(scope="module")
def mixed_run(with_copies, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    proc = run("--input", with_copies, "--output", out, "--until", "clean")
    return out, proc


def test_help_documents_every_option():
    text = run("--help").stdout
    for option in ("--input", "--output", "--config", "--until", "--runner", "--workers", "--overwrite",
                   "--split-mb", "--created", "key=value", "hf:NAME", "docstrings", "s3://", "PortableRunner",
                   "FlinkRunner", "--flink_job_server_jar", "DataflowRunner", "tokenizer.vocab_size",
                   "tokenizer.path", "objective ", "seq_len ", "tokenizer.kind", "pack.cross_documents", "pack.segments", "order.name", "order.max_rows"):
        assert option in text, option


def test_mixed_corpus_with_broken_files_is_accounted_for(mixed_run):
    out, proc = mixed_run
    stats = json.loads((out / "stats.json").read_text())
    docs = stats["documents"]
    assert docs["balanced"] and docs["read"] == docs["kept"] + docs["dropped"]
    failed = {f["path"]: f["error"] for f in stats["files"]["failed"]}
    assert set(failed) == {"truncated.txt.gz", "corrupt.jsonl.zst"}
    assert "truncated gzip" in failed["truncated.txt.gz"] and "zstd" in failed["corrupt.jsonl.zst"]
    dropped = {k: v["docs"] for k, v in stats["dropped"].items()}
    assert dropped["read/invalid_json"] == 1
    assert dropped["read/missing_field"] == 3  # two JSON lines and one null Parquet value
    assert dropped["read/binary"] >= 1
    assert stats["files"]["repaired"] >= 1  # latin.txt
    assert stats["files"]["count"] == 11 and stats["files"]["bytes_in"] > 0
    kept = docs_of(out)
    assert len(kept) == docs["kept"] and [d["id"] for d in kept] == sorted(d["id"] for d in kept)
    assert stats["output"]["bytes_out"] == sum(p.stat().st_size for p in out.glob("docs-*"))
    assert {"read", "normalize", "filter"} <= {k for k, v in stats["stages"].items() if "seconds" in v}
    assert "files failed" in proc.stdout + proc.stderr  # the summary table names them
    assert not list(out.parent.glob(".*tmp"))


def test_near_duplicates_go_and_unrelated_documents_stay(mixed_run, mixed_corpus):
    out, _ = mixed_run
    stats = json.loads((out / "stats.json").read_text())
    dropped = {k: v["docs"] for k, v in stats["dropped"].items()}
    assert dropped["dedup/exact"] == 1 and dropped["dedup/near"] == 5
    kept = [d["id"] for d in docs_of(out)]

    def n(prefix):
        return sum(i.startswith(prefix) for i in kept)

    # One of each family survives, the lowest id: "jsonl:copies.jsonl" sorts before "text:a.txt" (so the
    # five copies of a.txt paragraphs stay and their originals go) and after "jsonl:b.jsonl".
    assert (n("jsonl:copies.jsonl"), n("text:a.txt"), n("jsonl:b.jsonl")) == (5, 5, 10)
    assert n("parquet:e.parquet") == 9 and n("text:d.txt.gz") == 10  # unrelated documents all stay


@pytest.mark.slow
def test_rerun_and_two_workers_give_identical_bytes(mixed_run, with_copies, tmp_path):
    out, _ = mixed_run
    again = tmp_path / "again"
    two = tmp_path / "two"
    run("--input", with_copies, "--output", again, "--until", "clean")
    run("--input", with_copies, "--output", two, "--until", "clean", "--workers", "2")
    files = sorted(p.name for p in out.glob("docs-*"))
    assert files and files == sorted(p.name for p in again.glob("docs-*")) == sorted(p.name for p in two.glob("docs-*"))
    for name in files:
        assert (out / name).read_bytes() == (again / name).read_bytes() == (two / name).read_bytes()

    def untimed(path):
        stats = json.loads(path.read_text())
        stats.pop("wall_seconds")
        for stage in stats["stages"].values():
            stage.pop("seconds", None)
        return stats

    assert untimed(out / "stats.json") == untimed(again / "stats.json") == untimed(two / "stats.json")


def test_until_read_and_parquet_output(with_copies, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "read"
    run("--input", with_copies, "--output", out, "--until", "read", "output.format=parquet")
    stats = json.loads((out / "stats.json").read_text())
    assert list(stats["stages"]) == ["read"]
    files = sorted(out.glob("docs-*.parquet"))
    assert len(files) == len(stats["output"]["files"]) > 1  # one per input unit that kept a document
    assert sum(pq.read_table(f).num_rows for f in files) == stats["documents"]["kept"] == stats["stages"]["read"]["docs"]


def test_missing_path_fails_before_the_pipeline(tmp_path):
    proc = run("--input", tmp_path / "nope", "--output", tmp_path / "out", check=False)
    assert proc.returncode == 2 and "nope: no such file or folder" in proc.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*"))


def test_bad_override_names_the_key(tmp_path):
    proc = run("--input", tmp_path, "dedup.bands=many", check=False)
    assert proc.returncode == 2 and "dedup.bands" in proc.stderr


def test_empty_input_and_output_folder_rules(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.txt").write_bytes(b"")
    out = tmp_path / "out"
    proc = run("--input", tmp_path / "in", "--output", out, "--until", "clean", check=False)
    assert proc.returncode == 2 and "error: no document was read: the inputs are empty" in proc.stderr
    assert "corpus pipeline" in proc.stderr and not out.exists()  # the summary, and nothing written
    (tmp_path / "in" / "a.txt").write_text(DOC)
    run("--input", tmp_path / "in", "--output", out, "--until", "clean")
    proc = run("--input", tmp_path / "in", "--output", out, check=False)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    run("--input", tmp_path / "in", "--output", out, "--overwrite", "--until", "read")
    assert json.loads((out / "stats.json").read_text())["until"] == "read"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    proc = run("--input", tmp_path / "in", "--output", mine, "--overwrite", check=False)
    assert proc.returncode == 2 and "did not write" in proc.stderr
    assert (mine / "notes.txt").read_text() == "keep me"
    (out / "notes.txt").write_text("mine too")  # a user's file inside a cramkit output folder
    proc = run("--input", tmp_path / "in", "--output", out, "--overwrite", check=False)
    assert proc.returncode == 2 and "notes.txt, which cramkit did not write" in proc.stderr
    assert (out / "notes.txt").read_text() == "mine too" and (out / "stats.json").is_file()


def test_a_users_folders_named_like_staging_are_never_deleted(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text(DOC)
    for name in (".out.tmp", ".out.old"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "thesis.tex").write_text("precious")
        proc = run("--input", tmp_path / "in", "--output", tmp_path / "out", "--until", "clean", check=False)
        assert proc.returncode == 2 and name in proc.stderr and "not" in proc.stderr
        assert (folder / "thesis.tex").read_text() == "precious"
        folder.rename(tmp_path / f"kept{name}")
    (tmp_path / ".out.tmp").mkdir()  # a killed run's staging folder carries the marker: cleared
    (tmp_path / ".out.tmp" / ".cramkit").write_text("cramkit staging folder\n")
    (tmp_path / ".out.tmp" / "stage").mkdir()
    run("--input", tmp_path / "in", "--output", tmp_path / "out", "--until", "clean")
    assert not (tmp_path / ".out.tmp").exists() and (tmp_path / "out" / "stats.json").is_file()


def test_every_input_failing_exits_non_zero_with_the_failed_files(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd" + bytes(range(256)) * 8)
    (tmp_path / "in" / "b.txt.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 100)
    for until in ("clean", "shards"):
        proc = run("--input", tmp_path / "in", "--output", tmp_path / "out", "--until", until, check=False)
        assert proc.returncode == 2, until
        assert "error: no document was read: 2 of 2 input files failed" in proc.stderr
        assert "2 files failed" in proc.stderr and "a.jsonl.zst" in proc.stderr and "b.txt.gz" in proc.stderr
        assert not (tmp_path / "out").exists() and not (tmp_path / ".out.tmp").exists()


def test_skipped_paths_are_counted_and_urls_never_become_folders(tmp_path):
    import os

    (tmp_path / "in" / ".git").mkdir(parents=True)
    (tmp_path / "in" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "in" / "a.txt").write_text(DOC)
    os.mkfifo(tmp_path / "in" / "fifo")
    out = tmp_path / "out"
    run("--input", tmp_path / "in", "--output", out, "--until", "clean")
    stats = json.loads((out / "stats.json").read_text())
    assert stats["files"]["skipped"] == {"fifo": 1, "hidden": 1} and stats["files"]["count"] == 1
    assert stats["documents"]["read"] == 1
    for url in ("foo://bucket/out", "s3x://b/c"):
        proc = run("--input", tmp_path / "in", "--output", url, check=False)
        assert proc.returncode == 2 and url.split(":")[0] in proc.stderr.splitlines()[-1]
        proc = run("--input", url, "--output", tmp_path / "o2", check=False)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert not any(p.name.endswith(":") for p in ROOT.iterdir()) and not (tmp_path / "o2").exists()


def test_config_overrides_types_and_hash(tmp_path):
    from configs import ConfigError
    from pipeline import config

    cfg = config.load("default", ["dedup.bands=7", "dedup.num_perm=56", "filters.languages=[en, de]",
                                  "filters.langid_model=null", "normalize.preset=cased"])
    assert (cfg.dedup.bands, cfg.dedup.num_perm, cfg.filters.languages) == (7, 56, ("en", "de"))
    assert cfg.hash() == config.load("default", ["dedup.num_perm=56", "dedup.bands=7", "filters.languages=[en, de]",
                                                 "normalize.preset=cased"]).hash() != config.load("default").hash()
    for bad, message in [("dedup.bands=x", "dedup.bands='x': expected an integer"),
                         ("dedup.band=3", "dedup.band: unknown key"),
                         ("filters.min_words=-1", "filters.min_words"),
                         ("dedup.bands=20", "dedup.num_perm"),
                         ("source=3", "source: expected a mapping"),
                         ("nodot", "key=value")]:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            config.load("default", [bad])
    (tmp_path / "x.yaml").write_text("dedup: [1, 2]\n")
    with pytest.raises(ConfigError, match="dedup: expected a mapping"):
        config.load(str(tmp_path / "x.yaml"))
    with pytest.raises(ConfigError, match="no such corpus config; presets: .*default"):
        config.load("no-such-preset")


def test_show_config_prints_every_key():
    text = run("--show-config", "--config", "demo", "dedup.bands=7", "dedup.num_perm=56").stdout
    assert "bands: 7" in text and "docstrings_max_mb: 20.0" in text and "# config hash:" in text
    for section in ("source:", "normalize:", "dedup:", "filters:", "output:", "tokenizer:", "pack:"):
        assert section in text


def test_stats_books_must_balance():
    from rich.console import Console

    from pipeline.graph import stats

    a = stats.Tally(out={"read": [10, 1000], "filter": [7, 700]}, dropped={"read/binary": [2, 5]},
                    seconds={"filter": 0.5},
                    files=[{"path": "a.txt", "bytes": 1200, "records": 12, "repaired": 1, "error": None}])
    b = stats.Tally(dropped={"filter/too_few_words": [3, 30]}, seconds={"filter": 0.25},
                    files=[{"path": "b.gz", "bytes": 99, "records": 0, "repaired": 0, "error": "truncated gzip file"}])
    written = [{"file": "docs-0", "docs": 7, "bytes": 400}]
    s = stats.build_stats(a + b, ["read", "filter"], [("x/.h", "hidden")], written, {})
    assert s["documents"] == {"read": 12, "kept": 7, "dropped": 5, "balanced": True}
    assert s["stages"]["filter"]["seconds"] == 0.75 and s["files"]["bytes_in"] == 1299
    assert s["files"]["failed"] == [{"path": "b.gz", "error": "truncated gzip file"}]
    assert s["files"]["skipped"] == {"hidden": 1}
    lost = stats.build_stats(a, ["read", "filter"], [], written, {})
    assert lost["documents"]["balanced"] is False
    console = Console(record=True, width=120)
    console.print(stats.summary_table(stats.build_stats(a + b, ["read", "filter"], [], [], {})))
    console.print(stats.summary_table(lost))
    text = console.export_text()
    assert "DOES NOT BALANCE" in text and "b.gz" in text


def test_a_full_disk_is_one_line_and_leaves_no_staging(tmp_path, shared_text):
    """The output on a 1 MB tmpfs, mounted in a private mount namespace (needs unshare and mount)."""
    import shutil

    disk = tmp_path / "disk"
    disk.mkdir()
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {disk}"],
                           capture_output=True, text=True)
    if probe.returncode != 0 or not shutil.which("unshare"):
        pytest.skip(f"cannot mount a small tmpfs here (unshare -m + mount): {probe.stderr.strip()}")
    script = (f"mount -t tmpfs -o size=1m tmpfs {disk} && {sys.executable} -m pipeline --input {shared_text} "
              f"--output {disk}/out; status=$?; ls -A {disk}; exit $status")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(errors) == 1 and "no space left on device" in errors[0] and "Traceback" not in proc.stderr
    assert proc.stdout.strip() == ""  # nothing left on the full disk: no staging, no output
