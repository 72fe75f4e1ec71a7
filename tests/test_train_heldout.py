"""train.py's held-out evaluation: which rows are held out (and never trained on), the unigram entropy, the
fixed all-[MASK] task whose best context-free score is that entropy, and what a run logs, prints and plots."""

import contextlib
import math
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_train_loop import SEQ, SMALL, make_shards, padded_shards, tokens

import train
from model.tokenizer import special_ids
from pipeline.tokens.shards import ShardSet
from trainer import metrics
from trainer.batches import Batches
from trainer.heldout import HELDOUT_MASK_FRACTION, HeldOut, TrainRows, heldout_indices, unigram_entropy


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return ShardSet(make_shards(tmp_path_factory.mktemp("heldout") / "corpus"))


def test_heldout_rows_are_spread_and_never_trained_on(shards):
    held = heldout_indices(len(shards), 50)
    assert len(set(held.tolist())) == 50 and held.min() >= 0 and held.max() < len(shards)
    gaps = np.diff(held)
    assert gaps.max() - gaps.min() <= 1  # evenly spread over the whole order, start to end
    rows = TrainRows(shards, held)
    assert len(rows) == len(shards) - 50
    assert not set(rows.index.tolist()) & set(held.tolist())
    seen = set()
    reader = Batches(rows, 64, shuffle=True, seed=3)
    for _ in range(-(-len(rows) // 64)):  # one epoch
        for r in next(reader):
            seen.add(r.tobytes())
    heldout_only = {r.tobytes() for r in shards.take(held)} - {r.tobytes() for r in rows.take(np.arange(len(rows)))}
    assert heldout_only and not heldout_only & seen  # held-out rows (not also elsewhere) never come out


def test_unigram_entropy_is_the_entropy_of_the_token_counts(shards):
    counts = Counter(shards.take(np.arange(len(shards))).ravel().tolist())
    total = sum(counts.values())
    expected = -sum(c / total * math.log(c / total) for c in counts.values())
    assert unigram_entropy(shards) == pytest.approx(expected, rel=1e-9)


class Unigram(torch.nn.Module):
    """The best context-free MLM predictor: log unigram frequencies, whatever the input; it also checks that
    the held-out task shows it nothing of the targets."""

    def __init__(self, log_p: torch.Tensor, mask_id: int):
        super().__init__()
        self.log_p, self.mask_id, self.seen = log_p, mask_id, []

    def forward(self, ids, positions, targets, attention_mask=None, segment_ids=None):
        self.seen.append(ids.gather(1, positions))
        logits = self.log_p.expand(targets.numel(), -1)
        return F.cross_entropy(logits, targets.flatten(), ignore_index=-100)


def test_heldout_task_masks_every_target_and_a_context_free_model_scores_the_entropy(shards):
    specials = special_ids(shards.tokenizer_file)
    held = heldout_indices(len(shards), len(shards) // 10)
    task = HeldOut(shards, held, specials["[MASK]"], tuple(specials.values()), 32)
    assert task.targets == len(held) * round(HELDOUT_MASK_FRACTION * SEQ)
    counts = np.bincount(shards.take(np.arange(len(shards))).ravel(), minlength=shards.vocab_size) + 1e-9
    model = Unigram(torch.tensor(np.log(counts / counts.sum()), dtype=torch.float32), specials["[MASK]"])
    loss = task.loss(model, torch.device("cpu"), contextlib.nullcontext)
    assert all((s == specials["[MASK]"]).all() for s in model.seen)  # every target replaced by [MASK]
    assert loss == pytest.approx(unigram_entropy(shards), abs=0.15)  # the entropy, up to the sampled targets
    again = HeldOut(shards, held, specials["[MASK]"], tuple(specials.values()), 7)
    assert again.loss(model, torch.device("cpu"), contextlib.nullcontext) == pytest.approx(loss, rel=1e-6)
    # the same targets whatever the batch size: the task is fixed


@pytest.mark.slow
def test_run_logs_heldout_loss_prints_header_and_verdict_and_plots_it(tmp_path, capsys):
    folder = make_shards(tmp_path / "corpus")
    code = train.main([*SMALL, "--shards", str(folder), "--budget", tokens(120), f"out={tmp_path}", "name=r",
                       "heldout_rows=64", "eval_every=0s", "precision=bf16"])
    assert code == 0
    err = capsys.readouterr().err
    rows = len(ShardSet(folder))
    for text in ("model tiny-2: 2 layers x 128", "parameters", "device cpu (1 threads), precision bf16",
                 f"{rows:,} rows x {SEQ} = {rows * SEQ:,} tokens", f"{rows - 64:,} rows train, 64 held out",
                 "unigram entropy of the rows", f"{120 * 8 * SEQ / ((rows - 64) * SEQ):.2f} epochs"):
        assert text in err, text
    logged = metrics.read(tmp_path / "r" / "metrics.jsonl")
    held = [r for r in logged if "heldout_loss" in r]
    assert held[0]["step"] == 0 and held[0]["heldout_loss"] > 0.9 * math.log(1024)  # untrained: ~ln(vocab)
    assert len(held) >= 3 and held[-1]["tokens"] == 120 * 8 * SEQ  # at the start, every step here, the end
    assert held[-1]["heldout_loss"] < held[0]["heldout_loss"] - 1.0
    entropy = held[-1]["unigram_entropy"]
    assert entropy == pytest.approx(unigram_entropy(ShardSet(folder)))
    assert f"held-out loss {held[-1]['heldout_loss']:.3f}" in err and f"unigram entropy {entropy:.3f}" in err
    train_recs = [r for r in logged if "loss" in r]
    assert train_recs[-1]["epoch"] == pytest.approx(120 * 8 * SEQ / ((rows - 64) * SEQ), abs=1e-3)
    assert (tmp_path / "r" / "train.png").stat().st_size > 10_000


def test_padding_is_neither_counted_nor_a_heldout_target(shards, tmp_path):
    """A padded shard set (its attention_mask column) leaves padding out of the entropy and the targets."""
    rows = shards.take(np.arange(200))
    keep = np.arange(SEQ)[None, :] < np.random.default_rng(0).integers(8, SEQ, size=len(rows))[:, None]
    rows[~keep] = 7  # a real id under a zero mask: only the stored column says it is padding
    padded = ShardSet(padded_shards(shards, rows, keep, tmp_path / "padded"))
    counts = Counter(rows[keep].tolist())
    total = sum(counts.values())
    assert unigram_entropy(padded) == pytest.approx(-sum(c / total * math.log(c / total) for c in counts.values()))
    specials = special_ids(shards.tokenizer_file)
    held = heldout_indices(len(padded), 20)
    task = HeldOut(padded, held, specials["[MASK]"], tuple(specials.values()), 8)
    for ids, positions, targets, attention, _, live in task.batches:
        real = attention.gather(1, positions)
        assert ((targets != -100) == real).all() and live == int(real.sum())  # targets only on real tokens
        assert (ids.gather(1, positions)[real] == specials["[MASK]"]).all()
