"""The report: medians and spreads over seeds, both averages per column, the markdown table and the chart."""

import json

import pytest

from glueval import report
from glueval.protocol import Protocol


def _run(scores):
    return {"scores": scores, "steps": 10, "warmup_steps": 1, "final_loss": 0.5, "train_seconds": 1.0}


def _results():
    rte = {"title": "RTE", "metrics": ["accuracy"], "dev_sets": ["dev"], "used": {"train": 2490, "dev": 277},
           "data": {"train": {"source": "RTE/train.tsv", "rows": 2491, "used": 2490, "malformed": {"unknown label": 1},
                              "malformed_lines": {"unknown label": [7]}},
                    "dev": {"source": "RTE/dev.tsv", "rows": 277, "used": 277, "malformed": {}, "malformed_lines": {}}},
           "majority": {"dev": {"accuracy": 52.7}},
           "runs": {"pretrained": {str(s): _run({"dev": {"accuracy": v}}) for s, v in enumerate([60.0, 55.0, 58.0])},
                    "random": {"0": _run({"dev": {"accuracy": 50.0}})}}}
    mnli = {"title": "MNLI", "metrics": ["accuracy"], "dev_sets": ["m", "mm"], "used": {"train": 100, "m": 50, "mm": 40},
            "data": {}, "majority": {"m": {"accuracy": 35.4}, "mm": {"accuracy": 35.2}},
            "runs": {"pretrained": {"0": _run({"m": {"accuracy": 70.0}, "mm": {"accuracy": 72.0}}),
                                    "1": _run({"m": {"accuracy": 74.0}, "mm": {"accuracy": 71.0}})},
                     "random": {}}}
    return {"checkpoint": "runs/cram/final", "protocol": Protocol(max_train_examples=100).to_dict(),
            "inits": ["pretrained", "random"], "data": "glue", "machine": {"device": "cpu"},
            "tasks": {"rte": rte, "mnli": mnli},
            "predictions": [{"task": "rte", "dev": "dev", "init": "pretrained", "seed": 0, "pred": [1], "gold": [1]}]}


def test_summarize_medians_spreads_and_averages():
    res = report.summarize(_results())
    rte, mnli = res["tasks"]["rte"], res["tasks"]["mnli"]
    assert rte["median"]["pretrained"]["dev"]["accuracy"] == 58.0
    assert (rte["min"]["pretrained"]["dev"]["accuracy"], rte["max"]["pretrained"]["dev"]["accuracy"]) == (55.0, 60.0)
    assert mnli["median"]["pretrained"] == {"m": {"accuracy": 72.0}, "mm": {"accuracy": 71.5}}
    assert "random" not in mnli["median"]  # no finished runs: no median
    avg = res["averages"]
    assert avg["pretrained"]["cramming"] == {"value": pytest.approx((58 + 72 + 71.5) / 3), "terms": 3, "of": 9,
                                             "per_seed": {"0": pytest.approx((60 + 70 + 72) / 3),
                                                          "1": pytest.approx((55 + 74 + 71) / 3)},
                                             "spread": pytest.approx(2 / 3)}  # seeds 0 and 1 ran on every task
    assert avg["random"]["cramming"]["per_seed"] == {}  # MNLI has no random-init run
    assert avg["pretrained"]["leaderboard"] == {"value": pytest.approx((58 + 71.75) / 2), "terms": 2, "of": 8,
                                                "per_seed": {"0": 65.5, "1": 63.75}, "spread": 1.75}
    assert avg["random"]["cramming"]["terms"] == 1 and avg["random"]["cramming"]["value"] == 50.0
    assert avg["majority"]["cramming"]["value"] == pytest.approx((52.7 + 35.4 + 35.2) / 3)


def test_outputs_table_json_chart(tmp_path):
    paths = report.write_all(_results(), tmp_path)
    table = paths["markdown"].read_text()
    assert "| RTE | acc | 2490/277 | 52.7 | **58.0** | 5.0 | 60.0 · 55.0 · 58.0 | **50.0** | 0.0 | 50.0 |" in table
    assert "| MNLI-mm | acc | 100/40 | 35.2 | **71.5** | 1.0 | 72.0 · 71.0 | – | – | – | – |" in table
    assert "| 50.0 | +8.0 (> spread) |" in table  # RTE: 58 vs 50, above both seed spreads (5.0 and 0.0)
    assert "| **67.2 (3/9)** | 0.7 | 67.3 · 66.7 |" in table  # the average's per-seed values and spread
    assert "Subset run" in table and "at most 100 training examples" in table
    assert "**67.2 (3/9)**" in table  # pretrained cramming average over the 3 numbers present
    assert "| RTE | train | RTE/train.tsv | 2491 | 2490 | unknown label: 1 |" in table
    saved = json.loads(paths["json"].read_text())
    assert "predictions" not in saved and saved["averages"]["pretrained"]["cramming"]["terms"] == 3
    assert json.loads(paths["predictions"].read_text().splitlines()[0])["gold"] == [1]
    assert paths["chart"].read_bytes()[:4] == b"\x89PNG" and paths["chart"].stat().st_size > 5000


def test_chart_draws_every_metric_and_marks_a_subset_run():
    res = report.summarize(_results())
    labels = [r[0] for r in report.chart_rows(res)]
    assert labels == ["RTE\nacc", "MNLI-m\nacc", "MNLI-mm\nacc"]
    rte = report.chart_rows(res)[0]
    assert rte[1] == 52.7 and rte[2] == {"pretrained": (58.0, 55.0, 60.0), "random": (50.0, 50.0, 50.0)}
    assert "SUBSET RUN (<= 100 train examples per task)" in report.chart_title(res)
    full = report.summarize({**_results(), "protocol": Protocol().to_dict()})
    assert "SUBSET" not in report.chart_title(full)
    two = _results()
    two["tasks"] = {"mrpc": {**two["tasks"]["rte"], "title": "MRPC", "metrics": ["f1", "accuracy"],
                             "majority": {"dev": {"f1": 81.2, "accuracy": 68.4}},
                             "runs": {"pretrained": {"0": _run({"dev": {"f1": 80.0, "accuracy": 70.0}})}, "random": {}}}}
    assert [r[0] for r in report.chart_rows(report.summarize(two))] == ["MRPC\nF1", "MRPC\nacc"]  # both metrics
