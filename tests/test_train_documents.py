"""train.py and document boundaries: `document_mask=true` feeds a shard set's segment_ids to the model
(attention within documents) in training and in the held-out loss, a clear error without that column, and
shard sets of another objective refused in one line."""

import json
import math
from contextlib import nullcontext

import numpy as np
import pytest
import torch

import train
from model.config import ModelConfig
from model.heads import MaskedLM
from model.tokenizer import special_ids
from pipeline.__main__ import main as pipeline
from pipeline.tokens.shards import ShardSet
from trainer.batches import epoch_batches
from trainer.data import Prefetcher
from trainer.heldout import HeldOut, heldout_indices
from trainer.masking import Masker

SMALL = ["--model", "tiny-2", "micro_batch=8", "batch_size=16", "threads=1", "log_every=0", "verify=false",
         "precision=fp32"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shared_text):
    root = tmp_path_factory.mktemp("documents")
    texts = []
    for path in sorted((shared_text / "nltk_inaugural").iterdir())[:6]:
        raw = path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
        words = raw.split()  # documents of 25 words: most 64-token rows hold more than one
        texts += [" ".join(words[i : i + 25]) for i in range(0, len(words) - 24, 25)]
    (root / "in").mkdir()
    (root / "in" / "paras.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    common = ["dedup.near=false", "tokenizer.vocab_size=800", "tokenizer.compression_cutoff=0", "seq_len=64"]
    for name, extra in (("seg", ["pack.segments=true"]), ("plain", []), ("clm", ["objective=clm", "tokenizer.kind=bpe"])):
        assert pipeline(["--input", str(root / "in"), "--output", str(root / name), *common, *extra]) == 0
    return root


def test_document_mask_feeds_the_segment_ids_column(corpus):
    shards = ShardSet(corpus / "seg")
    loader = Prefetcher(epoch_batches(shards, 8, "never", 0, document_mask=True), Masker(4, shards.vocab_size), 0,
                        pin=False)
    batch = next(loader)
    loader.close()
    expected = shards.take(np.arange(8), column="segment_ids")
    assert batch.segment_ids.dtype == torch.int32 and expected.max() > 0
    np.testing.assert_array_equal(batch.segment_ids.numpy(), expected)
    plain = Prefetcher(epoch_batches(shards, 8, "never", 0), Masker(4, shards.vocab_size), 0, pin=False)
    assert next(plain).segment_ids is None  # off by default
    plain.close()


def test_training_with_and_without_the_document_mask(corpus, tmp_path):
    losses, held = {}, {}
    for mask in ("true", "false"):
        args = [*SMALL, "--shards", str(corpus / "seg"), "--budget", f"{6 * 8 * 64}tok", f"out={tmp_path}",
                f"name={mask}", f"document_mask={mask}", "heldout_rows=16"]
        assert train.main(args) == 0
        records = [json.loads(x) for x in (tmp_path / mask / "metrics.jsonl").read_text().splitlines()]
        losses[mask] = [r["loss"] for r in records if "loss" in r]
        held[mask] = [r["heldout_loss"] for r in records if "heldout_loss" in r]
        assert losses[mask] and all(math.isfinite(x) for x in losses[mask] + held[mask])
    assert losses["true"][0] != losses["false"][0]  # same seed, same rows: only the attention differs
    assert held["true"][0] != held["false"][0]  # the held-out loss too is scored with the run's attention


def test_heldout_loss_reads_the_segment_ids(corpus):
    shards = ShardSet(corpus / "seg")
    specials = special_ids(shards.tokenizer_file)
    rows = heldout_indices(len(shards), 16)
    model = MaskedLM(ModelConfig.preset("tiny-2").replace(vocab_size=shards.vocab_size)).eval()
    within = HeldOut(shards, rows, specials["[MASK]"], tuple(specials.values()), 8, document_mask=True)
    across = HeldOut(shards, rows, specials["[MASK]"], tuple(specials.values()), 8)
    segments = torch.from_numpy(shards.take(rows, "segment_ids").astype(np.int64))
    assert (segments.amax(1) > 0).float().mean() > 0.5  # most rows hold more than one document
    expected = {}
    for name, split in (("within", segments.split(8)), ("across", [None] * len(within.batches))):
        total = 0.0
        for (ids, positions, targets, _, _, live), seg in zip(within.batches, split, strict=True):
            with torch.no_grad():
                total += float(model(ids, positions, targets, segment_ids=seg)) * live
        expected[name] = total / within.targets
    cpu = torch.device("cpu")
    assert within.loss(model, cpu, nullcontext) == pytest.approx(expected["within"], rel=1e-12, abs=0)
    assert across.loss(model, cpu, nullcontext) == pytest.approx(expected["across"], rel=1e-12, abs=0)
    assert expected["within"] != expected["across"]  # an untrained model: different, if only slightly


def test_document_mask_without_segment_ids_and_clm_shards_are_refused(corpus, tmp_path, capsys):
    args = [*SMALL, "--budget", "1000tok", f"out={tmp_path}"]
    assert train.main([*args, "--shards", str(corpus / "plain"), "document_mask=true"]) == 1
    err = capsys.readouterr().err
    assert "document_mask=true needs a segment_ids column" in err and "pack.segments=true" in err
    assert train.main([*args, "--shards", str(corpus / "clm")]) == 1
    err = capsys.readouterr().err.strip()
    assert "objective 'clm'" in err and "examples/tiny_gpt.py" in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())  # refused before anything was written
