"""The same graph through Beam's portable job API (the path Flink and Spark take), in-process and
offline, gives the same bytes and counts as the local FnApiRunner."""

import json

from pipeline.__main__ import main

PORTABLE = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"]


def run(inputs, out, *options):
    assert main(["--input", str(inputs), "--output", str(out), "--until", "clean", *options]) == 0
    stats = json.loads((out / "stats.json").read_text())
    stats.pop("wall_seconds")
    for stage in stats["stages"].values():
        stage.pop("seconds", None)
    return stats, {f.name: f.read_bytes() for f in out.glob("docs-*")}


def test_portable_runner_matches_fnapi_runner(mixed_corpus, tmp_path):
    local = run(mixed_corpus["dir"], tmp_path / "local")
    portable = run(mixed_corpus["dir"], tmp_path / "portable", *PORTABLE)
    assert local[0]["documents"]["balanced"] and local[0]["documents"]["kept"] > 30
    assert portable == local
