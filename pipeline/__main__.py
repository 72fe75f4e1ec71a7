"""python -m pipeline: raw text -> clean documents (and later stages) with an account of every drop."""

import argparse
import json
import logging
import re
import shutil
import sys
import time
from pathlib import Path

EPILOG = """\
inputs (--input, repeatable; default: docstrings):
  FILE | FOLDER | 'GLOB'     .txt (and anything else: plain text), .jsonl/.ndjson/.json, .parquet,
                             each also as .gz / .zst; a folder is read recursively
  hf:NAME[:CONFIG][@SPLIT]   a Hugging Face dataset, streamed (needs the Hub; offline, pass files)
  docstrings                 the embedded corpus: docstrings of the installed Python and packages
                             (cap with source.docstrings_max_mb=20)

overrides (key=value, dotted, after the options; values are YAML):
  source.text_mode=block|file|line   source.text_field=text   source.encoding_errors=replace|latin-1|drop
  normalize.preset=cramming|cased|none   dedup.bands=14 dedup.rows=8 dedup.num_perm=112 dedup.near=false
  filters.enabled=false filters.min_words=20 filters.langid_model=models/lid.176.ftz
  output.format=jsonl.zst|parquet output.file_mb=128
  (every key and its value: python -m pipeline --show-config)

runners: the default is Beam's local FnApiRunner (named explicitly: Beam's DirectRunner first tries to
download Prism). Other Beam options pass through, e.g.
  --runner PortableRunner --job_endpoint=embed --environment_type=LOOPBACK   (in-process portable job API)
  --runner FlinkRunner --flink_master=HOST:8081 --environment_type=LOOPBACK
  --runner SparkRunner --spark_master_url=spark://HOST:7077
  --runner DataflowRunner --project=P --region=R --temp_location=gs://B/tmp
(runs on a cluster need --input and --output on storage every worker can reach)

output (--output, default out/corpus), built in a temporary folder and moved into place at the end:
  --until shards (default)   shard-*.arrow, tokenizer.json, report.png, manifest.json (the trainer's input)
  --until clean (or earlier) docs-*.jsonl.zst (or .parquet), each sorted by id
and always stats.json: documents read = kept + dropped per reason, failed files with their error, bytes
in/out, seconds per stage. Same input and config give the same bytes on any runner and worker count.
"""


def parse(argv):
    from pipeline.build import STAGES

    ap = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", action="append", metavar="SPEC",
                    help="a file, folder, glob, hf:NAME[:CONFIG][@SPLIT] or docstrings (repeatable)")
    ap.add_argument("--output", type=Path, default=Path("out/corpus"), metavar="DIR",
                    help="output folder, written through a temporary folder (default: out/corpus)")
    ap.add_argument("--config", default="default", metavar="NAME|PATH",
                    help="configs/corpus/NAME.yaml or a YAML path (default: default)")
    ap.add_argument("--until", choices=STAGES, default=STAGES[-1],
                    help=f"stop after this stage and write its documents (default: {STAGES[-1]})")
    ap.add_argument("--runner", default="FnApiRunner",
                    help="Beam runner (default: FnApiRunner, local; see below for others)")
    ap.add_argument("--workers", type=int, default=1,
                    help="local worker processes of FnApiRunner (default 1; >1 uses multi_processing)")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace an existing output folder (only one a previous run wrote)")
    ap.add_argument("--show-config", action="store_true",
                    help="print every setting (after --config and overrides) as YAML, and its hash; run nothing")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. dedup.bands=20")
    args, beam_args = ap.parse_known_args(argv)
    stray = [a for a in beam_args if not a.startswith("--")]
    if stray:
        ap.error(f"unexpected arguments {stray}: overrides are key=value, Beam options --name=value")
    if args.workers < 1:
        ap.error("--workers must be >= 1")
    return args, beam_args


def beam_options(args, beam_args):
    from apache_beam.options.pipeline_options import PipelineOptions

    opts = [f"--runner={args.runner}", "--pickle_library=cloudpickle", *beam_args]
    if args.runner in ("FnApiRunner", "DirectRunner"):
        mode = "multi_processing" if args.workers > 1 else "in_memory"
        opts += [f"--direct_num_workers={args.workers}", f"--direct_running_mode={mode}"]
    return PipelineOptions(opts)


def main(argv=None) -> int:
    # Beam's GCP module warns about its optional clients on import; nothing cramkit uses.
    logging.getLogger().addFilter(lambda record: "apitools" not in record.getMessage())
    args, beam_args = parse(sys.argv[1:] if argv is None else argv)
    from rich.console import Console

    from pipeline import config, output, sources, stats

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
    specs = args.input or ["docstrings"]
    try:
        cfg = config.load(args.config, args.overrides)
        if args.show_config:
            import yaml

            print(yaml.safe_dump(json.loads(json.dumps(cfg.to_dict())), sort_keys=False), end="")
            print(f"# config hash: {cfg.hash()}")
            return 0
        for spec in specs:
            if spec.startswith("hf:"):
                sources.check_hf(spec)
        units = sources.expand(specs, cfg.source)
        tmp = output.staging(args.output, args.overwrite)
    except (config.ConfigError, sources.InputError, output.OutputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    import apache_beam as beam

    from pipeline.build import build
    from pipeline.document import EmptyCorpus

    total = sum(u.size for u in units)
    console.print(f"reading {len(units):,} input units ({total / 1e6:.1f} MB) with {args.runner}, "
                  f"{args.workers} worker(s), until {args.until}; staging in {tmp}", markup=False)
    start = time.perf_counter()
    try:
        with beam.Pipeline(options=beam_options(args, beam_args)) as p:
            build(p, cfg, units, tmp, args.until, extra={"inputs": specs})
        path = tmp / stats.STATS
        result = json.loads(path.read_text())
        result["wall_seconds"] = round(time.perf_counter() - start, 3)
        stats.write_json(path, result)
        output.publish(tmp, args.output)
    except EmptyCorpus as e:  # the counts say where the documents went; then a plain error, no traceback
        if (tmp / stats.STATS).is_file():
            console.print(stats.summary_table(json.loads((tmp / stats.STATS).read_text())))
        reason = re.sub(r" \[while running .*\]$", "", str(e))  # Beam names the step it failed in
        print(f"error: {reason}\nnothing was written to {args.output}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone once published; a failed run's staging folder
    console.print(stats.summary_table(result))
    console.print(f"wrote {args.output}", markup=False)
    if not result["documents"]["balanced"]:
        console.print("[bold red]error:[/] the document counts do not balance; this is a bug, please report it")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
