"""train.py against bad input and faults that would waste a GPU day: altered shards or tokenizer, manifests
that point elsewhere or lie about the vocabulary, runs longer than one pass, out of memory, a full disk,
resuming with another micro_batch or after the end; and the precision it picks on a CPU."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_train_loop import REPO, SEQ, SMALL, first_rows, make_shards, records, run_train, tokens

import train
from model.config import ModelConfig
from model.heads import MaskedLM
from model.io import clean_state_dict, sha256
from pipeline.tokens.shards import ShardSet
from trainer.heldout import TrainRows


@pytest.fixture(scope="module")
def small_shards(tmp_path_factory) -> Path:
    """200 rows of real text: 25 micro-batches of 8, so a few dozen cross an epoch boundary."""
    full = make_shards(tmp_path_factory.mktemp("full") / "corpus")
    return first_rows(full, 200, tmp_path_factory.mktemp("small") / "corpus")


def copy_set(source: Path, tmp_path: Path) -> Path:
    out = tmp_path / "corpus"
    shutil.copytree(source, out)
    return out


def edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def rows_read(monkeypatch) -> list[int]:
    """The list that every training row index the reader is asked for gets appended to, in order (rows of
    the shard set: with heldout_rows=0 the training rows are all of them)."""
    read, take = [], TrainRows.take

    def recording(self, indices, column="input_ids"):
        if column == "input_ids":
            read.extend(self.index[np.asarray(indices, dtype=np.int64)].tolist())
        return take(self, indices, column)

    monkeypatch.setattr(TrainRows, "take", recording)
    return read


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_a_flipped_byte_stops_train_py_before_training(small_shards, tmp_path):
    corpus = copy_set(small_shards, tmp_path)
    shard = corpus / "shard-000001.arrow"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, ids stay inside the vocabulary: only the hash can tell
    shard.write_bytes(bytes(data))
    args = [*SMALL, "--shards", str(corpus), "--budget", tokens(4), f"out={tmp_path}", "name=r"]
    done = run_train(args)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert error_lines(done.stderr) == [f"error: {shard}: shard sha256 differs from the manifest (the file was "
                                        "altered, corrupted or swapped); rebuild the shard set"]
    assert not (tmp_path / "r" / "metrics.jsonl").exists() and not (tmp_path / "r" / "checkpoints").exists()
    # verify=false trains on it (the opt-out), and says that nothing was checked
    skipped = run_train([*args, "verify=false"])
    assert skipped.returncode == 0, skipped.stderr
    assert "verify=false: the sha256 of" in skipped.stderr and (tmp_path / "r" / "final").is_dir()
    assert "verified the sha256" not in skipped.stderr
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))  # repaired: verified, and said so
    assert "verified the sha256 of 2 shards and the tokenizer" in run_train([*args, "--overwrite"]).stderr


def test_a_swapped_tokenizer_stops_before_training(small_shards, tmp_path, capsys):
    corpus = copy_set(small_shards, tmp_path)
    spec = json.loads((corpus / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    a, b = sorted(vocab)[100:102]
    vocab[a], vocab[b] = vocab[b], vocab[a]  # a valid tokenizer, but not the one that made the ids
    (corpus / "tokenizer.json").write_text(json.dumps(spec))
    assert train.main([*SMALL, "--shards", str(corpus), "--budget", tokens(4), f"out={tmp_path}", "name=r"]) == 1
    assert error_lines(capsys.readouterr().err) == [
        f"error: {corpus / 'tokenizer.json'}: tokenizer sha256 differs from the manifest (the file was altered, "
        "corrupted or swapped); rebuild the shard set"]
    assert not (tmp_path / "r" / "final").exists() and not (tmp_path / "r" / "metrics.jsonl").exists()


@pytest.mark.parametrize("name", ["../x.arrow", "/abs/x.arrow", "link.arrow"])
def test_manifest_entries_leading_out_of_the_folder_are_refused(small_shards, tmp_path, capsys, name):
    corpus = copy_set(small_shards, tmp_path)
    (tmp_path / "x.arrow").write_bytes((corpus / "shard-000000.arrow").read_bytes())
    (corpus / "link.arrow").symlink_to(tmp_path / "x.arrow")
    edit_manifest(corpus, lambda m: m["shards"][0].update(file=name))
    assert train.main([*SMALL, "--shards", str(corpus), f"out={tmp_path}", "name=r"]) == 1
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and f"shard file {name!r}" in err[0]
    assert "not a file name inside the shard folder" in err[0] or "leads outside the shard folder" in err[0]


@pytest.mark.parametrize("verify", ["true", "false"])
def test_manifest_vocab_below_the_ids_in_the_shards_is_a_clear_error(small_shards, tmp_path, capsys, verify):
    corpus = copy_set(small_shards, tmp_path)
    top = int(ShardSet(corpus).take(np.arange(200)).max())
    edit_manifest(corpus, lambda m: m.update(vocab_size=top))  # the ids go up to `top` itself
    code = train.main([*SMALL, "--shards", str(corpus), "--budget", tokens(60), f"out={tmp_path}", "name=r",
                       f"verify={verify}"])
    err = capsys.readouterr().err
    assert code == 1 and "IndexError" not in err and "Traceback" not in err
    assert len(error_lines(err)) == 1 and f"token id {top} >= vocab_size {top}" in error_lines(err)[0]
    assert not (tmp_path / "r" / "final").exists()


def test_a_budget_past_one_pass_warns_logs_epochs_and_reshuffles(small_shards, tmp_path, capsys, monkeypatch):
    """200 rows, 60 micro-batches of 8: 2.4 passes. Epoch 1 reads the stored order (the curriculum),
    epochs 2 and 3 each a different seeded permutation; `shuffle=never` keeps the stored order."""
    read = rows_read(monkeypatch)
    args = [*SMALL, "--shards", str(small_shards), "--budget", tokens(60), f"out={tmp_path}"]
    assert train.main([*args, "name=later"]) == 0
    err = capsys.readouterr().err
    assert (f"warning: the budget 30720tok reads about 2.4 passes over the 200 rows of {small_shards}; rows "
            "repeat, from epoch 2 in a new seeded permutation each epoch (shuffle=later)") in err
    assert err.count("warning: the budget") == 1
    assert "epoch 2 begins after 12,800 tokens: rows in a new seeded permutation" in err
    assert "epoch 3 begins after 25,600 tokens" in err
    stored = list(range(200))
    assert read[:200] == stored
    assert sorted(read[200:400]) == stored and read[200:400] != stored
    assert sorted(read[400:480]) != read[400:480] and read[400:480] != read[200:280]
    epochs = [r["epoch"] for r in records(tmp_path / "later")]
    assert epochs == sorted(epochs) and epochs[-1] == pytest.approx(2.4)

    read.clear()
    assert train.main([*args, "name=never", "shuffle=never", "--budget", tokens(30)]) == 0
    assert read[:240] == stored + stored[:40]


def test_checkpoint_writes_count_against_a_time_budget(small_shards, tmp_path, monkeypatch):
    from trainer import checkpoint

    slept = []
    save = checkpoint.save

    def slow_save(*args, **kwargs):  # a slow disk: each checkpoint takes 0.4 s longer
        time.sleep(0.4)
        slept.append(0.4)
        return save(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save", slow_save)
    assert train.main([*SMALL, "--shards", str(small_shards), "--budget", "5s", "checkpoint_every=0s",
                       f"out={tmp_path}", "name=t"]) == 0
    # the 5 s include every checkpoint written (the clock no longer stops for them); the budget may run
    # out during a write, after the last logged window, so the final checkpoint's state is the record
    state = checkpoint.read_state(checkpoint.latest(tmp_path / "t" / "checkpoints"))
    assert state["finished"] and 5.0 <= state["spent"]["seconds"] < 6.5
    assert len(slept) >= 3 and sum(slept[:-1]) <= state["spent"]["seconds"]  # the last one comes after the end


def test_out_of_memory_in_the_first_step_is_one_line(small_shards, tmp_path, capsys, monkeypatch):
    from model.heads import MaskedLM

    def oom(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)")

    monkeypatch.setattr(MaskedLM, "forward", oom)
    code = train.main([*SMALL, "--shards", str(small_shards), "--budget", tokens(8), f"out={tmp_path}", "name=o"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert error_lines(err) == ["error: out of cpu memory in the first training step with micro_batch=8: try "
                                "micro_batch=4 (the batch size and the schedule do not depend on it)"]


def test_smaller_micro_batch_suggestion():
    from trainer.device import smaller_micro_batch

    assert smaller_micro_batch(512, 8192) == 256 and smaller_micro_batch(96, 8160) == 32
    assert smaller_micro_batch(24, 72) == 8  # 16 does not divide the batch
    assert smaller_micro_batch(2, 2) == 1 and smaller_micro_batch(1, 8) is None


def test_resume_with_another_micro_batch_continues_at_the_same_row(small_shards, tmp_path, monkeypatch):
    """A run cut at a mid-run checkpoint and resumed with micro_batch 4 instead of 8 reads on from the
    checkpoint's row, in the same order, to the same budget; resumed with the same micro_batch it ends
    bit-identical to the uninterrupted run (from any checkpoint, not only the newest)."""
    budget = tokens(48)  # 384 rows: into the second epoch
    args = [*SMALL, "--shards", str(small_shards), "--budget", budget, "checkpoint_every=0s", "keep_checkpoints=100",
            f"out={tmp_path}"]
    assert train.main([*args, "name=whole"]) == 0
    whole = tmp_path / "whole"
    ckpts = sorted((whole / "checkpoints").glob("ckpt-*"))
    cut = ckpts[len(ckpts) // 2]
    state = json.loads((cut / "state.json").read_text())

    def cut_copy(name: str) -> Path:
        run = tmp_path / name
        shutil.copytree(whole, run)
        shutil.rmtree(run / "final")
        for later in sorted((run / "checkpoints").glob("ckpt-*")):
            if later.name > cut.name:
                shutil.rmtree(later)
        return run

    cut_copy("same")
    assert train.main([*args, "name=same", "--resume"]) == 0
    a, b = load_file(whole / "final" / "model.safetensors"), load_file(tmp_path / "same" / "final" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)

    read = rows_read(monkeypatch)
    cut_copy("half")
    assert train.main([*args, "name=half", "--resume", "micro_batch=4"]) == 0
    reader = state["reader"]
    start = reader["epoch"] * 200 + reader["position"]
    rest = 384 - start
    order = list(range(200)) + [int(i) for i in np.random.default_rng([0, 1]).permutation(200)]
    assert read[:rest] == order[start:384]  # the same rows, in the same order, from the same row on
    logged = records(tmp_path / "half")
    assert logged[-1]["tokens"] == 384 * SEQ and logged[-1]["epoch"] == pytest.approx(384 / 200)
    after = [r for r in logged if r["tokens"] > state["spent"]["tokens"]]
    assert after and all(r["batch_size"] % 4 == 0 for r in after)
    reference = records(whole)[-1]["loss"]
    assert abs(logged[-1]["loss"] - reference) < 0.05 * reference  # other masks, same data and schedule


def test_resume_of_a_finished_run_says_so(small_shards, tmp_path, capsys):
    args = [*SMALL, "--shards", str(small_shards), "--budget", tokens(6), f"out={tmp_path}", "name=f"]
    assert train.main(args) == 0
    capsys.readouterr()
    final = tmp_path / "f" / "final" / "model.safetensors"
    written = final.stat().st_mtime_ns
    assert train.main([*args, "--resume"]) == 0
    err = capsys.readouterr().err
    last = records(tmp_path / "f")[-1]
    loss = last["loss"]
    assert (f"the run is finished (3,072 tokens, {last['step']} optimizer steps, last loss {loss:.3f}); nothing to "
            "resume") in err
    assert str(tmp_path / "f" / "final") in err and "nan" not in err and final.stat().st_mtime_ns == written
    # killed after its last checkpoint, before final/ was complete: --resume writes final/, with the last loss
    shutil.rmtree(tmp_path / "f" / "final")
    assert train.main([*args, "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"last loss {loss:.3f}" in err and "nan" not in err and final.is_file()


def test_resume_reads_the_weights_as_every_model_is_read(small_shards, tmp_path, capsys):
    """--resume reads a checkpoint's weights through model.io, as GLUE and export do: a file that is no
    safetensors or tensors of another model, under the sha256 that state.json records for them (a damaged
    file is never read: tests/test_resume_integrity.py), are one line naming the file and the way out."""
    args = [*SMALL, "--shards", str(small_shards), "--budget", tokens(12), "checkpoint_every=0s",
            "keep_checkpoints=100", f"out={tmp_path}", "name=r"]
    assert train.main(args) == 0
    newest = sorted((tmp_path / "r" / "checkpoints").glob("ckpt-*"))[-1]
    shutil.rmtree(tmp_path / "r" / "final")
    weights = newest / "model.safetensors"
    good = weights.read_bytes()
    capsys.readouterr()
    for damage, message in [(good[: len(good) // 2], "not a valid safetensors file"),
                            (None, "tensors do not match the config")]:
        if damage is None:  # the weights of a model with one layer fewer
            save_file(clean_state_dict(MaskedLM(ModelConfig.preset("tiny-2", num_layers=1))), str(weights))
        else:
            weights.write_bytes(damage)
        state = json.loads((newest / "state.json").read_text())
        state["sha256"]["model.safetensors"] = sha256(weights)
        (newest / "state.json").write_text(json.dumps(state))
        assert train.main([*args, "--resume"]) == 1
        err = error_lines(capsys.readouterr().err)
        assert len(err) == 1 and str(weights) in err[0] and message in err[0], err
        assert f"delete {newest} to resume from the one before it" in err[0]


def tmpfs_run(tmp_path: Path, size: str, args: list[str]) -> subprocess.CompletedProcess:
    """train.py with out= on a fresh tmpfs of `size` (in a private mount namespace); prints the files left
    on it after the run, as `left: <path>` lines."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to mount a private tmpfs")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {tmp_path}"],
                           capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root or user namespaces): {probe.stderr.strip()}")
    disk = tmp_path / "disk"
    disk.mkdir()
    command = (f"mount -t tmpfs -o size={size} tmpfs {disk} && cd {REPO} && {sys.executable} train.py "
               f"{' '.join(args)} out={disk}; rc=$?; find {disk} -mindepth 1 | sed 's/^/left: /'; exit $rc")
    return subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True, text=True, timeout=300)


