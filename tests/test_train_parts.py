"""Unit tests of the trainer parts against the formulas of the cramming recipe."""

import math

import numpy as np
import pytest

from trainer.budget import Budget, Meter
from trainer.config import TrainConfig, load
from trainer.masking import IGNORE, Masker
from trainer.schedule import batch_size, lr_multiplier


@pytest.mark.parametrize("text,kind,amount", [
    ("24h", "seconds", 86400), ("90m", "seconds", 5400), ("45s", "seconds", 45), ("1.5h", "seconds", 5400),
    ("2e9tok", "tokens", 2e9), ("500Mtok", "tokens", 5e8), ("3Pflop", "flops", 3e15),
    ("1.5e18flops", "flops", 1.5e18), ("200ktok", "tokens", 2e5)])
def test_budget_parse(text, kind, amount):
    b = Budget.parse(text)
    assert b.kind == kind and b.amount == pytest.approx(amount)


@pytest.mark.parametrize("text", ["", "24", "tomorrow", "5Mh", "-3h", "0m", "3 days"])
def test_budget_parse_rejects(text):
    with pytest.raises(ValueError, match="budget"):
        Budget.parse(text)


def test_budget_and_intervals_are_parsed_once_at_load(monkeypatch):
    calls = []
    parse = Budget.parse.__func__
    monkeypatch.setattr(Budget, "parse", classmethod(lambda cls, text: calls.append(text) or parse(cls, text)))
    cfg = load("tiny", {"budget": "2e6tok", "eval_every": "90s", "checkpoint_every": "0s"})
    assert sorted(calls) == ["2e6tok", "90s"]  # "0s" needs no parse
    for _ in range(3):  # as the loop reads them: typed values, no parse
        assert cfg.budget_limit == Budget("tokens", 2e6) and cfg.eval_seconds == 90.0 and cfg.checkpoint_seconds == 0.0
    assert len(calls) == 2
    with pytest.raises(ValueError, match="eval_every='5tok' must be a time"):
        load("tiny", {"eval_every": "5tok"})
    with pytest.raises(ValueError, match="budget 'soon'"):
        load("tiny", {"budget": "soon"})


def test_meter_progress_tokens_and_flops_and_resume():
    meter = Meter(Budget.parse("1000tok"), flops_per_token=10.0)
    meter.add(250, 2500.0)
    assert meter.progress() == 0.25 and meter.flops == 2500 and meter.progress_at(500, 0.0) == 0.5
    meter.add(10_000, 1e5)
    assert meter.progress() == 1.0  # capped
    # a checkpoint without the FLOP sum: tokens x the nominal rate
    flops = Meter(Budget.parse("5000flop"), flops_per_token=10.0, spent={"tokens": 100, "seconds": 3.0})
    assert flops.progress() == pytest.approx(0.2) and flops.elapsed() == 3.0
    flops.add(100, 500.0)  # FLOPs add up per micro-batch, whatever the tokens
    assert flops.progress() == pytest.approx(0.3) and flops.state_dict()["flops"] == 1500.0
    assert flops.tokens_at_end() == 200 + 3500 / 10.0
    assert Meter(flops.budget, 10.0, flops.state_dict()).progress() == flops.progress()


def test_meter_clock_pauses():
    meter = Meter(Budget.parse("1h"), 1.0, spent={"seconds": 1800.0, "tokens": 0})
    assert meter.progress() == 0.5
    meter.start()
    meter.stop()
    paused = meter.elapsed()
    assert paused >= 1800.0 and meter.elapsed() == paused  # stopped clock does not move


@pytest.mark.parametrize("p", np.linspace(0, 1, 41))
def test_triangle2_formula(p):
    assert lr_multiplier(p) == pytest.approx(max(0.0, min(0.25 + p, 4 - 4 * p)))


def test_triangle2_shape_and_one_cycle():
    assert lr_multiplier(0.0) == 0.25 and lr_multiplier(0.75) == 1.0 and lr_multiplier(1.0) == 0.0
    assert lr_multiplier(0.5, "one-cycle") == 1.0 and lr_multiplier(0.0, "one-cycle") == 0.0
    assert lr_multiplier(0.25, "one-cycle") == 0.5 and lr_multiplier(1.0, "one-cycle") == 0.0
    with pytest.raises(ValueError, match="one-cycle"):
        lr_multiplier(0.5, "cosine")


def test_batch_ramp_formula():
    micro, target, ramp = 512, 8192, 0.6
    assert batch_size(0.0, micro, target, ramp) == micro
    assert batch_size(0.6, micro, target, ramp) == target
    assert batch_size(0.9, micro, target, ramp) == target
    for p in np.linspace(0, 0.6, 97):
        expected = min(target, micro * (math.floor(p * target / ramp / micro) + 1))
        got = batch_size(p, micro, target, ramp)
        assert got == expected and got % micro == 0
    # linear in p: halfway through the ramp is about half the batch
    assert abs(batch_size(0.3, micro, target, ramp) - target / 2) <= micro
    assert batch_size(0.1, micro, target, 0.0) == target
    with pytest.raises(ValueError, match="multiple"):
        batch_size(0.1, 500, 8192, 0.6)


