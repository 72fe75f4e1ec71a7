"""The compiled training loop on a CPU (inductor), as a GPU runs it: the crammed architecture at a small
width, bf16 autocast where the CPU has bf16 instructions, the batch ramp through four accumulation counts,
the masking-rate schedule through two widths of masked positions, a held-out evaluation and a checkpoint
after every step. No graph break, one graph per width (no recompilation after the first step of each shape),
and the losses of eager mode."""

import pytest
import torch
from test_train_loop import SEQ, first_rows, make_shards, records

import train
from trainer.device import cpu_has_bf16
from trainer.masking import Masker

MICRO, BATCH = 4, 16
# 19 -> 10 masked positions of 64: widths 24 and 16 (padded to 8); ramp 4 -> 16 rows over the first 40%
ARGS = ["--model", "tiny-2", f"micro_batch={MICRO}", f"batch_size={BATCH}", "batch_ramp=0.4", "threads=2",
        "log_every=0", "lr=2e-3", "mask_schedule=linear", "mask_start=0.3", "mask_end=0.15", "heldout_rows=8",
        "eval_every=0s", "checkpoint_every=0s", "keep_checkpoints=1", "--budget", f"{36 * MICRO * SEQ}tok"]
# inductor's fused kernels may round differently from eager's op by op: measured at most 3.2e-5 apart here
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    full = make_shards(tmp_path_factory.mktemp("full") / "corpus")
    return first_rows(full, 120, tmp_path_factory.mktemp("small") / "corpus")


@pytest.mark.slow
def test_compiled_cpu_loop_has_no_graph_break_nor_recompile_and_matches_eager(shards, tmp_path, capsys):
    from torch._dynamo.utils import counters

    precision = "bf16" if cpu_has_bf16() else "fp32"
    common = [*ARGS, "--shards", str(shards), f"out={tmp_path}", f"precision={precision}"]
    torch._dynamo.reset()
    counters.clear()
    assert train.main([*common, "name=compiled", "compile=true"]) == 0
    assert "compile on" in capsys.readouterr().err
    breaks, graphs = dict(counters["graph_break"]), counters["stats"]["unique_graphs"]
    # the reference: neither evaluations nor checkpoints change the training, so eager skips them
    assert train.main([*common, "name=eager", "compile=false", "eval_every=1h", "checkpoint_every=1h"]) == 0

    compiled, eager = records(tmp_path / "compiled"), records(tmp_path / "eager")
    accumulation = sorted({r["batch_size"] // MICRO for r in compiled})
    assert accumulation == [1, 2, 3, 4]
    widths = {Masker(4, 1000, pad_to=8).width(SEQ, r["mask_fraction"]) for r in compiled}
    assert widths == {16, 24}
    assert breaks == {}, f"graph breaks in the training step: {breaks}"
    assert graphs == len(widths), f"{graphs} graphs for {len(widths)} shapes: recompiled after warm-up"
    heldout = [line for line in (tmp_path / "compiled" / "metrics.jsonl").read_text().splitlines()
               if "heldout_loss" in line]
    assert len(heldout) >= 10 and len(list((tmp_path / "compiled" / "checkpoints").iterdir())) == 1
    assert [r["step"] for r in compiled] == [r["step"] for r in eager]
    for a, b in zip(compiled, eager, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=TOLERANCE), (a, b)
