"""GLUE metrics against scikit-learn / scipy, the two averages, the majority baseline, protocol configs."""

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from configs import ConfigError
from glueval import metrics, protocol
from glueval.finetune import lr_lambda
from glueval.tasks import TASKS


@pytest.mark.parametrize("seed", range(20))
def test_classification_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    gold = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < rng.random(), gold, rng.integers(0, 2, n))  # correlated to a random degree
    assert metrics.mcc(pred, gold) == pytest.approx(matthews_corrcoef(gold, pred), abs=1e-12)
    assert metrics.f1(pred, gold) == pytest.approx(f1_score(gold, pred, zero_division=0.0), abs=1e-12)
    assert metrics.accuracy(pred, gold) == pytest.approx(accuracy_score(gold, pred), abs=1e-12)
    three = rng.integers(0, 3, n)
    assert metrics.accuracy(three, gold) == pytest.approx(accuracy_score(gold, three), abs=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_correlations_match_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 300))
    gold = rng.integers(0, 26, n) / 5.0  # STS-B-like scores with many ties
    pred = gold + rng.normal(scale=rng.uniform(0.1, 3), size=n)
    pred[: n // 4] = np.round(pred[: n // 4])  # ties in the predictions too
    assert metrics.pearson(pred, gold) == pytest.approx(pearsonr(pred, gold).statistic, abs=1e-10)
    assert metrics.spearman(pred, gold) == pytest.approx(spearmanr(pred, gold).statistic, abs=1e-10)


def test_degenerate_cases_are_zero_like_sklearn():
    gold = np.array([0, 1, 1, 0])
    assert metrics.mcc(np.ones(4), gold) == matthews_corrcoef(gold, np.ones(4)) == 0.0
    assert metrics.f1(np.zeros(4), np.zeros(4)) == 0.0
    assert metrics.pearson(np.full(4, 2.5), [1.0, 2.0, 3.0, 4.0]) == 0.0
    assert metrics.spearman(np.full(4, 2.5), [1.0, 2.0, 3.0, 4.0]) == 0.0


def test_score_uses_each_tasks_metrics_x100():
    pred, gold = np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])
    assert metrics.score(TASKS["mrpc"], pred, gold) == pytest.approx({"f1": 100 * 2 / 3, "accuracy": 75.0})
    assert set(metrics.score(TASKS["cola"], pred, gold)) == {"mcc"}
    assert set(metrics.score(TASKS["stsb"], [0.1, 2.0, 3.5], [0.0, 2.5, 3.0])) == {"pearson", "spearman"}


def test_majority_prediction():
    assert metrics.majority_prediction(TASKS["rte"], [0, 1, 1, 0, 1]) == 1
    assert metrics.majority_prediction(TASKS["rte"], [0, 1]) == 0  # tie: the lower id
    assert metrics.majority_prediction(TASKS["mnli"], [2, 2, 1, 0, 2]) == 2
    assert metrics.majority_prediction(TASKS["stsb"], [1.0, 2.0, 4.5]) == pytest.approx(2.5)


def _scores(**v):
    return {"mnli": {"m": {"accuracy": v["mnli_m"]}, "mm": {"accuracy": v["mnli_mm"]}},
            "qqp": {"dev": {"f1": v["qqp"], "accuracy": v["qqp_acc"]}}, "qnli": {"dev": {"accuracy": v["qnli"]}},
            "sst2": {"dev": {"accuracy": v["sst2"]}}, "cola": {"dev": {"mcc": v["cola"]}},
            "stsb": {"dev": {"pearson": v["stsb"], "spearman": v["stsb_s"]}},
            "mrpc": {"dev": {"f1": v["mrpc"], "accuracy": v["mrpc_acc"]}}, "rte": {"dev": {"accuracy": v["rte"]}},
            "wnli": {"dev": {"accuracy": 99.0}}}


def test_cramming_average_reproduces_the_v2_model_card():
    # crammed-bert v2 model card row; its average is 80.7 with 9 terms (WNLI excluded).
    s = _scores(mnli_m=84.1, mnli_mm=84.6, qqp=87.5, qqp_acc=0, qnli=90.2, sst2=92.0, cola=53.3, stsb=87.4,
                stsb_s=0, mrpc=88.9, mrpc_acc=0, rte=58.5)
    value, n = metrics.cramming_average(s)
    assert n == 9 and round(value, 1) == 80.7


