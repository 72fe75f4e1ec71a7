"""What a run reports: the header before its bar, metrics.jsonl (one JSON object per log point or held-out
evaluation), optional TensorBoard, the closing verdict and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from model.flops import param_count


class MetricsLog:
    """Appends records to metrics.jsonl (flushed each time); mirrors numbers to TensorBoard if asked."""

    def __init__(self, path: Path, tensorboard_dir: Path | None = None, resume_at: tuple[int, int] | None = None):
        self.path = path
        if resume_at is not None:
            truncate(path, *resume_at)
        self._file = open(path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise RuntimeError("tensorboard=true needs the tensorboard package: pip install tensorboard, "
                                   "or set tensorboard=false") from e
            self._tb = SummaryWriter(str(tensorboard_dir))

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill mid-write
    return out


def truncate(path: Path, step: int, tokens: int) -> None:
    """Drop records after the checkpoint at (`step`, `tokens`): a resumed run rewrites what came after it.
    Tokens tell apart the records of one step (a run that ends inside an accumulation logs its last step
    twice, and the checkpoint may hold the first)."""
    kept = [r for r in read(path) if (r.get("step", 0), r.get("tokens", 0)) <= (step, tokens)]
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    tmp.replace(path)


def header(cfg, mcfg, device, precision: str, compiled: bool, rows: int, heldout_rows: int, seq_len: int,
           entropy: float, budget, flops_per_token: float) -> str:
    """What a run is about to do, printed before its progress bar."""
    train_tokens = (rows - heldout_rows) * seq_len
    if budget.kind == "seconds":
        epochs = "a time budget: the epochs depend on the speed (the bar counts them)"
    else:
        tokens = budget.amount if budget.kind == "tokens" else budget.amount / flops_per_token
        epochs = f"{tokens / train_tokens:.2f} epochs of the training rows ({tokens:,.0f} tokens)"
    heldout = (f"{heldout_rows:,} held out for the held-out loss" if heldout_rows
               else "none held out (heldout_rows=0 or too few rows): no held-out loss")
    return "\n".join([
        f"model {cfg.model}: {mcfg.num_layers} layers x {mcfg.hidden_size} ({mcfg.num_heads} heads), FFN "
        f"{mcfg.intermediate_size}, vocab {mcfg.vocab_size:,}: {param_count(mcfg):,} parameters "
        f"({param_count(mcfg, non_embedding=True):,} without embeddings)",
        f"device {device} ({torch.get_num_threads()} threads), precision {precision}, compile {'on' if compiled else 'off'}",
        f"shards {cfg.shards}: {rows:,} rows x {seq_len} = {rows * seq_len:,} tokens; {rows - heldout_rows:,} rows "
        f"train, {heldout}; unigram entropy of the rows {entropy:.3f} nats",
        f"budget {cfg.budget}: {epochs}; batch {cfg.micro_batch} -> {cfg.batch_size} sequences, lr {cfg.lr:g} "
        f"({cfg.schedule}), {masking(cfg)}",
    ])


def masking(cfg) -> str:
    """The masking rate in words."""
    if cfg.mask_schedule == "constant":
        return f"{cfg.mask_fraction:.0%} of positions masked"
    return f"masking {cfg.mask_start:.0%} -> {cfg.mask_end:.0%} of positions ({cfg.mask_schedule} in the budget)"


def verdict(heldout_loss: float, entropy: float) -> str:
    """One line: where the held-out loss ended against the unigram entropy."""
    if heldout_loss != heldout_loss:  # NaN: no held-out rows
        return f"no held-out loss (no rows held out); unigram entropy {entropy:.3f} nats"
    gap = entropy - heldout_loss
    if gap > 0:
        return (f"held-out loss {heldout_loss:.3f} is {gap:.3f} nats below the unigram entropy {entropy:.3f}: "
                "the model uses the context")
    return (f"held-out loss {heldout_loss:.3f} is not below the unigram entropy {entropy:.3f}: the model is still "
            "on the plateau where it guesses token frequencies; train longer or see configs/train/desktop.yaml")


def plot(path: Path, png: Path) -> Path | None:
    """Loss (training and held-out, with the unigram entropy as a line), learning rate with batch size,
    and tokens/s against tokens seen; None without records or without matplotlib (a lean GPU machine:
    metrics.jsonl holds the same numbers)."""
    records = read(path)
    train = [r for r in records if "loss" in r]
    held = [r for r in records if "heldout_loss" in r]
    if not train:
        return None
    try:
        import matplotlib
    except ImportError:
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tokens = [r["tokens"] / 1e6 for r in train]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(tokens, [r["loss"] for r in train], label="training loss (80/10/10 corruption)")
    if held:
        axes[0].plot([r["tokens"] / 1e6 for r in held], [r["heldout_loss"] for r in held], "o-", color="tab:red",
                     label="held-out loss (every target [MASK])")
        axes[0].axhline(held[-1]["unigram_entropy"], color="gray", linestyle="--",
                        label=f"unigram entropy {held[-1]['unigram_entropy']:.2f} (context-free best)")
    axes[0].set(title="MLM loss (nats)", xlabel="tokens (M)", ylabel="loss")
    axes[0].legend(fontsize=8)
    lr_line = axes[1].plot(tokens, [r["lr"] for r in train], color="tab:orange", label="learning rate")
    axes[1].set(title="learning rate and batch size", xlabel="tokens (M)", ylabel="lr")
    twin = axes[1].twinx()
    bs_line = twin.plot(tokens, [r["batch_size"] for r in train], color="tab:green", label="batch size")
    twin.set_ylabel("batch size (sequences)")
    axes[1].legend(handles=lr_line + bs_line, fontsize=8, loc="upper left")
    axes[2].plot(tokens, [r["tokens_per_s"] for r in train], color="tab:purple")
    axes[2].set(title="throughput", xlabel="tokens (M)", ylabel="tokens/s")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png