def test_exact_masking_counts_and_80_10_10():
    rng = np.random.default_rng(0)
    rows = rng.integers(5, 1000, size=(64, 128)).astype(np.uint16)
    masker = Masker(mask_id=4, vocab_size=1000, fraction=0.25, mode="exact", seed=3)
    out = masker(rows, index=0)
    assert out.positions.shape == (64, 32) and masker.count(128) == 32  # round(0.25 * 128)
    for r in range(64):
        assert len(set(out.positions[r])) == 32  # distinct positions
    assert np.array_equal(out.targets, np.take_along_axis(rows.astype(np.int64), out.positions, 1))
    seen = np.take_along_axis(out.input_ids, out.positions, 1)
    # first 26 (80%) are [MASK], the last 3 (10%) are kept, the 3 in between are random ids
    assert (seen[:, :26] == 4).all()
    assert np.array_equal(seen[:, 29:], out.targets[:, 29:])
    assert (seen[:, 26:29] != 4).all()
    assert (seen[:, 26:29] != out.targets[:, 26:29]).mean() > 0.9  # random ids rarely equal the original
    untouched = np.ones_like(rows, dtype=bool)
    np.put_along_axis(untouched, out.positions, False, 1)
    assert np.array_equal(out.input_ids[untouched], rows[untouched])
    # positions are uniform over the row
    counts = np.bincount(np.concatenate([masker(rows, i).positions.ravel() for i in range(50)]), minlength=128)
    assert counts.min() > 0.6 * counts.mean()


def test_masking_is_a_function_of_seed_and_index():
    rows = np.arange(4 * 128, dtype=np.uint16).reshape(4, 128) % 900 + 5
    a, b = Masker(4, 1000, seed=1), Masker(4, 1000, seed=1)
    assert np.array_equal(a(rows, 7).input_ids, b(rows, 7).input_ids)
    assert not np.array_equal(a(rows, 7).positions, a(rows, 8).positions)
    assert not np.array_equal(a(rows, 7).positions, Masker(4, 1000, seed=2)(rows, 7).positions)


def test_bernoulli_masking_rate_and_specials():
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 1000, size=(256, 128)).astype(np.uint16)
    rows[:, 0] = 2  # [CLS]-like special at the start of every row
    masker = Masker(mask_id=4, vocab_size=1000, fraction=0.15, mode="bernoulli", special_ids=(0, 1, 2, 3, 4))
    out = masker(rows, 0)
    live = out.targets != IGNORE
    assert out.positions.shape[1] % 8 == 0
    rate = live.sum() / np.isin(rows, [0, 1, 2, 3, 4], invert=True).sum()
    assert 0.13 < rate < 0.17
    assert not np.isin(out.targets[live], [0, 1, 2, 3, 4]).any()
    seen = np.take_along_axis(out.input_ids, out.positions, 1)[live]
    assert 0.75 < (seen == 4).mean() < 0.85


def test_padding_is_never_a_target():
    rows = np.full((8, 32), 0, dtype=np.uint16)
    rows[:, :20] = 7
    attention = (rows != 0).astype(np.int64)
    out = Masker(4, 100, fraction=0.25, mode="exact")(rows, 0, attention)
    padded = np.take_along_axis(attention, out.positions, 1) == 0
    assert (out.targets[padded] == IGNORE).all() and (out.targets[~padded] == 7).all()


def test_config_presets_and_overrides():
    crammed = load("crammed-bert")
    assert (crammed.lr, crammed.betas, crammed.eps, crammed.weight_decay, crammed.grad_clip) == (
        1e-3, [0.9, 0.98], 1e-12, 0.01, 0.5)
    assert (crammed.batch_size, crammed.batch_ramp, crammed.mask_fraction, crammed.schedule) == (
        8192, 0.6, 0.25, "triangle2")
    assert crammed.name == "crammed-bert" and crammed.budget == "24h"
    tiny = load("tiny", {"budget": "2e6tok", "micro_batch": 8, "lr": "5e-4"})
    assert tiny.budget == "2e6tok" and tiny.micro_batch == 8 and tiny.lr == 5e-4
    with pytest.raises(ValueError, match="learning_rate: unknown key; the train config has model"):
        load("tiny", {"learning_rate": 1})
    with pytest.raises(ValueError, match="multiple of micro_batch"):
        load("tiny", {"micro_batch": 24})
    with pytest.raises(ValueError, match="budget"):
        load("tiny", {"budget": "soon"})
    with pytest.raises(ValueError, match="no such train config"):
        load("no-such-config")