def test_a_full_disk_while_checkpointing_is_one_line_and_leaves_no_temporary(small_shards, tmp_path):
    # tiny-2 weights are 3.3 MiB, with the AdamW moments a checkpoint is about 9.8 MiB: it cannot fit in 2 MiB
    done = tmpfs_run(tmp_path, "2m", [*SMALL, "--shards", str(small_shards), "--budget", tokens(8), "name=r",
                                      "checkpoint_every=0s"])
    assert done.returncode == 1 and "Traceback" not in done.stderr
    err = error_lines(done.stderr)
    assert len(err) == 1 and "no space left on the device writing" in err[0] and "ckpt-00000001" in err[0]
    assert "it needs about 9.8 MiB" in err[0] and "continue with --resume" in err[0]
    left = [line for line in done.stdout.splitlines() if line.startswith("left: ")]
    assert left and not [p for p in left if "/.tmp" in p or "ckpt-" in p]


def test_a_full_disk_while_writing_final_is_one_line(small_shards, tmp_path):
    # 11 MiB: the one checkpoint at the end (about 9.8 MiB) fits, final/ (3.3 MiB more) does not
    done = tmpfs_run(tmp_path, "11m", [*SMALL, "--shards", str(small_shards), "--budget", tokens(8), "name=r",
                                       "checkpoint_every=1h"])
    assert done.returncode == 1 and "Traceback" not in done.stderr
    err = error_lines(done.stderr)
    assert len(err) == 1 and f"no space left on the device writing {tmp_path / 'disk' / 'r' / 'final'}:" in err[0]
    assert "it needs about 3.3 MiB" in err[0]
    left = [line for line in done.stdout.splitlines() if line.startswith("left: ")]
    assert not [p for p in left if ".tmp" in p]
    assert [p for p in left if "/checkpoints/ckpt-" in p and p.endswith("/state.json")]  # --resume writes final/