def test_leaderboard_average_averages_within_tasks_first():
    s = _scores(mnli_m=80, mnli_mm=82, qqp=70, qqp_acc=90, qnli=88, sst2=90, cola=50, stsb=84, stsb_s=86,
                mrpc=88, mrpc_acc=84, rte=60)
    value, n = metrics.leaderboard_average(s)
    assert n == 8 and value == pytest.approx(np.mean([81, 80, 88, 90, 50, 85, 86, 60]))
    partial = {"rte": s["rte"], "cola": s["cola"], "wnli": s["wnli"]}
    assert metrics.leaderboard_average(partial) == (pytest.approx(55.0), 2)
    assert metrics.cramming_average(partial) == (pytest.approx(55.0), 2)
    assert metrics.cramming_average({}) == (None, 0)


def test_sane_config_is_crammings_protocol():
    p = protocol.load("sane")
    assert (p.lr, p.betas, p.eps, p.weight_decay, p.batch_size, p.epochs) == (4e-5, (0.9, 0.98), 1e-6, 0.0, 16, 5)
    assert (p.schedule, p.warmup, p.dropout, p.max_length, p.pad_multiple) == ("cosine", 0.1, 0.1, 128, 8)
    assert p.grad_clip is None and p.max_train_examples is None and p.seeds == [0, 1, 2, 3, 4]
    assert protocol.load() == protocol.Protocol()  # the code defaults are the sane protocol too
    assert protocol.load("bert-base").batch_size == 32 and protocol.load("bert-base").lr == 2e-5


def test_overrides_and_bad_configs(tmp_path):
    p = protocol.load("sane", ["epochs=2", "seeds=[7]", "max_train_examples=100", "lr=1e-4"])
    assert (p.epochs, p.seeds, p.max_train_examples, p.lr, p.is_subset) == (2, [7], 100, 1e-4, True)
    with pytest.raises(ConfigError, match="epoch: unknown key; the glue config has name, lr"):
        protocol.load("sane", ["epoch=2"])
    with pytest.raises(ConfigError, match="written key=value"):
        protocol.load("sane", ["epochs"])
    with pytest.raises(ConfigError, match="'nope': no such glue config; presets: .*sane"):
        protocol.load("nope")
    with pytest.raises(ConfigError, match="warmup"):
        protocol.load("sane", ["warmup=10"])
    with pytest.raises(ConfigError, match="lr='fast': expected a number"):
        protocol.load("sane", ["lr=fast"])
    f = tmp_path / "mine.yaml"
    f.write_text("epochs: 3\nschedule: linear\n")
    mine = protocol.load(f)
    assert (mine.name, mine.epochs, mine.schedule, mine.lr) == ("mine", 3, "linear", 4e-5)


@pytest.mark.parametrize("total", [10, 267, 2335])
def test_schedule_matches_transformers_and_warmup_is_per_task(total):
    import torch
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    warm = int(round(0.1 * total))
    for ours, theirs in (("cosine", get_cosine_schedule_with_warmup), ("linear", get_linear_schedule_with_warmup)):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        ref = theirs(opt, warm, total).lr_lambdas[0]
        f = lr_lambda(total, 0.1, ours)
        assert [f(s) for s in range(total + 1)] == pytest.approx([ref(s) for s in range(total + 1)], abs=1e-12)
    f = lr_lambda(total, 0.1, "cosine")
    assert f(warm) == 1.0 and f(total) == pytest.approx(0.0, abs=1e-12)
    assert max(range(total), key=f) == warm  # the peak sits at 10% of THIS task's steps


def test_optimizer_is_adamw_with_the_protocol_values():
    import torch

    from glueval.finetune import make_optimizer

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    opt = make_optimizer(model, protocol.load("sane"))
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) == 1
    g = opt.param_groups[0]
    assert (g["lr"], g["betas"], g["eps"], g["weight_decay"]) == (4e-5, (0.9, 0.98), 1e-6, 0.0)
    decayed = make_optimizer(model, protocol.load("sane", ["weight_decay=0.01"])).param_groups
    assert [len(g["params"]) for g in decayed] == [1, 3] and decayed[0]["weight_decay"] == 0.01  # matrices only


def test_demo_config_is_the_small_model_protocol_on_a_subset():
    demo, sane = protocol.load("demo"), protocol.load("sane")
    assert demo.is_subset and demo.seeds == [0, 1, 2] and demo.max_train_examples == 2000
    assert demo.max_eval_examples is None  # every dev example is scored
    assert (demo.lr, demo.batch_size, demo.epochs) == (5e-4, 32, 3)  # ELECTRA-Small's batch and epochs; lr measured (demo.yaml)
    same = ("betas", "eps", "weight_decay", "schedule", "warmup", "dropout", "max_length")
    assert all(getattr(demo, k) == getattr(sane, k) for k in same)
    assert demo.precision == sane.precision == "auto"
    with pytest.raises(ConfigError, match="precision"):
        protocol.load("demo", ["precision=fp16"])