def test_resume_conflicts_ignore_observation_only_fields():
    a = TrainConfig(budget="1e6tok")
    b = TrainConfig(budget="1e6tok", log_every=1.0, checkpoint_every="0s", threads=1)
    assert b.resume_conflicts(a.to_dict()) == []
    c = TrainConfig(budget="2e6tok", lr=5e-4)
    assert c.resume_conflicts(a.to_dict()) == ["budget", "lr"]


@pytest.mark.parametrize("mode", ["exact", "bernoulli"])
def test_masked_arrays_are_contiguous(mode):
    """A strided `positions` would make every pinned copy to the GPU go through a temporary."""
    rows = np.random.default_rng(0).integers(5, 1000, size=(16, 128)).astype(np.uint16)
    out = Masker(4, 1000, fraction=0.25, mode=mode)(rows, 0)
    assert all(a.flags.c_contiguous for a in (out.input_ids, out.positions, out.targets))


def test_mfu_peak_by_exact_gpu_name(monkeypatch):
    import torch

    from trainer.device import peak_flops

    cuda = torch.device("cuda")
    expected = {"NVIDIA H100 80GB HBM3": 989.4, "NVIDIA H100 PCIe": 756.0, "NVIDIA H100 NVL": 835.5,
                "NVIDIA H200": 989.4, "NVIDIA A100-SXM4-80GB": 312.0, "NVIDIA L40S": 362.05, "NVIDIA A40": 149.7,
                "NVIDIA RTX 6000 Ada Generation": 364.2, "NVIDIA GeForce RTX 4090": 165.2,
                # a substring match would give these a wrong peak: none is better
                "NVIDIA H100 80GB HBM3 MIG 1g.10gb": None, "NVIDIA A100-SXM4-40GB MIG 3g.20gb": None,
                "NVIDIA A6000 Something": None, "Tesla T4": None, "NVIDIA GeForce RTX 2080 Ti": None}
    for name, tflops in expected.items():
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, n=name: n)
        assert peak_flops(0.0, cuda) == (None if tflops is None else pytest.approx(tflops * 1e12)), name
    assert peak_flops(100.0, cuda) == 1e14 and peak_flops(0.0, torch.device("cpu")) is None


@pytest.mark.parametrize("preset", ["bert-base", "crammed-bert"])
def test_no_weight_decay_on_any_norm_or_bias(preset):
    import torch

    from model.config import ModelConfig
    from model.heads import MaskedLM
    from trainer.run import build_optimizer

    model = MaskedLM(ModelConfig.preset(preset, num_layers=1, vocab_size=30522))
    groups = build_optimizer(model, TrainConfig(), torch.device("cpu")).param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    names = {name: id(p) in decayed for name, p in model.named_parameters()}
    assert len(names) == sum(len(g["params"]) for g in groups)  # every parameter in exactly one group
    for name, decays in names.items():
        assert decays == (not (name.endswith("bias") or "norm" in name or name == "transform.2.weight")), name
    if preset == "bert-base":
        assert not names["transform.2.weight"]  # the MLM head's LayerNorm, which a name rule missed
    else:
        assert names["encoder.embeddings.position_scale"]  # cramming decays the scalar position scale


def test_truncate_keeps_records_up_to_the_checkpoint(tmp_path):
    """A run that ends inside an accumulation logs its last step twice; a checkpoint holding the first
    of those must not keep the second."""
    from trainer import metrics

    path = tmp_path / "metrics.jsonl"
    log = metrics.MetricsLog(path)
    for step, tokens in ((1, 100), (2, 200), (2, 260), (3, 300)):
        log.write({"step": step, "tokens": tokens, "loss": 1.0})
    log.close()
    metrics.truncate(path, 2, 200)
    assert [(r["step"], r["tokens"]) for r in metrics.read(path)] == [(1, 100), (2, 200)]


def test_tokens_at_end_of_each_budget_kind():
    assert Meter(Budget.parse("5e6tok"), 3.0).tokens_at_end() == 5e6
    assert Meter(Budget.parse("6e9flop"), 3.0).tokens_at_end() == 2e9
    timed = Meter(Budget.parse("100s"), 3.0, spent={"seconds": 40.0, "tokens": 1000})
    assert timed.tokens_at_end() is None and timed.tokens_at_end(50.0) == pytest.approx(1000 + 50 * 60)


def test_shuffle_and_precision_settings_are_checked():
    assert TrainConfig().shuffle == "later" and load("crammed-bert").shuffle == "later"
    with pytest.raises(ValueError, match="shuffle='false'"):
        load("tiny", {"shuffle": False})
    with pytest.raises(ValueError, match="precision='fp16'"):
        load("tiny", {"precision": "fp16"})
    assert TrainConfig(budget="1e6tok", micro_batch=16).resume_conflicts(TrainConfig(budget="1e6tok").to_dict()) == []