def test_precision_choice_on_cpu(monkeypatch):
    from trainer import device as dev

    cpu = torch.device("cpu")
    monkeypatch.setattr(dev, "bf16_speedup", lambda: 2.5)
    chosen = dev.Precision("auto", cpu)
    assert chosen.name == "bf16" and "2.50x" in str(chosen)
    with chosen.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    monkeypatch.setattr(dev, "bf16_speedup", lambda: 1.02)
    chosen = dev.Precision("auto", cpu)
    assert chosen.name == "fp32" and str(chosen).startswith("fp32 (auto: a bf16 matmul ran 1.02x")
    with chosen.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert dev.Precision("bf16", cpu).name == "bf16" and dev.Precision("fp32", cpu).name == "fp32"
    assert dev.Precision("auto", cpu, resumed="fp32").name == "fp32"  # --resume keeps the run's choice
    speedup = dev.bf16_speedup()  # the real probe: quick, and a ratio
    assert speedup > 0


def test_device_choice_is_one_rule_for_train_and_glue(monkeypatch):
    from trainer import device as dev

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.pick_device("auto") == torch.device("cpu") and dev.pick_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(dev.NoDevice, match=f"device={name}: no CUDA GPU is visible"):
            dev.pick_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.pick_device("auto") == torch.device("cuda") and dev.pick_device("cuda:1") == torch.device("cuda:1")


@pytest.mark.slow
def test_bf16_and_fp32_reach_the_same_loss_in_50_steps(small_shards, tmp_path, capsys):
    """The tiny preset (model and recipe; batch 8 so that 50 steps stay short), the same rows and masks:
    the bf16-autocast loss after 50 optimizer steps is within 1% of fp32's (measured here: 0.43% apart)."""
    losses = {}
    for precision in ("fp32", "bf16"):
        assert train.main(["--config", "tiny", "--shards", str(small_shards), "--budget", f"{50 * 8 * SEQ}tok",
                           "micro_batch=8", "batch_size=8", "threads=2", "log_every=0", f"precision={precision}",
                           f"out={tmp_path}", f"name={precision}"]) == 0
        assert f"precision {'bf16 autocast' if precision == 'bf16' else 'fp32'} (as set)" in capsys.readouterr().err
        logged = records(tmp_path / precision)
        assert logged[-1]["step"] == 50
        losses[precision] = np.mean([r["loss"] for r in logged[-10:]])  # steps 41-50
    assert losses["fp32"] < 7.0  # it learnt something (uniform over 32768 ids is 10.4)
    assert abs(losses["bf16"] - losses["fp32"]) < 0.01 * losses["fp32"], losses
