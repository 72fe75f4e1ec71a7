"""The masking-rate schedule: the rate follows the budget's progress, each row keeps an exact count of
targets at every rate, the FLOPs follow the positions decoded, the held-out task stays fixed, and a run
killed with SIGKILL and resumed ends bit-identical to an uninterrupted one."""

import json
import random
import signal
import subprocess

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_train_loop import (
    SEQ,
    SMALL,
    first_rows,
    make_shards,
    records,
    run_train,
    start_and_wait_for_checkpoint,
)

import train
from model.config import ModelConfig
from model.flops import train_flops_per_token
from trainer.budget import Budget, Meter
from trainer.data import MaskPlan
from trainer.masking import IGNORE, Masker
from trainer.schedule import mask_rate

LINEAR = ["mask_schedule=linear", "mask_start=0.3", "mask_end=0.15"]


@pytest.fixture(scope="module")
def small_shards(tmp_path_factory):
    full = make_shards(tmp_path_factory.mktemp("full") / "corpus")
    return first_rows(full, 200, tmp_path_factory.mktemp("small") / "corpus")


def test_mask_rate_follows_progress():
    assert mask_rate(0.0, "linear", 0.25, 0.3, 0.15) == pytest.approx(0.3)
    assert mask_rate(0.5, "linear", 0.25, 0.3, 0.15) == pytest.approx(0.225)
    assert mask_rate(1.0, "linear", 0.25, 0.3, 0.15) == pytest.approx(0.15)
    assert {mask_rate(p, "constant", 0.25, 0.3, 0.15) for p in (0.0, 0.4, 1.0)} == {0.25}
    with pytest.raises(ValueError, match="mask schedule"):
        mask_rate(0.5, "cosine", 0.25, 0.3, 0.15)
    with pytest.raises(ValueError, match="mask_start"):
        train.load("tiny", {"mask_schedule": "linear", "mask_start": 1.2})


@pytest.mark.parametrize("fraction", [0.3, 0.27, 0.2, 0.15])
def test_exact_count_per_row_at_every_rate_padded_to_eight(fraction):
    rows = np.random.default_rng(0).integers(5, 1000, size=(16, 128)).astype(np.uint16)
    masker = Masker(4, 1000, 0.25, "exact", seed=3, pad_to=8)
    out = masker(rows, 0, fraction=fraction)
    k = round(fraction * 128)
    assert out.positions.shape == (16, masker.width(128, fraction)) and out.positions.shape[1] % 8 == 0
    assert k <= out.positions.shape[1] < k + 8
    live = out.targets != IGNORE
    assert (live.sum(axis=1) == k).all() and live[:, :k].all()  # exactly k targets in every row
    assert all(len(set(r)) == out.positions.shape[1] for r in out.positions)
    seen = np.take_along_axis(out.input_ids, out.positions, 1)
    n_mask, n_random = round(0.8 * k), round(0.1 * k)
    assert (seen[:, :n_mask] == 4).all()  # 80/10/10 of the k targets
    assert np.array_equal(seen[:, n_mask + n_random:k], out.targets[:, n_mask + n_random:k])
    padding = out.positions[:, k:]  # decoded but not predicted: the input is left as it was there
    assert np.array_equal(np.take_along_axis(out.input_ids, padding, 1),
                          np.take_along_axis(rows.astype(np.int64), padding, 1))
    # without padding (the constant schedule) the shape is the count itself, as before
    assert Masker(4, 1000, fraction, "exact")(rows, 0).positions.shape == (16, k)


def test_mask_plan_predicts_the_meter_exactly_for_token_and_flop_budgets():
    cfg = ModelConfig.preset("tiny-2")

    def per_token(decoded):
        return train_flops_per_token(cfg, decoded / SEQ, SEQ)

    def rate(p):
        return mask_rate(p, "linear", 0.25, 0.3, 0.15)

    masker = Masker(4, 1000, 0.25, "exact", pad_to=8)
    for budget in (Budget("tokens", 40 * 8 * SEQ), Budget("flops", 40 * 8 * SEQ * per_token(16))):
        meter = Meter(budget, per_token(16))
        plan, seen = MaskPlan(meter, rate, per_token), []
        while meter.progress() < 1.0:
            p, fraction = meter.progress(), plan.fraction()
            assert fraction == rate(p)  # planned ahead = what the meter shows when the micro-batch runs
            meter.add(8 * SEQ, plan.spend(8 * SEQ, masker.width(SEQ, fraction)))
            seen.append(masker.width(SEQ, fraction))
        assert plan.flops == meter.flops and plan.tokens == meter.tokens
        assert seen[0] == 24 and seen[-1] == 16 and seen == sorted(seen, reverse=True)  # k 19 .. 10 at seq 64


