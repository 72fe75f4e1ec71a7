"""The corpus pipeline on object storage and on workers that share no disk with the launcher: input
read from a bucket on a local S3-compatible server (moto), shards written to a bucket, the same bytes
as a local run; the shard set downloaded trains; a portable job whose workers live in another mount
namespace with a private /tmp gives the same bytes too."""

import json
import os

import pytest

import train
from pipeline.__main__ import main
from pipeline.files import storage

ARGS = ["--created", "2026-01-01T00:00:00Z", "tokenizer.vocab_size=2000", "tokenizer.compression_cutoff=0.3",
        "seq_len=64", "shards.rows_per_shard=800", "--split-mb", "0.2"]
SET = ("manifest.json", "tokenizer.json")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shared_text):
    """The inaugural addresses as a text file, a JSON Lines file big enough to be split, and a .gz file."""
    import gzip

    root = tmp_path_factory.mktemp("corpus")
    files = sorted((shared_text / "nltk_inaugural").iterdir())
    (root / "a.txt").write_bytes(b"\n\n".join(f.read_bytes() for f in files[:15]))
    paras = [p for f in files[15:45] for p in f.read_bytes().decode("utf-8", "replace").split("\n\n") if p.strip()]
    (root / "b.jsonl").write_text("".join(json.dumps({"text": p}) + "\n" for p in paras))
    (root / "c.txt.gz").write_bytes(gzip.compress(b"\n\n".join(f.read_bytes() for f in files[45:])))
    return root


def upload(folder, prefix):
    for path in sorted(folder.iterdir()):
        storage.write_bytes(f"{prefix}/{path.name}", path.read_bytes())


def shard_set(folder_or_prefix) -> dict:
    """{name: bytes} of a shard set (stats.json aside: it holds timings)."""
    found = {path.rsplit("/", 1)[-1]: path for path, _ in storage.list_files(str(folder_or_prefix))}
    return {name: storage.read_bytes(path) for name, path in found.items() if name != "stats.json"}


@pytest.fixture(scope="module")
def local_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    assert main(["--input", str(corpus), "--output", str(out), *ARGS]) == 0
    files = shard_set(out)
    assert set(SET) <= set(files) and sum(n.startswith("shard-") for n in files) >= 2
    return files


@pytest.mark.slow
def test_a_bucket_in_and_a_bucket_out_give_the_local_bytes_and_train(corpus, local_run, s3_server, s3_bucket,
                                                                      tmp_path):
    upload(corpus, f"{s3_bucket}/raw")
    out = f"{s3_bucket}/corpus"
    assert main(["--input", f"{s3_bucket}/raw", "--output", out, *s3_server.options, *ARGS]) == 0
    assert shard_set(out) == local_run
    assert not storage.list_files(f"{s3_bucket}/.corpus.tmp")  # the staging prefix is gone
    stats = json.loads(storage.read_text(f"{out}/stats.json"))
    assert stats["documents"]["balanced"] and stats["files"]["count"] == 3
    # an existing output is refused; --overwrite replaces it
    assert main(["--input", f"{s3_bucket}/raw", "--output", out, *s3_server.options, *ARGS]) == 2
    assert main(["--input", f"{s3_bucket}/raw", "--output", out, "--overwrite", *s3_server.options, *ARGS]) == 0
    assert shard_set(out) == local_run
    # the shard set, downloaded, is a training set
    local = tmp_path / "downloaded"
    local.mkdir()
    for name, data in shard_set(out).items():
        (local / name).write_bytes(data)
    assert train.main(["--model", "tiny-2", "--shards", str(local), "micro_batch=4", "batch_size=8",
                       "--budget", "2048tok", f"out={tmp_path}", "name=s3"]) == 0
    assert (tmp_path / "s3" / "final" / "model.safetensors").is_file()
    assert not any(p.name.endswith(":") for p in tmp_path.iterdir())


@pytest.mark.slow
def test_workers_in_another_mount_namespace_give_the_same_bytes(corpus, local_run, portable_cluster, s3_server,
                                                                 s3_bucket):
    upload(corpus, f"{s3_bucket}/raw")
    out = f"{s3_bucket}/corpus"
    assert main(["--input", f"{s3_bucket}/raw", "--output", out, "--runner", "PortableRunner",
                 *portable_cluster.options[1:], *s3_server.options, *ARGS]) == 0
    assert shard_set(out) == local_run


def test_unsupported_schemes_fail_before_the_pipeline(tmp_path, capsys):
    for url in ("foo://bucket/out", "s3:/bucket/out"):
        assert main(["--input", str(tmp_path), "--output", url]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and url.split("/")[0] in err[0]
    assert not (tmp_path / "s3:").exists() and not os.path.exists("s3:")
