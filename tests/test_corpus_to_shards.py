"""End to end: `python -m pipeline` from raw text files to a verified shard set, through the CLI."""

import json
import re
import shutil

import numpy as np
import pyarrow as pa
import pytest

from model import tokenizer as model_tokenizer
from pipeline.__main__ import main
from pipeline.graph import finish
from pipeline.tokens import tokenize as T
from pipeline.tokens.shards import ShardError, ShardSet

SMALL = ["tokenizer.vocab_size=3000", "tokenizer.compression_cutoff=0.3", "seq_len=64",
         "shards.rows_per_shard=400"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, shared_text):
    """25 inaugural addresses (some CRLF) copied into one folder."""
    folder = tmp_path_factory.mktemp("raw")
    for path in sorted((shared_text / "nltk_inaugural").iterdir())[-25:]:
        shutil.copy(path, folder / path.name)
    return folder


def run(inputs, out, *extra):
    return main(["--input", str(inputs), "--output", str(out), *SMALL, *extra])


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.slow
def test_raw_text_to_verified_shards_and_byte_identical_rerun(inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    out = tmp_path / "corpus"
    assert run(inputs, out) == 0
    ds = ShardSet(out, verify=True)
    m, stats = ds.manifest, json.loads((out / "stats.json").read_text())
    assert len(ds) == m["rows"] > 400 and len(m["shards"]) >= 2 and ds.seq_len == 64
    assert stats["documents"]["balanced"] and "tokenize" in stats["stages"]
    assert m["counts"] == finish.counts_of(stats)  # the run's counts, without timings
    assert m["config"]["seq_len"] == 64 and m["config_hash"] == stats["config_hash"]
    assert m["order"]["name"] == "sentence-length" and (out / "report.png").is_file()

    # every whole document inside a row (between two [SEP]s) decodes to normalized input text
    tok = model_tokenizer.load(ds.tokenizer_file)
    norm = T.cramming_normalizer()
    corpus = squeeze("".join(norm.normalize_str(p.read_bytes().decode("utf-8", "replace"))
                             for p in sorted(inputs.iterdir())))
    whole = [piece for row in ds.take(np.arange(len(ds)))
             for piece in tok.decode(row.tolist(), skip_special_tokens=False).split("[SEP]")[1:-1]]
    assert len(whole) > 10 and all(squeeze(p) in corpus for p in whole)
    dots = (ds.take(np.arange(len(ds))) == tok.token_to_id(".")).sum(axis=1)
    assert np.all(np.diff(dots) <= 0)

    first = out / m["shards"][0]["file"]
    table = pa.ipc.open_stream(pa.memory_map(str(first))).read_all()
    assert table.schema.field("input_ids").type == pa.list_(pa.uint16(), 64)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "stats.json"}

    assert run(inputs, out) == 2  # an existing output is refused
    assert run(inputs, out, "--overwrite") == 0
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "stats.json"}
    assert after.keys() == before.keys() and all(after[k] == before[k] for k in before)


@pytest.mark.slow
def test_everything_filtered_away_is_an_error(inputs, tmp_path, capsys):
    out = tmp_path / "nothing"
    assert run(inputs, out, "tokenizer.compression_cutoff=0.01") == 2
    err = capsys.readouterr().err
    assert "error: every document was filtered away" in err and "Traceback" not in err
    assert T.DROP_REASON in err  # the summary table shows where the documents went
    assert not out.exists() and not (tmp_path / ".nothing.tmp").exists()
    with pytest.raises(ShardError):
        ShardSet(out)


@pytest.mark.slow
def test_default_input_ends_in_shards(tmp_path):
    out = tmp_path / "default"
    assert main(["--output", str(out), "source.docstrings_max_mb=1", *SMALL]) == 0
    ds = ShardSet(out, verify=True)
    assert len(ds) > 0 and ds.manifest["config"]["source"]["docstrings_max_mb"] == 1
