"""The same graph through Beam's portable job API (the path Flink and Spark take), in-process and
offline, gives the same bytes and counts as the local FnApiRunner."""

import json

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import config, sources
from pipeline.build import build

PORTABLE = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"]


def run(units, cfg, out, options):
    out.mkdir()
    with beam.Pipeline(options=PipelineOptions(options)) as p:
        build(p, cfg, units, out, "clean")
    stats = json.loads((out / "stats.json").read_text())
    for stage in stats["stages"].values():
        stage.pop("seconds", None)
    return stats, {f.name: f.read_bytes() for f in out.glob("docs-*")}


def test_portable_runner_matches_fnapi_runner(mixed_corpus, tmp_path):
    cfg = config.load("default")
    units = sources.expand([str(mixed_corpus["dir"])], cfg.source)
    local = run(units, cfg, tmp_path / "local", ["--runner=FnApiRunner"])
    portable = run(units, cfg, tmp_path / "portable", PORTABLE)
    assert local[0]["documents"]["balanced"] and local[0]["documents"]["kept"] > 30
    assert portable == local
