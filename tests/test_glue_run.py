"""The evaluator end to end: a tiny checkpoint fine-tuned through glue.py, the table, and bad-input errors."""

import json
import os
import random
import shutil
import time
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

import glue
from glueval import data
from glueval import run as glueval_run
from glueval.encode import TokenizerError, load_tokenizer
from glueval.tasks import TASKS
from model.config import ModelConfig
from model.heads import MaskedLM
from model.io import save_pretrained
from pipeline.tokens.tokenize import train_tokenizer

SHARED = Path(os.environ.get("CRAMKIT_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
GLUE = SHARED / "glue"
WORDS = ("the film was great awful fine dull witty charming bleak a an and of to is it story actors plot "
         "ending music scenes long short funny sad people love hate watch again never always").split()


def _tokenizer(texts: list[str], path: Path) -> Path:
    train_tokenizer(texts, 400).save(str(path))  # the tokenizer `make corpus` writes
    return path


def make_checkpoint(folder: Path, texts: list[str], vocab_size: int | None = None, tokenizer: bool = True) -> Path:
    """A `tiny-2` MLM checkpoint (random weights) with a WordPiece tokenizer trained on `texts`; with
    `vocab_size` smaller than the tokenizer, the tokenizer is copied in afterwards (a mismatched pair)."""
    folder.mkdir(parents=True, exist_ok=True)
    tok_file = _tokenizer(texts, folder.parent / f"{folder.name}-tokenizer.json")
    size = vocab_size or Tokenizer.from_file(str(tok_file)).get_vocab_size()
    torch.manual_seed(0)
    fits = tokenizer and vocab_size is None
    save_pretrained(MaskedLM(ModelConfig.preset("tiny-2", vocab_size=size)), folder,
                    tokenizer_file=tok_file if fits else None)
    if tokenizer and not fits:
        shutil.copyfile(tok_file, folder / "tokenizer.json")
    return folder


def _sentiment(n: int, seed: int) -> list[list[str]]:
    """SST-2-layout rows whose label is carried by one word: a task a working loop must learn."""
    rng = random.Random(seed)
    rows = [["sentence", "label"]]
    for _ in range(n):
        label = rng.randint(0, 1)
        words = rng.sample(WORDS[5:], 6) + ["great" if label else "awful"]
        rng.shuffle(words)
        rows.append([" ".join(words), str(label)])
    return rows


@pytest.fixture(scope="module")
def sst2_dir(tmp_path_factory):
    g = tmp_path_factory.mktemp("glue")
    (g / "SST-2").mkdir()
    for name, n, seed in (("train", 192, 0), ("dev", 64, 1)):
        rows = _sentiment(n, seed)
        if name == "train":
            rows.append(["a row with\tthree\tcolumns", "1"])  # malformed: counted and reported
        (g / "SST-2" / f"{name}.tsv").write_text("\n".join("\t".join(r) for r in rows) + "\n")
    return g


@pytest.fixture(scope="module")
def sst2_checkpoint(sst2_dir, tmp_path_factory):
    texts = [r[0] for r in _sentiment(200, 5)][1:]
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", texts)


def test_cli_learns_a_separable_task_and_writes_the_report(sst2_dir, sst2_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    rc = glue.main([str(sst2_checkpoint), "--glue-dir", str(sst2_dir), "--tasks", "sst2", "--seeds", "0,1",
                    "--init", "both", "--out", str(out), "--threads", "1", "lr=2e-3", "epochs=4"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    e = res["tasks"]["sst2"]
    assert e["data"]["train"]["malformed"] == {"4 columns, expected 2": 1} and e["used"]["train"] == 192
    assert set(e["runs"]) == {"pretrained", "random"} and set(e["runs"]["pretrained"]) == {"0", "1"}
    for init in ("pretrained", "random"):
        assert e["median"][init]["dev"]["accuracy"] > 80  # one word decides: a working loop learns it (majority ~50)
        assert e["runs"][init]["0"]["steps"] == 4 * 12 and e["runs"][init]["0"]["warmup_steps"] == 5
    assert e["majority"]["dev"]["accuracy"] < 70
    table = (out / "results.md").read_text()
    assert "| SST-2 | acc | 192/64 |" in table and "pretrained median" in table and "random median" in table
    assert "4 columns, expected 2: 1" in table and "(1/9)" in table
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    captured = capsys.readouterr()
    assert "1 malformed row(s) skipped" in captured.err and "| SST-2 | acc |" in captured.out


def test_bad_inputs_give_clear_errors(sst2_dir, sst2_checkpoint, tmp_path, capsys):
    texts = [r[0] for r in _sentiment(100, 3)][1:]
    out = tmp_path / "out"
    no_tok = make_checkpoint(tmp_path / "notok", texts, tokenizer=False)
    assert glue.main([str(no_tok), "--glue-dir", str(sst2_dir), "--tasks", "sst2", "--out", str(out)]) == 2
    assert "no tokenizer.json" in capsys.readouterr().err
    small = make_checkpoint(tmp_path / "small", texts, vocab_size=64)
    with pytest.raises(TokenizerError, match="tokenizer has .* tokens but the model's embedding has 64 rows"):
        load_tokenizer(small, 64)
    assert glue.main([str(small), "--glue-dir", str(sst2_dir), "--tasks", "sst2", "--out", str(out)]) == 2
    assert "does not belong to this model" in capsys.readouterr().err
    assert glue.main([str(sst2_checkpoint), "--tasks", "sst9", "--out", str(out)]) == 2
    assert "unknown GLUE task 'sst9'" in capsys.readouterr().err
    assert glue.main([str(sst2_checkpoint), "--glue-dir", str(sst2_dir), "--tasks", "rte",
                      "--out", str(out)]) == 2
    assert "missing RTE/train.tsv, RTE/dev.tsv" in capsys.readouterr().err
    assert glue.main([str(tmp_path / "missing"), "--glue-dir", str(sst2_dir), "--out", str(out)]) == 2
    assert "no such checkpoint folder" in capsys.readouterr().err
    assert glue.main([str(sst2_checkpoint), "--tasks", "sst2", "epochz=1", "--out", str(out)]) == 2
    assert "epochz: unknown key; the glue config has" in capsys.readouterr().err
    assert not out.exists()  # a run that failed wrote nothing


def test_help_is_complete(capsys):
    with pytest.raises(SystemExit):
        glue.main(["--help"])
    text = capsys.readouterr().out
    for word in ("--tasks", "--seeds", "--glue-dir", "--init", "--config", "--out", "--device", "--threads",
                 "max_train_examples", "results.json", "wnli", "HF_HUB_OFFLINE", "--check-data", "  sane ",
                 "  demo ", "  bert-base "):
        assert word in text


def test_rerun_keeps_finished_runs_and_ctrl_c_stops_in_one_line(sst2_dir, sst2_checkpoint, tmp_path, capsys,
                                                               monkeypatch):
    out = tmp_path / "out"
    base = [str(sst2_checkpoint), "--glue-dir", str(sst2_dir), "--tasks", "sst2", "--init", "random", "--out",
            str(out), "--threads", "1", "epochs=1"]
    assert glue.main([*base, "--seeds", "0,1"]) == 0
    err = capsys.readouterr().err
    assert "estimated time on this CPU (1 threads): 2 fine-tuning runs, 24 steps" in err
    assert "--config demo" in err  # every training example on a CPU: the quick protocol is suggested
    first = json.loads((out / "results.json").read_text())["tasks"]["sst2"]["runs"]["random"]
    assert glue.main([*base, "--seeds", "0,1,2"]) == 0
    err = capsys.readouterr().err
    assert "2 of 3 runs already finished, kept; 1 to do" in err
    assert "SST-2 random seed 2:" in err and "SST-2 random seed 0:" not in err  # only the new seed trained
    runs = json.loads((out / "results.json").read_text())["tasks"]["sst2"]["runs"]["random"]
    assert set(runs) == {"0", "1", "2"} and runs["0"] == first["0"] and runs["1"] == first["1"]
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 3
    assert glue.main([*base, "--seeds", "0", "lr=1e-4"]) == 0  # another protocol: nothing is reused
    err = capsys.readouterr().err
    assert "come from another protocol (lr)" in err and "SST-2 random seed 0:" in err

    real_train, calls = glueval_run.train, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(glueval_run, "train", interrupted)
    fresh = tmp_path / "fresh"
    assert glue.main([*base, "--out", str(fresh), "--seeds", "0,1,2"]) == 130  # the last --out counts
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (f"interrupted: 1 run(s) finished in this session are saved in "
                                            f"{fresh / 'results.json'}; run the same command again to continue")
    assert "Traceback" not in err
    assert set(json.loads((fresh / "results.json").read_text())["tasks"]["sst2"]["runs"]["random"]) == {"0"}


def test_check_data_answers_in_seconds_with_the_make_syntax(sst2_dir, tmp_path, capsys, monkeypatch):
    assert glue.main(["--check-data", "--glue-dir", str(sst2_dir), "--tasks", "sst2"]) == 0
    assert "GLUE data reachable: SST-2" in capsys.readouterr().err
    assert glue.main(["--check-data", "--glue-dir", str(tmp_path / "nowhere"), "--tasks", "rte"]) == 2
    assert "make demo GLUE_DIR=DIR" in capsys.readouterr().err
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(data, "_hub_reachable", lambda timeout=3.0: False)  # offline, as on this machine
    start = time.perf_counter()
    assert glue.main(["--check-data", "--tasks", "rte,cola"]) == 2
    err = capsys.readouterr().err
    assert "no --glue-dir given and the Hugging Face Hub" in err and "`make demo GLUE_DIR=DIR`" in err
    assert time.perf_counter() - start < 10


@pytest.mark.slow
def test_tiny_model_on_real_rte_cola_mrpc_stsb_gives_a_full_table(tmp_path):
    if not GLUE.is_dir():
        pytest.skip(f"real GLUE files not found at {GLUE}")
    texts = []
    for name in ("rte", "cola", "mrpc", "stsb"):
        split = data.load_tsv(TASKS[name], GLUE).train
        texts += split.text_a[:150] + (split.text_b[:150] if split.text_b else [])
    ckpt = make_checkpoint(tmp_path / "tiny", texts)
    out = tmp_path / "out"
    rc = glue.main([str(ckpt), "--glue-dir", str(GLUE), "--tasks", "rte,cola,mrpc,stsb", "--seeds", "0,1",
                    "--init", "both", "--out", str(out), "--threads", "1",
                    "epochs=1", "max_train_examples=96", "max_eval_examples=128"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert list(res["tasks"]) == ["rte", "cola", "mrpc", "stsb"]
    for e in res["tasks"].values():
        assert e["used"]["train"] == 96 and e["used"]["dev"] == 128
        for init in ("pretrained", "random"):
            assert set(e["runs"][init]) == {"0", "1"}
            assert set(e["median"][init]["dev"]) == set(e["metrics"])
    avg = res["averages"]["pretrained"]
    assert avg["cramming"]["terms"] == 4 and avg["leaderboard"]["terms"] == 4
    table = (out / "results.md").read_text()
    for row in ("| RTE | acc |", "| CoLA | MCC |", "| MRPC | F1 |", "| MRPC | acc |", "| STS-B | Pearson |",
                "| STS-B | Spearman |", "Average, cramming", "Average, GLUE leaderboard", "Subset run"):
        assert row in table
    # every reported score is the benchmark metric of the saved predictions: recompute with sklearn/scipy
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    ref = {"accuracy": accuracy_score, "f1": f1_score, "mcc": matthews_corrcoef,
           "pearson": lambda g, p: pearsonr(g, p).statistic, "spearman": lambda g, p: spearmanr(g, p).statistic}
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 4 * 2 * 2
    for r in lines:
        scores = res["tasks"][r["task"]]["runs"][r["init"]][str(r["seed"])]["scores"][r["dev"]]
        for m, v in scores.items():
            assert v == pytest.approx(100 * ref[m](r["gold"], r["pred"]), abs=1e-9), (r["task"], m)
