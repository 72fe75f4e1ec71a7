"""train.py end to end on shards made from real text (../shared/data, else stdlib docstrings): loss falls, the final folder
loads for fine-tuning, SIGKILL + --resume equals an uninterrupted run bit for bit, bad input fails clearly."""

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import train
from model.io import load_pretrained
from pipeline.files import record
from pipeline.tokens.shards import dtype_for_vocab, write_manifest, write_shard

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("CRAMKIT_SHARED_DATA", REPO.parent / "shared" / "data"))
BOOKS = ["shakespeare-caesar.txt", "shakespeare-hamlet.txt", "shakespeare-macbeth.txt", "blake-poems.txt"]
SEQ = 64
# tiny-2 (2 x 128, vocab 4096), 8-row micro-batches ramped to 32, budget in tokens: deterministic on CPU
SMALL = ["--model", "tiny-2", "micro_batch=8", "batch_size=32", "threads=1", "log_every=0", "lr=2e-3",
         "heldout_rows=0", "precision=fp32"]  # the held-out split and the precision probe have their own tests


def real_paragraphs(max_chars: int = 400_000) -> list[str]:
    """Paragraphs of four books from ../shared/data; where that folder is absent, as many characters of
    docstrings of the standard library (the corpus pipeline's embedded source), in a fixed file order."""
    folder = DATA / "text" / "nltk_gutenberg"
    if folder.is_dir():
        texts = [(folder / b).read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n") for b in BOOKS]
        return [p for t in texts for p in t.split("\n\n") if p.strip()]
    from pipeline.reading import embedded

    out, size = [], 0
    for name, path, _ in sorted(embedded.python_files()):
        if size >= max_chars:
            break
        if not name.startswith("stdlib/"):
            continue
        try:
            texts = [text for _, text in embedded.docstrings(path.read_bytes()) if len(text.split()) >= 5]
        except (SyntaxError, ValueError):  # the stdlib's own test files of broken syntax
            continue
        out += texts
        size += sum(map(len, texts))
    return out


def make_shards(out: Path, vocab: int = 1024, seq_len: int = SEQ) -> Path:
    """A shard set in the cramkit format from real text (tokenizer trained on it, rows packed)."""
    from pipeline.tokens.tokenize import encode, train_tokenizer

    paragraphs = real_paragraphs()
    tok = train_tokenizer(paragraphs, vocab)
    out.mkdir(parents=True)
    tok.save(str(out / "tokenizer.json"))
    ids = np.concatenate(encode(tok, paragraphs, tok.token_to_id("[SEP]")))  # each paragraph [SEP]-terminated
    n = len(ids) // seq_len
    rows = ids[: n * seq_len].reshape(n, seq_len).astype(dtype_for_vocab(tok.get_vocab_size()))
    shards = [write_shard(out / f"shard-{i:06d}.arrow", rows[s : s + 500]) for i, s in enumerate(range(0, n, 500))]
    write_manifest(out, seq_len=seq_len, vocab_size=tok.get_vocab_size(), shards=shards, config={"test_text": len(paragraphs)},
                   order={}, packing={}, counts={}, tokens={"total": int(n * seq_len)})
    return out


def first_rows(source: Path, rows: int, out: Path) -> Path:
    """A shard set of the first `rows` rows of `source` (same tokenizer), in two shards."""
    from pipeline.tokens.shards import ShardSet

    ds = ShardSet(source)
    out.mkdir(parents=True)
    (out / "tokenizer.json").write_bytes(ds.tokenizer_file.read_bytes())
    half = rows // 2
    entries = [write_shard(out / f"shard-{i:06d}.arrow", ds.take(np.arange(a, b)))
               for i, (a, b) in enumerate(((0, half), (half, rows)))]
    write_manifest(out, seq_len=ds.seq_len, vocab_size=ds.vocab_size, shards=entries, config={"first": rows},
                   order={}, packing={}, counts={}, tokens={"total": rows * ds.seq_len})
    return out


def padded_shards(source, rows: np.ndarray, keep: np.ndarray, folder: Path) -> Path:
    """One shard of `rows` with `keep` as its stored attention_mask column, beside `source`'s tokenizer."""
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes(source.tokenizer_file.read_bytes())
    entry = write_shard(folder / "shard-000000.arrow", rows, attention_mask=keep.astype(np.uint8))
    write_manifest(folder, seq_len=SEQ, vocab_size=source.vocab_size, shards=[entry], config={}, order={},
                   packing={"cross_documents": False}, counts={}, tokens={}, columns=("input_ids", "attention_mask"))
    return folder


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_shards(tmp_path_factory.mktemp("shards") / "corpus")


@pytest.fixture(scope="module")
def small_shards(shards, tmp_path_factory) -> Path:
    """200 rows: 25 micro-batches of 8, so a few dozen micro-batches cross an epoch boundary."""
    return first_rows(shards, 200, tmp_path_factory.mktemp("small") / "corpus")


def tokens(micro_batches: int) -> str:
    return f"{micro_batches * 8 * SEQ}tok"


def run_train(args, cwd=REPO):
    """train.py in a fresh process (as `make cram` runs it)."""
    return subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def records(run: Path) -> list[dict]:
    """The training log lines of metrics.jsonl (held-out evaluations are records of their own)."""
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.slow
def test_loss_falls_and_final_folder_loads_for_finetuning(shards, tmp_path):
    code = train.main([*SMALL, "--shards", str(shards), "--budget", tokens(160), f"out={tmp_path}", "name=r"])
    assert code == 0
    run = tmp_path / "r"
    logged = records(run)
    assert logged[0]["loss"] > 0.9 * math.log(1024)  # starts near uniform over the shards' vocabulary
    assert logged[-1]["loss"] < logged[0]["loss"] - 1.5  # and falls well below it
    assert logged[-1]["tokens"] == 160 * 8 * SEQ and logged[-1]["progress"] == 1.0
    assert {r["batch_size"] for r in logged} >= {8, 32}  # the ramp reached the full batch
    assert all(np.isfinite(r["tokens_per_s"]) and r["tokens_per_s"] > 0 for r in logged)
    assert (run / "train.png").stat().st_size > 10_000
    final = run / "final"
    assert sorted(p.name for p in final.iterdir()) == [
        "README.md", "bert.py", "config.json", "configuration_crammed.py", "model.safetensors",
        "modeling_crammed.py", "tokenizer.json", "tokenizer_config.json"]  # a transformers folder too
    card = (final / "README.md").read_text()
    assert f"| tokens seen | {160 * 8 * SEQ:,} |" in card and "content_hash of the shard manifest" in card
    classifier = load_pretrained(final, kind="classifier", num_labels=2, dropout=0.1)
    mlm = load_pretrained(final, kind="mlm")
    ids = torch.randint(5, 1024, (2, SEQ))
    assert classifier(ids).shape == (2, 2) and torch.isfinite(mlm.logits(ids)).all()


def test_budget_used_up_by_start_up_is_an_error(shards, tmp_path, capsys):
    assert train.main([*SMALL, "--shards", str(shards), "--budget", "0.001s", f"out={tmp_path}"]) == 1
    assert "used up by start-up" in capsys.readouterr().err


def test_unknown_setting_and_help(capsys):
    assert train.main(["no_such_key=1"]) == 1
    assert "no_such_key: unknown key; the train config has" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--help"])
    out = capsys.readouterr().out
    for key in ("micro_batch", "batch_ramp", "checkpoint_every", "--resume", "--budget", "crammed-bert", "shuffle",
                "later (epoch 1 as stored", "verify", "precision"):
        assert key in out


def test_missing_shards_and_manifest(tmp_path, capsys):
    assert train.main(["--shards", str(tmp_path / "nope"), f"out={tmp_path}"]) == 1
    assert "make corpus" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert train.main(["--shards", str(tmp_path / "empty"), f"out={tmp_path}"]) == 1
    assert "no manifest" in capsys.readouterr().err
    assert not (tmp_path / "tiny").exists()  # nothing was started


def test_vocab_and_seq_len_mismatch_fail_before_training(shards, tmp_path, capsys):
    small_vocab = tmp_path / "small-vocab.yaml"
    small_vocab.write_text((REPO / "configs/model/tiny-2.yaml").read_text().replace("vocab_size: 4096",
                                                                                  "vocab_size: 512"))
    assert train.main(["--model", str(small_vocab), "--shards", str(shards), f"out={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert "the tokenizer has 1024 tokens but the model's embedding has 512 rows" in err
    short = tmp_path / "short.yaml"
    short.write_text((REPO / "configs/model/tiny-2.yaml").read_text() + "max_seq_len: 32\n")
    assert train.main(["--model", str(short), "--shards", str(shards), f"out={tmp_path}"]) == 1
    assert "rows of 64 tokens" in capsys.readouterr().err
    assert not list(tmp_path.glob("*/metrics.jsonl"))


def test_model_vocabulary_is_the_shards_unless_pinned(shards, tmp_path, capsys):
    preset = (REPO / "configs/model/tiny-2.yaml").read_text()
    assert "vocab_size: 4096\n" in preset
    unset, pinned = tmp_path / "unset.yaml", tmp_path / "pinned.yaml"
    unset.write_text(preset.replace("vocab_size: 4096\n", ""))
    pinned.write_text(preset.replace("vocab_size: 4096", "vocab_size: 8192"))
    common = [*SMALL, "--shards", str(shards), "--budget", tokens(2), f"out={tmp_path}"]
    for model, name, rows in ((unset, "unset", 1024), (pinned, "pinned", 8192)):
        assert train.main([*common, "--model", str(model), f"name={name}"]) == 0
        notes = [line for line in capsys.readouterr().err.splitlines() if "never used" in line]
        run = tmp_path / name
        assert load_pretrained(run / "final").cfg.vocab_size == rows  # the saved config carries the number
        assert yaml.safe_load((run / "config.yaml").read_text())["model"]["vocab_size"] == rows
        assert train.main([*common, "--model", str(model), f"name={name}", "--resume"]) == 0  # the same config
        assert "the run is finished" in capsys.readouterr().err
        if name == "unset":
            assert notes == []
        else:  # 7168 rows x 128 (the decoder is tied): one line
            assert notes == [f"note: the model pins vocab_size 8,192 and {shards / 'manifest.json'} has 1,024 "
                             "tokens: 7,168 embedding rows (917,504 parameters) are never used; leave vocab_size "
                             "unset to take the tokenizer's"]


def test_existing_run_needs_resume_or_overwrite(shards, tmp_path, capsys):
    args = [*SMALL, "--shards", str(shards), "--budget", tokens(2), f"out={tmp_path}", "name=r"]
    assert train.main(args) == 0
    assert train.main(args) == 1
    assert "--resume" in capsys.readouterr().err
    assert train.main([*args, "--overwrite"]) == 0


def test_resume_with_another_config_is_refused(shards, tmp_path, capsys):
    base = [*SMALL, "--shards", str(shards), f"out={tmp_path}", "name=r"]
    assert train.main([*base, "--budget", tokens(4)]) == 0
    assert train.main([*base, "--budget", tokens(4), "lr=5e-4", "--resume"]) == 1
    err = capsys.readouterr().err
    assert "another configuration" in err and "lr" in err


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(shards, tmp_path, capsys):
    args = [*SMALL, "--shards", str(shards), "--budget", tokens(60), f"out={tmp_path}", "name=r",
            "lr=1e30", "grad_clip=0", "checkpoint_every=0s"]
    assert train.main(args) == 1
    assert "non-finite" in capsys.readouterr().err
    run = tmp_path / "r"
    assert not (run / "final").exists()
    kept = sorted((run / "checkpoints").glob("ckpt-*"))
    assert kept, "the checkpoints before the blow-up are kept"
    for ckpt in kept:
        assert all(torch.isfinite(t).all() for t in load_file(ckpt / "model.safetensors").values())


@pytest.mark.slow
def test_sigterm_writes_checkpoint_and_resume_finishes(shards, tmp_path):
    args = [*SMALL, "--shards", str(shards), "--budget", tokens(80), f"out={tmp_path}", "name=r"]
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "r" / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.is_file() and metrics.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "continue with --resume" in err and "Traceback" not in err
    assert list((tmp_path / "r" / "checkpoints").glob("ckpt-*"))
    done = run_train([*args, "--resume"])
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stderr and (tmp_path / "r" / "final" / "model.safetensors").is_file()


def start_and_wait_for_checkpoint(args, run: Path) -> tuple[subprocess.Popen, float]:
    """Start train.py; return the process once its first checkpoint exists, and the time that took."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not list(run.glob("checkpoints/ckpt-*")) and proc.poll() is None:
        time.sleep(0.005)
    return proc, time.perf_counter() - t0


@pytest.mark.slow
def test_sigkill_at_random_moment_then_resume_equals_uninterrupted(small_shards, tmp_path):
    """40 micro-batches of 8 rows over 200 rows: epoch 2 (a seeded permutation, the default) starts at
    micro-batch 25: the resumed run either crosses the epoch boundary or resumes inside the permuted epoch 2."""
    common = [*SMALL, "--shards", str(small_shards), "--budget", tokens(40), "checkpoint_every=0s",
              f"out={tmp_path}"]
    reference, _ = start_and_wait_for_checkpoint([*common, "name=whole"], tmp_path / "whole")
    t0 = time.perf_counter()
    assert reference.wait(timeout=300) == 0
    training = time.perf_counter() - t0  # from the first checkpoint to the end
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for attempt, share in enumerate((0.6, 0.3, 0.0)):  # the machine's speed varies: retry earlier if it ended
        run = tmp_path / f"killed{attempt}"
        proc, _ = start_and_wait_for_checkpoint([*common, f"name={run.name}"], run)
        time.sleep(rng.uniform(0.0, share * training))  # a random moment during training
        if proc.poll() is None:
            break
        proc.wait()
    assert proc.poll() is None, f"every run finished before its kill (seed {seed}); make the budget larger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for ckpt in (run / "checkpoints").glob("ckpt-*"):  # none is half written
        assert {p.name for p in ckpt.iterdir()} == {"model.safetensors", "optimizer.safetensors", "state.json"}
        load_file(ckpt / "model.safetensors")
        json.loads((ckpt / "state.json").read_text())
    record.owned(run, "run folder", "run")  # all the kill left is listed in the run folder's record
    resumed = run_train([*common, f"name={run.name}", "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    # a kill after the last checkpoint (while final/ is written or the process exits) finds the run finished
    assert "resumed from" in resumed.stderr or "the run is finished" in resumed.stderr, resumed.stderr
    a = load_file(tmp_path / "whole" / "final" / "model.safetensors")
    b = load_file(run / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after kill + resume (seed {seed})"
    whole, killed = records(tmp_path / "whole"), records(run)
    assert [r["step"] for r in whole] == [r["step"] for r in killed], (whole, killed)
    assert [r["loss"] for r in whole] == [r["loss"] for r in killed]
    assert whole[-1]["epoch"] == pytest.approx(320 / 200)  # the run crossed into epoch 2


@pytest.mark.slow
def test_bert_base_smoke_on_cpu(shards, tmp_path):
    code = train.main(["--model", "bert-base", "--shards", str(shards), "micro_batch=2", "batch_size=4",
                       "--budget", f"{3 * 2 * SEQ}tok", f"out={tmp_path}", "name=b", "log_every=0"])
    assert code == 0
    logged = records(tmp_path / "b")
    assert logged and all(math.isfinite(r["loss"]) for r in logged)


def test_time_budget_stops_on_time_and_flops_budget_matches_tokens(shards, tmp_path):
    assert train.main([*SMALL, "--shards", str(shards), "--budget", "8s", f"out={tmp_path}", "name=t"]) == 0
    # the last log line may come from just before the budget ran out; the final checkpoint is after it
    state = json.loads((sorted((tmp_path / "t" / "checkpoints").glob("ckpt-*"))[-1] / "state.json").read_text())
    assert state["finished"] and 8.0 <= state["spent"]["seconds"] < 13.0 and state["spent"]["tokens"] > 0
    assert records(tmp_path / "t")[-1]["progress"] > 0.99
    from model.config import ModelConfig
    from model.flops import train_flops_per_token

    per_token = train_flops_per_token(ModelConfig.preset("tiny-2"), 16 / SEQ, SEQ)  # round(0.25 * 64) = 16
    flops = 5 * 8 * SEQ * per_token
    assert train.main([*SMALL, "--shards", str(shards), "--budget", f"{flops:.6e}flop", f"out={tmp_path}",
                       "name=f"]) == 0
    assert records(tmp_path / "f")[-1]["tokens"] == 5 * 8 * SEQ


def test_padded_shards_read_the_stored_attention_mask_and_count_real_tokens(shards, tmp_path):
    """Rows packed without crossing documents carry padding: the stored attention_mask column (not a
    guess from [PAD]) keeps it out of attention and targets, and tokens/s counts only real tokens."""
    from pipeline.tokens.shards import ShardSet

    source = ShardSet(shards)
    rows = source.take(np.arange(64))
    lengths = np.random.default_rng(0).integers(8, SEQ, size=len(rows))
    keep = np.arange(SEQ)[None, :] < lengths[:, None]
    rows[~keep] = 0  # [PAD]
    rows[:, -1] = 7  # a real id under a zero mask: only the stored column says it is padding
    padded = padded_shards(source, rows, keep, tmp_path / "padded")
    from trainer.batches import epoch_batches
    from trainer.data import Prefetcher
    from trainer.masking import IGNORE, Masker

    loader = Prefetcher(epoch_batches(ShardSet(padded), 16, "never", 0), Masker(4, source.vocab_size), 0, pin=False)
    batch = next(loader)
    loader.close()
    assert torch.equal(batch.attention_mask, torch.from_numpy(keep[:16]))
    assert batch.tokens == int(keep[:16].sum()) < 16 * SEQ
    assert all(t.is_contiguous() for t in (batch.input_ids, batch.positions, batch.targets))
    at_pad = torch.gather(batch.attention_mask, 1, batch.positions) == 0
    assert at_pad.any() and (batch.targets[at_pad] == IGNORE).all() and (batch.targets[~at_pad] != IGNORE).all()
    assert batch.reader_state["position"] == 16
    assert train.main([*SMALL, "--shards", str(padded), "--budget", tokens(6), f"out={tmp_path}", "name=p",
                       "peak_tflops=1"]) == 0
    logged = records(tmp_path / "p")
    assert all(math.isfinite(r["loss"]) for r in logged) and logged[-1]["tokens"] == 6 * 8 * SEQ
    # the budget's `tokens` counts every position (padding is computed, so is MFU); tokens_per_s counts
    # the real tokens of the same window: their ratio is the real share of exactly the rows it read
    from model.config import ModelConfig
    from model.flops import train_flops_per_token

    per_token = train_flops_per_token(ModelConfig.preset("tiny-2"), 16 / SEQ, SEQ)
    start = 0
    for r in logged:
        rows_read = keep[start // SEQ : r["tokens"] // SEQ]
        positions_per_s = r["mfu"] * 1e12 / per_token
        assert r["tokens_per_s"] / positions_per_s == pytest.approx(rows_read.mean(), rel=1e-6)
        start = r["tokens"]
