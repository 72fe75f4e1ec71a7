"""What a run reports: metrics.jsonl (one JSON object per log point), optional TensorBoard, a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path


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


def plot(path: Path, png: Path) -> Path | None:
    """Loss, learning rate with batch size, and tokens/s against tokens seen; None without records or
    without matplotlib (a lean GPU machine: metrics.jsonl holds the same numbers)."""
    records = [r for r in read(path) if "loss" in r]
    if not records:
        return None
    try:
        import matplotlib
    except ImportError:
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tokens = [r["tokens"] / 1e6 for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(tokens, [r["loss"] for r in records])
    axes[0].set(title="MLM loss", xlabel="tokens (M)", ylabel="loss")
    axes[1].plot(tokens, [r["lr"] for r in records], color="tab:orange")
    axes[1].set(title="learning rate and batch size", xlabel="tokens (M)", ylabel="lr")
    twin = axes[1].twinx()
    twin.plot(tokens, [r["batch_size"] for r in records], color="tab:green")
    twin.set_ylabel("batch size (sequences)")
    axes[2].plot(tokens, [r["tokens_per_s"] for r in records], color="tab:purple")
    axes[2].set(title="throughput", xlabel="tokens (M)", ylabel="tokens/s")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png
