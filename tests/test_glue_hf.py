"""`glue.py --backend hf`: transformers' Trainer on an exported crammed folder, with the protocol carried over
(the same learning-rate at every step, optimizer settings, subsets) and the results in the table and card."""

import json

import pytest
import torch
from test_glue_run import _sentiment  # SST-2 rows whose label one word carries

import glue
from glueval import hf_backend, protocol
from glueval.finetune import lr_lambda
from model.card import README
from model.config import ModelConfig
from model.heads import MaskedLM
from model.io import save_pretrained
from pipeline.tokens.tokenize import train_tokenizer

transformers = pytest.importorskip("transformers")

@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("glue-hf")
    (tmp / "glue" / "SST-2").mkdir(parents=True)
    for name, n, seed in (("train", 192, 0), ("dev", 64, 1)):
        (tmp / "glue" / "SST-2" / f"{name}.tsv").write_text("\n".join("\t".join(r) for r in _sentiment(n, seed)) + "\n")
    train_tokenizer([r[0] for r in _sentiment(200, 5)[1:]], 400).save(str(tmp / "tokenizer.json"))
    torch.manual_seed(0)
    ckpt = save_pretrained(MaskedLM(ModelConfig.preset("tiny-2", vocab_size=400)), tmp / "ckpt",
                           tokenizer_file=tmp / "tokenizer.json", card={"steps": 1})
    return tmp, ckpt


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_trainer_gets_the_protocols_optimizer_and_lr_at_every_step(setup, tmp_path, schedule):
    _, ckpt = setup
    p = protocol.load("sane", [f"schedule={schedule}", "epochs=3", "lr=1e-3"])
    n = 100  # 7 batches of 16 per epoch, 21 steps, 2 of warm-up
    args = hf_backend.training_arguments(p, seed=0, n_train=n, device=torch.device("cpu"), out_dir=str(tmp_path))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(ckpt, trust_remote_code=True)
    trainer = transformers.Trainer(model=model, args=args)
    total = 21
    trainer.create_optimizer_and_scheduler(num_training_steps=total)
    group = trainer.optimizer.param_groups[0]
    assert (group["betas"], group["eps"], group["weight_decay"]) == (p.betas, p.eps, p.weight_decay)
    ours = lr_lambda(total, p.warmup, p.schedule)
    for step in range(total):
        assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(p.lr * ours(step), abs=1e-12), step
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert (args.per_device_train_batch_size, args.num_train_epochs, args.seed) == (16, 3, 0)
    assert args.max_grad_norm == 0.0 and args.warmup_steps == 2  # p.grad_clip None: no clipping


def test_glue_py_backend_hf_learns_and_adds_its_table_to_the_card(setup, tmp_path, capsys):
    tmp, ckpt = setup
    common = [str(ckpt), "--glue-dir", str(tmp / "glue"), "--tasks", "sst2", "--seeds", "0", "--threads", "1",
              "lr=2e-3", "epochs=4"]
    assert glue.main([*common, "--backend", "hf", "--out", str(tmp_path / "hf")]) == 0
    res = json.loads((tmp_path / "hf" / "results.json").read_text())
    run = res["tasks"]["sst2"]["runs"]["pretrained"]["0"]
    assert res["backend"] == "hf" and run["steps"] == 4 * 12 and run["warmup_steps"] == 5
    assert run["scores"]["dev"]["accuracy"] > 80  # one word decides (majority ~50)
    assert "transformers' Trainer" in (tmp_path / "hf" / "results.md").read_text()
    assert glue.main([*common, "--out", str(tmp_path / "own")]) == 0
    text = (ckpt / README).read_text()
    assert "### protocol sane, hf backend" in text and "### protocol sane, cramkit backend" in text
    assert "updated the model card" in capsys.readouterr().err