def test_linear_schedule_logs_the_rate_counts_decoded_flops_and_keeps_the_heldout_task(small_shards, tmp_path):
    budget = 40 * 8 * SEQ
    common = [*SMALL, "--shards", str(small_shards), "--budget", f"{budget}tok", f"out={tmp_path}",
              "heldout_rows=16", "micro_batch=8", "batch_size=8"]
    assert train.main([*common, "name=lin", *LINEAR]) == 0
    assert train.main([*common, "name=const"]) == 0
    lin, const = records(tmp_path / "lin"), records(tmp_path / "const")
    rates = [r["mask_fraction"] for r in lin]
    # each record: the rate of its last micro-batch, planned at the progress before it
    assert rates == [pytest.approx(mask_rate((r["tokens"] - 8 * SEQ) / budget, "linear", 0, 0.3, 0.15)) for r in lin]
    assert rates == sorted(rates, reverse=True) and rates[0] > 0.29 and rates[-1] < 0.16
    assert {r["mask_fraction"] for r in const} == {0.25}
    # FLOPs: every micro-batch at its own decoded width (multiples of 8 of round(rate * 64))
    cfg = ModelConfig.preset("tiny-2")
    masker = Masker(4, 1000, 0.25, "exact", pad_to=8)
    expect = sum(8 * SEQ * train_flops_per_token(cfg, masker.width(SEQ, mask_rate(i / 40, "linear", 0, 0.3, 0.15))
                                                 / SEQ, SEQ) for i in range(40))
    state = [json.loads((p / "state.json").read_text()) for p in sorted((tmp_path / "lin" / "checkpoints").iterdir())]
    assert state[-1]["spent"]["flops"] == pytest.approx(expect, rel=1e-12)
    const_state = json.loads(sorted((tmp_path / "const" / "checkpoints").iterdir())[-1].joinpath("state.json").read_text())
    assert const_state["spent"]["flops"] == pytest.approx(budget * train_flops_per_token(cfg, 16 / SEQ, SEQ))
    # the held-out task does not follow the run's rate: the untrained models (same seed) score the same
    held = [[json.loads(x)["heldout_loss"] for x in (tmp_path / n / "metrics.jsonl").read_text().splitlines()
             if "heldout_loss" in x] for n in ("lin", "const")]
    assert held[0][0] == held[1][0] and held[0][-1] != held[1][-1]


@pytest.mark.slow
def test_sigkill_and_resume_with_the_schedule_equals_uninterrupted(small_shards, tmp_path):
    common = [*SMALL, *LINEAR, "--shards", str(small_shards), "--budget", f"{40 * 8 * SEQ}tok",
              "checkpoint_every=0s", f"out={tmp_path}"]
    assert train.main([*common, "name=whole"]) == 0
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for attempt, share in enumerate((1.0, 0.4, 0.0)):  # the machine's speed varies: retry earlier if it ended
        run = tmp_path / f"killed{attempt}"
        proc, _ = start_and_wait_for_checkpoint([*common, f"name={run.name}"], run)
        try:  # a random moment during training
            proc.wait(timeout=rng.uniform(0.0, share))
        except subprocess.TimeoutExpired:
            break
    assert proc.poll() is None, f"every run finished before its kill (seed {seed})"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = run_train([*common, f"name={run.name}", "--resume"])
    assert resumed.returncode == 0 and "resumed from" in resumed.stderr, resumed.stderr
    a = load_file(tmp_path / "whole" / "final" / "model.safetensors")
    b = load_file(run / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"seed {seed}"
    whole, killed = records(tmp_path / "whole"), records(run)
    assert [r["mask_fraction"] for r in whole] == [r["mask_fraction"] for r in killed]
    assert [r["loss"] for r in whole] == [r["loss"] for r in killed]
